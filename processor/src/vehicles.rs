//! Detectors that follow each vehicle: delay, breakdown (reported, stranded, silent),
//! crowding; and each line: bunching and gapping. They share one row per vehicle, the
//! live table's row, so a position costs one lookup.

use std::collections::{BTreeMap, HashMap, VecDeque};

use compact_str::format_compact;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::{
    Alert, AlertKind, AlertState, Id, Severity, SubjectKind, TimestampMs, VehiclePosition,
    VehicleStatus,
};

use crate::alerts::AlertBook;
use crate::config::ProcessorConfig;

/// A vehicle's row: its latest report and what its detectors remember.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleRow {
    /// The latest report (by event time): the live table's value.
    pub position: VehiclePosition,
    /// Since when it has been later than the delay threshold.
    delay_since: Option<TimestampMs>,
    /// Since when, and where, it has been standing still in transit.
    still_since: Option<(TimestampMs, f64, f64)>,
    /// Its active alerts, by kind of condition.
    delay: Option<Id>,
    reported_breakdown: Option<Id>,
    stranded: Option<Id>,
    silent: Option<Id>,
    crowded: Option<Id>,
    /// The input partition its reports come from (released when revoked).
    #[serde(default)]
    pub partition: i32,
}

impl VehicleRow {
    /// A row for a vehicle's first report.
    pub fn new(position: VehiclePosition) -> Self {
        VehicleRow {
            position,
            delay_since: None,
            still_since: None,
            delay: None,
            reported_breakdown: None,
            stranded: None,
            silent: None,
            crowded: None,
            partition: 0,
        }
    }
}

/// Hands a vehicle over to another processor instance (its partition was revoked): its
/// active alerts end here, with a message saying so; the new owner raises its own if
/// the condition holds there.
pub fn release(row: &mut VehicleRow, ts: TimestampMs, book: &mut AlertBook, out: &mut Vec<Alert>) {
    let id = row.position.vehicle_id.clone();
    for slot in [
        &mut row.delay,
        &mut row.reported_breakdown,
        &mut row.stranded,
        &mut row.silent,
        &mut row.crowded,
    ] {
        clear(
            slot,
            ts,
            format!("{id}: handed over to another processor instance"),
            book,
            out,
        );
    }
}

/// An incident in force, for naming the likely cause of a delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentArea {
    /// Where.
    pub lat: f64,
    /// Where.
    pub lon: f64,
    /// Radius of the affected area, metres.
    pub radius_m: f64,
    /// Lines it affects by name (city incidents), beyond its area.
    pub routes: Vec<Id>,
    /// What it is, for people, e.g. `"accident TI-000017"`.
    pub label: String,
}

fn base_alert(
    kind: AlertKind,
    severity: Severity,
    p: &VehiclePosition,
    since: TimestampMs,
    message: String,
) -> Alert {
    Alert {
        alert_id: format_compact!("{}:{}:{}", snake(kind), p.vehicle_id, p.timestamp),
        kind,
        state: AlertState::Raised,
        severity,
        subject_kind: SubjectKind::Vehicle,
        subject_id: p.vehicle_id.clone(),
        lat: Some(p.lat),
        lon: Some(p.lon),
        window_start: since,
        window_end: p.timestamp,
        raised_at: p.timestamp,
        timestamp: p.timestamp,
        message,
        evidence: serde_json::Map::new(),
    }
}

fn snake(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Surge => "surge",
        AlertKind::Delay => "delay",
        AlertKind::Breakdown => "breakdown",
        AlertKind::Bunching => "bunching",
        AlertKind::Gapping => "gapping",
        AlertKind::Crowding => "crowding",
        AlertKind::Incident => "incident",
    }
}

/// Raises `alert` into `slot` unless one is there.
fn raise(slot: &mut Option<Id>, alert: Alert, book: &mut AlertBook, out: &mut Vec<Alert>) {
    if slot.is_none() {
        *slot = Some(alert.alert_id.clone());
        book.raise(alert, out);
    }
}

/// Clears the alert in `slot`, if any.
fn clear(
    slot: &mut Option<Id>,
    ts: TimestampMs,
    message: String,
    book: &mut AlertBook,
    out: &mut Vec<Alert>,
) {
    if let Some(id) = slot.take() {
        book.clear(&id, ts, Some(message), out);
    }
}

/// Runs the per-vehicle detectors on a new report. `row.position` still holds the
/// previous report; it is replaced by `p` afterwards by the caller.
pub fn on_position(
    row: &mut VehicleRow,
    p: &VehiclePosition,
    config: &ProcessorConfig,
    incidents: &BTreeMap<Id, IncidentArea>,
    book: &mut AlertBook,
    out: &mut Vec<Alert>,
) {
    let ts = p.timestamp;
    let id = &p.vehicle_id;

    // Heard from again.
    if row.silent.is_some() {
        clear(
            &mut row.silent,
            ts,
            format!("Contact with {id} restored"),
            book,
            out,
        );
    }

    // Reported breakdowns.
    if p.status == VehicleStatus::BrokenDown {
        let mut a = base_alert(
            AlertKind::Breakdown,
            Severity::High,
            p,
            ts,
            format!("{id} broken down on line {}", p.route_id),
        );
        a.evidence.insert("reason".into(), json!("reported"));
        a.evidence.insert("passengers".into(), json!(p.passengers));
        raise(&mut row.reported_breakdown, a, book, out);
    } else if row.reported_breakdown.is_some() {
        clear(
            &mut row.reported_breakdown,
            ts,
            format!("{id} back in service"),
            book,
            out,
        );
    }

    // Standing still in transit, away from any stop: stranded.
    let in_transit = p.status == VehicleStatus::InTransitTo;
    if in_transit && p.speed_mps < 0.5 {
        let moved = row.still_since.map(|(_, lat, lon)| {
            distance_m(LatLon::new(lat, lon), p.position()) > config.breakdown.stationary_radius_m
        });
        match (row.still_since, moved) {
            (None, _) | (_, Some(true)) => row.still_since = Some((ts, p.lat, p.lon)),
            (Some((since, _, _)), _) if ts - since >= config.breakdown.stationary_ms => {
                let minutes = (ts - since) / 60_000;
                let mut a = base_alert(
                    AlertKind::Breakdown,
                    Severity::High,
                    p,
                    since,
                    format!("{id} stranded: standing still between stops for {minutes} min"),
                );
                a.evidence.insert("reason".into(), json!("stationary"));
                a.evidence
                    .insert("stationary_s".into(), json!((ts - since) / 1000));
                raise(&mut row.stranded, a, book, out);
            }
            _ => {}
        }
    } else {
        row.still_since = None;
        if row.stranded.is_some() {
            clear(
                &mut row.stranded,
                ts,
                format!("{id} moving again"),
                book,
                out,
            );
        }
    }

    // Delay, sustained; cleared on recovery; with the likely cause.
    let d = &config.delay;
    if p.delay_s > d.threshold_s {
        let since = *row.delay_since.get_or_insert(ts);
        if row.delay.is_none() && ts - since >= d.sustain_ms {
            let minutes = p.delay_s / 60;
            let severity = if p.delay_s >= 2 * d.threshold_s {
                Severity::High
            } else {
                Severity::Moderate
            };
            let cause = likely_cause(p, incidents, d.cause_radius_m);
            let because = cause
                .as_ref()
                .map(|(_, label, _)| format!("; likely cause: {label}"))
                .unwrap_or_default();
            let mut a = base_alert(
                AlertKind::Delay,
                severity,
                p,
                since,
                format!(
                    "{id} on line {} running {minutes} min late{because}",
                    p.route_id
                ),
            );
            a.evidence.insert("delay_s".into(), json!(p.delay_s));
            a.evidence
                .insert("threshold_s".into(), json!(d.threshold_s));
            if let Some((cause_id, label, metres)) = cause {
                a.evidence.insert("likely_cause".into(), json!(cause_id));
                a.evidence.insert("likely_cause_label".into(), json!(label));
                a.evidence
                    .insert("cause_distance_m".into(), json!(metres.round()));
            }
            raise(&mut row.delay, a, book, out);
        }
    } else {
        row.delay_since = None;
        if p.delay_s < d.clear_below_s && row.delay.is_some() {
            clear(
                &mut row.delay,
                ts,
                format!("{id} back on schedule ({} s late)", p.delay_s),
                book,
                out,
            );
        }
    }

    // Crowding.
    let share = p.passengers as f64 / p.capacity.max(1) as f64;
    if share > config.crowding.share {
        let mut a = base_alert(
            AlertKind::Crowding,
            if share >= 1.0 {
                Severity::High
            } else {
                Severity::Moderate
            },
            p,
            ts,
            format!(
                "{id} on line {} is {:.0}% full ({}/{})",
                p.route_id,
                share * 100.0,
                p.passengers,
                p.capacity
            ),
        );
        a.evidence.insert("passengers".into(), json!(p.passengers));
        a.evidence.insert("capacity".into(), json!(p.capacity));
        raise(&mut row.crowded, a, book, out);
    } else if share < config.crowding.clear_share && row.crowded.is_some() {
        clear(
            &mut row.crowded,
            ts,
            format!("{id} no longer crowded"),
            book,
            out,
        );
    }
}

/// The incident most likely behind a vehicle's delay: the nearest whose area (plus
/// `radius_m`) contains it, or one that names its line. (id, label, distance).
fn likely_cause(
    p: &VehiclePosition,
    incidents: &BTreeMap<Id, IncidentArea>,
    radius_m: f64,
) -> Option<(Id, String, f64)> {
    incidents
        .iter()
        .filter_map(|(id, area)| {
            let d = distance_m(LatLon::new(area.lat, area.lon), p.position());
            let names_line = area.routes.contains(&p.route_id);
            (d <= area.radius_m + radius_m || names_line)
                .then(|| (id.clone(), area.label.clone(), d))
        })
        .min_by(|a, b| a.2.total_cmp(&b.2))
}

/// Raises lost-contact alerts for vehicles not heard from for `silent_ms` before the
/// watermark. Vehicles are visited in id order, so the output is deterministic.
pub fn check_silence<'a>(
    rows: impl Iterator<Item = (&'a Id, &'a mut VehicleRow)>,
    watermark: TimestampMs,
    silent_ms: i64,
    book: &mut AlertBook,
    out: &mut Vec<Alert>,
) {
    let mut silent: Vec<(&Id, &mut VehicleRow)> = rows
        .filter(|(_, r)| {
            r.silent.is_none() && watermark.saturating_sub(r.position.timestamp) > silent_ms
        })
        .collect();
    silent.sort_by(|a, b| a.0.cmp(b.0));
    for (id, row) in silent {
        let p = &row.position;
        let mut a = base_alert(
            AlertKind::Breakdown,
            Severity::Moderate,
            p,
            p.timestamp,
            format!(
                "Lost contact with {id} on line {} (last seen {} s ago)",
                p.route_id,
                (watermark - p.timestamp) / 1000
            ),
        );
        a.alert_id = format_compact!("silent:{id}:{}", p.timestamp);
        a.timestamp = watermark;
        a.raised_at = watermark;
        a.window_end = watermark;
        a.evidence.insert("reason".into(), json!("silent"));
        a.evidence.insert("last_seen".into(), json!(p.timestamp));
        raise(&mut row.silent, a, book, out);
    }
}

/// One observed headway on a line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Passage {
    ratio: f64,
    headway_s: f64,
    stop: Id,
    leader: Id,
    follower: Id,
    ts: TimestampMs,
}

/// A line's recent headways and its bunching/gapping alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct LineState {
    recent: VecDeque<Passage>,
    bunching: Option<Id>,
    gapping: Option<Id>,
}

/// Bunching and gapping: the time between consecutive vehicles of a line leaving the
/// same stop in the same direction, against the line's scheduled headway.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Headways {
    /// Last departure from each stop towards the next: (route|from>to) → (time, vehicle).
    last_departure: HashMap<Id, (TimestampMs, Id)>,
    lines: BTreeMap<Id, LineState>,
}

impl Headways {
    /// Notes `p` after `prev` (the same vehicle's previous report): when its next stop
    /// changed, it has just left the previous one.
    pub fn on_position(
        &mut self,
        prev: &VehiclePosition,
        p: &VehiclePosition,
        config: &ProcessorConfig,
        book: &mut AlertBook,
        out: &mut Vec<Alert>,
    ) {
        if prev.next_stop_id == p.next_stop_id || prev.route_id != p.route_id {
            return;
        }
        let Some(&scheduled) = config.headway.route_headways_s.get(&p.route_id) else {
            return;
        };
        if scheduled <= 0.0 {
            return;
        }
        let key = format_compact!("{}|{}>{}", p.route_id, prev.next_stop_id, p.next_stop_id);
        let previous = self
            .last_departure
            .insert(key, (p.timestamp, p.vehicle_id.clone()));
        let Some((then, leader)) = previous else {
            return;
        };
        if leader == p.vehicle_id || then >= p.timestamp {
            return;
        }
        let headway_s = (p.timestamp - then) as f64 / 1000.0;
        let h = &config.headway;
        let line = self.lines.entry(p.route_id.clone()).or_default();
        line.recent.push_back(Passage {
            ratio: headway_s / scheduled,
            headway_s,
            stop: prev.next_stop_id.clone(),
            leader,
            follower: p.vehicle_id.clone(),
            ts: p.timestamp,
        });
        while line.recent.len() > h.recent.max(1) {
            line.recent.pop_front();
        }
        let worst_close = line
            .recent
            .iter()
            .min_by(|a, b| a.ratio.total_cmp(&b.ratio))
            .filter(|x| x.ratio < h.bunching_ratio)
            .cloned();
        let worst_far = line
            .recent
            .iter()
            .max_by(|a, b| a.ratio.total_cmp(&b.ratio))
            .filter(|x| x.ratio > h.gapping_ratio)
            .cloned();
        let route = &p.route_id;
        let ts = p.timestamp;
        match worst_close {
            Some(x) if line.bunching.is_none() => {
                let a = line_alert(
                    AlertKind::Bunching,
                    route,
                    &x,
                    scheduled,
                    p,
                    format!(
                        "Bunching on line {route}: {} left {} {} after {} (scheduled every {})",
                        x.follower,
                        x.stop,
                        duration(x.headway_s),
                        x.leader,
                        duration(scheduled)
                    ),
                );
                raise(&mut line.bunching, a, book, out);
            }
            None if line.bunching.is_some() => clear(
                &mut line.bunching,
                ts,
                format!("Line {route} no longer bunched"),
                book,
                out,
            ),
            _ => {}
        }
        match worst_far {
            Some(x) if line.gapping.is_none() => {
                let a = line_alert(
                    AlertKind::Gapping,
                    route,
                    &x,
                    scheduled,
                    p,
                    format!(
                        "Gap on line {route}: {} between {} and {} at {} (scheduled every {})",
                        duration(x.headway_s),
                        x.leader,
                        x.follower,
                        x.stop,
                        duration(scheduled)
                    ),
                );
                raise(&mut line.gapping, a, book, out);
            }
            None if line.gapping.is_some() => clear(
                &mut line.gapping,
                ts,
                format!("Line {route} back to its headway"),
                book,
                out,
            ),
            _ => {}
        }
    }
}

impl Headways {
    /// Hands a line over to another processor instance (the partition its vehicles are
    /// in was revoked): forgets its departures and headways, and ends its alerts with a
    /// message saying so; the new owner raises its own if the condition holds there.
    pub fn release_line(
        &mut self,
        route: &Id,
        ts: TimestampMs,
        book: &mut AlertBook,
        out: &mut Vec<Alert>,
    ) {
        self.last_departure
            .retain(|k, _| k.split_once('|').is_none_or(|(r, _)| r != route.as_str()));
        if let Some(mut line) = self.lines.remove(route) {
            for slot in [&mut line.bunching, &mut line.gapping] {
                clear(
                    slot,
                    ts,
                    format!("Line {route}: handed over to another processor instance"),
                    book,
                    out,
                );
            }
        }
    }

    /// Lines with headway state (for tests and diagnostics).
    pub fn lines(&self) -> usize {
        self.lines.len()
    }
}

/// "40 s", "6 min" or "2 min 30 s", for people.
fn duration(secs: f64) -> String {
    let s = secs.round() as i64;
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

fn line_alert(
    kind: AlertKind,
    route: &Id,
    x: &Passage,
    scheduled: f64,
    p: &VehiclePosition,
    message: String,
) -> Alert {
    let mut a = base_alert(
        kind,
        Severity::Moderate,
        p,
        x.ts - (x.headway_s * 1000.0) as i64,
        message,
    );
    a.alert_id = format_compact!("{}:{route}:{}", snake(kind), x.ts);
    a.subject_kind = SubjectKind::Route;
    a.subject_id = route.clone();
    a.evidence.insert("headway_s".into(), json!(x.headway_s));
    a.evidence
        .insert("scheduled_headway_s".into(), json!(scheduled));
    a.evidence
        .insert("ratio".into(), json!((x.ratio * 100.0).round() / 100.0));
    a.evidence.insert("stop_id".into(), json!(x.stop));
    a.evidence.insert("leader".into(), json!(x.leader));
    a.evidence.insert("follower".into(), json!(x.follower));
    a
}

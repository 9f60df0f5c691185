//! Bunching and gapping, per line: the time between consecutive vehicles of a line
//! leaving the same stop in the same direction, against the line's scheduled headway.
//! A line is alerted once the condition has held for a while without a break, cleared
//! once it has been gone for a while, and not alerted at all while an incident or a
//! breakdown on the line explains it (that alert is the one to act on).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use compact_str::format_compact;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamcity_core::{
    Alert, AlertKind, Id, Severity, SubjectKind, TimestampMs, VehiclePosition, VehicleStatus,
    wire_name,
};

use crate::config::HeadwayConfig;

use crate::detector::{Context, Detector, Event, Handover};
use crate::vehicles::vehicle_alert;

/// One observed headway on a line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Passage {
    ratio: f64,
    headway_s: f64,
    /// What the timetable has between the two (0 in checkpoints from before it was kept:
    /// the line's headway).
    #[serde(default)]
    scheduled_s: f64,
    /// Whether `scheduled_s` is the timetable's gap between the two trips (else the
    /// line's headway).
    #[serde(default)]
    timetabled: bool,
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
    /// How long the line has been bunched, and back to its headway.
    #[serde(default)]
    bunched: Spell,
    /// How long the line has been gapped, and back to its headway.
    #[serde(default)]
    gapped: Spell,
    /// Until when an incident or a breakdown explains its headways.
    #[serde(default)]
    disturbed_until: TimestampMs,
}

/// Since when a condition has held without a break, and since when it has been gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Spell {
    since: Option<TimestampMs>,
    gone_since: Option<TimestampMs>,
}

/// What a line's condition calls for at a passage.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    Raise,
    Clear,
    Nothing,
}

impl Spell {
    /// Notes whether the condition holds at `ts`; `alerted`: whether its alert is
    /// active.
    fn note(&mut self, holds: bool, alerted: bool, ts: TimestampMs, h: &HeadwayConfig) -> Call {
        if holds {
            self.gone_since = None;
            let since = *self.since.get_or_insert(ts);
            if !alerted && ts - since >= h.persist_ms {
                return Call::Raise;
            }
        } else {
            self.since = None;
            if alerted {
                let gone = *self.gone_since.get_or_insert(ts);
                if ts - gone >= h.clear_after_ms {
                    self.gone_since = None;
                    return Call::Clear;
                }
            }
        }
        Call::Nothing
    }
}

/// Bunching and gapping: the time between consecutive vehicles of a line leaving the
/// same stop in the same direction, against the line's scheduled headway.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeadwayDetector {
    /// Last departure from each stop towards the next: (route|from>to) → (time, vehicle).
    last_departure: HashMap<Id, (TimestampMs, Id)>,
    /// When the timetable had the last vehicle to leave each stop (same keys), for trips
    /// of a timetabled network.
    #[serde(default)]
    last_scheduled: HashMap<Id, TimestampMs>,
    lines: BTreeMap<Id, LineState>,
}

impl Detector for HeadwayDetector {
    fn on_event(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        if let Event::Position {
            report,
            previous: Some(previous),
            ..
        } = event
        {
            if report.status == VehicleStatus::BrokenDown {
                self.disturb(&report.route_id, report.timestamp, cx);
            }
            self.on_position(previous, report, cx);
        }
    }

    /// The lines of the vehicles handed over go with them (reports are partitioned by
    /// line).
    fn release(&mut self, handover: &Handover<'_>, cx: &mut Context<'_>) {
        let Handover::Vehicles(vehicles) = handover else {
            return;
        };
        let lines: BTreeSet<&Id> = vehicles.iter().map(|r| &r.position.route_id).collect();
        let ts = cx.watermark.max(0);
        for route in lines {
            self.release_line(route, ts, cx);
        }
    }
}

impl HeadwayDetector {
    /// Notes that something on line `route` explains its headways at `ts`.
    fn disturb(&mut self, route: &Id, ts: TimestampMs, cx: &Context<'_>) {
        let line = self.lines.entry(route.clone()).or_default();
        line.disturbed_until = line
            .disturbed_until
            .max(ts.saturating_add(cx.config.headway.disturbed_ms));
    }

    /// Notes `p` after `prev` (the same vehicle's previous report): when its next stop
    /// changed, it has just left the previous one.
    fn on_position(&mut self, prev: &VehiclePosition, p: &VehiclePosition, cx: &mut Context<'_>) {
        let config = cx.config;
        if prev.next_stop_id == p.next_stop_id || prev.route_id != p.route_id {
            return;
        }
        // Passing a stop inside an incident's area, or on a line an incident names.
        if !cx.areas.is_empty()
            && cx
                .areas
                .likely_cause(p, config.delay.cause_radius_m)
                .is_some()
        {
            self.disturb(&p.route_id, p.timestamp, cx);
        }
        let line_headway = config
            .headway
            .route_headways_s
            .get(&p.route_id)
            .copied()
            .unwrap_or(0.0);
        let key = format_compact!("{}|{}>{}", p.route_id, prev.next_stop_id, p.next_stop_id);
        // With a timetable: when this vehicle should have left, against when the one
        // before it should have (the timetable's own gap, by time of day).
        let timetabled = cx
            .network
            .zip(p.start_date.as_deref().zip(p.start_time.as_deref()))
            .and_then(|(n, (date, time))| {
                n.scheduled_departure_ms(&p.trip_id, date, time, &prev.next_stop_id)
            });
        let leader_timetabled = match timetabled {
            Some(t) => self.last_scheduled.insert(key.clone(), t),
            None => self.last_scheduled.remove(&key),
        };
        let previous = self
            .last_departure
            .insert(key, (p.timestamp, p.vehicle_id.clone()));
        let Some((then, leader)) = previous else {
            return;
        };
        if leader == p.vehicle_id || then >= p.timestamp {
            return;
        }
        let (scheduled, by_timetable) = match (leader_timetabled, timetabled) {
            (Some(a), Some(b)) if b > a && b - a <= 7_200_000 => ((b - a) as f64 / 1000.0, true),
            _ => (line_headway, false),
        };
        if scheduled <= 0.0 {
            return;
        }
        let headway_s = (p.timestamp - then) as f64 / 1000.0;
        let h = &config.headway;
        let line = self.lines.entry(p.route_id.clone()).or_default();
        line.recent.push_back(Passage {
            ratio: headway_s / scheduled,
            headway_s,
            scheduled_s: scheduled,
            timetabled: by_timetable,
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
        let calm = ts >= line.disturbed_until;
        let call = line
            .bunched
            .note(worst_close.is_some(), line.bunching.is_some(), ts, h);
        match (call, worst_close) {
            (Call::Raise, Some(x)) if calm => {
                let mut a = line_alert(
                    AlertKind::Bunching,
                    route,
                    &x,
                    p,
                    format!(
                        "Bunching on line {route}{}: {} left {} {} after {} (scheduled {})",
                        lasting(line.bunched.since, ts),
                        x.follower,
                        x.stop,
                        duration(x.headway_s),
                        x.leader,
                        x.schedule(line_headway)
                    ),
                );
                a.action = format!(
                    "Hold {} at the next timepoint to restore the headway behind {}.",
                    x.follower, x.leader
                );
                cx.raise_into(&mut line.bunching, a);
            }
            (Call::Clear, _) => cx.clear_slot(
                &mut line.bunching,
                ts,
                format!("Line {route} no longer bunched"),
            ),
            _ => {}
        }
        let call = line
            .gapped
            .note(worst_far.is_some(), line.gapping.is_some(), ts, h);
        match (call, worst_far) {
            (Call::Raise, Some(x)) if calm => {
                let mut a = line_alert(
                    AlertKind::Gapping,
                    route,
                    &x,
                    p,
                    format!(
                        "Gap on line {route}{}: {} between {} and {} at {} (scheduled {})",
                        lasting(line.gapped.since, ts),
                        duration(x.headway_s),
                        x.leader,
                        x.follower,
                        x.stop,
                        x.schedule(line_headway)
                    ),
                );
                a.action = format!(
                    "Hold {} to close up behind it, or put a spare vehicle into the gap.",
                    x.leader
                );
                cx.raise_into(&mut line.gapping, a);
            }
            (Call::Clear, _) => cx.clear_slot(
                &mut line.gapping,
                ts,
                format!("Line {route} back to its headway"),
            ),
            _ => {}
        }
    }
}

impl HeadwayDetector {
    /// Hands a line over to another processor instance (the partition its vehicles are
    /// in was revoked): forgets its departures and headways, and ends its alerts with a
    /// message saying so; the new owner raises its own if the condition holds there.
    fn release_line(&mut self, route: &Id, ts: TimestampMs, cx: &mut Context<'_>) {
        self.last_departure
            .retain(|k, _| k.split_once('|').is_none_or(|(r, _)| r != route.as_str()));
        if let Some(mut line) = self.lines.remove(route) {
            for slot in [&mut line.bunching, &mut line.gapping] {
                cx.clear_slot(
                    slot,
                    ts,
                    format!("Line {route}: handed over to another processor instance"),
                );
            }
        }
    }

    /// Lines with headway state (for tests and diagnostics).
    pub fn lines(&self) -> usize {
        self.lines.len()
    }
}

/// " for 6 min" when a condition held since `since` has lasted a minute or more at
/// `ts`.
fn lasting(since: Option<TimestampMs>, ts: TimestampMs) -> String {
    let held = ts - since.unwrap_or(ts);
    if held >= 60_000 {
        format!(" for {} min", held / 60_000)
    } else {
        String::new()
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

impl Passage {
    /// What it was judged against, for people: `every 10 min` (the line's headway) or
    /// `15 min apart` (the timetable's gap between the two trips).
    fn schedule(&self, line_headway: f64) -> String {
        match (self.timetabled, self.scheduled_s > 0.0) {
            (true, _) => format!("{} apart", duration(self.scheduled_s)),
            (false, true) => format!("every {}", duration(self.scheduled_s)),
            (false, false) => format!("every {}", duration(line_headway)),
        }
    }
}

fn line_alert(
    kind: AlertKind,
    route: &Id,
    x: &Passage,
    p: &VehiclePosition,
    message: String,
) -> Alert {
    let scheduled = x.scheduled_s;
    let mut a = vehicle_alert(
        kind,
        Severity::Moderate,
        p,
        x.ts - (x.headway_s * 1000.0) as i64,
        message,
    );
    a.alert_id = format_compact!("{}:{route}:{}", wire_name(&kind), x.ts);
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

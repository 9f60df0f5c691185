//! Detectors that follow each vehicle: delay (with its likely cause), breakdown
//! (reported, stranded between stops, or out of contact) and crowding. What they
//! remember of each vehicle ([`VehicleMemory`]) is kept in its row of the live table
//! and reaches them with each report, so a report costs no lookup here. Breakdowns are
//! alerted per vehicle (each needs a mechanic); delays and crowding per line and cause
//! ([`crate::groups`]).

use compact_str::format_compact;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::{
    Alert, AlertKind, AlertState, Id, Severity, SubjectKind, TimestampMs, VehiclePosition,
    VehicleStatus, wire_name,
};

use crate::detector::{Context, Detector, Event, Handover};
use crate::groups::{GroupKey, Groups};
use crate::table::{VehicleRow, VehicleTable};

/// How often (in event time) vehicles are checked for lost contact.
const SILENCE_CHECK_MS: i64 = 5_000;

/// What the detectors remember of one vehicle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VehicleMemory {
    /// Since when it has been later than the delay threshold.
    delay_since: Option<TimestampMs>,
    /// Since when, and where, it has been standing still in transit.
    still_since: Option<(TimestampMs, f64, f64)>,
    /// The group (line delay alert) it is in, by name.
    delay: Option<Id>,
    /// Its active alerts, by kind of condition.
    reported_breakdown: Option<Id>,
    stranded: Option<Id>,
    silent: Option<Id>,
    /// The group (line crowding alert) it is in, by name.
    crowded: Option<Id>,
    /// The incident whose area it last ran through, its label, and when.
    #[serde(default)]
    passed: Option<(Id, String, TimestampMs)>,
}

impl VehicleMemory {
    /// Ends everything said of the vehicle at `ts`: clears its alerts, saying
    /// `message`, and takes it out of its groups.
    fn clear_all(
        &mut self,
        groups: &mut Groups,
        id: &str,
        cx: &mut Context<'_>,
        ts: TimestampMs,
        message: &str,
    ) {
        for slot in [
            &mut self.reported_breakdown,
            &mut self.stranded,
            &mut self.silent,
        ] {
            cx.clear_slot(slot, ts, message.to_owned());
        }
        for slot in [&mut self.delay, &mut self.crowded] {
            if let Some(name) = slot.take() {
                groups.leave(&name, id, ts, cx);
            }
        }
    }
}

/// Delay, breakdown, stranded, lost contact and crowding, per vehicle.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VehicleDetector {
    /// Watermark at the last lost-contact check.
    silence_checked: Option<TimestampMs>,
    /// The line alerts for delays and crowding.
    #[serde(default)]
    groups: Groups,
}

impl VehicleDetector {
    /// The lines under an incident's delay alert.
    pub fn lines_under_incident(&self) -> impl Iterator<Item = &Id> {
        self.groups.lines_under_incident()
    }
}

/// An alert about vehicle `p`, raised at its report's time.
pub fn vehicle_alert(
    kind: AlertKind,
    severity: Severity,
    p: &VehiclePosition,
    since: TimestampMs,
    message: String,
) -> Alert {
    Alert {
        alert_id: format_compact!("{}:{}:{}", wire_name(&kind), p.vehicle_id, p.timestamp),
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
        action: String::new(),
        evidence: [("route_id".to_owned(), json!(p.route_id))]
            .into_iter()
            .collect(),
        acknowledged: None,
        muted_until: None,
    }
}

impl Detector for VehicleDetector {
    fn on_event(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        let Event::Position {
            report: p,
            previous,
            memory,
            ..
        } = event
        else {
            return;
        };
        let m = &mut *memory.borrow_mut();
        if p.status == VehicleStatus::OutOfService {
            // Its day is done: whatever was said of it is over.
            let message = format!("{} left service", p.vehicle_id);
            m.clear_all(&mut self.groups, &p.vehicle_id, cx, p.timestamp, &message);
            return;
        }
        // Passing a stop inside an incident's area: the incident its delay will be owed
        // to (checked once a stop, not on every report).
        if let Some(prev) = previous
            && prev.next_stop_id != p.next_stop_id
            && !cx.areas.is_empty()
            && let Some((id, label, _)) = cx.areas.likely_cause(p, cx.config.delay.cause_radius_m)
        {
            m.passed = Some((id, label, p.timestamp));
        }
        // Silent for longer than allowed before this report: contact was lost, whether
        // or not the watermark got there first (judged on the vehicle's own stream, so
        // the same whatever the batching).
        if let Some(prev) = previous
            && p.timestamp.saturating_sub(prev.timestamp) > cx.config.breakdown.silent_ms
            && m.silent.is_none()
        {
            let at = prev.timestamp + cx.config.breakdown.silent_ms;
            cx.raise_into(&mut m.silent, lost_contact(prev, at));
        }
        on_report(&mut self.groups, m, p, cx);
    }

    /// Raises lost-contact alerts for vehicles not heard from for `silent_ms` before the
    /// watermark, every few seconds of event time. Vehicles are visited in id order, so
    /// the output is deterministic.
    fn on_watermark(&mut self, table: &VehicleTable, cx: &mut Context<'_>) {
        let watermark = cx.watermark;
        if self
            .silence_checked
            .is_some_and(|at| watermark.saturating_sub(at) < SILENCE_CHECK_MS)
        {
            return;
        }
        self.silence_checked = Some(watermark);
        self.groups.expire(cx);
        let silent_ms = cx.config.breakdown.silent_ms;
        let mut silent: Vec<&VehicleRow> = table
            .iter()
            .map(|(_, row)| row)
            .filter(|row| {
                let ts = row.position.timestamp;
                // Silent by the watermark and by the vehicle's own partition: one not
                // read yet (a backlog, a rebalance) makes no vehicle silent.
                watermark.saturating_sub(ts) > silent_ms
                    && cx
                        .vehicle_stream_time(row.partition)
                        .is_some_and(|t| t.saturating_sub(ts) > silent_ms)
                    && row.memory.borrow().silent.is_none()
            })
            .collect();
        silent.sort_by(|a, b| a.position.vehicle_id.cmp(&b.position.vehicle_id));
        for row in silent {
            // Dated when the silence became too long, not when it was noticed: the
            // same alert however the input was batched (a replay after a restart).
            let alert = lost_contact(&row.position, row.position.timestamp + silent_ms);
            cx.raise_into(&mut row.memory.borrow_mut().silent, alert);
        }
    }

    /// The vehicles go to another instance: their active alerts end here, with a
    /// message saying so; the new owner raises its own if the condition holds there.
    fn release(&mut self, handover: &Handover<'_>, cx: &mut Context<'_>) {
        let Handover::Vehicles(vehicles) = handover else {
            return;
        };
        let ts = cx.watermark.max(0);
        for row in *vehicles {
            let id = &row.position.vehicle_id;
            let message = format!("{id}: handed over to another processor instance");
            row.memory
                .borrow_mut()
                .clear_all(&mut self.groups, id, cx, ts, &message);
        }
        let lines: std::collections::BTreeSet<&Id> =
            vehicles.iter().map(|r| &r.position.route_id).collect();
        for route in lines {
            self.groups.release_line(route, ts, cx);
        }
    }
}

/// The lost-contact alert of a vehicle last heard from in `p`, noticed at `at`.
fn lost_contact(p: &VehiclePosition, at: TimestampMs) -> Alert {
    let id = &p.vehicle_id;
    let mut a = vehicle_alert(
        AlertKind::Breakdown,
        Severity::Moderate,
        p,
        p.timestamp,
        format!(
            "Lost contact with {id} on line {} (last seen {} s ago)",
            p.route_id,
            (at - p.timestamp) / 1000
        ),
    );
    a.alert_id = format_compact!("silent:{id}:{}", p.timestamp);
    a.timestamp = at;
    a.raised_at = at;
    a.window_end = at;
    a.action = format!("Radio the driver of {id} to check the vehicle and its tracker.");
    a.evidence.insert("reason".into(), json!("silent"));
    a.evidence.insert("last_seen".into(), json!(p.timestamp));
    a
}

/// Runs the per-vehicle checks on a new report `p`.
fn on_report(
    groups: &mut Groups,
    m: &mut VehicleMemory,
    p: &VehiclePosition,
    cx: &mut Context<'_>,
) {
    let ts = p.timestamp;
    let id = &p.vehicle_id;
    let config = cx.config;

    // Heard from again.
    if m.silent.is_some() {
        cx.clear_slot(&mut m.silent, ts, format!("Contact with {id} restored"));
    }

    // Reported breakdowns.
    if p.status == VehicleStatus::BrokenDown {
        let mut a = vehicle_alert(
            AlertKind::Breakdown,
            Severity::High,
            p,
            ts,
            format!("{id} broken down on line {}", p.route_id),
        );
        a.action = format!(
            "Send a replacement vehicle or a mechanic to {id}; the next vehicle of line {} picks up its riders.",
            p.route_id
        );
        a.evidence.insert("reason".into(), json!("reported"));
        a.evidence.insert("passengers".into(), json!(p.passengers));
        cx.raise_into(&mut m.reported_breakdown, a);
    } else if m.reported_breakdown.is_some() {
        cx.clear_slot(
            &mut m.reported_breakdown,
            ts,
            format!("{id} back in service"),
        );
    }

    // Standing still in transit, away from any stop: stranded.
    let in_transit = p.status == VehicleStatus::InTransitTo;
    if in_transit && p.speed_mps < 0.5 {
        let moved = m.still_since.map(|(_, lat, lon)| {
            distance_m(LatLon::new(lat, lon), p.position()) > config.breakdown.stationary_radius_m
        });
        match (m.still_since, moved) {
            (None, _) | (_, Some(true)) => m.still_since = Some((ts, p.lat, p.lon)),
            (Some((since, _, _)), _) if ts - since >= config.breakdown.stationary_ms => {
                let minutes = (ts - since) / 60_000;
                let mut a = vehicle_alert(
                    AlertKind::Breakdown,
                    Severity::High,
                    p,
                    since,
                    format!("{id} stranded: standing still between stops for {minutes} min"),
                );
                a.action = format!("Radio the driver of {id}; send help if it cannot move.");
                a.evidence.insert("reason".into(), json!("stationary"));
                a.evidence
                    .insert("stationary_s".into(), json!((ts - since) / 1000));
                cx.raise_into(&mut m.stranded, a);
            }
            _ => {}
        }
    } else {
        m.still_since = None;
        if m.stranded.is_some() {
            cx.clear_slot(&mut m.stranded, ts, format!("{id} moving again"));
        }
    }

    // Delay, sustained; with the likely cause; grouped by line and cause.
    let d = &config.delay;
    if p.delay_s > d.threshold_s {
        let since = *m.delay_since.get_or_insert(ts);
        if let Some(name) = &m.delay {
            groups.refresh(name, p, i64::from(p.delay_s), cx);
        } else if ts - since >= d.sustain_ms {
            let cause = cx
                .areas
                .likely_cause(p, d.cause_radius_m)
                .map(|(id, label, _)| (id, label))
                .or_else(|| {
                    m.passed
                        .as_ref()
                        .filter(|(_, _, at)| ts - at <= d.cause_memory_ms)
                        .map(|(id, label, _)| (id.clone(), label.clone()))
                });
            let (cause, label) = cause.unzip();
            let key = GroupKey {
                kind: AlertKind::Delay,
                route: p.route_id.clone(),
                cause,
            };
            m.delay = Some(key.name());
            groups.join(key, label, p, i64::from(p.delay_s), cx);
        }
    } else {
        m.delay_since = None;
        if p.delay_s < d.clear_below_s
            && let Some(name) = m.delay.take()
        {
            groups.leave(&name, id, ts, cx);
        }
    }

    // Crowding, grouped by line.
    let share = p.passengers as f64 / p.capacity.max(1) as f64;
    if share > config.crowding.share {
        if let Some(name) = &m.crowded {
            groups.refresh(name, p, (share * 100.0).round() as i64, cx);
        } else {
            let key = GroupKey {
                kind: AlertKind::Crowding,
                route: p.route_id.clone(),
                cause: None,
            };
            m.crowded = Some(key.name());
            groups.join(key, None, p, (share * 100.0).round() as i64, cx);
        }
    } else if share < config.crowding.clear_share
        && let Some(name) = m.crowded.take()
    {
        groups.leave(&name, id, ts, cx);
    }
}

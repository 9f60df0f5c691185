//! Detectors that follow each vehicle: delay (with its likely cause), breakdown
//! (reported, stranded between stops, or out of contact) and crowding. What they
//! remember of each vehicle ([`VehicleMemory`]) is kept in its row of the live table
//! and reaches them with each report, so a report costs no lookup here.

use compact_str::format_compact;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::{
    Alert, AlertKind, AlertState, Id, Severity, SubjectKind, TimestampMs, VehiclePosition,
    VehicleStatus, wire_name,
};

use crate::detector::{Context, Detector, Event, Handover};
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
    /// Its active alerts, by kind of condition.
    delay: Option<Id>,
    reported_breakdown: Option<Id>,
    stranded: Option<Id>,
    silent: Option<Id>,
    crowded: Option<Id>,
}

impl VehicleMemory {
    /// Clears every alert of the vehicle at `ts`, saying `message`.
    fn clear_all(&mut self, cx: &mut Context<'_>, ts: TimestampMs, message: &str) {
        for slot in [
            &mut self.delay,
            &mut self.reported_breakdown,
            &mut self.stranded,
            &mut self.silent,
            &mut self.crowded,
        ] {
            cx.clear_slot(slot, ts, message.to_owned());
        }
    }
}

/// Delay, breakdown, stranded, lost contact and crowding, per vehicle.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VehicleDetector {
    /// Watermark at the last lost-contact check.
    silence_checked: Option<TimestampMs>,
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
        evidence: serde_json::Map::new(),
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
            m.clear_all(cx, p.timestamp, &format!("{} left service", p.vehicle_id));
            return;
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
        on_report(m, p, cx);
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
            let message = format!(
                "{}: handed over to another processor instance",
                row.position.vehicle_id
            );
            row.memory.borrow_mut().clear_all(cx, ts, &message);
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
    a.evidence.insert("reason".into(), json!("silent"));
    a.evidence.insert("last_seen".into(), json!(p.timestamp));
    a
}

/// Runs the per-vehicle checks on a new report `p`.
fn on_report(m: &mut VehicleMemory, p: &VehiclePosition, cx: &mut Context<'_>) {
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

    // Delay, sustained; cleared on recovery; with the likely cause.
    let d = &config.delay;
    if p.delay_s > d.threshold_s {
        let since = *m.delay_since.get_or_insert(ts);
        if m.delay.is_none() && ts - since >= d.sustain_ms {
            let minutes = p.delay_s / 60;
            let severity = if p.delay_s >= 2 * d.threshold_s {
                Severity::High
            } else {
                Severity::Moderate
            };
            let cause = cx.areas.likely_cause(p, d.cause_radius_m);
            let because = cause
                .as_ref()
                .map(|(_, label, _)| format!("; likely cause: {label}"))
                .unwrap_or_default();
            let mut a = vehicle_alert(
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
            cx.raise_into(&mut m.delay, a);
        }
    } else {
        m.delay_since = None;
        if p.delay_s < d.clear_below_s && m.delay.is_some() {
            cx.clear_slot(
                &mut m.delay,
                ts,
                format!("{id} back on schedule ({} s late)", p.delay_s),
            );
        }
    }

    // Crowding.
    let share = p.passengers as f64 / p.capacity.max(1) as f64;
    if share > config.crowding.share {
        let mut a = vehicle_alert(
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
        cx.raise_into(&mut m.crowded, a);
    } else if share < config.crowding.clear_share && m.crowded.is_some() {
        cx.clear_slot(&mut m.crowded, ts, format!("{id} no longer crowded"));
    }
}

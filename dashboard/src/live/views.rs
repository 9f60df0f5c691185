//! The views the dashboard builds from the bus: the live vehicle table, the alerts
//! (active and recent), activity at each stop, and the incidents in force.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use streamcity_core::{
    Alert, AlertKind, AlertState, CityIncident, ClockReading, Id, IncidentStatus, Record, RiderTap,
    TimestampMs, TrafficIncident, VehiclePosition, check_not_ahead, decode, decode_valid, encode,
    wire_name,
};
use streamcity_network::topic::CLOCK_KEY;

use super::Live;
use super::feed::Item;

#[derive(Debug, Clone)]
pub(super) struct VehicleEntry {
    pub(super) position: VehiclePosition,
    pub(super) raw: Bytes,
}

/// Recent activity at a stop.
#[derive(Debug, Clone, Default)]
pub(super) struct StopActivity {
    /// Recent tap-ons: (time, card), oldest first; at most [`RECENT_TAPS`].
    pub(super) taps: VecDeque<(TimestampMs, Id)>,
    /// Riders who tapped on since a vehicle with room last stopped here.
    pub(super) waiting: u32,
}

/// Tap-ons remembered per stop.
const RECENT_TAPS: usize = 200;

/// An incident in force.
#[derive(Debug, Clone)]
pub(super) struct IncidentEntry {
    pub(super) source: &'static str,
    /// When it is expected to be over, ms since the epoch.
    pub(super) ends: TimestampMs,
    pub(super) kind: String,
    pub(super) area: Option<String>,
    pub(super) lat: f64,
    pub(super) lon: f64,
    pub(super) radius_m: f64,
    pub(super) raw: Bytes,
}

/// What the dashboard knows, built from the bus.
#[derive(Debug, Default)]
pub(super) struct Views {
    pub(super) vehicles: HashMap<Id, VehicleEntry>,
    pub(super) active: BTreeMap<Id, (Alert, Bytes)>,
    pub(super) recent: VecDeque<(AlertKind, Bytes)>,
    pub(super) stops: HashMap<Id, StopActivity>,
    pub(super) incidents: BTreeMap<Id, IncidentEntry>,
    /// The latest event time seen, ms since the epoch.
    pub(super) time: TimestampMs,
    /// The producer's clock, once read from the bus.
    pub(super) clock: Option<ClockReading>,
    /// Operators' acknowledgements and mutes.
    pub(super) actions: super::actions::Actions,
}

impl Views {
    /// Writes the vehicles' latest reports that pass `wanted`, as a JSON array.
    pub(super) fn splice_vehicles(
        &self,
        out: &mut Vec<u8>,
        wanted: impl Fn(&VehiclePosition) -> bool,
    ) {
        super::splice(
            out,
            self.vehicles
                .values()
                .filter(|v| wanted(&v.position))
                .map(|v| &v.raw),
        );
    }

    /// Writes the active alerts, then `,"<recent_key>":` and the recent alert records,
    /// each list as a JSON array of those `wanted` (by kind, and place when it has one;
    /// recent records are judged by kind alone).
    pub(super) fn splice_alerts(
        &self,
        out: &mut Vec<u8>,
        recent_key: &str,
        wanted: impl Fn(AlertKind, Option<(f64, f64)>) -> bool,
    ) {
        super::splice(
            out,
            self.active
                .values()
                .filter(|(a, _)| wanted(a.kind, a.lat.zip(a.lon)))
                .map(|(_, raw)| raw),
        );
        out.extend_from_slice(format!(",\"{recent_key}\":").as_bytes());
        super::splice(
            out,
            self.recent
                .iter()
                .filter(|(kind, _)| wanted(*kind, None))
                .map(|(_, raw)| raw),
        );
    }
}

/// Incidents in force the dashboard keeps at most; beyond, those expected to end first
/// go.
pub(super) const MAX_INCIDENTS: usize = 10_000;
/// How long after its expected end an incident is still shown, ms (a late clearance).
const INCIDENT_LINGER_MS: i64 = 15 * 60 * 1000;
/// A vehicle not heard from for this long (event time) leaves the live picture, ms.
pub(super) const FORGET_VEHICLE_MS: i64 = 60 * 60 * 1000;
/// Records further than this ahead of the latest event time seen are not shown, ms
/// (as the processor's default `max_future_ms`).
const MAX_AHEAD_MS: i64 = 300_000;

impl Live {
    /// Applies one record from the bus. Records are checked with the same rules as the
    /// processor's (`decode_valid`); those that fail are counted and skipped, so nothing
    /// the processor would reject (an incident at latitude 91, a radius of 1e308, a
    /// time a year ahead) is ever shown.
    pub fn apply(&self, record: &Record) {
        self.events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let input = self.inputs().iter().position(|t| **t == record.topic);
        let ok = match input {
            Some(0) => self.apply_vehicle(record),
            Some(1) => decode_valid::<Alert>(&record.payload)
                .map(|a| self.apply_alert(a, &record.payload))
                .is_ok(),
            Some(2) => decode_valid::<RiderTap>(&record.payload)
                .map(|tap| self.apply_tap(tap))
                .is_ok(),
            Some(3) => decode_valid::<TrafficIncident>(&record.payload)
                .map(|i| self.apply_traffic(i, &record.payload))
                .unwrap_or(false),
            Some(4) => decode_valid::<CityIncident>(&record.payload)
                .map(|i| self.apply_city(i, &record.payload))
                .unwrap_or(false),
            Some(6) => self.apply_action(record),
            // The producer's clock; the network's own records were read at start.
            Some(5) if &record.key[..] == CLOCK_KEY.as_bytes() => {
                match decode::<ClockReading>(&record.payload) {
                    Ok(reading) if reading.is_valid() => {
                        self.write().views.clock = Some(reading);
                        true
                    }
                    _ => false,
                }
            }
            _ => true,
        };
        match input.and_then(|i| self.records_in.get(i)) {
            Some(counter) => counter.inc(),
            None => self.metrics.records_in(&record.topic).inc(),
        };
        if !ok {
            self.metrics.undecodable.inc();
            if let Some(held_back) = self.skipped_log.ready() {
                tracing::warn!(topic = %record.topic, key = %record.key_str(), more = held_back, "Invalid record skipped (and `more` since the last such line; all counted on /metrics)");
            }
        }
    }

    fn apply_vehicle(&self, record: &Record) -> bool {
        let id = Id::from(record.key_str());
        let mut state = self.write();
        if record.payload.is_empty() {
            state.views.vehicles.remove(&id);
            self.predictor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .forget_vehicle(&id);
            return true;
        }
        let Ok(p) = decode_valid::<VehiclePosition>(&record.payload) else {
            return false;
        };
        state.views.time = state.views.time.max(p.timestamp);
        self.predictor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .on_report(&self.network, &p);
        // Riders who board leave the stop's waiting count (and only they: a vehicle
        // of one line takes nobody waiting for another, a full one takes few).
        let previous = state.views.vehicles.get(&id).map(|e| &e.position);
        let boarded = p.boarded_since(previous);
        if boarded > 0
            && let Some(stop) = state.views.stops.get_mut(&p.next_stop_id)
        {
            stop.waiting = stop.waiting.saturating_sub(boarded);
        }
        let item = Item {
            raw: record.payload.clone(),
            route: Some(p.route_id.clone()),
            kind: None,
            at: Some((p.lat, p.lon)),
        };
        state.feed.pending_vehicles.insert(id.clone(), item);
        state.views.vehicles.insert(
            id,
            VehicleEntry {
                position: p,
                raw: record.payload.clone(),
            },
        );
        true
    }

    /// An alert as the processor published it: shown as it is, its bytes spliced into
    /// snapshots and deltas unchanged.
    fn apply_alert(&self, mut alert: Alert, raw: &Bytes) {
        if alert.state == AlertState::Raised {
            self.metrics.alert_raised(alert.kind);
        }
        let mut state = self.write();
        // Shown with its acknowledgement and mute, if any (re-encoded only then).
        let payload = if state.views.actions.annotate(&mut alert) {
            encode(&alert)
        } else {
            Bytes::clone(raw)
        };
        let item = Item {
            raw: payload.clone(),
            route: None,
            kind: Some(alert.kind),
            at: alert.lat.zip(alert.lon),
        };
        state.views.time = state.views.time.max(alert.timestamp);
        match alert.state {
            AlertState::Raised | AlertState::Updated => {
                state
                    .views
                    .active
                    .insert(alert.alert_id.clone(), (alert.clone(), payload.clone()));
            }
            AlertState::Cleared => {
                state.views.active.remove(&alert.alert_id);
                state.views.actions.cleared(&alert.alert_id);
            }
        }
        if state.views.recent.len() >= self.config.recent_alerts {
            state.views.recent.pop_front();
        }
        state.views.recent.push_back((alert.kind, payload));
        state.feed.pending_alerts.push(item);
    }

    fn apply_tap(&self, tap: RiderTap) {
        // Only the network's stops have activity: a tap at a stop it does not have
        // cannot grow the map.
        if self.network.stop(&tap.stop_id).is_none() {
            return;
        }
        let mut state = self.write();
        let activity = state.views.stops.entry(tap.stop_id).or_default();
        if activity.taps.len() >= RECENT_TAPS {
            activity.taps.pop_front();
        }
        activity.taps.push_back((tap.timestamp, tap.rider_id));
        activity.waiting = activity.waiting.saturating_add(1);
    }

    /// Keeps a traffic incident in force (or forgets a cleared one); false when its time
    /// is too far ahead of the events seen to be believed.
    fn apply_traffic(&self, i: TrafficIncident, raw: &Bytes) -> bool {
        let entry = IncidentEntry {
            source: "traffic",
            ends: i.expected_end,
            kind: wire_name(&i.kind),
            area: None,
            lat: i.lat,
            lon: i.lon,
            radius_m: i.radius_m,
            raw: raw.clone(),
        };
        self.put_incident(i.incident_id, i.status, i.timestamp, entry)
    }

    /// Keeps a city incident in force (or forgets a cleared one); false when its time is
    /// too far ahead of the events seen to be believed.
    fn apply_city(&self, i: CityIncident, raw: &Bytes) -> bool {
        let entry = IncidentEntry {
            source: "city",
            ends: i
                .expires_at
                .or(i.estimated_restoration)
                .unwrap_or(i.started_at),
            kind: wire_name(&i.kind),
            area: Some(i.area),
            lat: i.lat,
            lon: i.lon,
            radius_m: i.radius_m,
            raw: raw.clone(),
        };
        self.put_incident(i.event_id, i.status, i.timestamp, entry)
    }

    /// Keeps an active incident, or forgets a cleared one; incidents long over go, and
    /// at most [`MAX_INCIDENTS`] are kept. False (nothing kept) for a record more than
    /// [`MAX_AHEAD_MS`] ahead of the latest event time seen.
    fn put_incident(
        &self,
        id: Id,
        status: IncidentStatus,
        ts: TimestampMs,
        entry: IncidentEntry,
    ) -> bool {
        let mut state = self.write();
        let seen = (state.views.time > 0).then_some(state.views.time);
        if check_not_ahead(ts, seen, MAX_AHEAD_MS).is_err() {
            return false;
        }
        let now = state.views.time.max(ts);
        let incidents = &mut state.views.incidents;
        match status {
            IncidentStatus::Active => incidents.insert(id, entry),
            IncidentStatus::Cleared => incidents.remove(&id),
        };
        incidents.retain(|_, i| i.ends.saturating_add(INCIDENT_LINGER_MS) >= now);
        // The GTFS-realtime feeds change with them (alerts, cancellations, congestion).
        state.feed.incidents_version += 1;
        let incidents = &mut state.views.incidents;
        while incidents.len() > MAX_INCIDENTS {
            let first_to_end = incidents
                .iter()
                .min_by_key(|(_, i)| i.ends)
                .map(|(id, _)| id.clone());
            match first_to_end {
                Some(id) => incidents.remove(&id),
                None => break,
            };
        }
        true
    }

    /// Forgets the vehicles not heard from for [`FORGET_VEHICLE_MS`] of event time (the
    /// table keeps a vehicle until its tombstone; a run that ended leaves none).
    pub(super) fn forget_stale_vehicles(&self) {
        let mut state = self.write();
        let horizon = state.views.time.saturating_sub(FORGET_VEHICLE_MS);
        state
            .views
            .vehicles
            .retain(|_, v| v.position.timestamp >= horizon);
    }
}

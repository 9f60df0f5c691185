//! The views the dashboard builds from the bus: the live vehicle table, the alerts
//! (active and recent), activity at each stop, and the incidents in force.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use streamcity_core::{
    Alert, AlertKind, AlertState, CityIncident, ClockReading, Id, IncidentStatus, OccupancyStatus,
    Record, RiderTap, TimestampMs, TrafficIncident, VehiclePosition, VehicleStatus, decode,
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

impl Live {
    /// Applies one record from the bus. Records that do not decode are counted and
    /// skipped (the processor has already validated what it publishes).
    pub fn apply(&self, record: &Record) {
        let input = self.inputs().iter().position(|t| **t == record.topic);
        let ok = match input {
            Some(0) => self.apply_vehicle(record),
            Some(1) => decode::<Alert>(&record.payload)
                .map(|a| self.apply_alert(a, &record.payload))
                .is_ok(),
            Some(2) => decode::<RiderTap>(&record.payload)
                .map(|tap| self.apply_tap(tap))
                .is_ok(),
            Some(3) => decode::<TrafficIncident>(&record.payload)
                .map(|i| self.apply_traffic(i, &record.payload))
                .is_ok(),
            Some(4) => decode::<CityIncident>(&record.payload)
                .map(|i| self.apply_city(i, &record.payload))
                .is_ok(),
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
            tracing::warn!(topic = %record.topic, key = %record.key_str(), "Undecodable record skipped");
        }
    }

    fn apply_vehicle(&self, record: &Record) -> bool {
        let id = Id::from(record.key_str());
        let mut state = self.write();
        if record.payload.is_empty() {
            state.views.vehicles.remove(&id);
            return true;
        }
        let Ok(p) = decode::<VehiclePosition>(&record.payload) else {
            return false;
        };
        state.views.time = state.views.time.max(p.timestamp);
        // A vehicle with room standing at a stop takes the riders waiting there.
        if p.status == VehicleStatus::StoppedAt
            && p.occupancy_status < OccupancyStatus::Full
            && let Some(stop) = state.views.stops.get_mut(&p.next_stop_id)
        {
            stop.waiting = 0;
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
    fn apply_alert(&self, alert: Alert, raw: &Bytes) {
        if alert.state == AlertState::Raised {
            self.metrics.alert_raised(alert.kind);
        }
        let payload = Bytes::clone(raw);
        let item = Item {
            raw: payload.clone(),
            route: None,
            kind: Some(alert.kind),
            at: alert.lat.zip(alert.lon),
        };
        let mut state = self.write();
        state.views.time = state.views.time.max(alert.timestamp);
        match alert.state {
            AlertState::Raised => {
                state
                    .views
                    .active
                    .insert(alert.alert_id.clone(), (alert.clone(), payload.clone()));
            }
            AlertState::Cleared => {
                state.views.active.remove(&alert.alert_id);
            }
        }
        if state.views.recent.len() >= self.config.recent_alerts {
            state.views.recent.pop_front();
        }
        state.views.recent.push_back((alert.kind, payload));
        state.feed.pending_alerts.push(item);
    }

    fn apply_tap(&self, tap: RiderTap) {
        let mut state = self.write();
        let activity = state.views.stops.entry(tap.stop_id).or_default();
        if activity.taps.len() >= RECENT_TAPS {
            activity.taps.pop_front();
        }
        activity.taps.push_back((tap.timestamp, tap.rider_id));
        activity.waiting = activity.waiting.saturating_add(1);
    }

    fn apply_traffic(&self, i: TrafficIncident, raw: &Bytes) {
        let entry = IncidentEntry {
            source: "traffic",
            kind: wire_name(&i.kind),
            area: None,
            lat: i.lat,
            lon: i.lon,
            radius_m: i.radius_m,
            raw: raw.clone(),
        };
        self.put_incident(i.incident_id, i.status, entry);
    }

    fn apply_city(&self, i: CityIncident, raw: &Bytes) {
        let entry = IncidentEntry {
            source: "city",
            kind: wire_name(&i.kind),
            area: Some(i.area),
            lat: i.lat,
            lon: i.lon,
            radius_m: i.radius_m,
            raw: raw.clone(),
        };
        self.put_incident(i.event_id, i.status, entry);
    }

    /// Keeps an active incident, or forgets a cleared one.
    fn put_incident(&self, id: Id, status: IncidentStatus, entry: IncidentEntry) {
        let mut state = self.write();
        match status {
            IncidentStatus::Active => state.views.incidents.insert(id, entry),
            IncidentStatus::Cleared => state.views.incidents.remove(&id),
        };
    }
}

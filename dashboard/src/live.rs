//! The dashboard's live state: the vehicle table, alerts, stop activity and incidents,
//! materialised from the bus, and the conflated deltas `/ws` clients receive.
//!
//! Rows and alerts are kept as the JSON bytes they arrived in, so snapshots, deltas and
//! REST answers splice them together without re-encoding. Each delta is serialised once
//! for every client that takes everything; a client with filters gets the delta's
//! matching items spliced together, still without re-encoding.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Write;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::query::{BoundingBox, VehicleFilter};
use streamcity_core::{
    Alert, AlertKind, AlertState, Bus, BusError, CancellationToken, CityIncident, Id,
    IncidentStatus, OccupancyStatus, Record, RiderTap, Subscribe, Subscription, TimestampMs,
    Topics, TrafficIncident, VehiclePosition, VehicleStatus, decode, encode, wire_name,
};
use streamcity_producers::City;
use tokio::sync::broadcast;

use crate::metrics::Metrics;

/// Dashboard settings.
#[derive(Debug, Clone, Copy)]
pub struct LiveConfig {
    /// How often deltas go out; vehicle positions are conflated within one tick.
    pub tick: Duration,
    /// Deltas a client may fall behind before it is sent a fresh snapshot instead.
    pub client_queue: usize,
    /// Deltas kept for clients resuming with `?since=SEQ`...
    pub history: usize,
    /// ... as long as they hold no more than this many bytes (a large fleet's deltas
    /// are large: 100,000 vehicles make about 90 MB of them a second). A client asking
    /// for older ones gets a snapshot.
    pub history_bytes: usize,
    /// Alert records kept for snapshots and `/api/alerts`.
    pub recent_alerts: usize,
    /// How often the server pings each client.
    pub heartbeat: Duration,
    /// A client that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
    /// A client that falls behind this many times within a minute is closed.
    pub max_lags_per_minute: u32,
    /// A send that takes longer than this closes the client.
    pub send_timeout: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            tick: Duration::from_millis(100),
            client_queue: 64,
            history: 600,
            history_bytes: 64 << 20,
            recent_alerts: 200,
            heartbeat: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            max_lags_per_minute: 3,
            send_timeout: Duration::from_secs(10),
        }
    }
}

/// One item of a delta: its JSON and what filters look at.
#[derive(Debug, Clone)]
pub struct Item {
    raw: Bytes,
    route: Option<Id>,
    kind: Option<AlertKind>,
    at: Option<(f64, f64)>,
}

/// What changed during one tick, serialised once for clients without filters.
#[derive(Debug)]
pub struct Delta {
    /// Sequence number.
    pub seq: u64,
    /// Latest event time, ms since the epoch.
    pub time: TimestampMs,
    vehicles: Vec<Item>,
    alerts: Vec<Item>,
    /// The whole delta as JSON.
    pub text: Bytes,
}

impl Delta {
    /// Bytes it holds: its text and the items it was made of.
    fn size(&self) -> usize {
        let items: usize = self
            .vehicles
            .iter()
            .chain(&self.alerts)
            .map(|i| i.raw.len() + std::mem::size_of::<Item>())
            .sum();
        self.text.len() + items
    }
}

/// What a `/ws` client wants; every field left out means "everything".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFilter {
    /// Topics: `vehicles`, `alerts` (both when left out).
    #[serde(default)]
    pub topics: Option<HashSet<ClientTopic>>,
    /// Only these lines' vehicles.
    #[serde(default)]
    pub lines: Option<HashSet<Id>>,
    /// Only vehicles and placed alerts inside `[min_lat, min_lon, max_lat, max_lon]`.
    #[serde(default, deserialize_with = "bbox_from_array")]
    pub bbox: Option<BoundingBox>,
    /// Only these kinds of alert.
    #[serde(default)]
    pub alert_kinds: Option<HashSet<AlertKind>>,
}

/// What a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientTopic {
    /// Vehicle positions.
    Vehicles,
    /// Alerts.
    Alerts,
}

fn bbox_from_array<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BoundingBox>, D::Error> {
    let Some(v) = Option::<Vec<f64>>::deserialize(d)? else {
        return Ok(None);
    };
    let text = v.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
    BoundingBox::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl ClientFilter {
    /// True when nothing is filtered out.
    pub fn is_everything(&self) -> bool {
        *self == ClientFilter::default()
    }

    fn wants(&self, topic: ClientTopic) -> bool {
        self.topics.as_ref().is_none_or(|t| t.contains(&topic))
    }

    fn inside(&self, at: Option<(f64, f64)>) -> bool {
        match (self.bbox, at) {
            (Some(b), Some((lat, lon))) => b.contains(lat, lon),
            _ => true,
        }
    }

    /// Whether a vehicle of line `route` at `at` passes.
    fn vehicle(&self, route: Option<&Id>, at: Option<(f64, f64)>) -> bool {
        self.wants(ClientTopic::Vehicles)
            && self
                .lines
                .as_ref()
                .is_none_or(|l| route.is_some_and(|r| l.contains(r)))
            && self.inside(at)
    }

    /// Whether an alert of `kind` at `at` passes.
    fn alert(&self, kind: Option<AlertKind>, at: Option<(f64, f64)>) -> bool {
        self.wants(ClientTopic::Alerts)
            && self
                .alert_kinds
                .as_ref()
                .is_none_or(|k| kind.is_some_and(|kind| k.contains(&kind)))
            && self.inside(at)
    }
}

#[derive(Debug, Clone)]
struct VehicleEntry {
    position: VehiclePosition,
    raw: Bytes,
}

/// Recent activity at a stop.
#[derive(Debug, Clone, Default)]
struct StopActivity {
    /// Recent tap-ons: (time, card), oldest first; at most [`RECENT_TAPS`].
    taps: VecDeque<(TimestampMs, Id)>,
    /// Riders who tapped on since a vehicle with room last stopped here.
    waiting: u32,
}

/// Tap-ons remembered per stop.
const RECENT_TAPS: usize = 200;

/// An incident in force.
#[derive(Debug, Clone)]
struct IncidentEntry {
    source: &'static str,
    kind: String,
    area: Option<String>,
    lat: f64,
    lon: f64,
    radius_m: f64,
    raw: Bytes,
}

#[derive(Debug, Default)]
struct State {
    vehicles: HashMap<Id, VehicleEntry>,
    active: BTreeMap<Id, (Alert, Bytes)>,
    recent: VecDeque<(AlertKind, Bytes)>,
    stops: HashMap<Id, StopActivity>,
    incidents: BTreeMap<Id, IncidentEntry>,
    pending_vehicles: HashMap<Id, Item>,
    pending_alerts: Vec<Item>,
    history: VecDeque<Arc<Delta>>,
    /// Bytes held by `history`.
    history_size: usize,
    seq: u64,
    time: TimestampMs,
}

/// The live picture, shared by the ingest task, `/ws` clients and `/api` handlers.
#[derive(Debug)]
pub struct Live {
    /// The network being shown.
    pub city: Arc<City>,
    /// `/api/routes`, serialised once.
    pub routes_json: Bytes,
    /// `/api/stops`, serialised once.
    pub stops_json: Bytes,
    /// The dashboard's metrics.
    pub metrics: Metrics,
    /// Its records-read counters for the input topics, in the order of [`Live::inputs`]
    /// (looked up once, not per record).
    records_in: [Counter; 5],
    config: LiveConfig,
    topics: Topics,
    stops: HashMap<Id, usize>,
    state: RwLock<State>,
    deltas: broadcast::Sender<Arc<Delta>>,
    closing: CancellationToken,
    /// Identifies this run's stream of sequence numbers (its start time, ms): a client
    /// resuming with another epoch is talking about another run, and gets a snapshot.
    epoch: u64,
}

/// Where a `/ws` client starts.
#[derive(Debug)]
pub enum Start {
    /// From a snapshot.
    Snapshot(u64, Bytes),
    /// From the deltas after the one it last saw.
    Resume(Vec<Arc<Delta>>),
}

/// Writes `items` (JSON texts, each already decoded once, so valid UTF-8) as a JSON
/// array, as they are: no copy of the items but into `out`, no re-validation.
fn splice<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a Bytes>) {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
}

/// The topics the dashboard reads, in the order [`Live::apply`] dispatches on.
fn input_topics(t: &Topics) -> [&Arc<str>; 5] {
    [
        &t.live_vehicle_table,
        &t.alerts,
        &t.rider_tapped_on,
        &t.traffic_incidents,
        &t.city_incidents,
    ]
}

/// `{"type":"delta","seq":..,"time":..,"vehicles":` into `out`.
fn delta_head(out: &mut Vec<u8>, seq: u64, time: TimestampMs) {
    let _ = write!(
        out,
        "{{\"type\":\"delta\",\"seq\":{seq},\"time\":{time},\"vehicles\":"
    );
}

impl Live {
    /// An empty live state for `city`, fed from `topics`.
    pub fn new(city: Arc<City>, topics: Topics, config: LiveConfig) -> Self {
        let (deltas, _) = broadcast::channel(config.client_queue.max(1));
        let metrics = Metrics::new();
        let records_in = input_topics(&topics).map(|topic| metrics.records_in(topic));
        Live {
            routes_json: Bytes::from(serde_json::to_vec(&city.routes).unwrap_or_default()),
            stops_json: Bytes::from(serde_json::to_vec(&city.stops).unwrap_or_default()),
            stops: city
                .stops
                .iter()
                .enumerate()
                .map(|(i, s)| (s.stop_id.clone(), i))
                .collect(),
            metrics,
            records_in,
            city,
            config,
            topics,
            state: RwLock::new(State::default()),
            deltas,
            closing: CancellationToken::new(),
            epoch: streamcity_core::clock::wall_clock_ms().max(0) as u64,
        }
    }

    /// The settings.
    pub fn config(&self) -> LiveConfig {
        self.config
    }

    /// Tells every `/ws` client that the server is going away (close code 1001).
    pub fn close_clients(&self) {
        self.closing.cancel();
    }

    /// Cancelled when the server is going away.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The topics the dashboard reads.
    pub fn inputs(&self) -> [&Arc<str>; 5] {
        input_topics(&self.topics)
    }

    /// Applies one record from the bus. Records that do not decode are counted and
    /// skipped (the processor has already validated what it publishes).
    pub fn apply(&self, record: &Record) {
        let input = self.inputs().iter().position(|t| **t == record.topic);
        let ok = match input {
            Some(0) => self.apply_vehicle(record),
            Some(1) => decode::<Alert>(&record.payload)
                .map(|a| self.apply_alert(a))
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
            state.vehicles.remove(&id);
            return true;
        }
        let Ok(p) = decode::<VehiclePosition>(&record.payload) else {
            return false;
        };
        state.time = state.time.max(p.timestamp);
        // A vehicle with room standing at a stop takes the riders waiting there.
        if p.status == VehicleStatus::StoppedAt
            && p.occupancy_status < OccupancyStatus::Full
            && let Some(stop) = state.stops.get_mut(&p.next_stop_id)
        {
            stop.waiting = 0;
        }
        let item = Item {
            raw: record.payload.clone(),
            route: Some(p.route_id.clone()),
            kind: None,
            at: Some((p.lat, p.lon)),
        };
        state.pending_vehicles.insert(id.clone(), item);
        state.vehicles.insert(
            id,
            VehicleEntry {
                position: p,
                raw: record.payload.clone(),
            },
        );
        true
    }

    fn apply_alert(&self, mut alert: Alert) {
        // Alerts about a stop get the stop's place and name, so clients can locate them.
        if alert.lat.is_none()
            && let Some(stop) = self
                .stops
                .get(&alert.subject_id)
                .map(|&i| &self.city.stops[i])
        {
            alert.lat = Some(stop.lat);
            alert.lon = Some(stop.lon);
            alert.message = alert.message.replacen(
                alert.subject_id.as_str(),
                &format!("{} ({})", stop.name, stop.stop_id),
                1,
            );
        }
        if alert.state == AlertState::Raised {
            self.metrics.alert_raised(alert.kind);
        }
        let payload = encode(&alert);
        let item = Item {
            raw: payload.clone(),
            route: None,
            kind: Some(alert.kind),
            at: alert.lat.zip(alert.lon),
        };
        let mut state = self.write();
        state.time = state.time.max(alert.timestamp);
        match alert.state {
            AlertState::Raised => {
                state
                    .active
                    .insert(alert.alert_id.clone(), (alert.clone(), payload.clone()));
            }
            AlertState::Cleared => {
                state.active.remove(&alert.alert_id);
            }
        }
        if state.recent.len() >= self.config.recent_alerts {
            state.recent.pop_front();
        }
        state.recent.push_back((alert.kind, payload));
        state.pending_alerts.push(item);
    }

    fn apply_tap(&self, tap: RiderTap) {
        let mut state = self.write();
        let activity = state.stops.entry(tap.stop_id).or_default();
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
            IncidentStatus::Active => state.incidents.insert(id, entry),
            IncidentStatus::Cleared => state.incidents.remove(&id),
        };
    }

    /// Sends what changed since the last tick to every client, as one delta. Returns
    /// false when nothing changed.
    pub fn tick(&self) -> bool {
        let mut state = self.write();
        if state.pending_vehicles.is_empty() && state.pending_alerts.is_empty() {
            return false;
        }
        state.seq += 1;
        let vehicles: Vec<Item> = state
            .pending_vehicles
            .drain()
            .map(|(_, item)| item)
            .collect();
        let alerts: Vec<Item> = std::mem::take(&mut state.pending_alerts);
        let mut text = Vec::with_capacity(
            64 + vehicles
                .iter()
                .chain(&alerts)
                .map(|i| i.raw.len() + 1)
                .sum::<usize>(),
        );
        delta_head(&mut text, state.seq, state.time);
        splice(&mut text, vehicles.iter().map(|i| &i.raw));
        text.extend_from_slice(b",\"alerts\":");
        splice(&mut text, alerts.iter().map(|i| &i.raw));
        text.push(b'}');
        let delta = Arc::new(Delta {
            seq: state.seq,
            time: state.time,
            vehicles,
            alerts,
            text: Bytes::from(text),
        });
        state.history_size += delta.size();
        state.history.push_back(Arc::clone(&delta));
        // The newest delta always stays: a client that just saw it can resume.
        let mut evicted = Vec::new();
        while state.history.len() > self.config.history.max(1)
            || (state.history_size > self.config.history_bytes && state.history.len() > 1)
        {
            if let Some(old) = state.history.pop_front() {
                state.history_size -= old.size();
                evicted.push(old);
            }
        }
        drop(state);
        // No receivers is fine: nobody is watching.
        let _ = self.deltas.send(delta);
        // Freed outside the lock: often the last hold on a thousand payloads.
        drop(evicted);
        true
    }

    /// This run's epoch: snapshots carry it, and a resume must name it.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A receiver of deltas, and where the client starts: the deltas after `since` when
    /// they are all still in the history (and `epoch`, when given, is this run's),
    /// otherwise a snapshot (filtered). Deltas at or below the start's sequence number
    /// are already covered by it.
    pub fn connect(
        &self,
        since: Option<u64>,
        epoch: Option<u64>,
        filter: &ClientFilter,
    ) -> (broadcast::Receiver<Arc<Delta>>, Start) {
        let rx = self.deltas.subscribe();
        if let Some(since) = since.filter(|_| epoch.is_none_or(|e| e == self.epoch)) {
            let state = self.read();
            let oldest = state.history.front().map_or(state.seq + 1, |d| d.seq);
            if since <= state.seq && since + 1 >= oldest {
                let missed = state
                    .history
                    .iter()
                    .filter(|d| d.seq > since)
                    .cloned()
                    .collect();
                return (rx, Start::Resume(missed));
            }
        }
        let (seq, text) = self.snapshot(filter);
        (rx, Start::Snapshot(seq, text))
    }

    /// A delta as `filter` wants it (shared text when it wants everything).
    pub fn render(&self, delta: &Delta, filter: &ClientFilter) -> Bytes {
        if filter.is_everything() {
            return delta.text.clone();
        }
        let mut text = Vec::with_capacity(delta.text.len());
        delta_head(&mut text, delta.seq, delta.time);
        splice(
            &mut text,
            delta
                .vehicles
                .iter()
                .filter(|i| filter.vehicle(i.route.as_ref(), i.at))
                .map(|i| &i.raw),
        );
        text.extend_from_slice(b",\"alerts\":");
        splice(
            &mut text,
            delta
                .alerts
                .iter()
                .filter(|i| filter.alert(i.kind, i.at))
                .map(|i| &i.raw),
        );
        text.push(b'}');
        Bytes::from(text)
    }

    /// The whole live picture as a `snapshot` message, filtered, with its sequence number.
    pub fn snapshot(&self, filter: &ClientFilter) -> (u64, Bytes) {
        let state = self.read();
        let mut text =
            Vec::with_capacity(128 + state.vehicles.len() * 340 + state.recent.len() * 500);
        let _ = write!(
            text,
            "{{\"type\":\"snapshot\",\"epoch\":{},\"seq\":{},\"time\":{},\"vehicles\":",
            self.epoch, state.seq, state.time
        );
        splice(
            &mut text,
            state
                .vehicles
                .values()
                .filter(|v| {
                    filter.vehicle(
                        Some(&v.position.route_id),
                        Some((v.position.lat, v.position.lon)),
                    )
                })
                .map(|v| &v.raw),
        );
        let alert_ok = |kind: AlertKind, at: Option<(f64, f64)>| filter.alert(Some(kind), at);
        text.extend_from_slice(b",\"alerts\":");
        splice(
            &mut text,
            state
                .active
                .values()
                .filter(|(a, _)| alert_ok(a.kind, a.lat.zip(a.lon)))
                .map(|(_, raw)| raw),
        );
        text.extend_from_slice(b",\"recent_alerts\":");
        splice(
            &mut text,
            state
                .recent
                .iter()
                .filter(|(kind, _)| alert_ok(*kind, None))
                .map(|(_, raw)| raw),
        );
        text.push(b'}');
        (state.seq, Bytes::from(text))
    }

    /// The vehicles passing `filter`, as a JSON array.
    pub fn vehicles_json(&self, filter: &VehicleFilter) -> Vec<u8> {
        let state = self.read();
        let mut text = Vec::with_capacity(2 + state.vehicles.len() * 340);
        splice(
            &mut text,
            state
                .vehicles
                .values()
                .filter(|v| filter.matches(&v.position))
                .map(|v| &v.raw),
        );
        text
    }

    /// One vehicle's latest report.
    pub fn vehicle_json(&self, id: &str) -> Option<Bytes> {
        self.read().vehicles.get(id).map(|v| v.raw.clone())
    }

    /// `{"active": [...], "recent": [...]}`, optionally of one kind only.
    pub fn alerts_json(&self, kind: Option<AlertKind>) -> Vec<u8> {
        let state = self.read();
        let wanted = |k: AlertKind| kind.is_none_or(|want| want == k);
        let mut text = b"{\"active\":".to_vec();
        splice(
            &mut text,
            state
                .active
                .values()
                .filter(|(a, _)| wanted(a.kind))
                .map(|(_, raw)| raw),
        );
        text.extend_from_slice(b",\"recent\":");
        splice(
            &mut text,
            state
                .recent
                .iter()
                .filter(|(k, _)| wanted(*k))
                .map(|(_, raw)| raw),
        );
        text.push(b'}');
        text
    }

    /// A stop with its live activity: waiting riders (estimated), recent tap-ons and
    /// its active surge.
    pub fn stop_json(&self, id: &str) -> Option<serde_json::Value> {
        let stop = &self.city.stops[*self.stops.get(id)?];
        let state = self.read();
        let activity = state.stops.get(id).cloned().unwrap_or_default();
        let since = state.time - 300_000;
        let taps_5 = activity.taps.iter().filter(|t| t.0 >= since).count();
        let recent: Vec<serde_json::Value> = activity
            .taps
            .iter()
            .rev()
            .take(10)
            .map(|(ts, card)| serde_json::json!({ "rider_id": card, "timestamp": ts }))
            .collect();
        let surge = state
            .active
            .values()
            .find(|(a, _)| a.kind == AlertKind::Surge && a.subject_id == id)
            .and_then(|(_, raw)| serde_json::from_slice::<serde_json::Value>(raw).ok());
        Some(serde_json::json!({
            "stop_id": stop.stop_id,
            "name": stop.name,
            "lat": stop.lat,
            "lon": stop.lon,
            "route_ids": stop.route_ids,
            "waiting_estimate": activity.waiting,
            "taps_last_5_min": taps_5,
            "recent_taps": recent,
            "active_surge": surge,
        }))
    }

    /// Incidents in force: near a point (inside their area, widened by `margin_m`), in
    /// a district, of a kind. Each is its record plus `"source"` (`traffic` or `city`).
    pub fn incidents_json(
        &self,
        near: Option<(f64, f64)>,
        margin_m: f64,
        area: Option<&str>,
        kind: Option<&str>,
    ) -> String {
        let state = self.read();
        let items = state.incidents.values().filter(|i| {
            near.is_none_or(|(lat, lon)| {
                distance_m(LatLon::new(lat, lon), LatLon::new(i.lat, i.lon))
                    <= i.radius_m + margin_m
            }) && area.is_none_or(|a| i.area.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(a)))
                && kind.is_none_or(|k| i.kind == k)
        });
        let mut text = String::from("[");
        for (n, i) in items.enumerate() {
            if n > 0 {
                text.push(',');
            }
            // {"source":"city", ...the record's fields}: records are non-empty objects.
            let body = std::str::from_utf8(&i.raw).unwrap_or("{}").trim();
            text.push_str(&format!("{{\"source\":\"{}\"", i.source));
            match body.strip_prefix('{').map(str::trim_start) {
                Some(rest) if rest != "}" => {
                    text.push(',');
                    text.push_str(rest);
                }
                _ => text.push('}'),
            }
        }
        text.push(']');
        text
    }

    /// Vehicles in the table.
    pub fn vehicle_count(&self) -> usize {
        self.read().vehicles.len()
    }

    /// The latest sequence number.
    pub fn seq(&self) -> u64 {
        self.read().seq
    }
}

/// The consumer group prefix of dashboards.
pub const GROUP: &str = "streamcity-dashboard";

/// Subscribes to what the dashboard shows. Done before [`run_ingest`], so that a
/// caller can make sure the dashboard is listening before anything is published.
pub async fn subscribe<B: Bus>(bus: &B, live: &Live) -> Result<B::Subscription, BusError> {
    bus.subscribe(Subscribe::new(live.topics.group(GROUP), &live.inputs()))
        .await
}

/// Subscribes as a dashboard that builds its picture from what the bus keeps: a group
/// of its own (every dashboard reads everything) from the earliest records, so the
/// compacted live table and the alerts are replayed on start.
pub async fn subscribe_replaying<B: Bus>(
    bus: &B,
    live: &Live,
    instance: &str,
) -> Result<B::Subscription, BusError> {
    let spec = Subscribe::new(
        live.topics.group(&format!("{GROUP}-{instance}")),
        &live.inputs(),
    )
    .from(streamcity_core::StartFrom::Earliest);
    bus.subscribe(spec).await
}

/// Records taken from the bus at a time.
const BATCH: usize = 1024;
/// Batches already waiting that are taken before a delta is sent.
const BURST_BATCHES: usize = 64;

/// Sends a delta when anything changed, and notes when in `last_sent`: the start of
/// the send, so that the period is counted from send to send, not from the end of one.
fn send_delta(live: &Live, last_sent: &mut tokio::time::Instant) {
    let started = tokio::time::Instant::now();
    if live.tick() {
        *last_sent = started;
    }
}

/// Feeds `live` from `sub` (from [`subscribe`]) and sends a delta every tick, until
/// `stop` is cancelled.
pub async fn run_ingest<S: Subscription>(
    mut sub: S,
    live: Arc<Live>,
    stop: CancellationToken,
) -> Result<(), BusError> {
    let mut batch = Vec::with_capacity(BATCH);
    let period = live.config.tick;
    // At most one delta per period: sent as soon as data arrives when the last one is
    // a period old, otherwise exactly a period after it (not on a free-running timer,
    // whose phase could hold an update back almost two periods).
    let mut last_sent = tokio::time::Instant::now();
    let mut unsent = false;
    loop {
        tokio::select! {
            got = sub.recv_many(&mut batch, BATCH) => {
                let mut got = got?;
                if got == 0 {
                    break;
                }
                // A burst (a simulator step, a consumer fetch) is taken whole when it
                // is already waiting, so that it goes out in one delta rather than
                // its tail a period later; bounded, so a flood still sends deltas.
                for round in 1.. {
                    for delivery in batch.drain(..) {
                        live.apply(&delivery.record);
                        sub.commit(&delivery)?;
                    }
                    if got < BATCH || round == BURST_BATCHES {
                        break;
                    }
                    match sub.recv_many(&mut batch, BATCH).now_or_never() {
                        Some(more) => got = more?,
                        None => break,
                    }
                }
                unsent = true;
                if last_sent.elapsed() >= period {
                    send_delta(&live, &mut last_sent);
                    unsent = false;
                }
            }
            _ = tokio::time::sleep_until(last_sent + period), if unsent => {
                send_delta(&live, &mut last_sent);
                unsent = false;
            }
            _ = stop.cancelled() => break,
        }
    }
    Ok(())
}

//! The dashboard's live state: the vehicle table and the alerts, materialised from the
//! bus, plus the conflated deltas that `/ws` clients receive.
//!
//! Vehicle rows are kept as the JSON bytes they arrived in, so that snapshots, deltas
//! and `/api/vehicles` splice them together without re-encoding. Each delta is
//! serialised once and shared by every client.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use streamcity_core::{
    Alert, AlertState, Bus, BusError, CancellationToken, Id, Record, Subscribe, Subscription, TimestampMs, Topics,
    VehiclePosition, decode, encode,
};
use streamcity_producers::City;
use tokio::sync::broadcast;

/// Dashboard settings.
#[derive(Debug, Clone, Copy)]
pub struct LiveConfig {
    /// How often deltas go out; vehicle positions are conflated within one tick.
    pub tick: Duration,
    /// Messages a client may fall behind before it is sent a fresh snapshot instead.
    pub client_queue: usize,
    /// Alert records kept for snapshots and `/api/alerts`.
    pub recent_alerts: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig { tick: Duration::from_millis(100), client_queue: 256, recent_alerts: 200 }
    }
}

/// One message for `/ws` clients, serialised once.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its sequence number.
    pub seq: u64,
    /// The JSON text.
    pub text: Utf8Bytes,
}

#[derive(Debug, Default)]
struct State {
    vehicles: HashMap<Id, Bytes>,
    active: HashMap<Id, Alert>,
    recent: VecDeque<Bytes>,
    pending_vehicles: HashMap<Id, Bytes>,
    pending_alerts: Vec<Bytes>,
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
    config: LiveConfig,
    topics: Topics,
    stops: HashMap<Id, (f64, f64, String)>,
    state: RwLock<State>,
    frames: broadcast::Sender<Frame>,
    closing: CancellationToken,
}

impl Live {
    /// An empty live state for `city`, fed from `topics`.
    pub fn new(city: Arc<City>, topics: Topics, config: LiveConfig) -> Self {
        let (frames, _) = broadcast::channel(config.client_queue.max(1));
        Live {
            routes_json: Bytes::from(serde_json::to_vec(&city.routes).unwrap_or_default()),
            stops_json: Bytes::from(serde_json::to_vec(&city.stops).unwrap_or_default()),
            stops: city.stops.iter().map(|s| (s.stop_id.clone(), (s.lat, s.lon, s.name.clone()))).collect(),
            city,
            config,
            topics,
            state: RwLock::new(State::default()),
            frames,
            closing: CancellationToken::new(),
        }
    }

    /// Tells every `/ws` client that the server is going away (close code 1001).
    pub fn close_clients(&self) {
        self.closing.cancel();
    }

    /// Cancelled when the server is going away.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// The settings.
    pub fn config(&self) -> LiveConfig {
        self.config
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one record from the bus. Records that do not decode are logged and
    /// skipped (the processor has already validated what it publishes).
    pub fn apply(&self, record: &Record) {
        if record.topic == self.topics.live_vehicle_table {
            self.apply_vehicle(record);
        } else if record.topic == self.topics.alerts {
            match decode::<Alert>(&record.payload) {
                Ok(alert) => self.apply_alert(alert),
                Err(e) => tracing::warn!(error = %e, "Undecodable alert skipped"),
            }
        }
    }

    fn apply_vehicle(&self, record: &Record) {
        let id = Id::from(record.key_str());
        let mut state = self.write();
        if record.payload.is_empty() {
            state.vehicles.remove(&id);
            return;
        }
        // Only the timestamp is needed here; the full row is validated upstream, but a
        // row that is not a vehicle position must not reach clients either.
        let Ok(p) = decode::<VehiclePosition>(&record.payload) else {
            tracing::warn!(key = %id, "Undecodable vehicle row skipped");
            return;
        };
        state.time = state.time.max(p.timestamp);
        state.vehicles.insert(id.clone(), record.payload.clone());
        state.pending_vehicles.insert(id, record.payload.clone());
    }

    fn apply_alert(&self, mut alert: Alert) {
        // Alerts about a stop get the stop's place and name, so clients can locate them.
        if alert.lat.is_none()
            && let Some((lat, lon, name)) = self.stops.get(&alert.subject_id)
        {
            alert.lat = Some(*lat);
            alert.lon = Some(*lon);
            alert.message = alert.message.replacen(alert.subject_id.as_str(), &format!("{name} ({})", alert.subject_id), 1);
        }
        let payload = encode(&alert);
        let mut state = self.write();
        state.time = state.time.max(alert.timestamp);
        match alert.state {
            AlertState::Raised => {
                state.active.insert(alert.alert_id.clone(), alert);
            }
            AlertState::Cleared => {
                state.active.remove(&alert.alert_id);
            }
        }
        if state.recent.len() >= self.config.recent_alerts {
            state.recent.pop_front();
        }
        state.recent.push_back(payload.clone());
        state.pending_alerts.push(payload);
    }

    /// Sends what changed since the last tick to every client, as one delta.
    /// Returns false when nothing changed.
    pub fn tick(&self) -> bool {
        let mut state = self.write();
        if state.pending_vehicles.is_empty() && state.pending_alerts.is_empty() {
            return false;
        }
        state.seq += 1;
        let mut text = String::with_capacity(64 + state.pending_vehicles.len() * 320);
        text.push_str(&format!("{{\"type\":\"delta\",\"seq\":{},\"time\":{},\"vehicles\":", state.seq, state.time));
        let vehicles = std::mem::take(&mut state.pending_vehicles);
        push_array(&mut text, vehicles.values());
        text.push_str(",\"alerts\":");
        let alerts = std::mem::take(&mut state.pending_alerts);
        push_array(&mut text, alerts.iter());
        text.push('}');
        // Keep the (empty) buffers' capacity for the next tick.
        state.pending_vehicles = vehicles;
        state.pending_vehicles.clear();
        state.pending_alerts = alerts;
        state.pending_alerts.clear();
        // No receivers is fine: nobody is watching.
        let _ = self.frames.send(Frame { seq: state.seq, text: Utf8Bytes::from(text) });
        true
    }

    /// A receiver of deltas, and a snapshot of everything up to the last delta sent
    /// before it. Deltas with `seq` at or below the snapshot's are already in it.
    pub fn subscribe(&self) -> (broadcast::Receiver<Frame>, Frame) {
        let rx = self.frames.subscribe();
        (rx, self.snapshot())
    }

    /// The whole live picture as a `snapshot` message.
    pub fn snapshot(&self) -> Frame {
        let state = self.read();
        let mut text = String::with_capacity(128 + state.vehicles.len() * 320 + state.recent.len() * 400);
        text.push_str(&format!("{{\"type\":\"snapshot\",\"seq\":{},\"time\":{},\"vehicles\":", state.seq, state.time));
        push_array(&mut text, state.vehicles.values());
        text.push_str(",\"alerts\":");
        let active: Vec<Bytes> = state.active.values().map(encode).collect();
        push_array(&mut text, active.iter());
        text.push_str(",\"recent_alerts\":");
        push_array(&mut text, state.recent.iter());
        text.push('}');
        Frame { seq: state.seq, text: Utf8Bytes::from(text) }
    }

    /// The live vehicle table as a JSON array.
    pub fn vehicles_json(&self) -> String {
        let state = self.read();
        let mut text = String::with_capacity(2 + state.vehicles.len() * 320);
        push_array(&mut text, state.vehicles.values());
        text
    }

    /// `{"active": [...], "recent": [...]}`.
    pub fn alerts_json(&self) -> String {
        let state = self.read();
        let mut text = String::from("{\"active\":");
        let active: Vec<Bytes> = state.active.values().map(encode).collect();
        push_array(&mut text, active.iter());
        text.push_str(",\"recent\":");
        push_array(&mut text, state.recent.iter());
        text.push('}');
        text
    }

    /// Vehicles in the table.
    pub fn vehicle_count(&self) -> usize {
        self.read().vehicles.len()
    }
}

/// Appends `[a,b,...]` from JSON texts that are already valid (they were decoded or
/// encoded by us).
fn push_array<'a>(out: &mut String, items: impl Iterator<Item = &'a Bytes>) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(std::str::from_utf8(item).unwrap_or("null"));
    }
    out.push(']');
}

/// The consumer group prefix of dashboards.
pub const GROUP: &str = "streamcity-dashboard";

/// Subscribes to what the dashboard shows. Done before [`run_ingest`], so that a
/// caller can make sure the dashboard is listening before anything is published.
pub async fn subscribe<B: Bus>(bus: &B, topics: &Topics) -> Result<B::Subscription, BusError> {
    bus.subscribe(Subscribe::new(GROUP, &[&topics.live_vehicle_table, &topics.alerts])).await
}

/// Feeds `live` from `sub` (from [`subscribe`]) and sends a delta every tick, until
/// `stop` is cancelled.
pub async fn run_ingest<S: Subscription>(mut sub: S, live: Arc<Live>, stop: CancellationToken) -> Result<(), BusError> {
    let mut batch = Vec::with_capacity(1024);
    let mut tick = tokio::time::interval(live.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            got = sub.recv_many(&mut batch, 1024) => {
                if got? == 0 {
                    break;
                }
                for delivery in batch.drain(..) {
                    live.apply(&delivery.record);
                    sub.commit(&delivery)?;
                }
            }
            _ = tick.tick() => {
                live.tick();
            }
            _ = stop.cancelled() => break,
        }
    }
    Ok(())
}

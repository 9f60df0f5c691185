//! The dashboard's live state: the vehicle table, alerts, stop activity and incidents,
//! materialised from the bus, and the conflated deltas `/ws` clients receive.
//!
//! Rows and alerts are kept as the JSON bytes they arrived in, so snapshots, deltas and
//! REST answers splice them together without re-encoding. Each delta is serialised once
//! for every client that takes everything; a client with filters gets the delta's
//! matching items spliced together, still without re-encoding.

mod actions;
mod config;
mod feed;
mod filter;
mod ingest;
mod lines;
mod queries;
mod realtime;
mod series;
mod views;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use streamcity_core::{CancellationToken, Topics};
use streamcity_network::Network;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

pub use actions::{ActionError, MAX_ACKS, MAX_MUTES, Publish, publish_actions};
pub use config::LiveConfig;
pub use feed::{Delta, Start};
pub use filter::{ClientFilter, ClientTopic};
pub use ingest::{GROUP, run_ingest, subscribe, subscribe_replaying};
pub use realtime::{BuiltFeed, RealtimeFeed};
pub use series::{MAX_TRACKED_PER_LINE, MAX_TRACKED_VEHICLES};

use crate::metrics::Metrics;
use crate::origin::AllowedOrigins;

/// Everything the live state holds, under one lock: the views and the feed change
/// together, so that a snapshot and its sequence number agree.
#[derive(Debug, Default)]
struct State {
    views: views::Views,
    feed: feed::Feed,
}

/// The live picture, shared by the ingest task, `/ws` clients and `/api` handlers.
#[derive(Debug)]
pub struct Live {
    /// The network being shown.
    pub network: Arc<Network>,
    /// `/api/routes`, serialised once.
    pub routes_json: Bytes,
    /// `/api/stops`, serialised once.
    pub stops_json: Bytes,
    /// The dashboard's metrics.
    pub metrics: Metrics,
    /// Its records-read counters for the input topics, in the order of [`Live::inputs`]
    /// (looked up once, not per record).
    records_in: [Counter; 7],
    config: LiveConfig,
    topics: Topics,
    state: RwLock<State>,
    deltas: broadcast::Sender<Arc<Delta>>,
    closing: CancellationToken,
    /// One "invalid record skipped" line per 10 s at most.
    skipped_log: streamcity_core::throttle::Throttle,
    /// Identifies this run's stream of sequence numbers (its start time, ms): a client
    /// resuming with another epoch is talking about another run, and gets a snapshot.
    epoch: u64,
    /// One per `/ws` client: [`LiveConfig::max_clients`] of them.
    client_slots: Arc<Semaphore>,
    /// The pages allowed to open `/ws`.
    origins: AllowedOrigins,
    /// Snapshots of the current sequence number, by filter: built once, shared by every
    /// client starting with the same filter.
    snapshots: Mutex<feed::Snapshots>,
    /// The GTFS-realtime feeds, each as built for the latest sequence number asked.
    realtime: Mutex<realtime::Built>,
    /// Each vehicle's GTFS-realtime entities as last encoded.
    encoded: Mutex<realtime::Encoded>,
    /// The predictions sampled and what came of them.
    predictor: Arc<Mutex<streamcity_realtime::predict::Predictor>>,
    /// Where operators' actions go to be published, when this dashboard takes them.
    publisher: Mutex<Option<tokio::sync::mpsc::Sender<actions::Publish>>>,
    /// Who may read and write.
    access: crate::auth::Access,
    /// Records read from the bus, counted for the events-per-second series.
    events: AtomicU64,
    /// The last hour's figures and the vehicles' trails along their lines.
    series: Mutex<series::Series>,
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
fn input_topics(t: &Topics) -> [&Arc<str>; 7] {
    [
        &t.live_vehicle_table,
        &t.alerts,
        &t.rider_tapped_on,
        &t.traffic_incidents,
        &t.city_incidents,
        &t.network,
        &t.alert_actions,
    ]
}

impl Live {
    /// An empty live state for `network`, fed from `topics`.
    pub fn new(network: Arc<Network>, topics: Topics, config: LiveConfig) -> Self {
        let (deltas, _) = broadcast::channel(config.client_queue.max(1));
        let metrics = Metrics::new();
        let records_in = input_topics(&topics).map(|topic| metrics.records_in(topic));
        let predictor = Arc::new(Mutex::new(
            streamcity_realtime::predict::Predictor::default(),
        ));
        metrics.add_source(realtime::accuracy_samples(Arc::clone(&predictor)));
        Live {
            routes_json: queries::routes_json(&network),
            stops_json: queries::stops_json(&network),
            metrics,
            records_in,
            network,
            config,
            topics,
            state: RwLock::new(State::default()),
            deltas,
            closing: CancellationToken::new(),
            skipped_log: streamcity_core::throttle::Throttle::new(std::time::Duration::from_secs(
                10,
            )),
            epoch: streamcity_core::clock::wall_clock_ms().max(0) as u64,
            client_slots: Arc::new(Semaphore::new(config.max_clients)),
            origins: AllowedOrigins::same_origin(),
            snapshots: Mutex::default(),
            realtime: Mutex::default(),
            encoded: Mutex::default(),
            predictor,
            publisher: Mutex::default(),
            access: crate::auth::Access::default(),
            events: AtomicU64::new(0),
            series: Mutex::default(),
        }
    }

    /// The same, with `/ws` open to pages from `origins` besides the dashboard's own.
    pub fn with_allowed_origins(mut self, origins: AllowedOrigins) -> Self {
        self.origins = origins;
        self
    }

    /// The same, with `access` deciding who may read and write.
    pub fn with_access(mut self, access: crate::auth::Access) -> Self {
        self.access = access;
        self
    }

    /// Who may read and write.
    pub fn access(&self) -> &crate::auth::Access {
        &self.access
    }

    /// Whether alert `id` is active.
    pub fn alert_is_active(&self, id: &str) -> bool {
        self.read().views.active.contains_key(id)
    }

    /// The pages allowed to open `/ws`.
    pub fn allowed_origins(&self) -> &AllowedOrigins {
        &self.origins
    }

    /// A `/ws` client's slot, held for as long as it is connected; `None` when
    /// [`LiveConfig::max_clients`] are connected.
    pub fn client_slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.client_slots).try_acquire_owned().ok()
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
    pub fn inputs(&self) -> [&Arc<str>; 7] {
        input_topics(&self.topics)
    }

    /// This run's epoch: snapshots carry it, and a resume must name it.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Vehicles in the table.
    pub fn vehicle_count(&self) -> usize {
        self.read().views.vehicles.len()
    }
}

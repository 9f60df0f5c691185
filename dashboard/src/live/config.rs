//! The dashboard's settings.

use std::time::Duration;

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
    /// A send that takes longer than this closes the client: a client that has not
    /// read its snapshot (or a delta) within it is cut off, and what it held is freed.
    pub send_timeout: Duration,
    /// WebSocket clients at most; one more is answered `503 Service Unavailable`.
    pub max_clients: usize,
    /// How often the charts' figures and the vehicles' places along their lines are
    /// sampled (wall time; `GET /api/series`, `GET /api/lines/{route_id}`).
    pub series_every: Duration,
    /// Samples kept: with `series_every`, how far back the charts go (360 × 10 s: an
    /// hour).
    pub series_points: usize,
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
            max_clients: 10_000,
            series_every: Duration::from_secs(10),
            series_points: 360,
        }
    }
}

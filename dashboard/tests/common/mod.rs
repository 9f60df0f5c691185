//! What the dashboard's integration tests share: a server on an ephemeral port, fed
//! records directly (no simulation), and clients whose every wait has a deadline.

#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use streamcity_core::*;
use streamcity_dashboard::{AllowedOrigins, Live, LiveConfig, ServerLimits};
use streamcity_network::{SyntheticConfig, synthetic};
use tokio_tungstenite::tungstenite::Message;

pub const T0: i64 = 1_763_884_800_000;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Server {
    pub live: Arc<Live>,
    pub addr: std::net::SocketAddr,
    pub topics: Topics,
    /// Stops the server when dropped.
    _stop: StopOnDrop,
}

/// A dashboard with `config` and the default HTTP limits.
pub async fn server(config: LiveConfig) -> Server {
    server_with(
        config,
        ServerLimits::default(),
        AllowedOrigins::same_origin(),
    )
    .await
}

/// A dashboard with `config`, `limits` and `origins`, served as `streamcity` serves it.
pub async fn server_with(
    config: LiveConfig,
    limits: ServerLimits,
    origins: AllowedOrigins,
) -> Server {
    let city = Arc::new(synthetic::generate(SyntheticConfig::default()));
    let topics = Topics::default();
    let live = Arc::new(Live::new(city, topics.clone(), config).with_allowed_origins(origins));
    let stop = CancellationToken::new();
    let addr = serve_on_free_port(&live, limits, &stop).await;
    Server {
        live,
        addr,
        topics,
        _stop: StopOnDrop(stop),
    }
}

/// Serves `live` on a free loopback port until `stop`; returns where.
pub async fn serve_on_free_port(
    live: &Arc<Live>,
    limits: ServerLimits,
    stop: &CancellationToken,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(streamcity_dashboard::serve(
        listener,
        Arc::clone(live),
        limits,
        stop.clone(),
    ));
    addr
}

/// Cancels its token when dropped: the server goes with the test.
pub struct StopOnDrop(pub CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

pub fn position(id: &str, route: &str, lat: f64, lon: f64, ts: i64) -> VehiclePosition {
    VehiclePosition {
        vehicle_id: id.into(),
        route_id: route.into(),
        trip_id: format!("{id}-T1").into(),
        timestamp: ts,
        lat,
        lon,
        bearing: 0.0,
        speed_mps: 5.0,
        next_stop_id: "S0001".into(),
        passengers: 10,
        capacity: 80,
        occupancy_status: OccupancyStatus::ManySeatsAvailable,
        delay_s: 0,
        status: VehicleStatus::InTransitTo,
        start_date: None,
        start_time: None,
        boarded: None,
    }
}

impl Server {
    pub fn vehicle(&self, id: &str, route: &str, lat: f64, lon: f64, ts: i64) {
        let p = position(id, route, lat, lon, ts);
        self.live.apply(&Record::new(
            &self.topics.live_vehicle_table,
            id.to_owned(),
            encode(&p),
            ts,
        ));
    }

    pub fn alert(&self, id: &str, kind: AlertKind, state: AlertState, at: Option<(f64, f64)>) {
        let a = Alert {
            alert_id: id.into(),
            kind,
            state,
            severity: Severity::Moderate,
            subject_kind: SubjectKind::Vehicle,
            subject_id: "V1".into(),
            lat: at.map(|p| p.0),
            lon: at.map(|p| p.1),
            window_start: T0,
            window_end: T0,
            raised_at: T0,
            timestamp: T0,
            message: "test".into(),
            action: String::new(),
            evidence: Default::default(),
            acknowledged: None,
            muted_until: None,
        };
        self.live.apply(&Record::new(
            &self.topics.alerts,
            id.to_owned(),
            encode(&a),
            T0,
        ));
    }

    /// A `/ws` client (within 10 s).
    pub async fn connect(&self, query: &str) -> Socket {
        within(10, "connecting to /ws", async {
            tokio_tungstenite::connect_async(format!("ws://{}/ws{query}", self.addr)).await
        })
        .await
        .unwrap()
        .0
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, body, _) = http(self.addr, "GET", path, None, None).await;
        (status, body)
    }
}

pub fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// The next JSON message (a close as `{"type":"close","code":..}`), within 5 s.
pub async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .unwrap()
            .unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(f) => {
                return json!({ "type": "close", "code": f.map(|f| u16::from(f.code)) });
            }
            _ => {}
        }
    }
}

pub fn ids(v: &Value, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x["vehicle_id"]
                .as_str()
                .or(x["alert_id"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// `work`, or a failure naming `what` after `seconds`.
pub async fn within<T>(seconds: u64, what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), work)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {seconds} s"))
}

/// One HTTP/1.1 request over a plain TCP connection (no client library needed), with an
/// optional bearer token and JSON body: (status, body as JSON or text, headers). A
/// server that never answers fails the test within 20 s instead of hanging it.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {path} within 20 s"))
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    let status: u16 = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
        head.to_owned(),
    )
}

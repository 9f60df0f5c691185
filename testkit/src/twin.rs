//! The twin as a server process (the `streamcity` binary) for the benchmarks, and real
//! WebSocket clients on loopback measuring what they receive: messages, vehicle
//! updates, and the latency from each update's creation (its report's timestamp) to its
//! receipt.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// A running twin; killed when dropped.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT` of its dashboard.
    pub addr: String,
}

impl Server {
    /// Starts `BIN --port 0 ARGS...` (`BIN` the `streamcity` binary) and waits until it
    /// says where it listens.
    pub fn start(bin: &str, args: &[&str]) -> Server {
        let mut child = Command::new(bin)
            .args(["--port", "0"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the streamcity binary starts");
        let (port, _) = crate::stage::dashboard_port(&mut child);
        Server {
            child,
            addr: format!("127.0.0.1:{port}"),
        }
    }

    /// Its resident set size, KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// The sum of every sample of `name` on its `/metrics` page.
    pub fn metric(&self, name: &str) -> f64 {
        let port = self
            .addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        let (_, page) = crate::stage::http_get(port, "/metrics");
        crate::stage::metric(&page, name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the clients received over one measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measured {
    /// Clients asked for.
    pub clients: usize,
    /// Clients that connected.
    pub connected: usize,
    /// Length of the measurement, s.
    pub seconds: f64,
    /// Events the twin's processor took in per second meanwhile.
    pub events_per_s: f64,
    /// Messages received per second, all clients.
    pub messages_per_s: f64,
    /// Vehicle updates delivered per second, all clients.
    pub updates_per_s: f64,
    /// Megabytes received per second, all clients.
    pub mb_per_s: f64,
    /// Latency from an update's creation to its receipt, ms: median.
    pub p50_ms: u32,
    /// 99th percentile, ms.
    pub p99_ms: u32,
    /// Worst, ms.
    pub max_ms: u32,
    /// The server's resident memory with the clients connected, MiB.
    pub server_rss_mib: f64,
    /// The server's resident memory per client (with them, less before), KiB.
    pub server_kib_per_client: f64,
    /// Clients the server closed.
    pub closed: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a client reads of a message.
#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    vehicles: Vec<Stamp>,
}

/// What a client reads of a vehicle update: its report's time.
#[derive(serde::Deserialize)]
struct Stamp {
    timestamp: i64,
}

#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    bytes: AtomicU64,
    closed: AtomicU64,
    /// Vehicle updates seen by the sampled clients.
    sampled_updates: AtomicU64,
}

/// Connects `clients` WebSocket clients to `server`, lets them settle, then counts what
/// they receive for `seconds`. One client in `sample_every` parses every message for
/// its vehicle updates and their latency; the others only count.
pub async fn measure(
    server: &Server,
    clients: usize,
    seconds: f64,
    sample_every: usize,
) -> Measured {
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Vec::<u32>::with_capacity(1 << 20)));
    let measuring = Arc::new(AtomicBool::new(false));
    let handshakes = Arc::new(Semaphore::new(200));
    let connected = Arc::new(AtomicU64::new(0));
    let rss_before = server.rss_kib();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let url = format!("ws://{}/ws", server.addr);
        let (counters, latencies, measuring, handshakes, connected) = (
            Arc::clone(&counters),
            Arc::clone(&latencies),
            Arc::clone(&measuring),
            Arc::clone(&handshakes),
            Arc::clone(&connected),
        );
        tasks.push(tokio::spawn(async move {
            let permit = handshakes.acquire_owned().await.ok();
            let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
                return;
            };
            drop(permit);
            connected.fetch_add(1, Ordering::Relaxed);
            let sampled = i % sample_every.max(1) == 0;
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else {
                    if matches!(msg, Message::Close(_)) {
                        counters.closed.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                };
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                counters.messages.fetch_add(1, Ordering::Relaxed);
                counters
                    .bytes
                    .fetch_add(text.len() as u64, Ordering::Relaxed);
                if !sampled {
                    continue;
                }
                let received = now_ms();
                // Only the type and the vehicles' timestamps are read: the clients
                // share the machine with the server, so they parse as little as they can.
                let Ok(delta) = serde_json::from_str::<Delta>(&text) else {
                    continue;
                };
                if delta.kind != "delta" {
                    continue;
                }
                counters
                    .sampled_updates
                    .fetch_add(delta.vehicles.len() as u64, Ordering::Relaxed);
                let mut l = latencies.lock().await;
                for vehicle in delta.vehicles {
                    l.push((received - vehicle.timestamp).max(0) as u32);
                }
            }
        }));
    }
    // Wait for the connections, then a moment to settle.
    let deadline = Instant::now() + Duration::from_secs(120);
    while (connected.load(Ordering::Relaxed) as usize) < clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server.rss_kib();
    let events_before = server.metric("streamcity_processor_records_in_total");
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let events = server.metric("streamcity_processor_records_in_total") - events_before;
    for t in &tasks {
        t.abort();
    }
    let connected = connected.load(Ordering::Relaxed) as usize;
    let sampled_clients = connected.div_ceil(sample_every.max(1)).max(1);
    let mut l = std::mem::take(&mut *latencies.lock().await);
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Measured {
        clients,
        connected,
        seconds: elapsed,
        events_per_s: events / elapsed,
        messages_per_s: counters.messages.load(Ordering::Relaxed) as f64 / elapsed,
        updates_per_s: counters.sampled_updates.load(Ordering::Relaxed) as f64
            / elapsed
            / sampled_clients as f64
            * connected as f64,
        mb_per_s: counters.bytes.load(Ordering::Relaxed) as f64 / elapsed / 1e6,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: l.last().copied().unwrap_or(0),
        server_rss_mib: rss_after as f64 / 1024.0,
        server_kib_per_client: rss_after.saturating_sub(rss_before) as f64
            / connected.max(1) as f64,
        closed: counters.closed.load(Ordering::Relaxed),
    }
}

/// Vehicles in a snapshot from `/ws` on `127.0.0.1:port` once at least 200 are in
/// (trying for up to 15 s), after checking that deltas follow: the picture is live.
/// Every wait has a deadline.
pub async fn live_vehicles(port: &str) -> usize {
    let mut vehicles = 0;
    for _ in 0..30 {
        let url = format!("ws://127.0.0.1:{port}/ws");
        let (mut ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .expect("the dashboard accepts within 10 s")
        .expect("a WebSocket");
        let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await
        else {
            panic!("no snapshot within 10 s")
        };
        let snap: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(snap["type"], "snapshot");
        vehicles = snap["vehicles"].as_array().map_or(0, Vec::len);
        if vehicles >= 200 {
            let Ok(Some(Ok(Message::Text(text)))) =
                tokio::time::timeout(Duration::from_secs(10), ws.next()).await
            else {
                panic!("no delta within 10 s")
            };
            let delta: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(delta["type"], "delta");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    vehicles
}

/// The value after `name` on the command line, parsed.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
}

/// A comma-separated list after `name` on the command line.
pub fn list<T: std::str::FromStr>(args: &[String], name: &str) -> Option<Vec<T>> {
    let text: String = arg(args, name)?;
    Some(
        text.split(',')
            .filter_map(|v| v.trim().parse().ok())
            .collect(),
    )
}

/// A runtime for the clients, with room for many sockets.
pub fn runtime() -> tokio::runtime::Runtime {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("could not raise the open-file limit: {e}");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

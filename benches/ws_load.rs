//! WebSocket fan-out under load: N real clients on loopback against a real server
//! process (the `streamcity` binary, the embedded twin). Reports delivered vehicle
//! updates per second, the latency from an event's creation (the vehicle report's
//! timestamp) to its receipt by a client (p50, p99, max), and the server's memory per
//! client (its resident set size with the clients connected, less before).
//!
//! `cargo bench --bench ws_load -- --clients 1000,10000 --seconds 10`
//! `--quick` (what `cargo test --benches` would use): 50 clients for 2 s.
//!
//! The clients share the machine with the server: on 2 cores, the numbers are what
//! one machine does with both ends of every connection.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    bytes: AtomicU64,
    closed: AtomicU64,
    /// Vehicle updates seen by the sampled clients.
    sampled_updates: AtomicU64,
}

struct Run {
    clients: usize,
    connected: usize,
    seconds: f64,
    messages_per_s: f64,
    updates_per_s: f64,
    mb_per_s: f64,
    p50: u32,
    p99: u32,
    max: u32,
    kib_per_client: f64,
    closed: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn start_server(vehicles: u32) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamcity"))
        .args(["--port", "0", "--vehicles", &vehicles.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the streamcity binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the server says where it listens");
    let port = line
        .split("localhost:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("a port")
        .to_owned();
    (child, format!("127.0.0.1:{port}"))
}

async fn run(addr: &str, pid: u32, clients: usize, seconds: f64, sample_every: usize) -> Run {
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Vec::<u32>::with_capacity(1 << 20)));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handshakes = Arc::new(Semaphore::new(200));
    let rss_before = rss_kib(pid);
    let mut tasks = Vec::with_capacity(clients);
    let connected = Arc::new(AtomicU64::new(0));
    for i in 0..clients {
        let url = format!("ws://{addr}/ws");
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
            let sampled = i % sample_every == 0;
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
                if sampled {
                    let received = now_ms();
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                        continue;
                    };
                    if v["type"] != "delta" {
                        continue;
                    }
                    let vehicles = v["vehicles"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                    counters
                        .sampled_updates
                        .fetch_add(vehicles.len() as u64, Ordering::Relaxed);
                    let mut l = latencies.lock().await;
                    for vehicle in vehicles {
                        if let Some(ts) = vehicle["timestamp"].as_i64() {
                            l.push((received - ts).max(0) as u32);
                        }
                    }
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
    let rss_after = rss_kib(pid);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for t in &tasks {
        t.abort();
    }
    let connected = connected.load(Ordering::Relaxed) as usize;
    let sampled_clients = connected.div_ceil(sample_every).max(1);
    let mut l = std::mem::take(&mut *latencies.lock().await);
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Run {
        clients,
        connected,
        seconds: elapsed,
        messages_per_s: counters.messages.load(Ordering::Relaxed) as f64 / elapsed,
        updates_per_s: counters.sampled_updates.load(Ordering::Relaxed) as f64
            / elapsed
            / sampled_clients as f64
            * connected as f64,
        mb_per_s: counters.bytes.load(Ordering::Relaxed) as f64 / elapsed / 1e6,
        p50: pct(0.50),
        p99: pct(0.99),
        max: l.last().copied().unwrap_or(0),
        kib_per_client: rss_after.saturating_sub(rss_before) as f64 / connected.max(1) as f64,
        closed: counters.closed.load(Ordering::Relaxed),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = args.iter().any(|a| a == "--quick" || a == "--test");
    let clients: Vec<usize> = match value("--clients") {
        Some(list) => list
            .split(',')
            .filter_map(|c| c.trim().parse().ok())
            .collect(),
        None if quick => vec![50],
        None => vec![1_000, 10_000],
    };
    let seconds: f64 = value("--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 2.0 } else { 10.0 });
    let vehicles: u32 = value("--vehicles")
        .and_then(|s| s.parse().ok())
        .unwrap_or(240);
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("could not raise the open-file limit: {e}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "| clients | connected | messages/s | vehicle updates/s | MB/s | p50 ms | p99 ms | max ms | server KiB/client | closed by server |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in clients {
        let (mut server, addr) = start_server(vehicles);
        std::thread::sleep(Duration::from_secs(2));
        let sample_every = (n / 50).max(1);
        let r = rt.block_on(run(&addr, server.id(), n, seconds, sample_every));
        let _ = server.kill();
        let _ = server.wait();
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {:.1} | {} |",
            r.clients,
            r.connected,
            r.messages_per_s,
            r.updates_per_s,
            r.mb_per_s,
            r.p50,
            r.p99,
            r.max,
            r.kib_per_client,
            r.closed
        );
        let _ = r.seconds;
        std::thread::sleep(Duration::from_secs(1));
    }
}

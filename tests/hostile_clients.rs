//! The twin (the `streamcity` binary, 10,000 vehicles) against clients that connect to
//! `/ws` and never read, and a flood of connections beyond the cap: its memory stays
//! bounded, an honest client keeps receiving its deltas, and the flood is answered 503.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use streamcity_testkit::twin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Non-reading clients.
const SILENT: usize = 1000;
/// Memory the silent clients may cost the server at most, MiB (the goal: under
/// 300 MB above the idle level).
const BOUND_MIB: u64 = 286;

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A WebSocket upgrade that is never read from again.
async fn silent_client(addr: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(UPGRADE.as_bytes()).await.unwrap();
    tcp
}

/// The status line's code of what the server answers an upgrade, read within 10 s.
async fn upgrade_status(addr: &str) -> u16 {
    let mut tcp = silent_client(addr).await;
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut head))
        .await
        .expect("an answer to the upgrade within 10 s")
        .unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

/// The highest resident size of the server over `period`, sampled every 100 ms, KiB.
async fn peak_rss(server: &twin::Server, period: Duration) -> u64 {
    let until = Instant::now() + period;
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(server.rss_kib());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_that_never_read_cost_bounded_memory_and_slow_no_one() {
    let cap = (SILENT + 1).to_string();
    let server = twin::Server::start(
        env!("CARGO_BIN_EXE_streamcity"),
        &["--vehicles", "10000", "--max-clients", &cap],
    );
    let addr = server.addr.clone();

    // An honest client, counting the deltas it receives.
    let deltas = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    let (mut observer, _) = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("the observer connects within 20 s")
    .unwrap();
    let reader = {
        let (deltas, closed) = (Arc::clone(&deltas), Arc::clone(&closed));
        tokio::spawn(async move {
            while let Some(Ok(msg)) = observer.next().await {
                match msg {
                    Message::Text(t) if t.as_str().starts_with("{\"type\":\"delta\"") => {
                        deltas.fetch_add(1, Ordering::Relaxed);
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            closed.store(true, Ordering::Relaxed);
        })
    };
    let rate = |seconds: u64| {
        let deltas = Arc::clone(&deltas);
        async move {
            let before = deltas.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            (deltas.load(Ordering::Relaxed) - before) as f64 / seconds as f64
        }
    };

    // The idle level: the whole fleet on the map and the server's delta history full
    // (the last 64 MiB of deltas), no other client.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let idle_peak = peak_rss(&server, Duration::from_secs(5)).await;
    let idle_rate = rate(5).await;
    assert!(idle_rate > 0.0, "the observer receives deltas");

    // A thousand clients that ask for the live feed and never read a byte.
    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        silent.push(silent_client(&addr).await);
    }
    // Every slot taken (the server has handled every upgrade)...
    let full = (SILENT + 1) as f64;
    let mut connected = 0.0;
    for _ in 0..100 {
        connected = server.metric("streamcity_ws_clients");
        if connected >= full {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(connected, full, "every client connected within 10 s");
    // ... a flood beyond the cap, while the silent ones hold their slots: each is refused
    // with 503 at once, and the server answers everyone else meanwhile.
    let flood = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut refused = 0;
            for _ in 0..200 {
                if upgrade_status(&addr).await == 503 {
                    refused += 1;
                }
            }
            let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
            let (health, _) = tokio::task::spawn_blocking(move || {
                streamcity_testkit::stage::http_get(port, "/healthz")
            })
            .await
            .unwrap();
            (refused, health)
        }
    });
    // Measured while their snapshots and deltas pile up, until the server cuts them
    // off (a send blocked for 10 s).
    let measuring = tokio::spawn(rate(15));
    let loaded_peak = peak_rss(&server, Duration::from_secs(15)).await;
    let loaded_rate = measuring.await.unwrap();
    let (refused, health) = flood.await.unwrap();

    // The server cuts the silent ones off by itself (their close frames cannot even be
    // queued), well before they go.
    let mut too_slow = 0.0;
    for _ in 0..60 {
        too_slow = server.metric("streamcity_ws_closed_total");
        if too_slow >= SILENT as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop(silent);

    let growth_mib = loaded_peak.saturating_sub(idle_peak) / 1024;
    eprintln!(
        "idle peak {} MiB, with {SILENT} silent clients {} MiB (+{growth_mib} MiB, {:.0} KiB a client); observer deltas/s {idle_rate:.1} idle, {loaded_rate:.1} loaded; {refused}/200 refused; {too_slow} closed by the server",
        idle_peak / 1024,
        loaded_peak / 1024,
        (loaded_peak.saturating_sub(idle_peak)) as f64 / SILENT as f64,
    );
    assert!(
        growth_mib < BOUND_MIB,
        "{SILENT} silent clients cost {growth_mib} MiB (bound {BOUND_MIB} MiB)"
    );
    assert!(
        loaded_rate >= idle_rate * 0.5,
        "the observer slowed down: {loaded_rate:.1} deltas/s against {idle_rate:.1} before"
    );
    assert!(!closed.load(Ordering::Relaxed), "the observer was closed");
    // Every flood connection was refused: the silent ones still held their slots.
    assert_eq!(refused, 200, "connections over the cap answered 503");
    assert_eq!(health, 200);
    assert_eq!(
        too_slow, SILENT as f64,
        "the silent clients were not all cut off"
    );
    reader.abort();
}

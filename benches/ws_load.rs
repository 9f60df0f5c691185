//! WebSocket fan-out under load: N real clients on loopback against a real server
//! process (the `streamcity` binary, the embedded twin). Reports delivered vehicle
//! updates per second, the latency from an event's creation (the vehicle report's
//! timestamp) to its receipt by a client (p50, p99, max), and the server's memory per
//! client (its resident set size with the clients connected, less before).
//!
//! `cargo bench --bench ws_load -- --clients 1000,10000 --seconds 10`
//! `--quick`: 50 clients for 2 s, the CI smoke run. Results go to stdout and to
//! `target/benchmarks/ws_load.json`.
//!
//! The clients share the machine with the server: on 2 cores, the numbers are what
//! one machine does with both ends of every connection.

#![allow(clippy::unwrap_used)] // a benchmark: any failure should stop it loudly

use std::time::Duration;

use streamcity_testkit::results;
use streamcity_testkit::twin;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick" || a == "--test");
    let clients: Vec<usize> = twin::list(&args, "--clients").unwrap_or(if quick {
        vec![50]
    } else {
        vec![1_000, 10_000]
    });
    let seconds: f64 = twin::arg(&args, "--seconds").unwrap_or(if quick { 2.0 } else { 10.0 });
    let vehicles: u32 = twin::arg(&args, "--vehicles").unwrap_or(240);
    let rt = twin::runtime();
    println!(
        "| clients | connected | messages/s | vehicle updates/s | MB/s | p50 ms | p99 ms | max ms | server KiB/client | closed by server |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut runs = Vec::new();
    for n in clients {
        let server = twin::Server::start(
            env!("CARGO_BIN_EXE_streamcity"),
            // The load measured, not the client cap.
            &[
                "--vehicles",
                &vehicles.to_string(),
                "--max-clients",
                "100000",
            ],
        );
        std::thread::sleep(Duration::from_secs(2));
        let r = rt.block_on(twin::measure(&server, n, seconds, (n / 50).max(1)));
        drop(server);
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {:.1} | {} |",
            r.clients,
            r.connected,
            r.messages_per_s,
            r.updates_per_s,
            r.mb_per_s,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.server_kib_per_client,
            r.closed
        );
        assert!(r.connected > 0, "no client connected");
        runs.push(r);
        std::thread::sleep(Duration::from_secs(1));
    }
    let rates: serde_json::Map<String, serde_json::Value> = runs
        .iter()
        .map(|r| {
            (
                format!("updates_per_s_{}_clients", r.clients),
                r.updates_per_s.into(),
            )
        })
        .collect();
    results::write_results(
        "ws_load",
        &serde_json::json!({
            "benchmark": "ws_load",
            "vehicles": vehicles,
            "rates": rates,
            "runs": runs,
        }),
    );
}

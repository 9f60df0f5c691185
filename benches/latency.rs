//! End-to-end latency: from an event's creation (a vehicle report's timestamp, taken
//! when the simulator makes it) to a WebSocket client's receipt of the update, through
//! the whole twin: simulator, bus, processor, live table, dashboard, socket. Measured
//! with the twin on the in-memory bus and on Kafka (a tansu broker on loopback), at the
//! fleet sizes that give about 10,000 and 100,000 events per second (each vehicle
//! reports every second), with the dashboard's default 100 ms update interval and with
//! 10 ms and 5 ms ones (`--tick-ms`; the simulator steps every 10 ms, so at 5 ms every
//! step goes out as soon as it has been through the pipeline).
//!
//! `cargo bench --bench latency` (`-- --vehicles 10000,100000 --buses memory,kafka
//! --ticks 100,10,5 --seconds 10 --clients 2`); `--quick`: 1,000 vehicles, both buses,
//! 100 ms, 2 s: the CI smoke run. Results go to stdout and to
//! `target/benchmarks/latency.json`.

#![allow(clippy::unwrap_used)] // a benchmark: any failure should stop it loudly

use std::time::Duration;

use streamcity_testkit::broker;
use streamcity_testkit::results;
use streamcity_testkit::twin;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick" || a == "--test");
    let fleets: Vec<u32> = twin::list(&args, "--vehicles").unwrap_or(if quick {
        vec![1_000]
    } else {
        vec![10_000, 100_000]
    });
    let buses: Vec<String> = twin::list(&args, "--buses")
        .unwrap_or_else(|| vec!["memory".to_owned(), "kafka".to_owned()]);
    let ticks: Vec<u64> =
        twin::list(&args, "--ticks").unwrap_or(if quick { vec![100] } else { vec![100, 10, 5] });
    let seconds: f64 = twin::arg(&args, "--seconds").unwrap_or(if quick { 2.0 } else { 10.0 });
    let clients: usize = twin::arg(&args, "--clients").unwrap_or(2);
    let broker = buses
        .iter()
        .any(|b| b == "kafka")
        .then(broker::Broker::start);
    let rt = twin::runtime();
    println!(
        "| bus | vehicles | update interval ms | events/s | p50 ms | p99 ms | max ms | server MiB |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut runs = Vec::new();
    for bus in &buses {
        for &vehicles in &fleets {
            for &tick in &ticks {
                let (fleet, tick_ms) = (vehicles.to_string(), tick.to_string());
                let prefix = format!("lat{}x{vehicles}x{tick}-", std::process::id());
                let mut server_args = vec!["--vehicles", &fleet, "--tick-ms", &tick_ms];
                if bus == "kafka" {
                    let addr = &broker.as_ref().unwrap().addr;
                    server_args.extend([
                        "--bus",
                        "kafka",
                        "--brokers",
                        addr,
                        "--topic-prefix",
                        &prefix,
                    ]);
                } else {
                    server_args.extend(["--bus", "memory"]);
                }
                let server = twin::Server::start(env!("CARGO_BIN_EXE_streamcity"), &server_args);
                // The fleet's first reports, and topics on Kafka.
                std::thread::sleep(Duration::from_secs(3));
                let r = rt.block_on(twin::measure(&server, clients, seconds, 1));
                drop(server);
                assert!(r.connected > 0, "no client connected");
                println!(
                    "| {bus} | {vehicles} | {tick} | {:.0} | {} | {} | {} | {:.0} |",
                    r.events_per_s, r.p50_ms, r.p99_ms, r.max_ms, r.server_rss_mib
                );
                runs.push(serde_json::json!({
                    "bus": bus,
                    "vehicles": vehicles,
                    "tick_ms": tick,
                    "measured": r,
                }));
            }
        }
    }
    drop(broker);
    let rates: serde_json::Map<String, serde_json::Value> = runs
        .iter()
        .map(|r| {
            (
                format!(
                    "events_per_s_{}_{}_{}ms",
                    r["bus"].as_str().unwrap(),
                    r["vehicles"],
                    r["tick_ms"]
                ),
                r["measured"]["events_per_s"].clone(),
            )
        })
        .collect();
    results::write_results(
        "latency",
        &serde_json::json!({
            "benchmark": "latency",
            "clients": clients,
            "seconds": seconds,
            "rates": rates,
            "runs": runs,
        }),
    );
}

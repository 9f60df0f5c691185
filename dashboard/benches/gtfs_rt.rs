//! GTFS-realtime at scale: how long the three feeds take to build for 5,000 vehicles
//! in service, and how many requests a second the server answers with a built feed.
//!
//! The vehicles run trips of the Cairns feed (`STREAMCITY_TEST_CAIRNS`, which
//! `scripts/test.sh` fetches), many on each trip, each at a call of its trip with a
//! delay, with 100 incidents in force. A feed is built after every change of the live
//! views (here, forced by a new report each time); a poller then gets the built bytes.
//! Requests come from plain HTTP/1.1 keep-alive clients on loopback, one thread each.
//!
//! `cargo bench -p streamcity-dashboard --bench gtfs_rt` (`-- --quick`: fewer rounds,
//! the CI smoke run). Results go to stdout and `target/benchmarks/gtfs_rt.json`.

#![allow(clippy::unwrap_used)] // a benchmark: any failure should stop it loudly

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use streamcity_core::{
    IncidentStatus, OccupancyStatus, Record, Severity, Topics, TrafficIncident,
    TrafficIncidentKind, VehiclePosition, VehicleStatus, encode,
};
use streamcity_dashboard::live::RealtimeFeed;
use streamcity_dashboard::{Live, LiveConfig, ServerLimits};
use streamcity_network::{Date, Network, gtfs};
use streamcity_testkit::results;

const VEHICLES: usize = 5_000;

fn reports(network: &Network, at_ms: i64) -> Vec<VehiclePosition> {
    let day = Date::from_ymd(2014, 6, 2);
    let trips = network.trips_on(day);
    (0..VEHICLES)
        .map(|i| {
            let trip = &network.trips[trips[i % trips.len()]];
            let k = (i * 7) % trip.stop_times.len();
            let stop = network.stop(&trip.stop_times[k].stop_id).unwrap();
            // Each vehicle on a run of its own: the day's 622 trips, each run several
            // times a few seconds apart (a city of 5,000 vehicles has 5,000 runs).
            let s = trip.start_s() + (i / trips.len()) as u32;
            VehiclePosition {
                vehicle_id: format!("V{i:05}").into(),
                route_id: trip.route_id.clone(),
                trip_id: trip.trip_id.clone(),
                timestamp: at_ms,
                lat: stop.lat,
                lon: stop.lon,
                bearing: 90.0,
                speed_mps: 8.0,
                next_stop_id: stop.stop_id.clone(),
                passengers: (i % 80) as u32,
                capacity: 80,
                occupancy_status: OccupancyStatus::from_load((i % 80) as u32, 80),
                delay_s: (i % 600) as i32 - 120,
                status: VehicleStatus::InTransitTo,
                start_date: Some("20140602".into()),
                start_time: Some(streamcity_network::calendar::service_time(s).into()),
                boarded: None,
            }
        })
        .collect()
}

/// Requests per second `clients` keep-alive clients get from `path` for `seconds`.
fn load(port: u16, path: &str, clients: usize, seconds: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (done, path) = (Arc::clone(&done), path.to_owned());
            std::thread::spawn(move || {
                let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                // One write per request, sent at once (no Nagle wait for an ACK).
                stream.set_nodelay(true).unwrap();
                let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                let mut body = Vec::new();
                while Instant::now() < until {
                    writer.write_all(request.as_bytes()).unwrap();
                    let mut length = 0;
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    body.resize(length, 0);
                    reader.read_exact(&mut body).unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / seconds
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick" || a == "--test");
    let feed = std::env::var("STREAMCITY_TEST_CAIRNS")
        .expect("STREAMCITY_TEST_CAIRNS names the Cairns GTFS feed (scripts/test.sh fetches it)");
    let network = Arc::new(gtfs::load(std::path::Path::new(&feed)).unwrap().network);
    let topics = Topics::default();
    let live = Arc::new(Live::new(
        Arc::clone(&network),
        topics.clone(),
        LiveConfig::default(),
    ));
    let t0 = network.local_time_ms(Date::from_ymd(2014, 6, 2), 8 * 3600);
    for p in reports(&network, t0) {
        live.apply(&Record::new(
            &topics.live_vehicle_table,
            p.vehicle_id.to_string(),
            encode(&p),
            t0,
        ));
    }
    for i in 0..100 {
        let t = TrafficIncident {
            incident_id: format!("TI-{i:04}").into(),
            kind: TrafficIncidentKind::Congestion,
            status: IncidentStatus::Active,
            lat: network.stops[i * 3 % network.stops.len()].lat,
            lon: network.stops[i * 3 % network.stops.len()].lon,
            radius_m: 300.0,
            severity: Severity::Moderate,
            speed_factor: 0.5,
            started_at: t0,
            expected_end: t0 + 3_600_000,
            timestamp: t0,
        };
        live.apply(&Record::new(
            &topics.traffic_incidents,
            t.incident_id.to_string(),
            encode(&t),
            t0,
        ));
    }
    live.tick();

    // Building: each round a new report changes the views, and the three feeds are
    // built anew.
    let rounds = if quick { 5 } else { 50 };
    let mut build_ms = Vec::new();
    let mut sizes = [0usize; 3];
    for round in 0..rounds {
        let mut p = reports(&network, t0 + 1_000 * (round + 1) as i64).swap_remove(round);
        p.timestamp = t0 + 1_000 * (round + 1) as i64;
        live.apply(&Record::new(
            &topics.live_vehicle_table,
            p.vehicle_id.to_string(),
            encode(&p),
            p.timestamp,
        ));
        live.tick();
        // Asking for one builds all three, together (from one state of the views).
        let started = Instant::now();
        sizes[1] = live.realtime(RealtimeFeed::TripUpdates).protobuf.len();
        build_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        sizes[0] = live.realtime(RealtimeFeed::VehiclePositions).protobuf.len();
        sizes[2] = live.realtime(RealtimeFeed::Alerts).protobuf.len();
    }
    build_ms.sort_by(f64::total_cmp);
    let median = build_ms[build_ms.len() / 2];
    let worst = build_ms[build_ms.len() - 1];
    println!(
        "three feeds for {VEHICLES} vehicles and 100 incidents, built together: median {median:.1} ms, worst {worst:.1} ms ({} / {} / {} bytes of vehicle positions / trip updates / alerts)",
        sizes[0], sizes[1], sizes[2]
    );
    // Every vehicle reported since the last build (a cold start, or incidents that
    // change every entity), and a tenth of them (a live twin at speed 1 rebuilding ten
    // times a second while each vehicle reports every second).
    let rebuild_ms = |share: usize, round: i64| {
        let t = t0 + 100_000 + round * 1_000;
        for (i, mut p) in reports(&network, t).into_iter().enumerate() {
            if i % share == 0 {
                p.timestamp = t;
                live.apply(&Record::new(
                    &topics.live_vehicle_table,
                    p.vehicle_id.to_string(),
                    encode(&p),
                    t,
                ));
            }
        }
        live.tick();
        let started = Instant::now();
        std::hint::black_box(live.realtime(RealtimeFeed::TripUpdates));
        started.elapsed().as_secs_f64() * 1000.0
    };
    let median_of = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let tries = if quick { 3 } else { 11 };
    let all_ms = median_of((0..tries).map(|r| rebuild_ms(1, r)).collect());
    let tenth_ms = median_of((0..tries).map(|r| rebuild_ms(10, 100 + r)).collect());
    println!(
        "rebuilt after every vehicle reported: median {all_ms:.1} ms; after a tenth did: {tenth_ms:.1} ms"
    );

    // Each alone, on one thread: built and encoded.
    let vehicles = reports(&network, t0);
    let learned = streamcity_realtime::learned::Learned::default();
    let mut alone_ms = [0.0f64; 2];
    for _ in 0..rounds {
        let started = Instant::now();
        let m = streamcity_realtime::vehicle_positions(&network, t0, vehicles.iter(), &[]);
        std::hint::black_box(prost::Message::encode_to_vec(&m));
        alone_ms[0] += started.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
        let started = Instant::now();
        let m = streamcity_realtime::trip_updates(
            &network,
            &learned,
            t0,
            vehicles.iter(),
            &Default::default(),
        );
        std::hint::black_box(prost::Message::encode_to_vec(&m));
        alone_ms[1] += started.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    }
    println!(
        "alone on one thread (mean): vehicle positions {:.1} ms, trip updates {:.1} ms",
        alone_ms[0], alone_ms[1]
    );

    // Serving: the feed is built once; the clients get its bytes.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = streamcity_core::CancellationToken::new();
    runtime.spawn(streamcity_dashboard::serve(
        listener,
        Arc::clone(&live),
        ServerLimits::default(),
        stop.clone(),
    ));
    let seconds = if quick { 1.0 } else { 5.0 };
    let clients = 8;
    let rps = load(port, "/gtfs-rt/vehicle-positions", clients, seconds);
    println!(
        "served /gtfs-rt/vehicle-positions: {rps:.0} requests/s ({clients} keep-alive clients, one server thread)"
    );
    stop.cancel();
    results::write_results(
        "gtfs_rt",
        &json!({
            "benchmark": "gtfs_rt",
            "quick": quick,
            "vehicles": VEHICLES,
            "incidents": 100,
            "build_ms": {"median": median, "worst": worst, "all_reported": all_ms, "tenth_reported": tenth_ms, "alone_vehicle_positions": alone_ms[0], "alone_trip_updates": alone_ms[1]},
            "bytes": {"vehicle_positions": sizes[0], "trip_updates": sizes[1], "alerts": sizes[2]},
            "rates": {"requests_per_s": rps},
        }),
    );
}

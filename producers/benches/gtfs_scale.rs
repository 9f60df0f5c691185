//! GTFS at scale: how long a large feed takes to load and how much memory it holds, and
//! how fast its timetable simulates at the morning peak (simulated seconds per second
//! on one core: the headroom over real time).
//!
//! Feeds: `subway` (about the size of New York's subway: 1,500 stops, 564,000
//! stop_times, on 9,400 trips calling at 60 stops) and `bus` (a bus network of 6,500
//! stops and 1,040,000 stop_times), written by this
//! benchmark as GTFS files; and Cairns (the real feed the tests use) when
//! `STREAMCITY_TEST_CAIRNS` names it. Each load runs in a process of its own (this
//! binary with `--load`), so that its peak resident memory is the load's alone.
//!
//! `cargo bench -p streamcity-producers --bench gtfs_scale` for the full run;
//! `-- --quick` (the CI smoke run) with feeds a tenth of the size and a shorter run.
//! Results go to stdout and `target/benchmarks/gtfs_scale.json`.

#![allow(clippy::unwrap_used)] // a benchmark: any failure should stop it loudly

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use streamcity_network::{Date, Network, gtfs};
use streamcity_producers::{SimConfig, Simulation};
use streamcity_testkit::alloc::{Counting, live_bytes};
use streamcity_testkit::results;

#[global_allocator]
static ALLOC: Counting = Counting;

/// A feed to write: a grid of stops crossed by lines, each run by trips both ways
/// through the day, chained into blocks.
struct Spec {
    name: &'static str,
    /// `route_type`: 1 subway, 3 bus.
    route_type: u8,
    lines: usize,
    stops_per_line: usize,
    trips: usize,
}

/// A small deterministic generator (the feed must be the same run after run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes `spec` as a GTFS directory under `dir`; returns its stop_times.
fn write_feed(spec: &Spec, dir: &Path) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Lcg(7);
    let (lat0, lon0) = (40.70, -73.95);
    let mut stops = String::from("stop_id,stop_name,stop_lat,stop_lon\n");
    let mut shapes = String::from("shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\n");
    let mut routes =
        String::from("route_id,agency_id,route_short_name,route_long_name,route_type\n");
    let mut trips = String::from("route_id,service_id,trip_id,direction_id,shape_id,block_id\n");
    let mut times = String::from("trip_id,arrival_time,departure_time,stop_id,stop_sequence\n");
    let hms = streamcity_network::calendar::service_time;
    let mut stop_times = 0;
    let per_line = spec.trips / spec.lines;
    for l in 0..spec.lines {
        // A line crossing a 25 km square, wiggling a little.
        let (a, b) = ((rng.next(), rng.next()), (rng.next(), rng.next()));
        let mut line_stops = Vec::new();
        for k in 0..spec.stops_per_line {
            let t = k as f64 / (spec.stops_per_line - 1) as f64;
            let lat = lat0 + 0.22 * (a.0 + (b.0 - a.0) * t) + 0.002 * (rng.next() - 0.5);
            let lon = lon0 + 0.29 * (a.1 + (b.1 - a.1) * t) + 0.002 * (rng.next() - 0.5);
            let id = format!("L{l}S{k}");
            writeln!(stops, "{id},Line {l} stop {k},{lat:.6},{lon:.6}").unwrap();
            line_stops.push((id, lat, lon));
        }
        writeln!(routes, "R{l},A,{l},Line {l},{}", spec.route_type).unwrap();
        for (dir, tag) in [(0, "out"), (1, "in")] {
            let ordered: Vec<&(String, f64, f64)> = if dir == 0 {
                line_stops.iter().collect()
            } else {
                line_stops.iter().rev().collect()
            };
            let mut seq = 1;
            for w in ordered.windows(2) {
                for j in 0..4 {
                    let f = j as f64 / 4.0;
                    let (lat, lon) = (
                        w[0].1 + (w[1].1 - w[0].1) * f,
                        w[0].2 + (w[1].2 - w[0].2) * f,
                    );
                    writeln!(shapes, "R{l}{tag},{lat:.6},{lon:.6},{seq}").unwrap();
                    seq += 1;
                }
            }
            let last = ordered[ordered.len() - 1];
            writeln!(shapes, "R{l}{tag},{:.6},{:.6},{seq}", last.1, last.2).unwrap();
        }
        // Trips from 05:00 to 24:00 both ways, every `headway` each way; a block is a
        // vehicle's trip out and the first trip back it can make.
        let run_s = (spec.stops_per_line as u32 - 1) * 90;
        let pairs = (per_line / 2).max(1) as u32;
        let headway = 19 * 3600 / pairs;
        let turn = (run_s + 300).div_ceil(headway.max(1));
        for n in 0..per_line as u32 {
            let (dir, p) = (n % 2, n / 2);
            let start = 5 * 3600 + p * headway;
            let trip = format!("R{l}T{n}");
            let tag = if dir == 0 { "out" } else { "in" };
            let block = match dir {
                0 => format!("R{l}B{p}"),
                _ if p >= turn => format!("R{l}B{}", p - turn),
                _ => format!("R{l}I{p}"),
            };
            writeln!(trips, "R{l},WK,{trip},{dir},R{l}{tag},{block}").unwrap();
            for k in 0..spec.stops_per_line {
                let stop = if dir == 0 {
                    k
                } else {
                    spec.stops_per_line - 1 - k
                };
                let at = start + (k as u32) * 90;
                let leave = if k + 1 < spec.stops_per_line {
                    at + 20
                } else {
                    at
                };
                writeln!(
                    times,
                    "{trip},{},{},L{l}S{stop},{}",
                    hms(at),
                    hms(leave),
                    k + 1
                )
                .unwrap();
                stop_times += 1;
            }
        }
    }
    let files = [
        ("agency.txt", "agency_id,agency_name,agency_url,agency_timezone\nA,Scale Transit,https://example.invalid,America/New_York\n".to_owned()),
        ("calendar.txt", "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\nWK,1,1,1,1,1,0,0,20250101,20251231\n".to_owned()),
        ("stops.txt", stops),
        ("routes.txt", routes),
        ("trips.txt", trips),
        ("stop_times.txt", times),
        ("shapes.txt", shapes),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    stop_times
}

/// Peak resident memory of this process so far, bytes (Linux's VmHWM).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `--load FEED`: loads it and prints `seconds peak_rss_bytes heap_bytes stop_times`.
fn load_only(feed: &Path) {
    let before = live_bytes();
    let started = Instant::now();
    let loaded = gtfs::load(feed).unwrap_or_else(|e| panic!("{}: {e}", feed.display()));
    let seconds = started.elapsed().as_secs_f64();
    let heap = live_bytes() - before;
    let stop_times: usize = loaded
        .network
        .trips
        .iter()
        .map(|t| t.stop_times.len())
        .sum();
    println!("{seconds} {} {heap} {stop_times}", peak_rss());
}

/// Simulated seconds per second of wall time, running `network` for `minutes` from 08:00
/// local time on a weekday of its calendar.
fn sim_speed(network: Arc<Network>, minutes: i64) -> (f64, usize) {
    let (first, _) = network.service_range().unwrap();
    // The first Tuesday on or after the calendar's start.
    let mut day = first;
    while network.trips_on(day).is_empty() || day.weekday().index() != 1 {
        day = Date::from_days(day.days() + 1);
    }
    let start_ms = network.local_time_ms(day, 8 * 3600);
    let mut sim = Simulation::new(
        network,
        SimConfig {
            start_ms,
            ..SimConfig::default()
        },
    );
    let fleet = sim.fleet_size();
    let mut out = Vec::new();
    let ticks = minutes * 60_000 / sim.config().tick_ms;
    let started = Instant::now();
    for _ in 0..ticks {
        sim.step(&mut out);
        out.clear();
    }
    (
        (minutes * 60) as f64 / started.elapsed().as_secs_f64(),
        fleet,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--load") {
        load_only(Path::new(&args[i + 1]));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick" || a == "--test");
    let scale = if quick { 10 } else { 1 };
    let minutes = if quick { 2 } else { 10 };
    let specs = [
        Spec {
            name: "subway",
            route_type: 1,
            lines: 25,
            stops_per_line: 60,
            trips: 9_400 / scale,
        },
        Spec {
            name: "bus",
            route_type: 3,
            lines: 250,
            stops_per_line: 26,
            trips: 40_000 / scale,
        },
    ];
    let base = std::env::temp_dir().join(format!("streamcity-gtfs-scale-{}", std::process::id()));
    let mut feeds: Vec<(String, PathBuf)> = Vec::new();
    for spec in &specs {
        let dir = base.join(spec.name);
        let n = write_feed(spec, &dir);
        println!("{}: {n} stop_times written to {}", spec.name, dir.display());
        feeds.push((spec.name.to_owned(), dir));
    }
    if let Ok(cairns) = std::env::var("STREAMCITY_TEST_CAIRNS") {
        feeds.push(("cairns".to_owned(), PathBuf::from(cairns)));
    }
    let me = std::env::current_exe().unwrap();
    let mut rows = Vec::new();
    let mut rates = serde_json::Map::new();
    for (name, feed) in &feeds {
        let out = std::process::Command::new(&me)
            .args(["--load", feed.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let v: Vec<f64> = text
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let (load_s, rss, heap, stop_times) = (v[0], v[1], v[2], v[3]);
        let network = Arc::new(gtfs::load(feed).unwrap().network);
        let (speed, fleet) = sim_speed(Arc::clone(&network), minutes);
        println!(
            "{name:>7}: {stop_times:>9} stop_times, {} trips: load {load_s:.2} s, peak RSS {:.0} MB, {:.0} heap bytes per stop_time; 08:00 peak: {fleet} vehicles, simulated {speed:.0}× real time on one core",
            network.trips.len(),
            rss / 1e6,
            heap / stop_times
        );
        rows.push(json!({
            "feed": name,
            "stop_times": stop_times,
            "trips": network.trips.len(),
            "stops": network.stops.len(),
            "load_s": load_s,
            "peak_rss_mb": rss / 1e6,
            "heap_bytes_per_stop_time": heap / stop_times,
            "peak_vehicles": fleet,
            "peak_speedup": speed,
        }));
        rates.insert(format!("{name}_peak_speedup"), json!(speed));
    }
    let _ = std::fs::remove_dir_all(&base);
    results::write_results(
        "gtfs_scale",
        &json!({
            "benchmark": "gtfs_scale",
            "quick": quick,
            "simulated_minutes": minutes,
            "feeds": rows,
            "rates": rates,
        }),
    );
}

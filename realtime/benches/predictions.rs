//! How good the arrival predictions are, against what the simulation really does:
//! runs a feed's timetable (by default the built-in city, exported as GTFS) for some
//! simulated hours as fast as it goes, hands every vehicle report to the accuracy
//! ledger, and prints the errors by horizon of the model and of the naive
//! constant-delay prediction.
//!
//! ```sh
//! cargo bench -p streamcity-realtime --bench predictions                       # built-in city
//! cargo bench -p streamcity-realtime --bench predictions -- --gtfs cairns_gtfs.zip --date 2014-06-02
//! cargo bench -p streamcity-realtime --bench predictions -- --quick            # the CI smoke run
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use streamcity_network::{Date, Network, export, gtfs, synthetic};
use streamcity_producers::sim::{SimConfig, SimEvent, Simulation};
use streamcity_realtime::accuracy::Ledger;
use streamcity_realtime::learned::Learned;

struct Args {
    gtfs: Option<PathBuf>,
    date: Option<Date>,
    start_min: i64,
    hours: f64,
    warmup_h: f64,
}

fn args() -> Args {
    let mut args = Args {
        gtfs: None,
        date: None,
        start_min: 6 * 60 + 30,
        hours: 3.5,
        warmup_h: 1.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--gtfs" => args.gtfs = it.next().map(PathBuf::from),
            "--date" => {
                let d = it.next().expect("--date YYYY-MM-DD").replace('-', "");
                args.date = Some(Date(d.parse().expect("--date YYYY-MM-DD")));
            }
            "--start" => {
                let s = it.next().expect("--start HH:MM");
                let (h, m) = s.split_once(':').expect("--start HH:MM");
                args.start_min = h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap();
            }
            "--hours" => args.hours = it.next().and_then(|h| h.parse().ok()).expect("--hours H"),
            "--warmup" => {
                args.warmup_h = it.next().and_then(|h| h.parse().ok()).expect("--warmup H");
            }
            "--quick" => (args.hours, args.warmup_h) = (0.5, 0.25),
            _ => {} // cargo bench's own flags (--bench)
        }
    }
    args
}

/// The built-in city as a GTFS feed, loaded back: it then runs its timetable.
fn built_in_city() -> Network {
    let city = synthetic::generate(synthetic::SyntheticConfig::default());
    let path =
        std::env::temp_dir().join(format!("streamcity-predictions-{}.zip", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    export::write_gtfs(&city, file).unwrap();
    let network = gtfs::load(&path).unwrap().network;
    std::fs::remove_file(&path).unwrap();
    network
}

fn main() {
    let args = args();
    let (network, name) = match &args.gtfs {
        Some(path) => (
            gtfs::load(path).expect("a GTFS feed").network,
            path.display().to_string(),
        ),
        None => (built_in_city(), "the built-in city".to_owned()),
    };
    // The day asked, or the first weekday of the feed's calendar.
    let date = args.date.unwrap_or_else(|| {
        let (first, _) = network.service_range().expect("a feed with a calendar");
        (0..7)
            .map(|d| Date::from_days(first.days() + d))
            .max_by_key(|&d| network.trips_on(d).len())
            .unwrap()
    });
    let start_ms = network.local_time_ms(date, args.start_min * 60);
    let network = Arc::new(network);
    let config = SimConfig {
        start_ms,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(Arc::clone(&network), config);
    let end = start_ms + (args.hours * 3_600_000.0) as i64;
    // The model learns from the first hour before its predictions count (a live twin
    // has run all day before the rush).
    let measured_from = start_ms + (args.warmup_h * 3_600_000.0) as i64;
    let mut ledger = Ledger::keeping(usize::MAX);
    let mut learned = Learned::default();
    let mut out = Vec::new();
    let mut reports = 0_u64;
    let began = Instant::now();
    while sim.now() < end {
        out.clear();
        sim.step(&mut out);
        for event in &out {
            if let SimEvent::Position(p) = event {
                learned.observe(&network, p);
                if p.timestamp >= measured_from {
                    ledger.on_report(&network, &learned, p);
                }
                reports += 1;
            }
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "{name}, {} from {:02}:{:02} for {} h (the first {} h learning only): {} vehicle reports in {:.1} s",
        date.iso(),
        args.start_min / 60,
        args.start_min % 60,
        args.hours,
        args.warmup_h,
        reports,
        seconds
    );
    println!(
        "learned (stretches, stops, vehicles): {:?}",
        learned.known()
    );
    println!(
        "| horizon | predictions | model median / p90 (s) | naive median / p90 (s) | p90 model/naive | median error model / naive (s) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for row in ledger.accuracy() {
        println!(
            "| {}–{} min | {} | {:.0} / {:.0} | {:.0} / {:.0} | {:.2} | {:+.0} / {:+.0} |",
            row.horizon.0,
            row.horizon.1,
            row.samples,
            row.model.0,
            row.model.1,
            row.naive.0,
            row.naive.1,
            if row.naive.1 > 0.0 {
                row.model.1 / row.naive.1
            } else {
                f64::NAN
            },
            row.bias.0,
            row.bias.1
        );
    }
    let rows: Vec<serde_json::Value> = ledger
        .accuracy()
        .iter()
        .map(|r| {
            serde_json::json!({
                "horizon_min": [r.horizon.0, r.horizon.1],
                "predictions": r.samples,
                "model_s": {"median": r.model.0, "p90": r.model.1},
                "naive_s": {"median": r.naive.0, "p90": r.naive.1},
            })
        })
        .collect();
    streamcity_testkit::results::write_results(
        "predictions",
        &serde_json::json!({
            "benchmark": "predictions",
            "feed": name,
            "hours": args.hours,
            "rates": {"reports_per_s": reports as f64 / seconds.max(1e-9)},
            "horizons": rows,
        }),
    );
}

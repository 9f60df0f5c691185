//! The full processor pipeline (live table, surge windows, every detector) on one
//! core: on events already decoded, on raw JSON records (decoding included), and
//! decoding alone, measured in the same run on the same simulated records.
//!
//! `cargo bench -p streamcity-processor --bench pipeline` (`-- --quick`: criterion's
//! quick mode, the CI smoke run). Besides criterion's report, the rates go to
//! `target/benchmarks/pipeline.json`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput};
use streamcity_core::{Record, Topics};
use streamcity_network::{SyntheticConfig, synthetic};
use streamcity_processor::{Decoded, Processor, ProcessorConfig};
use streamcity_producers::runner::to_record;
use streamcity_producers::sim::{SimConfig, Simulation};

const FLEET: usize = 20_000;

struct Input {
    records: Vec<(Record, i32, i64)>,
    decoded: Vec<Decoded>,
}

/// `seconds` of a city with 20,000 vehicles, as records with their partition and the
/// clock at which they are read.
fn simulate(sim: &mut Simulation, seconds: i64, topics: &Topics) -> Vec<(Record, i32, i64)> {
    let mut events = Vec::new();
    let mut out = Vec::new();
    for _ in 0..seconds * 5 {
        sim.step(&mut events);
        for e in events.drain(..) {
            let r = to_record(topics, &e);
            if !streamcity_processor::inputs(topics).contains(&&r.topic) {
                continue;
            }
            let partition = r.partition(6) as i32;
            out.push((r, partition, sim.now()));
        }
    }
    out
}

fn bench(c: &mut Criterion) -> u64 {
    let topics = Topics::default();
    let city = Arc::new(synthetic::generate(SyntheticConfig {
        vehicles: FLEET,
        ..SyntheticConfig::default()
    }));
    let mut config = ProcessorConfig::default();
    config.headway.route_headways_s = city
        .routes
        .iter()
        .map(|r| (r.route_id.clone(), r.headway_s))
        .collect();
    let mut sim = Simulation::new(Arc::clone(&city), SimConfig::default());

    // Warm the processor up on a simulated minute: every vehicle has a row, windows are open.
    let mut warm = Processor::new(topics.clone(), config);
    let mut out = Vec::new();
    for (r, p, now) in simulate(&mut sim, 60, &topics) {
        warm.on_record(&r, p, now, &mut out);
        out.clear();
    }
    let records = simulate(&mut sim, 10, &topics);
    let decoded = records
        .iter()
        .map(|(r, _, now)| warm.decode(r, *now).expect("simulated records are valid"))
        .collect();
    let input = Input { records, decoded };
    let n = input.records.len() as u64;

    let mut group = c.benchmark_group("processor_20k_vehicles");
    group.sample_size(20);
    group.throughput(Throughput::Elements(n));
    group.bench_function("pipeline_on_decoded_events", |b| {
        b.iter_batched(
            || (warm.clone(), Vec::with_capacity(input.records.len() * 2)),
            |(mut core, mut out)| {
                for (i, (event, (r, p, now))) in
                    input.decoded.iter().zip(&input.records).enumerate()
                {
                    core.on_decoded(event, r, *p, *now, &mut out);
                    if i % 1024 == 1023 {
                        core.advance(*now, &mut out);
                    }
                }
                black_box(out.len())
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("pipeline_with_json_decoding", |b| {
        b.iter_batched(
            || (warm.clone(), Vec::with_capacity(input.records.len() * 2)),
            |(mut core, mut out)| {
                for (i, (r, p, now)) in input.records.iter().enumerate() {
                    core.on_record(r, *p, *now, &mut out);
                    if i % 1024 == 1023 {
                        core.advance(*now, &mut out);
                    }
                }
                black_box(out.len())
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("json_decoding_only", |b| {
        b.iter(|| {
            let mut ok = 0;
            for (r, _, now) in &input.records {
                ok += usize::from(black_box(warm.decode(r, *now)).is_ok());
            }
            ok
        })
    });
    group.finish();
    n
}

use streamcity_testkit::results;

const GROUP: &str = "processor_20k_vehicles";
const FUNCTIONS: [&str; 3] = [
    "pipeline_on_decoded_events",
    "pipeline_with_json_decoding",
    "json_decoding_only",
];

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let n = bench(&mut c);
    c.final_summary();
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // nothing measured
    }
    // Criterion's mean time per iteration of each function, as events per second.
    let mut rates = serde_json::Map::new();
    for f in FUNCTIONS {
        let path = results::target_dir()
            .join("criterion")
            .join(GROUP)
            .join(f)
            .join("new/estimates.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("criterion's estimates {}: {e}", path.display()));
        let estimates: serde_json::Value = serde_json::from_str(&text).expect("criterion's JSON");
        let mean_ns = estimates["mean"]["point_estimate"]
            .as_f64()
            .expect("a mean estimate");
        rates.insert(format!("{f}_per_s"), (n as f64 / mean_ns * 1e9).into());
    }
    let rate = |f: &str| rates[&format!("{f}_per_s")].as_f64().unwrap_or(0.0);
    let ratio = rate("pipeline_with_json_decoding") / rate("json_decoding_only");
    println!(
        "events/s on one core: pipeline on decoded {:.0}, with JSON decoding {:.0}, decoding alone {:.0}; pipeline / decoding alone {ratio:.2}",
        rate("pipeline_on_decoded_events"),
        rate("pipeline_with_json_decoding"),
        rate("json_decoding_only"),
    );
    results::write_results(
        "pipeline",
        &serde_json::json!({
            "benchmark": "pipeline",
            "events_per_iteration": n,
            "vehicles": FLEET,
            "rates": rates,
            "ratios": {"pipeline_over_decoding": ratio},
        }),
    );
}

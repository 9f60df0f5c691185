//! The full processor pipeline (live table, surge windows, every detector) on one
//! core: on events already decoded, on raw JSON records (decoding included), and
//! decoding alone, measured in the same run on the same simulated records.
//!
//! `cargo bench -p streamcity-processor --bench pipeline`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use streamcity_core::{Record, Topics};
use streamcity_processor::{Decoded, Processor, ProcessorConfig};
use streamcity_producers::runner::to_record;
use streamcity_producers::sim::{SimConfig, Simulation};
use streamcity_producers::{City, CityConfig};

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
            let partition = streamcity_core::bus::partition_for(&r.key, 6) as i32;
            out.push((r, partition, sim.now()));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let topics = Topics::default();
    let city = Arc::new(City::generate(CityConfig {
        vehicles: FLEET,
        ..CityConfig::default()
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
}

criterion_group!(benches, bench);
criterion_main!(benches);

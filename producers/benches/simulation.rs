//! Simulation throughput at 100,000 vehicles on one core, without and with turning
//! the events into bus records (JSON encoding and keys), as the runner does; in the
//! default 200 ms ticks (tests, batch generation) and in a live run's 10 ms ones.
//!
//! `cargo bench -p streamcity-producers --bench simulation`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamcity_core::Topics;
use streamcity_network::{Network, SyntheticConfig, synthetic};
use streamcity_producers::runner::to_record;
use streamcity_producers::{SimConfig, Simulation};

const FLEET: usize = 100_000;

/// A live run's tick at speed 1, ms.
const LIVE_TICK_MS: i64 = 10;

fn simulation(city: &Arc<Network>, tick_ms: i64) -> Simulation {
    let config = SimConfig {
        tick_ms,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(Arc::clone(city), config);
    let mut out = Vec::new();
    // Warm up: a simulated minute, so vehicles are spread over every phase.
    for _ in 0..60_000 / tick_ms {
        sim.step(&mut out);
        out.clear();
    }
    sim
}

/// Events produced per simulated second, measured on a copy of the warmed-up state.
fn events_per_second(sim: &mut Simulation) -> u64 {
    let mut out = Vec::new();
    for _ in 0..25 {
        sim.step(&mut out);
    }
    out.len() as u64 / 5
}

fn bench(c: &mut Criterion) {
    let city = Arc::new(synthetic::generate(SyntheticConfig {
        vehicles: FLEET,
        ..SyntheticConfig::default()
    }));
    let mut sim = simulation(&city, SimConfig::default().tick_ms);
    let per_second = events_per_second(&mut sim);
    let mut group = c.benchmark_group("simulation_100k_vehicles");
    group.sample_size(20);
    group.throughput(Throughput::Elements(per_second));
    let mut out = Vec::with_capacity(per_second as usize * 2);
    group.bench_function("one_simulated_second", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..5 {
                sim.step(&mut out);
            }
            black_box(out.len())
        })
    });
    let topics = Topics::default();
    group.bench_function("one_simulated_second_to_json_records", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..5 {
                sim.step(&mut out);
            }
            let mut bytes = 0;
            for e in &out {
                bytes += black_box(to_record(&topics, e)).payload.len();
            }
            black_box(bytes)
        })
    });
    let mut live = simulation(&city, LIVE_TICK_MS);
    group.bench_function("one_simulated_second_in_10ms_ticks", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..1000 / LIVE_TICK_MS {
                live.step(&mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

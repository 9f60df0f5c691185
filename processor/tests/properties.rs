//! Invariants of the engine, over many generated inputs.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use proptest::prelude::*;
use streamcity_core::{Record, Topics};
use streamcity_network::{SyntheticConfig, synthetic};
use streamcity_processor::window::{
    Admission, EmitMode, WindowKind, WindowResult, WindowSpec, WindowedCount,
};
use streamcity_processor::{Processor, ProcessorConfig};
use streamcity_producers::runner::to_record;
use streamcity_producers::sim::{SimConfig, Simulation};

fn spec() -> impl Strategy<Value = WindowSpec> {
    prop_oneof![
        (1i64..120).prop_map(|s| WindowSpec::tumbling(s * 1000, 0)),
        (1i64..10, 1i64..10).prop_map(|(a, k)| WindowSpec::hopping(a * k * 1000, a * 1000, 0)),
        (1i64..60).prop_map(|g| WindowSpec::session(g * 1000, 0)),
    ]
    .prop_map(|s| s.emit(EmitMode::Final))
}

fn records() -> impl Strategy<Value = Vec<(u8, i64)>> {
    prop::collection::vec((0u8..5, 0i64..600_000), 1..300)
}

fn final_results(spec: WindowSpec, input: &[(u8, i64)], disorder_ms: i64) -> Vec<WindowResult<u8>> {
    let mut w = WindowedCount::new(spec);
    let mut out = Vec::new();
    let mut max_ts = i64::MIN;
    for &(key, ts) in input {
        // The watermark trails the highest time seen by the most disorder there is.
        let watermark = max_ts.saturating_sub(disorder_ms);
        assert_ne!(
            w.add(&key, ts, watermark, &mut Vec::new()),
            Admission::Late,
            "{ts} late at {watermark}"
        );
        max_ts = max_ts.max(ts);
        w.close_until(watermark, &mut out);
    }
    w.close_until(i64::MAX, &mut out);
    out.sort_by_key(|r| (r.key, r.start, r.end));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every record is counted in each window that contains it: tumbling windows and
    /// sessions hold each record once, hopping windows size/advance times.
    #[test]
    fn window_counts_equal_the_input_totals(spec in spec(), input in records()) {
        let out = final_results(spec, &input, i64::MAX / 4);
        let total: u64 = out.iter().map(|r| r.count).sum();
        let per_record = match spec.kind {
            WindowKind::Hopping { size_ms, advance_ms } => (size_ms / advance_ms) as u64,
            _ => 1,
        };
        prop_assert_eq!(total, input.len() as u64 * per_record);
        prop_assert!(out.iter().all(|r| r.is_final && r.start < r.end));
    }

    /// Shuffled arrival within the grace period gives the same final results as
    /// arrival in event-time order.
    #[test]
    fn results_do_not_depend_on_arrival_order_within_grace(
        spec in spec(),
        mut input in records(),
        swaps in prop::collection::vec((0usize..300, 0usize..300), 0..100),
    ) {
        input.sort_by_key(|r| r.1);
        let ordered = final_results(spec, &input, 0);
        let n = input.len();
        for (a, b) in swaps {
            input.swap(a % n, b % n);
        }
        // How far out of order the shuffle left things, and a grace that covers it.
        let mut max_seen = i64::MIN;
        let mut disorder = 0;
        for r in &input {
            disorder = disorder.max(max_seen.saturating_sub(r.1));
            max_seen = max_seen.max(r.1);
        }
        let spec = WindowSpec { grace_ms: disorder.max(0), ..spec };
        let shuffled = final_results(spec, &input, disorder.max(0));
        prop_assert_eq!(ordered, shuffled);
    }
}

/// A few minutes of a small city's records, as the processor would read them.
fn simulated_input(seed: u64, seconds: i64) -> Vec<(Record, i32, i64)> {
    let city = Arc::new(synthetic::generate(SyntheticConfig {
        seed,
        vehicles: 40,
        ..SyntheticConfig::default()
    }));
    let mut config = SimConfig {
        seed,
        ..SimConfig::default()
    };
    config.taps.gaps = streamcity_producers::arrivals::Gaps::rate(30.0);
    config.traffic.gaps = streamcity_producers::arrivals::Gaps::Poisson { mean_s: 60.0 };
    config.incidents.gaps = streamcity_producers::arrivals::Gaps::Poisson { mean_s: 90.0 };
    config.breakdowns_per_vehicle_hour = 2.0;
    config.dropouts_per_vehicle_hour = 4.0;
    let mut sim = Simulation::new(Arc::clone(&city), config);
    let topics = Topics::default();
    let mut events = Vec::new();
    let mut input = Vec::new();
    for _ in 0..seconds * 5 {
        sim.step(&mut events);
        let now = sim.now();
        for e in events.drain(..) {
            let r = to_record(&topics, &e);
            if !streamcity_processor::inputs(&topics).contains(&&r.topic) {
                continue;
            }
            let partition = r.partition(6) as i32;
            input.push((r, partition, now));
        }
    }
    input
}

fn config_for(seed: u64) -> ProcessorConfig {
    let city = synthetic::generate(SyntheticConfig {
        seed,
        vehicles: 40,
        ..SyntheticConfig::default()
    });
    let mut config = ProcessorConfig::default();
    config.surge.threshold = 12;
    config.delay.threshold_s = 60;
    config.delay.clear_below_s = 30;
    config.breakdown.silent_ms = 30_000;
    config.headway.route_headways_s = city
        .routes
        .iter()
        .map(|r| (r.route_id.clone(), r.headway_s))
        .collect();
    config
}

fn run(core: &mut Processor, input: &[(Record, i32, i64)], out: &mut Vec<Record>) {
    for (record, partition, now) in input {
        core.on_record(record, *partition, *now, out);
        core.advance(*now, out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// A processor restored from a checkpoint taken anywhere in the stream, fed the
    /// rest, publishes exactly what an uninterrupted one does.
    #[test]
    fn restore_from_checkpoint_gives_the_same_outputs(seed in 0u64..1_000, split in 0.0f64..1.0) {
        let input = simulated_input(seed, 240);
        let topics = Topics::default();
        let k = (input.len() as f64 * split) as usize;

        let mut whole = Processor::new(topics.clone(), config_for(seed));
        let mut expected = Vec::new();
        run(&mut whole, &input, &mut expected);

        let mut first = Processor::new(topics.clone(), config_for(seed));
        let mut got = Vec::new();
        run(&mut first, &input[..k], &mut got);
        let checkpoint = first.checkpoint();
        drop(first);
        let mut resumed = Processor::restore(topics, &checkpoint).unwrap();
        run(&mut resumed, &input[k..], &mut got);

        prop_assert_eq!(got.len(), expected.len());
        prop_assert!(got == expected, "outputs differ after restoring at record {} of {}", k, input.len());
        prop_assert_eq!(resumed.counts(), whole.counts());
        // The run exercised the detectors, not just the table.
        prop_assert!(whole.counts().alerts_raised > 0);
    }
}

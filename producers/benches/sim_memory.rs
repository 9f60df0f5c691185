//! Memory per simulated vehicle: a counting allocator measures what the simulation
//! holds for a fleet of 100,000 (the city network excluded: it is shared and does not
//! grow with the fleet), right after start and after an hour of simulated service.
//!
//! `cargo bench -p streamcity-producers --bench sim_memory`

use streamcity_testkit::alloc as counting_alloc;

use std::sync::Arc;
use streamcity_network::{SyntheticConfig, synthetic};
use streamcity_producers::{SimConfig, Simulation};

#[global_allocator]
static ALLOCATOR: counting_alloc::Counting = counting_alloc::Counting;

fn main() {
    // `cargo test --benches` runs this as a smoke test with a small fleet.
    let fleet: usize = if std::env::args().any(|a| a == "--test") {
        2_000
    } else {
        100_000
    };
    let city = Arc::new(synthetic::generate(SyntheticConfig {
        vehicles: fleet,
        ..SyntheticConfig::default()
    }));
    let before = counting_alloc::live_bytes();
    let mut sim = Simulation::new(city, SimConfig::default());
    let start = counting_alloc::live_bytes() - before;
    let mut out = Vec::new();
    for tick in 0..18_000 {
        sim.step(&mut out);
        out.clear();
        if fleet < 10_000 && tick == 3_000 {
            break;
        }
    }
    out.shrink_to_fit();
    let after = counting_alloc::live_bytes() - before;
    let per = |bytes: isize| bytes as f64 / fleet as f64;
    println!("fleet: {fleet} vehicles");
    println!(
        "at start:            {:>10} bytes, {:>6.0} bytes per vehicle",
        start,
        per(start)
    );
    println!(
        "after 1 h simulated: {:>10} bytes, {:>6.0} bytes per vehicle",
        after,
        per(after)
    );
    println!(
        "riders waiting at stops or aboard are included: they grow with demand, not with the fleet"
    );
    assert!(per(after) < 1_024.0, "over 1 KB per vehicle");
}

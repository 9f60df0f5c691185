//! `streamcity produce`: the simulators alone, publishing their records, with progress
//! reports like the RideMatch generator's (sent, delivered, pending, rate).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use streamcity_core::{
    Bus, CancellationToken, ScaledClock, SharedClock, SystemClock, Topics, clock,
};
use streamcity_producers::runner::{Ending, Limits, ProducerStats};
use streamcity_producers::{City, CityConfig, SimConfig, Simulation};

/// Runs the simulators on `bus` until a limit is reached or `stop` is cancelled,
/// reporting progress on standard error every `report_every`.
pub async fn run<B: Bus>(
    bus: B,
    city: CityConfig,
    sim: SimConfig,
    speed: f64,
    limits: Limits,
    stop: CancellationToken,
    report_every: Duration,
) -> anyhow::Result<()> {
    let clock: SharedClock =
        if speed == 1.0 && (sim.start_ms - clock::wall_clock_ms()).abs() < 1_000 {
            Arc::new(SystemClock)
        } else {
            Arc::new(ScaledClock::new(sim.start_ms, speed))
        };
    let city = Arc::new(City::generate(city));
    let simulation = Simulation::new(city, sim);
    eprintln!(
        "Producing: {} vehicles, {} stops; Ctrl+C flushes and stops",
        simulation.fleet_size(),
        simulation.city().stops.len()
    );
    let stats = Arc::new(ProducerStats::default());
    let started = Instant::now();
    let mut task = tokio::spawn(streamcity_producers::runner::run(
        simulation,
        bus,
        Topics::default(),
        clock,
        limits,
        stop.clone(),
        Arc::clone(&stats),
    ));
    let mut ticker = tokio::time::interval(report_every);
    ticker.tick().await;
    let mut report_no = 0u64;
    let mut last = (Instant::now(), 0u64);
    let ending = loop {
        tokio::select! {
            done = &mut task => match done? {
                Ok(ending) => break ending,
                // The reader of the output went away (`| head`): a normal end.
                Err(streamcity_core::BusError::Closed) => break Ending::Stopped,
                Err(e) => return Err(e.into()),
            },
            _ = ticker.tick() => {
                report_no += 1;
                let sent = stats.sent.load(Ordering::Relaxed);
                let rate = (sent - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
                last = (Instant::now(), sent);
                eprintln!("Report #{report_no}: {} | {rate:.0}/s", counts(&stats));
            }
        }
    };
    let why = match ending {
        Ending::Stopped => "stopped",
        Ending::MaxEvents => "reached --max",
        Ending::Duration => "reached --duration",
    };
    eprintln!(
        "Done ({why}) after {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        counts(&stats)
    );
    Ok(())
}

fn counts(stats: &ProducerStats) -> String {
    let sent = stats.sent.load(Ordering::Relaxed);
    let delivered = stats.delivered.load(Ordering::Relaxed);
    let failed = stats.failed.load(Ordering::Relaxed);
    format!(
        "Sent {sent} | Delivered {delivered} | Failed {failed} | Pending {}",
        sent.saturating_sub(delivered + failed)
    )
}

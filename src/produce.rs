//! `streamcity produce`: the simulators alone, publishing their records, with progress
//! reports like the RideMatch generator's (sent, delivered, pending, rate).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use streamcity_core::{Bus, CancellationToken, Topics};
use streamcity_kafka::DeliveryStats;
use streamcity_producers::runner::{Ending, Limits, ProducerStats};
use streamcity_producers::{City, CityConfig, SimConfig, Simulation};

/// Where `produce` sends its records.
pub struct Output<B> {
    /// The bus.
    pub bus: B,
    /// Topic names.
    pub topics: Topics,
    /// Delivery reports, when the bus gives them (Kafka); otherwise a record handed to
    /// the bus counts as delivered.
    pub reports: Option<Arc<DeliveryStats>>,
}

/// Runs the simulators on `out.bus` until a limit is reached or `stop` is cancelled,
/// reporting progress on standard error every `report_every`.
pub async fn run<B: Bus>(
    out: Output<B>,
    city: CityConfig,
    sim: SimConfig,
    speed: f64,
    limits: Limits,
    stop: CancellationToken,
    report_every: Duration,
) -> anyhow::Result<()> {
    let clock = streamcity::clock_for(sim.start_ms, speed);
    let city = Arc::new(City::generate(city));
    let simulation = Simulation::new(city, sim);
    eprintln!(
        "Producing: {} vehicles, {} stops; Ctrl+C flushes and stops",
        simulation.fleet_size(),
        simulation.city().stops.len()
    );
    let stats = Arc::new(ProducerStats::default());
    let started = Instant::now();
    let reports = out.reports;
    let mut task = tokio::spawn(streamcity_producers::runner::run(
        simulation,
        out.bus,
        out.topics,
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
                eprintln!("Report #{report_no}: {} | {rate:.0}/s", counts(&stats, reports.as_deref()));
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
        counts(&stats, reports.as_deref())
    );
    Ok(())
}

fn counts(stats: &ProducerStats, reports: Option<&DeliveryStats>) -> String {
    let sent = stats.sent.load(Ordering::Relaxed);
    let (delivered, failed) = match reports {
        Some(r) => (
            r.delivered.load(Ordering::Relaxed),
            r.failed.load(Ordering::Relaxed),
        ),
        None => (
            stats.delivered.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed),
        ),
    };
    format!(
        "Sent {sent} | Delivered {delivered} | Failed {failed} | Pending {}",
        sent.saturating_sub(delivered + failed)
    )
}

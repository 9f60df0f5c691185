//! `streamcity produce`: the simulators alone, publishing their records, with progress
//! reports like the RideMatch generator's (sent, delivered, pending, rate). On Kafka the
//! network and the simulated clock go on the bus too, for the stages that run apart.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use streamcity::mirror::{MirrorConfig, MirrorStats};
use streamcity_core::{Bus, CancellationToken, Topics};
use streamcity_kafka::DeliveryStats;
use streamcity_network::{Network, topic};
use streamcity_producers::runner::{Ending, Limits, ProducerStats};
use streamcity_producers::{SimConfig, Simulation};

/// Where `produce` sends its records.
pub struct Output<B> {
    /// The bus.
    pub bus: B,
    /// Topic names.
    pub topics: Topics,
    /// Delivery reports, when the bus gives them (Kafka), and how many of the records
    /// reported are the network's and the clock's rather than the stream's; otherwise a
    /// record handed to the bus counts as delivered.
    pub reports: Option<Reports>,
    /// Whether the network and the clock go on the bus (Kafka: for the other stages).
    pub share: bool,
}

/// Runs the simulators of `network` on `out.bus` until a limit is reached or `stop` is
/// cancelled, reporting progress on standard error every `report_every`. `stats` are
/// the run's counters (for `/metrics`).
#[allow(clippy::too_many_arguments)]
pub async fn run<B: Bus>(
    out: Output<B>,
    network: Arc<Network>,
    sim: SimConfig,
    speed: f64,
    limits: Limits,
    stats: Arc<ProducerStats>,
    stop: CancellationToken,
    report_every: Duration,
    mirror: Option<(MirrorConfig, Arc<MirrorStats>)>,
) -> anyhow::Result<()> {
    if out.share {
        topic::offer(&out.bus, &out.topics, &network).await.context(
            "the bus holds another city: use another --topic-prefix to produce a different one on this cluster",
        )?;
    }
    let clock = streamcity::clock_for(sim.start_ms, speed);
    let simulation = Simulation::new(Arc::clone(&network), sim);
    eprintln!(
        "Producing: {} vehicles, {} stops; Ctrl+C flushes and stops",
        simulation.fleet_size(),
        network.stops.len()
    );
    if let Some((config, mirror_stats)) = mirror {
        // Mirror mode: the real vehicles go on the bus beside the simulated riders.
        let run = streamcity::mirror::run(
            config,
            Arc::clone(&network),
            out.bus.clone(),
            out.topics.clone(),
            mirror_stats,
            stop.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = run.await {
                tracing::error!("mirror: {e:#}");
            }
        });
    }
    let started = Instant::now();
    let reports = out.reports;
    let mut task = tokio::spawn(streamcity_producers::runner::run(
        simulation,
        out.bus,
        out.topics,
        clock,
        limits,
        out.share,
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
                eprintln!("Report #{report_no}: {} | {rate:.0}/s", counts(&stats, reports.as_ref()));
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
        counts(&stats, reports.as_ref())
    );
    Ok(())
}

/// Delivery reports, and how many of them are the network's and the clock's records.
pub type Reports = (Arc<DeliveryStats>, Box<dyn Fn() -> u64 + Send>);

fn counts(stats: &ProducerStats, reports: Option<&Reports>) -> String {
    let sent = stats.sent.load(Ordering::Relaxed);
    let (delivered, failed) = match reports {
        Some((r, reference)) => (
            r.delivered
                .load(Ordering::Relaxed)
                .saturating_sub(reference()),
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

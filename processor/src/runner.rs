//! The async shell around [`Processor`]: reads the input topics, feeds the core,
//! publishes what it returns, commits what it has processed, and checkpoints the state.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use streamcity_core::{
    Bus, BusError, CancellationToken, SharedClock, StartFrom, Subscribe, Subscription, Topics,
};

use crate::{Processor, ProcessorConfig, ProcessorCounts};

/// Live counters of the processor, for progress output and `/metrics`.
#[derive(Debug, Default)]
pub struct ProcessorStats {
    /// Records read.
    pub records_in: AtomicU64,
    /// Records published.
    pub records_out: AtomicU64,
    /// Records set aside on the dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Late records published to the side output.
    pub late: AtomicU64,
    /// Alerts raised.
    pub alerts_raised: AtomicU64,
    /// Alerts cleared.
    pub alerts_cleared: AtomicU64,
    /// The watermark, ms since the epoch.
    pub watermark_ms: AtomicI64,
    /// Open windows.
    pub open_windows: AtomicU64,
}

impl ProcessorStats {
    fn store(&self, core: &Processor) {
        let c: ProcessorCounts = core.counts();
        self.records_in.store(c.records_in, Ordering::Relaxed);
        self.records_out.store(c.records_out, Ordering::Relaxed);
        self.dead_letters.store(c.dead_letters, Ordering::Relaxed);
        self.late.store(c.late, Ordering::Relaxed);
        self.alerts_raised.store(c.alerts_raised, Ordering::Relaxed);
        self.alerts_cleared
            .store(c.alerts_cleared, Ordering::Relaxed);
        self.watermark_ms.store(core.watermark(), Ordering::Relaxed);
        self.open_windows
            .store(core.open_windows() as u64, Ordering::Relaxed);
    }
}

/// The consumer group of the processor.
pub const GROUP: &str = "streamcity-processor";

/// The processor's subscriptions, from [`subscribe`].
#[derive(Debug)]
pub struct Inputs<S> {
    /// Every input topic, in the consumer group: instances split the partitions.
    pub group: S,
    /// The incident topics in full, outside the group: every instance knows every
    /// incident in force, to name the likely cause of a delay.
    pub incidents: S,
}

/// Subscribes to the processor's input topics. Done before [`run`], so that a caller
/// can make sure the processor is listening before anything is published.
pub async fn subscribe<B: Bus>(
    bus: &B,
    topics: &Topics,
) -> Result<Inputs<B::Subscription>, BusError> {
    // A new group starts from the oldest records kept; an existing one resumes after
    // its last commit.
    let group = bus
        .subscribe(
            Subscribe::new(topics.group(GROUP), &crate::inputs(topics)).from(StartFrom::Earliest),
        )
        .await?;
    // A group of its own, never committed to: each instance reads every incident kept.
    let own = format!(
        "{GROUP}-incidents-{}-{}",
        std::process::id(),
        streamcity_core::clock::wall_clock_ms()
    );
    let incidents = bus
        .subscribe(
            Subscribe::new(
                topics.group(&own),
                &[&topics.traffic_incidents, &topics.city_incidents],
            )
            .from(StartFrom::Earliest),
        )
        .await?;
    Ok(Inputs { group, incidents })
}

/// How the processor runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Topic names.
    pub topics: Topics,
    /// Settings (ignored when a checkpoint is restored: it carries its own).
    pub config: ProcessorConfig,
    /// Where the state is checkpointed; restored from on start when present.
    pub checkpoint: Option<PathBuf>,
    /// How often the state is checkpointed (and always on a clean stop).
    pub checkpoint_every: Duration,
}

/// What can stop the processor.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The checkpoint could not be read or written.
    #[error("checkpoint {path}: {why}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
}

fn load(options: &RunOptions) -> Result<Processor, RunError> {
    let Some(path) = &options.checkpoint else {
        return Ok(Processor::new(
            options.topics.clone(),
            options.config.clone(),
        ));
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let core = Processor::restore(options.topics.clone(), &bytes).map_err(|e| {
                RunError::Checkpoint {
                    path: path.clone(),
                    why: e.to_string(),
                }
            })?;
            tracing::info!(path = %path.display(), vehicles = core.vehicle_count(), watermark = core.watermark(), "Processor state restored");
            Ok(core)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Processor::new(
            options.topics.clone(),
            options.config.clone(),
        )),
        Err(e) => Err(RunError::Checkpoint {
            path: path.clone(),
            why: e.to_string(),
        }),
    }
}

async fn save(core: &Processor, path: &PathBuf) -> Result<(), RunError> {
    let bytes = core.checkpoint();
    let tmp = path.with_extension("tmp");
    let err = |e: std::io::Error| RunError::Checkpoint {
        path: path.clone(),
        why: e.to_string(),
    };
    tokio::fs::write(&tmp, &bytes).await.map_err(err)?;
    // Atomic: a crash mid-write leaves the previous checkpoint intact.
    tokio::fs::rename(&tmp, path).await.map_err(err)?;
    tracing::debug!(path = %path.display(), bytes = bytes.len(), "Processor state checkpointed");
    Ok(())
}

/// Restores the vehicles of the partitions a rebalance gave to this instance from the
/// live table, before anything from them is processed.
async fn restore_assigned<B: Bus>(
    bus: &B,
    sub: &mut B::Subscription,
    core: &mut Processor,
    topics: &Topics,
    now: streamcity_core::TimestampMs,
) -> Result<(), BusError> {
    for (topic, partition) in sub.take_assigned() {
        if topic == topics.vehicle_locations {
            let rows = bus
                .read_partition(&topics.live_vehicle_table, partition)
                .await?;
            let restored = core.restore_partition(partition, &rows, now);
            tracing::info!(
                partition,
                restored,
                "Restored the vehicles of an assigned partition"
            );
        }
    }
    Ok(())
}

/// One round of the processor at clock time `now`: restores the partitions a
/// rebalance assigned, processes `batch` (empty when the input is quiet), releases the
/// revoked partitions, advances the watermark and publishes what all that produced.
async fn step<B: Bus>(
    bus: &B,
    sub: &mut B::Subscription,
    core: &mut Processor,
    topics: &Topics,
    batch: &[streamcity_core::Delivery],
    now: streamcity_core::TimestampMs,
    out: &mut Vec<streamcity_core::Record>,
) -> Result<(), BusError> {
    restore_assigned(bus, sub, core, topics, now).await?;
    for delivery in batch {
        core.on_record(&delivery.record, delivery.partition, now, out);
    }
    // Partitions a rebalance gave to another instance: release their state.
    for (topic, partition) in sub.take_revoked() {
        core.release(&topic, partition, out);
    }
    core.advance(now, out);
    for record in out.drain(..) {
        bus.publish(record).await?;
    }
    Ok(())
}

/// Runs the processor on `inputs` (from [`subscribe`]) until `stop` is cancelled or
/// the input ends.
///
/// Reads in batches; after each batch advances the watermark, publishes the outputs,
/// then commits the inputs (so a crash re-reads rather than loses). Once a second it
/// advances the watermark from the clock, so that windows close when traffic stops.
pub async fn run<B: Bus>(
    bus: B,
    inputs: Inputs<B::Subscription>,
    options: RunOptions,
    clock: SharedClock,
    stop: CancellationToken,
    stats: Arc<ProcessorStats>,
) -> Result<ProcessorCounts, RunError> {
    let mut core = load(&options)?;
    let Inputs {
        group: mut sub,
        mut incidents,
    } = inputs;
    let mut incidents_open = true;
    let mut side = Vec::new();
    let mut batch = Vec::with_capacity(1024);
    let mut out = Vec::with_capacity(1024);
    let mut idle = tokio::time::interval(Duration::from_secs(1));
    let mut checkpoint =
        tokio::time::interval(options.checkpoint_every.max(Duration::from_secs(1)));
    checkpoint.tick().await;
    loop {
        tokio::select! {
            got = sub.recv_many(&mut batch, 1024) => {
                if got? == 0 {
                    break;
                }
                let now = clock.now_ms();
                step(&bus, &mut sub, &mut core, &options.topics, &batch, now, &mut out).await?;
                for delivery in batch.drain(..) {
                    sub.commit(&delivery)?;
                }
            }
            got = incidents.recv_many(&mut side, 256), if incidents_open => {
                incidents_open = got? > 0;
                let now = clock.now_ms();
                for delivery in side.drain(..) {
                    core.on_incident_area(&delivery.record, now);
                }
            }
            _ = idle.tick() => {
                let now = clock.now_ms();
                step(&bus, &mut sub, &mut core, &options.topics, &[], now, &mut out).await?;
            }
            _ = checkpoint.tick(), if options.checkpoint.is_some() => {
                if let Some(path) = &options.checkpoint {
                    save(&core, path).await?;
                }
            }
            _ = stop.cancelled() => break,
        }
        stats.store(&core);
    }
    bus.flush().await?;
    if let Some(path) = &options.checkpoint {
        save(&core, path).await?;
    }
    Ok(core.counts())
}

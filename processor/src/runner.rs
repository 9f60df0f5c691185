//! The async shell around [`Processor`]: reads the input topics, feeds the core,
//! publishes what it returns, commits what it has processed, follows the producer's
//! clock, and checkpoints the state.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use streamcity_core::throttle::Throttle;
use streamcity_core::{
    Bus, BusError, CancellationToken, ClockReading, Delivery, InvalidEvent, Record, SharedClock,
    StartFrom, Subscribe, Subscription, TimestampMs, Topics, decode,
};
use streamcity_network::Network;
use streamcity_network::topic::CLOCK_KEY;

use crate::{Processor, ProcessorConfig, ProcessorCounts};

/// Live counters of the processor, for progress output and `/metrics`: what this run
/// did (a restored processor's earlier counts are not included).
#[derive(Debug, Default)]
pub struct ProcessorStats {
    counts: Mutex<ProcessorCounts>,
    /// The watermark, ms since the epoch.
    pub watermark_ms: AtomicI64,
    /// The latest event time seen, ms since the epoch (0 before the first).
    pub event_time_ms: AtomicI64,
    /// Open windows.
    pub open_windows: AtomicU64,
    /// Vehicles in the live table.
    pub vehicles: AtomicU64,
    /// Records the bus refused to take (each lost alone; the processor goes on).
    pub rejected: AtomicU64,
    /// The producer's clock, when it is known.
    clock: Mutex<Option<ClockReading>>,
}

impl ProcessorStats {
    fn store(&self, core: &Processor, baseline: &ProcessorCounts) {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner) = core.counts().since(baseline);
        self.watermark_ms.store(core.watermark(), Ordering::Relaxed);
        self.event_time_ms
            .store(core.event_time().unwrap_or(0), Ordering::Relaxed);
        self.open_windows
            .store(core.open_windows() as u64, Ordering::Relaxed);
        self.vehicles
            .store(core.vehicle_count() as u64, Ordering::Relaxed);
    }

    /// What this run has done so far.
    pub fn counts(&self) -> ProcessorCounts {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The producer's clock, when the processor has read it from the bus.
    pub fn clock(&self) -> Option<ClockReading> {
        *self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_clock(&self, reading: ClockReading) {
        *self.clock.lock().unwrap_or_else(PoisonError::into_inner) = Some(reading);
    }
}

/// The consumer group of the processor.
pub const GROUP: &str = "streamcity-processor";

/// The processor's subscriptions, from [`subscribe`].
#[derive(Debug)]
pub struct Inputs<S> {
    /// Every input topic, in the consumer group: instances split the partitions.
    pub group: S,
    /// Outside the group, read in full by every instance: the incident topics (to name
    /// the likely cause of a delay) and the `network` topic (the producer's clock).
    pub side: S,
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
    // A group of its own, never committed to: each instance reads everything kept.
    let own = format!(
        "{GROUP}-side-{}-{}",
        std::process::id(),
        streamcity_core::clock::wall_clock_ms()
    );
    let side = bus
        .subscribe(
            Subscribe::new(
                topics.group(&own),
                &[
                    &topics.traffic_incidents,
                    &topics.city_incidents,
                    &topics.network,
                ],
            )
            .from(StartFrom::Earliest),
        )
        .await?;
    Ok(Inputs { group, side })
}

/// How the processor runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Topic names.
    pub topics: Topics,
    /// Settings (ignored when a checkpoint is restored: it carries its own).
    pub config: ProcessorConfig,
    /// The network alerts are named after; a checkpoint of another one is refused.
    pub network: Arc<Network>,
    /// How fast event time goes while the input is quiet, until the producer's clock
    /// says (event-time seconds per second).
    pub speed: f64,
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
    let fresh = || {
        Processor::new(options.topics.clone(), options.config.clone())
            .with_network(Arc::clone(&options.network))
    };
    let Some(path) = &options.checkpoint else {
        return Ok(fresh());
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let core = Processor::restore_for(
                options.topics.clone(),
                &bytes,
                Arc::clone(&options.network),
            )
            .map_err(|e| RunError::Checkpoint {
                path: path.clone(),
                why: e.to_string(),
            })?;
            tracing::info!(path = %path.display(), vehicles = core.vehicle_count(), watermark = core.watermark(), "Processor state restored");
            Ok(core)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(fresh()),
        Err(e) => Err(RunError::Checkpoint {
            path: path.clone(),
            why: e.to_string(),
        }),
    }
}

/// Writes a checkpoint (taken before: the state is not held across the write).
async fn save(bytes: Vec<u8>, path: &PathBuf) -> Result<(), RunError> {
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

/// Takes on the partitions a rebalance gave to this instance, before anything from them
/// is processed: each holds the watermark back until it delivers, and the vehicles of
/// the vehicle topic's are restored from the live table.
async fn restore_assigned<B: Bus>(
    bus: &B,
    sub: &mut B::Subscription,
    core: &mut Processor,
    topics: &Topics,
    now: TimestampMs,
) -> Result<(), BusError> {
    for (topic, partition) in sub.take_assigned() {
        core.expect_partition(&topic, partition, now);
        if topic == topics.vehicle_locations {
            let rows = bus
                .read_partition(&topics.live_vehicle_table, partition)
                .await?;
            let restored = core.restore_partition(partition, &rows);
            tracing::info!(
                partition,
                restored,
                "Restored the vehicles of an assigned partition"
            );
        }
    }
    Ok(())
}

/// One round of the processor at processing time `now`: restores the partitions a
/// rebalance assigned, processes `batch` (empty when the input is quiet), releases the
/// revoked partitions, advances the watermark and publishes what all that produced.
#[allow(clippy::too_many_arguments)]
async fn step<B: Bus>(
    bus: &B,
    sub: &mut B::Subscription,
    core: &mut Processor,
    topics: &Topics,
    batch: &[Delivery],
    now: TimestampMs,
    out: &mut Vec<Record>,
    stats: &ProcessorStats,
) -> Result<(), BusError> {
    restore_assigned(bus, sub, core, topics, now).await?;
    for delivery in batch {
        core.on_record_at(
            &delivery.record,
            delivery.partition,
            Some(delivery.offset),
            now,
            out,
        );
    }
    // Partitions a rebalance gave to another instance: release their state.
    for (topic, partition) in sub.take_revoked() {
        core.release(&topic, partition, out);
    }
    core.advance(now, out);
    for record in out.drain(..) {
        match bus.publish(record).await {
            Ok(()) => {}
            // One record the bus would not take: counted and said, never fatal.
            Err(BusError::Rejected(why)) => {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                if let Some(more) = REJECTED_LOG.ready() {
                    tracing::warn!(more, "A record to publish was refused: {why}");
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One "record refused" line per 10 s at most.
static REJECTED_LOG: Throttle = Throttle::new(Duration::from_secs(10));

/// Says when records start going to `dead_letters`: once per reason, then a summary
/// with counts at most once a minute while more arrive. Never silent, never a flood.
#[derive(Debug, Default)]
struct DeadLetterLog {
    told: [u64; InvalidEvent::REASONS.len()],
    summary: Option<tokio::time::Instant>,
}

impl DeadLetterLog {
    fn note(&mut self, counts: &ProcessorCounts, topic: &str) {
        let reasons = counts.dead_letter_reasons;
        if reasons == self.told {
            return;
        }
        let new_reason = reasons
            .iter()
            .zip(self.told)
            .any(|(now, told)| *now > 0 && told == 0);
        let due = self
            .summary
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if !new_reason && !due {
            return;
        }
        let by_reason: Vec<String> = InvalidEvent::REASONS
            .iter()
            .zip(reasons)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        tracing::warn!(
            topic,
            total = reasons.iter().sum::<u64>(),
            by_reason = %by_reason.join(", "),
            "Records set aside as dead letters (see the topic for each record and its reason)"
        );
        self.told = reasons;
        self.summary = Some(tokio::time::Instant::now());
    }
}

/// Runs the processor on `inputs` (from [`subscribe`]) until `stop` is cancelled or
/// the input ends. `clock` gives processing time (idle partitions, quiet input);
/// nothing is judged by it but how long the input has been quiet.
///
/// Reads in batches; after each batch advances the watermark, publishes the outputs,
/// then commits the inputs (so a crash re-reads rather than loses). Once a second it
/// advances the watermark even when the input is quiet, so that windows close when
/// traffic stops.
pub async fn run<B: Bus>(
    bus: B,
    inputs: Inputs<B::Subscription>,
    options: RunOptions,
    clock: SharedClock,
    stop: CancellationToken,
    stats: Arc<ProcessorStats>,
) -> Result<ProcessorCounts, RunError> {
    let mut core = load(&options)?;
    core.set_speed(options.speed);
    let baseline = core.counts();
    let Inputs {
        group: mut sub,
        mut side,
    } = inputs;
    let topics = &options.topics;
    let mut side_open = true;
    let mut side_batch = Vec::new();
    let mut batch = Vec::with_capacity(1024);
    let mut out = Vec::with_capacity(1024);
    let mut dead = DeadLetterLog::default();
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
                step(&bus, &mut sub, &mut core, topics, &batch, now, &mut out, &stats).await?;
                for delivery in batch.drain(..) {
                    sub.commit(&delivery)?;
                }
                dead.note(&core.counts().since(&baseline), &topics.dead_letters);
            }
            got = side.recv_many(&mut side_batch, 256), if side_open => {
                side_open = got? > 0;
                for delivery in side_batch.drain(..) {
                    let record = &delivery.record;
                    if record.topic != topics.network {
                        core.on_incident_area(record);
                    } else if &record.key[..] == CLOCK_KEY.as_bytes()
                        && let Ok(reading) = decode::<ClockReading>(&record.payload)
                        && reading.is_valid()
                    {
                        core.follow_clock(reading);
                        stats.set_clock(reading);
                    }
                }
            }
            _ = idle.tick() => {
                let now = clock.now_ms();
                step(&bus, &mut sub, &mut core, topics, &[], now, &mut out, &stats).await?;
            }
            _ = checkpoint.tick(), if options.checkpoint.is_some() => {
                if let Some(path) = &options.checkpoint {
                    save(core.checkpoint(), path).await?;
                }
            }
            _ = stop.cancelled() => break,
        }
        stats.store(&core, &baseline);
    }
    bus.flush().await?;
    if let Some(path) = &options.checkpoint {
        save(core.checkpoint(), path).await?;
    }
    Ok(core.counts().since(&baseline))
}

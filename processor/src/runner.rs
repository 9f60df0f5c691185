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

use crate::health::{Health, Verdict};
use crate::replay::{Published, output_marks};
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
    /// Records behind the end of each assigned input partition: `(topic, partition,
    /// lag)` (on a bus that keeps records; sampled every few seconds).
    lags: Mutex<Vec<(String, i32, i64)>>,
    /// Input partitions assigned to this instance.
    pub assigned: AtomicU64,
    /// Why the processor is not healthy, when it is not (see [`crate::health`]).
    problem: Mutex<Option<String>>,
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

    /// The lag of each assigned input partition: `(topic, partition, records)`.
    pub fn lags(&self) -> Vec<(String, i32, i64)> {
        self.lags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Why the processor is not healthy, when it is not: no partitions while the input
    /// has records, or lag growing for a minute.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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

/// Subscribes to the processor's input topics in consumer group `group` (behind the
/// topics' prefix; [`GROUP`] unless the user names another). Done before [`run`], so
/// that a caller can make sure the processor is listening before anything is published.
pub async fn subscribe<B: Bus>(
    bus: &B,
    topics: &Topics,
    group: &str,
) -> Result<Inputs<B::Subscription>, BusError> {
    let in_group = subscribe_group(bus, topics, group).await?;
    // A group of its own, never committed to: each instance reads everything kept.
    let own = format!(
        "{group}-side-{}-{}",
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
    Ok(Inputs {
        group: in_group,
        side,
    })
}

/// Joins the processor's consumer group `group` on the input topics. A new group
/// starts from the oldest records kept; an existing one resumes after its last commit.
async fn subscribe_group<B: Bus>(
    bus: &B,
    topics: &Topics,
    group: &str,
) -> Result<B::Subscription, BusError> {
    bus.subscribe(
        Subscribe::new(topics.group(group), &crate::inputs(topics)).from(StartFrom::Earliest),
    )
    .await
}

/// Samples the assigned partitions' lag into `stats` and judges the processor's
/// health; returns the verdict, and the partitions with records not read yet.
/// (`offsets` and `assigned` are the core's, copied out: it is not held across waits.)
async fn check_health<B: Bus>(
    bus: &B,
    offsets: Vec<(String, i32, i64)>,
    assigned: std::collections::BTreeSet<(String, i32)>,
    topics: &Topics,
    health: &mut Health,
    stats: &ProcessorStats,
) -> Result<Checked, BusError> {
    let (mut input, mut lags, mut behind, mut empty) = (0, Vec::new(), Vec::new(), Vec::new());
    for topic in crate::inputs(topics) {
        let ends = bus.end_offsets(topic).await?;
        input += ends.iter().sum::<i64>();
        let end = |p: i32| ends.get(p as usize).copied().unwrap_or(0);
        for (t, partition) in assigned.iter().filter(|(t, _)| *t == **topic) {
            let next = offsets
                .iter()
                .find(|(o, p, _)| o == t && p == partition)
                .map_or(0, |o| o.2);
            lags.push((t.clone(), *partition, (end(*partition) - next).max(0)));
            if end(*partition) == 0 {
                empty.push((t.clone(), *partition));
            }
        }
        // Behind: assigned partitions with records after those read; before the group
        // has assigned any (just restarted), those the checkpoint had.
        for (t, partition, next) in offsets.iter().filter(|(t, _, _)| *t == **topic) {
            let mine = assigned.is_empty() || assigned.contains(&(t.clone(), *partition));
            if mine && end(*partition) > *next {
                behind.push((t.clone(), *partition));
            }
        }
    }
    let total = lags.iter().map(|l| l.2).sum();
    let assigned = assigned.len();
    let verdict = health.observe(tokio::time::Instant::now(), assigned, input, total);
    let problem = verdict.problem();
    if let Some(why) = &problem
        && let Some(more) = HEALTH_LOG.ready()
    {
        tracing::warn!(more, "Processor not healthy: {why}");
    }
    *stats.lags.lock().unwrap_or_else(PoisonError::into_inner) = lags;
    stats.assigned.store(assigned as u64, Ordering::Relaxed);
    *stats.problem.lock().unwrap_or_else(PoisonError::into_inner) = problem;
    Ok(Checked {
        verdict,
        behind,
        empty,
    })
}

/// What a health check found.
struct Checked {
    verdict: Verdict,
    /// Partitions with records not read yet.
    behind: Vec<(String, i32)>,
    /// Assigned partitions with no records at all.
    empty: Vec<(String, i32)>,
}

/// With no partitions for this long (while the input has records), the processor
/// leaves its group and joins it afresh (a group can leave a member that rejoined
/// quickly with nothing); four times longer each time after, up to 10 minutes, so that
/// an instance with truly nothing to do (more instances than partitions) does not
/// keep rebalancing its group.
const REJOIN_FIRST: Duration = Duration::from_secs(15);
const REJOIN_MAX: Duration = Duration::from_secs(600);

/// One "not healthy" line per minute at most.
static HEALTH_LOG: Throttle = Throttle::new(Duration::from_secs(60));

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
    /// The consumer group, without the topics' prefix (the one given to [`subscribe`]).
    pub group: String,
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

/// The processor from its checkpoint (when there is one), or a fresh one.
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

/// Checkpoints the state to `path`. With inputs that a bus keeps (`exact`), the
/// outputs are flushed first and where they end is part of the checkpoint, and the
/// group's offsets are committed to the checkpoint's own afterwards: the group never
/// gets ahead of the last checkpoint, and a restart resumes exactly from it.
async fn checkpoint<B: Bus>(
    bus: &B,
    sub: &mut B::Subscription,
    core: &mut Processor,
    topics: &Topics,
    path: &PathBuf,
    exact: bool,
    replay: &Published,
) -> Result<(), RunError> {
    if exact {
        bus.flush().await?;
        // While a replay still owes outputs published before the crash, the marks stay
        // where the restored checkpoint had them: a second crash then reads those
        // outputs back too, and still publishes nothing twice.
        if replay.pending() == 0 {
            core.set_output_marks(output_marks(bus, topics).await?);
        }
    }
    save(core.checkpoint(), path).await?;
    if exact {
        for (topic, partition, next) in core.offsets() {
            if !core.assigned().contains(&(topic.clone(), partition)) {
                continue; // not this instance's (yet, or any more)
            }
            // A partition revoked a moment ago cannot be committed to: the next owner
            // starts from the previous commit, and the checkpoint keeps the offset.
            if let Err(e) = sub.commit_at(&Arc::from(topic), partition, next - 1) {
                tracing::debug!(error = %e, partition, "Offset not committed");
            }
        }
    }
    Ok(())
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
        let resumes = core.resumes(&topic, partition);
        core.expect_partition(&topic, partition, now);
        // A partition the checkpoint covers resumes from it: the live table holds what
        // was published after it, which the replay is about to go through.
        if topic == topics.vehicle_locations && !resumes {
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
    published: &mut Published,
) -> Result<(), BusError> {
    restore_assigned(bus, sub, core, topics, now).await?;
    for delivery in batch {
        fill_gap(bus, core, delivery, now, out).await?;
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
        if published.already(&record) {
            continue; // published before a crash, produced again by the replay
        }
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

/// Reads and processes the records of `delivery`'s partition between the offset the
/// state expects next and `delivery`'s, when the consumer skipped them. A consumer
/// resuming from an offset inside a batch of records may be answered from the next batch
/// (tansu 0.6 does that); on a topic without gaps in its offsets, nothing is lost.
async fn fill_gap<B: Bus>(
    bus: &B,
    core: &mut Processor,
    delivery: &Delivery,
    now: TimestampMs,
    out: &mut Vec<Record>,
) -> Result<(), BusError> {
    let topic = &delivery.record.topic;
    let Some(next) = core.expected_offset(topic, delivery.partition) else {
        return Ok(());
    };
    if delivery.offset <= next || !bus.keeps_records() {
        return Ok(());
    }
    let missed = bus
        .read_range(topic, delivery.partition, next, Some(delivery.offset))
        .await?;
    tracing::info!(
        topic = %topic,
        partition = delivery.partition,
        from = next,
        to = delivery.offset,
        read = missed.len(),
        "Records the consumer skipped were read directly"
    );
    for d in &missed {
        core.on_record_at(&d.record, d.partition, Some(d.offset), now, out);
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
///
/// With a checkpoint on a bus that keeps records (Kafka), the group's offsets are
/// committed with each checkpoint instead, to the offsets it reflects; a restarted
/// processor skips what its restored state already has and does not publish again
/// what it had published before the crash (see [`crate::replay`]): a `kill -9` at any
/// point gives the outputs of an uninterrupted run.
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
    core.restarted(clock.now_ms());
    let exact = options.checkpoint.is_some() && bus.keeps_records();
    if !bus.keeps_records() {
        core.forget_offsets();
    }
    let mut published = Published::default();
    if exact && !core.output_marks().is_empty() {
        published = Published::read_back(&bus, core.output_marks()).await?;
        tracing::info!(
            records = published.pending(),
            "Read back what was published after the checkpoint: it is not published again"
        );
    }
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
    let mut every = tokio::time::interval(options.checkpoint_every.max(Duration::from_secs(1)));
    every.tick().await;
    if exact
        && core.output_marks().is_empty()
        && let Some(path) = &options.checkpoint
    {
        // A first checkpoint before anything is read: a crash before the next one
        // replays from the start without publishing anything twice.
        checkpoint(&bus, &mut sub, &mut core, topics, path, exact, &published).await?;
    }
    let mut health = Health::default();
    let mut health_tick = tokio::time::interval(Duration::from_secs(5));
    let mut rejoin_after = REJOIN_FIRST;
    loop {
        tokio::select! {
            got = sub.recv_many(&mut batch, 1024) => {
                if got? == 0 {
                    break;
                }
                let now = clock.now_ms();
                step(&bus, &mut sub, &mut core, topics, &batch, now, &mut out, &stats, &mut published).await?;
                if exact {
                    batch.clear(); // committed with the next checkpoint
                } else {
                    for delivery in batch.drain(..) {
                        sub.commit(&delivery)?;
                    }
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
                step(&bus, &mut sub, &mut core, topics, &[], now, &mut out, &stats, &mut published).await?;
            }
            _ = health_tick.tick(), if bus.keeps_records() => {
                let (offsets, assigned) = (core.offsets(), core.assigned().clone());
                // Reading the end offsets can take seconds from a slow broker: a stop
                // asked meanwhile is not kept waiting.
                let checked = tokio::select! {
                    checked = check_health(&bus, offsets, assigned, topics, &mut health, &stats) => checked,
                    () = stop.cancelled() => break,
                };
                let verdict = match checked {
                    Ok(checked) => {
                        core.set_behind(&checked.behind);
                        core.set_empty(&checked.empty);
                        let left = published.expire(std::time::Instant::now());
                        if left > 0 {
                            tracing::info!(records = left, "Outputs read back after the restart that the replay did not produce again; let go");
                        }
                        checked.verdict
                    }
                    // The brokers out of reach a moment: looked at again next time.
                    Err(e) => {
                        if let Some(more) = HEALTH_LOG.ready() {
                            tracing::warn!(more, error = %e, "Cannot read the input's end offsets");
                        }
                        Verdict::Healthy
                    }
                };
                if matches!(verdict, Verdict::NoPartitions(d) if d >= rejoin_after) {
                    tracing::warn!("Leaving the consumer group and joining it afresh");
                    drop(sub);
                    sub = subscribe_group(&bus, topics, &options.group).await?;
                    health = Health::default();
                    rejoin_after = (rejoin_after * 4).min(REJOIN_MAX);
                }
            }
            _ = every.tick(), if options.checkpoint.is_some() => {
                if let Some(path) = &options.checkpoint {
                    checkpoint(&bus, &mut sub, &mut core, topics, path, exact, &published).await?;
                }
            }
            _ = stop.cancelled() => break,
        }
        stats.store(&core, &baseline);
    }
    bus.flush().await?;
    if let Some(path) = &options.checkpoint {
        checkpoint(&bus, &mut sub, &mut core, topics, path, exact, &published).await?;
    }
    if published.suppressed > 0 {
        tracing::info!(
            records = published.suppressed,
            "Outputs of the replay after a restart not published again"
        );
    }
    Ok(core.counts().since(&baseline))
}

//! The async shell around [`Processor`]: reads the input topics, feeds the core,
//! publishes what it returns, and commits what it has processed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use streamcity_core::{Bus, BusError, CancellationToken, SharedClock, Subscribe, Subscription, Topics};

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
    /// The watermark, ms since the epoch.
    pub watermark_ms: AtomicI64,
}

impl ProcessorStats {
    fn store(&self, c: ProcessorCounts, watermark: i64) {
        self.records_in.store(c.records_in, Ordering::Relaxed);
        self.records_out.store(c.records_out, Ordering::Relaxed);
        self.dead_letters.store(c.dead_letters, Ordering::Relaxed);
        self.late.store(c.late, Ordering::Relaxed);
        self.alerts_raised.store(c.alerts_raised, Ordering::Relaxed);
        self.watermark_ms.store(watermark, Ordering::Relaxed);
    }
}

/// The consumer group of the processor.
pub const GROUP: &str = "streamcity-processor";

/// Subscribes to the processor's input topics. Done before [`run`], so that a caller
/// can make sure the processor is listening before anything is published.
pub async fn subscribe<B: Bus>(bus: &B, topics: &Topics) -> Result<B::Subscription, BusError> {
    let inputs = [&topics.vehicle_locations, &topics.rider_tapped_on, &topics.traffic_incidents, &topics.city_incidents];
    bus.subscribe(Subscribe::new(GROUP, &inputs)).await
}

/// Runs the processor on `sub` (from [`subscribe`]) until `stop` is cancelled or the
/// input ends.
///
/// Reads in batches; after each batch, advances the watermark from event time,
/// publishes the outputs, then commits the inputs (so a crash re-reads rather than
/// loses). Once a second, when no record has arrived for a while, advances the
/// watermark from the clock so that windows close when traffic stops.
pub async fn run<B: Bus>(
    bus: B,
    mut sub: B::Subscription,
    topics: Topics,
    config: ProcessorConfig,
    clock: SharedClock,
    stop: CancellationToken,
    stats: Arc<ProcessorStats>,
) -> Result<ProcessorCounts, BusError> {
    let mut core = Processor::new(topics.clone(), config);
    let mut batch = Vec::with_capacity(1024);
    let mut out = Vec::with_capacity(1024);
    let mut idle = tokio::time::interval(Duration::from_secs(1));
    let mut quiet_ticks = 0u32;
    loop {
        tokio::select! {
            got = sub.recv_many(&mut batch, 1024) => {
                if got? == 0 {
                    break;
                }
                quiet_ticks = 0;
                let now = clock.now_ms();
                for delivery in &batch {
                    core.on_record(&delivery.record, now, &mut out);
                }
                core.advance_from_events(&mut out);
                for record in out.drain(..) {
                    bus.publish(record).await?;
                }
                for delivery in batch.drain(..) {
                    sub.commit(&delivery)?;
                }
            }
            _ = idle.tick() => {
                quiet_ticks += 1;
                if quiet_ticks >= 2 {
                    core.advance_idle(clock.now_ms(), &mut out);
                    for record in out.drain(..) {
                        bus.publish(record).await?;
                    }
                }
            }
            _ = stop.cancelled() => break,
        }
        stats.store(core.counts(), core.watermark());
    }
    bus.flush().await?;
    Ok(core.counts())
}

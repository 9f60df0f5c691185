//! Feeding the live state from the bus: the subscription, and the loop that applies
//! records and sends a delta every tick.

use std::sync::Arc;

use futures_util::FutureExt;
use streamcity_core::{Bus, BusError, CancellationToken, Subscribe, Subscription};

use super::Live;

/// The consumer group prefix of dashboards.
pub const GROUP: &str = "streamcity-dashboard";

/// Subscribes to what the dashboard shows. Done before [`run_ingest`], so that a
/// caller can make sure the dashboard is listening before anything is published.
pub async fn subscribe<B: Bus>(bus: &B, live: &Live) -> Result<B::Subscription, BusError> {
    bus.subscribe(Subscribe::new(live.topics.group(GROUP), &live.inputs()))
        .await
}

/// Subscribes as a dashboard that builds its picture from what the bus keeps: a group
/// of its own (every dashboard reads everything) from the earliest records, so the
/// compacted live table and the alerts are replayed on start.
pub async fn subscribe_replaying<B: Bus>(
    bus: &B,
    live: &Live,
    instance: &str,
) -> Result<B::Subscription, BusError> {
    let spec = Subscribe::new(
        live.topics.group(&format!("{GROUP}-{instance}")),
        &live.inputs(),
    )
    .from(streamcity_core::StartFrom::Earliest);
    bus.subscribe(spec).await
}

/// Records taken from the bus at a time.
const BATCH: usize = 1024;
/// Batches already waiting that are taken before a delta is sent.
const BURST_BATCHES: usize = 64;

/// Sends a delta when anything changed, and notes when in `last_sent`: the start of
/// the send, so that the period is counted from send to send, not from the end of one.
fn send_delta(live: &Live, last_sent: &mut tokio::time::Instant) {
    let started = tokio::time::Instant::now();
    if live.tick() {
        *last_sent = started;
    }
}

/// Feeds `live` from `sub` (from [`subscribe`]) and sends a delta every tick, until
/// `stop` is cancelled.
pub async fn run_ingest<S: Subscription>(
    mut sub: S,
    live: Arc<Live>,
    stop: CancellationToken,
) -> Result<(), BusError> {
    let mut batch = Vec::with_capacity(BATCH);
    let period = live.config.tick;
    // At most one delta per period: sent as soon as data arrives when the last one is
    // a period old, otherwise exactly a period after it (not on a free-running timer,
    // whose phase could hold an update back almost two periods).
    let mut last_sent = tokio::time::Instant::now();
    let mut unsent = false;
    // Now and then, vehicles long silent leave the picture: memory stays bounded.
    let mut housekeeping = tokio::time::interval(std::time::Duration::from_secs(10));
    // The charts' figures and the vehicles' trails, sampled in wall time.
    let mut sampling = tokio::time::interval(
        live.config
            .series_every
            .max(std::time::Duration::from_millis(10)),
    );
    sampling.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = housekeeping.tick() => live.forget_stale_vehicles(),
            _ = sampling.tick() => live.sample_series(),
            got = sub.recv_many(&mut batch, BATCH) => {
                let mut got = got?;
                if got == 0 {
                    break;
                }
                // A burst (a simulator step, a consumer fetch) is taken whole when it
                // is already waiting, so that it goes out in one delta rather than
                // its tail a period later; bounded, so a flood still sends deltas.
                for round in 1.. {
                    for delivery in batch.drain(..) {
                        live.apply(&delivery.record);
                        sub.commit(&delivery)?;
                    }
                    if got < BATCH || round == BURST_BATCHES {
                        break;
                    }
                    match sub.recv_many(&mut batch, BATCH).now_or_never() {
                        Some(more) => got = more?,
                        None => break,
                    }
                }
                unsent = true;
                if last_sent.elapsed() >= period {
                    send_delta(&live, &mut last_sent);
                    unsent = false;
                }
            }
            _ = tokio::time::sleep_until(last_sent + period), if unsent => {
                send_delta(&live, &mut last_sent);
                unsent = false;
            }
            _ = stop.cancelled() => break,
        }
    }
    Ok(())
}

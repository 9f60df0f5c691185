//! The async shell around the simulation: paces it with a [`Clock`] and publishes its
//! events to the bus, keyed for partitioning (vehicle id, stop id, incident id).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use streamcity_core::clock::wall_clock_ms;
use streamcity_core::throttle::Throttle;
use streamcity_core::{
    Bus, BusError, CancellationToken, ClockReading, Record, SharedClock, Topics, encode,
};
use streamcity_network::topic::publish_clock;

use crate::pace::{Pace, Verdict};
use crate::sim::{SimEvent, Simulation};

/// One "record refused" line per 10 s at most.
static REJECTED_LOG: Throttle = Throttle::new(Duration::from_secs(10));

/// Live counters of a producer, for progress output and `/metrics`.
#[derive(Debug, Default)]
pub struct ProducerStats {
    /// Records handed to the bus.
    pub sent: AtomicU64,
    /// Records the bus confirmed (on Kafka: acknowledged by the brokers).
    pub delivered: AtomicU64,
    /// Records the bus refused.
    pub failed: AtomicU64,
    /// Simulated time reached, ms since the epoch.
    pub sim_time_ms: AtomicU64,
    /// Simulated seconds per real second achieved over the last sample, as `f64` bits
    /// (0 before the first).
    pub achieved_speed: AtomicU64,
}

impl ProducerStats {
    /// The speed achieved over the last sample, when known.
    pub fn achieved_speed(&self) -> Option<f64> {
        let bits = self.achieved_speed.load(Ordering::Relaxed);
        (bits != 0).then(|| f64::from_bits(bits))
    }
}

/// One "cannot keep the speed" line per minute at most.
static BEHIND_LOG: Throttle = Throttle::new(Duration::from_secs(60));

/// Turns a simulation event into its bus record. Vehicle reports are keyed by vehicle
/// and partitioned by line, so that each processor instance sees whole lines (for
/// bunching and gapping); a vehicle keeps its line, so its reports stay in order.
pub fn to_record(topics: &Topics, event: &SimEvent) -> Record {
    match event {
        SimEvent::Position(p) => Record::new(
            &topics.vehicle_locations,
            Bytes::copy_from_slice(p.vehicle_id.as_bytes()),
            encode(p),
            p.timestamp,
        )
        .partitioned_by(p.route_id.as_bytes()),
        SimEvent::TapOn(t) => Record::new(
            &topics.rider_tapped_on,
            Bytes::copy_from_slice(t.stop_id.as_bytes()),
            encode(t),
            t.timestamp,
        ),
        SimEvent::TapOff(t) => Record::new(
            &topics.rider_tapped_off,
            Bytes::copy_from_slice(t.stop_id.as_bytes()),
            encode(t),
            t.timestamp,
        ),
        SimEvent::Traffic(i) => Record::new(
            &topics.traffic_incidents,
            Bytes::copy_from_slice(i.incident_id.as_bytes()),
            encode(i),
            i.timestamp,
        ),
        SimEvent::City(i) => Record::new(
            &topics.city_incidents,
            Bytes::copy_from_slice(i.event_id.as_bytes()),
            encode(i),
            i.timestamp,
        ),
    }
}

/// When a producer run ends by itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// After this many records (`--max`).
    pub max_events: Option<u64>,
    /// After this much real time (`--duration`).
    pub duration: Option<Duration>,
}

/// How a producer run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Stopped from outside (Ctrl+C, shutdown).
    Stopped,
    /// `--max` records were sent.
    MaxEvents,
    /// `--duration` passed.
    Duration,
}

/// Runs the simulation in step with `clock`, publishing everything it produces, until
/// `stop` is cancelled or a limit is reached; then flushes the bus.
///
/// With `share_clock`, the clock is published on the `network` topic when the run
/// starts (and with speed 0 when it ends), so that the other stages follow it.
///
/// When the simulation cannot keep up with the clock (a huge fleet at a high speed-up),
/// it runs flat out and the simulated time falls behind the clock rather than skipping;
/// it says so, with the speed it achieves, and (with `share_clock`) shares a clock that
/// follows what is really simulated (see [`crate::pace`]).
#[allow(clippy::too_many_arguments)]
pub async fn run<B: Bus>(
    mut sim: Simulation,
    bus: B,
    topics: Topics,
    clock: SharedClock,
    limits: Limits,
    share_clock: bool,
    stop: CancellationToken,
    stats: Arc<ProducerStats>,
) -> Result<Ending, BusError> {
    if share_clock {
        publish_clock(&bus, &topics, ClockReading::of(&*clock)).await?;
    }
    let deadline = limits.duration.map(|d| tokio::time::Instant::now() + d);
    let mut pace = Pace::default();
    let mut remaining = limits.max_events.unwrap_or(u64::MAX);
    let mut events = Vec::new();
    let ending = loop {
        if remaining == 0 {
            break Ending::MaxEvents;
        }
        let delay = clock.real_delay_until(sim.next_tick_at());
        let wake = tokio::time::Instant::now() + delay;
        if deadline.is_some_and(|d| d <= wake) {
            if let Some(d) = deadline {
                tokio::select! {
                    _ = tokio::time::sleep_until(d) => {}
                    _ = stop.cancelled() => break Ending::Stopped,
                }
            }
            break Ending::Duration;
        }
        if !delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => break Ending::Stopped,
            }
        } else if stop.is_cancelled() {
            break Ending::Stopped;
        }
        sim.step(&mut events);
        let take = events.len().min(remaining.min(usize::MAX as u64) as usize);
        remaining -= take as u64;
        for event in events.drain(..).take(take) {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            match bus.publish(to_record(&topics, &event)).await {
                Ok(()) => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
                // One record the bus would not take: counted and said, never fatal.
                Err(BusError::Rejected(why)) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    if let Some(more) = REJECTED_LOG.ready() {
                        tracing::warn!(more, "A record was refused: {why}");
                    }
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            };
        }
        events.clear();
        stats
            .sim_time_ms
            .store(sim.now().max(0) as u64, Ordering::Relaxed);
        let wall = wall_clock_ms();
        let speed = clock.speed();
        match pace.sample(wall, sim.now(), clock.now_ms(), speed) {
            Verdict::Same => continue,
            Verdict::Behind {
                achieved,
                behind_ms,
            } => {
                stats
                    .achieved_speed
                    .store(achieved.max(f64::MIN_POSITIVE).to_bits(), Ordering::Relaxed);
                if let Some(more) = BEHIND_LOG.ready() {
                    tracing::warn!(
                        more,
                        "The simulation cannot keep --speed {speed}: it runs at {achieved:.2}x and is {} s behind the clock; the shared clock follows what is simulated (fewer vehicles or a lower --speed keep up)",
                        behind_ms / 1000
                    );
                }
                if share_clock {
                    let reading = ClockReading {
                        sim_ms: sim.now(),
                        wall_ms: wall,
                        speed: achieved,
                    };
                    publish_clock(&bus, &topics, reading).await?;
                }
            }
            Verdict::KeepingUp => {
                stats
                    .achieved_speed
                    .store(speed.to_bits(), Ordering::Relaxed);
                tracing::info!("The simulation keeps --speed {speed} again");
                if share_clock {
                    let reading = ClockReading {
                        sim_ms: sim.now(),
                        wall_ms: wall,
                        speed,
                    };
                    publish_clock(&bus, &topics, reading).await?;
                }
            }
        }
    };
    if share_clock {
        publish_clock(&bus, &topics, ClockReading::stopped(sim.now())).await?;
    }
    bus.flush().await?;
    Ok(ending)
}

//! The async shell around the simulation: paces it with a [`Clock`] and publishes its
//! events to the bus, keyed for partitioning (vehicle id, stop id, incident id).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use streamcity_core::{Bus, BusError, CancellationToken, Record, SharedClock, Topics, encode};

use crate::sim::{SimCounts, SimEvent, Simulation};

/// Live counters of a producer, for progress output and `/metrics`.
#[derive(Debug, Default)]
pub struct ProducerStats {
    /// Records handed to the bus.
    pub sent: AtomicU64,
    /// Records the bus refused.
    pub failed: AtomicU64,
    /// Simulated time reached, ms since the epoch.
    pub sim_time_ms: AtomicU64,
}

/// Turns a simulation event into its bus record.
pub fn to_record(topics: &Topics, event: &SimEvent) -> Record {
    match event {
        SimEvent::Position(p) => {
            Record::new(&topics.vehicle_locations, Bytes::copy_from_slice(p.vehicle_id.as_bytes()), encode(p), p.timestamp)
        }
        SimEvent::TapOn(t) => {
            Record::new(&topics.rider_tapped_on, Bytes::copy_from_slice(t.stop_id.as_bytes()), encode(t), t.timestamp)
        }
        SimEvent::TapOff(t) => {
            Record::new(&topics.rider_tapped_off, Bytes::copy_from_slice(t.stop_id.as_bytes()), encode(t), t.timestamp)
        }
        SimEvent::Traffic(i) => {
            Record::new(&topics.traffic_incidents, Bytes::copy_from_slice(i.incident_id.as_bytes()), encode(i), i.timestamp)
        }
        SimEvent::City(i) => {
            Record::new(&topics.city_incidents, Bytes::copy_from_slice(i.event_id.as_bytes()), encode(i), i.timestamp)
        }
    }
}

/// Runs the simulation in step with `clock`, publishing everything it produces, until
/// `stop` is cancelled; then flushes the bus and returns what was produced.
///
/// When the simulation cannot keep up with the clock (a huge fleet at a high speed-up),
/// it runs flat out and the simulated time falls behind the clock rather than skipping.
pub async fn run<B: Bus>(
    mut sim: Simulation,
    bus: B,
    topics: Topics,
    clock: SharedClock,
    stop: CancellationToken,
    stats: Arc<ProducerStats>,
) -> Result<SimCounts, BusError> {
    let mut events = Vec::new();
    while !stop.is_cancelled() {
        let delay = clock.real_delay_until(sim.next_tick_at());
        if !delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => break,
            }
        }
        sim.step(&mut events);
        for event in events.drain(..) {
            match bus.publish(to_record(&topics, &event)).await {
                Ok(()) => stats.sent.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            };
        }
        stats.sim_time_ms.store(sim.now().max(0) as u64, Ordering::Relaxed);
    }
    bus.flush().await?;
    Ok(sim.counts())
}

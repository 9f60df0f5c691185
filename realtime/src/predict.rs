//! Arrival predictions for the calls a vehicle still has to make.
//!
//! Not the vehicle's delay copied down its trip: a late vehicle makes up part of each
//! scheduled running time (it runs at up to its top speed, the timetable at its
//! average), dwells at each stop at least as long as boarding takes, and at a
//! timepoint an early one waits for its departure time. The naive constant-delay
//! prediction is kept beside it ([`Call::naive_arrival_ms`]), to measure against.

use streamcity_core::{VehiclePosition, VehicleStatus};
use streamcity_network::Network;
use streamcity_network::model::Trip;

/// The share of a segment's scheduled running time a late vehicle makes up.
pub const RECOVERY: f64 = 0.25;
/// The least time a vehicle stands at a stop where riders may board or alight, ms.
pub const MIN_DWELL_MS: i64 = 12_000;

/// A call still to come, predicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Index into the trip's stop times.
    pub index: usize,
    /// Its `stop_sequence` in the feed.
    pub sequence: u32,
    /// Predicted arrival, ms since the epoch.
    pub arrival_ms: i64,
    /// Predicted departure, ms since the epoch.
    pub departure_ms: i64,
    /// Scheduled arrival, ms since the epoch.
    pub scheduled_arrival_ms: i64,
    /// Scheduled departure, ms since the epoch.
    pub scheduled_departure_ms: i64,
    /// The naive prediction: the scheduled arrival plus the vehicle's delay now.
    pub naive_arrival_ms: i64,
}

/// `p`'s trip, when its run's times count from ([`Network::run_base_ms`]), and the
/// index of its next call: the one named, and on a trip calling there twice, the one
/// the timetable has nearest to where the vehicle is in it. `None` for a vehicle on no
/// trip of the timetable.
pub fn next_call<'a>(network: &'a Network, p: &VehiclePosition) -> Option<(&'a Trip, i64, usize)> {
    let trip = network.trip(&p.trip_id)?;
    let base = network.run_base_ms(
        &p.trip_id,
        p.start_date.as_deref()?,
        p.start_time.as_deref()?,
    )?;
    let on_schedule = p.timestamp - i64::from(p.delay_s) * 1000;
    let next = trip
        .stop_times
        .iter()
        .enumerate()
        .filter(|(_, st)| st.stop_id == p.next_stop_id)
        .min_by_key(|(_, st)| (base + i64::from(st.arrival_s) * 1000 - on_schedule).abs())
        .map(|(k, _)| k)?;
    Some((trip, base, next))
}

/// The calls `p`'s trip still has to make, from its next stop, predicted as of
/// `now_ms` (at or after the report: a call not reached is still to come then); `None`
/// for a vehicle on no trip of the timetable.
pub fn predict(network: &Network, p: &VehiclePosition, now_ms: i64) -> Option<Vec<Call>> {
    let (trip, base, next) = next_call(network, p)?;
    let at = |s: u32| base + i64::from(s) * 1000;
    let now = p.timestamp.max(now_ms);
    let delay_ms = i64::from(p.delay_s) * 1000;
    let on_schedule = p.timestamp - delay_ms;
    let mut calls = Vec::with_capacity(trip.stop_times.len() - next);
    // Where the vehicle is in the timetable, and how late, as it goes.
    let mut late = delay_ms;
    let mut from = on_schedule;
    let at_stop = p.status == VehicleStatus::StoppedAt || p.status == VehicleStatus::Layover;
    if at_stop && next + 1 == trip.stop_times.len() {
        return Some(Vec::new()); // at its last stop: the trip is over
    }
    // Each call after the one before: running between two takes a second at least.
    let mut previous_departure = i64::MIN;
    for (k, st) in trip.stop_times.iter().enumerate().skip(next) {
        let (arrive, leave) = (at(st.arrival_s), at(st.departure_s));
        let arrival = if k == next && at_stop {
            // Standing there now: it arrived already.
            now.min(arrive + late)
        } else {
            let running = (arrive - from).max(0);
            if late > 0 {
                late -= late.min((running as f64 * RECOVERY) as i64);
            }
            (arrive + late).max(now + 1000)
        }
        .max(previous_departure.saturating_add(1000));
        let boarding = st.pickup || st.drop_off;
        let mut departure = arrival + if boarding { MIN_DWELL_MS } else { 0 };
        if st.timepoint {
            departure = departure.max(leave);
        }
        if k == next && at_stop {
            departure = departure.max(now);
        }
        late = departure - leave;
        from = leave;
        previous_departure = departure;
        calls.push(Call {
            index: k,
            sequence: st.sequence.unwrap_or(k as u32 + 1),
            arrival_ms: arrival,
            departure_ms: departure,
            scheduled_arrival_ms: arrive,
            scheduled_departure_ms: leave,
            naive_arrival_ms: arrive + delay_ms,
        });
    }
    Some(calls)
}

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

use crate::accuracy::Ledger;
use crate::learned::Learned;

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
    /// Passed by without stopping (the stop is on a closed road).
    pub skipped: bool,
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
/// `now_ms` (at or after the report: a call not reached is still to come then) with
/// what the vehicles have shown of the stretches ahead; `None` for a vehicle on no
/// trip of the timetable.
///
/// Each stretch takes the longer of the fastest vehicles have run it lately and the
/// pace they keep when on time ([`Learned::running`]); each stop as long as vehicles
/// stand there lately (at least [`MIN_DWELL_MS`] where riders board or alight); an
/// early vehicle waits at a timepoint for its departure.
pub fn predict(
    network: &Network,
    learned: &Learned,
    p: &VehiclePosition,
    now_ms: i64,
) -> Option<Vec<Call>> {
    predict_passing(network, learned, p, now_ms, |_| false)
}

/// [`predict`], with the calls `skip` names (by index) passed by without stopping:
/// neither dwell nor a wait for the timetable there.
pub fn predict_passing(
    network: &Network,
    learned: &Learned,
    p: &VehiclePosition,
    now_ms: i64,
    skip: impl Fn(usize) -> bool,
) -> Option<Vec<Call>> {
    let (trip, base, next) = next_call(network, p)?;
    let at = |s: u32| base + i64::from(s) * 1000;
    let now = p.timestamp.max(now_ms);
    let delay_ms = i64::from(p.delay_s) * 1000;
    let calls = &trip.stop_times;
    let stops = &network.patterns[trip.pattern].stops;
    let route = network.route_position(&trip.route_id).unwrap_or(usize::MAX);
    let at_stop = p.status == VehicleStatus::StoppedAt || p.status == VehicleStatus::Layover;
    if at_stop && next + 1 == calls.len() {
        return Some(Vec::new()); // at its last stop: the trip is over
    }
    let mut out = Vec::with_capacity(calls.len() - next);
    let mut previous_departure = i64::MIN;
    for (k, st) in calls.iter().enumerate().skip(next) {
        let (arrive, leave) = (at(st.arrival_s), at(st.departure_s));
        let arrival = if k == next && at_stop {
            // Standing there now: it arrived already.
            learned.arrived_ms(&p.vehicle_id).unwrap_or(now).min(now)
        } else if k == 0 {
            // On its way to the first stop of its run.
            arrive.max(now + 1000)
        } else {
            let from = &calls[k - 1];
            let scheduled = arrive - at(from.departure_s);
            let running = learned.running(route, stops[k - 1], stops[k]);
            if k == next {
                // Between two stops: the part of the stretch still to run.
                let on_schedule = p.timestamp - delay_ms;
                let done = if scheduled > 0 {
                    ((on_schedule - at(from.departure_s)) as f64 / scheduled as f64).clamp(0.0, 1.0)
                } else {
                    1.0
                };
                let rest = (scheduled as f64 * (1.0 - done)) as i64;
                // Broken down: it stands until repaired first.
                let from = p.timestamp + learned.repair_left_ms(&p.vehicle_id, now);
                from + running.time_ms(rest, arrive - from)
            } else {
                previous_departure + running.time_ms(scheduled, arrive - previous_departure)
            }
            .max(now + 1000)
        }
        .max(previous_departure.saturating_add(1000));
        let skipped = k > next && k + 1 < calls.len() && skip(k);
        let boarding = st.pickup || st.drop_off;
        let least = if boarding { MIN_DWELL_MS } else { 0 };
        let dwell = learned.dwell_ms(stops[k]).unwrap_or(least).max(least);
        let mut departure = if skipped { arrival } else { arrival + dwell };
        if (st.timepoint || k == 0) && !skipped {
            departure = departure.max(leave);
        }
        if k == next && at_stop {
            departure = departure.max(now);
        }
        previous_departure = departure;
        out.push(Call {
            index: k,
            sequence: st.sequence.unwrap_or(k as u32 + 1),
            arrival_ms: arrival,
            departure_ms: departure,
            scheduled_arrival_ms: arrive,
            scheduled_departure_ms: leave,
            naive_arrival_ms: arrive + delay_ms,
            skipped,
        });
    }
    Some(out)
}

/// The model and its measure together: each vehicle report teaches the model
/// ([`Learned::observe`]), then settles and samples its predictions ([`Ledger`]).
#[derive(Debug, Default)]
pub struct Predictor {
    /// What the vehicles have shown of the network.
    pub learned: Learned,
    /// The predictions sampled and what came of them.
    pub ledger: Ledger,
}

impl Predictor {
    /// Takes in a vehicle report.
    pub fn on_report(&mut self, network: &Network, p: &VehiclePosition) {
        self.learned.observe(network, p);
        self.ledger.on_report(network, &self.learned, p);
    }

    /// Forgets vehicle `id` (its row was deleted).
    pub fn forget_vehicle(&mut self, id: &str) {
        self.learned.forget_vehicle(id);
        self.ledger.forget_vehicle(id);
    }
}

//! `TripUpdates`: for every trip a vehicle is running or about to start (the next run
//! of its block, its delay carried over), a predicted
//! arrival and departure at each stop still to come ([`crate::predict`]), the
//! vehicle, and the trip's delay now; stops a closed road takes out of service as
//! SKIPPED; and the runs a suspended line will not run as CANCELED.

use std::collections::HashSet;

use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::{Id, VehiclePosition, VehicleStatus};
use streamcity_network::calendar::service_time;
use streamcity_network::{Date, Network};

use crate::learned::Learned;
use crate::predict::predict_passing;
use crate::proto::{self, trip_update as tu};
use crate::{feed, trip_descriptor, unscheduled, vehicle_descriptor};

/// How far ahead runs of a suspended line are cancelled when no restoration time is
/// known, ms.
pub const CANCEL_AHEAD_MS: i64 = 3_600_000;

/// What the city is doing to service now.
#[derive(Debug, Clone, Default)]
pub struct Disruptions {
    /// Lines suspended, and when service is expected back (`None`: unknown).
    pub suspended: Vec<(Id, Option<i64>)>,
    /// Closed roads: buses and trams pass by the stops inside.
    pub closed: Vec<(LatLon, f64)>,
}

impl Disruptions {
    /// Whether the stop `stop_id` is on a closed road for vehicles of `route_id`.
    fn passes_by(&self, network: &Network, route_id: &str, stop_id: &str) -> bool {
        if self.closed.is_empty()
            || !network
                .route(route_id)
                .is_some_and(|r| r.mode.in_street_traffic())
        {
            return false;
        }
        let Some(stop) = network.stop(stop_id) else {
            return false;
        };
        let at = LatLon::new(stop.lat, stop.lon);
        self.closed
            .iter()
            .any(|(centre, radius_m)| distance_m(at, *centre) <= *radius_m)
    }
}

/// The entity id of a run: its trip and start, stable while it runs.
fn run_id(trip_id: &str, start_time: &str) -> String {
    format!("{trip_id}@{start_time}")
}

/// The `TripUpdates` entity of the run vehicle `p` is on, its id the run's
/// (`trip_id@start_time`); `None` for a vehicle on no trip of the timetable.
pub fn entity(
    network: &Network,
    learned: &Learned,
    p: &VehiclePosition,
    now_ms: i64,
    disruptions: &Disruptions,
) -> Option<proto::FeedEntity> {
    let trip = network.trip(&p.trip_id)?;
    let skip =
        |k: usize| disruptions.passes_by(network, &trip.route_id, &trip.stop_times[k].stop_id);
    let calls = predict_passing(network, learned, p, now_ms, skip).filter(|c| !c.is_empty())?;
    let unscheduled = unscheduled(trip);
    let event = |time_ms: i64, scheduled_ms: i64| proto::trip_update::StopTimeEvent {
        time: Some(time_ms.div_euclid(1000)),
        delay: (!unscheduled).then(|| ((time_ms - scheduled_ms) / 1000) as i32),
        ..Default::default()
    };
    let last = trip.stop_times.len() - 1;
    let mut updates = Vec::with_capacity(calls.len());
    updates.extend(
        calls
            .iter()
            // A run without scheduled times cannot name a call skipped (GTFS-realtime
            // wants every update of it UNSCHEDULED): its skipped calls are left out.
            .filter(|c| !(c.skipped && unscheduled))
            .map(|c| {
                let stop = Some(trip.stop_times[c.index].stop_id.to_string());
                if c.skipped {
                    return tu::StopTimeUpdate {
                        stop_sequence: Some(c.sequence),
                        stop_id: stop,
                        schedule_relationship: Some(
                            tu::stop_time_update::ScheduleRelationship::Skipped as i32,
                        ),
                        ..Default::default()
                    };
                }
                tu::StopTimeUpdate {
                    stop_sequence: Some(c.sequence),
                    stop_id: stop,
                    // No arrival at the first stop, no departure from the last.
                    arrival: (c.index > 0).then(|| event(c.arrival_ms, c.scheduled_arrival_ms)),
                    departure: (c.index < last)
                        .then(|| event(c.departure_ms, c.scheduled_departure_ms)),
                    // A run of frequencies without exact times has no scheduled times.
                    schedule_relationship: Some(if unscheduled {
                        tu::stop_time_update::ScheduleRelationship::Unscheduled as i32
                    } else {
                        tu::stop_time_update::ScheduleRelationship::Scheduled as i32
                    }),
                    ..Default::default()
                }
            }),
    );
    let descriptor = trip_descriptor(network, p);
    Some(proto::FeedEntity {
        id: run_id(&p.trip_id, p.start_time.as_deref().unwrap_or_default()),
        trip_update: Some(proto::TripUpdate {
            trip: descriptor,
            vehicle: Some(vehicle_descriptor(p)),
            stop_time_update: updates,
            timestamp: Some((p.timestamp / 1000).max(0) as u64),
            delay: (!unscheduled).then_some(p.delay_s),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// How long a vehicle takes at the end of a run before it can start the next one of its
/// block at the earliest, ms.
pub const MIN_TURN_MS: i64 = 60_000;
/// How far ahead the next run of a vehicle's block is predicted, ms.
pub const NEXT_RUN_AHEAD_MS: i64 = 30 * 60_000;

/// The `TripUpdates` entity of the run vehicle `p` makes next in its block, when it
/// is due within [`NEXT_RUN_AHEAD_MS`]: it starts when scheduled, or when the vehicle
/// can, after its predicted arrival at the end of this run (a late vehicle's delay
/// carries over). Without the vehicle named: it is not on that run yet.
pub fn next_run(
    network: &Network,
    learned: &Learned,
    p: &VehiclePosition,
    now_ms: i64,
    disruptions: &Disruptions,
) -> Option<proto::FeedEntity> {
    let next = network.next_in_block(&p.trip_id)?;
    let date = p.start_date.as_deref()?;
    let start_time = service_time(next.start_s());
    let base = network.run_base_ms(&next.trip_id, date, &start_time)?;
    let first = next.stop_times.first()?;
    let scheduled = base + i64::from(first.departure_s) * 1000;
    if scheduled - now_ms.max(p.timestamp) > NEXT_RUN_AHEAD_MS {
        return None;
    }
    let ends = predict_passing(network, learned, p, now_ms, |_| false)?
        .last()
        .map_or(p.timestamp, |c| c.arrival_ms);
    let ready = ends + MIN_TURN_MS;
    let layover = VehiclePosition {
        trip_id: next.trip_id.clone(),
        route_id: next.route_id.clone(),
        next_stop_id: first.stop_id.clone(),
        status: VehicleStatus::Layover,
        timestamp: ready.max(p.timestamp),
        delay_s: ((ready - scheduled).max(0) / 1000) as i32,
        start_time: Some(Id::from(start_time)),
        ..p.clone()
    };
    let mut e = entity(network, learned, &layover, now_ms, disruptions)?;
    if let Some(tu) = &mut e.trip_update {
        tu.vehicle = None;
        tu.timestamp = Some((p.timestamp / 1000).max(0) as u64);
    }
    Some(e)
}

/// The runs `vehicles` are on their way on (not laying over before them): runs of
/// suspended lines that are not cancelled, as (trip_id, start_time).
pub fn moving_runs<'a>(
    vehicles: impl IntoIterator<Item = &'a VehiclePosition>,
) -> HashSet<(&'a str, &'a str)> {
    vehicles
        .into_iter()
        .filter(|p| p.status != VehicleStatus::Layover)
        .filter_map(|p| Some((p.trip_id.as_str(), p.start_time.as_deref()?)))
        .collect()
}

/// The runs of suspended lines due to start from now until service is expected back
/// (at most [`CANCEL_AHEAD_MS`] ahead), leaving out those `moving` names (already on
/// their way: they finish their run): CANCELED.
pub fn cancelled(
    network: &Network,
    now_ms: i64,
    disruptions: &Disruptions,
    moving: &HashSet<(&str, &str)>,
) -> Vec<proto::FeedEntity> {
    let mut out = Vec::new();
    if disruptions.suspended.is_empty() {
        return out;
    }
    // How far ahead each suspended line's runs are cancelled: until its service is
    // expected back, at most CANCEL_AHEAD_MS.
    let until = |route: &str| {
        disruptions
            .suspended
            .iter()
            .filter(|(r, _)| r == route)
            .map(|(_, until)| {
                until
                    .unwrap_or(now_ms + CANCEL_AHEAD_MS)
                    .min(now_ms + CANCEL_AHEAD_MS)
            })
            .max()
    };
    let today = network.local_date(now_ms);
    // Today's service day, and yesterday's for its trips past midnight.
    for date in [Date::from_days(today.days() - 1), today] {
        let base = network.service_day_start_ms(date);
        let from_s = (now_ms - base).div_euclid(1000);
        let to_s = (now_ms + CANCEL_AHEAD_MS - base).div_euclid(1000);
        for (t, start_s) in network.runs_starting(date, from_s, to_s) {
            let trip = &network.trips[t];
            match until(&trip.route_id) {
                Some(to_ms) if base + i64::from(start_s) * 1000 <= to_ms => {}
                _ => continue,
            }
            let start_time = service_time(start_s);
            if moving.contains(&(trip.trip_id.as_str(), start_time.as_str())) {
                continue;
            }
            out.push(proto::FeedEntity {
                id: run_id(&trip.trip_id, &start_time),
                trip_update: Some(proto::TripUpdate {
                    trip: proto::TripDescriptor {
                        trip_id: Some(trip.trip_id.to_string()),
                        route_id: Some(trip.route_id.to_string()),
                        direction_id: Some(u32::from(trip.direction_id)),
                        start_time: Some(start_time),
                        start_date: Some(format!("{:08}", date.0)),
                        schedule_relationship: Some(
                            proto::trip_descriptor::ScheduleRelationship::Canceled as i32,
                        ),
                        ..Default::default()
                    },
                    timestamp: Some((now_ms / 1000).max(0) as u64),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    out
}

/// The `TripUpdates` feed at `now_ms`: the trips `vehicles` run or are about to start,
/// and the runs the `disruptions` cancel; entities in id order.
pub fn trip_updates<'a>(
    network: &Network,
    learned: &Learned,
    now_ms: i64,
    vehicles: impl IntoIterator<Item = &'a VehiclePosition>,
    disruptions: &Disruptions,
) -> proto::FeedMessage {
    let vehicles: Vec<&VehiclePosition> = vehicles.into_iter().collect();
    // A vehicle laying over before a run that will not run is not running it.
    let moving = moving_runs(vehicles.iter().copied());
    let mut entities = cancelled(network, now_ms, disruptions, &moving);
    entities.reserve(vehicles.len());
    let cancelled: HashSet<String> = entities.iter().map(|e| e.id.clone()).collect();
    entities.extend(
        vehicles
            .into_iter()
            .flat_map(|p| {
                [
                    entity(network, learned, p, now_ms, disruptions),
                    next_run(network, learned, p, now_ms, disruptions),
                ]
            })
            .flatten()
            .filter(|e| !cancelled.contains(&e.id)),
    );
    feed(now_ms, entities)
}

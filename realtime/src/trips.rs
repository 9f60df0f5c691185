//! `TripUpdates`: for every trip a vehicle is running, a predicted arrival and
//! departure at each stop still to come ([`crate::predict`]), the vehicle, and the
//! trip's delay now.

use streamcity_core::VehiclePosition;
use streamcity_network::Network;

use crate::learned::Learned;
use crate::predict::predict;
use crate::proto::{self, trip_update as tu};
use crate::{feed, trip_descriptor, unscheduled, vehicle_descriptor};

/// The entity of one vehicle's trip; `None` for a vehicle on no trip of the timetable.
fn entity(
    network: &Network,
    learned: &Learned,
    p: &VehiclePosition,
    now_ms: i64,
) -> Option<proto::FeedEntity> {
    let calls = predict(network, learned, p, now_ms).filter(|c| !c.is_empty())?;
    let trip = network.trip(&p.trip_id)?;
    let unscheduled = unscheduled(trip);
    let event = |time_ms: i64, scheduled_ms: i64| proto::trip_update::StopTimeEvent {
        time: Some(time_ms.div_euclid(1000)),
        delay: (!unscheduled).then(|| ((time_ms - scheduled_ms) / 1000) as i32),
        ..Default::default()
    };
    let last = trip.stop_times.len() - 1;
    let updates = calls
        .iter()
        .map(|c| tu::StopTimeUpdate {
            stop_sequence: Some(c.sequence),
            stop_id: Some(trip.stop_times[c.index].stop_id.to_string()),
            // No arrival at the first stop, no departure from the last.
            arrival: (c.index > 0).then(|| event(c.arrival_ms, c.scheduled_arrival_ms)),
            departure: (c.index < last).then(|| event(c.departure_ms, c.scheduled_departure_ms)),
            schedule_relationship: Some(
                tu::stop_time_update::ScheduleRelationship::Scheduled as i32,
            ),
            ..Default::default()
        })
        .collect();
    let descriptor = trip_descriptor(network, p);
    Some(proto::FeedEntity {
        // One trip run per vehicle: the run's own id, stable while it runs.
        id: format!(
            "{}@{}",
            p.trip_id,
            p.start_time.as_deref().unwrap_or_default()
        ),
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

/// The `TripUpdates` feed at `now_ms` for the trips `vehicles` run, entities in id order.
pub fn trip_updates<'a>(
    network: &Network,
    learned: &Learned,
    now_ms: i64,
    vehicles: impl IntoIterator<Item = &'a VehiclePosition>,
) -> proto::FeedMessage {
    let entity: Vec<proto::FeedEntity> = vehicles
        .into_iter()
        .filter_map(|p| entity(network, learned, p, now_ms))
        .collect();
    feed(now_ms, entity)
}

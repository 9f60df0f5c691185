//! `VehiclePositions`: one entity per vehicle of the live table, with its trip (as the
//! static feed names it), its position, where it is along its calls, how full it is,
//! and how congested the streets around it are.

use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::{OccupancyStatus, VehiclePosition, VehicleStatus};
use streamcity_network::Network;

use crate::proto::{self, vehicle_position as vp};
use crate::{feed, trip_descriptor, vehicle_descriptor};

/// A place where street traffic crawls: vehicles inside run at `speed_factor` of
/// their speed (a traffic incident, a road closure).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slowdown {
    /// Centre.
    pub at: LatLon,
    /// Radius, metres.
    pub radius_m: f64,
    /// The share of their speed vehicles keep there, 0 to 1.
    pub speed_factor: f64,
}

fn occupancy(o: OccupancyStatus) -> vp::OccupancyStatus {
    match o {
        OccupancyStatus::Empty => vp::OccupancyStatus::Empty,
        OccupancyStatus::ManySeatsAvailable => vp::OccupancyStatus::ManySeatsAvailable,
        OccupancyStatus::FewSeatsAvailable => vp::OccupancyStatus::FewSeatsAvailable,
        OccupancyStatus::StandingRoomOnly => vp::OccupancyStatus::StandingRoomOnly,
        OccupancyStatus::CrushedStandingRoomOnly => vp::OccupancyStatus::CrushedStandingRoomOnly,
        OccupancyStatus::Full => vp::OccupancyStatus::Full,
    }
}

/// How congested the streets are where `p` is: only for vehicles in street traffic
/// inside a slowdown; `None` where nothing is known.
fn congestion(network: &Network, p: &VehiclePosition, slowdowns: &[Slowdown]) -> Option<i32> {
    let in_street = network
        .route(&p.route_id)
        .is_some_and(|r| r.mode.in_street_traffic());
    if !in_street {
        return None;
    }
    // A degree of latitude is at least 110.5 km: most slowdowns are rejected before the
    // great-circle distance.
    let factor = slowdowns
        .iter()
        .filter(|s| (s.at.lat - p.lat).abs() * 110_000.0 <= s.radius_m)
        .filter(|s| distance_m(s.at, p.position()) <= s.radius_m)
        .map(|s| s.speed_factor)
        .fold(f64::INFINITY, f64::min);
    let level = match factor {
        f if f < 0.35 => vp::CongestionLevel::SevereCongestion,
        f if f < 0.6 => vp::CongestionLevel::Congestion,
        f if f < 1.0 => vp::CongestionLevel::StopAndGo,
        _ => vp::CongestionLevel::RunningSmoothly,
    };
    Some(level as i32)
}

/// The entity of one vehicle.
/// The `VehiclePositions` entity of one vehicle (its id the vehicle's).
pub fn entity(network: &Network, p: &VehiclePosition, slowdowns: &[Slowdown]) -> proto::FeedEntity {
    let trip = trip_descriptor(network, p);
    // Where it is along its trip's calls, by the feed's own stop_sequence.
    let sequence = network.trip(&p.trip_id).and_then(|t| {
        let k = t
            .stop_times
            .iter()
            .position(|st| st.stop_id == p.next_stop_id)?;
        Some(t.stop_times[k].sequence.unwrap_or(k as u32 + 1))
    });
    let status = match p.status {
        VehicleStatus::StoppedAt | VehicleStatus::Layover => vp::VehicleStopStatus::StoppedAt,
        _ => vp::VehicleStopStatus::InTransitTo,
    };
    let percentage = (p.capacity > 0).then(|| p.passengers.saturating_mul(100) / p.capacity);
    proto::FeedEntity {
        id: p.vehicle_id.to_string(),
        vehicle: Some(proto::VehiclePosition {
            trip: Some(trip),
            vehicle: Some(vehicle_descriptor(p)),
            position: Some(proto::Position {
                latitude: p.lat as f32,
                longitude: p.lon as f32,
                bearing: Some(p.bearing),
                speed: Some(p.speed_mps),
                ..Default::default()
            }),
            current_stop_sequence: sequence,
            stop_id: Some(p.next_stop_id.to_string()),
            current_status: Some(status as i32),
            timestamp: Some((p.timestamp / 1000).max(0) as u64),
            congestion_level: congestion(network, p, slowdowns),
            occupancy_status: Some(occupancy(p.occupancy_status) as i32),
            occupancy_percentage: percentage,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `VehiclePositions` feed of `vehicles` at `now_ms`, entities in vehicle-id order
/// (stable from one feed to the next).
pub fn vehicle_positions<'a>(
    network: &Network,
    now_ms: i64,
    vehicles: impl IntoIterator<Item = &'a VehiclePosition>,
    slowdowns: &[Slowdown],
) -> proto::FeedMessage {
    let entities = vehicles
        .into_iter()
        .map(|p| entity(network, p, slowdowns))
        .collect();
    feed(now_ms, entities)
}

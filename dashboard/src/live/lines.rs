//! The line view (`GET /api/lines/{route_id}`): a line's vehicles in order along it in
//! each direction, each with its headway to the vehicle ahead against the timetable's,
//! and the line's string lines (each vehicle's distance along it over the samples kept,
//! from [`super::series`]).

use serde_json::{Value, json};
use streamcity_core::{TimestampMs, VehiclePosition, wire_name};

use super::Live;
use super::series::along;

/// How far from its next stop a vehicle must be for that stop to say which way it
/// goes, metres (closer, it is at the stop).
const AT_STOP_M: f64 = 5.0;

/// A vehicle of the line, placed along it.
struct Placed {
    p: VehiclePosition,
    dist: f64,
    direction: u8,
}

impl Live {
    /// The line view of `route_id`; `None` when the network has no such route.
    pub fn line_json(&self, route_id: &str) -> Option<Value> {
        let route = self.network.route(route_id)?;
        let wall = streamcity_core::clock::wall_clock_ms();
        let (now, positions): (Option<TimestampMs>, Vec<VehiclePosition>) = {
            let state = self.read();
            let views = &state.views;
            let now = match views.clock {
                Some(c) => Some(c.sim_at(wall)),
                None => (views.time > 0).then_some(views.time),
            };
            let positions = views
                .vehicles
                .values()
                .filter(|v| v.position.route_id == route_id)
                .filter(|v| v.position.status != streamcity_core::VehicleStatus::OutOfService)
                .map(|v| v.position.clone())
                .collect();
            (now, positions)
        };
        let mut placed: Vec<Placed> = positions
            .into_iter()
            .map(|p| {
                let dist = along(&self.network, route, p.lat, p.lon);
                let direction = self.direction_of(route, &p, dist);
                Placed { p, dist, direction }
            })
            .collect();
        // Travel order in each direction: outbound by distance along the path, inbound
        // back along it; the vehicle ahead of each is the next one.
        placed.sort_by(|a, b| {
            a.direction.cmp(&b.direction).then_with(|| {
                let order = a.dist.total_cmp(&b.dist);
                if a.direction == 0 {
                    order
                } else {
                    order.reverse()
                }
            })
        });
        let scheduled = (route.headway_s > 0.0).then_some(route.headway_s);
        // Without a trail: the gap at the timetable's average speed.
        let one_way = route.one_way_s();
        let speed = (one_way > 0.0 && route.length_m() > 0.0).then(|| route.length_m() / one_way);
        let vehicles: Vec<Value> = placed
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let ahead = placed.get(i + 1).filter(|a| a.direction == v.direction);
                let gap_m = ahead.map(|a| (a.dist - v.dist).abs());
                let mut from = None;
                let headway = ahead.and_then(|a| {
                    let passed = now.and_then(|now| {
                        self.passed_at(route_id, &a.p.vehicle_id, v.dist, v.direction)
                            .map(|t| now.saturating_sub(t) as f64 / 1000.0)
                            .filter(|h| *h >= 0.0)
                    });
                    if passed.is_some() {
                        from = Some("trail");
                        return passed;
                    }
                    let estimate = speed.zip(gap_m).map(|(s, g)| g / s);
                    if estimate.is_some() {
                        from = Some("distance");
                    }
                    estimate
                });
                let round = |x: f64| (x * 10.0).round() / 10.0;
                json!({
                    "vehicle_id": v.p.vehicle_id,
                    "direction": v.direction,
                    "dist_m": round(v.dist),
                    "delay_s": v.p.delay_s,
                    "status": wire_name(&v.p.status),
                    "next_stop_id": v.p.next_stop_id,
                    "next_stop_name": self.network.stop(&v.p.next_stop_id).map(|s| s.name.as_str()),
                    "passengers": v.p.passengers,
                    "capacity": v.p.capacity,
                    "ahead": ahead.map(|a| &a.p.vehicle_id),
                    "gap_m": gap_m.map(round),
                    "headway_s": headway.map(round),
                    "headway_from": from,
                    "headway_ratio": headway.zip(scheduled).map(|(h, s)| (h / s * 100.0).round() / 100.0),
                })
            })
            .collect();
        let stops: Vec<Value> = route
            .stop_ids
            .iter()
            .zip(&route.stop_dist)
            .map(|(id, d)| {
                json!({
                    "stop_id": id,
                    "name": self.network.stop(id).map(|s| s.name.as_str()),
                    "dist_m": (d * 10.0).round() / 10.0,
                })
            })
            .collect();
        Some(json!({
            "route_id": route.route_id,
            "short_name": route.short_name,
            "name": route.name,
            "color": route.color,
            "mode": route.mode,
            "length_m": (route.length_m() * 10.0).round() / 10.0,
            "scheduled_headway_s": scheduled,
            "time": now,
            "stops": stops,
            "vehicles": vehicles,
            "string_lines": self.trails_json(route_id),
        }))
    }

    /// Which way a vehicle runs along its line: its trip's direction when the timetable
    /// has the trip; else whether its next stop lies ahead of it or behind on the
    /// outbound path; at the stop, the way its trail last moved (0 when nothing says).
    fn direction_of(
        &self,
        route: &streamcity_network::Route,
        p: &VehiclePosition,
        dist: f64,
    ) -> u8 {
        if let Some(trip) = self.network.trip(&p.trip_id) {
            return trip.direction_id.min(1);
        }
        let next = route
            .stop_ids
            .iter()
            .position(|s| *s == p.next_stop_id)
            .and_then(|i| route.stop_dist.get(i));
        match next {
            Some(&d) if d > dist + AT_STOP_M => 0,
            Some(&d) if d < dist - AT_STOP_M => 1,
            _ => self.last_moved(&route.route_id, &p.vehicle_id).unwrap_or(0),
        }
    }
}

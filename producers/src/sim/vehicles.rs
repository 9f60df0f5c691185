//! Vehicles: placed along their routes, running their timetables (accelerating,
//! braking, dwelling longer when more riders board, laying over at the termini),
//! breaking down, losing GPS, slowed by incidents and held by suspensions; and their
//! position reports.

use std::sync::Arc;

use compact_str::format_compact;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use streamcity_core::{
    Id, OccupancyStatus, RiderTap, TimestampMs, TransportMode, VehiclePosition, VehicleStatus,
};
use streamcity_network::geometry::round6;
use streamcity_network::model::{LAYOVER_S, NOMINAL_DWELL_S, Pattern, SCHEDULE_SPEED_SHARE};
use streamcity_network::{Network, Route};

use super::demand::{demand_factor, local_hour};
use super::riders::{MAX_WAITING, Rider, pick_destination};
use super::timetable::{Block, Leg};
use super::{SimConfig, SimEvent, Simulation};
use crate::arrivals::Gaps;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Running,
    Dwelling,
    Layover,
    BrokenDown,
    Held,
    /// Its work is done: it leaves the road.
    OutOfService,
}

/// A vehicle's state. Kept small: memory per vehicle bounds how large a fleet one
/// process can simulate.
#[derive(Debug, Clone)]
pub(super) struct Vehicle {
    id: Id,
    trip_id: Id,
    route: u16,
    outbound: bool,
    phase: Phase,
    /// Index of the next stop in travel order.
    next_stop: u16,
    trip_no: u32,
    /// Metres travelled along the route in the current direction.
    along: f64,
    speed: f64,
    /// When the vehicle state was last advanced.
    updated_ms: TimestampMs,
    /// When it reports next.
    report_ms: TimestampMs,
    /// End of the current dwell, layover or repair.
    until_ms: TimestampMs,
    /// No reports before this time (GPS dropout).
    silent_until_ms: TimestampMs,
    /// A breakdown scripted for its next moment under way: how long the repair takes, ms
    /// (0: none).
    scripted_breakdown_ms: i64,
    /// Riders who boarded at the stop it is standing at.
    boarded_here: u32,
    /// Scheduled start of the current trip.
    trip_start_ms: TimestampMs,
    hint: usize,
    x: f64,
    y: f64,
    heading: f64,
    riders: Vec<Rider>,
    /// With a timetable: the runs it works, in order (empty: it shuttles along its
    /// route at the route's headway).
    legs: Box<[Leg]>,
    /// The run it is on, index into `legs`.
    leg: u16,
}

/// Longest physics step, seconds: a vehicle reporting rarely still brakes accurately.
const MAX_STEP_S: f64 = 1.0;

pub(super) struct ModeParams {
    accel: f64,
    decel: f64,
    dwell_base_s: f64,
    per_boarding_s: f64,
    per_alighting_s: f64,
}

fn mode_params(mode: TransportMode) -> ModeParams {
    match mode {
        TransportMode::Bus => ModeParams {
            accel: 1.0,
            decel: 1.3,
            dwell_base_s: 8.0,
            per_boarding_s: 2.5,
            per_alighting_s: 1.0,
        },
        TransportMode::Tram => ModeParams {
            accel: 1.1,
            decel: 1.3,
            dwell_base_s: 12.0,
            per_boarding_s: 0.8,
            per_alighting_s: 0.5,
        },
        TransportMode::Rail => ModeParams {
            accel: 0.9,
            decel: 1.1,
            dwell_base_s: 20.0,
            per_boarding_s: 0.15,
            per_alighting_s: 0.1,
        },
        TransportMode::Subway => ModeParams {
            accel: 1.2,
            decel: 1.3,
            dwell_base_s: 15.0,
            per_boarding_s: 0.1,
            per_alighting_s: 0.08,
        },
        TransportMode::Ferry => ModeParams {
            accel: 0.25,
            decel: 0.3,
            dwell_base_s: 90.0,
            per_boarding_s: 1.0,
            per_alighting_s: 0.8,
        },
        TransportMode::Cable => ModeParams {
            accel: 0.4,
            decel: 0.5,
            dwell_base_s: 25.0,
            per_boarding_s: 1.5,
            per_alighting_s: 1.0,
        },
    }
}

/// Index into `route.stops` of the `k`-th stop in travel order.
fn stop_index(route: &Route, outbound: bool, k: usize) -> usize {
    let k = k.min(route.stops.len() - 1);
    if outbound {
        k
    } else {
        route.stops.len() - 1 - k
    }
}

/// Distance travelled from the trip's origin to its `k`-th stop.
fn stop_along(route: &Route, outbound: bool, k: usize) -> f64 {
    let d = route.stop_dist[stop_index(route, outbound, k)];
    if outbound { d } else { route.length_m() - d }
}

/// The course a vehicle is running: a route one way or the other (shuttling), or the
/// pattern of its timetabled trip. Stops are numbered in travel order.
#[derive(Clone, Copy)]
enum Course<'a> {
    Shuttle(&'a Route, bool),
    Trip(&'a Pattern),
}

impl Course<'_> {
    fn of<'a>(network: &'a Network, v: &Vehicle) -> Course<'a> {
        match v.legs.get(usize::from(v.leg)) {
            Some(leg) => Course::Trip(&network.patterns[network.trips[leg.trip as usize].pattern]),
            None => Course::Shuttle(&network.routes[v.route as usize], v.outbound),
        }
    }

    /// Stops called at.
    fn len(self) -> usize {
        match self {
            Course::Shuttle(route, _) => route.stops.len(),
            Course::Trip(p) => p.stops.len(),
        }
    }

    /// Index into [`Network::stops`] of the `k`-th call.
    fn stop(self, k: usize) -> usize {
        match self {
            Course::Shuttle(route, outbound) => route.stops[stop_index(route, outbound, k)],
            Course::Trip(p) => p.stops[k.min(p.stops.len() - 1)],
        }
    }

    /// Distance from the start of the course to its `k`-th call.
    fn along(self, k: usize) -> f64 {
        match self {
            Course::Shuttle(route, outbound) => stop_along(route, outbound, k),
            Course::Trip(p) => p.stop_dist[k.min(p.stop_dist.len() - 1)],
        }
    }

    /// The point `along` metres from the start, with the heading of travel.
    fn point(self, along: f64, hint: &mut usize) -> (f64, f64, f64) {
        match self {
            Course::Shuttle(route, true) => route.path.point_at(along, hint),
            Course::Shuttle(route, false) => {
                let (x, y, heading) = route.path.point_at(route.length_m() - along, hint);
                (x, y, heading + std::f64::consts::PI)
            }
            Course::Trip(p) => p.path.point_at(along, hint),
        }
    }
}

/// Seconds into its trip the timetable expects a vehicle to be at `along`, with
/// `next_stop` stops served so far.
fn sched_offset_s(route: &Route, along: f64, next_stop: u16) -> f64 {
    along / (route.cruise_mps * SCHEDULE_SPEED_SHARE) + NOMINAL_DWELL_S * next_stop as f64
}

fn trip_id(v: &Vehicle) -> Id {
    format_compact!("{}-T{:04}", v.id, v.trip_no)
}

/// Updates the vehicle's map position and heading from its distance along its course.
fn locate(network: &Network, v: &mut Vehicle) {
    (v.x, v.y, v.heading) = Course::of(network, v).point(v.along, &mut v.hint);
}

/// The vehicle working `block`, placed where the timetable has it at `now`: at the
/// first stop of its next run (signing on or laying over), or along its run in progress.
pub(super) fn sign_on(
    network: &Network,
    block: Block,
    now: TimestampMs,
    report_gap_ms: i64,
    rng: &mut ChaCha8Rng,
) -> Vehicle {
    let legs = block.legs;
    let leg = legs
        .iter()
        .position(|l| l.end_ms(network) > now)
        .unwrap_or(legs.len() - 1);
    let l = legs[leg];
    let trip = &network.trips[l.trip as usize];
    let route = network.route_position(&trip.route_id).unwrap_or(0);
    let pattern = &network.patterns[trip.pattern];
    let n = pattern.stops.len();
    // Where the timetable has it: before its run, dwelling at a stop, or between two.
    let (phase, next_stop, along, until_ms) = if now < l.start_ms(network) {
        (
            Phase::Layover,
            0,
            0.0,
            l.start_ms(network) - LAYOVER_EARLY_MS,
        )
    } else {
        let k = (1..n)
            .find(|&k| l.arrival_ms(network, k) > now || l.departure_ms(network, k) > now)
            .unwrap_or(n - 1);
        let (arrive, leave) = (l.arrival_ms(network, k), l.departure_ms(network, k - 1));
        if now >= arrive {
            (
                Phase::Dwelling,
                k,
                pattern.stop_dist[k],
                l.departure_ms(network, k),
            )
        } else {
            let f = (now - leave) as f64 / (arrive - leave).max(1) as f64;
            let (a, b) = (pattern.stop_dist[k - 1], pattern.stop_dist[k]);
            (Phase::Running, k, a + (b - a) * f.clamp(0.0, 1.0), now)
        }
    };
    let capacity = network.routes[route].capacity;
    let aboard = if phase == Phase::Layover {
        0
    } else {
        (f64::from(capacity) * rng.random_range(0.05..0.35)) as usize
    };
    let riders = (0..aboard)
        .map(|_| Rider {
            card: rng.random_range(0..100_000_000),
            dest: pick_destination(rng, next_stop.saturating_sub(1), n).max(next_stop as u16),
        })
        .collect();
    let mut v = Vehicle {
        id: block.vehicle_id,
        trip_id: trip.trip_id.clone(),
        route: route as u16,
        outbound: trip.direction_id == 0,
        phase,
        next_stop: next_stop as u16,
        trip_no: 1,
        along,
        speed: if phase == Phase::Running {
            network.routes[route].cruise_mps * rng.random_range(0.5..1.0)
        } else {
            0.0
        },
        updated_ms: now,
        report_ms: now + rng.random_range(0..report_gap_ms.max(1)),
        until_ms,
        silent_until_ms: now,
        scripted_breakdown_ms: 0,
        boarded_here: 0,
        trip_start_ms: l.start_ms(network),
        hint: 0,
        x: 0.0,
        y: 0.0,
        heading: 0.0,
        riders,
        legs,
        leg: leg as u16,
    };
    locate(network, &mut v);
    v
}

/// How long before its scheduled departure a vehicle laying over pulls up to its first
/// stop to board (riders board while it waits), ms.
const LAYOVER_EARLY_MS: i64 = 120_000;

/// The fleet of every route, placed along it evenly spaced by its headway, as if
/// service had been running for a while.
pub(super) fn place_fleet(
    network: &Network,
    config: &SimConfig,
    rng: &mut ChaCha8Rng,
) -> Vec<Vehicle> {
    let now = config.start_ms;
    let report_gap_ms = (config.vehicles.gaps.mean_s() * 1000.0).max(1.0) as i64;
    let mut vehicles = Vec::new();
    for (r, route) in network.routes.iter().enumerate() {
        let half_s = route.round_trip_s() / 2.0;
        let n = route.stops.len();
        for k in 0..route.vehicles {
            // Where vehicle k is in the round trip, in seconds since its trip began.
            let mut c = route.headway_s * k as f64
                + rng.random_range(0.0..route.headway_s.clamp(1.0, 60.0));
            let outbound = c < half_s;
            if !outbound {
                c -= half_s;
            }
            let run_s = half_s - LAYOVER_S;
            let along = (route.length_m() * (c / run_s)).min(route.length_m() - 1.0);
            let next_stop = (0..n)
                .find(|&i| stop_along(route, outbound, i) > along)
                .unwrap_or(n - 1);
            let aboard = (route.capacity as f64
                * rng.random_range(0.05..0.35)
                * config.initial_load.clamp(0.0, 2.5)) as usize;
            let riders = (0..aboard)
                .map(|_| Rider {
                    card: rng.random_range(0..100_000_000),
                    dest: pick_destination(rng, next_stop.saturating_sub(1), n)
                        .max(next_stop as u16),
                })
                .collect();
            let mut v = Vehicle {
                id: format_compact!("{}-{:03}", route.route_id, k + 1),
                trip_id: Id::default(),
                route: r as u16,
                outbound,
                phase: Phase::Running,
                next_stop: next_stop as u16,
                trip_no: 1,
                along,
                speed: route.cruise_mps * rng.random_range(0.5..1.0),
                updated_ms: now,
                // Reports spread evenly over the first interval.
                report_ms: now + rng.random_range(0..report_gap_ms.max(1)),
                until_ms: now,
                silent_until_ms: now,
                scripted_breakdown_ms: 0,
                boarded_here: 0,
                trip_start_ms: now,
                hint: 0,
                x: 0.0,
                y: 0.0,
                heading: 0.0,
                riders,
                legs: Box::new([]),
                leg: 0,
            };
            v.trip_start_ms = now - (sched_offset_s(route, v.along, v.next_stop) * 1000.0) as i64;
            v.trip_id = trip_id(&v);
            locate(network, &mut v);
            vehicles.push(v);
        }
    }
    vehicles
}

impl Simulation {
    pub(super) fn vehicle_step(&mut self, out: &mut Vec<SimEvent>) {
        let now = self.now;
        if let Some(timetable) = &mut self.timetable {
            let report_gap_ms = (self.config.vehicles.gaps.mean_s() * 1000.0).max(1.0) as i64;
            for block in timetable.due(&self.network, now, &mut self.rng) {
                let v = sign_on(&self.network, block, now, report_gap_ms, &mut self.rng);
                self.vehicles.push(v);
            }
        }
        let hour = local_hour(now, self.config.utc_offset_min);
        // Street traffic is slower at the peaks.
        let rush = 1.0 - 0.12 * (demand_factor(hour) - 1.0).max(0.0);
        for i in 0..self.vehicles.len() {
            // Every vehicle is read in order each tick: a stream the prefetcher keeps
            // ahead of, cheaper than jumping to the due ones from a separate index
            // (measured: 1.8 times faster in 200 ms ticks, the same in 10 ms ones).
            if self.vehicles[i].report_ms > now {
                continue;
            }
            self.advance_vehicle(i, rush, out);
            let gap = match self.config.vehicles.gaps {
                Gaps::Uniform { min_s, max_s } if max_s > min_s => {
                    self.rng.random_range(min_s..=max_s)
                }
                g => g.mean_s(),
            };
            let v = &mut self.vehicles[i];
            v.report_ms += ((gap * 1000.0) as i64).max(1);
            if v.report_ms <= now {
                v.report_ms = now + 1; // far behind (a long pause): do not report in a burst
            }
            // A vehicle leaving service signs off with a last report, GPS or not.
            if now >= v.silent_until_ms || v.phase == Phase::OutOfService {
                self.counts.positions += 1;
                if self.config.vehicles.emit {
                    out.push(SimEvent::Position(self.report(i)));
                }
            }
        }
        if self.timetable.is_some() {
            self.vehicles.retain(|v| v.phase != Phase::OutOfService);
        }
    }

    /// Brings vehicle `i` up to now, in physics steps of at most a second.
    fn advance_vehicle(&mut self, i: usize, rush: f64, out: &mut Vec<SimEvent>) {
        let now = self.now;
        let mut t = self.vehicles[i].updated_ms;
        while t < now && self.vehicles[i].phase != Phase::OutOfService {
            let dt_ms = ((MAX_STEP_S * 1000.0) as i64).min(now - t);
            t += dt_ms;
            self.step_vehicle(i, t, dt_ms as f64 / 1000.0, rush, out);
        }
        self.vehicles[i].updated_ms = now;
    }

    /// Scripts a breakdown (for scenarios and tests): vehicle `vehicle_id` breaks down
    /// the next moment it is under way, for `repair_ms`. False when there is no such
    /// vehicle.
    pub fn break_down(&mut self, vehicle_id: &str, repair_ms: i64) -> bool {
        match self.vehicles.iter_mut().find(|v| v.id == vehicle_id) {
            Some(v) => {
                v.scripted_breakdown_ms = repair_ms.max(1);
                true
            }
            None => false,
        }
    }

    fn step_vehicle(
        &mut self,
        i: usize,
        now: TimestampMs,
        dt: f64,
        rush: f64,
        out: &mut Vec<SimEvent>,
    ) {
        let network = Arc::clone(&self.network);
        let p_break = self.config.breakdowns_per_vehicle_hour * dt / 3_600.0;
        let p_silent = self.config.dropouts_per_vehicle_hour * dt / 3_600.0;
        let roll_break: f64 = self.rng.random();
        let roll_silent: f64 = self.rng.random();
        if roll_silent < p_silent {
            let secs = self.rng.random_range(60..300);
            self.vehicles[i].silent_until_ms = now + secs * 1000;
        }
        let repair_ms = if roll_break < p_break {
            self.rng.random_range(600_000..1_800_000)
        } else {
            0
        };
        let v = &mut self.vehicles[i];
        let route = &network.routes[v.route as usize];
        let course = Course::of(&network, v);
        let params = mode_params(route.mode);
        let suspended = self.suspended[v.route as usize];

        match v.phase {
            Phase::OutOfService => return,
            Phase::BrokenDown | Phase::Dwelling | Phase::Layover if now < v.until_ms => {
                v.speed = 0.0;
                return;
            }
            // A run due to start on a suspended line does not run: the vehicle goes on
            // to its block's next run (or out of service).
            Phase::Layover if suspended && !v.legs.is_empty() => {
                self.counts.cancelled += 1;
                next_leg(&network, v, now);
                return;
            }
            // A suspension holds vehicles at stops; they finish the run to the next one.
            Phase::Dwelling | Phase::Layover | Phase::Held if suspended => {
                v.phase = Phase::Held;
                v.speed = 0.0;
                return;
            }
            Phase::BrokenDown | Phase::Layover => v.phase = Phase::Running,
            Phase::Held => {
                // Service restored: carry on from the stop it was held at.
                v.phase = Phase::Running;
                v.next_stop += 1;
            }
            Phase::Dwelling => {
                v.phase = Phase::Running;
                v.next_stop += 1;
            }
            Phase::Running => {}
        }

        let repair_ms = if v.scripted_breakdown_ms > 0 && v.speed > 0.5 {
            std::mem::take(&mut v.scripted_breakdown_ms)
        } else {
            repair_ms
        };
        if repair_ms > 0 && v.speed > 0.5 {
            v.phase = Phase::BrokenDown;
            v.speed = 0.0;
            v.until_ms = now + repair_ms;
            self.counts.breakdowns += 1;
            // Its riders walk on to the next stop and wait there for the next vehicle
            // (those going there get off for good).
            let k = v.next_stop as usize;
            let s = course.stop(k);
            let dir = usize::from(!v.outbound);
            for rider in v.riders.drain(..) {
                if rider.dest as usize <= k {
                    self.counts.tap_offs += 1;
                    if self.config.taps.emit {
                        out.push(SimEvent::TapOff(RiderTap {
                            rider_id: format_compact!("C{:08}", rider.card),
                            stop_id: network.stops[s].stop_id.clone(),
                            route_id: Some(route.route_id.clone()),
                            timestamp: now,
                        }));
                    }
                } else if self.waiting[s][dir].len() < MAX_WAITING {
                    self.waiting[s][dir].push_front(rider);
                }
            }
            return;
        }

        // Running: accelerate towards the allowed speed, brake to stop at the next stop.
        let mut factor = 1.0;
        if route.mode.in_street_traffic() {
            factor = rush;
            let slowdowns = self.traffic.iter().map(|t| &t.area).chain(
                self.city_incidents
                    .iter()
                    .filter_map(|c| c.slowdown.as_ref()),
            );
            for area in slowdowns {
                let (dx, dy) = (v.x - area.x, v.y - area.y);
                if dx * dx + dy * dy <= area.radius_m * area.radius_m {
                    factor = f64::min(factor, area.factor);
                }
            }
        }
        let stop_at = course.along(v.next_stop as usize);
        let remaining = stop_at - v.along;
        let cruise = match v.legs.get(usize::from(v.leg)) {
            // With a timetable: the speed that makes the next stop on time, within what
            // the mode can do (a late vehicle makes up time; an early one eases off).
            Some(leg) => {
                let left_s = (leg.arrival_ms(&network, v.next_stop as usize) - now) as f64 / 1000.0;
                let needed = remaining.max(0.0) / left_s.max(1.0) * 1.15;
                needed.clamp(0.4 * route.cruise_mps, 1.6 * route.cruise_mps)
            }
            None => route.cruise_mps,
        };
        let target = cruise * factor;
        let v_brake = (2.0 * params.decel * (remaining - 1.0).max(0.0)).sqrt();
        // Never brake harder than the vehicle can, even when a coarse step brought it in fast.
        let v_new = if v.speed > target {
            (v.speed - params.decel * dt).max(target)
        } else {
            (v.speed + params.accel * dt).min(target)
        }
        .min(v_brake)
        .max(v.speed - params.decel * dt)
        .max(0.0);
        let advance = (v.speed + v_new) / 2.0 * dt;
        if advance >= remaining - 1.0 {
            if v.speed <= params.decel * dt {
                v.along = stop_at;
                v.speed = 0.0;
                locate(&network, v);
                self.arrive(i, now, out);
            } else {
                // Still rolling: pull up to the stop and finish braking next step.
                v.along = v.along.max(stop_at - 0.5);
                v.speed = v_new;
                locate(&network, v);
            }
        } else {
            v.along += advance;
            v.speed = v_new;
            locate(&network, v);
        }
    }

    /// A vehicle reached its next stop: riders get off and on, and it dwells; at the end
    /// of the line it lays over and turns into its next trip (with a timetable: its
    /// block's next run, or it leaves service).
    fn arrive(&mut self, i: usize, now: TimestampMs, out: &mut Vec<SimEvent>) {
        let network = Arc::clone(&self.network);
        let emit = self.config.taps.emit;
        let v = &mut self.vehicles[i];
        let route = &network.routes[v.route as usize];
        let course = Course::of(&network, v);
        let params = mode_params(route.mode);
        let n = course.len();
        let k = v.next_stop as usize;
        let s = course.stop(k);
        let stop_id = &network.stops[s].stop_id;

        // A stop inside a closed road: buses and trams pass it by (riders bound there
        // get off at the next one).
        let stop = &network.stops[s];
        if k > 0
            && k + 1 < n
            && route.mode.in_street_traffic()
            && self.city_incidents.iter().any(|c| c.closes(stop.x, stop.y))
        {
            v.phase = Phase::Running;
            v.next_stop += 1;
            self.counts.skipped_calls += 1;
            return;
        }

        // Riders for this stop tap off.
        let before = v.riders.len();
        v.riders.retain(|rider| {
            let off = rider.dest as usize <= k;
            if off && emit {
                out.push(SimEvent::TapOff(RiderTap {
                    rider_id: format_compact!("C{:08}", rider.card),
                    stop_id: stop_id.clone(),
                    route_id: Some(route.route_id.clone()),
                    timestamp: now,
                }));
            }
            !off
        });
        let alight = before - v.riders.len();
        self.counts.tap_offs += alight as u64;

        if k + 1 >= n {
            let min_turn = now
                + ((params.dwell_base_s + params.per_alighting_s * alight as f64) * 1000.0) as i64
                + 60_000;
            if !v.legs.is_empty() {
                // The end of a timetabled run: the block's next one, or out of service.
                // Turned round, it waits for its departure (a late arrival delays it).
                next_leg(&network, v, min_turn - 60_000);
                return;
            }
            // Terminus: lay over, then run the next trip back.
            let half_ms = (route.round_trip_s() / 2.0 * 1000.0) as i64;
            let next_start = v.trip_start_ms + half_ms;
            v.phase = Phase::Layover;
            v.until_ms = next_start.max(min_turn);
            v.outbound = !v.outbound;
            v.along = 0.0;
            v.next_stop = 0;
            v.trip_no += 1;
            v.trip_start_ms = next_start;
            v.trip_id = trip_id(v);
            return;
        }

        // Riders waiting for this direction board, up to capacity; the rest wait on.
        // (Not where the timetable takes nobody up.)
        let call = v
            .legs
            .get(usize::from(v.leg))
            .map(|leg| &network.trips[leg.trip as usize].stop_times[k]);
        let queue = &mut self.waiting[s][usize::from(!v.outbound)];
        let room = (route.capacity as usize).saturating_sub(v.riders.len());
        let board = if call.is_some_and(|c| !c.pickup) {
            0
        } else {
            queue.len().min(room)
        };
        self.counts.left_behind += (queue.len() - board) as u64;
        self.counts.boardings += board as u64;
        let boarded = v.riders.len();
        v.riders.extend(queue.drain(..board));
        v.boarded_here = board as u32;
        let dwell_s = params.dwell_base_s
            + params.per_boarding_s * board as f64
            + params.per_alighting_s * alight as f64;
        v.phase = Phase::Dwelling;
        v.until_ms = now + (dwell_s * 1000.0) as i64;
        if let Some(leg) = v.legs.get(usize::from(v.leg)) {
            // A timetabled vehicle does not leave a timepoint before its departure time,
            // and its riders ride to a stop of this trip where they may get off.
            let calls = &network.trips[leg.trip as usize].stop_times;
            if calls[k].timepoint {
                v.until_ms = v.until_ms.max(leg.departure_ms(&network, k));
            }
            for rider in &mut v.riders[boarded..] {
                let dest = usize::from(pick_destination(&mut self.rng, k, n));
                rider.dest = (dest..n).find(|&d| calls[d].drop_off).unwrap_or(n - 1) as u16;
            }
        }
    }

    fn report(&self, i: usize) -> VehiclePosition {
        let v = &self.vehicles[i];
        let network = &self.network;
        let route = &network.routes[v.route as usize];
        let course = Course::of(network, v);
        let at = network.projection.to_latlon(v.x, v.y);
        let k = v.next_stop as usize;
        let next = &network.stops[course.stop(k)];
        let leg = v.legs.get(usize::from(v.leg));
        let delay_s = match (leg, v.phase) {
            (None, Phase::Layover) => ((self.now - v.trip_start_ms) / 1000).max(0),
            (None, _) => {
                let elapsed = (self.now - v.trip_start_ms) as f64 / 1000.0;
                (elapsed - sched_offset_s(route, v.along, v.next_stop)).round() as i64
            }
            (Some(leg), _) => timetable_delay_s(network, leg, course, v, self.now),
        };
        let status = match v.phase {
            Phase::Running => VehicleStatus::InTransitTo,
            Phase::Dwelling => VehicleStatus::StoppedAt,
            Phase::Layover => VehicleStatus::Layover,
            Phase::OutOfService => VehicleStatus::OutOfService,
            Phase::BrokenDown => VehicleStatus::BrokenDown,
            Phase::Held => VehicleStatus::Suspended,
        };
        // Compass bearing: clockwise from north, from the maths angle of the heading.
        let bearing = (90.0 - v.heading.to_degrees()).rem_euclid(360.0);
        let passengers = v.riders.len() as u32;
        VehiclePosition {
            vehicle_id: v.id.clone(),
            route_id: route.route_id.clone(),
            trip_id: v.trip_id.clone(),
            timestamp: self.now,
            lat: round6(at.lat),
            lon: round6(at.lon),
            bearing: ((bearing * 10.0).round() / 10.0) as f32,
            speed_mps: ((v.speed * 10.0).round() / 10.0) as f32,
            next_stop_id: next.stop_id.clone(),
            passengers,
            capacity: route.capacity,
            occupancy_status: OccupancyStatus::from_load(passengers, route.capacity),
            delay_s: delay_s.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            status,
            start_date: leg.map(|l| format_compact!("{:08}", l.date.0)),
            start_time: leg.map(|l| l.start_time(network)),
            boarded: (v.phase == Phase::Dwelling).then_some(v.boarded_here),
        }
    }
}

/// Moves timetabled vehicle `v` on to its block's next run: laying over at its first
/// stop until just before its departure (not before `earliest_ms`); out of service when
/// the block has no more.
fn next_leg(network: &Network, v: &mut Vehicle, earliest_ms: TimestampMs) {
    let next = usize::from(v.leg) + 1;
    let Some(leg) = v.legs.get(next).copied() else {
        v.phase = Phase::OutOfService;
        return;
    };
    let trip = &network.trips[leg.trip as usize];
    v.leg = next as u16;
    v.route = network.route_position(&trip.route_id).unwrap_or(0) as u16;
    v.outbound = trip.direction_id == 0;
    v.trip_id = trip.trip_id.clone();
    v.trip_start_ms = leg.start_ms(network);
    v.phase = Phase::Layover;
    v.until_ms = (leg.start_ms(network) - LAYOVER_EARLY_MS).max(earliest_ms);
    v.along = 0.0;
    v.next_stop = 0;
    v.hint = 0;
    locate(network, v);
}

/// How late a timetabled vehicle is, seconds (negative: early): against the time the
/// timetable has it where it is (at a stop: between its arrival and departure there;
/// between two: in proportion to the distance run).
fn timetable_delay_s(
    network: &Network,
    leg: &Leg,
    course: Course<'_>,
    v: &Vehicle,
    now: TimestampMs,
) -> i64 {
    let k = v.next_stop as usize;
    let scheduled = match v.phase {
        Phase::Layover => leg.start_ms(network),
        Phase::Dwelling | Phase::Held => {
            let (arrive, leave) = (leg.arrival_ms(network, k), leg.departure_ms(network, k));
            now.clamp(arrive, leave)
        }
        _ if k == 0 => leg.start_ms(network),
        _ => {
            let (from, to) = (course.along(k - 1), course.along(k));
            let f = if to > from {
                ((v.along - from) / (to - from)).clamp(0.0, 1.0)
            } else {
                1.0
            };
            let (leave, arrive) = (leg.departure_ms(network, k - 1), leg.arrival_ms(network, k));
            leave + ((arrive - leave) as f64 * f) as i64
        }
    };
    if v.phase == Phase::Layover {
        return ((now - scheduled) / 1000).max(0);
    }
    (now - scheduled).div_euclid(1000)
}

//! The simulation core: vehicles running their timetables, riders arriving at stops,
//! traffic incidents slowing vehicles down. Plain synchronous code fed time: the async
//! runner ([`crate::runner`]) only paces it and moves its events to the bus.
//!
//! What the processor later detects emerges from causes here: a vehicle is late
//! because it crawled through an incident or dwelt long boarding a crowd, a stop
//! surges because riders keep arriving and vehicles leave them behind.

use std::sync::Arc;

use compact_str::format_compact;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use streamcity_core::{
    Id, IncidentStatus, OccupancyStatus, RiderTap, Severity, TimestampMs, TrafficIncident, TrafficIncidentKind,
    TransportMode, VehiclePosition, VehicleStatus,
};

use crate::city::{City, LAYOVER_S, NOMINAL_DWELL_S, round6};

/// Settings of a simulation run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed for everything random: the same seed and settings give the same events.
    pub seed: u64,
    /// Simulated time at the start, ms since the epoch.
    pub start_ms: TimestampMs,
    /// Offset of the city's local time from UTC, minutes (for the time-of-day demand curve).
    pub utc_offset_min: i32,
    /// Simulation tick, ms. Each vehicle reports once per second, spread over the ticks.
    pub tick_ms: i64,
    /// Rider arrivals per minute at an ordinary stop at off-peak midday.
    pub taps_per_stop_minute: f64,
    /// Traffic incidents per hour across the city.
    pub incidents_per_hour: f64,
    /// Breakdowns per vehicle per hour in service.
    pub breakdowns_per_vehicle_hour: f64,
    /// GPS dropouts per vehicle per hour.
    pub dropouts_per_vehicle_hour: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            start_ms: 1_763_884_800_000, // 2025-11-23T08:00:00Z
            utc_offset_min: 0,
            tick_ms: 200,
            taps_per_stop_minute: 1.5,
            incidents_per_hour: 6.0,
            breakdowns_per_vehicle_hour: 0.01,
            dropouts_per_vehicle_hour: 0.02,
        }
    }
}

/// One event produced by the simulation.
#[derive(Debug, Clone, PartialEq)]
pub enum SimEvent {
    /// A vehicle position report.
    Position(VehiclePosition),
    /// A rider tapping on.
    Tap(RiderTap),
    /// A traffic incident starting or clearing.
    Traffic(TrafficIncident),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Dwelling,
    Layover,
    BrokenDown,
}

/// A vehicle's state. Kept small: memory per vehicle bounds how large a fleet one
/// process can simulate.
#[derive(Debug, Clone)]
struct Vehicle {
    id: Id,
    trip_id: Id,
    route: u16,
    outbound: bool,
    phase: Phase,
    /// Index of the next stop in travel order.
    next_stop: u16,
    trip_no: u32,
    passengers: u32,
    /// Metres travelled along the route in the current direction.
    along: f64,
    speed: f64,
    /// End of the current dwell, layover or repair.
    until_ms: TimestampMs,
    /// No reports before this time (GPS dropout).
    silent_until_ms: TimestampMs,
    /// Scheduled start of the current trip.
    trip_start_ms: TimestampMs,
    hint: usize,
    x: f64,
    y: f64,
    heading: f64,
}

#[derive(Debug, Clone)]
struct ActiveIncident {
    event: TrafficIncident,
    x: f64,
    y: f64,
}

/// Counters of what the simulation has produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCounts {
    /// Position reports.
    pub positions: u64,
    /// Rider tap-ons.
    pub taps: u64,
    /// Traffic incident records (starts and clearances).
    pub traffic: u64,
    /// Riders who boarded a vehicle.
    pub boardings: u64,
    /// Riders left at a stop because a vehicle was full.
    pub left_behind: u64,
}

/// The running twin.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    city: Arc<City>,
    rng: ChaCha8Rng,
    now: TimestampMs,
    tick_no: u64,
    vehicles: Vec<Vehicle>,
    /// Riders waiting per stop, per direction (outbound, inbound).
    waiting: Vec<[u32; 2]>,
    incidents: Vec<ActiveIncident>,
    next_incident_no: u64,
    counts: SimCounts,
}

/// Reports per vehicle per second.
const REPORT_PERIOD_MS: i64 = 1_000;
/// Riders waiting at a stop in one direction beyond which newcomers give up.
const MAX_WAITING: u32 = 2_000;

struct ModeParams {
    accel: f64,
    decel: f64,
    dwell_base_s: f64,
    per_boarding_s: f64,
    per_alighting_s: f64,
}

fn mode_params(mode: TransportMode) -> ModeParams {
    match mode {
        TransportMode::Bus => {
            ModeParams { accel: 1.0, decel: 1.3, dwell_base_s: 8.0, per_boarding_s: 2.5, per_alighting_s: 1.0 }
        }
        TransportMode::Tram => {
            ModeParams { accel: 1.1, decel: 1.3, dwell_base_s: 12.0, per_boarding_s: 0.8, per_alighting_s: 0.5 }
        }
        TransportMode::Rail => {
            ModeParams { accel: 0.9, decel: 1.1, dwell_base_s: 20.0, per_boarding_s: 0.15, per_alighting_s: 0.1 }
        }
    }
}

/// Relative rider demand by local hour of day: low at night, peaks around 08:15 and 17:30.
pub fn demand_factor(hour: f64) -> f64 {
    let gauss = |mu: f64, sigma: f64| (-((hour - mu) / sigma).powi(2) / 2.0).exp();
    let day = 1.0 / (1.0 + (-(hour - 6.0) * 2.0).exp()) - 1.0 / (1.0 + (-(hour - 22.5) * 2.0).exp());
    0.2 + 0.8 * day + 1.6 * gauss(8.25, 0.9) + 1.3 * gauss(17.5, 1.1)
}

/// The local hour of day (0–24) at `ts`.
pub fn local_hour(ts: TimestampMs, utc_offset_min: i32) -> f64 {
    let secs = (ts / 1000 + utc_offset_min as i64 * 60).rem_euclid(86_400);
    secs as f64 / 3_600.0
}

/// Draws from a Poisson distribution with mean `lambda` (inversion for small means,
/// a normal approximation for large ones).
fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 30.0 {
        // Box–Muller normal approximation.
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        return (lambda + z * lambda.sqrt()).round().max(0.0) as u32;
    }
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut p: f64 = rng.random();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

impl Simulation {
    /// A simulation of `city` with its fleet placed along the routes, evenly spaced
    /// by their headways, as if service had been running for a while.
    pub fn new(city: Arc<City>, config: SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5eed_c17e);
        let now = config.start_ms;
        let mut vehicles = Vec::new();
        for (r, route) in city.routes.iter().enumerate() {
            let fleet = route.vehicles;
            let half_s = route.round_trip_s() / 2.0;
            for k in 0..fleet {
                // Where vehicle k is in the round trip, in seconds since its trip began.
                let mut c = route.headway_s * k as f64 + rng.random_range(0.0..route.headway_s.min(60.0));
                let outbound = c < half_s;
                if !outbound {
                    c -= half_s;
                }
                let run_s = half_s - LAYOVER_S;
                let along = (route.length_m() * (c / run_s)).min(route.length_m());
                let mut v = Vehicle {
                    id: format_compact!("{}-{:03}", route.route_id, k + 1),
                    trip_id: Id::default(),
                    route: r as u16,
                    outbound,
                    phase: Phase::Running,
                    next_stop: 0,
                    trip_no: 1,
                    passengers: (route.capacity as f64 * rng.random_range(0.05..0.35)) as u32,
                    along,
                    speed: route.cruise_mps * rng.random_range(0.5..1.0),
                    until_ms: now,
                    silent_until_ms: now,
                    trip_start_ms: now,
                    hint: 0,
                    x: 0.0,
                    y: 0.0,
                    heading: 0.0,
                };
                let n = route.stops.len();
                v.next_stop = (0..n).find(|&i| stop_along(route, outbound, i) > along).unwrap_or(n - 1) as u16;
                if v.along >= route.length_m() {
                    v.along = stop_along(route, outbound, v.next_stop as usize) - 1.0;
                }
                v.trip_start_ms = now - (sched_offset_s(route, v.along, v.next_stop) * 1000.0) as i64;
                v.trip_id = trip_id(&v);
                locate(&city, &mut v);
                vehicles.push(v);
            }
        }
        let waiting = vec![[0, 0]; city.stops.len()];
        Simulation {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            city,
            now,
            tick_no: 0,
            vehicles,
            waiting,
            incidents: Vec::new(),
            next_incident_no: 1,
            counts: SimCounts::default(),
        }
    }

    /// The simulated time reached, ms since the epoch.
    pub fn now(&self) -> TimestampMs {
        self.now
    }

    /// When the next tick ends.
    pub fn next_tick_at(&self) -> TimestampMs {
        self.now + self.config.tick_ms
    }

    /// The city being simulated.
    pub fn city(&self) -> &Arc<City> {
        &self.city
    }

    /// Vehicles in the fleet.
    pub fn fleet_size(&self) -> usize {
        self.vehicles.len()
    }

    /// What has been produced so far.
    pub fn counts(&self) -> SimCounts {
        self.counts
    }

    /// Traffic incidents in force.
    pub fn active_incidents(&self) -> impl Iterator<Item = &TrafficIncident> {
        self.incidents.iter().map(|i| &i.event)
    }

    /// Riders waiting at a stop (both directions).
    pub fn waiting_at(&self, stop: usize) -> u32 {
        self.waiting.get(stop).map_or(0, |w| w[0] + w[1])
    }

    /// Starts a traffic incident now (also used for scripted scenarios and tests) and
    /// emits its record.
    pub fn start_incident(&mut self, incident: TrafficIncident, out: &mut Vec<SimEvent>) {
        let (x, y) = self.city.projection.to_xy(streamcity_core::geo::LatLon::new(incident.lat, incident.lon));
        self.counts.traffic += 1;
        out.push(SimEvent::Traffic(incident.clone()));
        self.incidents.push(ActiveIncident { event: incident, x, y });
    }

    /// Advances one tick and appends what happened to `out`, in event-time order
    /// within each kind.
    pub fn step(&mut self, out: &mut Vec<SimEvent>) {
        let tick = self.config.tick_ms;
        let t0 = self.now;
        self.now += tick;
        self.tick_no += 1;
        self.traffic_step(t0, out);
        self.rider_step(t0, out);
        self.vehicle_step(out);
    }

    fn traffic_step(&mut self, t0: TimestampMs, out: &mut Vec<SimEvent>) {
        let now = self.now;
        // Clear incidents that have run their course.
        let mut i = 0;
        while i < self.incidents.len() {
            if self.incidents[i].event.expected_end <= now {
                let mut cleared = self.incidents.swap_remove(i).event;
                cleared.status = IncidentStatus::Cleared;
                cleared.timestamp = now;
                self.counts.traffic += 1;
                out.push(SimEvent::Traffic(cleared));
            } else {
                i += 1;
            }
        }
        let lambda = self.config.incidents_per_hour * (now - t0) as f64 / 3_600_000.0;
        for _ in 0..poisson(&mut self.rng, lambda) {
            let incident = self.random_incident();
            self.start_incident(incident, out);
        }
    }

    fn random_incident(&mut self) -> TrafficIncident {
        let rng = &mut self.rng;
        let street: Vec<usize> =
            (0..self.city.routes.len()).filter(|&r| self.city.routes[r].mode != TransportMode::Rail).collect();
        let route = &self.city.routes[street[rng.random_range(0..street.len())]];
        let mut hint = 0;
        let (x, y, _) = route.path.point_at(rng.random_range(0.0..route.length_m()), &mut hint);
        let at = self.city.projection.to_latlon(x, y);
        let (kind, radius, factor, minutes): (_, std::ops::Range<f64>, std::ops::Range<f64>, std::ops::Range<f64>) = match rng.random_range(0..10) {
            0..=2 => (TrafficIncidentKind::Accident, 150.0..300.0, 0.2..0.4, 15.0..45.0),
            3..=5 => (TrafficIncidentKind::Roadworks, 100.0..250.0, 0.45..0.7, 30.0..120.0),
            _ => (TrafficIncidentKind::Congestion, 300.0..700.0, 0.3..0.6, 10.0..40.0),
        };
        let speed_factor = (rng.random_range(factor) * 100.0_f64).round() / 100.0;
        let severity = match speed_factor {
            f if f < 0.3 => Severity::High,
            f if f < 0.5 => Severity::Moderate,
            _ => Severity::Low,
        };
        let no = self.next_incident_no;
        self.next_incident_no += 1;
        TrafficIncident {
            incident_id: format_compact!("TI-{no:06}"),
            kind,
            status: IncidentStatus::Active,
            lat: round6(at.lat),
            lon: round6(at.lon),
            radius_m: rng.random_range(radius).round(),
            severity,
            speed_factor,
            started_at: self.now,
            expected_end: self.now + (rng.random_range(minutes) * 60_000.0) as i64,
            timestamp: self.now,
        }
    }

    fn rider_step(&mut self, t0: TimestampMs, out: &mut Vec<SimEvent>) {
        let tick = self.now - t0;
        let hour = local_hour(t0, self.config.utc_offset_min);
        let base = self.config.taps_per_stop_minute / 60_000.0 * tick as f64 * demand_factor(hour);
        for route in &self.city.routes {
            let last = route.stops.len() - 1;
            for (k, &s) in route.stops.iter().enumerate() {
                let stop = &self.city.stops[s];
                let n = poisson(&mut self.rng, base * stop.importance);
                for _ in 0..n {
                    // Riders at a terminus can only go one way.
                    let dir = if k == 0 {
                        0
                    } else if k == last {
                        1
                    } else {
                        self.rng.random_range(0..2usize)
                    };
                    if self.waiting[s][dir] < MAX_WAITING {
                        self.waiting[s][dir] += 1;
                    }
                    let card: u32 = self.rng.random_range(0..100_000_000);
                    self.counts.taps += 1;
                    out.push(SimEvent::Tap(RiderTap {
                        rider_id: format_compact!("C{card:08}"),
                        stop_id: stop.stop_id.clone(),
                        route_id: Some(route.route_id.clone()),
                        timestamp: t0 + self.rng.random_range(0..tick.max(1)),
                    }));
                }
            }
        }
    }

    fn vehicle_step(&mut self, out: &mut Vec<SimEvent>) {
        let slots = (REPORT_PERIOD_MS / self.config.tick_ms).max(1) as u64;
        let slot = self.tick_no % slots;
        let dt = (slots as i64 * self.config.tick_ms) as f64 / 1000.0;
        let hour = local_hour(self.now, self.config.utc_offset_min);
        // Street traffic is slower at the peaks.
        let rush = 1.0 - 0.12 * (demand_factor(hour) - 1.0).max(0.0);
        for i in (slot as usize..self.vehicles.len()).step_by(slots as usize) {
            self.update_vehicle(i, dt, rush);
            let v = &self.vehicles[i];
            if self.now >= v.silent_until_ms {
                self.counts.positions += 1;
                out.push(SimEvent::Position(self.report(i)));
            }
        }
    }

    fn update_vehicle(&mut self, i: usize, dt: f64, rush: f64) {
        let city = Arc::clone(&self.city);
        let now = self.now;
        let p_break = self.config.breakdowns_per_vehicle_hour * dt / 3_600.0;
        let p_silent = self.config.dropouts_per_vehicle_hour * dt / 3_600.0;
        let roll_break: f64 = self.rng.random();
        let roll_silent: f64 = self.rng.random();
        if roll_silent < p_silent {
            let secs = self.rng.random_range(60..300);
            self.vehicles[i].silent_until_ms = now + secs * 1000;
        }
        let repair_ms = if roll_break < p_break { self.rng.random_range(600_000..1_800_000) } else { 0 };
        let v = &mut self.vehicles[i];
        let route = &city.routes[v.route as usize];
        let params = mode_params(route.mode);

        match v.phase {
            Phase::BrokenDown | Phase::Dwelling | Phase::Layover if now < v.until_ms => {
                v.speed = 0.0;
                return;
            }
            Phase::BrokenDown | Phase::Layover => v.phase = Phase::Running,
            Phase::Dwelling => {
                v.phase = Phase::Running;
                v.next_stop += 1;
            }
            Phase::Running => {}
        }

        if repair_ms > 0 && v.speed > 0.5 {
            v.phase = Phase::BrokenDown;
            v.speed = 0.0;
            v.until_ms = now + repair_ms;
            // Its riders walk on to the next stop and wait for the next vehicle.
            let s = route.stops[stop_index(route, v.outbound, v.next_stop as usize)];
            let dir = if v.outbound { 0 } else { 1 };
            self.waiting[s][dir] = (self.waiting[s][dir] + v.passengers).min(MAX_WAITING);
            v.passengers = 0;
            return;
        }

        // Running: accelerate towards the allowed speed, brake to stop at the next stop.
        let mut factor = 1.0;
        if route.mode != TransportMode::Rail {
            factor = rush;
            for inc in &self.incidents {
                let (dx, dy) = (v.x - inc.x, v.y - inc.y);
                if dx * dx + dy * dy <= inc.event.radius_m * inc.event.radius_m {
                    factor = f64::min(factor, inc.event.speed_factor);
                }
            }
        }
        let target = route.cruise_mps * factor;
        let stop_at = stop_along(route, v.outbound, v.next_stop as usize);
        let remaining = stop_at - v.along;
        let v_brake = (2.0 * params.decel * (remaining - 1.0).max(0.0)).sqrt();
        let v_new = if v.speed > target {
            (v.speed - params.decel * dt).max(target)
        } else {
            (v.speed + params.accel * dt).min(target)
        }
        .min(v_brake)
        .max(0.0);
        let advance = (v.speed + v_new) / 2.0 * dt;
        if advance >= remaining - 1.0 {
            v.along = stop_at;
            v.speed = 0.0;
            locate(&city, v);
            self.arrive(i);
        } else {
            v.along += advance;
            v.speed = v_new;
            locate(&city, v);
        }
    }

    /// A vehicle reached its next stop: riders get off and on, and it dwells; at the end
    /// of the line it lays over and turns into its next trip.
    fn arrive(&mut self, i: usize) {
        let city = Arc::clone(&self.city);
        let now = self.now;
        let v = &mut self.vehicles[i];
        let route = &city.routes[v.route as usize];
        let params = mode_params(route.mode);
        let n = route.stops.len();
        let k = v.next_stop as usize;
        let s = route.stops[stop_index(route, v.outbound, k)];

        if k + 1 >= n {
            // Terminus: everyone gets off; lay over, then run the next trip back.
            let alight = v.passengers;
            v.passengers = 0;
            let half_ms = (route.round_trip_s() / 2.0 * 1000.0) as i64;
            let next_start = v.trip_start_ms + half_ms;
            let min_turn = now + ((params.dwell_base_s + params.per_alighting_s * alight as f64) * 1000.0) as i64 + 60_000;
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

        let remaining_stops = (n - 1 - k) as f64;
        let share = self.rng.random_range(0.5..1.5) / remaining_stops;
        let alight = ((v.passengers as f64 * share.min(1.0)) + self.rng.random::<f64>()).floor() as u32;
        let alight = alight.min(v.passengers);
        v.passengers -= alight;
        let dir = if v.outbound { 0 } else { 1 };
        let room = route.capacity.saturating_sub(v.passengers);
        let board = self.waiting[s][dir].min(room);
        self.counts.left_behind += (self.waiting[s][dir] - board) as u64;
        self.counts.boardings += board as u64;
        self.waiting[s][dir] -= board;
        v.passengers += board;
        let dwell_s = params.dwell_base_s + params.per_boarding_s * board as f64 + params.per_alighting_s * alight as f64;
        v.phase = Phase::Dwelling;
        v.until_ms = now + (dwell_s * 1000.0) as i64;
    }

    fn report(&self, i: usize) -> VehiclePosition {
        let v = &self.vehicles[i];
        let route = &self.city.routes[v.route as usize];
        let at = self.city.projection.to_latlon(v.x, v.y);
        let next = &self.city.stops[route.stops[stop_index(route, v.outbound, v.next_stop as usize)]];
        let delay_s = match v.phase {
            Phase::Layover => ((self.now - v.trip_start_ms) / 1000).max(0),
            _ => {
                let elapsed = (self.now - v.trip_start_ms) as f64 / 1000.0;
                (elapsed - sched_offset_s(route, v.along, v.next_stop)).round() as i64
            }
        };
        let status = match v.phase {
            Phase::Running => VehicleStatus::InTransitTo,
            Phase::Dwelling => VehicleStatus::StoppedAt,
            Phase::Layover => VehicleStatus::Layover,
            Phase::BrokenDown => VehicleStatus::BrokenDown,
        };
        // Compass bearing: clockwise from north, from the maths angle of the heading.
        let bearing = (90.0 - v.heading.to_degrees()).rem_euclid(360.0);
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
            passengers: v.passengers,
            capacity: route.capacity,
            occupancy_status: OccupancyStatus::from_load(v.passengers, route.capacity),
            delay_s: delay_s.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            status,
        }
    }
}

/// Index into `route.stops` of the `k`-th stop in travel order.
fn stop_index(route: &crate::city::Route, outbound: bool, k: usize) -> usize {
    let k = k.min(route.stops.len() - 1);
    if outbound { k } else { route.stops.len() - 1 - k }
}

/// Distance travelled from the trip's origin to its `k`-th stop.
fn stop_along(route: &crate::city::Route, outbound: bool, k: usize) -> f64 {
    let d = route.stop_dist[stop_index(route, outbound, k)];
    if outbound { d } else { route.length_m() - d }
}

/// Seconds into its trip the timetable expects a vehicle to be at `along`, with
/// `next_stop` stops served so far.
fn sched_offset_s(route: &crate::city::Route, along: f64, next_stop: u16) -> f64 {
    along / (route.cruise_mps * 0.8) + NOMINAL_DWELL_S * next_stop as f64
}

fn trip_id(v: &Vehicle) -> Id {
    format_compact!("{}-T{:04}", v.id, v.trip_no)
}

/// Updates the vehicle's map position and heading from its distance along the route.
fn locate(city: &City, v: &mut Vehicle) {
    let route = &city.routes[v.route as usize];
    let d = if v.outbound { v.along } else { route.length_m() - v.along };
    let (x, y, heading) = route.path.point_at(d, &mut v.hint);
    v.x = x;
    v.y = y;
    v.heading = if v.outbound { heading } else { heading + std::f64::consts::PI };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::CityConfig;
    use std::collections::HashMap;

    fn sim(seed: u64) -> Simulation {
        let city = Arc::new(City::generate(CityConfig { seed, ..CityConfig::default() }));
        Simulation::new(city, SimConfig { seed, ..SimConfig::default() })
    }

    fn run(sim: &mut Simulation, seconds: i64) -> Vec<SimEvent> {
        let mut out = Vec::new();
        for _ in 0..seconds * 1000 / sim.config.tick_ms {
            sim.step(&mut out);
        }
        out
    }

    #[test]
    fn same_seed_same_events() {
        let (mut a, mut b) = (sim(3), sim(3));
        let (ea, eb) = (run(&mut a, 120), run(&mut b, 120));
        assert!(ea.len() > 10_000);
        assert_eq!(ea, eb);
        let ec = run(&mut sim(4), 120);
        assert_ne!(ea, ec);
    }

    #[test]
    fn every_vehicle_reports_about_once_a_second() {
        let mut s = sim(1);
        let fleet = s.fleet_size();
        let events = run(&mut s, 60);
        let mut per_vehicle: HashMap<Id, usize> = HashMap::new();
        for e in &events {
            if let SimEvent::Position(p) = e {
                *per_vehicle.entry(p.vehicle_id.clone()).or_default() += 1;
            }
        }
        assert_eq!(per_vehicle.len(), fleet);
        // 60 reports a minute, fewer only for a vehicle in a GPS dropout.
        let full = per_vehicle.values().filter(|&&n| n == 60).count();
        assert!(full as f64 >= fleet as f64 * 0.95, "{full} of {fleet} reported every second");
        assert!(per_vehicle.values().all(|&n| n <= 60));
    }

    #[test]
    fn vehicles_stay_on_their_routes_at_plausible_speeds() {
        let mut s = sim(2);
        let city = Arc::clone(s.city());
        let events = run(&mut s, 600);
        let mut last: HashMap<Id, VehiclePosition> = HashMap::new();
        for e in events {
            let SimEvent::Position(p) = e else { continue };
            let route = city.route(&p.route_id).expect("known route");
            let (x, y) = city.projection.to_xy(p.position());
            let off = route
                .path
                .xy
                .windows(2)
                .map(|w| point_segment_distance((x, y), w[0], w[1]))
                .fold(f64::INFINITY, f64::min);
            assert!(off < 1.0, "{} is {off} m off its route", p.vehicle_id);
            assert!(p.speed_mps as f64 <= route.cruise_mps + 0.05, "{} at {} m/s", p.vehicle_id, p.speed_mps);
            if let Some(prev) = last.get(&p.vehicle_id) {
                let dt = (p.timestamp - prev.timestamp) as f64 / 1000.0;
                let moved = streamcity_core::geo::distance_m(prev.position(), p.position());
                // No jumps: never faster than cruising speed between reports (a turn at
                // the terminus stays in place).
                assert!(moved <= route.cruise_mps * dt + 1.0, "{} jumped {moved} m in {dt} s", p.vehicle_id);
            }
            last.insert(p.vehicle_id.clone(), p);
        }
    }

    #[test]
    fn riders_tap_on_and_board() {
        let mut s = sim(5);
        let events = run(&mut s, 900);
        let taps = events.iter().filter(|e| matches!(e, SimEvent::Tap(_))).count();
        // ~330 stops at 1.5 taps a minute, scaled by importance and the morning peak.
        assert!(taps > 2_000, "{taps} taps in 15 minutes");
        assert!(s.counts().boardings > 1_000, "{:?}", s.counts());
        let moving = events
            .iter()
            .filter(|e| matches!(e, SimEvent::Position(p) if p.status == VehicleStatus::StoppedAt && p.passengers > 0))
            .count();
        assert!(moving > 0);
    }

    fn point_segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
        ((p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)).sqrt()
    }
}

//! The simulation core: vehicles running their timetables, riders arriving at stops
//! and riding to their destinations, traffic and city incidents slowing or suspending
//! service. Plain synchronous code fed time: the async runner ([`crate::runner`]) only
//! paces it and moves its events to the bus.
//!
//! What the processor later detects emerges from causes here: a vehicle is late
//! because it crawled through an incident or dwelt long boarding a crowd; a stop
//! surges because a stadium empties and vehicles leave riders behind.

use std::collections::VecDeque;
use std::sync::Arc;

use compact_str::format_compact;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use streamcity_core::geo::LatLon;
use streamcity_core::{
    CityIncident, Id, IncidentStatus, OccupancyStatus, RiderTap, Severity, TimestampMs,
    TrafficIncident, TrafficIncidentKind, TransitEffect, TransportMode, VehiclePosition,
    VehicleStatus,
};

use crate::arrivals::{Arrivals, Burst, Gaps};
use crate::city::{City, LAYOVER_S, NOMINAL_DWELL_S, Route, round6};
use crate::civic;

/// One discrete event stream's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamConfig {
    /// Whether its events are emitted (the simulation runs either way, so the twin
    /// behaves the same whichever streams are watched).
    pub emit: bool,
    /// Gaps between events (for taps: city-wide, at a demand factor of 1).
    pub gaps: Gaps,
    /// Bursts of several events at once.
    pub burst: Burst,
}

/// A scripted crowd: riders pouring into one stop (a stadium or concert letting out).
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdEvent {
    /// The stop they arrive at.
    pub stop_id: Id,
    /// When they start arriving, ms since the epoch.
    pub start_ms: TimestampMs,
    /// Over how long they arrive, ms.
    pub duration_ms: i64,
    /// How many riders.
    pub riders: u32,
}

/// Settings of a simulation run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed for everything random: the same seed and settings give the same events.
    pub seed: u64,
    /// Simulated time at the start, ms since the epoch.
    pub start_ms: TimestampMs,
    /// Offset of the city's local time from UTC, minutes (for the time-of-day demand curve).
    pub utc_offset_min: i32,
    /// Simulation tick, simulated ms: what happens within one tick comes out together,
    /// stamped with the tick's end. A live run sets it with [`SimConfig::live_tick_ms`].
    pub tick_ms: i64,
    /// Vehicle position reports: whether emitted, and the gap between two reports of
    /// one vehicle (bursts do not apply).
    pub vehicles: StreamConfig,
    /// Rider tap-ons and tap-offs; the gaps are city-wide at a demand factor of 1 and
    /// follow the time of day; a burst is a group arriving together.
    pub taps: StreamConfig,
    /// Traffic incidents.
    pub traffic: StreamConfig,
    /// City incidents (emergencies and infrastructure).
    pub incidents: StreamConfig,
    /// Breakdowns per vehicle per hour in service.
    pub breakdowns_per_vehicle_hour: f64,
    /// GPS dropouts per vehicle per hour.
    pub dropouts_per_vehicle_hour: f64,
    /// Scripted crowds.
    pub crowds: Vec<CrowdEvent>,
}

/// The tick of a run that is not paced (tests, benchmarks, batch generation), ms.
pub const DEFAULT_TICK_MS: i64 = 200;

/// Real time between two ticks of a live run, ms, so that an event waits at most this
/// long to come out (see [`SimConfig::live_tick_ms`]).
pub const LIVE_TICK_REAL_MS: f64 = 10.0;

impl SimConfig {
    /// The tick of a run paced at `speed` simulated seconds per real second: about
    /// [`LIVE_TICK_REAL_MS`] of real time, so events come out fresh, in small batches;
    /// but at most [`DEFAULT_TICK_MS`] of simulated time, so that at a high speed-up
    /// reports do not bunch up (a vehicle reports at most once per tick).
    pub fn live_tick_ms(speed: f64) -> i64 {
        let ms = if speed.is_finite() && speed > 0.0 {
            LIVE_TICK_REAL_MS * speed
        } else {
            LIVE_TICK_REAL_MS
        };
        (ms.round() as i64).clamp(1, DEFAULT_TICK_MS)
    }
}

/// City-wide rider arrivals per second at midday, by default.
pub const DEFAULT_TAP_RATE: f64 = 8.0;

impl Default for SimConfig {
    fn default() -> Self {
        let stream = |gaps| StreamConfig {
            emit: true,
            gaps,
            burst: Burst::NONE,
        };
        SimConfig {
            seed: 42,
            start_ms: 1_763_884_800_000, // 2025-11-23T08:00:00Z
            utc_offset_min: 0,
            tick_ms: DEFAULT_TICK_MS,
            vehicles: stream(Gaps::Uniform {
                min_s: 1.0,
                max_s: 1.0,
            }),
            taps: stream(Gaps::rate(DEFAULT_TAP_RATE)),
            traffic: stream(Gaps::Poisson { mean_s: 600.0 }),
            incidents: stream(Gaps::Poisson { mean_s: 900.0 }),
            breakdowns_per_vehicle_hour: 0.01,
            dropouts_per_vehicle_hour: 0.02,
            crowds: Vec::new(),
        }
    }
}

/// One event produced by the simulation.
#[derive(Debug, Clone, PartialEq)]
pub enum SimEvent {
    /// A vehicle position report.
    Position(VehiclePosition),
    /// A rider tapping on.
    TapOn(RiderTap),
    /// A rider tapping off.
    TapOff(RiderTap),
    /// A traffic incident starting or clearing.
    Traffic(TrafficIncident),
    /// A city incident starting or clearing.
    City(CityIncident),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Dwelling,
    Layover,
    BrokenDown,
    Held,
}

/// A rider: a card, and the stop (in travel order) where they will get off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rider {
    card: u32,
    dest: u16,
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
    /// Scheduled start of the current trip.
    trip_start_ms: TimestampMs,
    hint: usize,
    x: f64,
    y: f64,
    heading: f64,
    riders: Vec<Rider>,
}

#[derive(Debug, Clone)]
struct Slowdown {
    x: f64,
    y: f64,
    radius_m: f64,
    factor: f64,
}

#[derive(Debug, Clone)]
struct ActiveTraffic {
    event: TrafficIncident,
    area: Slowdown,
}

#[derive(Debug, Clone)]
struct ActiveCity {
    event: CityIncident,
    ends_ms: TimestampMs,
    slowdown: Option<Slowdown>,
    suspended: Vec<u16>,
}

#[derive(Debug, Clone)]
struct ActiveCrowd {
    stop: usize,
    route: usize,
    k: usize,
    ends_ms: TimestampMs,
    arrivals: Arrivals,
}

/// Counters of what the simulation has produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCounts {
    /// Position reports.
    pub positions: u64,
    /// Rider tap-ons.
    pub tap_ons: u64,
    /// Rider tap-offs.
    pub tap_offs: u64,
    /// Traffic incident records (starts and clearances).
    pub traffic: u64,
    /// City incident records (starts and clearances).
    pub city: u64,
    /// Riders who boarded a vehicle.
    pub boardings: u64,
    /// Times a rider was left at a stop because a vehicle was full.
    pub left_behind: u64,
    /// Breakdowns.
    pub breakdowns: u64,
}

impl SimCounts {
    /// Events emitted of every kind.
    pub fn events(&self) -> u64 {
        self.positions + self.tap_ons + self.tap_offs + self.traffic + self.city
    }
}

/// The running twin.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    city: Arc<City>,
    rng: ChaCha8Rng,
    now: TimestampMs,
    vehicles: Vec<Vehicle>,
    /// Riders waiting per stop, per direction (outbound, inbound).
    waiting: Vec<[VecDeque<Rider>; 2]>,
    /// Every (route, stop in outbound order) pair, with the cumulative importance used
    /// to pick where the next rider arrives.
    tap_places: Vec<(u16, u16)>,
    tap_weights: Vec<f64>,
    taps: Arrivals,
    traffic_arrivals: Arrivals,
    city_arrivals: Arrivals,
    traffic: Vec<ActiveTraffic>,
    city_incidents: Vec<ActiveCity>,
    crowds: Vec<ActiveCrowd>,
    pending_crowds: Vec<CrowdEvent>,
    /// Per route: suspended by a city incident.
    suspended: Vec<bool>,
    next_incident_no: u64,
    counts: SimCounts,
}

/// Riders waiting at a stop in one direction beyond which newcomers give up.
const MAX_WAITING: usize = 2_000;
/// Longest physics step, seconds: a vehicle reporting rarely still brakes accurately.
const MAX_STEP_S: f64 = 1.0;

struct ModeParams {
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
    }
}

/// Relative rider demand by local hour of day: low at night, peaks around 08:15 and 17:30.
pub fn demand_factor(hour: f64) -> f64 {
    let gauss = |mu: f64, sigma: f64| (-((hour - mu) / sigma).powi(2) / 2.0).exp();
    let day =
        1.0 / (1.0 + (-(hour - 6.0) * 2.0).exp()) - 1.0 / (1.0 + (-(hour - 22.5) * 2.0).exp());
    0.2 + 0.8 * day + 1.6 * gauss(8.25, 0.9) + 1.3 * gauss(17.5, 1.1)
}

/// The local hour of day (0–24) at `ts`.
pub fn local_hour(ts: TimestampMs, utc_offset_min: i32) -> f64 {
    let secs = (ts / 1000 + utc_offset_min as i64 * 60).rem_euclid(86_400);
    secs as f64 / 3_600.0
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

/// Seconds into its trip the timetable expects a vehicle to be at `along`, with
/// `next_stop` stops served so far.
fn sched_offset_s(route: &Route, along: f64, next_stop: u16) -> f64 {
    along / (route.cruise_mps * 0.8) + NOMINAL_DWELL_S * next_stop as f64
}

fn trip_id(v: &Vehicle) -> Id {
    format_compact!("{}-T{:04}", v.id, v.trip_no)
}

/// Updates the vehicle's map position and heading from its distance along the route.
fn locate(city: &City, v: &mut Vehicle) {
    let route = &city.routes[v.route as usize];
    let d = if v.outbound {
        v.along
    } else {
        route.length_m() - v.along
    };
    let (x, y, heading) = route.path.point_at(d, &mut v.hint);
    v.x = x;
    v.y = y;
    v.heading = if v.outbound {
        heading
    } else {
        heading + std::f64::consts::PI
    };
}

/// A rider's destination: a later stop in travel order, nearer ones likelier.
fn pick_destination<R: Rng>(rng: &mut R, k: usize, n: usize) -> u16 {
    let remaining = n - 1 - k;
    if remaining <= 1 {
        return (n - 1) as u16;
    }
    // Trip lengths skew short: the smaller of two uniform draws.
    let a = rng.random_range(1..=remaining);
    let b = rng.random_range(1..=remaining);
    (k + a.min(b)) as u16
}

impl Simulation {
    /// A simulation of `city` with its fleet placed along the routes, evenly spaced
    /// by their headways, as if service had been running for a while.
    pub fn new(city: Arc<City>, config: SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let now = config.start_ms;
        let report_gap_ms = (config.vehicles.gaps.mean_s() * 1000.0).max(1.0) as i64;
        let mut vehicles = Vec::new();
        for (r, route) in city.routes.iter().enumerate() {
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
                let aboard = (route.capacity as f64 * rng.random_range(0.05..0.35)) as usize;
                let riders = (0..aboard)
                    .map(|_| Rider {
                        card: rng.random_range(0..100_000_000),
                        dest: pick_destination(&mut rng, next_stop.saturating_sub(1), n)
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
                    trip_start_ms: now,
                    hint: 0,
                    x: 0.0,
                    y: 0.0,
                    heading: 0.0,
                    riders,
                };
                v.trip_start_ms =
                    now - (sched_offset_s(route, v.along, v.next_stop) * 1000.0) as i64;
                v.trip_id = trip_id(&v);
                locate(&city, &mut v);
                vehicles.push(v);
            }
        }
        let mut tap_places = Vec::new();
        let mut tap_weights = Vec::new();
        let mut acc = 0.0;
        for (r, route) in city.routes.iter().enumerate() {
            for (k, &s) in route.stops.iter().enumerate() {
                acc += city.stops[s].importance;
                tap_places.push((r as u16, k as u16));
                tap_weights.push(acc);
            }
        }
        let taps = Arrivals::new(config.taps.gaps, config.taps.burst, now, &mut rng);
        let traffic_arrivals =
            Arrivals::new(config.traffic.gaps, config.traffic.burst, now, &mut rng);
        let city_arrivals =
            Arrivals::new(config.incidents.gaps, config.incidents.burst, now, &mut rng);
        let mut pending_crowds = config.crowds.clone();
        pending_crowds.sort_by_key(|c| std::cmp::Reverse(c.start_ms));
        Simulation {
            waiting: (0..city.stops.len())
                .map(|_| [VecDeque::new(), VecDeque::new()])
                .collect(),
            suspended: vec![false; city.routes.len()],
            rng,
            now,
            vehicles,
            tap_places,
            tap_weights,
            taps,
            traffic_arrivals,
            city_arrivals,
            traffic: Vec::new(),
            city_incidents: Vec::new(),
            crowds: Vec::new(),
            pending_crowds,
            next_incident_no: 1,
            counts: SimCounts::default(),
            config,
            city,
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

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        &self.config
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
    pub fn active_traffic(&self) -> impl Iterator<Item = &TrafficIncident> {
        self.traffic.iter().map(|i| &i.event)
    }

    /// City incidents in force.
    pub fn active_city_incidents(&self) -> impl Iterator<Item = &CityIncident> {
        self.city_incidents.iter().map(|i| &i.event)
    }

    /// Riders waiting at a stop (both directions).
    pub fn waiting_at(&self, stop: usize) -> usize {
        self.waiting
            .get(stop)
            .map_or(0, |w| w[0].len() + w[1].len())
    }

    /// Starts a traffic incident now (for scripted scenarios and tests) and emits its
    /// record.
    pub fn start_traffic(&mut self, incident: TrafficIncident, out: &mut Vec<SimEvent>) {
        let (x, y) = self
            .city
            .projection
            .to_xy(LatLon::new(incident.lat, incident.lon));
        let area = Slowdown {
            x,
            y,
            radius_m: incident.radius_m,
            factor: incident.speed_factor,
        };
        self.counts.traffic += 1;
        if self.config.traffic.emit {
            out.push(SimEvent::Traffic(incident.clone()));
        }
        self.traffic.push(ActiveTraffic {
            event: incident,
            area,
        });
    }

    /// Starts a city incident now (for scripted scenarios and tests), applies its
    /// effect on transit, and emits its record.
    pub fn start_city_incident(&mut self, incident: CityIncident, out: &mut Vec<SimEvent>) {
        let (x, y) = self
            .city
            .projection
            .to_xy(LatLon::new(incident.lat, incident.lon));
        let slowdown = match (incident.transit_effect, incident.speed_factor) {
            (TransitEffect::Slowdown, Some(factor)) => Some(Slowdown {
                x,
                y,
                radius_m: incident.radius_m,
                factor,
            }),
            _ => None,
        };
        let suspended: Vec<u16> = if incident.transit_effect == TransitEffect::Suspension {
            incident
                .affected_routes
                .iter()
                .filter_map(|id| self.city.routes.iter().position(|r| r.route_id == *id))
                .map(|r| r as u16)
                .collect()
        } else {
            Vec::new()
        };
        for &r in &suspended {
            self.suspended[r as usize] = true;
        }
        self.counts.city += 1;
        if self.config.incidents.emit {
            out.push(SimEvent::City(incident.clone()));
        }
        let ends_ms = civic::ends_at(&incident);
        self.city_incidents.push(ActiveCity {
            event: incident,
            ends_ms,
            slowdown,
            suspended,
        });
    }

    /// Advances one tick and appends what happened to `out`.
    pub fn step(&mut self, out: &mut Vec<SimEvent>) {
        let t0 = self.now;
        self.now += self.config.tick_ms;
        self.incident_step(out);
        self.rider_step(t0, out);
        self.vehicle_step(out);
    }

    fn incident_step(&mut self, out: &mut Vec<SimEvent>) {
        let now = self.now;
        // Clear what has run its course.
        let mut i = 0;
        while i < self.traffic.len() {
            if self.traffic[i].event.expected_end <= now {
                let mut cleared = self.traffic.swap_remove(i).event;
                cleared.status = IncidentStatus::Cleared;
                cleared.timestamp = now;
                self.counts.traffic += 1;
                if self.config.traffic.emit {
                    out.push(SimEvent::Traffic(cleared));
                }
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.city_incidents.len() {
            if self.city_incidents[i].ends_ms <= now {
                let ended = self.city_incidents.swap_remove(i);
                for &r in &ended.suspended {
                    self.suspended[r as usize] =
                        self.city_incidents.iter().any(|c| c.suspended.contains(&r));
                }
                let mut cleared = ended.event;
                cleared.status = IncidentStatus::Cleared;
                cleared.timestamp = now;
                self.counts.city += 1;
                if self.config.incidents.emit {
                    out.push(SimEvent::City(cleared));
                }
            } else {
                i += 1;
            }
        }
        // New ones.
        let mut due = Vec::new();
        self.traffic_arrivals
            .drain(now, 1.0, &mut self.rng, |_, _, n| due.push(n));
        for n in due.drain(..) {
            for _ in 0..n {
                let incident = self.random_traffic();
                self.start_traffic(incident, out);
            }
        }
        self.city_arrivals
            .drain(now, 1.0, &mut self.rng, |_, _, n| due.push(n));
        for n in due {
            for _ in 0..n {
                let no = self.next_incident_no;
                self.next_incident_no += 1;
                let incident = civic::generate(&mut self.rng, &self.city, now, no);
                self.start_city_incident(incident, out);
            }
        }
    }

    fn random_traffic(&mut self) -> TrafficIncident {
        let rng = &mut self.rng;
        let street: Vec<usize> = (0..self.city.routes.len())
            .filter(|&r| self.city.routes[r].mode != TransportMode::Rail)
            .collect();
        let route = &self.city.routes[street[rng.random_range(0..street.len())]];
        let mut hint = 0;
        let (x, y, _) = route
            .path
            .point_at(rng.random_range(0.0..route.length_m()), &mut hint);
        let at = self.city.projection.to_latlon(x, y);
        type Ranges = (
            std::ops::Range<f64>,
            std::ops::Range<f64>,
            std::ops::Range<f64>,
        );
        let (kind, (radius, factor, minutes)): (_, Ranges) = match rng.random_range(0..10) {
            0..=2 => (
                TrafficIncidentKind::Accident,
                (150.0..300.0, 0.2..0.4, 15.0..45.0),
            ),
            3..=5 => (
                TrafficIncidentKind::Roadworks,
                (100.0..250.0, 0.45..0.7, 30.0..120.0),
            ),
            _ => (
                TrafficIncidentKind::Congestion,
                (300.0..700.0, 0.3..0.6, 10.0..40.0),
            ),
        };
        let speed_factor = (rng.random_range(factor) * 100.0).round() / 100.0;
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

    /// A rider arrives at the `k`-th stop (outbound order) of route `r` at `ts`.
    fn rider_arrives(&mut self, r: usize, k: usize, ts: TimestampMs, out: &mut Vec<SimEvent>) {
        let route = &self.city.routes[r];
        let n = route.stops.len();
        let s = route.stops[k];
        // Riders at a terminus can only go one way.
        let outbound = match k {
            0 => true,
            _ if k == n - 1 => false,
            _ => self.rng.random_bool(0.5),
        };
        let k_travel = if outbound { k } else { n - 1 - k };
        let queue = &mut self.waiting[s][usize::from(!outbound)];
        if queue.len() >= MAX_WAITING {
            return; // the stop is packed: newcomers give up before tapping on
        }
        let rider = Rider {
            card: self.rng.random_range(0..100_000_000),
            dest: pick_destination(&mut self.rng, k_travel, n),
        };
        queue.push_back(rider);
        self.counts.tap_ons += 1;
        if self.config.taps.emit {
            out.push(SimEvent::TapOn(RiderTap {
                rider_id: format_compact!("C{:08}", rider.card),
                stop_id: self.city.stops[s].stop_id.clone(),
                route_id: Some(route.route_id.clone()),
                timestamp: ts,
            }));
        }
    }

    fn rider_step(&mut self, t0: TimestampMs, out: &mut Vec<SimEvent>) {
        let now = self.now;
        let factor = demand_factor(local_hour(t0, self.config.utc_offset_min));
        let total = self.tap_weights.last().copied().unwrap_or(0.0);
        let mut due: Vec<(TimestampMs, u32)> = Vec::new();
        self.taps
            .drain(now, factor, &mut self.rng, |_, t, n| due.push((t, n)));
        for (t, n) in due.drain(..) {
            // Where: stops weighted by importance. A burst is a group at one stop.
            let roll = self.rng.random_range(0.0..total.max(f64::MIN_POSITIVE));
            let i = self
                .tap_weights
                .partition_point(|&w| w <= roll)
                .min(self.tap_places.len() - 1);
            let (r, k) = self.tap_places[i];
            for _ in 0..n {
                self.rider_arrives(r as usize, k as usize, t, out);
            }
        }
        // Scripted crowds.
        while self.pending_crowds.last().is_some_and(|c| c.start_ms < now) {
            let Some(c) = self.pending_crowds.pop() else {
                break;
            };
            let Some(stop) = self.city.stops.iter().position(|s| s.stop_id == c.stop_id) else {
                continue;
            };
            let Some((route, k)) =
                self.city.routes.iter().enumerate().find_map(|(r, route)| {
                    route.stops.iter().position(|&s| s == stop).map(|k| (r, k))
                })
            else {
                continue;
            };
            let rate = c.riders as f64 / (c.duration_ms.max(1) as f64 / 1000.0);
            let arrivals = Arrivals::new(Gaps::rate(rate), Burst::NONE, c.start_ms, &mut self.rng);
            self.crowds.push(ActiveCrowd {
                stop,
                route,
                k,
                ends_ms: c.start_ms + c.duration_ms,
                arrivals,
            });
        }
        let mut crowds = std::mem::take(&mut self.crowds);
        for crowd in &mut crowds {
            crowd
                .arrivals
                .drain(now.min(crowd.ends_ms), 1.0, &mut self.rng, |_, t, n| {
                    due.push((t, n))
                });
            for (t, n) in due.drain(..) {
                for _ in 0..n {
                    self.rider_arrives(crowd.route, crowd.k, t, out);
                }
            }
            debug_assert!(self.city.routes[crowd.route].stops[crowd.k] == crowd.stop);
        }
        crowds.retain(|c| c.ends_ms > now);
        self.crowds = crowds;
    }

    fn vehicle_step(&mut self, out: &mut Vec<SimEvent>) {
        let now = self.now;
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
            if now >= v.silent_until_ms {
                self.counts.positions += 1;
                if self.config.vehicles.emit {
                    out.push(SimEvent::Position(self.report(i)));
                }
            }
        }
    }

    /// Brings vehicle `i` up to now, in physics steps of at most a second.
    fn advance_vehicle(&mut self, i: usize, rush: f64, out: &mut Vec<SimEvent>) {
        let now = self.now;
        let mut t = self.vehicles[i].updated_ms;
        while t < now {
            let dt_ms = ((MAX_STEP_S * 1000.0) as i64).min(now - t);
            t += dt_ms;
            self.step_vehicle(i, t, dt_ms as f64 / 1000.0, rush, out);
        }
        self.vehicles[i].updated_ms = now;
    }

    fn step_vehicle(
        &mut self,
        i: usize,
        now: TimestampMs,
        dt: f64,
        rush: f64,
        out: &mut Vec<SimEvent>,
    ) {
        let city = Arc::clone(&self.city);
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
        let route = &city.routes[v.route as usize];
        let params = mode_params(route.mode);
        let suspended = self.suspended[v.route as usize];

        match v.phase {
            Phase::BrokenDown | Phase::Dwelling | Phase::Layover if now < v.until_ms => {
                v.speed = 0.0;
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

        if repair_ms > 0 && v.speed > 0.5 {
            v.phase = Phase::BrokenDown;
            v.speed = 0.0;
            v.until_ms = now + repair_ms;
            self.counts.breakdowns += 1;
            // Its riders walk on to the next stop and wait there for the next vehicle
            // (those going there get off for good).
            let k = v.next_stop as usize;
            let s = route.stops[stop_index(route, v.outbound, k)];
            let dir = usize::from(!v.outbound);
            for rider in v.riders.drain(..) {
                if rider.dest as usize <= k {
                    self.counts.tap_offs += 1;
                    if self.config.taps.emit {
                        out.push(SimEvent::TapOff(RiderTap {
                            rider_id: format_compact!("C{:08}", rider.card),
                            stop_id: city.stops[s].stop_id.clone(),
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
        if route.mode != TransportMode::Rail {
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
        let target = route.cruise_mps * factor;
        let stop_at = stop_along(route, v.outbound, v.next_stop as usize);
        let remaining = stop_at - v.along;
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
                locate(&city, v);
                self.arrive(i, now, out);
            } else {
                // Still rolling: pull up to the stop and finish braking next step.
                v.along = v.along.max(stop_at - 0.5);
                v.speed = v_new;
                locate(&city, v);
            }
        } else {
            v.along += advance;
            v.speed = v_new;
            locate(&city, v);
        }
    }

    /// A vehicle reached its next stop: riders get off and on, and it dwells; at the end
    /// of the line it lays over and turns into its next trip.
    fn arrive(&mut self, i: usize, now: TimestampMs, out: &mut Vec<SimEvent>) {
        let city = Arc::clone(&self.city);
        let emit = self.config.taps.emit;
        let v = &mut self.vehicles[i];
        let route = &city.routes[v.route as usize];
        let params = mode_params(route.mode);
        let n = route.stops.len();
        let k = v.next_stop as usize;
        let s = route.stops[stop_index(route, v.outbound, k)];
        let stop_id = &city.stops[s].stop_id;

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
            // Terminus: lay over, then run the next trip back.
            let half_ms = (route.round_trip_s() / 2.0 * 1000.0) as i64;
            let next_start = v.trip_start_ms + half_ms;
            let min_turn = now
                + ((params.dwell_base_s + params.per_alighting_s * alight as f64) * 1000.0) as i64
                + 60_000;
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
        let queue = &mut self.waiting[s][usize::from(!v.outbound)];
        let room = (route.capacity as usize).saturating_sub(v.riders.len());
        let board = queue.len().min(room);
        self.counts.left_behind += (queue.len() - board) as u64;
        self.counts.boardings += board as u64;
        v.riders.extend(queue.drain(..board));
        let dwell_s = params.dwell_base_s
            + params.per_boarding_s * board as f64
            + params.per_alighting_s * alight as f64;
        v.phase = Phase::Dwelling;
        v.until_ms = now + (dwell_s * 1000.0) as i64;
    }

    fn report(&self, i: usize) -> VehiclePosition {
        let v = &self.vehicles[i];
        let route = &self.city.routes[v.route as usize];
        let at = self.city.projection.to_latlon(v.x, v.y);
        let next =
            &self.city.stops[route.stops[stop_index(route, v.outbound, v.next_stop as usize)]];
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
        }
    }
}

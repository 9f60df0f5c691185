//! The simulation core: vehicles running their timetables, riders arriving at stops
//! and riding to their destinations, traffic and city incidents slowing or suspending
//! service. Plain synchronous code fed time: the async runner ([`crate::runner`]) only
//! paces it and moves its events to the bus.
//!
//! What the processor later detects emerges from causes here: a vehicle is late
//! because it crawled through an incident or dwelt long boarding a crowd; a stop
//! surges because a stadium empties and vehicles leave riders behind.

mod config;
mod demand;
mod incidents;
mod riders;
mod timetable;
mod vehicles;

use std::collections::VecDeque;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use streamcity_core::{CityIncident, RiderTap, TimestampMs, TrafficIncident, VehiclePosition};
use streamcity_network::Network;

pub use config::{
    CrowdEvent, DEFAULT_TAP_RATE, DEFAULT_TICK_MS, LIVE_TICK_REAL_MS, SimConfig, StreamConfig,
};
pub use demand::{demand_factor, local_hour};

use crate::arrivals::Arrivals;
use incidents::{ActiveCity, ActiveTraffic};
use riders::{ActiveCrowd, Rider};
use timetable::Timetable;
use vehicles::Vehicle;

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
    /// Timetabled runs that did not run (their line suspended when they were due).
    pub cancelled: u64,
    /// Calls not made (the stop inside a closed road).
    pub skipped_calls: u64,
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
    network: Arc<Network>,
    rng: ChaCha8Rng,
    now: TimestampMs,
    vehicles: Vec<Vehicle>,
    /// With a timetabled network: the blocks still to start.
    timetable: Option<Timetable>,
    /// Riders waiting per stop, per direction (outbound, inbound).
    waiting: Vec<[VecDeque<Rider>; 2]>,
    /// Every (route, stop in outbound order) pair, with the cumulative importance used
    /// to pick where the next rider arrives.
    tap_places: Vec<riders::TapPlace>,
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

impl Simulation {
    /// A simulation of `network` from `config.start_ms`. A timetabled network (a GTFS
    /// feed) has every trip of the service day where its timetable has it; otherwise
    /// each route's fleet is placed along it, evenly spaced by its headway, as if
    /// service had been running for a while.
    pub fn new(network: Arc<Network>, mut config: SimConfig) -> Self {
        // Demand follows the network's local time (as it is at the start).
        config.utc_offset_min = network.utc_offset_at(config.start_ms);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let now = config.start_ms;
        let (vehicles, timetable) = if network.runs_timetable() {
            let mut timetable = Timetable::new(&network, now, &mut rng);
            let report_gap_ms = (config.vehicles.gaps.mean_s() * 1000.0).max(1.0) as i64;
            let vehicles = timetable
                .due(&network, now, &mut rng)
                .into_iter()
                .map(|b| vehicles::sign_on(&network, b, now, report_gap_ms, &mut rng))
                .collect();
            (vehicles, Some(timetable))
        } else {
            (vehicles::place_fleet(&network, &config, &mut rng), None)
        };
        let (tap_places, tap_weights) = riders::tap_places(&network);
        let taps = Arrivals::new(config.taps.gaps, config.taps.burst, now, &mut rng);
        let traffic_arrivals =
            Arrivals::new(config.traffic.gaps, config.traffic.burst, now, &mut rng);
        let city_arrivals =
            Arrivals::new(config.incidents.gaps, config.incidents.burst, now, &mut rng);
        let mut pending_crowds = config.crowds.clone();
        pending_crowds.sort_by_key(|c| std::cmp::Reverse(c.start_ms));
        Simulation {
            waiting: (0..network.stops.len())
                .map(|_| [VecDeque::new(), VecDeque::new()])
                .collect(),
            suspended: vec![false; network.routes.len()],
            rng,
            now,
            vehicles,
            timetable,
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
            network,
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

    /// The network being simulated.
    pub fn network(&self) -> &Arc<Network> {
        &self.network
    }

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Vehicles on the road (with a timetable: those signed on for their work).
    pub fn fleet_size(&self) -> usize {
        self.vehicles.len()
    }

    /// With a timetable: the vehicles whose work for the day is still to start.
    pub fn blocks_pending(&self) -> usize {
        self.timetable.as_ref().map_or(0, Timetable::pending)
    }

    /// What has been produced so far.
    pub fn counts(&self) -> SimCounts {
        self.counts
    }

    /// Advances one tick and appends what happened to `out`.
    pub fn step(&mut self, out: &mut Vec<SimEvent>) {
        let t0 = self.now;
        self.now += self.config.tick_ms;
        self.incident_step(out);
        self.rider_step(t0, out);
        self.vehicle_step(out);
    }
}

//! The network's types, shaped after GTFS static: agencies, routes, stops (with parent
//! stations), shapes, trips with their stop times and frequencies, and the services
//! (calendars) that say on which days trips run; plus the districts city incidents are
//! reported in.
//!
//! What is serialised is the network's wire format (the `network` topic carries it
//! between stages, see [`crate::topic`]); fields marked as derived are rebuilt from it
//! by [`Network::prepare`], which also checks that the parts fit together. A network
//! is only ever used prepared: [`Network::from_json`] and the generators return one.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use streamcity_core::geo::{LatLon, LocalProjection};
use streamcity_core::{Id, TransportMode, bus::key_hash};

use crate::calendar::Date;
use crate::geometry::LocalShape;

/// Dwell time the timetable assumes at every stop, seconds.
pub const NOMINAL_DWELL_S: f64 = 20.0;
/// Minimum layover at a terminus, seconds.
pub const LAYOVER_S: f64 = 120.0;
/// The share of its cruising speed a vehicle averages between stops, in the timetable.
pub const SCHEDULE_SPEED_SHARE: f64 = 0.8;

/// Where a network came from, so that two stages can say which one each was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// Built by [`crate::synthetic`] from a seed around a centre.
    Synthetic {
        /// The seed.
        seed: u64,
        /// The centre it was built around.
        centre: LatLon,
        /// Vehicles in service.
        vehicles: usize,
    },
    /// Loaded from an agency's GTFS feed by [`crate::gtfs`].
    Gtfs {
        /// The feed's file (or directory) name.
        feed: String,
        /// The SHA-256 of the feed's files, as read.
        sha256: String,
    },
}

/// A transit agency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agency {
    /// Agency id, e.g. `"SC"`.
    pub agency_id: Id,
    /// Name for people.
    pub name: String,
    /// Its web site.
    pub url: String,
    /// Its time zone (IANA name, e.g. `"UTC"` or `"Australia/Brisbane"`).
    pub timezone: String,
}

/// A route: one line, with the pattern of stops its vehicles serve (travelled both ways)
/// and the vehicles that run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Route id, e.g. `"B07"`.
    pub route_id: Id,
    /// The agency running it.
    pub agency_id: Id,
    /// Short name shown on vehicles, e.g. `"7"`.
    pub short_name: String,
    /// Long name, e.g. `"Harbour – Northgate"`.
    pub name: String,
    /// Bus, tram or rail.
    pub mode: TransportMode,
    /// Line colour, `#rrggbb`.
    pub color: String,
    /// The shape its vehicles follow ([`Network::shapes`]); without one they run
    /// straight from stop to stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_id: Option<Id>,
    /// Stop ids in outbound order (direction 0).
    pub stop_ids: Vec<Id>,
    /// Distance along the shape of each stop, outbound order, metres (GTFS's
    /// `shape_dist_traveled`); empty: found by projecting the stops onto the shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_dist_m: Vec<f64>,
    /// Scheduled interval between vehicles in one direction, seconds (0: not run at
    /// fixed intervals, no headway to check).
    pub headway_s: f64,
    /// Vehicles assigned to it.
    pub vehicles: usize,
    /// Cruising speed between stops, m/s.
    pub cruise_mps: f64,
    /// Places per vehicle, seated and standing.
    pub capacity: u32,
    /// Derived: the shape in local metres.
    #[serde(skip)]
    pub path: LocalShape,
    /// Derived: index into [`Network::stops`] of each stop, outbound order.
    #[serde(skip)]
    pub stops: Vec<usize>,
    /// Derived: distance along `path` of each stop, outbound order, metres.
    #[serde(skip)]
    pub stop_dist: Vec<f64>,
}

impl Route {
    /// Length of its path in metres.
    pub fn length_m(&self) -> f64 {
        self.path.length_m()
    }

    /// Nominal round-trip time in seconds: both directions at the timetable's speed
    /// plus a nominal dwell at every stop and a layover at each end.
    pub fn round_trip_s(&self) -> f64 {
        2.0 * (self.one_way_s() + LAYOVER_S)
    }

    /// Nominal time from one terminus to the other, seconds.
    pub fn one_way_s(&self) -> f64 {
        self.length_m() / (self.cruise_mps * SCHEDULE_SPEED_SHARE)
            + NOMINAL_DWELL_S * self.stops.len() as f64
    }
}

/// A stop where riders wait and vehicles dwell, or a station grouping several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// Stop id, e.g. `"S0142"`.
    pub stop_id: Id,
    /// Name for people.
    pub name: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// The station it is a platform of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_station: Option<Id>,
    /// Relative demand: 1 is an ordinary stop, 3 a major interchange.
    pub importance: f64,
    /// Derived: metres east of the centre.
    #[serde(skip)]
    pub x: f64,
    /// Derived: metres north of the centre.
    #[serde(skip)]
    pub y: f64,
    /// Derived: the routes calling here (on their main pattern or any trip's).
    #[serde(skip)]
    pub route_ids: Vec<Id>,
}

/// A shape: the path vehicles follow, as points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Shape id.
    pub shape_id: Id,
    /// `[lat, lon]` points in travel order (direction 0).
    pub points: Vec<[f64; 2]>,
}

/// A trip: one run of a route from terminus to terminus, with the time it calls at each
/// stop; with frequencies, a template repeated through the day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trip {
    /// Trip id.
    pub trip_id: Id,
    /// Its route.
    pub route_id: Id,
    /// The service (calendar) saying on which days it runs.
    pub service_id: Id,
    /// 0 outbound, 1 inbound.
    pub direction_id: u8,
    /// Where it is going, for people.
    pub headsign: String,
    /// The shape it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_id: Option<Id>,
    /// The block (a vehicle's sequence of trips) it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_id: Option<Id>,
    /// Its calls, in order.
    pub stop_times: Vec<StopTime>,
    /// When it repeats through the day (empty: it runs once, at its stop times).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frequencies: Vec<Frequency>,
    /// Derived: index into [`Network::patterns`] of the course it runs.
    #[serde(skip)]
    pub pattern: usize,
}

impl Trip {
    /// The time a run's `start_time` names, seconds after the start of its service day
    /// (GTFS-realtime's rule): the first stop's arrival for a scheduled trip; the
    /// first departure for a trip repeated by frequencies (their starts count from it).
    pub fn start_s(&self) -> u32 {
        match self.stop_times.first() {
            Some(st) if self.frequencies.is_empty() => st.arrival_s,
            Some(st) => st.departure_s,
            None => 0,
        }
    }
}

/// A course trips run: the stops they call at, in order, and the path between them.
/// Trips with the same stops and shape share one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pattern {
    /// Index into [`Network::routes`] of the route of its first trip.
    pub route: usize,
    /// The direction of its first trip (0 outbound, 1 inbound).
    pub direction_id: u8,
    /// The path in local metres, in travel order: the trips' shape, or straight from
    /// stop to stop without one (or when the shape passes far from the stops).
    pub path: LocalShape,
    /// Index into [`Network::stops`] of each call, in order.
    pub stops: Vec<usize>,
    /// Distance along `path` of each call, metres, never decreasing.
    pub stop_dist: Vec<f64>,
    /// The farthest a stop lies from the path, metres.
    pub farthest_stop_m: f64,
    /// Whether its shape passed more than [`SHAPE_TOLERANCE_M`] from a stop and was
    /// replaced by straight segments.
    pub straightened: bool,
}

/// How far from its shape a stop may lie before the shape is not believed, metres.
pub const SHAPE_TOLERANCE_M: f64 = 1_000.0;
/// How far from its shape a stop may lie without a warning, metres.
pub const SHAPE_NEAR_M: f64 = 100.0;

/// A trip's call at a stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopTime {
    /// The stop.
    pub stop_id: Id,
    /// Arrival, seconds after the start of the service day (may pass 24 h).
    pub arrival_s: u32,
    /// Departure, seconds after the start of the service day.
    pub departure_s: u32,
    /// Distance along the trip's shape, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dist_m: Option<f64>,
    /// Its `stop_sequence` in the feed, when it has one (realtime feeds name calls by
    /// it); otherwise its position in the trip, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u32>,
    /// Whether riders may board here (GTFS `pickup_type` other than 1).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub pickup: bool,
    /// Whether riders may get off here (GTFS `drop_off_type` other than 1).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub drop_off: bool,
    /// Whether its times are exact (a timepoint): a vehicle early here waits for its
    /// departure time. Times the feed leaves out, or marks approximate, are not.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub timepoint: bool,
}

fn yes() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_yes(b: &bool) -> bool {
    *b
}

/// A trip repeated at a fixed interval for part of the day (GTFS `frequencies.txt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frequency {
    /// First start, seconds after the start of the service day.
    pub start_s: u32,
    /// No start at or after this, seconds after the start of the service day.
    pub end_s: u32,
    /// Seconds between starts.
    pub headway_s: u32,
    /// Whether starts keep exactly to the interval (`true`) or only on average.
    pub exact_times: bool,
}

impl Frequency {
    /// The starts it gives, seconds after the start of the service day: from its first,
    /// every headway, before its end.
    pub fn starts(&self) -> impl Iterator<Item = u32> + use<> {
        (self.start_s..self.end_s).step_by(self.headway_s.max(1) as usize)
    }
}

/// On which days trips run (GTFS `calendar.txt` with `calendar_dates.txt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Service id.
    pub service_id: Id,
    /// Days of the week it runs, Monday first.
    pub weekdays: [bool; 7],
    /// First day.
    pub start_date: Date,
    /// Last day.
    pub end_date: Date,
    /// Extra days it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<Date>,
    /// Days it does not run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Date>,
}

impl Service {
    /// Whether it runs on `date`.
    pub fn runs_on(&self, date: Date) -> bool {
        if self.removed.contains(&date) {
            return false;
        }
        self.added.contains(&date)
            || (self.start_date <= date
                && date <= self.end_date
                && self.weekdays[date.weekday().index()])
    }
}

/// A named district, where city incidents are reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct District {
    /// Name, e.g. `"Eastside"`.
    pub name: String,
    /// Centre latitude, degrees.
    pub lat: f64,
    /// Centre longitude, degrees.
    pub lon: f64,
    /// Rough radius, metres.
    pub radius_m: f64,
    /// Derived: metres east of the network's centre.
    #[serde(skip)]
    pub x: f64,
    /// Derived: metres north of the network's centre.
    #[serde(skip)]
    pub y: f64,
}

/// A whole transit network, prepared for use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    /// What it is, for people, e.g. `"synthetic city (seed 42, 240 vehicles) around
    /// 40.7128, -74.006"`.
    pub name: String,
    /// Where it came from.
    pub source: Source,
    /// Its centre: local metres are measured from here.
    pub centre: LatLon,
    /// Offset of local time from UTC, minutes (service days and demand follow local time).
    pub utc_offset_min: i32,
    /// The agencies.
    pub agencies: Vec<Agency>,
    /// Every route.
    pub routes: Vec<Route>,
    /// Every stop and station.
    pub stops: Vec<Stop>,
    /// The shapes routes and trips follow.
    pub shapes: Vec<Shape>,
    /// The trips.
    pub trips: Vec<Trip>,
    /// The services trips run on.
    pub services: Vec<Service>,
    /// Districts, for city incidents.
    pub districts: Vec<District>,
    /// Derived: the courses trips run ([`Trip::pattern`]).
    #[serde(skip)]
    pub patterns: Vec<Pattern>,
    /// Derived: the projection between local metres and degrees.
    #[serde(skip)]
    pub projection: LocalProjection,
    /// Derived: index into `stops` by stop id.
    #[serde(skip)]
    pub(crate) stop_index: HashMap<Id, usize>,
    /// Derived: index into `routes` by route id.
    #[serde(skip)]
    pub(crate) route_index: HashMap<Id, usize>,
    /// Derived: index into `trips` by trip id.
    #[serde(skip)]
    pub(crate) trip_index: HashMap<Id, usize>,
    /// Derived: per trip, the next trip of its block (same block and service, the
    /// first to leave after it arrives), as an index into `trips`.
    #[serde(skip)]
    pub(crate) block_next: Vec<Option<u32>>,
    /// Derived: the content hash of the wire form.
    #[serde(skip)]
    pub(crate) hash: String,
    /// Derived: the time zone of its first agency, when known (local times follow its
    /// daylight saving time).
    #[serde(skip)]
    pub(crate) zone: Option<jiff::tz::TimeZone>,
}

/// Why a network could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetworkError {
    /// Not a network, or damaged.
    #[error("unreadable network: {0}")]
    Unreadable(String),
    /// Its parts do not fit together.
    #[error("invalid network: {0}")]
    Invalid(String),
}

fn invalid(why: impl Into<String>) -> NetworkError {
    NetworkError::Invalid(why.into())
}

impl Network {
    /// A network with nothing in it, for generators to fill (then [`Network::prepare`]).
    pub(crate) fn empty() -> Network {
        Network {
            name: String::new(),
            source: Source::Synthetic {
                seed: 0,
                centre: LatLon::new(0.0, 0.0),
                vehicles: 0,
            },
            centre: LatLon::new(0.0, 0.0),
            utc_offset_min: 0,
            agencies: Vec::new(),
            routes: Vec::new(),
            stops: Vec::new(),
            shapes: Vec::new(),
            trips: Vec::new(),
            services: Vec::new(),
            districts: Vec::new(),
            patterns: Vec::new(),
            projection: LocalProjection::default(),
            stop_index: HashMap::new(),
            route_index: HashMap::new(),
            trip_index: HashMap::new(),
            block_next: Vec::new(),
            hash: String::new(),
            zone: None,
        }
    }

    /// A network from its wire form (JSON), checked and prepared.
    pub fn from_json(bytes: &[u8]) -> Result<Network, NetworkError> {
        let raw: Network =
            serde_json::from_slice(bytes).map_err(|e| NetworkError::Unreadable(e.to_string()))?;
        raw.prepare()
    }

    /// The wire form (JSON).
    pub fn to_json(&self) -> Vec<u8> {
        // Plain structs of strings, numbers, vectors and fixed arrays: serialising
        // cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The content hash of the wire form: two stages hold the same network exactly when
    /// their hashes agree. 16 hex digits.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// What it is and its size, with its hash, for messages: `synthetic city (...): 14
    /// routes, 352 stops, 28 trips [hash 1a2b...]`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} routes, {} stops, {} trips [hash {}]",
            self.name,
            self.routes.len(),
            self.stops.len(),
            self.trips.len(),
            self.hash
        )
    }

    /// Checks that the parts fit together and derives what the stages use: local
    /// geometry, stop distances, indexes, the hash. Every network in use went through it.
    pub fn prepare(mut self) -> Result<Network, NetworkError> {
        if !self.centre.is_valid() {
            return Err(invalid(format!(
                "centre {:?} is not a position",
                self.centre
            )));
        }
        if self.routes.is_empty() {
            return Err(invalid("no routes"));
        }
        if self.routes.len() > usize::from(u16::MAX) {
            return Err(invalid(format!(
                "{} routes; at most 65535",
                self.routes.len()
            )));
        }
        self.projection = LocalProjection::new(self.centre);
        let projection = self.projection;

        self.stop_index = HashMap::with_capacity(self.stops.len());
        for (i, s) in self.stops.iter_mut().enumerate() {
            if !LatLon::new(s.lat, s.lon).is_valid() {
                return Err(invalid(format!(
                    "stop {} at ({}, {}) is not a position",
                    s.stop_id, s.lat, s.lon
                )));
            }
            if !(s.importance.is_finite() && s.importance >= 0.0) {
                return Err(invalid(format!(
                    "stop {}: importance must be >= 0",
                    s.stop_id
                )));
            }
            if self.stop_index.insert(s.stop_id.clone(), i).is_some() {
                return Err(invalid(format!("stop {} appears twice", s.stop_id)));
            }
            (s.x, s.y) = projection.to_xy(LatLon::new(s.lat, s.lon));
            s.route_ids.clear();
        }
        for s in &self.stops {
            if let Some(parent) = &s.parent_station
                && !self.stop_index.contains_key(parent)
            {
                return Err(invalid(format!(
                    "stop {}: parent station {parent} does not exist",
                    s.stop_id
                )));
            }
        }

        let mut shapes: HashMap<&Id, &Shape> = HashMap::with_capacity(self.shapes.len());
        for shape in &self.shapes {
            if let Some(bad) = shape
                .points
                .iter()
                .find(|p| !LatLon::new(p[0], p[1]).is_valid())
            {
                return Err(invalid(format!(
                    "shape {}: point {bad:?} is not a position",
                    shape.shape_id
                )));
            }
            if shapes.insert(&shape.shape_id, shape).is_some() {
                return Err(invalid(format!("shape {} appears twice", shape.shape_id)));
            }
        }

        self.route_index = HashMap::with_capacity(self.routes.len());
        for (r, route) in self.routes.iter_mut().enumerate() {
            let id = route.route_id.clone();
            if self.route_index.insert(id.clone(), r).is_some() {
                return Err(invalid(format!("route {id} appears twice")));
            }
            if route.stop_ids.len() < 2 || route.stop_ids.len() > usize::from(u16::MAX) {
                return Err(invalid(format!(
                    "route {id} has {} stops; it needs 2 to 65535",
                    route.stop_ids.len()
                )));
            }
            if !(route.cruise_mps.is_finite() && route.cruise_mps > 0.0) {
                return Err(invalid(format!("route {id}: cruise_mps must be positive")));
            }
            if route.capacity == 0 {
                return Err(invalid(format!("route {id}: capacity must be positive")));
            }
            if !(route.headway_s.is_finite() && route.headway_s >= 0.0) {
                return Err(invalid(format!("route {id}: headway_s must be >= 0")));
            }
            route.stops = route
                .stop_ids
                .iter()
                .map(|s| {
                    self.stop_index
                        .get(s)
                        .copied()
                        .ok_or_else(|| invalid(format!("route {id}: stop {s} does not exist")))
                })
                .collect::<Result<_, _>>()?;
            for &s in &route.stops {
                let calls = &mut self.stops[s].route_ids;
                if !calls.contains(&id) {
                    calls.push(id.clone());
                }
            }
            let points: Vec<(f64, f64)> = match route.shape_id.as_ref().and_then(|s| shapes.get(s))
            {
                Some(shape) if shape.points.len() >= 2 => shape
                    .points
                    .iter()
                    .map(|p| projection.to_xy(LatLon::new(p[0], p[1])))
                    .collect(),
                // Without a shape: straight from stop to stop.
                _ => route
                    .stops
                    .iter()
                    .map(|&s| (self.stops[s].x, self.stops[s].y))
                    .collect(),
            };
            route.path = LocalShape::new(points);
            let length = route.path.length_m();
            route.stop_dist = if route.stop_dist_m.is_empty() {
                // Each stop onto the shape, in order.
                let places: Vec<(f64, f64)> = route
                    .stops
                    .iter()
                    .map(|&s| (self.stops[s].x, self.stops[s].y))
                    .collect();
                route
                    .path
                    .project_in_order(&places)
                    .into_iter()
                    .map(|p| p.0)
                    .collect()
            } else if route.stop_dist_m.len() == route.stop_ids.len()
                && route.stop_dist_m.iter().all(|d| d.is_finite())
                && route.stop_dist_m.windows(2).all(|w| w[0] <= w[1])
            {
                route
                    .stop_dist_m
                    .iter()
                    .map(|d| d.clamp(0.0, length))
                    .collect()
            } else {
                return Err(invalid(format!(
                    "route {id}: stop_dist_m must give a finite, non-decreasing distance for each of its {} stops",
                    route.stop_ids.len()
                )));
            };
            if length <= 0.0 {
                return Err(invalid(format!("route {id} has a path of length 0")));
            }
        }

        self.trip_index = HashMap::with_capacity(self.trips.len());
        for (i, trip) in self.trips.iter().enumerate() {
            if self.trip_index.insert(trip.trip_id.clone(), i).is_some() {
                return Err(invalid(format!("trip {} appears twice", trip.trip_id)));
            }
        }
        // Blocks: each trip's successor, by first departure within (block, service).
        self.block_next = vec![None; self.trips.len()];
        let mut blocks: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (i, trip) in self.trips.iter().enumerate() {
            if let (Some(block), false) = (&trip.block_id, trip.stop_times.is_empty()) {
                blocks
                    .entry((block.as_str(), trip.service_id.as_str()))
                    .or_default()
                    .push(i);
            }
        }
        for mut trips in blocks.into_values() {
            trips.sort_by_key(|&t| self.trips[t].stop_times[0].departure_s);
            for pair in trips.windows(2) {
                let ends = self.trips[pair[0]]
                    .stop_times
                    .last()
                    .map_or(0, |st| st.arrival_s);
                if self.trips[pair[1]].stop_times[0].departure_s >= ends {
                    self.block_next[pair[0]] = Some(pair[1] as u32);
                }
            }
        }
        self.patterns.clear();
        let mut pattern_index: HashMap<(Option<Id>, Vec<usize>), usize> = HashMap::new();
        for trip in &mut self.trips {
            let t = &trip.trip_id;
            if !self.route_index.contains_key(&trip.route_id) {
                return Err(invalid(format!(
                    "trip {t}: route {} does not exist",
                    trip.route_id
                )));
            }
            if !self
                .services
                .iter()
                .any(|s| s.service_id == trip.service_id)
            {
                return Err(invalid(format!(
                    "trip {t}: service {} does not exist",
                    trip.service_id
                )));
            }
            if let Some(st) = trip
                .stop_times
                .iter()
                .find(|st| !self.stop_index.contains_key(&st.stop_id))
            {
                return Err(invalid(format!(
                    "trip {t}: stop {} does not exist",
                    st.stop_id
                )));
            }
            if trip
                .frequencies
                .iter()
                .any(|f| f.headway_s == 0 || f.end_s < f.start_s)
            {
                return Err(invalid(format!(
                    "trip {t}: a frequency needs a positive headway and an end after its start"
                )));
            }
            if trip.stop_times.len() < 2 || trip.stop_times.len() > usize::from(u16::MAX) {
                return Err(invalid(format!(
                    "trip {t} calls at {} stops; it needs 2 to 65535",
                    trip.stop_times.len()
                )));
            }
            if trip
                .stop_times
                .windows(2)
                .any(|w| w[0].arrival_s > w[0].departure_s || w[1].arrival_s < w[0].departure_s)
                || trip
                    .stop_times
                    .iter()
                    .any(|st| st.arrival_s > st.departure_s)
            {
                return Err(invalid(format!("trip {t}: its stop times go back in time")));
            }
            let calls: Vec<usize> = trip
                .stop_times
                .iter()
                .map(|st| self.stop_index[&st.stop_id])
                .collect();
            let key = (trip.shape_id.clone(), calls);
            trip.pattern = match pattern_index.get(&key) {
                Some(&p) => p,
                None => {
                    let route = self.route_index[&trip.route_id];
                    let shape = key.0.as_ref().and_then(|s| shapes.get(s)).copied();
                    let mut pattern = pattern_of(route, shape, &key.1, &self.stops, &projection);
                    pattern.direction_id = trip.direction_id;
                    for &s in &pattern.stops {
                        let calls = &mut self.stops[s].route_ids;
                        if !calls.contains(&trip.route_id) {
                            calls.push(trip.route_id.clone());
                        }
                    }
                    self.patterns.push(pattern);
                    pattern_index.insert(key, self.patterns.len() - 1);
                    self.patterns.len() - 1
                }
            };
        }
        for d in &mut self.districts {
            if !(LatLon::new(d.lat, d.lon).is_valid() && d.radius_m.is_finite() && d.radius_m > 0.0)
            {
                return Err(invalid(format!("district {} is not a place", d.name)));
            }
            (d.x, d.y) = projection.to_xy(LatLon::new(d.lat, d.lon));
        }
        self.zone = self
            .agencies
            .first()
            .and_then(|a| jiff::tz::TimeZone::get(&a.timezone).ok());
        self.hash = format!("{:016x}", key_hash(&self.to_json()));
        Ok(self)
    }

    /// Looks up a stop by id.
    pub fn stop(&self, stop_id: &str) -> Option<&Stop> {
        self.stop_index.get(stop_id).map(|&i| &self.stops[i])
    }

    /// The index into [`Network::stops`] of a stop.
    pub fn stop_position(&self, stop_id: &str) -> Option<usize> {
        self.stop_index.get(stop_id).copied()
    }

    /// Looks up a route by id.
    pub fn route(&self, route_id: &str) -> Option<&Route> {
        self.route_index.get(route_id).map(|&i| &self.routes[i])
    }

    /// The index into [`Network::routes`] of a route.
    pub fn route_position(&self, route_id: &str) -> Option<usize> {
        self.route_index.get(route_id).copied()
    }

    /// Offset of the city's local time from UTC at `ts` (ms since the epoch), minutes:
    /// its agency's time zone, daylight saving time included; `utc_offset_min` when the
    /// zone is not known.
    pub fn utc_offset_at(&self, ts: i64) -> i32 {
        match (&self.zone, jiff::Timestamp::from_millisecond(ts)) {
            (Some(zone), Ok(at)) => zone.to_offset(at).seconds() / 60,
            _ => self.utc_offset_min,
        }
    }

    /// The city's local date at `ts`.
    pub fn local_date(&self, ts: i64) -> Date {
        Date::of(ts, self.utc_offset_at(ts))
    }

    /// The moment it is `seconds` past midnight by the city's clocks on `date`, ms since
    /// the epoch (in an hour a clock change skips or repeats, the earlier reading).
    pub fn local_time_ms(&self, date: Date, seconds: i64) -> i64 {
        let wall = date.days() * 86_400_000 + seconds * 1000;
        // The offset in force then, found from a guess: clock changes are hours apart.
        let guess = wall - i64::from(self.utc_offset_at(wall)) * 60_000;
        wall - i64::from(self.utc_offset_at(guess)) * 60_000
    }

    /// Where the times of `date`'s timetable count from, ms since the epoch: noon minus
    /// twelve hours by the city's clocks, as GTFS has it (midnight, but on the days the
    /// clocks change).
    pub fn service_day_start_ms(&self, date: Date) -> i64 {
        self.local_time_ms(date, 12 * 3600) - 12 * 3_600_000
    }

    /// The trip the vehicle of `trip_id`'s block runs next, if any.
    pub fn next_in_block(&self, trip_id: &str) -> Option<&Trip> {
        let &i = self.trip_index.get(trip_id)?;
        let next = (*self.block_next.get(i)?)?;
        self.trips.get(next as usize)
    }

    /// Looks up a trip by id.
    pub fn trip(&self, trip_id: &str) -> Option<&Trip> {
        self.trip_index.get(trip_id).map(|&i| &self.trips[i])
    }

    /// When the times of a run of `trip_id` count from, ms since the epoch: the run that
    /// starts at `start_time` (`HH:MM:SS`, a start of its frequencies, or its own first
    /// departure) on the service day `start_date` (`YYYYMMDD`), as vehicle reports name
    /// them. A call's scheduled time is this plus its `arrival_s` or `departure_s`.
    pub fn run_base_ms(&self, trip_id: &str, start_date: &str, start_time: &str) -> Option<i64> {
        let trip = self.trip(trip_id)?;
        let date = Date(start_date.parse().ok()?);
        if !date.is_valid() {
            return None;
        }
        let mut parts = start_time.split(':').map(|p| p.parse::<i64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        let start_s = h * 3600 + m * 60 + s;
        trip.stop_times.first()?;
        let first = i64::from(trip.start_s());
        Some(self.service_day_start_ms(date) + (start_s - first) * 1000)
    }

    /// When the timetable has a run of `trip_id` leave `stop_id` (its first call there),
    /// ms since the epoch (the run as [`Network::run_base_ms`] names it).
    pub fn scheduled_departure_ms(
        &self,
        trip_id: &str,
        start_date: &str,
        start_time: &str,
        stop_id: &str,
    ) -> Option<i64> {
        let base = self.run_base_ms(trip_id, start_date, start_time)?;
        let call = self
            .trip(trip_id)?
            .stop_times
            .iter()
            .find(|st| st.stop_id == stop_id)?;
        Some(base + i64::from(call.departure_s) * 1000)
    }

    /// Indexes of the routes whose path passes within `radius_m` of the point `(x, y)`
    /// (local metres).
    pub fn routes_near(&self, x: f64, y: f64, radius_m: f64) -> Vec<usize> {
        (0..self.routes.len())
            .filter(|&i| self.routes[i].path.passes_within((x, y), radius_m))
            .collect()
    }

    /// The scheduled headway of every route run at fixed intervals, seconds: what
    /// bunching and gapping are judged against.
    pub fn headways(&self) -> HashMap<Id, f64> {
        self.routes
            .iter()
            .filter(|r| r.headway_s > 0.0)
            .map(|r| (r.route_id.clone(), r.headway_s))
            .collect()
    }

    /// Whether `service_id` runs on `date`.
    pub fn runs_on(&self, service_id: &str, date: Date) -> bool {
        self.services
            .iter()
            .any(|s| s.service_id == service_id && s.runs_on(date))
    }

    /// Whether its vehicles run its trips as timetabled (a GTFS feed), rather than
    /// shuttling along their routes at the routes' headways (the synthetic city).
    pub fn runs_timetable(&self) -> bool {
        matches!(self.source, Source::Gtfs { .. })
    }

    /// The first and last day any service runs, if any does.
    pub fn service_range(&self) -> Option<(Date, Date)> {
        let days = self.services.iter().flat_map(|s| {
            let range = (s.start_date <= s.end_date && s.weekdays.contains(&true))
                .then_some([s.start_date, s.end_date]);
            range.into_iter().flatten().chain(s.added.iter().copied())
        });
        days.fold(None, |acc, d| match acc {
            None => Some((d, d)),
            Some((a, b)) => Some((a.min(d), b.max(d))),
        })
    }

    /// The trips that run on `date`, as indexes into [`Network::trips`].
    pub fn trips_on(&self, date: Date) -> Vec<usize> {
        let running: std::collections::HashSet<&str> = self
            .services
            .iter()
            .filter(|s| s.runs_on(date))
            .map(|s| s.service_id.as_str())
            .collect();
        (0..self.trips.len())
            .filter(|&t| running.contains(self.trips[t].service_id.as_str()))
            .collect()
    }

    /// The runs of the timetable the simulated day `date` runs ([`Network::timetable_day`])
    /// that start from `from_s` up to `to_s` seconds after the start of its service day,
    /// as (trip index, start in seconds). Runs of frequencies without exact times are
    /// left out: the timetable does not say when they start.
    pub fn runs_starting(&self, date: Date, from_s: i64, to_s: i64) -> Vec<(usize, u32)> {
        let Some(day) = self.timetable_day(date) else {
            return Vec::new();
        };
        let within = |s: u32| (from_s..=to_s).contains(&i64::from(s));
        let mut runs = Vec::new();
        for t in self.trips_on(day) {
            let trip = &self.trips[t];
            if trip.stop_times.is_empty() {
                continue;
            }
            let first = trip.start_s();
            if trip.frequencies.is_empty() {
                if within(first) {
                    runs.push((t, first));
                }
                continue;
            }
            for f in trip.frequencies.iter().filter(|f| f.exact_times) {
                runs.extend(f.starts().filter(|&s| within(s)).map(|s| (t, s)));
            }
        }
        runs
    }

    /// How many runs of the timetable of `date` are on the road at `seconds` past the
    /// start of its service day (a trip repeated by frequencies counts each start).
    pub fn runs_at(&self, date: Date, seconds: u32) -> usize {
        self.trips_on(date)
            .into_iter()
            .map(|t| {
                let trip = &self.trips[t];
                let (first, last) = match (trip.stop_times.first(), trip.stop_times.last()) {
                    (Some(a), Some(b)) => (a.departure_s, b.arrival_s),
                    _ => return 0,
                };
                if trip.frequencies.is_empty() {
                    return usize::from((first..=last).contains(&seconds));
                }
                // Starts within one run's length before `seconds`.
                let span = last - first;
                trip.frequencies
                    .iter()
                    .map(|f| {
                        let from = f.start_s.max(seconds.saturating_sub(span));
                        let to = f.end_s.min(seconds + 1);
                        if to <= from {
                            0
                        } else {
                            ((to - from).div_ceil(f.headway_s.max(1))) as usize
                        }
                    })
                    .sum()
            })
            .sum()
    }

    /// The day of the timetable that runs on the simulated day `date`: `date` itself
    /// when it lies within the feed's calendar, otherwise the nearest day with the same
    /// weekday inside it (every published feed is of another year than some run). `None`
    /// when the network has no calendar at all.
    pub fn timetable_day(&self, date: Date) -> Option<Date> {
        let (first, last) = self.service_range()?;
        if (first..=last).contains(&date) {
            return Some(date);
        }
        let (days, first, last) = (date.days(), first.days(), last.days());
        let target = if days < first { first } else { last };
        // The day of `date`'s weekday nearest to `target`, inside the range when there is
        // one (a range shorter than a week may not hold that weekday: then the nearest).
        let shift = (days - target).rem_euclid(7);
        let candidates = [target + shift, target + shift - 7];
        let inside = candidates
            .iter()
            .copied()
            .find(|d| (first..=last).contains(d));
        Some(Date::from_days(inside.unwrap_or(candidates[0])))
    }
}

/// The course of a trip of `route` calling at `calls` (indexes into `stops`), along
/// `shape` when it has one that passes near its stops.
fn pattern_of(
    route: usize,
    shape: Option<&Shape>,
    calls: &[usize],
    stops: &[Stop],
    projection: &LocalProjection,
) -> Pattern {
    let places: Vec<(f64, f64)> = calls.iter().map(|&s| (stops[s].x, stops[s].y)).collect();
    let straight = || LocalShape::new(places.clone());
    // Each stop's distance along the path, and the farthest a stop lies from it.
    let along = |path: &LocalShape| -> (Vec<f64>, f64) {
        let placed = path.project_in_order(&places);
        let worst = placed.iter().map(|p| p.1).fold(0.0, f64::max);
        (placed.into_iter().map(|p| p.0).collect(), worst)
    };
    let course = |path: LocalShape, stop_dist: Vec<f64>, farthest_stop_m, straightened| Pattern {
        route,
        direction_id: 0,
        path,
        stops: calls.to_vec(),
        stop_dist,
        farthest_stop_m,
        straightened,
    };
    let straight_course = |farthest_stop_m, straightened| {
        let path = straight();
        let (stop_dist, _) = along(&path);
        course(path, stop_dist, farthest_stop_m, straightened)
    };
    let Some(shape) = shape.filter(|s| s.points.len() >= 2) else {
        return straight_course(0.0, false);
    };
    let path = LocalShape::new(
        shape
            .points
            .iter()
            .map(|p| projection.to_xy(LatLon::new(p[0], p[1])))
            .collect(),
    );
    let (stop_dist, worst) = along(&path);
    if worst <= SHAPE_TOLERANCE_M && path.length_m() > 0.0 {
        course(path, stop_dist, worst, false)
    } else {
        straight_course(worst, true)
    }
}

/// Every day of the week, for [`Service::weekdays`].
pub const EVERY_DAY: [bool; 7] = [true; 7];

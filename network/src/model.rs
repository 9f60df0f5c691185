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
    /// Derived: the routes calling here.
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
}

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
    /// Derived: the projection between local metres and degrees.
    #[serde(skip)]
    pub projection: LocalProjection,
    /// Derived: index into `stops` by stop id.
    #[serde(skip)]
    pub(crate) stop_index: HashMap<Id, usize>,
    /// Derived: index into `routes` by route id.
    #[serde(skip)]
    pub(crate) route_index: HashMap<Id, usize>,
    /// Derived: the content hash of the wire form.
    #[serde(skip)]
    pub(crate) hash: String,
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
            projection: LocalProjection::default(),
            stop_index: HashMap::new(),
            route_index: HashMap::new(),
            hash: String::new(),
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
                // Project each stop onto the shape, never behind the previous one.
                let mut from = 0.0;
                route
                    .stops
                    .iter()
                    .map(|&s| {
                        let d = route
                            .path
                            .project_from((self.stops[s].x, self.stops[s].y), from);
                        from = d;
                        d
                    })
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

        for trip in &self.trips {
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
        }
        for d in &mut self.districts {
            if !(LatLon::new(d.lat, d.lon).is_valid() && d.radius_m.is_finite() && d.radius_m > 0.0)
            {
                return Err(invalid(format!("district {} is not a place", d.name)));
            }
            (d.x, d.y) = projection.to_xy(LatLon::new(d.lat, d.lon));
        }
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
}

/// Every day of the week, for [`Service::weekdays`].
pub const EVERY_DAY: [bool; 7] = [true; 7];

//! An agency's GTFS feed (a zip, or a directory of `.txt` files) as a network.
//!
//! The feed is read with `gtfs-structures` and mapped onto the model: agencies, stops
//! and stations, routes with their mode and colour, trips with their stop times
//! (missing times between timepoints interpolated), frequencies, calendars, shapes. What
//! cannot be run is an error naming the file, the line and the field; what can be run
//! without is left out and counted in the [`Report`]'s warnings (`streamcity gtfs
//! inspect` lists them). Nothing half-loaded is ever returned.
//!
//! Each route also gets what the simulation and the detectors run on: its main pattern
//! of stops (the one most of its trips serve), a shape, a headway (from its departures
//! or frequencies) and a fleet size (from the trip's running time and the headway).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use gtfs_structures::{
    DirectionType, ExactTimes, Exception, GtfsReader, LocationType, PickupDropOffType, RawGtfs,
    RouteType, TimepointType,
};
use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::{Id, TransportMode, error_chain};

use crate::calendar::Date;
use crate::model::{
    Agency, District, Frequency, LAYOVER_S, Network, NetworkError, Route, SHAPE_NEAR_M, Service,
    Shape, Source, Stop, StopTime, Trip,
};

/// Why a feed cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum GtfsError {
    /// Not a GTFS feed at all, or a file of it that cannot be read.
    #[error("{path}: {why}")]
    Unreadable {
        /// The feed, or the file in it.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A value that cannot be run with.
    #[error("{file}, line {line}, field {field}: {why}")]
    Field {
        /// The file, e.g. `stop_times.txt`.
        file: &'static str,
        /// The line in it (the header is line 1).
        line: usize,
        /// The field, e.g. `stop_id`.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The feed reads, but leaves nothing to run.
    #[error("{0}")]
    Empty(String),
    /// The network it makes does not hold together.
    #[error(transparent)]
    Network(#[from] NetworkError),
}

/// What a feed held and what was left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Rows read, by file (`stops.txt` → 416).
    pub rows: BTreeMap<&'static str, usize>,
    /// What was left out or guessed, by kind: how many times, and the first example.
    pub warnings: BTreeMap<&'static str, (usize, String)>,
}

impl Report {
    fn warn(&mut self, kind: &'static str, example: impl FnOnce() -> String) {
        let entry = self.warnings.entry(kind).or_insert_with(|| (0, example()));
        entry.0 += 1;
    }

    /// Warnings in all.
    pub fn warning_count(&self) -> usize {
        self.warnings.values().map(|w| w.0).sum()
    }
}

/// A feed loaded: the network and what the loading noticed.
#[derive(Debug)]
pub struct Loaded {
    /// The network, prepared.
    pub network: Network,
    /// What the feed held and what was left out.
    pub report: Report,
}

/// Loads the feed at `path` (a `.zip` or a directory).
pub fn load(path: &Path) -> Result<Loaded, GtfsError> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Err(GtfsError::Unreadable {
            path: shown,
            why: "no such file or directory".to_owned(),
        });
    }
    let raw = GtfsReader::default()
        .trim_fields(true)
        .raw()
        .read_from_path(path)
        .map_err(|e| GtfsError::Unreadable {
            path: shown.clone(),
            why: format!("not a readable GTFS feed: {}", error_chain(&e)),
        })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| shown.clone());
    Builder::default().build(raw, &name)
}

/// A required file's rows, or an error naming it.
fn required<T>(
    file: &'static str,
    rows: Result<Vec<T>, gtfs_structures::Error>,
) -> Result<Vec<T>, GtfsError> {
    rows.map_err(|e| GtfsError::Unreadable {
        path: file.to_owned(),
        why: error_chain(&e),
    })
}

/// An optional file's rows (none when absent), or an error naming it.
fn optional<T>(
    file: &'static str,
    rows: Option<Result<Vec<T>, gtfs_structures::Error>>,
) -> Result<Vec<T>, GtfsError> {
    rows.map_or(Ok(Vec::new()), |r| required(file, r))
}

fn date(d: jiff::civil::Date) -> Date {
    Date::from_ymd(
        u32::try_from(d.year()).unwrap_or(0),
        u32::try_from(d.month()).unwrap_or(0),
        u32::try_from(d.day()).unwrap_or(0),
    )
}

/// The simulated mode of a GTFS route type, and whether it is only close to it.
fn mode(route_type: RouteType) -> (TransportMode, bool) {
    match route_type {
        RouteType::Bus => (TransportMode::Bus, false),
        RouteType::Tramway => (TransportMode::Tram, false),
        RouteType::Subway => (TransportMode::Subway, false),
        RouteType::Rail => (TransportMode::Rail, false),
        RouteType::Ferry => (TransportMode::Ferry, false),
        RouteType::CableCar | RouteType::Gondola | RouteType::Funicular => {
            (TransportMode::Cable, false)
        }
        RouteType::Extended(e) => match e.to_standard_route_type() {
            RouteType::Extended(_) => (TransportMode::Bus, true),
            base => mode(base),
        },
        RouteType::Other(_) => (TransportMode::Bus, true),
    }
}

/// Cruising speed (m/s), places per vehicle and colour of a mode.
fn mode_defaults(mode: TransportMode) -> (f64, u32, &'static str) {
    match mode {
        TransportMode::Bus => (11.0, 80, "#1f77b4"),
        TransportMode::Tram => (12.0, 180, "#2ca02c"),
        TransportMode::Rail => (25.0, 600, "#d62728"),
        TransportMode::Subway => (18.0, 1_000, "#9467bd"),
        TransportMode::Ferry => (8.0, 300, "#17becf"),
        TransportMode::Cable => (5.0, 60, "#8c564b"),
    }
}

#[derive(Default)]
struct Builder {
    report: Report,
}

impl Builder {
    fn build(mut self, raw: RawGtfs, name: &str) -> Result<Loaded, GtfsError> {
        let agencies = required("agency.txt", raw.agencies)?;
        let stops = required("stops.txt", raw.stops)?;
        let routes = required("routes.txt", raw.routes)?;
        let trips = required("trips.txt", raw.trips)?;
        let stop_times = required("stop_times.txt", raw.stop_times)?;
        if raw.calendar.is_none() && raw.calendar_dates.is_none() {
            return Err(GtfsError::Unreadable {
                path: "calendar.txt".to_owned(),
                why: "a feed needs calendar.txt or calendar_dates.txt".to_owned(),
            });
        }
        let calendar = optional("calendar.txt", raw.calendar)?;
        let calendar_dates = optional("calendar_dates.txt", raw.calendar_dates)?;
        let shapes = optional("shapes.txt", raw.shapes)?;
        let frequencies = optional("frequencies.txt", raw.frequencies)?;
        for (file, n) in [
            ("agency.txt", agencies.len()),
            ("stops.txt", stops.len()),
            ("routes.txt", routes.len()),
            ("trips.txt", trips.len()),
            ("stop_times.txt", stop_times.len()),
            ("calendar.txt", calendar.len()),
            ("calendar_dates.txt", calendar_dates.len()),
            ("shapes.txt", shapes.len()),
            ("frequencies.txt", frequencies.len()),
        ] {
            self.report.rows.insert(file, n);
        }
        if agencies.is_empty() {
            return Err(GtfsError::Empty("agency.txt has no agency".to_owned()));
        }

        let stops = self.stops(&stops)?;
        let stop_kind: HashMap<&str, bool> = stops
            .iter()
            .map(|(s, station)| (s.stop_id.as_str(), *station))
            .collect();
        let services = self.services(&calendar, &calendar_dates);
        let service_ids: HashSet<&str> = services.iter().map(|s| s.service_id.as_str()).collect();
        let shapes = shapes_of(shapes);
        let shape_ids: HashSet<&str> = shapes.iter().map(|s| s.shape_id.as_str()).collect();

        // Stop times by trip, in file order (their line numbers kept for errors).
        let mut calls: HashMap<&str, Vec<(usize, &gtfs_structures::RawStopTime)>> =
            HashMap::with_capacity(trips.len());
        let trip_ids: HashSet<&str> = trips.iter().map(|t| t.id.as_str()).collect();
        for (i, st) in stop_times.iter().enumerate() {
            if !trip_ids.contains(st.trip_id.as_str()) {
                self.report
                    .warn("stop times of unknown trips (left out)", || {
                        format!("stop_times.txt line {}: trip {}", i + 2, st.trip_id)
                    });
                continue;
            }
            calls.entry(&st.trip_id).or_default().push((i + 2, st));
        }
        let mut freq_of: HashMap<&str, Vec<Frequency>> = HashMap::new();
        for (i, f) in frequencies.iter().enumerate() {
            if f.headway_secs == 0 || f.end_time <= f.start_time {
                return Err(GtfsError::Field {
                    file: "frequencies.txt",
                    line: i + 2,
                    field: "headway_secs",
                    why: "a frequency needs a positive headway and an end after its start"
                        .to_owned(),
                });
            }
            freq_of.entry(&f.trip_id).or_default().push(Frequency {
                start_s: f.start_time,
                end_s: f.end_time,
                headway_s: f.headway_secs,
                exact_times: matches!(f.exact_times, Some(ExactTimes::ScheduleBased)),
            });
        }

        let route_ids: HashSet<&str> = routes.iter().map(|r| r.id.as_str()).collect();
        let mut kept: Vec<Trip> = Vec::with_capacity(trips.len());
        for trip in &trips {
            if !route_ids.contains(trip.route_id.as_str()) {
                return Err(GtfsError::Field {
                    file: "trips.txt",
                    line: 0,
                    field: "route_id",
                    why: format!(
                        "trip {}: route {} is not in routes.txt",
                        trip.id, trip.route_id
                    ),
                });
            }
            if !service_ids.contains(trip.service_id.as_str()) {
                self.report.warn("trips of unknown services (not run)", || {
                    format!("trip {}: service {}", trip.id, trip.service_id)
                });
                continue;
            }
            let Some(mut rows) = calls.remove(trip.id.as_str()) else {
                self.report
                    .warn("trips without stop times (not run)", || trip.id.clone());
                continue;
            };
            rows.sort_by_key(|(_, st)| st.stop_sequence);
            let Some(stop_times) = self.stop_times(&trip.id, &rows, &stop_kind)? else {
                continue;
            };
            let shape_id = match &trip.shape_id {
                Some(s) if shape_ids.contains(s.as_str()) => Some(Id::from(s.as_str())),
                Some(s) => {
                    self.report.warn(
                        "trips naming a shape not in shapes.txt (run straight)",
                        || format!("trip {}: shape {s}", trip.id),
                    );
                    None
                }
                None => None,
            };
            kept.push(Trip {
                trip_id: Id::from(trip.id.as_str()),
                route_id: Id::from(trip.route_id.as_str()),
                service_id: Id::from(trip.service_id.as_str()),
                direction_id: u8::from(matches!(trip.direction_id, Some(DirectionType::Inbound))),
                headsign: trip.trip_headsign.clone().unwrap_or_default(),
                shape_id,
                block_id: trip.block_id.as_deref().map(Id::from),
                stop_times,
                frequencies: freq_of.remove(trip.id.as_str()).unwrap_or_default(),
                pattern: 0,
            });
        }
        if kept.is_empty() {
            return Err(GtfsError::Empty(
                "no trip of the feed can be run (every one lacks stop times or a service)"
                    .to_owned(),
            ));
        }

        let mut routes_out = Vec::with_capacity(routes.len());
        for r in &routes {
            match self.route(r, &kept) {
                Some(route) => routes_out.push(route),
                None => self
                    .report
                    .warn("routes without a trip to run (left out)", || r.id.clone()),
            }
        }
        let running: HashSet<&str> = routes_out.iter().map(|r| r.route_id.as_str()).collect();
        kept.retain(|t| running.contains(t.route_id.as_str()));

        let mut stops: Vec<Stop> = stops.into_iter().map(|(s, _)| s).collect();
        importance(&mut stops, &kept);
        let centre = centre_of(&stops);
        let districts = districts_of(&stops, &routes_out);
        let timezone = agencies[0].timezone.clone();
        let first_day = services.iter().map(|s| s.start_date).min();
        let utc_offset_min = utc_offset(&timezone, first_day);
        let agency_names: Vec<&str> = agencies.iter().map(|a| a.name.as_str()).collect();
        let network = Network {
            name: format!("{} (GTFS feed {name})", agency_names.join(", ")),
            source: Source::Gtfs {
                feed: name.to_owned(),
                sha256: raw.sha256.unwrap_or_default(),
            },
            centre,
            utc_offset_min,
            agencies: agencies
                .iter()
                .map(|a| Agency {
                    agency_id: Id::from(a.id.as_deref().unwrap_or("")),
                    name: a.name.clone(),
                    url: a.url.clone(),
                    timezone: a.timezone.clone(),
                })
                .collect(),
            routes: routes_out,
            stops,
            shapes,
            trips: kept,
            services,
            districts,
            ..Network::empty()
        };
        let network = network.prepare()?;
        for trip in &network.trips {
            let pattern = &network.patterns[trip.pattern];
            let shape = trip.shape_id.as_deref().unwrap_or("");
            let example = || {
                format!(
                    "trip {}: shape {shape}, a stop {:.0} m away",
                    trip.trip_id, pattern.farthest_stop_m
                )
            };
            if pattern.straightened {
                self.report.warn(
                    "trips whose shape passes over 1 km from a stop (run straight)",
                    example,
                );
            } else if pattern.farthest_stop_m > SHAPE_NEAR_M {
                self.report
                    .warn("trips with a stop over 100 m from their shape", example);
            }
        }
        Ok(Loaded {
            network,
            report: self.report,
        })
    }

    /// Stops and stations (the other location types are not simulated), each with
    /// whether it is a station.
    fn stops(&mut self, raw: &[gtfs_structures::Stop]) -> Result<Vec<(Stop, bool)>, GtfsError> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, s) in raw.iter().enumerate() {
            let station = match s.location_type {
                LocationType::StopPoint => false,
                LocationType::StopArea => true,
                _ => {
                    self.report.warn(
                        "entrances, nodes and boarding areas (not simulated)",
                        || s.id.clone(),
                    );
                    continue;
                }
            };
            let (Some(lat), Some(lon)) = (s.latitude, s.longitude) else {
                return Err(GtfsError::Field {
                    file: "stops.txt",
                    line: i + 2,
                    field: "stop_lat",
                    why: format!("stop {} has no position", s.id),
                });
            };
            if !LatLon::new(lat, lon).is_valid() {
                return Err(GtfsError::Field {
                    file: "stops.txt",
                    line: i + 2,
                    field: "stop_lat",
                    why: format!("stop {}: ({lat}, {lon}) is not a position", s.id),
                });
            }
            out.push((
                Stop {
                    stop_id: Id::from(s.id.as_str()),
                    name: s.name.clone().unwrap_or_else(|| s.id.clone()),
                    lat,
                    lon,
                    parent_station: s.parent_station.as_deref().map(Id::from),
                    importance: 1.0,
                    x: 0.0,
                    y: 0.0,
                    route_ids: Vec::new(),
                },
                station,
            ));
        }
        let ids: HashSet<Id> = out.iter().map(|(s, _)| s.stop_id.clone()).collect();
        for (s, _) in &mut out {
            if let Some(parent) = &s.parent_station
                && !ids.contains(parent)
            {
                self.report
                    .warn("parent stations not in stops.txt (ignored)", || {
                        format!("stop {}: parent {parent}", s.stop_id)
                    });
                s.parent_station = None;
            }
        }
        Ok(out)
    }

    /// A trip's calls, in order, with every time known (those between timepoints
    /// interpolated); `None` (counted) when the trip cannot be run.
    fn stop_times(
        &mut self,
        trip: &str,
        rows: &[(usize, &gtfs_structures::RawStopTime)],
        stop_kind: &HashMap<&str, bool>,
    ) -> Result<Option<Vec<StopTime>>, GtfsError> {
        for (line, st) in rows {
            match stop_kind.get(st.stop_id.as_str()) {
                None => {
                    return Err(GtfsError::Field {
                        file: "stop_times.txt",
                        line: *line,
                        field: "stop_id",
                        why: format!("trip {trip}: stop {} is not in stops.txt", st.stop_id),
                    });
                }
                Some(true) => {
                    // GTFS wants a platform here; the station's place will do.
                    self.report.warn(
                        "calls at a station rather than a platform (run at the station)",
                        || format!("stop_times.txt line {line}: trip {trip} at {}", st.stop_id),
                    );
                }
                Some(false) => {}
            }
        }
        if rows.len() < 2 {
            self.report
                .warn("trips with fewer than two stops (not run)", || {
                    trip.to_owned()
                });
            return Ok(None);
        }
        let known = |st: &gtfs_structures::RawStopTime| st.departure_time.or(st.arrival_time);
        for (line, st) in [rows[0], rows[rows.len() - 1]] {
            if known(st).is_none() {
                return Err(GtfsError::Field {
                    file: "stop_times.txt",
                    line,
                    field: "arrival_time",
                    why: format!("trip {trip}: its first and last stops need times"),
                });
            }
        }
        let mut out: Vec<StopTime> = Vec::with_capacity(rows.len());
        let mut last_known = 0;
        for (i, (_, st)) in rows.iter().enumerate() {
            let (arrival, departure) = match (st.arrival_time, st.departure_time) {
                (Some(a), Some(d)) => (a, d.max(a)),
                (Some(a), None) => (a, a),
                (None, Some(d)) => (d, d),
                (None, None) => {
                    // Between timepoints: filled in below.
                    (u32::MAX, u32::MAX)
                }
            };
            if arrival != u32::MAX {
                if i > 0 && arrival < out[last_known].departure_s {
                    self.report
                        .warn("trips whose times go backwards (not run)", || {
                            trip.to_owned()
                        });
                    return Ok(None);
                }
                last_known = i;
            }
            out.push(StopTime {
                stop_id: Id::from(st.stop_id.as_str()),
                arrival_s: arrival,
                departure_s: departure,
                dist_m: st.shape_dist_traveled.map(f64::from),
                sequence: Some(st.stop_sequence),
                pickup: st.pickup_type != PickupDropOffType::NotAvailable,
                drop_off: st.drop_off_type != PickupDropOffType::NotAvailable,
                timepoint: arrival != u32::MAX && st.timepoint != TimepointType::Approximate,
            });
        }
        // Interpolate the calls between timepoints, evenly by position.
        let mut i = 0;
        while i < out.len() {
            if out[i].arrival_s != u32::MAX {
                i += 1;
                continue;
            }
            let before = i - 1;
            let after = (i..out.len())
                .find(|&k| out[k].arrival_s != u32::MAX)
                .unwrap_or(out.len() - 1);
            let (t0, t1) = (out[before].departure_s, out[after].arrival_s);
            let span = (after - before) as f64;
            for (k, call) in out.iter_mut().enumerate().take(after).skip(i) {
                let t = f64::from(t0) + f64::from(t1 - t0) * (k - before) as f64 / span;
                call.arrival_s = t.round() as u32;
                call.departure_s = call.arrival_s;
            }
            i = after;
        }
        Ok(Some(out))
    }

    /// Services from `calendar.txt` and `calendar_dates.txt` (a service only in the
    /// latter runs on its added dates).
    fn services(
        &mut self,
        calendar: &[gtfs_structures::Calendar],
        dates: &[gtfs_structures::CalendarDate],
    ) -> Vec<Service> {
        let mut services: Vec<Service> = calendar
            .iter()
            .map(|c| Service {
                service_id: Id::from(c.id.as_str()),
                weekdays: [
                    c.monday,
                    c.tuesday,
                    c.wednesday,
                    c.thursday,
                    c.friday,
                    c.saturday,
                    c.sunday,
                ],
                start_date: date(c.start_date),
                end_date: date(c.end_date),
                added: Vec::new(),
                removed: Vec::new(),
            })
            .collect();
        let mut index: HashMap<Id, usize> = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.service_id.clone(), i))
            .collect();
        for d in dates {
            let id = Id::from(d.service_id.as_str());
            let i = *index.entry(id.clone()).or_insert_with(|| {
                services.push(Service {
                    service_id: id,
                    weekdays: [false; 7],
                    start_date: date(d.date),
                    end_date: date(d.date),
                    added: Vec::new(),
                    removed: Vec::new(),
                });
                services.len() - 1
            });
            let s = &mut services[i];
            match d.exception_type {
                Exception::Added => s.added.push(date(d.date)),
                Exception::Deleted => s.removed.push(date(d.date)),
            }
            if s.weekdays == [false; 7] {
                s.start_date = s.start_date.min(date(d.date));
                s.end_date = s.end_date.max(date(d.date));
            }
        }
        services
    }

    /// A route with its main pattern, shape, headway and fleet; `None` without trips.
    fn route(&mut self, r: &gtfs_structures::Route, trips: &[Trip]) -> Option<Route> {
        let mine: Vec<&Trip> = trips.iter().filter(|t| *t.route_id == *r.id).collect();
        // The main pattern: the sequence of stops most of its outbound trips serve
        // (ties: the longest).
        let outbound: Vec<&Trip> = {
            let out: Vec<&Trip> = mine
                .iter()
                .copied()
                .filter(|t| t.direction_id == 0)
                .collect();
            if out.is_empty() { mine.clone() } else { out }
        };
        let mut patterns: HashMap<Vec<&str>, (usize, &Trip)> = HashMap::new();
        for t in &outbound {
            let key: Vec<&str> = t.stop_times.iter().map(|s| s.stop_id.as_str()).collect();
            patterns.entry(key).or_insert((0, t)).0 += 1;
        }
        let (pattern, (_, example)) = patterns
            .into_iter()
            .max_by(|a, b| (a.1.0, a.0.len(), &b.0).cmp(&(b.1.0, b.0.len(), &a.0)))?;
        let (mode, approximate) = mode(r.route_type);
        if approximate {
            self.report
                .warn("route types simulated as the nearest mode", || {
                    format!("route {}: {:?} as {mode:?}", r.id, r.route_type)
                });
        }
        let (cruise_mps, capacity, colour) = mode_defaults(mode);
        let color = r
            .color
            .map(|c| format!("#{:02x}{:02x}{:02x}", c.r, c.g, c.b))
            .filter(|c| c != "#ffffff")
            .unwrap_or_else(|| colour.to_owned());
        let headway_s = headway(&outbound);
        let first = example.stop_times.first().map_or(0, |s| s.departure_s);
        let last = example.stop_times.last().map_or(0, |s| s.arrival_s);
        let round_trip = 2.0 * (f64::from(last.saturating_sub(first)) + LAYOVER_S);
        let vehicles = (round_trip / headway_s).ceil().max(1.0) as usize;
        Some(Route {
            route_id: Id::from(r.id.as_str()),
            agency_id: Id::from(r.agency_id.as_deref().unwrap_or("")),
            short_name: r.short_name.clone().unwrap_or_default(),
            name: r
                .long_name
                .clone()
                .or_else(|| r.short_name.clone())
                .unwrap_or_else(|| r.id.clone()),
            mode,
            color,
            shape_id: example.shape_id.clone(),
            stop_ids: pattern.iter().map(|s| Id::from(*s)).collect(),
            stop_dist_m: Vec::new(),
            headway_s,
            vehicles,
            cruise_mps,
            capacity,
            path: Default::default(),
            stops: Vec::new(),
            stop_dist: Vec::new(),
        })
    }
}

/// The interval between a route's trips in one direction, seconds: the smallest
/// frequency headway if it has any, otherwise the median gap between departures
/// in the daytime (06:00–20:00), within a minute and two hours.
fn headway(trips: &[&Trip]) -> f64 {
    if let Some(h) = trips
        .iter()
        .flat_map(|t| t.frequencies.iter().map(|f| f.headway_s))
        .min()
    {
        return f64::from(h).clamp(60.0, 7_200.0);
    }
    let mut starts: Vec<u32> = trips
        .iter()
        .filter_map(|t| t.stop_times.first().map(|s| s.departure_s))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let gaps = |from: u32, to: u32| -> Vec<u32> {
        let inside: Vec<u32> = starts
            .iter()
            .copied()
            .filter(|&s| (from..to).contains(&s))
            .collect();
        inside.windows(2).map(|w| w[1] - w[0]).collect()
    };
    let mut g = gaps(6 * 3_600, 20 * 3_600);
    if g.is_empty() {
        g = gaps(0, u32::MAX);
    }
    if g.is_empty() {
        return 3_600.0;
    }
    g.sort_unstable();
    f64::from(g[g.len() / 2]).clamp(60.0, 7_200.0)
}

/// Shapes from their points, in sequence.
fn shapes_of(points: Vec<gtfs_structures::Shape>) -> Vec<Shape> {
    let mut by_id: BTreeMap<String, Vec<(usize, [f64; 2])>> = BTreeMap::new();
    for p in points {
        by_id
            .entry(p.id)
            .or_default()
            .push((p.sequence, [p.latitude, p.longitude]));
    }
    by_id
        .into_iter()
        .map(|(id, mut pts)| {
            pts.sort_by_key(|p| p.0);
            Shape {
                shape_id: Id::from(id.as_str()),
                points: pts.into_iter().map(|p| p.1).collect(),
            }
        })
        .collect()
}

/// A stop's importance from the calls at it: 1 for the quietest, 3 for the busiest.
fn importance(stops: &mut [Stop], trips: &[Trip]) {
    let mut calls: HashMap<&str, usize> = HashMap::new();
    for t in trips {
        for st in &t.stop_times {
            *calls.entry(st.stop_id.as_str()).or_default() += 1;
        }
    }
    let busiest = calls.values().copied().max().unwrap_or(1).max(1) as f64;
    for s in stops.iter_mut() {
        let n = calls.get(s.stop_id.as_str()).copied().unwrap_or(0) as f64;
        s.importance = 1.0 + 2.0 * n / busiest;
    }
}

/// The middle of the stops' extent.
fn centre_of(stops: &[Stop]) -> LatLon {
    let (mut lat0, mut lat1, mut lon0, mut lon1) = (90.0f64, -90.0f64, 180.0f64, -180.0f64);
    for s in stops {
        lat0 = lat0.min(s.lat);
        lat1 = lat1.max(s.lat);
        lon0 = lon0.min(s.lon);
        lon1 = lon1.max(s.lon);
    }
    LatLon::new((lat0 + lat1) / 2.0, (lon0 + lon1) / 2.0)
}

/// Districts for city incidents: around the stops most routes call at, at least 1.5 km
/// apart, named after them; nine at most.
fn districts_of(stops: &[Stop], routes: &[Route]) -> Vec<District> {
    let mut served: HashMap<&str, usize> = HashMap::new();
    for r in routes {
        for s in &r.stop_ids {
            *served.entry(s.as_str()).or_default() += 1;
        }
    }
    let mut ranked: Vec<&Stop> = stops
        .iter()
        .filter(|s| served.contains_key(s.stop_id.as_str()))
        .collect();
    ranked.sort_by(|a, b| {
        served[b.stop_id.as_str()]
            .cmp(&served[a.stop_id.as_str()])
            .then(b.importance.total_cmp(&a.importance))
            .then(a.stop_id.cmp(&b.stop_id))
    });
    let mut chosen: Vec<&Stop> = Vec::new();
    for s in ranked {
        let here = LatLon::new(s.lat, s.lon);
        if chosen
            .iter()
            .all(|c| distance_m(LatLon::new(c.lat, c.lon), here) >= 1_500.0)
        {
            chosen.push(s);
            if chosen.len() == 9 {
                break;
            }
        }
    }
    chosen
        .into_iter()
        .map(|s| District {
            name: s.name.clone(),
            lat: s.lat,
            lon: s.lon,
            radius_m: 1_200.0,
            x: 0.0,
            y: 0.0,
        })
        .collect()
}

/// The offset from UTC of `timezone` at noon on `day` (or now), minutes; 0 for a zone
/// not known.
fn utc_offset(timezone: &str, day: Option<Date>) -> i32 {
    let Ok(tz) = jiff::tz::TimeZone::get(timezone) else {
        return 0;
    };
    let at = day.map_or_else(jiff::Timestamp::now, |d| {
        jiff::Timestamp::from_millisecond(d.days() * 86_400_000 + 12 * 3_600_000)
            .unwrap_or_else(|_| jiff::Timestamp::now())
    });
    tz.to_offset(at).seconds() / 60
}

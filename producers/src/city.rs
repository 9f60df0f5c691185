//! The city's transit network: routes with shapes, stops, and service patterns.
//!
//! The model follows GTFS static so that a real feed can populate it later: a
//! [`Route`] is a GTFS route with one shape (travelled both ways), its stops in order
//! (`stop_times` without times), and a headway (`frequencies`). [`City::generate`]
//! builds a plausible city deterministically from a seed around a centre point.

use compact_str::format_compact;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use streamcity_core::geo::{LatLon, LocalProjection};
use streamcity_core::{Id, TransportMode};

/// A stop where riders wait and vehicles dwell.
#[derive(Debug, Clone, Serialize)]
pub struct Stop {
    /// Stop id, e.g. `"S0142"`.
    pub stop_id: Id,
    /// Name for people.
    pub name: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Routes calling here.
    pub route_ids: Vec<Id>,
    /// Relative demand: 1 is an ordinary stop, 3 a major interchange.
    #[serde(skip)]
    pub importance: f64,
    /// Metres east of the city centre.
    #[serde(skip)]
    pub x: f64,
    /// Metres north of the city centre.
    #[serde(skip)]
    pub y: f64,
}

/// A route: one line with one shape, served in both directions.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    /// Route id, e.g. `"B07"`.
    pub route_id: Id,
    /// Short name shown on vehicles, e.g. `"7"`.
    pub short_name: String,
    /// Long name, e.g. `"Harbour – Northgate"`.
    pub name: String,
    /// Bus, tram or rail.
    pub mode: TransportMode,
    /// Line colour, `#rrggbb`.
    pub color: String,
    /// Scheduled interval between vehicles in one direction, seconds.
    pub headway_s: f64,
    /// The shape as `[lat, lon]` points, outbound order.
    pub shape: Vec<[f64; 2]>,
    /// Stop ids in outbound order.
    pub stop_ids: Vec<Id>,
    /// The shape's geometry in local metres.
    #[serde(skip)]
    pub path: Shape,
    /// Index into [`City::stops`] of each stop, outbound order.
    #[serde(skip)]
    pub stops: Vec<usize>,
    /// Distance along the shape of each stop, outbound order, metres.
    #[serde(skip)]
    pub stop_dist: Vec<f64>,
    /// Cruising speed between stops, m/s.
    #[serde(skip)]
    pub cruise_mps: f64,
    /// Places per vehicle.
    #[serde(skip)]
    pub capacity: u32,
    /// Vehicles assigned to the route.
    pub vehicles: usize,
}

/// A polyline in metres east/north of the city centre, with the distance along it of
/// every point.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// The points.
    pub xy: Vec<(f64, f64)>,
    /// Distance along the line of each point, metres (starts at 0, never decreases).
    pub dist: Vec<f64>,
}

impl Shape {
    /// A shape through `xy`.
    pub fn new(xy: Vec<(f64, f64)>) -> Self {
        let mut dist = Vec::with_capacity(xy.len());
        let mut acc = 0.0;
        for (k, p) in xy.iter().enumerate() {
            if k > 0 {
                let q = xy[k - 1];
                acc += ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt();
            }
            dist.push(acc);
        }
        Shape { xy, dist }
    }

    /// Length in metres.
    pub fn length_m(&self) -> f64 {
        self.dist.last().copied().unwrap_or(0.0)
    }

    /// The point `d` metres along the line, with the heading of the segment there
    /// (radians, counter-clockwise from east). `hint` is the segment to start searching
    /// from, and is updated: a vehicle moving along keeps its hint, so a lookup costs O(1).
    pub fn point_at(&self, d: f64, hint: &mut usize) -> (f64, f64, f64) {
        let n = self.dist.len();
        if n < 2 {
            let p = self.xy.first().copied().unwrap_or((0.0, 0.0));
            return (p.0, p.1, 0.0);
        }
        let d = d.clamp(0.0, self.length_m());
        let mut i = (*hint).min(n - 2);
        while i > 0 && self.dist[i] > d {
            i -= 1;
        }
        while i + 2 < n && self.dist[i + 1] < d {
            i += 1;
        }
        *hint = i;
        let (a, b) = (self.xy[i], self.xy[i + 1]);
        let seg = self.dist[i + 1] - self.dist[i];
        let t = if seg > 0.0 {
            (d - self.dist[i]) / seg
        } else {
            0.0
        };
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        (a.0 + dx * t, a.1 + dy * t, dy.atan2(dx))
    }
}

impl Route {
    /// Length of the shape in metres.
    pub fn length_m(&self) -> f64 {
        self.path.length_m()
    }

    /// Nominal round-trip time in seconds: both directions at cruising speed plus a
    /// nominal dwell at every stop and a layover at each end.
    pub fn round_trip_s(&self) -> f64 {
        let one_way =
            self.length_m() / (self.cruise_mps * 0.8) + NOMINAL_DWELL_S * self.stops.len() as f64;
        2.0 * (one_way + LAYOVER_S)
    }
}

/// Dwell time assumed by the timetable at every stop, seconds.
pub const NOMINAL_DWELL_S: f64 = 20.0;
/// Minimum layover at a terminus, seconds.
pub const LAYOVER_S: f64 = 120.0;

/// A named district, where city incidents are reported.
#[derive(Debug, Clone, Serialize)]
pub struct District {
    /// Name, e.g. `"Eastside"`.
    pub name: String,
    /// Centre latitude, degrees.
    pub lat: f64,
    /// Centre longitude, degrees.
    pub lon: f64,
    /// Rough radius, metres.
    pub radius_m: f64,
    /// Metres east of the city centre.
    #[serde(skip)]
    pub x: f64,
    /// Metres north of the city centre.
    #[serde(skip)]
    pub y: f64,
}

/// The whole network.
#[derive(Debug, Clone)]
pub struct City {
    /// The centre the city was built around.
    pub centre: LatLon,
    /// The projection between local metres and degrees.
    pub projection: LocalProjection,
    /// Every route.
    pub routes: Vec<Route>,
    /// Every stop.
    pub stops: Vec<Stop>,
    /// The districts: Downtown in the middle, eight around it.
    pub districts: Vec<District>,
}

const DISTRICTS: [&str; 9] = [
    "Downtown",
    "Northside",
    "Uptown",
    "Eastside",
    "Harbourfront",
    "Southgate",
    "Riverside",
    "Westend",
    "Old Town",
];

/// What to build.
#[derive(Debug, Clone, Copy)]
pub struct CityConfig {
    /// Seed: the same seed builds the same city.
    pub seed: u64,
    /// Centre of the city.
    pub centre: LatLon,
    /// Vehicles in service across all routes.
    pub vehicles: usize,
}

/// Vehicles in service by default.
pub const DEFAULT_FLEET: usize = 240;

impl Default for CityConfig {
    fn default() -> Self {
        CityConfig {
            seed: 42,
            centre: LatLon::new(40.7128, -74.0060),
            vehicles: DEFAULT_FLEET,
        }
    }
}

const PALETTE: [&str; 15] = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42a5b3", "#f032e6", "#8aa117",
    "#d4a017", "#008080", "#9a6324", "#800000", "#5b6abf", "#000075", "#c71585",
];

const PLACES: [&str; 24] = [
    "Harbour",
    "Northgate",
    "Riverside",
    "Old Town",
    "University",
    "Stadium",
    "Market",
    "Hillcrest",
    "Airport",
    "Docklands",
    "Westfield",
    "Eastbank",
    "Cathedral",
    "Parkway",
    "Museum",
    "Bridge St",
    "Canal",
    "Ironworks",
    "Fairview",
    "Lakeside",
    "Central",
    "Mill Lane",
    "Observatory",
    "Southport",
];

const STREETS: [&str; 20] = [
    "Elm", "Oak", "Maple", "Cedar", "Birch", "Ash", "Willow", "Pine", "Chestnut", "Walnut",
    "Hazel", "Rowan", "Linden", "Poplar", "Spruce", "Holly", "Juniper", "Alder", "Beech", "Laurel",
];

const STREET_KINDS: [&str; 6] = ["St", "Ave", "Rd", "Sq", "Blvd", "Pl"];

/// How each line of the default city is laid out.
struct LineSpec {
    mode: TransportMode,
    length_m: f64,
    spacing_m: (f64, f64),
    cruise_mps: f64,
    capacity: u32,
}

fn line_specs() -> Vec<LineSpec> {
    let bus = |length_m| LineSpec {
        mode: TransportMode::Bus,
        length_m,
        spacing_m: (300.0, 600.0),
        cruise_mps: 11.0,
        capacity: 80,
    };
    let mut specs: Vec<LineSpec> = [
        11_000.0, 12_500.0, 10_000.0, 13_500.0, 9_500.0, 12_000.0, 11_500.0, 14_000.0, 10_500.0,
        12_000.0, 13_000.0,
    ]
    .into_iter()
    .map(bus)
    .collect();
    specs.push(LineSpec {
        mode: TransportMode::Tram,
        length_m: 10_000.0,
        spacing_m: (300.0, 500.0),
        cruise_mps: 12.0,
        capacity: 180,
    });
    for length_m in [18_000.0, 16_000.0] {
        specs.push(LineSpec {
            mode: TransportMode::Rail,
            length_m,
            spacing_m: (900.0, 1_500.0),
            cruise_mps: 20.0,
            capacity: 600,
        });
    }
    specs
}

impl City {
    /// Builds the default city: 11 bus lines, a tram and 2 rail lines, about 330 stops,
    /// laid out around `config.centre`. The same config always builds the same city.
    pub fn generate(config: CityConfig) -> City {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let projection = LocalProjection::new(config.centre);
        let specs = line_specs();
        let n = specs.len();
        let mut routes = Vec::with_capacity(n);
        let mut stops: Vec<Stop> = Vec::new();
        let (mut bus_no, mut rail_no) = (0, 0);

        for (i, spec) in specs.iter().enumerate() {
            // Lines cross the city at spread-out angles, offset from the centre so that
            // they do not all meet at one point.
            let angle = std::f64::consts::PI * (i as f64 + rng.random_range(-0.3..0.3)) / n as f64;
            let offset = rng.random_range(-2_500.0..2_500.0);
            let (ux, uy) = (angle.cos(), angle.sin());
            let (px, py) = (-uy, ux);
            let half = spec.length_m / 2.0;
            // Waypoints every ~700 m with lateral meander, then the shape through them.
            let legs = (spec.length_m / 700.0).ceil() as usize;
            let wander = if spec.mode == TransportMode::Rail {
                60.0
            } else {
                220.0
            };
            let mut shape_xy = Vec::with_capacity(legs + 1);
            let mut lateral: f64 = 0.0;
            for k in 0..=legs {
                let along = -half + spec.length_m * k as f64 / legs as f64;
                lateral = (lateral + rng.random_range(-wander..wander))
                    .clamp(-3.0 * wander, 3.0 * wander);
                shape_xy.push((
                    ux * along + px * (offset + lateral),
                    uy * along + py * (offset + lateral),
                ));
            }
            let path = Shape::new(shape_xy);
            let length = path.length_m();

            let (route_id, short_name) = match spec.mode {
                TransportMode::Bus => {
                    bus_no += 1;
                    (format_compact!("B{bus_no:02}"), bus_no.to_string())
                }
                TransportMode::Tram => (Id::from("T1"), "T1".to_owned()),
                TransportMode::Rail => {
                    rail_no += 1;
                    (format_compact!("R{rail_no}"), format!("R{rail_no}"))
                }
            };
            let ends = (
                PLACES[(2 * i) % PLACES.len()],
                PLACES[(2 * i + 7) % PLACES.len()],
            );

            // Stops along the shape, 300–600 m apart (rail stations further), the last
            // one at the far terminus.
            let mut route_stops = Vec::new();
            let mut stop_dist = Vec::new();
            let mut d = 0.0;
            loop {
                let mut hint = 0;
                let (x, y, _) = path.point_at(d, &mut hint);
                let at = projection.to_latlon(x, y);
                let idx = stops.len();
                let r = (x * x + y * y).sqrt();
                let importance = (0.4 + 2.6 * (-(r / 3_500.0).powi(2)).exp())
                    * rng.random_range(0.6..1.4)
                    * if spec.mode == TransportMode::Rail {
                        3.0
                    } else {
                        1.0
                    };
                let name = if stop_dist.is_empty() {
                    ends.0.to_owned()
                } else if length - d < 1.0 {
                    ends.1.to_owned()
                } else {
                    format!(
                        "{} {}",
                        STREETS[rng.random_range(0..STREETS.len())],
                        STREET_KINDS[rng.random_range(0..STREET_KINDS.len())]
                    )
                };
                stops.push(Stop {
                    stop_id: format_compact!("S{:04}", idx + 1),
                    name,
                    lat: round6(at.lat),
                    lon: round6(at.lon),
                    route_ids: vec![route_id.clone()],
                    importance,
                    x,
                    y,
                });
                route_stops.push(idx);
                stop_dist.push(d);
                if length - d < 1.0 {
                    break;
                }
                let step = rng.random_range(spec.spacing_m.0..spec.spacing_m.1);
                // Never leave a stub shorter than the minimum spacing at the end.
                d = if length - (d + step) < spec.spacing_m.0 {
                    length
                } else {
                    d + step
                };
            }

            let shape = path
                .xy
                .iter()
                .map(|&(x, y)| {
                    let p = projection.to_latlon(x, y);
                    [round6(p.lat), round6(p.lon)]
                })
                .collect();
            routes.push(Route {
                stop_ids: route_stops
                    .iter()
                    .map(|&s| stops[s].stop_id.clone())
                    .collect(),
                route_id,
                short_name,
                name: format!("{} – {}", ends.0, ends.1),
                mode: spec.mode,
                color: PALETTE[i % PALETTE.len()].to_owned(),
                headway_s: 0.0,
                shape,
                path,
                stops: route_stops,
                stop_dist,
                cruise_mps: spec.cruise_mps,
                capacity: spec.capacity,
                vehicles: 0,
            });
        }
        assign_fleet(&mut routes, config.vehicles);
        let districts = DISTRICTS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (r, a) = if i == 0 {
                    (0.0, 0.0)
                } else {
                    (4_500.0, std::f64::consts::TAU * (i - 1) as f64 / 8.0)
                };
                let (x, y) = (r * f64::cos(a), r * f64::sin(a));
                let at = projection.to_latlon(x, y);
                District {
                    name: (*name).to_owned(),
                    lat: round6(at.lat),
                    lon: round6(at.lon),
                    radius_m: 2_500.0,
                    x,
                    y,
                }
            })
            .collect();
        City {
            centre: config.centre,
            projection,
            routes,
            stops,
            districts,
        }
    }

    /// Looks up a stop by id.
    pub fn stop(&self, stop_id: &str) -> Option<&Stop> {
        self.stops.iter().find(|s| s.stop_id == stop_id)
    }

    /// Indexes of the routes whose shape passes within `radius_m` of the point `(x, y)`
    /// (local metres).
    pub fn routes_near(&self, x: f64, y: f64, radius_m: f64) -> Vec<usize> {
        let r2 = radius_m * radius_m;
        (0..self.routes.len())
            .filter(|&i| {
                self.routes[i]
                    .path
                    .xy
                    .windows(2)
                    .any(|w| segment_distance2((x, y), w[0], w[1]) <= r2)
            })
            .collect()
    }

    /// Looks up a route by id.
    pub fn route(&self, route_id: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.route_id == route_id)
    }
}

/// Shares `total` vehicles among the routes in proportion to their round-trip times
/// (rail, with its larger vehicles, gets half the share), so that headways come out
/// similar across lines, and sets each route's headway from its share.
fn assign_fleet(routes: &mut [Route], total: usize) {
    let weight = |r: &Route| {
        r.round_trip_s()
            * if r.mode == TransportMode::Rail {
                0.5
            } else {
                1.0
            }
    };
    let sum: f64 = routes.iter().map(weight).sum();
    let exact: Vec<f64> = routes
        .iter()
        .map(|r| total as f64 * weight(r) / sum)
        .collect();
    let mut given: usize = 0;
    for (r, e) in routes.iter_mut().zip(&exact) {
        r.vehicles = e.floor() as usize;
        given += r.vehicles;
    }
    // Largest remainders get the vehicles left over, so the total is exact.
    let mut order: Vec<usize> = (0..routes.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    for &i in order.iter().take(total - given) {
        routes[i].vehicles += 1;
    }
    for r in routes.iter_mut() {
        r.headway_s = if r.vehicles > 0 {
            (r.round_trip_s() / r.vehicles as f64).round()
        } else {
            0.0
        };
    }
}

/// Squared distance from `p` to the segment `a`–`b`.
pub fn segment_distance2(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)
}

/// Rounds a coordinate to 6 decimals (about 0.1 m), which keeps payloads short.
pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamcity_core::geo::distance_m;

    #[test]
    fn default_city_is_big_enough() {
        let city = City::generate(CityConfig::default());
        assert!(city.routes.len() >= 12, "{} routes", city.routes.len());
        assert!(city.routes.iter().any(|r| r.mode == TransportMode::Rail));
        assert!(city.stops.len() >= 300, "{} stops", city.stops.len());
    }

    #[test]
    fn bus_stops_are_300_to_600_m_apart() {
        let city = City::generate(CityConfig::default());
        for route in city.routes.iter().filter(|r| r.mode == TransportMode::Bus) {
            for pair in route.stops.windows(2) {
                let (a, b) = (&city.stops[pair[0]], &city.stops[pair[1]]);
                let d = distance_m(LatLon::new(a.lat, a.lon), LatLon::new(b.lat, b.lon));
                // Straight-line distance can be a little under the distance along the shape.
                assert!(
                    (250.0..=1_200.0).contains(&d),
                    "{} {} -> {}: {d} m",
                    route.route_id,
                    a.stop_id,
                    b.stop_id
                );
            }
            for pair in route.stop_dist.windows(2) {
                let along = pair[1] - pair[0];
                assert!(
                    (300.0..1_200.0).contains(&along),
                    "{}: {along} m along",
                    route.route_id
                );
            }
        }
    }

    #[test]
    fn fleet_is_shared_exactly() {
        for total in [0, 1, 13, 240, 100_000] {
            let city = City::generate(CityConfig {
                vehicles: total,
                ..CityConfig::default()
            });
            assert_eq!(city.routes.iter().map(|r| r.vehicles).sum::<usize>(), total);
        }
        let city = City::generate(CityConfig::default());
        for r in &city.routes {
            assert!(
                r.vehicles >= 2,
                "{} has {} vehicles",
                r.route_id,
                r.vehicles
            );
            assert!(
                (60.0..1_800.0).contains(&r.headway_s),
                "{} headway {}",
                r.route_id,
                r.headway_s
            );
        }
    }

    #[test]
    fn same_seed_same_city_other_seed_other_city() {
        let a = City::generate(CityConfig::default());
        let b = City::generate(CityConfig::default());
        let c = City::generate(CityConfig {
            seed: 7,
            ..CityConfig::default()
        });
        assert_eq!(a.routes[3].shape, b.routes[3].shape);
        assert_eq!(a.stops.len(), b.stops.len());
        assert_ne!(a.routes[3].shape, c.routes[3].shape);
    }

    #[test]
    fn point_at_follows_the_shape() {
        let city = City::generate(CityConfig::default());
        let r = &city.routes[0];
        let mut hint = 0;
        let start = r.path.point_at(0.0, &mut hint);
        assert!((start.0 - r.path.xy[0].0).abs() < 1e-9);
        let end = r.path.point_at(r.length_m() + 50.0, &mut hint);
        let last = r.path.xy[r.path.xy.len() - 1];
        assert!((end.0 - last.0).abs() < 1e-6 && (end.1 - last.1).abs() < 1e-6);
        // Walking back works from any hint.
        let mid = r.path.point_at(r.length_m() / 2.0, &mut hint);
        let mut fresh = 0;
        assert_eq!(mid, r.path.point_at(r.length_m() / 2.0, &mut fresh));
    }
}

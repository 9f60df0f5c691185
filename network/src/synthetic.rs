//! The built-in city: a plausible network built deterministically from a seed around a
//! centre point, with 11 bus lines, a tram and two rail lines, about 350 stops, a
//! timetable that shares the fleet so that headways come out alike, and districts for
//! city incidents. One way to make a [`Network`]; a GTFS feed is another.

use compact_str::format_compact;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use streamcity_core::geo::{LatLon, LocalProjection};
use streamcity_core::{Id, TransportMode};

use crate::calendar::Date;
use crate::geometry::{LocalShape, round6};
use crate::model::{
    Agency, District, EVERY_DAY, Frequency, LAYOVER_S, NOMINAL_DWELL_S, Network, Route,
    SCHEDULE_SPEED_SHARE, Service, Shape, Source, Stop, StopTime, Trip,
};

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticConfig {
    /// Seed: the same seed builds the same city.
    pub seed: u64,
    /// Centre of the city.
    pub centre: LatLon,
    /// Vehicles in service across all routes.
    pub vehicles: usize,
}

/// Vehicles in service by default.
pub const DEFAULT_FLEET: usize = 240;
/// The default seed.
pub const DEFAULT_SEED: u64 = 42;
/// The default centre (New York City Hall).
pub const DEFAULT_CENTRE: LatLon = LatLon::new(40.7128, -74.0060);

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            seed: DEFAULT_SEED,
            centre: DEFAULT_CENTRE,
            vehicles: DEFAULT_FLEET,
        }
    }
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

/// The one agency of the built-in city.
const AGENCY: &str = "SC";
/// The one service: every day.
const DAILY: &str = "daily";

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

/// A line as laid out, before the fleet is shared out.
struct Laid {
    route: Route,
    /// The exact length of its shape, metres.
    length_m: f64,
    /// The exact distance along the shape of each stop, metres.
    stop_dist: Vec<f64>,
    ends: (&'static str, &'static str),
}

/// Builds the default city around `config.centre`. The same config always builds the
/// same network.
pub fn generate(config: SyntheticConfig) -> Network {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let projection = LocalProjection::new(config.centre);
    let specs = line_specs();
    let n = specs.len();
    let mut lines: Vec<Laid> = Vec::with_capacity(n);
    let mut shapes = Vec::with_capacity(n);
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
            lateral =
                (lateral + rng.random_range(-wander..wander)).clamp(-3.0 * wander, 3.0 * wander);
            shape_xy.push((
                ux * along + px * (offset + lateral),
                uy * along + py * (offset + lateral),
            ));
        }
        let path = LocalShape::new(shape_xy);
        let length = path.length_m();

        let (route_id, short_name) = match spec.mode {
            TransportMode::Bus => {
                bus_no += 1;
                (format_compact!("B{bus_no:02}"), bus_no.to_string())
            }
            TransportMode::Tram => (Id::from("T1"), "T1".to_owned()),
            // The built-in city's lines are buses, a tram and rail.
            _ => {
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
        let mut stop_ids = Vec::new();
        let mut stop_dist = Vec::new();
        let mut d = 0.0;
        loop {
            let mut hint = 0;
            let (x, y, _) = path.point_at(d, &mut hint);
            let at = projection.to_latlon(x, y);
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
            let stop_id = format_compact!("S{:04}", stops.len() + 1);
            stops.push(Stop {
                stop_id: stop_id.clone(),
                name,
                lat: round6(at.lat),
                lon: round6(at.lon),
                parent_station: None,
                importance: (importance * 1e4).round() / 1e4,
                x: 0.0,
                y: 0.0,
                route_ids: Vec::new(),
            });
            stop_ids.push(stop_id);
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

        shapes.push(Shape {
            shape_id: route_id.clone(),
            points: path
                .xy
                .iter()
                .map(|&(x, y)| {
                    let p = projection.to_latlon(x, y);
                    [round6(p.lat), round6(p.lon)]
                })
                .collect(),
        });
        lines.push(Laid {
            route: Route {
                route_id: route_id.clone(),
                agency_id: Id::from(AGENCY),
                short_name,
                name: format!("{} – {}", ends.0, ends.1),
                mode: spec.mode,
                color: PALETTE[i % PALETTE.len()].to_owned(),
                shape_id: Some(route_id),
                stop_ids,
                stop_dist_m: stop_dist
                    .iter()
                    .map(|d| (d * 100.0).round() / 100.0)
                    .collect(),
                headway_s: 0.0,
                vehicles: 0,
                cruise_mps: spec.cruise_mps,
                capacity: spec.capacity,
                path: LocalShape::default(),
                stops: Vec::new(),
                stop_dist: Vec::new(),
            },
            length_m: length,
            stop_dist,
            ends,
        });
    }
    assign_fleet(&mut lines, config.vehicles);
    let trips = lines.iter().flat_map(trips_of).collect();
    let districts = DISTRICTS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (r, a) = if i == 0 {
                (0.0, 0.0)
            } else {
                (4_500.0, std::f64::consts::TAU * (i - 1) as f64 / 8.0)
            };
            let at = projection.to_latlon(r * f64::cos(a), r * f64::sin(a));
            District {
                name: (*name).to_owned(),
                lat: round6(at.lat),
                lon: round6(at.lon),
                radius_m: 2_500.0,
                x: 0.0,
                y: 0.0,
            }
        })
        .collect();
    let network = Network {
        name: format!(
            "synthetic city (seed {}, {} vehicles) around {}, {}",
            config.seed, config.vehicles, config.centre.lat, config.centre.lon
        ),
        source: Source::Synthetic {
            seed: config.seed,
            centre: config.centre,
            vehicles: config.vehicles,
        },
        centre: config.centre,
        utc_offset_min: 0,
        agencies: vec![Agency {
            agency_id: Id::from(AGENCY),
            name: "StreamCity Transit".to_owned(),
            url: "https://example.org/streamcity".to_owned(),
            timezone: "UTC".to_owned(),
        }],
        routes: lines.into_iter().map(|l| l.route).collect(),
        stops,
        shapes,
        trips,
        services: vec![Service {
            service_id: Id::from(DAILY),
            weekdays: EVERY_DAY,
            start_date: Date::from_ymd(2000, 1, 1),
            end_date: Date::from_ymd(2099, 12, 31),
            added: Vec::new(),
            removed: Vec::new(),
        }],
        districts,
        projection,
        ..Network::empty()
    };
    // Built from valid parts by construction: preparing cannot fail for a valid centre.
    match network.prepare() {
        Ok(network) => network,
        Err(e) => panic!("the built-in city is inconsistent: {e}"),
    }
}

/// Nominal round-trip time of a line as laid out, seconds (see [`Route::round_trip_s`]).
fn round_trip_s(line: &Laid) -> f64 {
    2.0 * (line.length_m / (line.route.cruise_mps * SCHEDULE_SPEED_SHARE)
        + NOMINAL_DWELL_S * line.route.stop_ids.len() as f64
        + LAYOVER_S)
}

/// Shares `total` vehicles among the lines in proportion to their round-trip times
/// (rail, with its larger vehicles, gets half the share), so that headways come out
/// similar across lines, and sets each line's headway from its share.
fn assign_fleet(lines: &mut [Laid], total: usize) {
    let weight = |l: &Laid| {
        round_trip_s(l)
            * if l.route.mode == TransportMode::Rail {
                0.5
            } else {
                1.0
            }
    };
    let sum: f64 = lines.iter().map(weight).sum();
    let exact: Vec<f64> = lines
        .iter()
        .map(|l| total as f64 * weight(l) / sum)
        .collect();
    let mut given: usize = 0;
    for (l, e) in lines.iter_mut().zip(&exact) {
        l.route.vehicles = e.floor() as usize;
        given += l.route.vehicles;
    }
    // Largest remainders get the vehicles left over, so the total is exact.
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    for &i in order.iter().take(total - given) {
        lines[i].route.vehicles += 1;
    }
    for l in lines.iter_mut() {
        l.route.headway_s = if l.route.vehicles > 0 {
            (round_trip_s(l) / l.route.vehicles as f64).round()
        } else {
            0.0
        };
    }
}

/// The timetable of a line: one trip each way, repeated at its headway all day: buses
/// and trams about every headway (frequencies without exact times), rail on the dot
/// (exact times; the export writes each run out as a trip of its own).
fn trips_of(line: &Laid) -> Vec<Trip> {
    let r = &line.route;
    if r.vehicles == 0 || r.headway_s <= 0.0 {
        return Vec::new();
    }
    let speed = r.cruise_mps * SCHEDULE_SPEED_SHARE;
    let last = r.stop_ids.len() - 1;
    [(0u8, "out", line.ends.1), (1, "in", line.ends.0)]
        .into_iter()
        .map(|(direction, tag, headsign)| {
            let stop_times = (0..=last)
                .map(|k| {
                    let i = if direction == 0 { k } else { last - k };
                    let along = if direction == 0 {
                        line.stop_dist[i]
                    } else {
                        line.length_m - line.stop_dist[i]
                    };
                    let arrival = (along / speed + NOMINAL_DWELL_S * k as f64).round() as u32;
                    let dwell = if k == last { 0 } else { NOMINAL_DWELL_S as u32 };
                    StopTime {
                        stop_id: r.stop_ids[i].clone(),
                        arrival_s: arrival,
                        departure_s: arrival + dwell,
                        dist_m: Some((along * 100.0).round() / 100.0),
                        sequence: None,
                        pickup: true,
                        drop_off: true,
                        timepoint: true,
                    }
                })
                .collect();
            Trip {
                trip_id: format_compact!("{}-{tag}", r.route_id),
                route_id: r.route_id.clone(),
                service_id: Id::from(DAILY),
                direction_id: direction,
                headsign: headsign.to_owned(),
                shape_id: r.shape_id.clone(),
                block_id: None,
                stop_times,
                frequencies: vec![Frequency {
                    start_s: 0,
                    end_s: 86_400,
                    headway_s: r.headway_s as u32,
                    exact_times: r.mode.is_rail(),
                }],
                pattern: 0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamcity_core::geo::distance_m;

    #[test]
    fn default_city_is_big_enough() {
        let city = generate(SyntheticConfig::default());
        assert!(city.routes.len() >= 12, "{} routes", city.routes.len());
        assert!(city.routes.iter().any(|r| r.mode == TransportMode::Rail));
        assert!(city.stops.len() >= 300, "{} stops", city.stops.len());
        assert_eq!(city.trips.len(), 2 * city.routes.len());
        assert_eq!(city.agencies.len(), 1);
    }

    #[test]
    fn bus_stops_are_300_to_600_m_apart() {
        let city = generate(SyntheticConfig::default());
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
            let city = generate(SyntheticConfig {
                vehicles: total,
                ..SyntheticConfig::default()
            });
            assert_eq!(city.routes.iter().map(|r| r.vehicles).sum::<usize>(), total);
        }
        let city = generate(SyntheticConfig::default());
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
        let a = generate(SyntheticConfig::default());
        let b = generate(SyntheticConfig::default());
        let c = generate(SyntheticConfig {
            seed: 7,
            ..SyntheticConfig::default()
        });
        assert_eq!(a.shapes[3], b.shapes[3]);
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.shapes[3], c.shapes[3]);
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn the_timetable_follows_the_shape_and_the_headway() {
        let city = generate(SyntheticConfig::default());
        let route = &city.routes[0];
        let out = city
            .trips
            .iter()
            .find(|t| t.route_id == route.route_id && t.direction_id == 0)
            .unwrap();
        assert_eq!(out.stop_times.len(), route.stop_ids.len());
        assert!(
            out.stop_times
                .windows(2)
                .all(|w| w[0].departure_s < w[1].arrival_s)
        );
        assert_eq!(out.frequencies[0].headway_s, route.headway_s as u32);
        // End to end in about the nominal one-way time.
        let end = out.stop_times.last().unwrap().arrival_s as f64;
        assert!(
            (end - route.one_way_s() + NOMINAL_DWELL_S).abs() < 2.0,
            "{end}"
        );
        let inbound = city
            .trips
            .iter()
            .find(|t| t.route_id == route.route_id && t.direction_id == 1)
            .unwrap();
        assert_eq!(
            inbound.stop_times[0].stop_id,
            *route.stop_ids.last().unwrap()
        );
        assert!(city.runs_on(&out.service_id, Date::from_ymd(2026, 11, 30)));
    }
}

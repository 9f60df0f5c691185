//! The twin's city as a scenario sees it: its stops, its streets (the paths its lines
//! run along), its districts and lines, to place events and move entities in.

use std::rc::Rc;

use rand::Rng as _;
use rand_chacha::ChaCha8Rng;
use streamcity_network::Network;
use streamcity_network::geometry::LocalShape;

/// What a scenario may draw from the city.
#[derive(Debug)]
pub struct City {
    stops: Vec<(Rc<str>, f64, f64)>,
    districts: Vec<(Rc<str>, f64, f64, f64)>,
    lines: Vec<Rc<str>>,
    streets: Vec<LocalShape>,
    /// Street lengths, cumulative: a random point on the streets is uniform in length.
    street_cum: Vec<f64>,
    projection: streamcity_core::geo::LocalProjection,
    centre: (f64, f64),
    /// Minutes ahead of UTC (for time-of-day profiles).
    pub utc_offset_min: i32,
}

/// Which kind of place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceKind {
    /// A stop.
    Stop,
    /// A point on a street (a line's path).
    Street,
    /// A district (a point near its centre; its name).
    District,
    /// A line (its name; its position is one of its stops).
    Line,
}

impl PlaceKind {
    /// From the scenario file's word.
    pub fn parse(s: &str) -> Option<PlaceKind> {
        Some(match s {
            "stop" => PlaceKind::Stop,
            "street" => PlaceKind::Street,
            "district" => PlaceKind::District,
            "line" => PlaceKind::Line,
            _ => return None,
        })
    }
}

impl City {
    /// The places of `network`.
    pub fn new(network: &Network) -> City {
        let stops = network
            .stops
            .iter()
            .map(|s| (Rc::from(s.name.as_str()), s.lat, s.lon))
            .collect();
        let districts = network
            .districts
            .iter()
            .map(|d| (Rc::from(d.name.as_str()), d.lat, d.lon, d.radius_m))
            .collect();
        let lines = network
            .routes
            .iter()
            .map(|r| {
                Rc::from(if r.name.is_empty() {
                    r.short_name.as_str()
                } else {
                    r.name.as_str()
                })
            })
            .collect();
        let streets: Vec<LocalShape> = network
            .patterns
            .iter()
            .map(|p| p.path.clone())
            .filter(|p| p.length_m() > 0.0)
            .collect();
        let mut acc = 0.0;
        let street_cum = streets
            .iter()
            .map(|s| {
                acc += s.length_m();
                acc
            })
            .collect();
        City {
            stops,
            districts,
            lines,
            streets,
            street_cum,
            projection: network.projection,
            centre: (network.centre.lat, network.centre.lon),
            utc_offset_min: network.utc_offset_min,
        }
    }

    /// A random place's name.
    pub fn name(&self, kind: PlaceKind, rng: &mut ChaCha8Rng) -> Rc<str> {
        let pick = |n: usize, rng: &mut ChaCha8Rng| rng.random_range(0..n.max(1));
        match kind {
            PlaceKind::District if !self.districts.is_empty() => {
                Rc::clone(&self.districts[pick(self.districts.len(), rng)].0)
            }
            PlaceKind::Line if !self.lines.is_empty() => {
                Rc::clone(&self.lines[pick(self.lines.len(), rng)])
            }
            _ if !self.stops.is_empty() => Rc::clone(&self.stops[pick(self.stops.len(), rng)].0),
            _ => Rc::from("Centre"),
        }
    }

    /// A random position of that kind.
    pub fn position(&self, kind: PlaceKind, rng: &mut ChaCha8Rng) -> (f64, f64) {
        match kind {
            PlaceKind::Street if !self.streets.is_empty() => {
                let total = self.street_cum.last().copied().unwrap_or(0.0);
                let at = rng.random_range(0.0..total.max(f64::MIN_POSITIVE));
                let k = self
                    .street_cum
                    .partition_point(|c| *c < at)
                    .min(self.streets.len() - 1);
                let before = if k == 0 { 0.0 } else { self.street_cum[k - 1] };
                let (x, y, _) = self.streets[k].point_at(at - before, &mut 0);
                self.latlon(x, y)
            }
            PlaceKind::District if !self.districts.is_empty() => {
                let d = &self.districts[rng.random_range(0..self.districts.len())];
                let (r, a) = (
                    d.3 * rng.random::<f64>().sqrt(),
                    rng.random_range(0.0..std::f64::consts::TAU),
                );
                let m_per_deg = 111_195.0;
                (
                    d.1 + r * a.sin() / m_per_deg,
                    d.2 + r * a.cos() / (m_per_deg * d.1.to_radians().cos().max(0.01)),
                )
            }
            _ if !self.stops.is_empty() => {
                let s = &self.stops[rng.random_range(0..self.stops.len())];
                (s.1, s.2)
            }
            _ => self.centre,
        }
    }

    fn latlon(&self, x: f64, y: f64) -> (f64, f64) {
        let p = self.projection.to_latlon(x, y);
        (p.lat, p.lon)
    }

    /// Somewhere to start moving from, at a random place on a random street, with a
    /// random direction.
    pub fn start_moving(&self, speed_mps: f64, rng: &mut ChaCha8Rng) -> Mover {
        if self.streets.is_empty() {
            return Mover {
                street: usize::MAX,
                at_m: 0.0,
                speed_mps: 0.0,
                hint: 0,
            };
        }
        let street = rng.random_range(0..self.streets.len());
        let len = self.streets[street].length_m();
        let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
        Mover {
            street,
            at_m: rng.random_range(0.0..len),
            speed_mps: sign * speed_mps,
            hint: 0,
        }
    }

    /// Moves `m` on by `dt_s` seconds (turning back at a street's end, so the path is
    /// continuous) and says where it is.
    pub fn advance(&self, m: &mut Mover, dt_s: f64) -> (f64, f64) {
        let Some(street) = self.streets.get(m.street) else {
            return self.centre;
        };
        let len = street.length_m();
        if len > 0.0 && dt_s > 0.0 {
            // Unfold the back-and-forth: a period of 2 × length.
            let period = 2.0 * len;
            let (pos, dir) = if m.speed_mps >= 0.0 {
                (m.at_m, 1.0)
            } else {
                (period - m.at_m, -1.0)
            };
            let unfolded = (pos + m.speed_mps.abs() * dt_s).rem_euclid(period);
            let (at, forward) = if unfolded <= len {
                (unfolded, true)
            } else {
                (period - unfolded, false)
            };
            m.at_m = at;
            let forward = if dir > 0.0 { forward } else { !forward };
            m.speed_mps = if forward {
                m.speed_mps.abs()
            } else {
                -m.speed_mps.abs()
            };
        }
        let (x, y, _) = street.point_at(m.at_m, &mut m.hint);
        self.latlon(x, y)
    }
}

/// An entity moving along a street.
#[derive(Debug, Clone)]
pub struct Mover {
    street: usize,
    at_m: f64,
    /// Metres a second; negative runs towards the street's start.
    speed_mps: f64,
    hint: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn a_mover_moves_continuously_along_its_street() {
        let network = streamcity_network::synthetic::generate(Default::default());
        let city = City::new(&network);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            let mut m = city.start_moving(10.0, &mut rng);
            let mut last = city.advance(&mut m, 0.0);
            for _ in 0..500 {
                let p = city.advance(&mut m, 1.0);
                let d = streamcity_core::geo::distance_m(
                    streamcity_core::geo::LatLon::new(last.0, last.1),
                    streamcity_core::geo::LatLon::new(p.0, p.1),
                );
                assert!(d <= 10.5, "jumped {d} m in a second at 10 m/s");
                last = p;
            }
        }
    }
}

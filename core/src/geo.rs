//! Small geographic helpers shared by the simulators, the processor and the dashboard.

use serde::{Deserialize, Serialize};

/// Mean Earth radius in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS84 point, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    /// Latitude in degrees, north positive.
    pub lat: f64,
    /// Longitude in degrees, east positive.
    pub lon: f64,
}

impl LatLon {
    /// A point from latitude and longitude in degrees.
    pub const fn new(lat: f64, lon: f64) -> Self {
        LatLon { lat, lon }
    }

    /// True when both coordinates are finite and within their ranges.
    pub fn is_valid(&self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
    }
}

/// Great-circle distance between two points in metres (haversine).
pub fn distance_m(a: LatLon, b: LatLon) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lon - a.lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Initial bearing from `a` to `b`, in degrees clockwise from north, in `[0, 360)`.
pub fn bearing_deg(a: LatLon, b: LatLon) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dl = (b.lon - a.lon).to_radians();
    let y = dl.sin() * p2.cos();
    let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
    y.atan2(x).to_degrees().rem_euclid(360.0)
}

/// A flat projection around a centre point, accurate to well under a metre across a
/// city: metres east (`x`) and north (`y`) of the centre, and back. The default is
/// centred on (0, 0).
#[derive(Debug, Clone, Copy)]
pub struct LocalProjection {
    centre: LatLon,
    m_per_deg_lat: f64,
    m_per_deg_lon: f64,
}

impl LocalProjection {
    /// A projection centred on `centre`.
    pub fn new(centre: LatLon) -> Self {
        let m_per_deg_lat = EARTH_RADIUS_M.to_radians();
        LocalProjection {
            centre,
            m_per_deg_lat,
            m_per_deg_lon: m_per_deg_lat * centre.lat.to_radians().cos(),
        }
    }

    /// The point `x` metres east and `y` metres north of the centre.
    pub fn to_latlon(&self, x: f64, y: f64) -> LatLon {
        LatLon::new(
            self.centre.lat + y / self.m_per_deg_lat,
            self.centre.lon + x / self.m_per_deg_lon,
        )
    }

    /// Metres east and north of the centre.
    pub fn to_xy(&self, p: LatLon) -> (f64, f64) {
        (
            (p.lon - self.centre.lon) * self.m_per_deg_lon,
            (p.lat - self.centre.lat) * self.m_per_deg_lat,
        )
    }
}

impl Default for LocalProjection {
    fn default() -> Self {
        LocalProjection::new(LatLon::new(0.0, 0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        let d = distance_m(LatLon::new(40.0, -74.0), LatLon::new(41.0, -74.0));
        assert!((d - 111_195.0).abs() < 100.0, "{d}");
    }

    #[test]
    fn bearings_point_the_right_way() {
        let o = LatLon::new(40.0, -74.0);
        assert!((bearing_deg(o, LatLon::new(40.1, -74.0)) - 0.0).abs() < 0.01);
        assert!((bearing_deg(o, LatLon::new(40.0, -73.9)) - 90.0).abs() < 0.1);
        assert!((bearing_deg(o, LatLon::new(39.9, -74.0)) - 180.0).abs() < 0.01);
        assert!((bearing_deg(o, LatLon::new(40.0, -74.1)) - 270.0).abs() < 0.1);
    }

    #[test]
    fn projection_round_trips_and_agrees_with_haversine() {
        let proj = LocalProjection::new(LatLon::new(40.7128, -74.0060));
        let p = proj.to_latlon(3000.0, -4000.0);
        let (x, y) = proj.to_xy(p);
        assert!((x - 3000.0).abs() < 1e-6 && (y + 4000.0).abs() < 1e-6);
        let d = distance_m(LatLon::new(40.7128, -74.0060), p);
        assert!((d - 5000.0).abs() < 5.0, "{d}");
    }

    #[test]
    fn validity_rejects_nan_and_out_of_range() {
        assert!(LatLon::new(40.0, -74.0).is_valid());
        assert!(!LatLon::new(f64::NAN, 0.0).is_valid());
        assert!(!LatLon::new(91.0, 0.0).is_valid());
        assert!(!LatLon::new(0.0, f64::INFINITY).is_valid());
    }
}

//! Filters for pull queries over the live vehicle table, shared by the processor's
//! table and the dashboard's REST API.

use serde::{Deserialize, Serialize};

use crate::event::{Id, VehiclePosition, VehicleStatus};

/// A latitude/longitude box, degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Southern edge.
    pub min_lat: f64,
    /// Western edge.
    pub min_lon: f64,
    /// Northern edge.
    pub max_lat: f64,
    /// Eastern edge.
    pub max_lon: f64,
}

impl BoundingBox {
    /// Whether the point is inside (edges included).
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        (self.min_lat..=self.max_lat).contains(&lat) && (self.min_lon..=self.max_lon).contains(&lon)
    }

    /// Parses `min_lat,min_lon,max_lat,max_lon`, with a clear error.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("`{p}` is not a number"))
            })
            .collect::<Result<_, _>>()?;
        let [min_lat, min_lon, max_lat, max_lon] = parts[..] else {
            return Err(format!(
                "expected min_lat,min_lon,max_lat,max_lon, got {} numbers",
                parts.len()
            ));
        };
        let b = BoundingBox {
            min_lat,
            min_lon,
            max_lat,
            max_lon,
        };
        if !parts.iter().all(|v| v.is_finite()) || min_lat > max_lat || min_lon > max_lon {
            return Err("the box's minimums must not be above its maximums".into());
        }
        if !(-90.0..=90.0).contains(&min_lat) || !(-90.0..=90.0).contains(&max_lat) {
            return Err("latitudes must be between -90 and 90".into());
        }
        Ok(b)
    }
}

/// Which vehicles a scan returns; an empty filter matches every vehicle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VehicleFilter {
    /// Only this line.
    pub route: Option<Id>,
    /// Only vehicles in this status.
    pub status: Option<VehicleStatus>,
    /// Only vehicles inside this box.
    pub bbox: Option<BoundingBox>,
}

impl VehicleFilter {
    /// Whether `p` passes.
    pub fn matches(&self, p: &VehiclePosition) -> bool {
        self.route.as_ref().is_none_or(|r| *r == p.route_id)
            && self.status.is_none_or(|s| s == p.status)
            && self.bbox.is_none_or(|b| b.contains(p.lat, p.lon))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_parse_with_clear_errors() {
        let b = BoundingBox::parse("40.7,-74.1,40.8,-73.9").unwrap();
        assert!(b.contains(40.75, -74.0) && !b.contains(40.85, -74.0));
        assert!(BoundingBox::parse("1,2,3").unwrap_err().contains("got 3"));
        assert!(BoundingBox::parse("a,2,3,4").unwrap_err().contains("`a`"));
        assert!(BoundingBox::parse("41,0,40,1").is_err());
        assert!(BoundingBox::parse("NaN,0,40,1").is_err());
    }
}

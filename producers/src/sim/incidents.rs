//! Traffic incidents and city incidents: starting and clearing, slowing the street
//! lines inside their area, and suspending the lines a power outage cuts.

use compact_str::format_compact;
use rand::Rng;
use streamcity_core::geo::LatLon;
use streamcity_core::{
    CityIncident, IncidentStatus, Severity, TimestampMs, TrafficIncident, TrafficIncidentKind,
    TransitEffect,
};
use streamcity_network::geometry::round6;

use super::{SimEvent, Simulation};
use crate::civic;

#[derive(Debug, Clone)]
pub(super) struct Slowdown {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) radius_m: f64,
    pub(super) factor: f64,
}

#[derive(Debug, Clone)]
pub(super) struct ActiveTraffic {
    event: TrafficIncident,
    pub(super) area: Slowdown,
}

#[derive(Debug, Clone)]
pub(super) struct ActiveCity {
    event: CityIncident,
    ends_ms: TimestampMs,
    pub(super) slowdown: Option<Slowdown>,
    suspended: Vec<u16>,
}

impl ActiveCity {
    /// Whether it closes the road at `(x, y)` (local metres): a road closure in force
    /// there.
    pub(super) fn closes(&self, x: f64, y: f64) -> bool {
        self.event.kind == streamcity_core::CityIncidentKind::RoadClosure
            && self.slowdown.as_ref().is_some_and(|a| {
                let (dx, dy) = (x - a.x, y - a.y);
                dx * dx + dy * dy <= a.radius_m * a.radius_m
            })
    }
}

impl Simulation {
    /// Starts a traffic incident now (for scripted scenarios and tests) and emits its
    /// record.
    pub fn start_traffic(&mut self, incident: TrafficIncident, out: &mut Vec<SimEvent>) {
        let (x, y) = self
            .network
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
            .network
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
                .filter_map(|id| self.network.route_position(id))
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

    pub(super) fn incident_step(&mut self, out: &mut Vec<SimEvent>) {
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
                // A network of rail alone (a metro's feed) has no streets to jam.
                if let Some(incident) = self.random_traffic() {
                    self.start_traffic(incident, out);
                }
            }
        }
        self.city_arrivals
            .drain(now, 1.0, &mut self.rng, |_, _, n| due.push(n));
        for n in due {
            for _ in 0..n {
                let no = self.next_incident_no;
                self.next_incident_no += 1;
                if let Some(incident) = civic::generate(&mut self.rng, &self.network, now, no) {
                    self.start_city_incident(incident, out);
                }
            }
        }
    }

    /// A traffic incident somewhere on a street route; `None` when there is none.
    fn random_traffic(&mut self) -> Option<TrafficIncident> {
        let rng = &mut self.rng;
        let street: Vec<usize> = (0..self.network.routes.len())
            .filter(|&r| self.network.routes[r].mode.in_street_traffic())
            .collect();
        if street.is_empty() {
            return None;
        }
        let route = &self.network.routes[street[rng.random_range(0..street.len())]];
        let mut hint = 0;
        let (x, y, _) = route
            .path
            .point_at(rng.random_range(0.0..route.length_m()), &mut hint);
        let at = self.network.projection.to_latlon(x, y);
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
        Some(TrafficIncident {
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
        })
    }
}

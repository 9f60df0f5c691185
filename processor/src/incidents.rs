//! Incidents: traffic and city incidents described once ([`IncidentReport`]), the
//! incident alerts (raised when an incident starts, cleared when it ends), and the
//! incidents in force that delays are blamed on ([`IncidentAreas`]).

use std::collections::{BTreeMap, BTreeSet};

use compact_str::format_compact;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::{
    Alert, AlertKind, AlertState, CityIncident, CityIncidentKind, Id, IncidentStatus, Severity,
    SubjectKind, TimestampMs, TrafficIncident, TransitEffect, VehiclePosition, wire_name,
};

use streamcity_network::Network;

use crate::detector::{Context, Detector, Event};

/// How long after its expected end an incident still counts as in force, ms: a late
/// clearance, or a record of an earlier run, is forgotten after this.
pub const LINGER_MS: i64 = 15 * 60 * 1000;

/// Where an incident may delay vehicles, for naming the likely cause of a delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentArea {
    /// Where.
    pub lat: f64,
    /// Where.
    pub lon: f64,
    /// Radius of the affected area, metres.
    pub radius_m: f64,
    /// Lines it affects by name (city incidents), beyond its area.
    pub routes: Vec<Id>,
    /// What it is, for people, e.g. `"accident TI-000017"`.
    pub label: String,
    /// When it is expected to end, ms since the epoch.
    #[serde(default)]
    pub ends: TimestampMs,
}

/// An incident record, described: what its alert and its area say.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentReport {
    /// The incident id.
    pub id: Id,
    /// In force or over.
    pub status: IncidentStatus,
    /// How bad it is.
    pub severity: Severity,
    /// Where it delays vehicles.
    pub area: IncidentArea,
    /// When it started, ms since the epoch.
    pub start: TimestampMs,
    /// When this record was made (event time), ms since the epoch.
    pub ts: TimestampMs,
    /// A one-line description for people.
    pub message: String,
    /// What an operator can do about it.
    pub action: String,
    /// Whether it touches service by its nature: a city incident slowing or suspending
    /// lines (a traffic incident touches the lines passing through its area, an
    /// incident with no effect on transit none).
    pub effect: TransitEffect,
    /// The numbers behind it.
    pub evidence: serde_json::Map<String, serde_json::Value>,
}

/// A traffic incident, described.
pub fn describe_traffic(i: &TrafficIncident) -> IncidentReport {
    let kind = wire_name(&i.kind);
    let label = format!("{kind} {}", i.incident_id);
    let mut evidence = serde_json::Map::new();
    evidence.insert("radius_m".into(), json!(i.radius_m));
    evidence.insert("speed_factor".into(), json!(i.speed_factor));
    evidence.insert("incident_kind".into(), json!(kind));
    let message = match i.status {
        IncidentStatus::Active => format!(
            "Traffic {label}: vehicles within {} m slowed to {:.0}% speed",
            i.radius_m,
            i.speed_factor * 100.0
        ),
        IncidentStatus::Cleared => format!("Traffic {label} cleared"),
    };
    IncidentReport {
        id: i.incident_id.clone(),
        status: i.status,
        severity: i.severity,
        area: IncidentArea {
            lat: i.lat,
            lon: i.lon,
            radius_m: i.radius_m,
            routes: Vec::new(),
            label,
            ends: i.expected_end,
        },
        start: i.started_at,
        ts: i.timestamp,
        message,
        action: "Warn the lines passing through; divert them if it lasts.".into(),
        effect: TransitEffect::Slowdown,
        evidence,
    }
}

/// A city incident, described.
pub fn describe_city(i: &CityIncident) -> IncidentReport {
    let mut evidence = serde_json::Map::new();
    evidence.insert("incident_kind".into(), json!(wire_name(&i.kind)));
    evidence.insert("area".into(), json!(i.area));
    evidence.insert("radius_m".into(), json!(i.radius_m));
    evidence.insert("transit_effect".into(), json!(i.transit_effect));
    if !i.affected_routes.is_empty() {
        evidence.insert("affected_routes".into(), json!(i.affected_routes));
    }
    if let Some(n) = i.affected_customers {
        evidence.insert("affected_customers".into(), json!(n));
    }
    let effect = match (i.transit_effect, i.affected_routes.is_empty()) {
        (TransitEffect::Suspension, false) => {
            format!("; service suspended on {}", i.affected_routes.join(", "))
        }
        (TransitEffect::Slowdown, false) => {
            format!("; delays on {}", i.affected_routes.join(", "))
        }
        _ => String::new(),
    };
    // "Power outage in Eastside" already names its area; "Boil water advisory" does not.
    let what = if i.message.contains(&i.area) {
        i.message.clone()
    } else {
        format!("{} in {}", i.message, i.area)
    };
    let message = match i.status {
        IncidentStatus::Active => format!("{what}{effect}"),
        IncidentStatus::Cleared => format!("{what} is over"),
    };
    // Only incidents that touch transit can explain a delay beyond their area.
    let routes = if i.transit_effect == TransitEffect::None {
        Vec::new()
    } else {
        i.affected_routes.clone()
    };
    let ends = i
        .expires_at
        .or(i.estimated_restoration)
        .unwrap_or(i.started_at);
    IncidentReport {
        id: i.event_id.clone(),
        status: i.status,
        severity: i.severity,
        area: IncidentArea {
            lat: i.lat,
            lon: i.lon,
            radius_m: i.radius_m,
            routes,
            label: format!("{} {}", wire_name(&i.kind).replace('_', " "), i.event_id),
            ends,
        },
        start: i.started_at,
        ts: i.timestamp,
        action: match i.transit_effect {
            TransitEffect::Suspension => format!(
                "Run replacement buses for {} and tell riders.",
                i.affected_routes.join(", ")
            ),
            TransitEffect::Slowdown if i.kind == CityIncidentKind::RoadClosure => {
                "Divert the lines through the closure; their stops inside are skipped.".into()
            }
            TransitEffect::Slowdown => "Warn the lines passing through; expect delays.".into(),
            TransitEffect::None => String::new(),
        },
        message,
        effect: i.transit_effect,
        evidence,
    }
}

/// The incidents in force, from this instance's partitions and from the feed every
/// instance reads in full: the likely causes of delays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentAreas {
    areas: BTreeMap<Id, IncidentArea>,
}

impl IncidentAreas {
    /// Notes an incident record: keeps an incident in force, forgets one that cleared.
    /// An incident with no effect on transit (a water advisory) explains no delay.
    pub fn note(&mut self, report: &IncidentReport) {
        match report.status {
            IncidentStatus::Active if report.effect == TransitEffect::None => {
                self.areas.remove(&report.id);
            }
            IncidentStatus::Active => {
                self.areas.insert(report.id.clone(), report.area.clone());
            }
            IncidentStatus::Cleared => {
                self.areas.remove(&report.id);
            }
        }
    }

    /// Forgets incidents whose expected end is more than [`LINGER_MS`] before `ts`
    /// (their clearance was lost, or they belong to an earlier run).
    pub fn expire(&mut self, ts: TimestampMs) {
        self.areas
            .retain(|_, a| a.ends.saturating_add(LINGER_MS) >= ts);
    }

    /// True when no incident is in force.
    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }

    /// The incident most likely behind a vehicle's delay: the nearest whose area
    /// (widened by `radius_m`) contains it, or one that names its line. (id, label,
    /// distance in metres).
    pub fn likely_cause(&self, p: &VehiclePosition, radius_m: f64) -> Option<(Id, String, f64)> {
        self.areas
            .iter()
            .filter_map(|(id, area)| {
                let d = distance_m(LatLon::new(area.lat, area.lon), p.position());
                let names_line = area.routes.contains(&p.route_id);
                (d <= area.radius_m + radius_m || names_line)
                    .then(|| (id.clone(), area.label.clone(), d))
            })
            .min_by(|a, b| a.2.total_cmp(&b.2))
    }
}

/// Raises an incident alert when an incident touching service first becomes active and
/// clears it when it ends. An incident that touches no line (a water advisory; an
/// accident on a street no line takes) is left to the map: it is nothing an operator
/// of transit acts on. A repeated report of a known incident, or the clearance of one
/// never seen, changes nothing worth an alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentDetector {
    /// Incidents whose alerts this instance raised (read from its partitions).
    active: BTreeSet<Id>,
}

impl Detector for IncidentDetector {
    fn on_event(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        let Event::Incident(r) = event else {
            return;
        };
        let alert_id = format_compact!("incident:{}", r.id);
        match r.status {
            IncidentStatus::Active => {
                if self.active.contains(&r.id) {
                    return;
                }
                let Some(lines) = lines_touched(r, cx.network) else {
                    return;
                };
                self.active.insert(r.id.clone());
                let mut evidence = r.evidence.clone();
                let mut message = r.message.clone();
                if !lines.is_empty() && r.area.routes.is_empty() {
                    message = format!("{message}; lines through the area: {}", lines.join(", "));
                }
                evidence.insert("lines".into(), json!(lines));
                cx.raise(Alert {
                    alert_id,
                    kind: AlertKind::Incident,
                    state: AlertState::Raised,
                    severity: r.severity,
                    subject_kind: SubjectKind::Incident,
                    subject_id: r.id.clone(),
                    lat: Some(r.area.lat),
                    lon: Some(r.area.lon),
                    window_start: r.start,
                    window_end: r.area.ends,
                    raised_at: r.start,
                    timestamp: r.ts,
                    message,
                    action: r.action.clone(),
                    evidence,
                    acknowledged: None,
                    muted_until: None,
                });
            }
            IncidentStatus::Cleared => {
                if self.active.remove(&r.id) {
                    cx.clear(&alert_id, r.ts, r.message.clone());
                }
            }
        }
    }
}

/// The lines an incident touches (the ones it names, and those passing through its
/// area when it slows traffic), or `None` when it touches no service. Without the
/// network, a slowdown is taken to touch service.
fn lines_touched(r: &IncidentReport, network: Option<&Network>) -> Option<Vec<Id>> {
    let mut lines: BTreeSet<Id> = r.area.routes.iter().cloned().collect();
    match r.effect {
        TransitEffect::None => return None,
        TransitEffect::Suspension => {}
        TransitEffect::Slowdown => {
            if let Some(n) = network {
                let (x, y) = n.projection.to_xy(LatLon::new(r.area.lat, r.area.lon));
                for i in n.routes_near(x, y, r.area.radius_m) {
                    lines.insert(n.routes[i].route_id.clone());
                }
            } else if lines.is_empty() {
                return Some(Vec::new());
            }
        }
    }
    (!lines.is_empty()).then(|| lines.into_iter().collect())
}

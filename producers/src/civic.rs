//! City incidents after the CivicSense seed: emergencies (weather alert, fire, public
//! safety, health advisory) and infrastructure events (power outage, water advisory,
//! road closure), with the seed's fields, and with effects on transit where they make
//! sense: a road closure slows the street lines through it (they detour), a power
//! outage suspends the rail lines through it, severe weather and fires slow traffic.

use compact_str::format_compact;
use rand::Rng;
use rand::seq::IndexedRandom;
use streamcity_core::{
    CityIncident, CityIncidentCategory, CityIncidentKind, IncidentStatus, Severity, TimestampMs,
    TransitEffect,
};

use streamcity_network::Network;
use streamcity_network::geometry::round6;

/// How often each kind occurs, relative to the others.
const KINDS: [(CityIncidentKind, u32); 7] = [
    (CityIncidentKind::WeatherAlert, 3),
    (CityIncidentKind::Fire, 2),
    (CityIncidentKind::PublicSafety, 2),
    (CityIncidentKind::HealthAdvisory, 1),
    (CityIncidentKind::PowerOutage, 2),
    (CityIncidentKind::WaterAdvisory, 1),
    (CityIncidentKind::RoadClosure, 3),
];

/// The relative frequency of a kind among generated incidents.
pub fn kind_weight(kind: CityIncidentKind) -> f64 {
    let total: u32 = KINDS.iter().map(|k| k.1).sum();
    KINDS
        .iter()
        .find(|k| k.0 == kind)
        .map_or(0.0, |k| k.1 as f64 / total as f64)
}

fn pick_kind<R: Rng>(rng: &mut R) -> CityIncidentKind {
    let total: u32 = KINDS.iter().map(|k| k.1).sum();
    let mut roll = rng.random_range(0..total);
    for (kind, w) in KINDS {
        if roll < w {
            return kind;
        }
        roll -= w;
    }
    CityIncidentKind::RoadClosure
}

fn pick_severity<R: Rng>(rng: &mut R) -> Severity {
    match rng.random_range(0..100) {
        0..10 => Severity::Critical,
        10..35 => Severity::High,
        35..70 => Severity::Moderate,
        _ => Severity::Low,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A new city incident somewhere in `network`, starting at `now`. `no` numbers it; `None`
/// when the network has no districts to place it in.
pub fn generate<R: Rng>(
    rng: &mut R,
    network: &Network,
    now: TimestampMs,
    no: u64,
) -> Option<CityIncident> {
    let kind = pick_kind(rng);
    let severity = pick_severity(rng);
    let district = network
        .districts
        .get(rng.random_range(0..network.districts.len().max(1)))?;
    let area = district.name.clone();
    // Somewhere in the district; weather covers the whole of it.
    let (radius_m, spread) = match kind {
        CityIncidentKind::WeatherAlert => (district.radius_m * 1.5, 0.0),
        CityIncidentKind::PowerOutage => (rng.random_range(800.0..2_000.0), 1_500.0),
        CityIncidentKind::WaterAdvisory => (rng.random_range(500.0..1_500.0), 1_500.0),
        CityIncidentKind::HealthAdvisory => (district.radius_m, 0.0),
        CityIncidentKind::Fire | CityIncidentKind::PublicSafety => {
            (rng.random_range(150.0..400.0), 2_000.0)
        }
        CityIncidentKind::RoadClosure => (rng.random_range(150.0..350.0), 2_000.0),
    };
    let (x, y) = (
        district.x + rng.random_range(-1.0..=1.0) * spread,
        district.y + rng.random_range(-1.0..=1.0) * spread,
    );
    let at = network.projection.to_latlon(x, y);
    let hours = rng.random_range(0.5..4.0);
    let ends = now + (hours * 3_600_000.0) as i64;
    let pick = |rng: &mut R, items: &[&str]| -> String {
        items.choose(rng).copied().unwrap_or_default().to_owned()
    };

    let (message, groups, instructions) = match kind {
        CityIncidentKind::WeatherAlert => (
            pick(
                rng,
                &[
                    "Severe thunderstorm warning in effect",
                    "Flash flood warning",
                    "Extreme heat advisory",
                    "High wind warning",
                ],
            ),
            strings(&["general public", "commuters", "outdoor workers"]),
            strings(&["Stay indoors", "Monitor news", "Allow extra travel time"]),
        ),
        CityIncidentKind::Fire => (
            pick(
                rng,
                &[
                    "Structure fire, streets cordoned",
                    "Commercial building fire",
                    "Warehouse fire with heavy smoke",
                ],
            ),
            strings(&["residents", "commuters"]),
            strings(&[
                "Avoid the area",
                "Keep windows closed",
                "Follow directions of emergency crews",
            ]),
        ),
        CityIncidentKind::PublicSafety => (
            pick(
                rng,
                &[
                    "Police operation in progress",
                    "Suspicious package, area evacuated",
                    "Large crowd gathering",
                ],
            ),
            strings(&["general public"]),
            strings(&["Avoid the area", "Follow police instructions"]),
        ),
        CityIncidentKind::HealthAdvisory => (
            pick(
                rng,
                &[
                    "Air quality advisory",
                    "Heat illness risk advisory",
                    "Seasonal flu advisory",
                ],
            ),
            strings(&["elderly", "children", "people with respiratory conditions"]),
            strings(&[
                "Limit outdoor activity",
                "Stay hydrated",
                "Check on vulnerable neighbours",
            ]),
        ),
        CityIncidentKind::PowerOutage => {
            (format!("Power outage in {area}"), Vec::new(), Vec::new())
        }
        CityIncidentKind::WaterAdvisory => (
            pick(
                rng,
                &[
                    "Boil water advisory",
                    "Water main break, low pressure",
                    "Water service interruption",
                ],
            ),
            Vec::new(),
            strings(&[
                "Boil water before drinking",
                "Store water for essential use",
            ]),
        ),
        CityIncidentKind::RoadClosure => (
            pick(
                rng,
                &[
                    "Road closed for emergency repairs",
                    "Road closed after a gas leak",
                    "Road closed for a sinkhole",
                ],
            ),
            Vec::new(),
            strings(&["Use alternative routes", "Expect bus detours"]),
        ),
    };

    // What it does to transit.
    let near = network.routes_near(x, y, radius_m);
    let street: Vec<usize> = near
        .iter()
        .copied()
        .filter(|&r| network.routes[r].mode.in_street_traffic())
        .collect();
    let rail: Vec<usize> = near
        .iter()
        .copied()
        .filter(|&r| network.routes[r].mode.is_rail())
        .collect();
    let (transit_effect, speed_factor, affected) = match kind {
        CityIncidentKind::RoadClosure if !street.is_empty() => {
            (TransitEffect::Slowdown, Some(0.2), street)
        }
        CityIncidentKind::PowerOutage if !rail.is_empty() => {
            (TransitEffect::Suspension, None, rail)
        }
        CityIncidentKind::Fire if !street.is_empty() => {
            (TransitEffect::Slowdown, Some(0.5), street)
        }
        CityIncidentKind::WeatherAlert if severity >= Severity::High && !street.is_empty() => {
            (TransitEffect::Slowdown, Some(0.75), street)
        }
        _ => (TransitEffect::None, None, Vec::new()),
    };

    let infrastructure = kind.category() == CityIncidentCategory::Infrastructure;
    let (cause, customers, utility) = match kind {
        CityIncidentKind::PowerOutage => (
            Some(pick(
                rng,
                &[
                    "Equipment failure",
                    "Storm damage",
                    "Overloaded substation",
                    "Cable fault",
                ],
            )),
            Some(rng.random_range(500..25_000)),
            Some("City Power & Light".to_owned()),
        ),
        CityIncidentKind::WaterAdvisory => (
            Some(pick(
                rng,
                &["Main break", "Contamination test", "Pump station failure"],
            )),
            Some(rng.random_range(100..8_000)),
            Some("Metro Water Authority".to_owned()),
        ),
        CityIncidentKind::RoadClosure => (
            Some(pick(rng, &["Emergency repairs", "Gas leak", "Sinkhole"])),
            None,
            None,
        ),
        _ => (None, None, None),
    };
    let prefix = if infrastructure { "INF" } else { "EMG" };
    Some(CityIncident {
        event_id: format_compact!("{prefix}-{no:06}"),
        category: kind.category(),
        kind,
        status: IncidentStatus::Active,
        severity,
        message,
        area,
        lat: round6(at.lat),
        lon: round6(at.lon),
        radius_m: radius_m.round(),
        affected_groups: groups,
        instructions,
        cause,
        affected_customers: customers,
        utility_company: utility,
        transit_effect,
        speed_factor,
        affected_routes: affected
            .iter()
            .map(|&r| network.routes[r].route_id.clone())
            .collect(),
        started_at: now,
        expires_at: (!infrastructure).then_some(ends),
        estimated_restoration: infrastructure.then_some(ends),
        timestamp: now,
    })
}

/// When the incident ends.
pub fn ends_at(incident: &CityIncident) -> TimestampMs {
    incident
        .expires_at
        .or(incident.estimated_restoration)
        .unwrap_or(incident.started_at)
}

//! Service `Alerts`: traffic and city incidents in force, with the routes they touch,
//! their cause and effect; and the processor's active alerts (delays, breakdowns,
//! bunching, gaps, crowding, surges) on the route, stop or trip they are about.

use streamcity_core::geo::LatLon;
use streamcity_core::{
    Alert, AlertKind, CityIncident, CityIncidentKind, Severity, SubjectKind, TrafficIncident,
    TrafficIncidentKind, TransitEffect, VehiclePosition,
};
use streamcity_network::Network;

use crate::proto::{self, alert};
use crate::{feed, trip_descriptor};

fn text(s: String) -> proto::TranslatedString {
    proto::TranslatedString {
        translation: vec![proto::translated_string::Translation {
            text: s,
            language: Some("en".to_owned()),
        }],
    }
}

fn severity(s: Severity) -> alert::SeverityLevel {
    match s {
        Severity::Low => alert::SeverityLevel::Info,
        Severity::Moderate => alert::SeverityLevel::Warning,
        Severity::High | Severity::Critical => alert::SeverityLevel::Severe,
    }
}

/// The routes of `network` within `radius_m` of `at`; the whole network when none is.
fn near(network: &Network, at: LatLon, radius_m: f64) -> Vec<proto::EntitySelector> {
    let (x, y) = network.projection.to_xy(at);
    let routes: Vec<proto::EntitySelector> = network
        .routes_near(x, y, radius_m)
        .into_iter()
        .map(|r| proto::EntitySelector {
            route_id: Some(network.routes[r].route_id.to_string()),
            ..Default::default()
        })
        .collect();
    if routes.is_empty() {
        everywhere(network)
    } else {
        routes
    }
}

/// The whole network: its agencies, or where a feed names none (an agency without
/// `agency_id`), every route.
fn everywhere(network: &Network) -> Vec<proto::EntitySelector> {
    if network.agencies.iter().all(|a| !a.agency_id.is_empty()) {
        return network
            .agencies
            .iter()
            .map(|a| proto::EntitySelector {
                agency_id: Some(a.agency_id.to_string()),
                ..Default::default()
            })
            .collect();
    }
    network
        .routes
        .iter()
        .map(|r| proto::EntitySelector {
            route_id: Some(r.route_id.to_string()),
            ..Default::default()
        })
        .collect()
}

/// `description` when it says more than `header`.
fn more(header: &str, description: String) -> Option<proto::TranslatedString> {
    (description.trim() != header.trim()).then(|| text(description))
}

fn period(start_ms: i64, end_ms: i64) -> Vec<proto::TimeRange> {
    vec![proto::TimeRange {
        start: Some((start_ms / 1000).max(0) as u64),
        end: (end_ms > start_ms).then_some((end_ms / 1000) as u64),
    }]
}

fn traffic(network: &Network, t: &TrafficIncident) -> proto::FeedEntity {
    let (cause, effect, what) = match t.kind {
        TrafficIncidentKind::Accident => (
            alert::Cause::Accident,
            alert::Effect::SignificantDelays,
            "Accident",
        ),
        TrafficIncidentKind::Roadworks => (
            alert::Cause::Construction,
            alert::Effect::SignificantDelays,
            "Roadworks",
        ),
        TrafficIncidentKind::Congestion => (
            alert::Cause::OtherCause,
            alert::Effect::SignificantDelays,
            "Heavy traffic",
        ),
    };
    let speed = (t.speed_factor * 100.0).round();
    proto::FeedEntity {
        id: format!("traffic:{}", t.incident_id),
        alert: Some(proto::Alert {
            active_period: period(t.started_at, t.expected_end),
            informed_entity: near(network, LatLon::new(t.lat, t.lon), t.radius_m),
            cause: Some(cause as i32),
            effect: Some(effect as i32),
            header_text: Some(text(format!("{what}: delays on the lines nearby"))),
            description_text: Some(text(format!(
                "{what} within {:.0} m of {:.5}, {:.5}: buses and trams there run at about {speed:.0} % of their speed.",
                t.radius_m, t.lat, t.lon
            ))),
            severity_level: Some(severity(t.severity) as i32),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn city(network: &Network, c: &CityIncident) -> proto::FeedEntity {
    let cause = match c.kind {
        CityIncidentKind::WeatherAlert => alert::Cause::Weather,
        CityIncidentKind::Fire | CityIncidentKind::HealthAdvisory => alert::Cause::MedicalEmergency,
        CityIncidentKind::PublicSafety => alert::Cause::PoliceActivity,
        CityIncidentKind::PowerOutage | CityIncidentKind::WaterAdvisory => {
            alert::Cause::TechnicalProblem
        }
        CityIncidentKind::RoadClosure => alert::Cause::Construction,
    };
    let effect = match c.transit_effect {
        TransitEffect::Suspension => alert::Effect::NoService,
        TransitEffect::Slowdown => alert::Effect::SignificantDelays,
        TransitEffect::None => alert::Effect::NoEffect,
    };
    let informed = if c.affected_routes.is_empty() {
        near(network, LatLon::new(c.lat, c.lon), c.radius_m)
    } else {
        c.affected_routes
            .iter()
            .filter(|r| network.route(r).is_some())
            .map(|r| proto::EntitySelector {
                route_id: Some(r.to_string()),
                ..Default::default()
            })
            .collect()
    };
    let header = format!("{} in {}", words(c.kind), c.area);
    let mut description = c.message.clone();
    for step in &c.instructions {
        description.push_str("\n- ");
        description.push_str(step);
    }
    proto::FeedEntity {
        id: format!("city:{}", c.event_id),
        alert: Some(proto::Alert {
            active_period: period(
                c.started_at,
                c.expires_at.or(c.estimated_restoration).unwrap_or(0),
            ),
            informed_entity: if informed.is_empty() {
                everywhere(network)
            } else {
                informed
            },
            cause: Some(cause as i32),
            effect: Some(effect as i32),
            description_text: more(&header, description),
            header_text: Some(text(header)),
            severity_level: Some(severity(c.severity) as i32),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `weather_alert` as people write it: `Weather alert`.
fn words(kind: CityIncidentKind) -> String {
    let name = streamcity_core::wire_name(&kind).replace('_', " ");
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// An active alert of the processor, on what it is about (a vehicle's: its trip, as
/// `vehicle` finds its latest report); `None` for incident alerts (the incidents
/// themselves are in the feed) and subjects the network does not know.
fn processor<'a>(
    network: &Network,
    a: &Alert,
    vehicle: &impl Fn(&str) -> Option<&'a VehiclePosition>,
) -> Option<proto::FeedEntity> {
    let entity = match a.subject_kind {
        SubjectKind::Stop => network.stop(&a.subject_id).map(|_| proto::EntitySelector {
            stop_id: Some(a.subject_id.to_string()),
            ..Default::default()
        })?,
        SubjectKind::Route => network
            .route(&a.subject_id)
            .map(|_| proto::EntitySelector {
                route_id: Some(a.subject_id.to_string()),
                ..Default::default()
            })?,
        SubjectKind::Vehicle => {
            let p = vehicle(&a.subject_id)?;
            let trip = trip_descriptor(network, p);
            if trip.trip_id.is_some() {
                proto::EntitySelector {
                    trip: Some(trip),
                    ..Default::default()
                }
            } else {
                network.route(&p.route_id)?;
                proto::EntitySelector {
                    route_id: Some(p.route_id.to_string()),
                    ..Default::default()
                }
            }
        }
        SubjectKind::Incident => return None,
    };
    let (cause, effect) = match a.kind {
        AlertKind::Delay => (alert::Cause::UnknownCause, alert::Effect::SignificantDelays),
        AlertKind::Breakdown => (
            alert::Cause::TechnicalProblem,
            alert::Effect::ReducedService,
        ),
        AlertKind::Bunching | AlertKind::Gapping => {
            (alert::Cause::OtherCause, alert::Effect::ModifiedService)
        }
        AlertKind::Crowding | AlertKind::Surge => {
            (alert::Cause::OtherCause, alert::Effect::OtherEffect)
        }
        AlertKind::Incident => return None,
    };
    Some(proto::FeedEntity {
        id: a.alert_id.to_string(),
        alert: Some(proto::Alert {
            active_period: period(a.raised_at, 0),
            informed_entity: vec![entity],
            cause: Some(cause as i32),
            effect: Some(effect as i32),
            header_text: Some(text(a.message.clone())),
            severity_level: Some(severity(a.severity) as i32),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The `Alerts` feed at `now_ms`: the incidents in force and the processor's active
/// alerts (a vehicle's on its trip, which `vehicle` finds), entities in id order.
pub fn service_alerts<'a>(
    network: &Network,
    now_ms: i64,
    traffic_incidents: impl IntoIterator<Item = &'a TrafficIncident>,
    city_incidents: impl IntoIterator<Item = &'a CityIncident>,
    alerts: impl IntoIterator<Item = &'a Alert>,
    vehicle: impl Fn(&str) -> Option<&'a VehiclePosition>,
) -> proto::FeedMessage {
    let entity: Vec<proto::FeedEntity> = traffic_incidents
        .into_iter()
        .map(|t| traffic(network, t))
        .chain(city_incidents.into_iter().map(|c| city(network, c)))
        .chain(
            alerts
                .into_iter()
                .filter_map(|a| processor(network, a, &vehicle)),
        )
        .collect();
    feed(now_ms, entity)
}

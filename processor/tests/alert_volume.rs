//! How many alerts an operator is asked to read, and whether the ones that matter still
//! come: a simulated day of the default city with nothing scripted (its own random
//! incidents, breakdowns and dropouts included) through the processor, and an hour with
//! a scripted crowd, road closure, breakdown and power outage.

use std::collections::BTreeMap;
use std::sync::Arc;

use streamcity_core::{
    Alert, AlertKind, AlertState, CityIncident, CityIncidentKind, Id, IncidentStatus, Severity,
    Topics, TransitEffect, TransportMode, VehiclePosition,
};
use streamcity_network::{Network, SyntheticConfig, synthetic};
use streamcity_processor::{Processor, ProcessorConfig};
use streamcity_producers::runner::to_record;
use streamcity_producers::sim::{CrowdEvent, SimConfig, SimEvent, Simulation};

/// At most this many alerts per hour per 100 vehicles on a quiet day.
const GOAL_PER_HOUR_PER_100: f64 = 10.0;
/// A scripted disturbance's alert comes within this long (simulated), ms.
const WITHIN_MS: i64 = 120_000;

fn city() -> Arc<Network> {
    Arc::new(synthetic::generate(SyntheticConfig::default()))
}

/// Runs `sim` through a processor until `end`, calling `script` before each step (to
/// start scripted events) and `watch` with every event; returns every alert record
/// published.
fn run(
    sim: &mut Simulation,
    end: i64,
    mut script: impl FnMut(&mut Simulation, &mut Vec<SimEvent>),
    mut watch: impl FnMut(&SimEvent),
) -> Vec<Alert> {
    let topics = Topics::default();
    let city = Arc::clone(sim.network());
    let mut config = ProcessorConfig::default();
    config.headway.route_headways_s = city.headways();
    let mut core = Processor::new(topics.clone(), config).with_network(city);
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut alerts = Vec::new();
    while sim.now() < end {
        script(sim, &mut events);
        sim.step(&mut events);
        let now = sim.now();
        for e in events.drain(..) {
            watch(&e);
            let r = to_record(&topics, &e);
            if !streamcity_processor::inputs(&topics).contains(&&r.topic) {
                continue;
            }
            core.on_record(&r, r.partition(6) as i32, now, &mut out);
        }
        core.advance(now, &mut out);
        for r in out.drain(..) {
            if r.topic == topics.alerts {
                alerts.push(serde_json::from_slice::<Alert>(&r.payload).expect("an alert"));
            }
        }
    }
    alerts
}

fn raised(alerts: &[Alert]) -> impl Iterator<Item = &Alert> {
    alerts.iter().filter(|a| a.state == AlertState::Raised)
}

#[test]
fn a_quiet_day_asks_for_at_most_ten_alerts_an_hour_per_hundred_vehicles() {
    let config = SimConfig::default();
    let start = config.start_ms;
    let mut sim = Simulation::new(city(), config);
    let fleet = sim.fleet_size();
    let alerts = run(&mut sim, start + 24 * 3_600_000, |_, _| {}, |_| {});

    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for a in raised(&alerts) {
        *by_kind.entry(format!("{:?}", a.kind)).or_default() += 1;
    }
    let total: usize = by_kind.values().sum();
    let rate = total as f64 / 24.0 / (fleet as f64 / 100.0);
    eprintln!(
        "quiet day, {fleet} vehicles: {total} alerts raised ({rate:.1} per hour per 100 vehicles): {by_kind:?}"
    );
    assert!(
        rate <= GOAL_PER_HOUR_PER_100,
        "{rate:.1} alerts per hour per 100 vehicles (goal {GOAL_PER_HOUR_PER_100}): {by_kind:?}"
    );
    // Still an honest picture of the day: its incidents touching service, its
    // breakdowns and its late running are all there.
    for kind in ["Incident", "Breakdown", "Delay"] {
        assert!(
            by_kind.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} alert all day: {by_kind:?}"
        );
    }
    // Every alert is actionable and graded; every one raised is cleared or still active
    // once; grouped ones name their vehicles.
    for a in raised(&alerts) {
        assert!(!a.action.is_empty(), "{} has no action", a.alert_id);
    }
    for a in alerts
        .iter()
        .filter(|a| matches!(a.kind, AlertKind::Delay | AlertKind::Crowding))
    {
        let n = a.evidence["vehicle_count"]
            .as_u64()
            .expect("a vehicle count");
        let ids = a.evidence["vehicles"].as_array().expect("vehicle ids");
        assert_eq!(ids.len() as u64, n.min(50), "{a:?}");
    }
    let mut states: BTreeMap<&str, Vec<AlertState>> = BTreeMap::new();
    for a in &alerts {
        states.entry(&a.alert_id).or_default().push(a.state);
    }
    for (id, s) in states {
        let (first, rest) = s.split_first().expect("a record");
        let middle = match rest.split_last() {
            Some((AlertState::Cleared, middle)) => middle,
            _ => rest,
        };
        assert!(
            *first == AlertState::Raised && middle.iter().all(|s| *s == AlertState::Updated),
            "{id}: {s:?}"
        );
    }
}

#[test]
fn every_scripted_disturbance_raises_its_alert_within_two_minutes() {
    let city = city();
    let mut config = SimConfig::default();
    let start = config.start_ms;
    let minute = 60_000;
    let bus = city
        .routes
        .iter()
        .find(|r| r.mode == TransportMode::Bus)
        .expect("a bus line");
    let rail = city
        .routes
        .iter()
        .find(|r| r.mode == TransportMode::Rail)
        .expect("a rail line");
    let crowd_stop = city.stops[city.stops.len() / 2].stop_id.clone();
    let crowd_at = start + 15 * minute;
    config.crowds.push(CrowdEvent {
        stop_id: crowd_stop.clone(),
        start_ms: crowd_at,
        duration_ms: 10 * minute,
        riders: 600,
    });
    let mut hint = 0;
    let (x, y, _) = bus.path.point_at(bus.length_m() / 2.0, &mut hint);
    let on_bus_line = city.projection.to_latlon(x, y);
    let (x, y, _) = rail.path.point_at(rail.length_m() / 2.0, &mut hint);
    let on_rail_line = city.projection.to_latlon(x, y);
    let closure_at = start + 20 * minute;
    let outage_at = start + 30 * minute;
    let breakdown_at = start + 25 * minute;

    let mut sim = Simulation::new(Arc::clone(&city), config);
    // A bus of the line to break down: one seen under way in the first minute.
    let mut first = Vec::new();
    let mut bus_id: Option<Id> = None;
    while bus_id.is_none() {
        sim.step(&mut first);
        bus_id = first.iter().find_map(|e| match e {
            SimEvent::Position(VehiclePosition {
                vehicle_id,
                route_id,
                speed_mps,
                ..
            }) if *route_id == bus.route_id && *speed_mps > 1.0 => Some(vehicle_id.clone()),
            _ => None,
        });
    }
    let bus_id = bus_id.expect("a bus");
    let mut broke_down_at = None;
    let script = |sim: &mut Simulation, out: &mut Vec<SimEvent>| {
        let now = sim.now();
        if now == closure_at {
            sim.start_city_incident(
                city_incident(
                    "INF-CLOSURE",
                    CityIncidentKind::RoadClosure,
                    on_bus_line,
                    vec![],
                    now,
                ),
                out,
            );
        }
        if now == outage_at {
            sim.start_city_incident(
                city_incident(
                    "INF-OUTAGE",
                    CityIncidentKind::PowerOutage,
                    on_rail_line,
                    vec![rail.route_id.clone()],
                    now,
                ),
                out,
            );
        }
        if now == breakdown_at {
            assert!(sim.break_down(&bus_id, 20 * minute));
        }
    };
    let watch = |e: &SimEvent| {
        if let SimEvent::Position(p) = e
            && broke_down_at.is_none()
            && p.vehicle_id == bus_id
            && p.status == streamcity_core::VehicleStatus::BrokenDown
        {
            broke_down_at = Some(p.timestamp);
        }
    };
    let alerts = run(&mut sim, start + 50 * minute, script, watch);
    let first_alert = |what: &str, since: i64, test: &dyn Fn(&Alert) -> bool| {
        let a = raised(&alerts)
            .filter(|a| a.timestamp >= since && test(a))
            .min_by_key(|a| a.timestamp)
            .unwrap_or_else(|| panic!("no alert for the {what}"));
        let after = a.timestamp - since;
        eprintln!(
            "{what}: {} after {} s: {}",
            a.alert_id,
            after / 1000,
            a.message
        );
        assert!(
            after <= WITHIN_MS,
            "the {what}'s alert came {} s after it",
            after / 1000
        );
        assert!(!a.action.is_empty());
    };
    first_alert("crowd", crowd_at, &|a| {
        a.kind == AlertKind::Surge && a.subject_id == crowd_stop
    });
    first_alert("road closure", closure_at, &|a| {
        a.kind == AlertKind::Incident && a.subject_id == "INF-CLOSURE"
    });
    first_alert("power outage", outage_at, &|a| {
        a.kind == AlertKind::Incident && a.subject_id == "INF-OUTAGE"
    });
    let broke = broke_down_at.expect("the scripted breakdown happened");
    assert!(broke - breakdown_at <= minute, "the bus broke down late");
    first_alert("breakdown", broke, &|a| {
        a.kind == AlertKind::Breakdown && a.subject_id == bus_id
    });
}

fn city_incident(
    id: &str,
    kind: CityIncidentKind,
    at: streamcity_core::geo::LatLon,
    routes: Vec<Id>,
    now: i64,
) -> CityIncident {
    let suspension = kind == CityIncidentKind::PowerOutage;
    CityIncident {
        event_id: id.into(),
        category: kind.category(),
        kind,
        status: IncidentStatus::Active,
        severity: Severity::High,
        message: format!("Scripted {id}"),
        area: "Downtown".into(),
        lat: at.lat,
        lon: at.lon,
        radius_m: 300.0,
        affected_groups: Vec::new(),
        instructions: Vec::new(),
        cause: None,
        affected_customers: None,
        utility_company: None,
        transit_effect: if suspension {
            TransitEffect::Suspension
        } else {
            TransitEffect::Slowdown
        },
        speed_factor: (!suspension).then_some(0.2),
        affected_routes: routes,
        started_at: now,
        expires_at: None,
        estimated_restoration: Some(now + 20 * 60_000),
        timestamp: now,
    }
}

//! The simulation behaves like a city: deterministic, on its routes, at plausible
//! speeds, with riders who ride, and with delays and surges that have causes.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::{
    CityIncident, CityIncidentKind, Id, IncidentStatus, Severity, TrafficIncident,
    TrafficIncidentKind, TransitEffect, TransportMode, VehiclePosition, VehicleStatus,
};
use streamcity_network::geometry::segment_distance2;
use streamcity_network::{Network, SyntheticConfig, synthetic};
use streamcity_producers::arrivals::Gaps;
use streamcity_producers::sim::{CrowdEvent, SimEvent};
use streamcity_producers::{SimConfig, Simulation, civic};

/// 2025-11-23 at 12:00 UTC: midday, demand factor about 1.
const NOON: i64 = 1_763_899_200_000;

fn city(seed: u64) -> Arc<Network> {
    Arc::new(synthetic::generate(SyntheticConfig {
        seed,
        ..SyntheticConfig::default()
    }))
}

fn quiet(seed: u64) -> SimConfig {
    let mut c = SimConfig {
        seed,
        start_ms: NOON,
        ..SimConfig::default()
    };
    // No random incidents or breakdowns: tests add what they need.
    c.traffic.gaps = Gaps::rate(0.0);
    c.incidents.gaps = Gaps::rate(0.0);
    c.breakdowns_per_vehicle_hour = 0.0;
    c.dropouts_per_vehicle_hour = 0.0;
    c
}

fn run(sim: &mut Simulation, seconds: i64) -> Vec<SimEvent> {
    let mut out = Vec::new();
    for _ in 0..seconds * 1000 / sim.config().tick_ms {
        sim.step(&mut out);
    }
    out
}

fn positions(events: &[SimEvent]) -> impl Iterator<Item = &VehiclePosition> {
    events.iter().filter_map(|e| match e {
        SimEvent::Position(p) => Some(p),
        _ => None,
    })
}

#[test]
fn same_seed_same_events_other_seed_other_events() {
    let config = SimConfig {
        seed: 3,
        start_ms: NOON,
        ..SimConfig::default()
    };
    let a = run(&mut Simulation::new(city(3), config.clone()), 300);
    let b = run(&mut Simulation::new(city(3), config.clone()), 300);
    assert!(a.len() > 50_000, "{} events", a.len());
    assert_eq!(a, b);
    let c = run(
        &mut Simulation::new(city(4), SimConfig { seed: 4, ..config }),
        300,
    );
    assert_ne!(a, c);
}

#[test]
fn every_vehicle_reports_about_once_a_second() {
    let mut sim = Simulation::new(city(1), quiet(1));
    let fleet = sim.fleet_size();
    assert!(fleet >= 200);
    let events = run(&mut sim, 60);
    let mut per_vehicle: HashMap<&Id, usize> = HashMap::new();
    for p in positions(&events) {
        *per_vehicle.entry(&p.vehicle_id).or_default() += 1;
    }
    assert_eq!(per_vehicle.len(), fleet);
    assert!(
        per_vehicle.values().all(|&n| n == 60),
        "{:?}",
        per_vehicle.values().collect::<HashSet<_>>()
    );
}

#[test]
fn a_live_run_steps_in_small_ticks_that_spread_the_reports() {
    // About 10 ms of real time per tick, whatever the speed, up to the default tick.
    assert_eq!(SimConfig::live_tick_ms(1.0), 10);
    assert_eq!(SimConfig::live_tick_ms(0.5), 5);
    assert_eq!(SimConfig::live_tick_ms(10.0), 100);
    assert_eq!(SimConfig::live_tick_ms(600.0), SimConfig::default().tick_ms);
    assert_eq!(SimConfig::live_tick_ms(f64::NAN), 10);

    let config = SimConfig {
        tick_ms: SimConfig::live_tick_ms(1.0),
        ..quiet(1)
    };
    let mut sim = Simulation::new(city(1), config);
    let fleet = sim.fleet_size();
    let events = run(&mut sim, 20);
    let mut per_vehicle: HashMap<&Id, usize> = HashMap::new();
    let mut per_tick: HashMap<i64, usize> = HashMap::new();
    for p in positions(&events) {
        *per_vehicle.entry(&p.vehicle_id).or_default() += 1;
        *per_tick.entry(p.timestamp).or_default() += 1;
    }
    // Still once a second per vehicle...
    assert_eq!(per_vehicle.len(), fleet);
    assert!(per_vehicle.values().all(|&n| n == 20));
    // ...but spread over the second's 100 ticks, not in a few bursts.
    assert!(
        per_tick.len() >= 20 * 90,
        "{} ticks with reports",
        per_tick.len()
    );
    let busiest = per_tick.values().max().copied().unwrap_or(0);
    assert!(
        busiest * 20 <= fleet,
        "{busiest} of {fleet} vehicles in one tick"
    );
}

#[test]
fn the_report_interval_is_configurable() {
    let mut config = quiet(1);
    config.vehicles.gaps = Gaps::Uniform {
        min_s: 4.0,
        max_s: 6.0,
    };
    let mut sim = Simulation::new(city(1), config);
    let fleet = sim.fleet_size() as f64;
    let n = positions(&run(&mut sim, 600)).count() as f64;
    // One report per ~5 s per vehicle.
    assert!(
        (n / fleet - 120.0).abs() < 6.0,
        "{} reports per vehicle in 10 min",
        n / fleet
    );
}

#[test]
fn vehicles_stay_on_their_routes_at_plausible_speeds_and_within_capacity() {
    let city = city(2);
    let mut sim = Simulation::new(
        Arc::clone(&city),
        SimConfig {
            seed: 2,
            start_ms: NOON,
            ..SimConfig::default()
        },
    );
    let events = run(&mut sim, 900);
    let mut last: HashMap<Id, VehiclePosition> = HashMap::new();
    for p in positions(&events) {
        let route = city.route(&p.route_id).unwrap();
        let (x, y) = city.projection.to_xy(p.position());
        let off = route
            .path
            .xy
            .windows(2)
            .map(|w| segment_distance2((x, y), w[0], w[1]))
            .fold(f64::INFINITY, f64::min);
        assert!(
            off.sqrt() < 1.0,
            "{} is {} m off its route",
            p.vehicle_id,
            off.sqrt()
        );
        assert!(
            p.speed_mps as f64 <= route.cruise_mps + 0.05,
            "{} at {} m/s",
            p.vehicle_id,
            p.speed_mps
        );
        assert!(p.passengers <= p.capacity, "{} over capacity", p.vehicle_id);
        if let Some(prev) = last.get(&p.vehicle_id) {
            let dt = (p.timestamp - prev.timestamp) as f64 / 1000.0;
            let moved = distance_m(prev.position(), p.position());
            assert!(
                moved <= route.cruise_mps * dt + 1.0,
                "{} jumped {moved} m in {dt} s",
                p.vehicle_id
            );
            // Braking and acceleration stay within what a vehicle can do (a breakdown is
            // an emergency stop, the one exception).
            let accel = (p.speed_mps - prev.speed_mps) as f64 / dt;
            if p.status != VehicleStatus::BrokenDown {
                assert!(
                    (-1.6..=1.3).contains(&accel),
                    "{}: {accel} m/s² ({:?})",
                    p.vehicle_id,
                    p.status
                );
            }
        }
        last.insert(p.vehicle_id.clone(), p.clone());
    }
}

#[test]
fn riders_tap_on_ride_downstream_and_tap_off() {
    let city = city(5);
    let mut sim = Simulation::new(Arc::clone(&city), quiet(5));
    let events = run(&mut sim, 1_800);
    let mut boarded: HashMap<Id, (Id, usize)> = HashMap::new(); // card -> (route, stop position)
    let (mut ons, mut offs, mut matched) = (0, 0, 0);
    for e in &events {
        match e {
            SimEvent::TapOn(t) => {
                ons += 1;
                let route = city.route(t.route_id.as_deref().unwrap()).unwrap();
                let k = route
                    .stop_ids
                    .iter()
                    .position(|s| *s == t.stop_id)
                    .expect("tap-on at a stop of its line");
                boarded.insert(t.rider_id.clone(), (route.route_id.clone(), k));
            }
            SimEvent::TapOff(t) => {
                offs += 1;
                if let Some((route_id, k_on)) = boarded.remove(&t.rider_id) {
                    matched += 1;
                    assert_eq!(t.route_id.as_ref(), Some(&route_id));
                    let route = city.route(&route_id).unwrap();
                    let k_off = route.stop_ids.iter().position(|s| *s == t.stop_id).unwrap();
                    assert_ne!(k_off, k_on, "{} got off where it got on", t.rider_id);
                }
            }
            _ => {}
        }
    }
    assert!(ons > 10_000, "{ons} tap-ons in 30 minutes");
    assert!(
        offs > 5_000 && matched > 3_000,
        "{offs} tap-offs, {matched} matched to a tap-on"
    );
    assert!(sim.counts().boardings > 5_000);
}

#[test]
fn tap_ons_follow_the_configured_rate_and_time_of_day() {
    let count = |start_ms: i64| {
        let mut config = quiet(6);
        config.start_ms = start_ms;
        config.taps.gaps = Gaps::rate(20.0);
        let mut sim = Simulation::new(city(6), config);
        run(&mut sim, 600);
        sim.counts().tap_ons as f64
    };
    let noon = count(NOON);
    let expected = 20.0 * 600.0 * streamcity_producers::sim::demand_factor(12.1);
    assert!(
        (noon / expected - 1.0).abs() < 0.06,
        "{noon} tap-ons, expected about {expected}"
    );
    // The morning peak is much busier than the small hours.
    let peak = count(NOON - 4 * 3_600_000 + 15 * 60_000); // 08:15
    let night = count(NOON - 9 * 3_600_000); // 03:00
    assert!(
        peak > 2.0 * noon && noon > 3.0 * night,
        "peak {peak}, noon {noon}, night {night}"
    );
}

/// Mean delay of the route's vehicles over the last reports.
fn mean_delay(events: &[SimEvent], route: &str, since: i64) -> f64 {
    let delays: Vec<f64> = positions(events)
        .filter(|p| p.route_id == route && p.timestamp >= since)
        .map(|p| p.delay_s as f64)
        .collect();
    delays.iter().sum::<f64>() / delays.len().max(1) as f64
}

#[test]
fn an_incident_delays_the_vehicles_passing_through_it() {
    let city = city(7);
    let route = city
        .routes
        .iter()
        .find(|r| r.mode == TransportMode::Bus)
        .unwrap();
    let mut hint = 0;
    let (x, y, _) = route.path.point_at(route.length_m() / 2.0, &mut hint);
    let at = city.projection.to_latlon(x, y);
    let accident = TrafficIncident {
        incident_id: "TI-TEST".into(),
        kind: TrafficIncidentKind::Accident,
        status: IncidentStatus::Active,
        lat: at.lat,
        lon: at.lon,
        radius_m: 600.0,
        severity: Severity::High,
        speed_factor: 0.15,
        started_at: NOON,
        expected_end: NOON + 3_600_000,
        timestamp: NOON,
    };
    let mut without = Simulation::new(Arc::clone(&city), quiet(7));
    let mut with = Simulation::new(Arc::clone(&city), quiet(7));
    with.start_traffic(accident, &mut Vec::new());
    let (a, b) = (run(&mut without, 2_400), run(&mut with, 2_400));
    let since = NOON + 1_800_000;
    let (base, slowed) = (
        mean_delay(&a, &route.route_id, since),
        mean_delay(&b, &route.route_id, since),
    );
    assert!(
        slowed > base + 60.0,
        "mean delay {slowed:.0} s with the incident, {base:.0} s without"
    );
    // Lines that never pass through it are not affected.
    let far = city
        .routes
        .iter()
        .find(|r| {
            city.routes_near(x, y, 1_500.0)
                .iter()
                .all(|&i| city.routes[i].route_id != r.route_id)
        })
        .unwrap();
    let (fa, fb) = (
        mean_delay(&a, &far.route_id, since),
        mean_delay(&b, &far.route_id, since),
    );
    assert!(
        (fa - fb).abs() < 20.0,
        "{}: {fa:.0} s vs {fb:.0} s",
        far.route_id
    );
}

#[test]
fn a_crowd_event_makes_a_tap_surge_at_its_stop() {
    let city = city(8);
    let stop = city.stops[40].stop_id.clone();
    let mut config = quiet(8);
    config.crowds.push(CrowdEvent {
        stop_id: stop.clone(),
        start_ms: NOON + 600_000,
        duration_ms: 600_000,
        riders: 400,
    });
    let mut sim = Simulation::new(Arc::clone(&city), config);
    let events = run(&mut sim, 1_800);
    let taps_at = |from: i64, to: i64| {
        events
            .iter()
            .filter(|e| matches!(e, SimEvent::TapOn(t) if t.stop_id == stop && t.timestamp >= from && t.timestamp < to))
            .count()
    };
    let before = taps_at(NOON, NOON + 600_000);
    let during = taps_at(NOON + 600_000, NOON + 1_200_000);
    assert!(
        during >= before + 340,
        "{before} taps before, {during} during the crowd"
    );
    // Vehicles fill up and leave riders behind.
    assert!(sim.counts().left_behind > 0);
}

#[test]
fn a_power_outage_suspends_the_rail_line_through_it_until_restored() {
    let city = city(9);
    let rail = city
        .routes
        .iter()
        .find(|r| r.mode == TransportMode::Rail)
        .unwrap();
    let mut hint = 0;
    let (x, y, _) = rail.path.point_at(rail.length_m() / 2.0, &mut hint);
    let middle = city.projection.to_latlon(x, y);
    let outage = CityIncident {
        event_id: "INF-TEST".into(),
        category: CityIncidentKind::PowerOutage.category(),
        kind: CityIncidentKind::PowerOutage,
        status: IncidentStatus::Active,
        severity: Severity::High,
        message: "Power outage".into(),
        area: "Downtown".into(),
        lat: middle.lat,
        lon: middle.lon,
        radius_m: 1_000.0,
        affected_groups: Vec::new(),
        instructions: Vec::new(),
        cause: Some("Equipment failure".into()),
        affected_customers: Some(5_000),
        utility_company: Some("City Power & Light".into()),
        transit_effect: TransitEffect::Suspension,
        speed_factor: None,
        affected_routes: vec![rail.route_id.clone()],
        started_at: NOON,
        expires_at: None,
        estimated_restoration: Some(NOON + 1_200_000),
        timestamp: NOON,
    };
    let mut sim = Simulation::new(Arc::clone(&city), quiet(9));
    let mut out = Vec::new();
    sim.start_city_incident(outage, &mut out);
    assert!(matches!(&out[0], SimEvent::City(c) if c.status == IncidentStatus::Active));
    let during = run(&mut sim, 900);
    let last: HashMap<&Id, &VehiclePosition> = positions(&during)
        .filter(|p| p.route_id == rail.route_id)
        .map(|p| (&p.vehicle_id, p))
        .collect();
    assert!(!last.is_empty());
    assert!(
        last.values()
            .all(|p| p.status == VehicleStatus::Suspended && p.speed_mps == 0.0),
        "{:?}",
        last.values().map(|p| p.status).collect::<Vec<_>>()
    );
    // Other lines keep running.
    assert!(positions(&during).any(|p| p.route_id != rail.route_id && p.speed_mps > 5.0));
    // Restored after 20 minutes: the clearance is reported and the trains move again.
    let after = run(&mut sim, 600);
    assert!(
        after
            .iter()
            .any(|e| matches!(e, SimEvent::City(c) if c.status == IncidentStatus::Cleared))
    );
    assert!(
        positions(&after)
            .filter(|p| p.route_id == rail.route_id)
            .any(|p| p.speed_mps > 5.0)
    );
}

#[test]
fn city_incidents_have_the_seed_fields_and_kind_mix() {
    use rand::SeedableRng;
    let city = city(10);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
    let n = 4_000;
    let mut kinds: HashMap<CityIncidentKind, usize> = HashMap::new();
    for no in 0..n {
        let i = civic::generate(&mut rng, &city, NOON, no).expect("the city has districts");
        *kinds.entry(i.kind).or_default() += 1;
        assert!(city.districts.iter().any(|d| d.name == i.area));
        assert!(distance_m(LatLon::new(i.lat, i.lon), city.centre) < 12_000.0);
        match i.kind.category() {
            streamcity_core::CityIncidentCategory::Emergency => {
                assert!(
                    i.event_id.starts_with("EMG-")
                        && i.expires_at.is_some()
                        && !i.instructions.is_empty()
                );
            }
            streamcity_core::CityIncidentCategory::Infrastructure => {
                assert!(
                    i.event_id.starts_with("INF-")
                        && i.estimated_restoration.is_some()
                        && i.cause.is_some()
                );
            }
        }
        if i.kind == CityIncidentKind::PowerOutage {
            assert!(i.affected_customers.is_some() && i.utility_company.is_some());
        }
        if i.transit_effect != TransitEffect::None {
            assert!(!i.affected_routes.is_empty());
        }
    }
    for (kind, count) in kinds {
        let share = count as f64 / n as f64;
        assert!(
            (share - civic::kind_weight(kind)).abs() < 0.025,
            "{kind:?}: {share}"
        );
    }
}

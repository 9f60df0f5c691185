//! The wire format, fixed by golden files: each event type is encoded and compared with
//! `tests/golden/<name>.json`, and the file decodes back to the same value.
//!
//! To change the format on purpose, run with `UPDATE_GOLDEN=1` and review the diff.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use streamcity_core::*;

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    // Compare what goes on the wire (f32 fields print as their shortest f32 form).
    let encoded: serde_json::Value = serde_json::from_slice(&encode(value)).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(value).unwrap() + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        encoded,
        golden,
        "{name}: the encoding differs from {}",
        path.display()
    );
    let decoded: T = decode(text.as_bytes()).unwrap();
    assert_eq!(
        &decoded, value,
        "{name}: the golden file decodes to a different value"
    );
}

const T: TimestampMs = 1_763_884_800_000;

#[test]
fn vehicle_position() {
    check(
        "vehicle_position",
        &VehiclePosition {
            vehicle_id: "B07-012".into(),
            route_id: "B07".into(),
            trip_id: "B07-012-T0031".into(),
            timestamp: T,
            lat: 40.718121,
            lon: -74.001913,
            bearing: 87.5,
            speed_mps: 8.3,
            next_stop_id: "S0142".into(),
            passengers: 34,
            capacity: 80,
            occupancy_status: OccupancyStatus::FewSeatsAvailable,
            delay_s: 42,
            status: VehicleStatus::InTransitTo,
            start_date: None,
            start_time: None,
            boarded: None,
        },
    );
    // A vehicle running a GTFS feed's trip: its service day and start, as GTFS-realtime
    // names a trip.
    check(
        "vehicle_position_gtfs",
        &VehiclePosition {
            vehicle_id: "CNS2014-CNS_MUL-Weekday-00-4179907".into(),
            route_id: "141-423".into(),
            trip_id: "CNS2014-CNS_MUL-Weekday-00-4179907".into(),
            timestamp: 1_401_660_119_000,
            lat: -16.922242,
            lon: 145.779149,
            bearing: 49.9,
            speed_mps: 4.1,
            next_stop_id: "750449".into(),
            passengers: 22,
            capacity: 80,
            occupancy_status: OccupancyStatus::FewSeatsAvailable,
            delay_s: 3,
            status: VehicleStatus::InTransitTo,
            start_date: Some("20140602".into()),
            start_time: Some("07:25:00".into()),
            boarded: None,
        },
    );
}

#[test]
fn rider_tap() {
    check(
        "rider_tap",
        &RiderTap {
            rider_id: "C00012345".into(),
            stop_id: "S0142".into(),
            route_id: Some("B07".into()),
            timestamp: T,
        },
    );
    check(
        "rider_tap_without_route",
        &RiderTap {
            rider_id: "C7".into(),
            stop_id: "S0001".into(),
            route_id: None,
            timestamp: T,
        },
    );
}

#[test]
fn traffic_incident() {
    check(
        "traffic_incident",
        &TrafficIncident {
            incident_id: "TI-000017".into(),
            kind: TrafficIncidentKind::Accident,
            status: IncidentStatus::Active,
            lat: 40.7201,
            lon: -74.0102,
            radius_m: 250.0,
            severity: Severity::High,
            speed_factor: 0.3,
            started_at: T,
            expected_end: T + 1_800_000,
            timestamp: T,
        },
    );
}

#[test]
fn alert() {
    let mut evidence = serde_json::Map::new();
    evidence.insert("taps".into(), json!(57));
    evidence.insert("threshold".into(), json!(40));
    check(
        "alert_surge",
        &Alert {
            alert_id: "surge:S0142:1763884799000".into(),
            kind: AlertKind::Surge,
            state: AlertState::Raised,
            severity: Severity::High,
            subject_kind: SubjectKind::Stop,
            subject_id: "S0142".into(),
            lat: Some(40.7181),
            lon: Some(-74.0019),
            window_start: T - 240_000,
            window_end: T + 60_000,
            raised_at: T - 1_000,
            timestamp: T - 1_000,
            message: "Passenger surge at S0142: 57 taps in 5 min (threshold 40)".into(),
            action: "Send a vehicle to S0142 or add a short working.".into(),
            evidence,
            acknowledged: None,
            muted_until: None,
        },
    );
}

#[test]
fn dead_letter() {
    check(
        "dead_letter",
        &DeadLetter::of(
            "rider_tapped_on",
            Some(2),
            Some(1_204),
            b"S0142",
            b"not json",
            T,
            &streamcity_core::InvalidEvent::Malformed("expected value at line 1 column 1".into()),
        ),
    );
}

#[test]
fn enums_use_snake_case_names() {
    assert_eq!(
        serde_json::to_value(VehicleStatus::BrokenDown).unwrap(),
        json!("broken_down")
    );
    assert_eq!(
        serde_json::to_value(OccupancyStatus::CrushedStandingRoomOnly).unwrap(),
        json!("crushed_standing_room_only")
    );
    assert_eq!(
        serde_json::to_value(TransportMode::Rail).unwrap(),
        json!("rail")
    );
    assert!(decode::<VehicleStatus>(b"\"BROKEN_DOWN\"").is_err());
}

#[test]
fn city_incidents() {
    check(
        "city_incident_power_outage",
        &CityIncident {
            event_id: "INF-000007".into(),
            category: CityIncidentCategory::Infrastructure,
            kind: CityIncidentKind::PowerOutage,
            status: IncidentStatus::Active,
            severity: Severity::High,
            message: "Power outage in Eastside".into(),
            area: "Eastside".into(),
            lat: 40.7151,
            lon: -73.9534,
            radius_m: 1200.0,
            affected_groups: Vec::new(),
            instructions: Vec::new(),
            cause: Some("Equipment failure".into()),
            affected_customers: Some(5000),
            utility_company: Some("City Power & Light".into()),
            transit_effect: TransitEffect::Suspension,
            speed_factor: None,
            affected_routes: vec!["R1".into()],
            started_at: T,
            expires_at: None,
            estimated_restoration: Some(T + 14_400_000),
            timestamp: T,
        },
    );
    check(
        "city_incident_weather_alert",
        &CityIncident {
            event_id: "EMG-000012".into(),
            category: CityIncidentCategory::Emergency,
            kind: CityIncidentKind::WeatherAlert,
            status: IncidentStatus::Active,
            severity: Severity::High,
            message: "Severe thunderstorm warning in effect".into(),
            area: "Downtown".into(),
            lat: 40.7128,
            lon: -74.006,
            radius_m: 3750.0,
            affected_groups: vec!["general public".into(), "commuters".into()],
            instructions: vec!["Stay indoors".into(), "Monitor news".into()],
            cause: None,
            affected_customers: None,
            utility_company: None,
            transit_effect: TransitEffect::Slowdown,
            speed_factor: Some(0.75),
            affected_routes: vec!["B01".into(), "B04".into()],
            started_at: T,
            expires_at: Some(T + 21_600_000),
            estimated_restoration: None,
            timestamp: T,
        },
    );
}

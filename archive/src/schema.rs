//! The columns of each topic's Parquet files, typed from the event types of
//! `streamcity-core` (a test checks that every field an event writes has its column).
//!
//! Every file starts with the record's place and metadata: `_partition`, `_offset`,
//! `_key` and `_timestamp` (the record's event time). The event's fields follow, each
//! nullable (optional fields, tombstones). Two columns end every file so that nothing
//! is lost: `_extra`, the fields of a payload that have no column (or not of the
//! column's type), as a JSON object; `_raw`, the payload itself when it is not a JSON
//! object (a tombstone's empty payload, a hostile record, the topics kept as received:
//! `late_events` and `network`).

use streamcity_core::Topics;

/// How a field is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text (UTF-8): ids, names, enumerations.
    Text,
    /// A whole number (64 bits).
    Int,
    /// A floating-point number (64 bits).
    Real,
    /// Milliseconds since the epoch, as a Parquet UTC timestamp.
    Time,
    /// An object or a list, as JSON text (Parquet's JSON type).
    Json,
}

impl Kind {
    /// Its Parquet type in a message type's syntax.
    pub fn parquet(self) -> &'static str {
        match self {
            Kind::Text => "BYTE_ARRAY",
            Kind::Int => "INT64",
            Kind::Real => "DOUBLE",
            Kind::Time => "INT64",
            Kind::Json => "BYTE_ARRAY",
        }
    }

    /// Its logical type annotation, if any.
    pub fn annotation(self) -> &'static str {
        match self {
            Kind::Text => " (STRING)",
            Kind::Time => " (TIMESTAMP(MILLIS,true))",
            Kind::Json => " (JSON)",
            Kind::Int | Kind::Real => "",
        }
    }
}

/// One field of an event, and its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Its name in the event's JSON and in the files.
    pub name: &'static str,
    /// How it is stored.
    pub kind: Kind,
}

const fn f(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

use Kind::{Int, Json, Real, Text, Time};

/// [`streamcity_core::VehiclePosition`]: `vehicle_locations` and `live_vehicle_table`.
pub const VEHICLE_POSITION: &[Field] = &[
    f("vehicle_id", Text),
    f("route_id", Text),
    f("trip_id", Text),
    f("timestamp", Time),
    f("lat", Real),
    f("lon", Real),
    f("bearing", Real),
    f("speed_mps", Real),
    f("next_stop_id", Text),
    f("passengers", Int),
    f("capacity", Int),
    f("occupancy_status", Text),
    f("delay_s", Int),
    f("status", Text),
    f("start_date", Text),
    f("start_time", Text),
    f("boarded", Int),
];

/// [`streamcity_core::RiderTap`]: `rider_tapped_on` and `rider_tapped_off`.
pub const RIDER_TAP: &[Field] = &[
    f("rider_id", Text),
    f("stop_id", Text),
    f("route_id", Text),
    f("timestamp", Time),
];

/// [`streamcity_core::TrafficIncident`]: `traffic_incidents`.
pub const TRAFFIC_INCIDENT: &[Field] = &[
    f("incident_id", Text),
    f("kind", Text),
    f("status", Text),
    f("lat", Real),
    f("lon", Real),
    f("radius_m", Real),
    f("severity", Text),
    f("speed_factor", Real),
    f("started_at", Time),
    f("expected_end", Time),
    f("timestamp", Time),
];

/// [`streamcity_core::CityIncident`]: `city_incidents`.
pub const CITY_INCIDENT: &[Field] = &[
    f("event_id", Text),
    f("category", Text),
    f("type", Text),
    f("status", Text),
    f("severity", Text),
    f("message", Text),
    f("area", Text),
    f("lat", Real),
    f("lon", Real),
    f("radius_m", Real),
    f("affected_groups", Json),
    f("instructions", Json),
    f("cause", Text),
    f("affected_customers", Int),
    f("utility_company", Text),
    f("transit_effect", Text),
    f("speed_factor", Real),
    f("affected_routes", Json),
    f("started_at", Time),
    f("expires_at", Time),
    f("estimated_restoration", Time),
    f("timestamp", Time),
];

/// [`streamcity_core::Alert`]: `alerts` and `surge_alerts`.
pub const ALERT: &[Field] = &[
    f("alert_id", Text),
    f("kind", Text),
    f("state", Text),
    f("severity", Text),
    f("subject_kind", Text),
    f("subject_id", Text),
    f("lat", Real),
    f("lon", Real),
    f("window_start", Time),
    f("window_end", Time),
    f("raised_at", Time),
    f("timestamp", Time),
    f("message", Text),
    f("action", Text),
    f("evidence", Json),
    f("acknowledged", Json),
    f("muted_until", Time),
];

/// [`streamcity_core::DeadLetter`]: `dead_letters`.
pub const DEAD_LETTER: &[Field] = &[
    f("source_topic", Text),
    f("partition", Int),
    f("offset", Int),
    f("key", Text),
    f("reason", Text),
    f("error", Text),
    f("payload", Text),
    f("payload_bytes", Int),
    f("payload_hash", Text),
    f("timestamp", Time),
];

/// [`streamcity_core::AlertAction`]: `alert_actions`.
pub const ALERT_ACTION: &[Field] = &[
    f("action", Text),
    f("alert_id", Text),
    f("scope", Text),
    f("value", Text),
    f("until", Time),
    f("by", Text),
    f("at", Time),
];

/// The topics kept as received, in `_raw` alone: `late_events` (records of any input
/// topic) and `network` (reference data).
pub const RAW: &[Field] = &[];

/// The event fields of `topic`'s files (empty for a topic kept as received).
pub fn fields(topics: &Topics, topic: &str) -> &'static [Field] {
    let is = |t: &std::sync::Arc<str>| &**t == topic;
    if is(&topics.vehicle_locations) || is(&topics.live_vehicle_table) {
        VEHICLE_POSITION
    } else if is(&topics.rider_tapped_on) || is(&topics.rider_tapped_off) {
        RIDER_TAP
    } else if is(&topics.traffic_incidents) {
        TRAFFIC_INCIDENT
    } else if is(&topics.city_incidents) {
        CITY_INCIDENT
    } else if is(&topics.alerts) || is(&topics.surge_alerts) {
        ALERT
    } else if is(&topics.dead_letters) {
        DEAD_LETTER
    } else if is(&topics.alert_actions) {
        ALERT_ACTION
    } else {
        RAW
    }
}

/// The Parquet message type of a file holding `fields`.
pub fn message_type(topic: &str, fields: &[Field]) -> String {
    let mut s = String::from("message ");
    s.push_str(&sanitise(topic));
    s.push_str(" {\n  REQUIRED INT32 _partition;\n  REQUIRED INT64 _offset;\n");
    s.push_str("  REQUIRED BYTE_ARRAY _key (STRING);\n");
    s.push_str("  REQUIRED INT64 _timestamp (TIMESTAMP(MILLIS,true));\n");
    for field in fields {
        s.push_str(&format!(
            "  OPTIONAL {} {}{};\n",
            field.kind.parquet(),
            field.name,
            field.kind.annotation()
        ));
    }
    s.push_str("  OPTIONAL BYTE_ARRAY _extra (JSON);\n  OPTIONAL BYTE_ARRAY _raw;\n}\n");
    s
}

/// A topic name as a schema name (letters, digits and `_`).
fn sanitise(topic: &str) -> String {
    let s: String = topic
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() { "records".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use streamcity_core::{
        Acknowledgement, Alert, AlertAction, AlertKind, AlertState, CityIncident,
        CityIncidentCategory, CityIncidentKind, DeadLetter, IncidentStatus, InvalidEvent,
        MuteScope, OccupancyStatus, RiderTap, Severity, SubjectKind, TrafficIncident,
        TrafficIncidentKind, TransitEffect, VehiclePosition, VehicleStatus,
    };

    /// Every field `event` writes, with every optional field set, has its column.
    fn covers<T: Serialize>(event: &T, fields: &[Field]) {
        let value = serde_json::to_value(event).expect("events serialise");
        let object = value.as_object().expect("events are JSON objects");
        for name in object.keys() {
            assert!(
                fields.iter().any(|f| f.name == name),
                "field {name} has no column in {fields:?}"
            );
        }
        assert_eq!(
            object.len(),
            fields.len(),
            "a column names no field: {object:?}"
        );
    }

    #[test]
    fn every_field_of_every_event_has_its_column() {
        covers(
            &VehiclePosition {
                vehicle_id: "B01-001".into(),
                route_id: "B01".into(),
                trip_id: "T1".into(),
                timestamp: 1,
                lat: 1.0,
                lon: 2.0,
                bearing: 3.0,
                speed_mps: 4.0,
                next_stop_id: "S1".into(),
                passengers: 5,
                capacity: 6,
                occupancy_status: OccupancyStatus::Empty,
                delay_s: 7,
                status: VehicleStatus::StoppedAt,
                start_date: Some("20260101".into()),
                start_time: Some("08:00:00".into()),
                boarded: Some(3),
            },
            VEHICLE_POSITION,
        );
        covers(
            &RiderTap {
                rider_id: "C1".into(),
                stop_id: "S1".into(),
                route_id: Some("B01".into()),
                timestamp: 1,
            },
            RIDER_TAP,
        );
        covers(
            &TrafficIncident {
                incident_id: "TI-1".into(),
                kind: TrafficIncidentKind::Accident,
                status: IncidentStatus::Active,
                lat: 1.0,
                lon: 2.0,
                radius_m: 3.0,
                severity: Severity::High,
                speed_factor: 0.5,
                started_at: 1,
                expected_end: 2,
                timestamp: 1,
            },
            TRAFFIC_INCIDENT,
        );
        covers(
            &CityIncident {
                event_id: "INF-1".into(),
                category: CityIncidentCategory::Infrastructure,
                kind: CityIncidentKind::PowerOutage,
                status: IncidentStatus::Active,
                severity: Severity::High,
                message: "m".into(),
                area: "a".into(),
                lat: 1.0,
                lon: 2.0,
                radius_m: 3.0,
                affected_groups: vec!["g".into()],
                instructions: vec!["i".into()],
                cause: Some("c".into()),
                affected_customers: Some(4),
                utility_company: Some("u".into()),
                transit_effect: TransitEffect::Suspension,
                speed_factor: Some(0.5),
                affected_routes: vec!["B01".into()],
                started_at: 1,
                expires_at: Some(2),
                estimated_restoration: Some(3),
                timestamp: 1,
            },
            CITY_INCIDENT,
        );
        let mut evidence = serde_json::Map::new();
        evidence.insert("taps".into(), 3.into());
        covers(
            &Alert {
                alert_id: "a".into(),
                kind: AlertKind::Surge,
                state: AlertState::Raised,
                severity: Severity::High,
                subject_kind: SubjectKind::Stop,
                subject_id: "S1".into(),
                lat: Some(1.0),
                lon: Some(2.0),
                window_start: 1,
                window_end: 2,
                raised_at: 1,
                timestamp: 2,
                message: "m".into(),
                action: "act".into(),
                evidence,
                acknowledged: Some(Acknowledgement {
                    by: "me".into(),
                    at: 3,
                }),
                muted_until: Some(4),
            },
            ALERT,
        );
        covers(
            &DeadLetter::of(
                "t",
                Some(1),
                Some(2),
                b"k",
                b"p",
                3,
                &InvalidEvent::Malformed("bad".into()),
            ),
            DEAD_LETTER,
        );
        // The two kinds of action between them write every column.
        let ack = serde_json::to_value(AlertAction::Ack {
            alert_id: "a".into(),
            ack: Acknowledgement {
                by: "me".into(),
                at: 1,
            },
        })
        .expect("serialises");
        let mute = serde_json::to_value(AlertAction::Mute {
            scope: MuteScope::Line("B01".into()),
            until: 2,
            by: "me".into(),
            at: 1,
        })
        .expect("serialises");
        let mut names: Vec<&str> = ack
            .as_object()
            .into_iter()
            .chain(mute.as_object())
            .flat_map(|o| o.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut columns: Vec<&str> = ALERT_ACTION.iter().map(|f| f.name).collect();
        columns.sort_unstable();
        assert_eq!(names, columns);
    }

    #[test]
    fn each_topic_has_its_columns_and_the_message_type_parses() {
        let topics = Topics::with_prefix("x.");
        assert_eq!(fields(&topics, "x.vehicle_locations"), VEHICLE_POSITION);
        assert_eq!(fields(&topics, "x.live_vehicle_table"), VEHICLE_POSITION);
        assert_eq!(fields(&topics, "x.surge_alerts"), ALERT);
        assert_eq!(fields(&topics, "x.network"), RAW);
        assert_eq!(fields(&topics, "vehicle_locations"), RAW, "another prefix");
        for topic in topics.all() {
            let schema = message_type(topic, fields(&topics, topic));
            parquet::schema::parser::parse_message_type(&schema)
                .unwrap_or_else(|e| panic!("{topic}: {e}\n{schema}"));
        }
    }
}

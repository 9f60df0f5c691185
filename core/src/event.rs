//! The events that flow between the stages, and their JSON wire format.
//!
//! The wire format is fixed by golden fixtures (`core/tests/golden/`): every field here
//! is part of the contract that Kafka consumers and `/ws` clients rely on. Times are
//! milliseconds since the Unix epoch (UTC); distances are metres; speeds are metres per
//! second; angles are degrees.

use std::cell::RefCell;

use compact_str::CompactString;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::geo::LatLon;

/// Identifiers (vehicles, stops, routes, trips, incidents, alerts). Short ids are
/// stored inline, so decoding and cloning them does not allocate.
pub type Id = CompactString;

/// Milliseconds since the Unix epoch, UTC.
pub type TimestampMs = i64;

/// What a vehicle is doing, after GTFS-realtime's `VehicleStopStatus`, plus the
/// operational states a twin needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VehicleStatus {
    /// Moving towards `next_stop_id`.
    InTransitTo,
    /// Standing at `next_stop_id` with doors open.
    StoppedAt,
    /// Waiting at a terminus before its next trip.
    Layover,
    /// Broken down: stopped, not carrying anyone further until repaired.
    BrokenDown,
    /// Held by a service suspension (e.g. a power outage on its line).
    Suspended,
    /// Its work for the day is done and it leaves the road: its last report. The
    /// processor removes it from the live table (a tombstone) and ends its alerts.
    OutOfService,
}

impl VehicleStatus {
    /// Every status, in declaration order: the one list the API, its documentation and
    /// the page take them from.
    pub const ALL: [VehicleStatus; 6] = [
        VehicleStatus::InTransitTo,
        VehicleStatus::StoppedAt,
        VehicleStatus::Layover,
        VehicleStatus::BrokenDown,
        VehicleStatus::Suspended,
        VehicleStatus::OutOfService,
    ];
}

/// How full a vehicle is, after GTFS-realtime's `OccupancyStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OccupancyStatus {
    /// No passengers.
    Empty,
    /// Under half of the seats taken.
    ManySeatsAvailable,
    /// Most seats taken.
    FewSeatsAvailable,
    /// All seats taken, standing room left.
    StandingRoomOnly,
    /// Standing room nearly gone.
    CrushedStandingRoomOnly,
    /// At capacity.
    Full,
}

impl OccupancyStatus {
    /// The status for `passengers` aboard a vehicle with `capacity` places
    /// (seats are taken to be half of the places).
    pub fn from_load(passengers: u32, capacity: u32) -> Self {
        if passengers == 0 {
            return OccupancyStatus::Empty;
        }
        let share = passengers as f64 / capacity.max(1) as f64;
        match share {
            s if s >= 1.0 => OccupancyStatus::Full,
            s if s >= 0.9 => OccupancyStatus::CrushedStandingRoomOnly,
            s if s >= 0.5 => OccupancyStatus::StandingRoomOnly,
            s if s >= 0.25 => OccupancyStatus::FewSeatsAvailable,
            _ => OccupancyStatus::ManySeatsAvailable,
        }
    }
}

/// The kind of vehicle a route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportMode {
    /// A bus in street traffic.
    Bus,
    /// A tram or light rail, partly in street traffic.
    Tram,
    /// Rail on its own right of way (suburban, regional).
    Rail,
    /// A metro or subway: rail on its own right of way, frequent, short dwells.
    Subway,
    /// A ferry or water bus.
    Ferry,
    /// Hauled by a cable: a cable tram, an aerial lift, a funicular.
    Cable,
}

impl TransportMode {
    /// Whether street traffic (jams, road closures) slows it.
    pub fn in_street_traffic(self) -> bool {
        matches!(self, TransportMode::Bus | TransportMode::Tram)
    }

    /// Whether it runs on electric rail a power cut stops.
    pub fn is_rail(self) -> bool {
        matches!(self, TransportMode::Rail | TransportMode::Subway)
    }
}

/// A vehicle's position report, about once a second per vehicle.
///
/// Topic `vehicle_locations`, key `vehicle_id`. The live vehicle table's rows
/// (`live_vehicle_table`) have the same shape: the latest report per vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehiclePosition {
    /// The vehicle, e.g. `"B07-012"`.
    pub vehicle_id: Id,
    /// The route it serves, e.g. `"B07"`.
    pub route_id: Id,
    /// The trip it is running, e.g. `"B07-012-T0031"`.
    pub trip_id: Id,
    /// When the position was measured (event time), ms since the epoch.
    pub timestamp: TimestampMs,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Heading, degrees clockwise from north, `[0, 360)`.
    pub bearing: f32,
    /// Speed over ground, metres per second.
    pub speed_mps: f32,
    /// The next stop it will serve (or is standing at), e.g. `"S0142"`.
    pub next_stop_id: Id,
    /// Passengers aboard.
    pub passengers: u32,
    /// Places aboard, seated and standing.
    pub capacity: u32,
    /// How full it is, GTFS-realtime style.
    pub occupancy_status: OccupancyStatus,
    /// Deviation from the timetable in seconds: positive is late, negative early.
    pub delay_s: i32,
    /// What it is doing.
    pub status: VehicleStatus,
    /// The service day its trip belongs to, `YYYYMMDD` (GTFS-realtime's `start_date`):
    /// with a timetable, a trip after midnight may belong to the day before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<Id>,
    /// When its trip leaves its first stop by the timetable, `HH:MM:SS` of the service
    /// day (past `24:00:00` after midnight; GTFS-realtime's `start_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Id>,
    /// Riders who boarded at the stop it is standing at, from its passenger counters:
    /// on its reports while it stands there (`stopped_at`), when it counts them. What
    /// takes riders off a stop's waiting count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boarded: Option<u32>,
}

impl VehiclePosition {
    /// How many riders boarded at the stop it stands at since its report `previous`:
    /// from its passenger counters (`boarded`, each call at a stop counted once), or,
    /// for a vehicle without them, the rise in passengers aboard (a lower bound: some
    /// may have got off meanwhile). Zero unless it is standing at a stop.
    pub fn boarded_since(&self, previous: Option<&VehiclePosition>) -> u32 {
        if self.status != VehicleStatus::StoppedAt {
            return 0;
        }
        let same_call = previous.filter(|q| {
            q.status == VehicleStatus::StoppedAt
                && q.next_stop_id == self.next_stop_id
                && q.trip_id == self.trip_id
        });
        match self.boarded {
            Some(n) => n.saturating_sub(same_call.and_then(|q| q.boarded).unwrap_or(0)),
            None => previous.map_or(0, |q| self.passengers.saturating_sub(q.passengers)),
        }
    }

    /// Its position as a point.
    pub fn position(&self) -> LatLon {
        LatLon::new(self.lat, self.lon)
    }
}

/// A rider tapping a card on (topic `rider_tapped_on`) or off (topic
/// `rider_tapped_off`) at a stop; key `stop_id`. The same card taps on at one stop and
/// off at a later stop of the same line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiderTap {
    /// The (anonymised) card, e.g. `"C00012345"`.
    pub rider_id: Id,
    /// Where the rider tapped on, e.g. `"S0142"`.
    pub stop_id: Id,
    /// The line the rider is waiting for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_id: Option<Id>,
    /// When the tap happened (event time), ms since the epoch.
    pub timestamp: TimestampMs,
}

/// The kind of a traffic incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficIncidentKind {
    /// A collision blocking lanes.
    Accident,
    /// Planned works narrowing the road.
    Roadworks,
    /// Heavy traffic.
    Congestion,
}

/// Whether an incident is still in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// In force: vehicles inside its radius are slowed.
    Active,
    /// Over: this record ends it.
    Cleared,
}

/// A traffic incident, reported when it starts and again when it clears.
///
/// Topic `traffic_incidents`, key `incident_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficIncident {
    /// The incident, e.g. `"TI-000017"`.
    pub incident_id: Id,
    /// What happened.
    pub kind: TrafficIncidentKind,
    /// Whether it is in force (`active`) or over (`cleared`).
    pub status: IncidentStatus,
    /// Centre latitude, degrees.
    pub lat: f64,
    /// Centre longitude, degrees.
    pub lon: f64,
    /// Radius of the affected area, metres.
    pub radius_m: f64,
    /// How bad it is.
    pub severity: Severity,
    /// Factor applied to the speed of vehicles inside the area, `(0, 1]`.
    pub speed_factor: f64,
    /// When it started, ms since the epoch.
    pub started_at: TimestampMs,
    /// When it is expected to clear, ms since the epoch.
    pub expected_end: TimestampMs,
    /// When this report was made (event time), ms since the epoch.
    pub timestamp: TimestampMs,
}

/// Severity, with the CivicSense seed's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Low,
    /// Noticeable effect.
    Moderate,
    /// Serious effect; act soon.
    High,
    /// Act now.
    Critical,
}

/// The CivicSense seed's two families of city incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CityIncidentCategory {
    /// Emergencies: weather, fire, public safety, health.
    Emergency,
    /// Infrastructure: power, water, roads.
    Infrastructure,
}

/// What kind of city incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CityIncidentKind {
    /// Severe weather warning (storm, flood, heat).
    WeatherAlert,
    /// A fire, with its cordon.
    Fire,
    /// A public safety event (police operation, evacuation).
    PublicSafety,
    /// A public health advisory.
    HealthAdvisory,
    /// Power outage: rail lines through the area are suspended.
    PowerOutage,
    /// Water advisory (boil notice, main break).
    WaterAdvisory,
    /// Road closure: street lines through the area detour, slowly.
    RoadClosure,
}

impl CityIncidentKind {
    /// Emergency or infrastructure.
    pub fn category(self) -> CityIncidentCategory {
        match self {
            CityIncidentKind::WeatherAlert
            | CityIncidentKind::Fire
            | CityIncidentKind::PublicSafety
            | CityIncidentKind::HealthAdvisory => CityIncidentCategory::Emergency,
            _ => CityIncidentCategory::Infrastructure,
        }
    }
}

/// How a city incident affects transit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitEffect {
    /// No effect on service.
    None,
    /// Vehicles in the area run slower (`speed_factor`): detours, cordons, weather.
    Slowdown,
    /// Service on `affected_routes` is suspended: vehicles hold at their next stop.
    Suspension,
}

/// A city incident, after the CivicSense seed's emergency and infrastructure events,
/// reported when it starts and again when it is cleared.
///
/// Topic `city_incidents`, key `event_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CityIncident {
    /// The incident, e.g. `"EMG-000012"` (emergency) or `"INF-000007"` (infrastructure).
    pub event_id: Id,
    /// Emergency or infrastructure.
    pub category: CityIncidentCategory,
    /// What happened, e.g. `power_outage`.
    #[serde(rename = "type")]
    pub kind: CityIncidentKind,
    /// In force (`active`) or over (`cleared`).
    pub status: IncidentStatus,
    /// How bad it is.
    pub severity: Severity,
    /// A one-line description for people.
    pub message: String,
    /// The district affected, e.g. `"Eastside"`.
    pub area: String,
    /// Centre latitude, degrees.
    pub lat: f64,
    /// Centre longitude, degrees.
    pub lon: f64,
    /// Radius of the affected area, metres.
    pub radius_m: f64,
    /// Who is affected (emergencies), e.g. `["general public", "commuters"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affected_groups: Vec<String>,
    /// What people should do (emergencies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instructions: Vec<String>,
    /// The cause (infrastructure), e.g. `"Equipment failure"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Customers without service (power and water).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_customers: Option<u32>,
    /// The utility responsible (power and water).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utility_company: Option<String>,
    /// What it does to transit.
    pub transit_effect: TransitEffect,
    /// Speed factor inside the area for a slowdown, `(0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_factor: Option<f64>,
    /// Lines affected (slowed or suspended).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affected_routes: Vec<Id>,
    /// When it started, ms since the epoch.
    pub started_at: TimestampMs,
    /// When an emergency expires, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<TimestampMs>,
    /// When infrastructure service is expected back, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_restoration: Option<TimestampMs>,
    /// When this report was made (event time), ms since the epoch.
    pub timestamp: TimestampMs,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Far more riders tapping on at a stop than usual.
    Surge,
    /// A vehicle running well behind its timetable.
    Delay,
    /// A vehicle broken down, stranded or out of contact.
    Breakdown,
    /// Vehicles of one line running too close together.
    Bunching,
    /// Vehicles of one line running too far apart.
    Gapping,
    /// A vehicle fuller than it should be.
    Crowding,
    /// A traffic or city incident affecting service.
    Incident,
}

impl AlertKind {
    /// Every kind, in declaration order: the one list the API, its documentation and
    /// the page take them from.
    pub const ALL: [AlertKind; 7] = [
        AlertKind::Surge,
        AlertKind::Delay,
        AlertKind::Breakdown,
        AlertKind::Bunching,
        AlertKind::Gapping,
        AlertKind::Crowding,
        AlertKind::Incident,
    ];
}

/// An alert's transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition began; the alert is active.
    Raised,
    /// The alert is still active and what it says changed (a grouped alert's vehicles,
    /// its severity): replaces the alert of the same id.
    Updated,
    /// The condition ended; the alert is no longer active.
    Cleared,
}

/// What an alert is about: a stop, a vehicle, a route or an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A stop; the subject id is a stop id.
    Stop,
    /// A vehicle; the subject id is a vehicle id.
    Vehicle,
    /// A route; the subject id is a route id.
    Route,
    /// An incident; the subject id is an incident id.
    Incident,
}

/// An alert raised (or cleared) by a detector.
///
/// Topic `alerts`, key `alert_id`; surge alerts also go to `surge_alerts`, keyed by stop id.
/// An alert is raised once and later cleared once, both records with the same
/// `alert_id`; in between, `updated` records replace it when what it says changes (the
/// vehicles a grouped alert covers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id of this alert, the same in its `raised` and `cleared` records,
    /// e.g. `"surge:S0142:1700000040000"`.
    pub alert_id: Id,
    /// What it is about.
    pub kind: AlertKind,
    /// This record's transition.
    pub state: AlertState,
    /// How bad it is.
    pub severity: Severity,
    /// The kind of thing it is about.
    pub subject_kind: SubjectKind,
    /// The id of the thing it is about (a stop, vehicle, route or incident id).
    pub subject_id: Id,
    /// Where it is, when it has a place (for "locate on the map").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    /// Where it is, when it has a place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    /// Start of the window (inclusive) or time span the evidence covers, ms since the epoch.
    pub window_start: TimestampMs,
    /// End of the window (exclusive) or time span the evidence covers, ms since the epoch.
    pub window_end: TimestampMs,
    /// When the alert was first raised (event time), ms since the epoch.
    pub raised_at: TimestampMs,
    /// When this record was made (event time), ms since the epoch.
    pub timestamp: TimestampMs,
    /// A one-line description for people.
    pub message: String,
    /// What an operator can do about it, in a short sentence (empty on records from
    /// before it was given).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    /// The numbers behind it, e.g. `{"taps": 57, "threshold": 40}`.
    pub evidence: serde_json::Map<String, serde_json::Value>,
    /// Who acknowledged it, and when: added by the dashboards from the
    /// `alert_actions` topic, never by the processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledgement>,
    /// Until when a mute of its line or kind silences it (ms since the epoch): added by
    /// the dashboards, never by the processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<TimestampMs>,
}

/// An operator's acknowledgement of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// Who, as they gave it (e.g. `"control room 2"`).
    pub by: String,
    /// When, ms since the epoch (wall clock of the dashboard that took it).
    pub at: TimestampMs,
}

/// What alerts a mute silences: those of one line, or of one kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "value")]
pub enum MuteScope {
    /// Alerts about a line (a route id): its own, its vehicles', incidents touching it.
    Line(Id),
    /// Alerts of one kind.
    Kind(AlertKind),
}

impl MuteScope {
    /// The scope as a record key, e.g. `mute/line/B07` or `mute/kind/bunching`.
    pub fn key(&self) -> String {
        match self {
            MuteScope::Line(route) => format!("mute/line/{route}"),
            MuteScope::Kind(kind) => format!("mute/kind/{}", wire_name(kind)),
        }
    }

    /// Whether it covers `alert`.
    pub fn covers(&self, alert: &Alert) -> bool {
        match self {
            MuteScope::Kind(kind) => alert.kind == *kind,
            MuteScope::Line(route) => alert.lines().any(|l| l == route.as_str()),
        }
    }
}

/// An operator's action on alerts, shared by every dashboard through the compacted
/// `alert_actions` topic: key `ack/<alert_id>` for an acknowledgement, the scope's
/// [`MuteScope::key`] for a mute (a mute with `until` in the past lifts it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum AlertAction {
    /// An alert acknowledged.
    Ack {
        /// The alert.
        alert_id: Id,
        /// Who and when.
        #[serde(flatten)]
        ack: Acknowledgement,
    },
    /// Alerts of a line or kind silenced until a time.
    Mute {
        /// What it silences.
        #[serde(flatten)]
        scope: MuteScope,
        /// Until when, ms since the epoch (in the past: lifted).
        until: TimestampMs,
        /// Who set it.
        by: String,
        /// When, ms since the epoch.
        at: TimestampMs,
    },
}

impl AlertAction {
    /// Its record key on `alert_actions`.
    pub fn key(&self) -> String {
        match self {
            AlertAction::Ack { alert_id, .. } => format!("ack/{alert_id}"),
            AlertAction::Mute { scope, .. } => scope.key(),
        }
    }
}

impl Validate for AlertAction {
    fn event_time(&self) -> TimestampMs {
        match self {
            AlertAction::Ack { ack, .. } => ack.at,
            AlertAction::Mute { at, .. } => *at,
        }
    }

    fn validate(&self) -> Result<(), InvalidEvent> {
        check_ts(self.event_time())?;
        let (id, by) = match self {
            AlertAction::Ack { alert_id, ack } => (alert_id.as_str(), ack.by.as_str()),
            AlertAction::Mute {
                scope: MuteScope::Line(route),
                by,
                ..
            } => (route.as_str(), by.as_str()),
            AlertAction::Mute { by, .. } => ("kind", by.as_str()),
        };
        if id.is_empty() || id.len() > 200 || by.len() > 100 {
            return Err(InvalidEvent::Field(
                "an action names its alert or line (at most 200 bytes) and who took it (at most 100)",
            ));
        }
        Ok(())
    }
}

impl Alert {
    /// The lines it is about: its route, or its vehicle's (`route_id` in its
    /// evidence), or those an incident touches (`lines`).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        let own = (self.subject_kind == SubjectKind::Route).then_some(self.subject_id.as_str());
        let vehicle = self.evidence.get("route_id").and_then(|v| v.as_str());
        let touched = self
            .evidence
            .get("lines")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str());
        own.into_iter().chain(vehicle).chain(touched)
    }
}

/// A record that could not be processed, set aside on the `dead_letters` topic with
/// the reason, so that nothing vanishes silently. Bounded whatever the record: it
/// carries an excerpt of the payload (at most [`DeadLetter::EXCERPT_BYTES`]) with the
/// payload's size and hash, and where it was (topic, partition, offset), so that the
/// record itself can be found and fetched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The topic the record came from.
    pub source_topic: String,
    /// The partition it was in, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Its offset in that partition, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// Its key, as text (lossy if the key was not UTF-8; an excerpt if long).
    pub key: String,
    /// Why it was set aside, in a word (one of [`InvalidEvent::REASONS`]: `malformed`,
    /// `too_large`...), for counting and filtering.
    #[serde(default)]
    pub reason: String,
    /// Why it was set aside, in full (an excerpt if long).
    pub error: String,
    /// The payload as received, as text (lossy if it was not UTF-8): the whole of it up
    /// to [`DeadLetter::EXCERPT_BYTES`], its beginning otherwise.
    pub payload: String,
    /// The payload's size, bytes.
    #[serde(default)]
    pub payload_bytes: u64,
    /// The payload's FNV-1a hash, 16 hex digits.
    #[serde(default)]
    pub payload_hash: String,
    /// The record's timestamp as received, ms since the epoch.
    pub timestamp: TimestampMs,
}

impl DeadLetter {
    /// The most of a payload a dead letter carries, bytes.
    pub const EXCERPT_BYTES: usize = 1024;
    /// The most of a key or an error a dead letter carries, bytes.
    pub const TEXT_BYTES: usize = 512;

    /// The dead letter of a record of `source_topic` set aside for `error`.
    pub fn of(
        source_topic: &str,
        partition: Option<i32>,
        offset: Option<i64>,
        key: &[u8],
        payload: &[u8],
        timestamp: TimestampMs,
        error: &InvalidEvent,
    ) -> DeadLetter {
        DeadLetter {
            source_topic: excerpt(source_topic.as_bytes(), Self::TEXT_BYTES),
            partition,
            offset,
            key: excerpt(key, Self::TEXT_BYTES),
            reason: error.reason().to_owned(),
            error: excerpt(error.to_string().as_bytes(), Self::TEXT_BYTES),
            payload: excerpt(payload, Self::EXCERPT_BYTES),
            payload_bytes: payload.len() as u64,
            payload_hash: format!("{:016x}", crate::bus::key_hash(payload)),
            timestamp,
        }
    }
}

/// At most `max` bytes of `bytes` as text (lossy), cut at a character boundary, with
/// `…` when cut.
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut text = String::from_utf8_lossy(&bytes[..max]).into_owned();
    // A character cut in two shows as U+FFFD at the end: drop it.
    while text.ends_with('\u{FFFD}') {
        text.pop();
    }
    text.push('…');
    text
}

/// Why an event failed validation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidEvent {
    /// The JSON did not parse or did not match the event's shape.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// Coordinates not finite or out of range.
    #[error("invalid coordinates ({lat}, {lon})")]
    Coordinates {
        /// The latitude given.
        lat: f64,
        /// The longitude given.
        lon: f64,
    },
    /// A timestamp before 2000 or after 2200.
    #[error("timestamp {0} out of range")]
    Timestamp(TimestampMs),
    /// A timestamp too far ahead of the event time of the stream so far (the text is
    /// that of [`InvalidEvent::Timestamp`]; [`InvalidEvent::reason`] tells them apart).
    #[error("timestamp {ts} out of range")]
    Ahead {
        /// The timestamp.
        ts: TimestampMs,
        /// How far ahead of the latest event time seen it is, ms.
        ahead_ms: i64,
        /// How far ahead is allowed, ms.
        bound_ms: i64,
    },
    /// Some other field out of its range.
    #[error("{0}")]
    Field(&'static str),
    /// Larger than any record the stages publish.
    #[error("record of {bytes} bytes, over the limit of {limit}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

impl InvalidEvent {
    /// Every reason, as [`InvalidEvent::reason`] names them (for counters).
    pub const REASONS: [&'static str; 6] = [
        "malformed",
        "coordinates",
        "timestamp",
        "ahead",
        "field",
        "too_large",
    ];

    /// Why, in one word: one of [`InvalidEvent::REASONS`].
    pub fn reason(&self) -> &'static str {
        Self::REASONS[self.reason_index()]
    }

    /// The index of [`InvalidEvent::reason`] in [`InvalidEvent::REASONS`].
    pub fn reason_index(&self) -> usize {
        match self {
            InvalidEvent::Malformed(_) => 0,
            InvalidEvent::Coordinates { .. } => 1,
            InvalidEvent::Timestamp(_) => 2,
            InvalidEvent::Ahead { .. } => 3,
            InvalidEvent::Field(_) => 4,
            InvalidEvent::TooLarge { .. } => 5,
        }
    }
}

/// Earliest event time accepted: 2000-01-01T00:00:00Z.
pub const MIN_VALID_TIMESTAMP: TimestampMs = 946_684_800_000;
/// Latest event time accepted: 2200-01-01T00:00:00Z.
pub const MAX_VALID_TIMESTAMP: TimestampMs = 7_258_118_400_000;

/// An event that can check its own fields.
pub trait Validate {
    /// Checks the fields against their documented ranges (times from 2000 to 2200).
    /// Whether its time fits the stream it came in is [`check_not_ahead`]'s question.
    fn validate(&self) -> Result<(), InvalidEvent>;

    /// Its event time, ms since the epoch.
    fn event_time(&self) -> TimestampMs;
}

/// Checks that an event time `ts` is at most `bound_ms` ahead of `latest`, the latest
/// event time of the stream so far (`None` before the first event: anything goes).
/// Event time, not a clock: a replay of last week is as fine as a live stream.
pub fn check_not_ahead(
    ts: TimestampMs,
    latest: Option<TimestampMs>,
    bound_ms: i64,
) -> Result<(), InvalidEvent> {
    match latest {
        Some(latest) if ts.saturating_sub(latest) > bound_ms => Err(InvalidEvent::Ahead {
            ts,
            ahead_ms: ts - latest,
            bound_ms,
        }),
        _ => Ok(()),
    }
}

fn check_ts(ts: TimestampMs) -> Result<(), InvalidEvent> {
    if !(MIN_VALID_TIMESTAMP..=MAX_VALID_TIMESTAMP).contains(&ts) {
        return Err(InvalidEvent::Timestamp(ts));
    }
    Ok(())
}

/// The largest area an incident may cover: a radius of 100 km.
pub const MAX_RADIUS_M: f64 = 100_000.0;

fn check_radius(radius_m: f64) -> Result<(), InvalidEvent> {
    if !(radius_m.is_finite() && radius_m > 0.0 && radius_m <= MAX_RADIUS_M) {
        return Err(InvalidEvent::Field(
            "radius_m must be positive and at most 100 km",
        ));
    }
    Ok(())
}

fn check_point(lat: f64, lon: f64) -> Result<(), InvalidEvent> {
    if !LatLon::new(lat, lon).is_valid() {
        return Err(InvalidEvent::Coordinates { lat, lon });
    }
    Ok(())
}

impl Validate for VehiclePosition {
    fn event_time(&self) -> TimestampMs {
        self.timestamp
    }

    fn validate(&self) -> Result<(), InvalidEvent> {
        check_ts(self.timestamp)?;
        check_point(self.lat, self.lon)?;
        if !self.speed_mps.is_finite() || self.speed_mps < 0.0 {
            return Err(InvalidEvent::Field(
                "speed_mps must be finite and non-negative",
            ));
        }
        if !self.bearing.is_finite() {
            return Err(InvalidEvent::Field("bearing must be finite"));
        }
        if self.vehicle_id.is_empty() {
            return Err(InvalidEvent::Field("vehicle_id must not be empty"));
        }
        if self.route_id.is_empty() {
            return Err(InvalidEvent::Field("route_id must not be empty"));
        }
        Ok(())
    }
}

impl Validate for RiderTap {
    fn event_time(&self) -> TimestampMs {
        self.timestamp
    }

    fn validate(&self) -> Result<(), InvalidEvent> {
        check_ts(self.timestamp)?;
        if self.stop_id.is_empty() {
            return Err(InvalidEvent::Field("stop_id must not be empty"));
        }
        if self.rider_id.is_empty() {
            return Err(InvalidEvent::Field("rider_id must not be empty"));
        }
        Ok(())
    }
}

impl Validate for TrafficIncident {
    fn event_time(&self) -> TimestampMs {
        self.timestamp
    }

    fn validate(&self) -> Result<(), InvalidEvent> {
        check_ts(self.timestamp)?;
        check_ts(self.started_at)?;
        check_ts(self.expected_end)?;
        check_point(self.lat, self.lon)?;
        check_radius(self.radius_m)?;
        if self.incident_id.is_empty() {
            return Err(InvalidEvent::Field("incident_id must not be empty"));
        }
        if !(self.speed_factor > 0.0 && self.speed_factor <= 1.0) {
            return Err(InvalidEvent::Field("speed_factor must be in (0, 1]"));
        }
        Ok(())
    }
}

impl Validate for CityIncident {
    fn event_time(&self) -> TimestampMs {
        self.timestamp
    }

    fn validate(&self) -> Result<(), InvalidEvent> {
        check_ts(self.timestamp)?;
        check_ts(self.started_at)?;
        for ts in [self.expires_at, self.estimated_restoration]
            .into_iter()
            .flatten()
        {
            check_ts(ts)?;
        }
        check_point(self.lat, self.lon)?;
        check_radius(self.radius_m)?;
        if self.event_id.is_empty() {
            return Err(InvalidEvent::Field("event_id must not be empty"));
        }
        if let Some(f) = self.speed_factor
            && !(f > 0.0 && f <= 1.0)
        {
            return Err(InvalidEvent::Field("speed_factor must be in (0, 1]"));
        }
        Ok(())
    }
}

impl Validate for Alert {
    fn event_time(&self) -> TimestampMs {
        self.timestamp
    }

    fn validate(&self) -> Result<(), InvalidEvent> {
        check_ts(self.timestamp)?;
        if let (Some(lat), Some(lon)) = (self.lat, self.lon) {
            check_point(lat, lon)?;
        }
        if self.alert_id.is_empty() || self.subject_id.is_empty() {
            return Err(InvalidEvent::Field(
                "alert_id and subject_id must not be empty",
            ));
        }
        Ok(())
    }
}

/// The wire name of an enum value, e.g. `"power_outage"` for
/// [`CityIncidentKind::PowerOutage`]: the text it has in the JSON, for messages and
/// labels.
pub fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Decodes a JSON payload into an event, with a clear error for anything malformed.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, InvalidEvent> {
    serde_json::from_slice(payload).map_err(|e| InvalidEvent::Malformed(e.to_string()))
}

/// Decodes a JSON payload into an event and checks its fields ([`Validate`]): the one
/// validation every stage applies to what it reads.
pub fn decode_valid<T: DeserializeOwned + Validate>(payload: &[u8]) -> Result<T, InvalidEvent> {
    let event: T = decode(payload)?;
    event.validate()?;
    Ok(event)
}

/// Encodes an event as its JSON wire format.
pub fn encode<T: Serialize>(event: &T) -> bytes::Bytes {
    // Written into a buffer kept per thread, then copied out at its exact size: one
    // allocation per event, not a vector grown two or three times (this runs for every
    // record a producer sends), and no spare capacity held by long-lived payloads.
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    /// Beyond this the buffer is not kept (a rare large value).
    const KEEP: usize = 64 * 1024;
    // Serialising these plain structs cannot fail: no maps with non-string keys, and
    // floats that are not finite serialise as `null`.
    SCRATCH.with(|scratch| {
        let Ok(mut buf) = scratch.try_borrow_mut() else {
            // Called from inside a serialisation on this thread: no shared buffer.
            return bytes::Bytes::from(serde_json::to_vec(event).unwrap_or_default());
        };
        buf.clear();
        let bytes = match serde_json::to_writer(&mut *buf, event) {
            Ok(()) => bytes::Bytes::copy_from_slice(&buf),
            Err(_) => bytes::Bytes::new(),
        };
        if buf.capacity() > KEEP {
            *buf = Vec::new();
        }
        bytes
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occupancy_follows_load() {
        assert_eq!(OccupancyStatus::from_load(0, 80), OccupancyStatus::Empty);
        assert_eq!(
            OccupancyStatus::from_load(10, 80),
            OccupancyStatus::ManySeatsAvailable
        );
        assert_eq!(
            OccupancyStatus::from_load(30, 80),
            OccupancyStatus::FewSeatsAvailable
        );
        assert_eq!(
            OccupancyStatus::from_load(50, 80),
            OccupancyStatus::StandingRoomOnly
        );
        assert_eq!(
            OccupancyStatus::from_load(75, 80),
            OccupancyStatus::CrushedStandingRoomOnly
        );
        assert_eq!(OccupancyStatus::from_load(80, 80), OccupancyStatus::Full);
    }

    #[test]
    fn the_lists_of_every_kind_and_status_are_complete() {
        // A new variant fails to compile here until it is given its place in `ALL`.
        let place = |k: AlertKind| match k {
            AlertKind::Surge => 0,
            AlertKind::Delay => 1,
            AlertKind::Breakdown => 2,
            AlertKind::Bunching => 3,
            AlertKind::Gapping => 4,
            AlertKind::Crowding => 5,
            AlertKind::Incident => 6,
        };
        for (i, k) in AlertKind::ALL.into_iter().enumerate() {
            assert_eq!(place(k), i);
        }
        let place = |s: VehicleStatus| match s {
            VehicleStatus::InTransitTo => 0,
            VehicleStatus::StoppedAt => 1,
            VehicleStatus::Layover => 2,
            VehicleStatus::BrokenDown => 3,
            VehicleStatus::Suspended => 4,
            VehicleStatus::OutOfService => 5,
        };
        for (i, s) in VehicleStatus::ALL.into_iter().enumerate() {
            assert_eq!(place(s), i);
        }
    }

    #[test]
    fn wire_names_are_the_json_names() {
        assert_eq!(wire_name(&CityIncidentKind::PowerOutage), "power_outage");
        assert_eq!(wire_name(&AlertKind::Surge), "surge");
    }

    #[test]
    fn event_time_is_judged_against_the_stream_not_a_clock() {
        assert!(check_not_ahead(1_000_000, None, 300_000).is_ok());
        assert!(check_not_ahead(1_300_000, Some(1_000_000), 300_000).is_ok());
        let err = check_not_ahead(1_300_001, Some(1_000_000), 300_000).unwrap_err();
        assert_eq!(err.reason(), "ahead");
        assert!(
            matches!(
                err,
                InvalidEvent::Ahead {
                    ahead_ms: 300_001,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(InvalidEvent::Timestamp(5).reason(), "timestamp");
        assert_eq!(InvalidEvent::REASONS.len(), 6);
    }

    #[test]
    fn a_dead_letter_is_bounded_whatever_the_record() {
        // 200,000 control bytes: escaped in JSON they would grow six-fold.
        let junk = vec![1u8; 200_000];
        let key = vec![b'k'; 10_000];
        let letter = DeadLetter::of(
            "rider_tapped_on",
            Some(3),
            Some(42),
            &key,
            &junk,
            1,
            &InvalidEvent::Malformed("x".repeat(100_000)),
        );
        let encoded = encode(&letter);
        assert!(encoded.len() < 10_000, "{} bytes", encoded.len());
        assert_eq!(letter.payload_bytes, 200_000);
        assert_eq!(letter.payload_hash.len(), 16);
        assert!(letter.payload.ends_with('…') && letter.key.ends_with('…'));
        // A short payload is kept whole, and a cut never splits a character.
        assert_eq!(excerpt(b"not json", 1024), "not json");
        assert_eq!(excerpt("ééé".as_bytes(), 3), "é…");
    }

    #[test]
    fn decode_reports_malformed_input() {
        let err = decode::<RiderTap>(b"{\"rider_id\":1}").unwrap_err();
        assert!(matches!(err, InvalidEvent::Malformed(_)), "{err}");
        assert!(decode::<RiderTap>(b"not json").is_err());
    }
}

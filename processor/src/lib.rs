//! StreamCity's stream processor, the replacement for the seed's ksqlDB scripts.
//!
//! [`Processor`] is the pure core: fed records and time, it keeps the live vehicle
//! table, counts taps in windows, runs the detectors, and returns the records to
//! publish. [`runner::run`] is the async shell that moves records between the bus and
//! the core. The equivalent ksqlDB statements are in `ksql/`.
//!
//! - [`table`]: latest value per key (by offset or by event time), tombstones, scans;
//! - [`window`]: tumbling, hopping and session windows, explicit grace, both emit modes;
//! - [`watermark`]: per-partition watermarks with idle advancement;
//! - [`surge`], [`vehicles`]: the detectors; [`alerts`]: raise once, clear once;
//! - [`config`]: every threshold, with its default.
//!
//! The whole state can be checkpointed and restored ([`Processor::checkpoint`],
//! [`Processor::restore`]): a restored processor fed the rest of the input produces
//! exactly what an uninterrupted one would have.

pub mod alerts;
pub mod config;
pub mod runner;
pub mod surge;
pub mod table;
pub mod vehicles;
pub mod watermark;
pub mod window;

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamcity_core::query::VehicleFilter;
use streamcity_core::{
    Alert, AlertKind, AlertState, CityIncident, DeadLetter, Id, IncidentStatus, InvalidEvent,
    Record, RiderTap, Severity, SubjectKind, TimestampMs, Topics, TrafficIncident, TransitEffect,
    Validate, VehiclePosition, decode, encode, wire_name,
};

use crate::alerts::AlertBook;
pub use crate::config::ProcessorConfig;
use crate::surge::SurgeDetector;
use crate::table::{Latest, LatestTable};
use crate::vehicles::{Headways, IncidentArea, VehicleRow};
use crate::watermark::Watermarks;
use crate::window::Admission;

/// Counters of what the processor has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorCounts {
    /// Records read.
    pub records_in: u64,
    /// Records published.
    pub records_out: u64,
    /// Records set aside as malformed or invalid.
    pub dead_letters: u64,
    /// Records that arrived after their windows closed.
    pub late: u64,
    /// Alerts raised.
    pub alerts_raised: u64,
    /// Alerts cleared.
    pub alerts_cleared: u64,
}

/// Everything the processor remembers: what a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    vehicles: LatestTable<Id, VehicleRow>,
    surge: SurgeDetector,
    headways: Headways,
    /// Incidents whose alerts this instance owns (read from its partitions).
    incidents: BTreeMap<Id, IncidentArea>,
    /// Every incident in force, from this instance's partitions and from the feed all
    /// instances read ([`Processor::on_incident_area`]): the likely causes of delays.
    #[serde(default)]
    areas: BTreeMap<Id, IncidentArea>,
    book: AlertBook,
    watermarks: Watermarks,
    /// Watermark at the last lost-contact check.
    silence_checked: TimestampMs,
    counts: ProcessorCounts,
}

/// A checkpoint's format version; restoring another version is refused.
const CHECKPOINT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    config: ProcessorConfig,
    state: State,
}

/// Why a checkpoint could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Not a checkpoint, or damaged.
    #[error("unreadable checkpoint: {0}")]
    Unreadable(String),
    /// Written by another version of the processor.
    #[error("checkpoint version {found}, expected {CHECKPOINT_VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
}

/// An input record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// From `vehicle_locations`.
    Position(VehiclePosition),
    /// From `rider_tapped_on`.
    Tap(RiderTap),
    /// From `traffic_incidents`.
    Traffic(TrafficIncident),
    /// From `city_incidents`.
    City(CityIncident),
}

/// The processor's state and logic, free of I/O.
#[derive(Debug, Clone)]
pub struct Processor {
    topics: Topics,
    config: ProcessorConfig,
    state: State,
    alerts: Vec<Alert>,
}

/// How often (in event time) vehicles are checked for lost contact.
const SILENCE_CHECK_MS: i64 = 5_000;

impl Processor {
    /// A processor reading and writing the given topics.
    pub fn new(topics: Topics, config: ProcessorConfig) -> Self {
        let state = State {
            vehicles: LatestTable::new(Latest::ByEventTime),
            surge: SurgeDetector::new(config.surge.clone()),
            headways: Headways::default(),
            incidents: BTreeMap::new(),
            areas: BTreeMap::new(),
            book: AlertBook::default(),
            watermarks: Watermarks::new(config.allowed_lateness_ms, config.idle_timeout_ms),
            silence_checked: TimestampMs::MIN,
            counts: ProcessorCounts::default(),
        };
        Processor {
            topics,
            config,
            state,
            alerts: Vec::new(),
        }
    }

    /// The whole state, serialised (JSON).
    pub fn checkpoint(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Ref<'a> {
            version: u32,
            config: &'a ProcessorConfig,
            state: &'a State,
        }
        serde_json::to_vec(&Ref {
            version: CHECKPOINT_VERSION,
            config: &self.config,
            state: &self.state,
        })
        .unwrap_or_default()
    }

    /// A processor resumed from a checkpoint, with the settings it was taken with.
    pub fn restore(topics: Topics, checkpoint: &[u8]) -> Result<Self, RestoreError> {
        let cp: Checkpoint = serde_json::from_slice(checkpoint).map_err(|e| {
            // Tell a version mismatch apart from damage.
            match serde_json::from_slice::<serde_json::Value>(checkpoint)
                .ok()
                .and_then(|v| v["version"].as_u64())
            {
                Some(v) if v != u64::from(CHECKPOINT_VERSION) => {
                    RestoreError::Version { found: v as u32 }
                }
                _ => RestoreError::Unreadable(e.to_string()),
            }
        })?;
        if cp.version != CHECKPOINT_VERSION {
            return Err(RestoreError::Version { found: cp.version });
        }
        Ok(Processor {
            topics,
            config: cp.config,
            state: cp.state,
            alerts: Vec::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// The current watermark.
    pub fn watermark(&self) -> TimestampMs {
        self.state.watermarks.current()
    }

    /// What the processor has done so far.
    pub fn counts(&self) -> ProcessorCounts {
        self.state.counts
    }

    /// A vehicle's latest report.
    pub fn vehicle(&self, id: &str) -> Option<&VehiclePosition> {
        self.state.vehicles.get(&Id::from(id)).map(|r| &r.position)
    }

    /// The vehicles passing `filter`.
    pub fn scan<'a>(
        &'a self,
        filter: &'a VehicleFilter,
    ) -> impl Iterator<Item = &'a VehiclePosition> + 'a {
        self.state
            .vehicles
            .iter()
            .map(|(_, r)| &r.position)
            .filter(move |p| filter.matches(p))
    }

    /// Vehicles in the live table.
    pub fn vehicle_count(&self) -> usize {
        self.state.vehicles.len()
    }

    /// Active alerts.
    pub fn active_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.state.book.active()
    }

    /// Open surge windows.
    pub fn open_windows(&self) -> usize {
        self.state.surge.open_windows()
    }

    /// Decodes and validates a record of one of the input topics.
    pub fn decode(&self, record: &Record, now: TimestampMs) -> Result<Decoded, InvalidEvent> {
        let t = &self.topics;
        let max = self.config.max_future_ms;
        fn checked<T: Validate + serde::de::DeserializeOwned>(
            payload: &[u8],
            now: TimestampMs,
            max: i64,
        ) -> Result<T, InvalidEvent> {
            let event: T = decode(payload)?;
            event.validate(now, max)?;
            Ok(event)
        }
        if record.topic == t.vehicle_locations {
            checked(&record.payload, now, max).map(Decoded::Position)
        } else if record.topic == t.rider_tapped_on {
            checked(&record.payload, now, max).map(Decoded::Tap)
        } else if record.topic == t.traffic_incidents {
            checked(&record.payload, now, max).map(Decoded::Traffic)
        } else if record.topic == t.city_incidents {
            checked(&record.payload, now, max).map(Decoded::City)
        } else {
            Err(InvalidEvent::Malformed(format!(
                "unexpected topic {}",
                record.topic
            )))
        }
    }

    /// Processes one record read from `partition` of its topic; appends the records to
    /// publish to `out`. `now` is the clock's time. A record that does not decode or
    /// validate goes to the dead-letter topic with the reason.
    pub fn on_record(
        &mut self,
        record: &Record,
        partition: i32,
        now: TimestampMs,
        out: &mut Vec<Record>,
    ) {
        match self.decode(record, now) {
            Ok(event) => self.on_decoded(&event, record, partition, now, out),
            Err(e) => {
                let before = out.len();
                self.state.counts.records_in += 1;
                self.dead_letter(record, &e, out);
                self.state.counts.records_out += (out.len() - before) as u64;
            }
        }
    }

    /// Processes an event already decoded (and validated) from `record`.
    pub fn on_decoded(
        &mut self,
        event: &Decoded,
        record: &Record,
        partition: i32,
        now: TimestampMs,
        out: &mut Vec<Record>,
    ) {
        let before = out.len();
        self.state.counts.records_in += 1;
        match event {
            Decoded::Position(p) => {
                self.on_position(p, &record.key, &record.payload, partition, now, out)
            }
            Decoded::Tap(tap) => self.on_tap(tap, record, partition, now, out),
            Decoded::Traffic(i) => self.on_traffic(i, partition, now),
            Decoded::City(i) => self.on_city(i, partition, now),
        }
        self.flush_alerts(out);
        self.state.counts.records_out += (out.len() - before) as u64;
    }

    /// Processes a decoded, validated vehicle position whose record had `key` and
    /// `payload`: updates the live table (publishing the row, the payload itself) and
    /// runs the vehicle and line detectors.
    fn on_position(
        &mut self,
        p: &VehiclePosition,
        key: &Bytes,
        payload: &Bytes,
        partition: i32,
        now: TimestampMs,
        out: &mut Vec<Record>,
    ) {
        let s = &mut self.state;
        s.watermarks
            .observe(&self.topics.vehicle_locations, partition, p.timestamp, now);
        let Some((row, how)) = s
            .vehicles
            .row_for(&p.vehicle_id, p.timestamp, || VehicleRow::new(p.clone()))
        else {
            return; // older than the row: the table keeps the latest by event time
        };
        row.partition = partition;
        vehicles::on_position(
            row,
            p,
            &self.config,
            &s.areas,
            &mut s.book,
            &mut self.alerts,
        );
        if how == table::Upsert::Updated {
            s.headways.on_position(
                &row.position,
                p,
                &self.config,
                &mut s.book,
                &mut self.alerts,
            );
            row.position.clone_from(p);
        }
        // The table row is the report itself: forward its bytes, no re-encoding. It goes
        // to the partition of the report (by line), so that partition p of the table
        // holds the vehicles of partition p of the reports.
        out.push(
            Record::new(
                &self.topics.live_vehicle_table,
                key.clone(),
                payload.clone(),
                p.timestamp,
            )
            .partitioned_by(p.route_id.as_bytes()),
        );
    }

    fn on_tap(
        &mut self,
        tap: &RiderTap,
        record: &Record,
        partition: i32,
        now: TimestampMs,
        out: &mut Vec<Record>,
    ) {
        let s = &mut self.state;
        s.watermarks
            .observe(&self.topics.rider_tapped_on, partition, tap.timestamp, now);
        s.surge.note_partition(&tap.stop_id, partition);
        let admitted = s.surge.on_tap(
            &tap.stop_id,
            tap.timestamp,
            s.watermarks.current(),
            &mut s.book,
            &mut self.alerts,
        );
        if admitted == Admission::Late {
            s.counts.late += 1;
            tracing::debug!(stop = %tap.stop_id, ts = tap.timestamp, watermark = s.watermarks.current(), "Late tap set aside");
            out.push(Record::new(
                &self.topics.late_events,
                record.key.clone(),
                record.payload.clone(),
                record.timestamp,
            ));
        }
    }

    fn on_traffic(&mut self, i: &TrafficIncident, partition: i32, now: TimestampMs) {
        self.state
            .watermarks
            .observe(&self.topics.traffic_incidents, partition, i.timestamp, now);
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
        let area = traffic_area(i, label);
        let span = (i.started_at, i.expected_end);
        self.incident(
            &i.incident_id,
            i.status,
            i.severity,
            area,
            span,
            i.timestamp,
            message,
            evidence,
        );
    }

    fn on_city(&mut self, i: &CityIncident, partition: i32, now: TimestampMs) {
        self.state
            .watermarks
            .observe(&self.topics.city_incidents, partition, i.timestamp, now);
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
        let area = city_area(i);
        let ends = city_end(i);
        self.incident(
            &i.event_id,
            i.status,
            i.severity,
            area,
            (i.started_at, ends),
            i.timestamp,
            message,
            evidence,
        );
    }

    /// Raises an incident alert when an incident first becomes active and clears it
    /// when it ends. A repeated report of a known incident, or the clearance of one
    /// never seen, changes nothing worth an alert.
    #[allow(clippy::too_many_arguments)]
    fn incident(
        &mut self,
        id: &Id,
        status: IncidentStatus,
        severity: Severity,
        area: IncidentArea,
        (start, end): (TimestampMs, TimestampMs),
        ts: TimestampMs,
        message: String,
        evidence: serde_json::Map<String, serde_json::Value>,
    ) {
        let alert_id = compact_str::format_compact!("incident:{id}");
        let s = &mut self.state;
        match status {
            IncidentStatus::Active => {
                let (lat, lon) = (area.lat, area.lon);
                s.areas.insert(id.clone(), area.clone());
                if s.incidents.insert(id.clone(), area).is_some() {
                    return;
                }
                s.book.raise(
                    Alert {
                        alert_id,
                        kind: AlertKind::Incident,
                        state: AlertState::Raised,
                        severity,
                        subject_kind: SubjectKind::Incident,
                        subject_id: id.clone(),
                        lat: Some(lat),
                        lon: Some(lon),
                        window_start: start,
                        window_end: end,
                        raised_at: start,
                        timestamp: ts,
                        message,
                        evidence,
                    },
                    &mut self.alerts,
                );
            }
            IncidentStatus::Cleared => {
                s.areas.remove(id);
                if s.incidents.remove(id).is_some() {
                    s.book.clear(&alert_id, ts, Some(message), &mut self.alerts);
                }
            }
        }
    }

    /// Notes an incident from the feed every instance reads in full (the incident topics
    /// outside the consumer group): keeps the areas of incidents in force, so that each
    /// instance names the likely cause of a delay as one instance alone would. Raises
    /// nothing: the instance reading the incident's partition in the group raises its
    /// alert, and sets aside what does not decode. Incidents over for more than
    /// [`RESTORE_WINDOW_MS`] (from an earlier run) are skipped.
    pub fn on_incident_area(&mut self, record: &Record, now: TimestampMs) {
        let (id, status, area, end) = match self.decode(record, now) {
            Ok(Decoded::Traffic(i)) => {
                let label = format!("{} {}", wire_name(&i.kind), i.incident_id);
                let end = i.expected_end.max(i.timestamp);
                (
                    i.incident_id.clone(),
                    i.status,
                    traffic_area(&i, label),
                    end,
                )
            }
            Ok(Decoded::City(i)) => {
                let end = city_end(&i).max(i.timestamp);
                (i.event_id.clone(), i.status, city_area(&i), end)
            }
            _ => return,
        };
        match status {
            IncidentStatus::Active if end >= now - RESTORE_WINDOW_MS => {
                self.state.areas.insert(id, area);
            }
            IncidentStatus::Active => {}
            IncidentStatus::Cleared => {
                self.state.areas.remove(&id);
            }
        }
    }

    /// Releases the state kept for `partition` of `topic`, which a consumer group
    /// rebalance gave to another instance: its vehicles' rows and their lines' headways,
    /// its stops' windows, and their active alerts (ended with a message saying they were handed over).
    pub fn release(&mut self, topic: &str, partition: i32, out: &mut Vec<Record>) {
        let before = out.len();
        let s = &mut self.state;
        let ts = s.watermarks.current().max(0);
        if *topic == *self.topics.vehicle_locations {
            let mut ids: Vec<Id> = s
                .vehicles
                .iter()
                .filter(|(_, row)| row.partition == partition)
                .map(|(id, _)| id.clone())
                .collect();
            ids.sort();
            // Reports are partitioned by line: the lines of these vehicles go too.
            let mut lines = std::collections::BTreeSet::new();
            for id in ids {
                if let Some(mut row) = s.vehicles.delete(&id) {
                    vehicles::release(&mut row, ts, &mut s.book, &mut self.alerts);
                    lines.insert(row.position.route_id);
                }
            }
            for route in &lines {
                s.headways
                    .release_line(route, ts, &mut s.book, &mut self.alerts);
            }
        } else if *topic == *self.topics.rider_tapped_on {
            s.surge
                .release_partition(partition, ts, &mut s.book, &mut self.alerts);
        }
        tracing::info!(
            topic,
            partition,
            "Released the state of a revoked partition"
        );
        self.flush_alerts(out);
        self.state.counts.records_out += (out.len() - before) as u64;
    }

    /// Restores the vehicles of `partition` of the vehicle topic, just assigned to this
    /// instance, from `rows`: what the live table keeps of the same partition (its rows
    /// are partitioned by line as the reports are, over as many partitions). Rows from the last [`RESTORE_WINDOW_MS`] of
    /// the clock are taken, unless a newer report is held already; older ones are
    /// vehicles that stopped long ago, in an earlier run. Nothing is published: the
    /// detectors go on from the restored rows, so a vehicle silent since before the
    /// handover still raises lost contact. Returns how many vehicles were restored.
    pub fn restore_partition(
        &mut self,
        partition: i32,
        rows: &[Record],
        now: TimestampMs,
    ) -> usize {
        let max = self.config.max_future_ms;
        let mut restored = 0;
        for record in rows {
            let Ok(p) = decode::<VehiclePosition>(&record.payload) else {
                continue; // a tombstone or a row this version cannot read
            };
            if p.validate(now, max).is_err() || p.timestamp < now - RESTORE_WINDOW_MS {
                continue;
            }
            let Some((row, how)) = self
                .state
                .vehicles
                .row_for(&p.vehicle_id, p.timestamp, || VehicleRow::new(p.clone()))
            else {
                continue;
            };
            row.position = p;
            row.partition = partition;
            restored += usize::from(how == table::Upsert::Inserted);
        }
        restored
    }

    /// Moves the watermark on at clock time `now` (from the partitions' event times,
    /// or from the clock when they are quiet), closing windows, checking for lost
    /// contact and clearing alerts; appends what to publish. Called after each batch
    /// and on idle ticks.
    pub fn advance(&mut self, now: TimestampMs, out: &mut Vec<Record>) {
        let before = out.len();
        let s = &mut self.state;
        let watermark = s.watermarks.advance(now);
        s.surge
            .on_watermark(watermark, &mut s.book, &mut self.alerts);
        if watermark.saturating_sub(s.silence_checked) >= SILENCE_CHECK_MS {
            s.silence_checked = watermark;
            vehicles::check_silence(
                s.vehicles.iter_mut(),
                watermark,
                self.config.breakdown.silent_ms,
                &mut s.book,
                &mut self.alerts,
            );
        }
        self.flush_alerts(out);
        self.state.counts.records_out += (out.len() - before) as u64;
    }

    fn flush_alerts(&mut self, out: &mut Vec<Record>) {
        for alert in self.alerts.drain(..) {
            match alert.state {
                AlertState::Raised => self.state.counts.alerts_raised += 1,
                AlertState::Cleared => self.state.counts.alerts_cleared += 1,
            }
            let payload = encode(&alert);
            if alert.kind == AlertKind::Surge {
                out.push(Record::new(
                    &self.topics.surge_alerts,
                    Bytes::copy_from_slice(alert.subject_id.as_bytes()),
                    payload.clone(),
                    alert.timestamp,
                ));
            }
            out.push(Record::new(
                &self.topics.alerts,
                Bytes::copy_from_slice(alert.alert_id.as_bytes()),
                payload,
                alert.timestamp,
            ));
        }
    }

    fn dead_letter(&mut self, record: &Record, error: &InvalidEvent, out: &mut Vec<Record>) {
        self.state.counts.dead_letters += 1;
        tracing::debug!(topic = %record.topic, key = %record.key_str(), %error, "Record set aside as a dead letter");
        let letter = DeadLetter {
            source_topic: record.topic.to_string(),
            key: record.key_str().into_owned(),
            error: error.to_string(),
            payload: String::from_utf8_lossy(&record.payload).into_owned(),
            timestamp: record.timestamp,
        };
        out.push(Record::new(
            &self.topics.dead_letters,
            record.key.clone(),
            encode(&letter),
            record.timestamp,
        ));
    }
}

/// How far back from the clock a restored live-table row may be (15 minutes).
pub const RESTORE_WINDOW_MS: i64 = 15 * 60 * 1000;

/// Where a traffic incident slows vehicles.
fn traffic_area(i: &TrafficIncident, label: String) -> IncidentArea {
    IncidentArea {
        lat: i.lat,
        lon: i.lon,
        radius_m: i.radius_m,
        routes: Vec::new(),
        label,
    }
}

/// Where a city incident may delay vehicles, and the lines it names.
fn city_area(i: &CityIncident) -> IncidentArea {
    // Only incidents that touch transit can explain a delay beyond their area.
    let routes = if i.transit_effect == TransitEffect::None {
        Vec::new()
    } else {
        i.affected_routes.clone()
    };
    IncidentArea {
        lat: i.lat,
        lon: i.lon,
        radius_m: i.radius_m,
        routes,
        label: format!("{} {}", wire_name(&i.kind).replace('_', " "), i.event_id),
    }
}

/// When a city incident is expected to end.
fn city_end(i: &CityIncident) -> TimestampMs {
    i.expires_at
        .or(i.estimated_restoration)
        .unwrap_or(i.started_at)
}

/// The topics the processor reads.
pub fn inputs(topics: &Topics) -> [&std::sync::Arc<str>; 4] {
    [
        &topics.vehicle_locations,
        &topics.rider_tapped_on,
        &topics.traffic_incidents,
        &topics.city_incidents,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_763_884_800_000;

    fn tap(topics: &Topics, stop: &str, ts: i64) -> Record {
        let t = RiderTap {
            rider_id: "C1".into(),
            stop_id: stop.into(),
            route_id: None,
            timestamp: ts,
        };
        Record::new(&topics.rider_tapped_on, stop.to_owned(), encode(&t), ts)
    }

    #[test]
    fn malformed_records_go_to_dead_letters_and_nothing_else_is_lost() {
        let topics = Topics::default();
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        let mut out = Vec::new();
        let bad = [
            &b"{not json"[..],
            br#"{"rider_id":"C1","timestamp":1763884800000}"#,
            br#"{"rider_id":"C1","stop_id":"S1","timestamp":99999999999999}"#,
        ];
        for payload in bad {
            p.on_record(
                &Record::new(
                    &topics.rider_tapped_on,
                    "k",
                    Bytes::from_static(payload),
                    T0,
                ),
                0,
                T0,
                &mut out,
            );
        }
        let nan = br#"{"vehicle_id":"V1","route_id":"B01","trip_id":"t","timestamp":1763884800000,"lat":null,"lon":0,"bearing":0,"speed_mps":0,"next_stop_id":"S1","passengers":0,"capacity":80,"occupancy_status":"empty","delay_s":0,"status":"in_transit_to"}"#;
        p.on_record(
            &Record::new(&topics.vehicle_locations, "V1", Bytes::from_static(nan), T0),
            0,
            T0,
            &mut out,
        );
        assert_eq!(p.counts().dead_letters, 4);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|r| r.topic == topics.dead_letters));
        let letter: DeadLetter = decode(&out[2].payload).unwrap();
        assert!(letter.error.contains("timestamp"), "{}", letter.error);
        out.clear();
        p.on_record(&tap(&topics, "S1", T0), 0, T0, &mut out);
        assert_eq!(p.counts().records_in, 5);
        assert!(out.is_empty());
    }

    /// A report of vehicle `id` of line B01, as JSON on `topic`: at one place, heading
    /// for `next`, `delay_s` late.
    fn report_on(
        topic: &std::sync::Arc<str>,
        id: &str,
        next: &str,
        delay_s: i32,
        ts: i64,
    ) -> Record {
        let json = format!(
            r#"{{"vehicle_id":"{id}","route_id":"B01","trip_id":"t","timestamp":{ts},"lat":40.7,"lon":-74.0,"bearing":0,"speed_mps":8,"next_stop_id":"{next}","passengers":0,"capacity":80,"occupancy_status":"empty","delay_s":{delay_s},"status":"in_transit_to"}}"#
        );
        Record::new(topic, id.to_owned(), Bytes::from(json), ts)
    }

    fn position_row(topics: &Topics, id: &str, ts: i64) -> Record {
        report_on(&topics.live_vehicle_table, id, "S1", 0, ts)
    }

    #[test]
    fn an_assigned_partition_is_restored_from_the_live_table() {
        let topics = Topics::default();
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        let now = T0 + 1_000;
        let rows = [
            position_row(&topics, "V1", T0),
            // An older row of V1 (a compacted topic may still hold it): the newer wins.
            position_row(&topics, "V1", T0 - 5_000),
            // Another run's vehicle, long gone.
            position_row(&topics, "V2", now - RESTORE_WINDOW_MS - 1),
            Record::new(&topics.live_vehicle_table, "V3", Bytes::new(), T0),
            Record::new(
                &topics.live_vehicle_table,
                "V4",
                Bytes::from_static(b"{oops"),
                T0,
            ),
        ];
        assert_eq!(p.restore_partition(3, &rows, now), 1);
        let row = p.state.vehicles.get(&"V1".into()).unwrap();
        assert_eq!((row.position.timestamp, row.partition), (T0, 3));
        assert!(p.state.vehicles.get(&"V2".into()).is_none());
        // Restoring publishes nothing, and V1, silent since, is noticed as lost.
        let mut out = Vec::new();
        p.advance(now, &mut out);
        assert!(out.is_empty());
        p.advance(T0 + 5 * 60_000, &mut out);
        let lost: Vec<Alert> = out
            .iter()
            .filter(|r| r.topic == topics.alerts)
            .map(|r| decode(&r.payload).unwrap())
            .collect();
        assert!(
            lost.iter()
                .any(|a| a.subject_id == "V1" && a.evidence["reason"] == "silent"),
            "{lost:?}"
        );
    }

    #[test]
    fn a_burst_of_taps_raises_a_surge_on_both_alert_topics() {
        let topics = Topics::default();
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        let mut out = Vec::new();
        for i in 0..200 {
            p.on_record(&tap(&topics, "S0042", T0 + i * 50), 0, T0, &mut out);
        }
        let surge: Vec<_> = out
            .iter()
            .filter(|r| r.topic == topics.surge_alerts)
            .collect();
        let alerts: Vec<_> = out.iter().filter(|r| r.topic == topics.alerts).collect();
        assert_eq!((surge.len(), alerts.len()), (1, 1));
        assert_eq!(&surge[0].key[..], b"S0042");
        let alert: Alert = decode(&alerts[0].payload).unwrap();
        assert_eq!(
            (alert.kind, alert.state),
            (AlertKind::Surge, AlertState::Raised)
        );
    }

    #[test]
    fn late_taps_go_to_the_side_output() {
        let topics = Topics::default();
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        let mut out = Vec::new();
        p.advance(T0 + 3_600_000, &mut out);
        p.on_record(&tap(&topics, "S1", T0), 0, T0 + 3_600_000, &mut out);
        assert_eq!(p.counts().late, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, topics.late_events);
    }

    #[test]
    fn a_revoked_partition_is_released_with_its_alerts_handed_over() {
        let topics = Topics::default();
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        let mut out = Vec::new();
        let crowded = |id: &str, ts: i64| {
            let v = VehiclePosition {
                vehicle_id: id.into(),
                route_id: "B01".into(),
                trip_id: "t".into(),
                timestamp: ts,
                lat: 40.7,
                lon: -74.0,
                bearing: 0.0,
                speed_mps: 5.0,
                next_stop_id: "S1".into(),
                passengers: 80,
                capacity: 80,
                occupancy_status: streamcity_core::OccupancyStatus::Full,
                delay_s: 0,
                status: streamcity_core::VehicleStatus::InTransitTo,
            };
            Record::new(&topics.vehicle_locations, id.to_owned(), encode(&v), ts)
        };
        p.on_record(&crowded("V1", T0), 1, T0, &mut out);
        p.on_record(&crowded("V2", T0), 2, T0, &mut out);
        for i in 0..200 {
            p.on_record(&tap(&topics, "S0042", T0 + i), 1, T0, &mut out);
        }
        assert_eq!(
            p.active_alerts().count(),
            3,
            "two crowded vehicles and a surge"
        );
        out.clear();
        p.release(&topics.vehicle_locations, 1, &mut out);
        p.release(&topics.rider_tapped_on, 1, &mut out);
        // V1 and S0042 were on partition 1: gone, their alerts handed over.
        assert!(p.vehicle("V1").is_none() && p.vehicle("V2").is_some());
        let cleared: Vec<Alert> = out
            .iter()
            .filter(|r| r.topic == topics.alerts)
            .map(|r| decode(&r.payload).unwrap())
            .collect();
        assert_eq!(cleared.len(), 2);
        assert!(
            cleared
                .iter()
                .all(|a| a.state == AlertState::Cleared && a.message.contains("handed over"))
        );
        assert_eq!(p.active_alerts().count(), 1);
        assert_eq!(p.open_windows(), 0);
    }

    #[test]
    fn a_revoked_partition_hands_its_lines_over_with_their_headways() {
        let topics = Topics::default();
        let mut config = ProcessorConfig::default();
        config.headway.route_headways_s = [("B01".into(), 600.0)].into_iter().collect();
        let mut p = Processor::new(topics.clone(), config);
        let mut out = Vec::new();
        let report =
            |id: &str, next: &str, ts: i64| report_on(&topics.vehicle_locations, id, next, 0, ts);
        // V1 leaves S1 for S2, V2 follows a minute later on a 10-minute line: bunched.
        for (id, t) in [("V1", T0), ("V2", T0 + 60_000)] {
            p.on_record(&report(id, "S1", t), 1, t, &mut out);
            p.on_record(&report(id, "S2", t + 1_000), 1, t + 1_000, &mut out);
        }
        let bunching = |p: &Processor| {
            p.active_alerts()
                .filter(|a| a.kind == AlertKind::Bunching)
                .count()
        };
        assert_eq!(bunching(&p), 1);
        assert_eq!(p.state.headways.lines(), 1);
        out.clear();
        // Another partition's release leaves the line alone.
        p.release(&topics.vehicle_locations, 2, &mut out);
        assert_eq!(bunching(&p), 1);
        p.release(&topics.vehicle_locations, 1, &mut out);
        assert_eq!(bunching(&p), 0);
        assert_eq!(p.state.headways.lines(), 0);
        let ended: Vec<Alert> = out
            .iter()
            .filter(|r| r.topic == topics.alerts)
            .map(|r| decode(&r.payload).unwrap())
            .filter(|a: &Alert| a.kind == AlertKind::Bunching)
            .collect();
        assert_eq!(ended.len(), 1);
        assert!(
            ended[0].message.contains("handed over"),
            "{}",
            ended[0].message
        );
        // Back on this instance later, the line starts afresh: one departure is no
        // headway yet.
        p.on_record(&report("V3", "S1", T0 + 120_000), 1, T0 + 120_000, &mut out);
        p.on_record(&report("V3", "S2", T0 + 121_000), 1, T0 + 121_000, &mut out);
        assert_eq!(bunching(&p), 0);
    }

    #[test]
    fn every_instance_names_the_likely_cause_of_a_delay() {
        let topics = Topics::default();
        let incident = |id: &str, status: IncidentStatus, end: i64| {
            let i = TrafficIncident {
                incident_id: id.into(),
                kind: streamcity_core::TrafficIncidentKind::Accident,
                status,
                lat: 40.7,
                lon: -74.0,
                radius_m: 300.0,
                severity: Severity::High,
                speed_factor: 0.3,
                started_at: end.min(T0) - 60_000,
                expected_end: end,
                timestamp: end.min(T0),
            };
            Record::new(
                &topics.traffic_incidents,
                id.to_owned(),
                encode(&i),
                i.timestamp,
            )
        };
        let late = |id: &str, ts: i64| report_on(&topics.vehicle_locations, id, "S1", 600, ts);
        let delays = |p: &mut Processor, id: &str, t: i64| -> Vec<Alert> {
            let mut out = Vec::new();
            for ts in [t, t + 61_000, t + 62_000] {
                p.on_record(&late(id, ts), 0, ts, &mut out);
            }
            out.iter()
                .filter(|r| r.topic == topics.alerts)
                .map(|r| decode(&r.payload).unwrap())
                .filter(|a: &Alert| a.kind == AlertKind::Delay)
                .collect()
        };
        // This instance reads the incident only from the feed every instance reads.
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        p.on_incident_area(
            &incident("TI-1", IncidentStatus::Active, T0 + 3_600_000),
            T0,
        );
        // One over long ago (an earlier run) is not in force.
        p.on_incident_area(
            &incident("TI-0", IncidentStatus::Active, T0 - 3_600_000),
            T0,
        );
        // Not decodable: ignored here (the owner sets it aside).
        p.on_incident_area(
            &Record::new(
                &topics.traffic_incidents,
                "TI-9",
                Bytes::from_static(b"{"),
                T0,
            ),
            T0,
        );
        assert_eq!(
            p.active_alerts().count(),
            0,
            "the owner raises the incident"
        );
        let first = delays(&mut p, "V1", T0);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(
            first[0].message.ends_with("likely cause: accident TI-1"),
            "{}",
            first[0].message
        );
        // Cleared: no longer a cause.
        p.on_incident_area(
            &incident("TI-1", IncidentStatus::Cleared, T0 + 3_600_000),
            T0,
        );
        let second = delays(&mut p, "V2", T0 + 100_000);
        assert_eq!(second.len(), 1, "{second:?}");
        assert!(
            !second[0].message.contains("likely cause"),
            "{}",
            second[0].message
        );
        assert_eq!(p.counts().records_in, 6, "the feed is not counted as input");
    }

    #[test]
    fn checkpoints_of_another_version_or_damaged_are_refused() {
        let p = Processor::new(Topics::default(), ProcessorConfig::default());
        let mut cp: serde_json::Value = serde_json::from_slice(&p.checkpoint()).unwrap();
        assert!(Processor::restore(Topics::default(), &p.checkpoint()).is_ok());
        cp["version"] = json!(99);
        let err =
            Processor::restore(Topics::default(), &serde_json::to_vec(&cp).unwrap()).unwrap_err();
        assert!(matches!(err, RestoreError::Version { found: 99 }), "{err}");
        assert!(matches!(
            Processor::restore(Topics::default(), b"{oops"),
            Err(RestoreError::Unreadable(_))
        ));
    }
}

//! StreamCity's stream processor, the replacement for the seed's ksqlDB scripts.
//!
//! [`Processor`] is the pure core: fed records and time, it keeps the live vehicle
//! table, counts taps in windows, runs the detectors, and returns the records to
//! publish. [`runner::run`] is the async shell that moves records between the bus and
//! the core. The equivalent ksqlDB statements are in `ksql/`.

pub mod runner;
pub mod surge;
pub mod table;
pub mod window;

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::json;
use streamcity_core::{
    Alert, AlertKind, AlertState, CityIncident, DeadLetter, Id, IncidentStatus, InvalidEvent, Record, RiderTap,
    Severity, SubjectKind, TimestampMs, Topics, TrafficIncident, TransitEffect, Validate, VehiclePosition, decode,
    encode,
};

use crate::surge::{SurgeConfig, SurgeDetector};
use crate::table::{Latest, LatestTable, Upsert};

/// Processor settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessorConfig {
    /// Passenger surge detection.
    pub surge: SurgeConfig,
    /// How far behind the highest event time seen the watermark trails, ms.
    pub allowed_lateness_ms: i64,
    /// Records with event times further than this ahead of the clock are rejected, ms.
    pub max_future_ms: i64,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig { surge: SurgeConfig::default(), allowed_lateness_ms: 5_000, max_future_ms: 300_000 }
    }
}

/// Counters of what the processor has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// The processor's state and logic, free of I/O.
#[derive(Debug)]
pub struct Processor {
    topics: Topics,
    config: ProcessorConfig,
    vehicles: LatestTable<Id, VehiclePosition>,
    /// Incidents (traffic and city) in force, by id.
    incidents: HashSet<Id>,
    surge: SurgeDetector,
    max_event_ts: TimestampMs,
    watermark: TimestampMs,
    counts: ProcessorCounts,
    alerts: Vec<Alert>,
}

impl Processor {
    /// A processor reading and writing the given topics.
    pub fn new(topics: Topics, config: ProcessorConfig) -> Self {
        Processor {
            topics,
            config,
            vehicles: LatestTable::new(Latest::ByEventTime),
            incidents: HashSet::new(),
            surge: SurgeDetector::new(config.surge),
            max_event_ts: TimestampMs::MIN,
            watermark: TimestampMs::MIN,
            counts: ProcessorCounts::default(),
            alerts: Vec::new(),
        }
    }

    /// The current watermark: windows ending (plus grace) at or before it are closed.
    pub fn watermark(&self) -> TimestampMs {
        self.watermark
    }

    /// What the processor has done so far.
    pub fn counts(&self) -> ProcessorCounts {
        self.counts
    }

    /// The live vehicle table.
    pub fn vehicles(&self) -> &LatestTable<Id, VehiclePosition> {
        &self.vehicles
    }

    /// Stops surging now.
    pub fn active_surges(&self) -> impl Iterator<Item = &Alert> {
        self.surge.active()
    }

    /// Processes one input record; appends the records to publish to `out`. `now` is
    /// the clock's time, for rejecting timestamps far in the future.
    pub fn on_record(&mut self, record: &Record, now: TimestampMs, out: &mut Vec<Record>) {
        self.counts.records_in += 1;
        let before = out.len();
        let result = if record.topic == self.topics.vehicle_locations {
            self.on_position(record, now, out)
        } else if record.topic == self.topics.rider_tapped_on {
            self.on_tap(record, now, out)
        } else if record.topic == self.topics.traffic_incidents {
            self.on_traffic(record, now)
        } else if record.topic == self.topics.city_incidents {
            self.on_city(record, now)
        } else {
            Err(InvalidEvent::Malformed(format!("unexpected topic {}", record.topic)))
        };
        if let Err(e) = result {
            self.dead_letter(record, &e, out);
        }
        self.flush_alerts(out);
        self.counts.records_out += (out.len() - before) as u64;
    }

    /// Moves the watermark to at least `to` (event time reached, less the allowed
    /// lateness), closing windows and clearing alerts; appends what to publish.
    /// Called after each batch of records, and on idle ticks so that windows close
    /// when traffic stops.
    pub fn advance_watermark(&mut self, to: TimestampMs, out: &mut Vec<Record>) {
        if to <= self.watermark {
            return;
        }
        self.watermark = to;
        let before = out.len();
        let mut alerts = std::mem::take(&mut self.alerts);
        self.surge.on_watermark(to, &mut alerts);
        self.alerts = alerts;
        self.flush_alerts(out);
        self.counts.records_out += (out.len() - before) as u64;
    }

    /// Advances the watermark from the event times seen so far.
    pub fn advance_from_events(&mut self, out: &mut Vec<Record>) {
        if self.max_event_ts > TimestampMs::MIN {
            self.advance_watermark(self.max_event_ts - self.config.allowed_lateness_ms, out);
        }
    }

    /// Advances the watermark from the clock when no records arrive: the time the
    /// clock reads, less the allowed lateness.
    pub fn advance_idle(&mut self, now: TimestampMs, out: &mut Vec<Record>) {
        self.advance_watermark(now - self.config.allowed_lateness_ms, out);
    }

    fn observe(&mut self, ts: TimestampMs) {
        self.max_event_ts = self.max_event_ts.max(ts);
    }

    fn on_position(&mut self, record: &Record, now: TimestampMs, out: &mut Vec<Record>) -> Result<(), InvalidEvent> {
        let p: VehiclePosition = decode(&record.payload)?;
        p.validate(now, self.config.max_future_ms)?;
        self.observe(p.timestamp);
        let ts = p.timestamp;
        let key = p.vehicle_id.clone();
        if self.vehicles.upsert(key, ts, p) != Upsert::Stale {
            // The table row is the report itself: forward its bytes, no re-encoding.
            out.push(Record::new(&self.topics.live_vehicle_table, record.key.clone(), record.payload.clone(), ts));
        }
        Ok(())
    }

    fn on_tap(&mut self, record: &Record, now: TimestampMs, out: &mut Vec<Record>) -> Result<(), InvalidEvent> {
        let tap: RiderTap = decode(&record.payload)?;
        tap.validate(now, self.config.max_future_ms)?;
        self.observe(tap.timestamp);
        let mut alerts = std::mem::take(&mut self.alerts);
        let admitted = self.surge.on_tap(&tap.stop_id, tap.timestamp, self.watermark, &mut alerts);
        self.alerts = alerts;
        if admitted == crate::window::Admission::Late {
            self.counts.late += 1;
            tracing::debug!(stop = %tap.stop_id, ts = tap.timestamp, watermark = self.watermark, "Late tap set aside");
            out.push(Record::new(&self.topics.late_events, record.key.clone(), record.payload.clone(), record.timestamp));
        }
        Ok(())
    }

    fn on_traffic(&mut self, record: &Record, now: TimestampMs) -> Result<(), InvalidEvent> {
        let incident: TrafficIncident = decode(&record.payload)?;
        incident.validate(now, self.config.max_future_ms)?;
        self.observe(incident.timestamp);
        let kind = snake_name(&incident.kind);
        let mut evidence = serde_json::Map::new();
        evidence.insert("radius_m".into(), json!(incident.radius_m));
        evidence.insert("speed_factor".into(), json!(incident.speed_factor));
        evidence.insert("incident_kind".into(), json!(kind));
        let message = match incident.status {
            IncidentStatus::Active => format!(
                "Traffic {kind} {}: vehicles within {} m slowed to {:.0}% speed",
                incident.incident_id,
                incident.radius_m,
                incident.speed_factor * 100.0
            ),
            IncidentStatus::Cleared => format!("Traffic {kind} {} cleared", incident.incident_id),
        };
        let span = (incident.started_at, incident.expected_end);
        self.incident_alert(&incident.incident_id, incident.status, incident.severity, (incident.lat, incident.lon), span, incident.timestamp, message, evidence);
        Ok(())
    }

    fn on_city(&mut self, record: &Record, now: TimestampMs) -> Result<(), InvalidEvent> {
        let incident: CityIncident = decode(&record.payload)?;
        incident.validate(now, self.config.max_future_ms)?;
        self.observe(incident.timestamp);
        let mut evidence = serde_json::Map::new();
        evidence.insert("incident_kind".into(), json!(snake_name(&incident.kind)));
        evidence.insert("area".into(), json!(incident.area));
        evidence.insert("radius_m".into(), json!(incident.radius_m));
        evidence.insert("transit_effect".into(), json!(incident.transit_effect));
        if !incident.affected_routes.is_empty() {
            evidence.insert("affected_routes".into(), json!(incident.affected_routes));
        }
        if let Some(n) = incident.affected_customers {
            evidence.insert("affected_customers".into(), json!(n));
        }
        let effect = match (incident.transit_effect, incident.affected_routes.is_empty()) {
            (TransitEffect::Suspension, false) => format!("; service suspended on {}", incident.affected_routes.join(", ")),
            (TransitEffect::Slowdown, false) => format!("; delays on {}", incident.affected_routes.join(", ")),
            _ => String::new(),
        };
        let message = match incident.status {
            IncidentStatus::Active => format!("{} in {}{effect}", incident.message, incident.area),
            IncidentStatus::Cleared => format!("{} in {} is over", incident.message, incident.area),
        };
        let ends = incident.expires_at.or(incident.estimated_restoration).unwrap_or(incident.started_at);
        let span = (incident.started_at, ends);
        self.incident_alert(&incident.event_id, incident.status, incident.severity, (incident.lat, incident.lon), span, incident.timestamp, message, evidence);
        Ok(())
    }

    /// Raises an incident alert when an incident first becomes active and clears it
    /// when it ends. A repeated report of a known incident, or the clearance of one
    /// never seen, changes nothing worth an alert.
    #[allow(clippy::too_many_arguments)]
    fn incident_alert(
        &mut self,
        id: &Id,
        status: IncidentStatus,
        severity: Severity,
        (lat, lon): (f64, f64),
        (start, end): (TimestampMs, TimestampMs),
        ts: TimestampMs,
        message: String,
        evidence: serde_json::Map<String, serde_json::Value>,
    ) {
        let changed = match status {
            IncidentStatus::Active => self.incidents.insert(id.clone()),
            IncidentStatus::Cleared => self.incidents.remove(id),
        };
        if !changed {
            return;
        }
        self.alerts.push(Alert {
            alert_id: compact_str::format_compact!("incident:{id}"),
            kind: AlertKind::Incident,
            state: match status {
                IncidentStatus::Active => AlertState::Raised,
                IncidentStatus::Cleared => AlertState::Cleared,
            },
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
        });
    }

    fn flush_alerts(&mut self, out: &mut Vec<Record>) {
        for alert in self.alerts.drain(..) {
            match alert.state {
                AlertState::Raised => self.counts.alerts_raised += 1,
                AlertState::Cleared => self.counts.alerts_cleared += 1,
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
        self.counts.dead_letters += 1;
        tracing::debug!(topic = %record.topic, key = %record.key_str(), %error, "Record set aside as a dead letter");
        let letter = DeadLetter {
            source_topic: record.topic.to_string(),
            key: record.key_str().into_owned(),
            error: error.to_string(),
            payload: String::from_utf8_lossy(&record.payload).into_owned(),
            timestamp: record.timestamp,
        };
        out.push(Record::new(&self.topics.dead_letters, record.key.clone(), encode(&letter), record.timestamp));
    }
}

/// The wire name of an enum value (`"power_outage"`), for messages.
fn snake_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_763_884_800_000;

    fn tap(topics: &Topics, stop: &str, ts: i64) -> Record {
        let t = RiderTap { rider_id: "C1".into(), stop_id: stop.into(), route_id: None, timestamp: ts };
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
            p.on_record(&Record::new(&topics.rider_tapped_on, "k", Bytes::from_static(payload), T0), T0, &mut out);
        }
        let nan = br#"{"vehicle_id":"V1","route_id":"B01","trip_id":"t","timestamp":1763884800000,"lat":null,"lon":0,"bearing":0,"speed_mps":0,"next_stop_id":"S1","passengers":0,"capacity":80,"occupancy_status":"empty","delay_s":0,"status":"in_transit_to"}"#;
        p.on_record(&Record::new(&topics.vehicle_locations, "V1", Bytes::from_static(nan), T0), T0, &mut out);
        assert_eq!(p.counts().dead_letters, 4);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|r| r.topic == topics.dead_letters));
        let letter: DeadLetter = decode(&out[2].payload).unwrap();
        assert!(letter.error.contains("timestamp"), "{}", letter.error);
        // Good records after bad ones still flow.
        out.clear();
        p.on_record(&tap(&topics, "S1", T0), T0, &mut out);
        assert_eq!(p.counts().records_in, 5);
        assert!(out.is_empty());
    }

    #[test]
    fn a_burst_of_taps_raises_a_surge_on_both_alert_topics() {
        let topics = Topics::default();
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        let mut out = Vec::new();
        for i in 0..60 {
            p.on_record(&tap(&topics, "S0042", T0 + i * 50), T0, &mut out);
        }
        let surge: Vec<_> = out.iter().filter(|r| r.topic == topics.surge_alerts).collect();
        let alerts: Vec<_> = out.iter().filter(|r| r.topic == topics.alerts).collect();
        assert_eq!((surge.len(), alerts.len()), (1, 1));
        assert_eq!(&surge[0].key[..], b"S0042");
        let alert: Alert = decode(&alerts[0].payload).unwrap();
        assert_eq!((alert.kind, alert.state), (AlertKind::Surge, AlertState::Raised));
    }

    #[test]
    fn late_taps_go_to_the_side_output() {
        let topics = Topics::default();
        let mut p = Processor::new(topics.clone(), ProcessorConfig::default());
        let mut out = Vec::new();
        p.advance_idle(T0 + 3_600_000, &mut out);
        p.on_record(&tap(&topics, "S1", T0), T0 + 3_600_000, &mut out);
        assert_eq!(p.counts().late, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, topics.late_events);
    }
}

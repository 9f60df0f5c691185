//! StreamCity's stream processor, the replacement for the seed's ksqlDB scripts.
//!
//! [`Processor`] is the pure core: fed records and time, it decodes them (malformed
//! ones become dead letters), keeps the live vehicle table, moves the watermark, and
//! hands each event to its detectors in turn; it returns the records to publish.
//! [`runner::run`] is the async shell that moves records between the bus and the core.
//! The equivalent ksqlDB statements are in `ksql/`.
//!
//! - [`decode`]: input records to events, or dead letters with the reason;
//! - [`detector`]: the shape every detector shares (event in, watermark advance,
//!   release of a partition) and the context they raise alerts through;
//! - the detectors: [`surge`] (taps per stop in hopping windows), [`vehicles`] (delay,
//!   breakdown, stranded, lost contact, crowding), [`headways`] (bunching and gapping),
//!   [`incidents`] (incident alerts, and the incidents delays are blamed on);
//! - [`alerts`]: raise once, clear once; [`table`]: the live vehicle table;
//! - [`window`]: tumbling, hopping and session windows; [`watermark`]: per-partition
//!   watermarks in event time;
//! - [`handover`]: releasing and restoring partitions on a rebalance;
//! - [`checkpoint`]: the whole state saved and restored: a restored processor fed the
//!   rest of the input produces exactly what an uninterrupted one would have;
//!   [`replay`]: after a crash, what was published since the checkpoint is read back
//!   and not published again;
//! - [`config`]: every threshold, with its default.

pub mod alerts;
pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod detector;
pub mod groups;
pub mod handover;
pub mod headways;
pub mod health;
pub mod incidents;
pub mod replay;
pub mod runner;
pub mod surge;
pub mod table;
pub mod vehicles;
pub mod watermark;
pub mod window;

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use streamcity_core::{
    Alert, AlertKind, AlertState, ClockReading, InvalidEvent, Record, RiderTap, TimestampMs,
    Topics, VehiclePosition, VehicleStatus, encode,
};
use streamcity_network::Network;

use crate::alerts::AlertBook;
pub use crate::checkpoint::RestoreError;
pub use crate::config::ProcessorConfig;
pub use crate::decode::Decoded;
use crate::detector::{Context, Detector, Event};
use crate::headways::HeadwayDetector;
use crate::incidents::{IncidentAreas, IncidentDetector, IncidentReport};
use crate::surge::SurgeDetector;
use crate::table::{Latest, VehicleTable};
use crate::vehicles::VehicleDetector;
use crate::watermark::Watermarks;

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
    /// Dead letters by reason, in the order of [`InvalidEvent::REASONS`].
    #[serde(default)]
    pub dead_letter_reasons: [u64; InvalidEvent::REASONS.len()],
    /// Records read again after a restart that the restored state already reflected
    /// (skipped).
    #[serde(default)]
    pub replayed: u64,
}

impl ProcessorCounts {
    /// What happened since `earlier` (counters taken from the same processor before).
    pub fn since(&self, earlier: &ProcessorCounts) -> ProcessorCounts {
        let mut reasons = self.dead_letter_reasons;
        for (r, e) in reasons.iter_mut().zip(earlier.dead_letter_reasons) {
            *r = r.saturating_sub(e);
        }
        ProcessorCounts {
            records_in: self.records_in.saturating_sub(earlier.records_in),
            records_out: self.records_out.saturating_sub(earlier.records_out),
            dead_letters: self.dead_letters.saturating_sub(earlier.dead_letters),
            late: self.late.saturating_sub(earlier.late),
            alerts_raised: self.alerts_raised.saturating_sub(earlier.alerts_raised),
            replayed: self.replayed.saturating_sub(earlier.replayed),
            alerts_cleared: self.alerts_cleared.saturating_sub(earlier.alerts_cleared),
            dead_letter_reasons: reasons,
        }
    }
}

/// The detectors, in the order they see each event (vehicle detectors before line
/// detectors; windows close before silence is checked).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Detectors {
    surge: SurgeDetector,
    vehicles: VehicleDetector,
    headways: HeadwayDetector,
    incidents: IncidentDetector,
}

impl Detectors {
    fn all(&mut self) -> [&mut dyn Detector; 4] {
        [
            &mut self.surge,
            &mut self.vehicles,
            &mut self.headways,
            &mut self.incidents,
        ]
    }
}

/// Everything the processor remembers: what a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    table: VehicleTable,
    detectors: Detectors,
    /// Every incident in force, from this instance's partitions and from the feed all
    /// instances read ([`Processor::on_incident_area`]): the likely causes of delays.
    areas: IncidentAreas,
    /// The latest event time of an incident record, ms since the epoch.
    incidents_seen: TimestampMs,
    book: AlertBook,
    watermarks: Watermarks,
    counts: ProcessorCounts,
    /// Where each output partition ended when the state was checkpointed:
    /// `(topic, partition, offset)`. What was published after that is read back on
    /// restore, so that it is not published twice.
    #[serde(default)]
    output_marks: Vec<(String, i32, i64)>,
}

impl State {
    /// Runs `f` on every detector in turn with one context (and the live table);
    /// returns whether one marked the event late.
    fn each(
        &mut self,
        config: &ProcessorConfig,
        vehicle_topic: &str,
        network: Option<&Network>,
        alerts: &mut Vec<Alert>,
        mut f: impl FnMut(&mut dyn Detector, &VehicleTable, &mut Context<'_>),
    ) -> bool {
        let State {
            table,
            detectors,
            areas,
            book,
            watermarks,
            ..
        } = self;
        let mut cx = Context::new(config, network, areas, watermarks.current(), book, alerts)
            .with_streams(watermarks, vehicle_topic);
        for d in detectors.all() {
            f(d, table, &mut cx);
        }
        cx.is_late()
    }
}

/// The processor's state and logic, free of I/O.
#[derive(Debug, Clone)]
pub struct Processor {
    topics: Topics,
    config: ProcessorConfig,
    network: Option<Arc<Network>>,
    state: State,
    alerts: Vec<Alert>,
    /// Event-time ms per processing ms while the input is quiet (the producer's clock).
    speed: f64,
    /// The producer's clock, when it is known.
    clock: Option<ClockReading>,
    /// The input partitions a consumer group gave this instance (not checkpointed: a
    /// restarted one is given its own).
    assigned: std::collections::BTreeSet<(String, i32)>,
}

impl Processor {
    /// A processor reading and writing the given topics.
    pub fn new(topics: Topics, config: ProcessorConfig) -> Self {
        let state = State {
            table: VehicleTable::new(Latest::ByEventTime),
            detectors: Detectors {
                surge: SurgeDetector::new(config.surge.clone()),
                vehicles: VehicleDetector::default(),
                headways: HeadwayDetector::default(),
                incidents: IncidentDetector::default(),
            },
            areas: IncidentAreas::default(),
            incidents_seen: TimestampMs::MIN,
            book: AlertBook::default(),
            watermarks: Watermarks::new(config.allowed_lateness_ms, config.idle_timeout_ms),
            counts: ProcessorCounts::default(),
            output_marks: Vec::new(),
        };
        Processor {
            topics,
            config,
            network: None,
            state,
            alerts: Vec::new(),
            speed: 1.0,
            clock: None,
            assigned: std::collections::BTreeSet::new(),
        }
    }

    /// The same processor naming stops after `network` in its alerts (and placing
    /// them), so that an alert leaves the processor complete.
    pub fn with_network(mut self, network: Arc<Network>) -> Self {
        self.network = Some(network);
        self
    }

    /// The network alerts are named after, if any.
    pub fn network(&self) -> Option<&Arc<Network>> {
        self.network.as_ref()
    }

    /// Sets the pace of event time while the input is quiet: event-time ms per ms of
    /// the processing time passed to [`Processor::advance`] (the producer's clock
    /// speed; 0 once it has stopped). 1 by default.
    pub fn set_speed(&mut self, speed: f64) {
        if speed.is_finite() && speed >= 0.0 {
            self.speed = speed;
        }
    }

    /// Follows the producer's clock (read from the `network` topic): its pace sets
    /// [`Processor::set_speed`], and records up to `max_future_ms` ahead of where it
    /// says simulated time is are in bounds, even right after the stream jumped ahead
    /// (a producer restarted later). Processing time must then be wall-clock time.
    pub fn follow_clock(&mut self, reading: ClockReading) {
        if reading.is_valid() {
            self.set_speed(reading.speed);
            self.clock = Some(reading);
        }
    }

    /// The event time the input has reached by processing time `now`: what a record's
    /// time is judged against.
    fn reference(&self, now: TimestampMs) -> Option<TimestampMs> {
        let seen = self.state.watermarks.stream_clock(now, self.speed);
        let clock = self.clock.map(|c| c.sim_at(now));
        seen.max(clock)
    }

    /// The settings.
    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// The current watermark.
    pub fn watermark(&self) -> TimestampMs {
        self.state.watermarks.current()
    }

    /// The latest event time seen on any input partition, if any.
    pub fn event_time(&self) -> Option<TimestampMs> {
        self.state.watermarks.max_seen()
    }

    /// What the processor has done so far.
    pub fn counts(&self) -> ProcessorCounts {
        self.state.counts
    }

    /// A vehicle's latest report.
    pub fn vehicle(&self, id: &str) -> Option<&VehiclePosition> {
        self.state.table.get(&id.into()).map(|r| &r.position)
    }

    /// Vehicles in the live table.
    pub fn vehicle_count(&self) -> usize {
        self.state.table.len()
    }

    /// Active alerts.
    pub fn active_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.state.book.active()
    }

    /// Open surge windows.
    pub fn open_windows(&self) -> usize {
        self.state.detectors.surge.open_windows()
    }

    /// The offset of the next record of each input partition the state has not taken
    /// in: `(topic, partition, offset)`. A checkpoint holds them, and a restored
    /// processor skips the records before them.
    pub fn offsets(&self) -> Vec<(String, i32, i64)> {
        self.state.watermarks.offsets()
    }

    /// The offset of `partition` of `topic` the state expects to read next, when it
    /// has read that partition (or was restored from a checkpoint that had).
    pub fn expected_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.state.watermarks.next_offset(topic, partition)
    }

    /// Whether the state covers `partition` of `topic` (restored from a checkpoint taken
    /// while it was this instance's): then it resumes from its offset (or, if it had
    /// read none of it, from the group's), and nothing is restored from elsewhere.
    pub fn resumes(&self, topic: &str, partition: i32) -> bool {
        self.state.watermarks.covers(topic, partition)
    }

    /// Notes the input partitions known to have records not read yet (`(topic,
    /// partition)`; the others have none): they hold the watermark back however long
    /// they are quiet.
    pub fn set_behind(&mut self, behind: &[(String, i32)]) {
        self.state.watermarks.set_behind(behind);
    }

    /// Notes the assigned input partitions known to hold no records: they hold the
    /// watermark back no longer while waiting for a first record.
    pub fn set_empty(&mut self, empty: &[(String, i32)]) {
        self.state.watermarks.set_empty(empty);
    }

    /// Forgets the input offsets: on a bus that starts afresh (the memory bus) they
    /// name nothing.
    pub fn forget_offsets(&mut self) {
        self.state.watermarks.forget_offsets(None);
    }

    /// Where the output partitions ended when the state was taken (see
    /// [`Processor::set_output_marks`]).
    pub fn output_marks(&self) -> &[(String, i32, i64)] {
        &self.state.output_marks
    }

    /// Notes where each output partition ends (`(topic, partition, offset)`), just
    /// before a checkpoint: a processor restored from it reads back what was published
    /// after, and does not publish it again.
    pub fn set_output_marks(&mut self, marks: Vec<(String, i32, i64)>) {
        self.state.output_marks = marks;
    }

    /// Tells a restored processor that it runs again from processing time `now`: its
    /// partitions hold the watermark back until they deliver their backlog, rather than
    /// counting the downtime as quiet.
    pub fn restarted(&mut self, now: TimestampMs) {
        self.state.watermarks.restart_idle_timers(now);
    }

    /// Notes that a rebalance assigned `partition` of `topic` at processing time `now`:
    /// it holds the watermark back until it delivers (see [`Watermarks::expect`]).
    pub fn expect_partition(&mut self, topic: &str, partition: i32, now: TimestampMs) {
        self.state.watermarks.expect(topic, partition, now);
        self.assigned.insert((topic.to_owned(), partition));
    }

    /// The input partitions a consumer group gave this instance: `(topic, partition)`.
    pub fn assigned(&self) -> &std::collections::BTreeSet<(String, i32)> {
        &self.assigned
    }

    /// Decodes and validates a record of one of the input topics read at processing
    /// time `now`, judging its time against the event time the input has reached.
    pub fn decode(&self, record: &Record, now: TimestampMs) -> Result<Decoded, InvalidEvent> {
        let bound = self.config.max_future_ms;
        // Within bounds of the latest event seen (the usual case): no more to check.
        match decode::decode_input(
            &self.topics,
            record,
            self.state.watermarks.highest_seen(),
            bound,
        ) {
            Err(InvalidEvent::Ahead { .. }) => {
                // Ahead of it: judged against where event time has got to since.
                decode::decode_input(&self.topics, record, self.reference(now), bound)
            }
            decoded => decoded,
        }
    }

    /// Processes one record read from `partition` of its topic at processing time
    /// `now`; appends the records to publish to `out`. A record that does not decode or
    /// validate goes to the dead-letter topic with the reason.
    pub fn on_record(
        &mut self,
        record: &Record,
        partition: i32,
        now: TimestampMs,
        out: &mut Vec<Record>,
    ) {
        self.on_record_at(record, partition, None, now, out);
    }

    /// [`Processor::on_record`] for a record at `offset` of its partition (named in its
    /// dead letter, if it becomes one).
    pub fn on_record_at(
        &mut self,
        record: &Record,
        partition: i32,
        offset: Option<i64>,
        now: TimestampMs,
        out: &mut Vec<Record>,
    ) {
        if let Some(offset) = offset {
            if self
                .state
                .watermarks
                .next_offset(&record.topic, partition)
                .is_some_and(|next| offset < next)
            {
                // Read again after a restart: the restored state has it already.
                self.state.counts.replayed += 1;
                return;
            }
            self.state
                .watermarks
                .note_offset(&record.topic, partition, offset, now);
        }
        let limit = self.config.max_record_bytes;
        let decoded = if record.payload.len() > limit {
            // Larger than the stages may publish (the live table forwards reports).
            Err(InvalidEvent::TooLarge {
                bytes: record.payload.len(),
                limit,
            })
        } else {
            self.decode(record, now)
        };
        let decoded = decoded.and_then(|event| match &event {
            Decoded::Position(p) => self
                .leap(p, &record.topic, partition, now)
                .map_or(Ok(event), Err),
            _ => Ok(event),
        });
        let decoded = match decoded {
            // Far ahead of the stream: an outlier, unless enough in a row say the
            // stream itself moved on.
            Err(InvalidEvent::Ahead { .. })
                if self.state.watermarks.note_ahead(&record.topic, partition)
                    >= self.config.jump_after =>
            {
                tracing::warn!(topic = %record.topic, partition, "The stream's event time jumped ahead; following it");
                decode::decode_input(&self.topics, record, None, self.config.max_future_ms)
            }
            other => other,
        };
        match decoded {
            Ok(event) => self.on_decoded(&event, record, partition, now, out),
            Err(e) => {
                let c = &mut self.state.counts;
                c.records_in += 1;
                c.dead_letters += 1;
                c.dead_letter_reasons[e.reason_index()] += 1;
                c.records_out += 1;
                tracing::debug!(topic = %record.topic, key = %record.key_str(), error = %e, "Record set aside as a dead letter");
                out.push(decode::dead_letter(
                    &self.topics,
                    record,
                    Some(partition),
                    offset,
                    &e,
                ));
            }
        }
    }

    /// A report of a known vehicle far ahead of its previous one, of its partition's
    /// stream and of the stream as a whole, as an error; `None` for any other. Such a
    /// report (a vehicle's clock gone wrong) would otherwise say the vehicle had been
    /// out of contact all that time, and hide its real reports until the stream caught
    /// up with it.
    fn leap(
        &self,
        p: &VehiclePosition,
        topic: &str,
        partition: i32,
        now: TimestampMs,
    ) -> Option<InvalidEvent> {
        let bound = self.config.max_leap_ms;
        let beyond = |t: TimestampMs| p.timestamp.saturating_sub(t) > bound;
        let stream = self.state.watermarks.partition_time(topic, partition)?;
        if !beyond(stream) {
            return None;
        }
        let previous = self.state.table.get(&p.vehicle_id)?.position.timestamp;
        // The time the partitions agree on (a few records far ahead do not move it),
        // or the producer's clock.
        let whole = self
            .state
            .watermarks
            .event_clock(now, self.speed)
            .max(self.clock.map(|c| c.sim_at(now)))?;
        (beyond(previous) && beyond(whole)).then(|| InvalidEvent::Ahead {
            ts: p.timestamp,
            ahead_ms: p.timestamp - whole,
            bound_ms: bound,
        })
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
        let topic = match event {
            Decoded::Position(_) => &self.topics.vehicle_locations,
            Decoded::Tap(_) => &self.topics.rider_tapped_on,
            Decoded::TapOff(_) => &self.topics.rider_tapped_off,
            Decoded::Traffic(_) => &self.topics.traffic_incidents,
            Decoded::City(_) => &self.topics.city_incidents,
        };
        self.state
            .watermarks
            .observe(topic, partition, event.event_time(), now);
        match event {
            Decoded::Position(p) => self.on_position(p, record, partition, out),
            Decoded::Tap(tap) => self.on_tap(tap, record, partition, out),
            Decoded::TapOff(_) => {} // validated; no detector needs it
            Decoded::Traffic(i) => self.on_incident(&incidents::describe_traffic(i)),
            Decoded::City(i) => self.on_incident(&incidents::describe_city(i)),
        }
        self.flush_alerts(out);
        self.state.counts.records_out += (out.len() - before) as u64;
    }

    /// A decoded, validated vehicle report: updates the live table (publishing the row,
    /// the report's own bytes) and runs the detectors.
    fn on_position(
        &mut self,
        p: &VehiclePosition,
        record: &Record,
        partition: i32,
        out: &mut Vec<Record>,
    ) {
        let State {
            table,
            detectors,
            areas,
            book,
            watermarks,
            ..
        } = &mut self.state;
        // A row far ahead of its partition's stream (a report with a wrong clock) is
        // not trusted to be the vehicle's latest: its next report replaces it.
        let trusted_until = watermarks
            .partition_time(&self.topics.vehicle_locations, partition)
            .map_or(TimestampMs::MAX, |t| {
                t.saturating_add(self.config.max_leap_ms)
            });
        let Some((row, new)) = table.accept(p, partition, trusted_until) else {
            return; // older than the row: the table keeps the latest by event time
        };
        let event = Event::Position {
            report: p,
            previous: (!new).then_some(&row.position),
            partition,
            memory: &row.memory,
        };
        let mut cx = Context::new(
            &self.config,
            self.network.as_deref(),
            areas,
            watermarks.current(),
            book,
            &mut self.alerts,
        )
        .with_streams(watermarks, &self.topics.vehicle_locations);
        for d in detectors.all() {
            d.on_event(&event, &mut cx);
        }
        if p.status == VehicleStatus::OutOfService {
            // Gone for the day: out of the table, and a tombstone for its row.
            let key = row.position.vehicle_id.clone();
            table.delete(&key);
            out.push(
                Record::new(
                    &self.topics.live_vehicle_table,
                    Bytes::clone(&record.key),
                    Bytes::new(),
                    p.timestamp,
                )
                .partitioned_by(p.route_id.as_bytes()),
            );
            return;
        }
        if !new {
            row.update(p);
        }
        // The table row is the report itself: forward its bytes, no re-encoding. It goes
        // to the partition of the report (by line), so that partition p of the table
        // holds the vehicles of partition p of the reports.
        out.push(
            Record::new(
                &self.topics.live_vehicle_table,
                Bytes::clone(&record.key),
                Bytes::clone(&record.payload),
                p.timestamp,
            )
            .partitioned_by(p.route_id.as_bytes()),
        );
    }

    fn on_tap(&mut self, tap: &RiderTap, record: &Record, partition: i32, out: &mut Vec<Record>) {
        let event = Event::Tap { tap, partition };
        let late = self.state.each(
            &self.config,
            &self.topics.vehicle_locations,
            self.network.as_deref(),
            &mut self.alerts,
            |d, _, cx| d.on_event(&event, cx),
        );
        if late {
            self.state.counts.late += 1;
            tracing::debug!(stop = %tap.stop_id, ts = tap.timestamp, watermark = self.watermark(), "Late tap set aside");
            out.push(Record::new(
                &self.topics.late_events,
                Bytes::clone(&record.key),
                Bytes::clone(&record.payload),
                record.timestamp,
            ));
        }
    }

    fn on_incident(&mut self, report: &IncidentReport) {
        self.state.incidents_seen = self.state.incidents_seen.max(report.ts);
        self.state.areas.note(report);
        let event = Event::Incident(report);
        self.state.each(
            &self.config,
            &self.topics.vehicle_locations,
            self.network.as_deref(),
            &mut self.alerts,
            |d, _, cx| d.on_event(&event, cx),
        );
    }

    /// Notes an incident from the feed every instance reads in full (the incident topics
    /// outside the consumer group): keeps the areas of incidents in force, so that each
    /// instance names the likely cause of a delay as one instance alone would. Raises
    /// nothing: the instance reading the incident's partition in the group raises its
    /// alert, and sets aside what does not decode. Incidents over for longer than
    /// [`incidents::LINGER_MS`] before the latest event seen (an earlier run's) are
    /// skipped.
    pub fn on_incident_area(&mut self, record: &Record) {
        let report = match self.decode(record, TimestampMs::MIN) {
            Ok(Decoded::Traffic(i)) => incidents::describe_traffic(&i),
            Ok(Decoded::City(i)) => incidents::describe_city(&i),
            _ => return,
        };
        let s = &mut self.state;
        s.incidents_seen = s.incidents_seen.max(report.ts);
        let latest = s
            .watermarks
            .max_seen()
            .unwrap_or(i64::MIN)
            .max(s.incidents_seen);
        if report
            .area
            .ends
            .max(report.ts)
            .saturating_add(incidents::LINGER_MS)
            >= latest
        {
            s.areas.note(&report);
        }
    }

    /// Moves the watermark on at processing time `now` (from the partitions' event
    /// times, or, when they are all quiet, from the latest event at the producer's
    /// pace), closing windows, checking for lost contact and clearing alerts; appends
    /// what to publish. Called after each batch and on idle ticks.
    pub fn advance(&mut self, now: TimestampMs, out: &mut Vec<Record>) {
        let before = out.len();
        let watermark = self.state.watermarks.advance(now, self.speed);
        self.state.areas.expire(watermark);
        self.state.each(
            &self.config,
            &self.topics.vehicle_locations,
            self.network.as_deref(),
            &mut self.alerts,
            |d, table, cx| d.on_watermark(table, cx),
        );
        self.flush_window_counts(out);
        self.flush_alerts(out);
        self.state.counts.records_out += (out.len() - before) as u64;
    }

    /// The input has ended (a file read to its end): closes every window still open,
    /// as a final watermark would, publishing their counts and the surges they raise
    /// or clear. Nothing else moves on: vehicles are not taken to have gone silent,
    /// nor incidents to have ended, for lack of records after the last.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        let before = out.len();
        let State {
            detectors, book, ..
        } = &mut self.state;
        detectors.surge.finish(book, &mut self.alerts);
        self.flush_window_counts(out);
        self.flush_alerts(out);
        self.state.counts.records_out += (out.len() - before) as u64;
    }

    /// Publishes the windows closed since the last call on `stop_tap_counts` (when
    /// asked to: `surge.emit_window_counts`), keyed by stop.
    fn flush_window_counts(&mut self, out: &mut Vec<Record>) {
        for w in self.state.detectors.surge.take_closed() {
            let value = serde_json::json!({
                "stop_id": &*w.key,
                "window_start": w.start,
                "window_end": w.end,
                "taps": w.count,
            });
            out.push(Record::new(
                &self.topics.stop_tap_counts,
                Bytes::copy_from_slice(w.key.as_bytes()),
                Bytes::from(value.to_string()),
                w.end,
            ));
        }
    }

    /// Publishes the alerts raised and cleared since the last call: every one on
    /// `alerts`, surges also on `surge_alerts`.
    fn flush_alerts(&mut self, out: &mut Vec<Record>) {
        for alert in self.alerts.drain(..) {
            match alert.state {
                AlertState::Raised => self.state.counts.alerts_raised += 1,
                AlertState::Cleared => self.state.counts.alerts_cleared += 1,
                AlertState::Updated => {}
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
}

/// The topics the processor reads.
pub fn inputs(topics: &Topics) -> [&Arc<str>; 5] {
    [
        &topics.vehicle_locations,
        &topics.rider_tapped_on,
        &topics.rider_tapped_off,
        &topics.traffic_incidents,
        &topics.city_incidents,
    ]
}

#[cfg(test)]
pub(crate) mod tests;

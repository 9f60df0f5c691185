//! Watermarks: how far event time has surely progressed.
//!
//! Each input partition's watermark is the highest event time at least [`AGREEMENT`]
//! of its records have reached, less the allowed lateness: a few records far ahead of
//! the rest of their partition (a clock gone wrong, or a hostile producer) do not drag
//! it, or anything that judges by it, ahead. The processor's watermark is the lowest among partitions that are
//! active, so a partition lagging behind holds windows open for it. A partition that has
//! been quiet for the idle timeout (measured in processing time) stops holding the
//! others back; when every partition is quiet, event time moves on from the latest
//! event seen at the pace of the stream's clock (`speed` event-time seconds per
//! processing second), so that windows close when traffic stops. Nothing here compares
//! an event time with the processor's own clock: a backfill of yesterday or a stream
//! at 3600× is judged as a live one. The watermark never goes back.

use serde::{Deserialize, Serialize};
use streamcity_core::TimestampMs;

/// Records of a partition that must have reached an event time for its watermark to
/// follow.
pub const AGREEMENT: usize = 3;

/// How long a partition just assigned (or resumed after a restart) holds the watermark
/// back while it has delivered nothing, ms: its backlog may be fetched after the
/// others'. One with nothing at all to deliver lets go after this.
pub const FIRST_RECORD_WAIT_MS: i64 = 30_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Partition {
    topic: String,
    partition: i32,
    /// The time [`AGREEMENT`] of its records have reached (the lowest seen while it
    /// has had fewer).
    max_ts: TimestampMs,
    /// Its highest event times, highest first, [`AGREEMENT`] at most.
    #[serde(default)]
    top: Vec<TimestampMs>,
    /// Clock time of its last record.
    seen_at: TimestampMs,
    /// The offset of the next record to read: everything before it is reflected in the
    /// state (known only on buses that keep records).
    #[serde(default)]
    next_offset: Option<i64>,
    /// Known to have records not read yet (its end is past its next offset): it holds
    /// the watermark back however long it has been quiet.
    #[serde(skip)]
    behind: bool,
    /// Assigned to this instance (until released).
    #[serde(default)]
    assigned: bool,
    /// Assigned (or resumed after a restart) and not delivered a record yet: it holds
    /// the watermark back until then, or until this processing time.
    #[serde(skip, default = "never")]
    waiting_until: TimestampMs,
}

impl Partition {
    /// Takes a record's event time; returns the time the partition agrees on.
    fn take(&mut self, ts: TimestampMs) -> TimestampMs {
        if self.top.is_empty() && self.max_ts > TimestampMs::MIN {
            self.top.push(self.max_ts); // from a checkpoint that kept only the time
        }
        if self.top.len() < AGREEMENT || ts > self.top[AGREEMENT - 1] {
            let at = self.top.partition_point(|&t| t > ts);
            self.top.insert(at, ts);
            self.top.truncate(AGREEMENT);
        }
        self.max_ts = self.top.last().copied().unwrap_or(ts);
        self.max_ts
    }
}

/// Records in a row that were too far ahead of a partition's stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AheadRun {
    topic: String,
    partition: i32,
    records: u32,
}

fn never() -> TimestampMs {
    TimestampMs::MIN
}

/// Per-partition watermark tracking.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watermarks {
    lateness_ms: i64,
    idle_ms: i64,
    partitions: Vec<Partition>,
    #[serde(default)]
    ahead: Vec<AheadRun>,
    /// The highest event time any partition agrees on (`MIN` before the first).
    #[serde(default = "never")]
    latest: TimestampMs,
    /// The highest event time of any record (`MIN` before the first).
    #[serde(default = "never")]
    highest: TimestampMs,
    current: TimestampMs,
    #[serde(skip)]
    last_hit: usize,
}

impl Watermarks {
    /// Tracking with the given allowed lateness and idle timeout.
    pub fn new(lateness_ms: i64, idle_ms: i64) -> Self {
        Watermarks {
            lateness_ms,
            idle_ms,
            partitions: Vec::new(),
            ahead: Vec::new(),
            latest: TimestampMs::MIN,
            highest: TimestampMs::MIN,
            current: TimestampMs::MIN,
            last_hit: 0,
        }
    }

    /// The watermark.
    pub fn current(&self) -> TimestampMs {
        self.current
    }

    /// The highest event time any partition has reached (with [`AGREEMENT`] records),
    /// if any.
    pub fn max_seen(&self) -> Option<TimestampMs> {
        (self.latest > TimestampMs::MIN).then_some(self.latest)
    }

    /// `topic`/`partition`'s entry, created when missing (seen first at `now`).
    fn entry(&mut self, topic: &str, partition: i32, now: TimestampMs) -> usize {
        if let Some(i) = self.find(topic, partition) {
            return i;
        }
        self.partitions.push(Partition {
            topic: topic.to_owned(),
            partition,
            max_ts: TimestampMs::MIN,
            top: Vec::new(),
            seen_at: now,
            next_offset: None,
            behind: false,
            assigned: false,
            waiting_until: TimestampMs::MIN,
        });
        self.partitions.len() - 1
    }

    /// Notes that `topic`/`partition` was assigned at processing time `now`: until it
    /// delivers a record (or has been quiet for the idle timeout, and is not known to
    /// be behind its end) it holds the watermark back, so that a partition read in full
    /// from a backlog does not push the records of those not read yet out as late.
    pub fn expect(&mut self, topic: &str, partition: i32, now: TimestampMs) {
        let i = self.entry(topic, partition, now);
        let p = &mut self.partitions[i];
        p.seen_at = now;
        p.assigned = true;
        p.waiting_until = now.saturating_add(FIRST_RECORD_WAIT_MS);
    }

    /// Whether `topic`/`partition` was this instance's when the state was taken (read
    /// from, or assigned to it): then the state resumes it.
    pub fn covers(&self, topic: &str, partition: i32) -> bool {
        self.find(topic, partition).is_some_and(|i| {
            self.partitions[i].assigned || self.partitions[i].next_offset.is_some()
        })
    }

    /// Restarts every partition's idle timer at processing time `now`: after a
    /// restart, partitions hold the watermark back until they deliver their backlog
    /// (or stay quiet for the idle timeout), instead of counting the downtime as quiet
    /// and letting event time run ahead of the records not read yet.
    pub fn restart_idle_timers(&mut self, now: TimestampMs) {
        for p in &mut self.partitions {
            p.seen_at = now;
            if p.assigned {
                p.waiting_until = now.saturating_add(FIRST_RECORD_WAIT_MS);
            }
        }
    }

    /// The highest event time of any record, if any: what a record's time is judged
    /// against (one far ahead of the rest does not move the watermark, but the records
    /// after it are not refused for following it).
    pub fn highest_seen(&self) -> Option<TimestampMs> {
        (self.highest > TimestampMs::MIN).then_some(self.highest.max(self.latest))
    }

    /// The event time the stream has reached by processing time `now`: the latest
    /// event the partitions agree on, moved on at `speed` since the last arrival (and
    /// never behind what the watermark already stands for). `None` before the first
    /// event.
    pub fn event_clock(&self, now: TimestampMs, speed: f64) -> Option<TimestampMs> {
        self.moved_on(self.max_seen()?, now, speed)
    }

    /// [`Watermarks::event_clock`] from the highest event time of any record.
    pub fn stream_clock(&self, now: TimestampMs, speed: f64) -> Option<TimestampMs> {
        self.moved_on(self.highest_seen()?, now, speed)
    }

    fn moved_on(&self, latest: TimestampMs, now: TimestampMs, speed: f64) -> Option<TimestampMs> {
        let arrived = self
            .partitions
            .iter()
            .map(|p| p.seen_at)
            .max()
            .unwrap_or(now);
        let idle = now.saturating_sub(arrived).max(0) as f64;
        let speed = if speed.is_finite() {
            speed.max(0.0)
        } else {
            1.0
        };
        let moved_on =
            latest.saturating_add((idle * speed).min(i64::MAX as f64 / 2.0) as TimestampMs);
        Some(moved_on.max(self.current.saturating_add(self.lateness_ms)))
    }

    /// Notes a record of `topic`/`partition` too far ahead of the stream; returns how
    /// many have been in a row on that partition.
    pub fn note_ahead(&mut self, topic: &str, partition: i32) -> u32 {
        match self
            .ahead
            .iter_mut()
            .find(|a| a.partition == partition && a.topic == topic)
        {
            Some(a) => {
                a.records += 1;
                a.records
            }
            None => {
                self.ahead.push(AheadRun {
                    topic: topic.to_owned(),
                    partition,
                    records: 1,
                });
                1
            }
        }
    }

    /// `topic`/`partition`'s entry, if it has one (the one of the last record first).
    fn find(&self, topic: &str, partition: i32) -> Option<usize> {
        match self.partitions.get(self.last_hit) {
            Some(p) if p.partition == partition && p.topic == topic => Some(self.last_hit),
            _ => self
                .partitions
                .iter()
                .position(|p| p.partition == partition && p.topic == topic),
        }
    }

    /// Notes that the record at `offset` of `topic`/`partition` has been taken into
    /// the state.
    pub fn note_offset(&mut self, topic: &str, partition: i32, offset: i64, now: TimestampMs) {
        let i = self.entry(topic, partition, now);
        let next = &mut self.partitions[i].next_offset;
        *next = Some(next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// The offset of the next record of `topic`/`partition` the state has not taken
    /// in, when known.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.find(topic, partition)
            .and_then(|i| self.partitions[i].next_offset)
    }

    /// Every partition's next offset: `(topic, partition, offset)`.
    pub fn offsets(&self) -> Vec<(String, i32, i64)> {
        self.partitions
            .iter()
            .filter_map(|p| Some((p.topic.clone(), p.partition, p.next_offset?)))
            .collect()
    }

    /// Notes which partitions have records not read yet: `(topic, partition)` of every
    /// partition behind its end; the others are not. A partition behind holds the
    /// watermark back however long it has been quiet: a backlog not fetched yet, or a
    /// partition between owners, is not a partition with nothing to say.
    pub fn set_behind(&mut self, behind: &[(String, i32)]) {
        for p in &mut self.partitions {
            p.behind = behind
                .iter()
                .any(|(t, n)| *n == p.partition && *t == p.topic);
        }
    }

    /// Notes assigned partitions known to hold no records at all (`(topic,
    /// partition)`): nothing is coming from them, so they stop holding the watermark
    /// back while waiting for a first record.
    pub fn set_empty(&mut self, empty: &[(String, i32)]) {
        for p in &mut self.partitions {
            if p.top.is_empty()
                && empty
                    .iter()
                    .any(|(t, n)| *n == p.partition && *t == p.topic)
            {
                p.waiting_until = TimestampMs::MIN;
            }
        }
    }

    /// Forgets the offsets (they name nothing on a bus that starts afresh), or those of
    /// one partition (given to another instance: what it reads is none of this one's).
    pub fn forget_offsets(&mut self, only: Option<(&str, i32)>) {
        for p in &mut self.partitions {
            if only.is_none_or(|(t, n)| p.topic == t && p.partition == n) {
                p.next_offset = None;
                p.assigned = false;
                p.behind = false;
            }
        }
    }

    /// The time `topic`/`partition` has reached (with [`AGREEMENT`] records), if it
    /// has that many.
    pub fn partition_time(&self, topic: &str, partition: i32) -> Option<TimestampMs> {
        let p = &self.partitions[self.find(topic, partition)?];
        (p.top.len() >= AGREEMENT).then_some(p.max_ts)
    }

    /// Notes a record of `topic`/`partition` at event time `ts`, seen at processing
    /// time `now`.
    pub fn observe(&mut self, topic: &str, partition: i32, ts: TimestampMs, now: TimestampMs) {
        // Records arrive in runs from one partition: `find` tries the last one first.
        let i = self.entry(topic, partition, now);
        self.last_hit = i;
        let p = &mut self.partitions[i];
        let agreed = p.take(ts);
        p.seen_at = now;
        self.latest = self.latest.max(agreed);
        self.highest = self.highest.max(ts);
        if !self.ahead.is_empty() {
            self.ahead
                .retain(|a| !(a.partition == partition && a.topic == topic));
        }
    }

    /// Recomputes the watermark at processing time `now` and returns it. `speed` is
    /// how many ms of event time pass per ms of processing time while every partition
    /// is quiet (the producer's clock: 1 in real time, 10 at `--speed 10`, 0 once it
    /// has stopped).
    pub fn advance(&mut self, now: TimestampMs, speed: f64) -> TimestampMs {
        let active = self
            .partitions
            .iter()
            .filter(|p| {
                p.behind
                    || now.saturating_sub(p.seen_at) < self.idle_ms
                    || (p.top.is_empty() && now < p.waiting_until)
            })
            .map(|p| p.max_ts)
            .min();
        let candidate = match active {
            Some(ts) => ts,
            // Everything is quiet: event time moves on from the latest event seen.
            None => match self.event_clock(now, speed) {
                Some(ts) => ts,
                None => return self.current, // nothing seen yet: nothing to go on
            },
        };
        self.current = self.current.max(candidate.saturating_sub(self.lateness_ms));
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_active_partition_holds_the_watermark() {
        let mut w = Watermarks::new(1_000, 5_000);
        w.observe("a", 0, 10_000, 0);
        w.observe("a", 1, 50_000, 0);
        assert_eq!(w.advance(0, 1.0), 9_000);
        for ts in [60_000, 60_001, 60_002] {
            w.observe("a", 0, ts, 1);
        }
        assert_eq!(w.advance(1, 1.0), 49_000);
    }

    #[test]
    fn a_few_records_far_ahead_of_their_partition_do_not_drag_it() {
        let mut w = Watermarks::new(1_000, 5_000);
        for p in 0..4 {
            for ts in [10_000, 10_100, 10_200] {
                w.observe("a", p, ts, 0);
            }
        }
        assert_eq!(w.advance(0, 1.0), 9_000);
        // One record 290 s ahead on every partition, then the stream goes on.
        for p in 0..4 {
            w.observe("a", p, 300_000, 1);
            w.observe("a", p, 10_300, 1);
        }
        assert_eq!(w.advance(1, 1.0), 9_200);
        assert_eq!(w.max_seen(), Some(10_200));
        assert_eq!(w.partition_time("a", 0), Some(10_200));
        // Two of them are still not agreement...
        for p in 0..4 {
            w.observe("a", p, 300_000, 2);
        }
        assert_eq!(w.advance(2, 1.0), 9_300);
        // ... three are: the stream has moved on.
        for p in 0..4 {
            w.observe("a", p, 300_500, 3);
        }
        assert_eq!(w.advance(3, 1.0), 299_000);
    }

    #[test]
    fn a_partition_known_to_be_behind_holds_the_watermark_however_quiet() {
        let mut w = Watermarks::new(1_000, 5_000);
        for ts in [10_000, 10_100, 10_200] {
            w.observe("a", 0, ts, 0);
            w.observe("a", 1, ts + 50_000, 0);
        }
        w.set_behind(&[("a".to_owned(), 0)]);
        assert_eq!(w.advance(60_000, 1.0), 9_000, "partition 0 has a backlog");
        w.set_behind(&[]);
        // Caught up: quiet is quiet again, and event time moves on.
        assert_eq!(w.advance(60_000, 1.0), 119_000);
    }

    #[test]
    fn an_assigned_partition_holds_the_watermark_until_known_to_be_empty() {
        let mut w = Watermarks::new(1_000, 5_000);
        for ts in [10_000, 10_100, 10_200] {
            w.observe("a", 0, ts, 0);
        }
        w.expect("a", 1, 0);
        assert!(
            w.advance(20_000, 1.0) <= 9_000,
            "partition 1 may still deliver"
        );
        w.set_empty(&[("a".to_owned(), 1)]);
        assert!(w.advance(20_000, 1.0) > 10_200, "nothing is coming from it");
    }

    #[test]
    fn after_a_restart_partitions_hold_the_watermark_until_they_deliver() {
        let mut w = Watermarks::new(1_000, 5_000);
        for ts in [10_000, 10_100, 10_200] {
            w.observe("a", 0, ts, 0);
        }
        // Down for a minute: without restarting the timers, the minute would count as
        // quiet and event time would run ahead of the backlog.
        w.restart_idle_timers(60_000);
        assert_eq!(w.advance(60_000, 1.0), 9_000);
        w.observe("a", 0, 10_300, 60_001);
        assert_eq!(w.advance(60_001, 1.0), 9_100);
        // Quiet for the idle timeout after that: event time moves on again.
        assert_eq!(w.advance(65_001, 1.0), 14_100);
    }

    #[test]
    fn idle_partitions_stop_holding_it_back_and_event_time_moves_on_from_the_last_event() {
        let mut w = Watermarks::new(1_000, 5_000);
        w.observe("a", 0, 10_000, 0);
        w.observe("b", 0, 50_000, 4_000);
        assert_eq!(w.advance(4_000, 1.0), 9_000);
        // Partition a has been quiet for 5 s of processing time.
        assert_eq!(w.advance(5_000, 1.0), 49_000);
        // Both quiet: event time moves on from the last event, at the stream's pace.
        assert_eq!(w.advance(10_000, 1.0), 55_000);
        assert_eq!(w.advance(11_000, 10.0), 119_000);
        // Never backwards.
        w.observe("a", 0, 20_000, 11_001);
        assert_eq!(w.advance(11_001, 1.0), 119_000);
    }

    #[test]
    fn an_assigned_partition_not_read_yet_holds_the_watermark_back() {
        let mut w = Watermarks::new(1_000, 5_000);
        w.expect("a", 1, 0);
        w.observe("a", 0, 60_000, 100);
        assert_eq!(
            w.advance(100, 1.0),
            TimestampMs::MIN,
            "partition 1 may be behind"
        );
        w.observe("a", 1, 10_000, 200);
        assert_eq!(w.advance(200, 1.0), 9_000);
        // An assigned partition that never delivers holds it for a while (its backlog
        // may come after the others'), then lets go.
        let mut w = Watermarks::new(1_000, 5_000);
        w.expect("a", 1, 0);
        w.observe("a", 0, 60_000, 100);
        assert_eq!(w.advance(5_000, 1.0), TimestampMs::MIN);
        w.observe("a", 0, 60_000, FIRST_RECORD_WAIT_MS);
        assert_eq!(w.advance(FIRST_RECORD_WAIT_MS, 1.0), 59_000);
        assert_eq!(w.max_seen(), Some(60_000));
    }

    #[test]
    fn the_processors_own_clock_does_not_matter() {
        // Yesterday's records read today, or a year ahead of them: the same watermark.
        for now in [0, 1_763_884_800_000, 1_800_000_000_000] {
            let mut w = Watermarks::new(1_000, 5_000);
            assert_eq!(
                w.advance(now, 1.0),
                TimestampMs::MIN,
                "nothing seen, nothing known"
            );
            w.observe("a", 0, 1_700_000_000_000, now);
            assert_eq!(w.advance(now, 1.0), 1_699_999_999_000);
            assert_eq!(w.advance(now + 60_000, 1.0), 1_700_000_059_000);
            assert_eq!(
                w.advance(now + 120_000, 0.0),
                1_700_000_059_000,
                "a stopped clock"
            );
        }
    }
}

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

    /// Notes that `topic`/`partition` was assigned at processing time `now`: until it
    /// delivers a record (or has been quiet for the idle timeout) it holds the watermark
    /// back, so that a partition read in full from a backlog does not push the records
    /// of those not read yet out as late.
    pub fn expect(&mut self, topic: &str, partition: i32, now: TimestampMs) {
        if !self
            .partitions
            .iter()
            .any(|p| p.partition == partition && p.topic == topic)
        {
            self.partitions.push(Partition {
                topic: topic.to_owned(),
                partition,
                max_ts: TimestampMs::MIN,
                top: Vec::new(),
                seen_at: now,
            });
        }
    }

    /// Restarts every partition's idle timer at processing time `now`: after a
    /// restart, partitions hold the watermark back until they deliver their backlog
    /// (or stay quiet for the idle timeout), instead of counting the downtime as quiet
    /// and letting event time run ahead of the records not read yet.
    pub fn restart_idle_timers(&mut self, now: TimestampMs) {
        for p in &mut self.partitions {
            p.seen_at = now;
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

    /// The time `topic`/`partition` has reached (with [`AGREEMENT`] records), if it
    /// has that many.
    pub fn partition_time(&self, topic: &str, partition: i32) -> Option<TimestampMs> {
        let p = match self.partitions.get(self.last_hit) {
            Some(p) if p.partition == partition && p.topic == topic => p,
            _ => self
                .partitions
                .iter()
                .find(|p| p.partition == partition && p.topic == topic)?,
        };
        (p.top.len() >= AGREEMENT).then_some(p.max_ts)
    }

    /// Notes a record of `topic`/`partition` at event time `ts`, seen at processing
    /// time `now`.
    pub fn observe(&mut self, topic: &str, partition: i32, ts: TimestampMs, now: TimestampMs) {
        // Records arrive in runs from one partition: try the last one first.
        let i = match self.partitions.get(self.last_hit) {
            Some(p) if p.partition == partition && p.topic == topic => self.last_hit,
            _ => match self
                .partitions
                .iter()
                .position(|p| p.partition == partition && p.topic == topic)
            {
                Some(i) => i,
                None => {
                    self.partitions.push(Partition {
                        topic: topic.to_owned(),
                        partition,
                        max_ts: TimestampMs::MIN,
                        top: Vec::new(),
                        seen_at: now,
                    });
                    self.partitions.len() - 1
                }
            },
        };
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
            .filter(|p| now.saturating_sub(p.seen_at) < self.idle_ms)
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
        // An assigned partition that never delivers stops holding it after the timeout.
        let mut w = Watermarks::new(1_000, 5_000);
        w.expect("a", 1, 0);
        w.observe("a", 0, 60_000, 100);
        assert_eq!(w.advance(5_000, 1.0), 59_000);
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

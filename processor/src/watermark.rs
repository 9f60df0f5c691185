//! Watermarks: how far event time has surely progressed.
//!
//! Each input partition's watermark is the highest event time seen on it, less the
//! allowed lateness. The processor's watermark is the lowest among partitions that are
//! active, so a partition lagging behind holds windows open for it. A partition that has
//! been quiet for the idle timeout (measured on the clock) stops holding the others
//! back; when every partition is quiet, the watermark advances with the clock, so that
//! windows close when traffic stops. The watermark never goes back.

use serde::{Deserialize, Serialize};
use streamcity_core::TimestampMs;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Partition {
    topic: String,
    partition: i32,
    max_ts: TimestampMs,
    /// Clock time of its last record.
    seen_at: TimestampMs,
}

/// Per-partition watermark tracking.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watermarks {
    lateness_ms: i64,
    idle_ms: i64,
    partitions: Vec<Partition>,
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
            current: TimestampMs::MIN,
            last_hit: 0,
        }
    }

    /// The watermark.
    pub fn current(&self) -> TimestampMs {
        self.current
    }

    /// Notes a record of `topic`/`partition` at event time `ts`, seen at clock time `now`.
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
                        max_ts: ts,
                        seen_at: now,
                    });
                    self.partitions.len() - 1
                }
            },
        };
        self.last_hit = i;
        let p = &mut self.partitions[i];
        p.max_ts = p.max_ts.max(ts);
        p.seen_at = now;
    }

    /// Recomputes the watermark at clock time `now` and returns it.
    pub fn advance(&mut self, now: TimestampMs) -> TimestampMs {
        let active = self
            .partitions
            .iter()
            .filter(|p| now.saturating_sub(p.seen_at) < self.idle_ms)
            .map(|p| p.max_ts)
            .min();
        let candidate = match active {
            Some(ts) => ts,
            // Everything is quiet: event time moves on with the clock.
            None => now.max(
                self.partitions
                    .iter()
                    .map(|p| p.max_ts)
                    .max()
                    .unwrap_or(now),
            ),
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
        assert_eq!(w.advance(0), 9_000);
        w.observe("a", 0, 60_000, 1);
        assert_eq!(w.advance(1), 49_000);
    }

    #[test]
    fn idle_partitions_stop_holding_it_back_and_the_clock_takes_over() {
        let mut w = Watermarks::new(1_000, 5_000);
        w.observe("a", 0, 10_000, 0);
        w.observe("b", 0, 50_000, 4_000);
        assert_eq!(w.advance(4_000), 9_000);
        // Partition a has been quiet for 5 s of clock time.
        assert_eq!(w.advance(5_000), 49_000);
        // Both quiet: the clock moves it on.
        assert_eq!(w.advance(100_000), 99_000);
        // Never backwards.
        w.observe("a", 0, 20_000, 100_001);
        assert_eq!(w.advance(100_001), 99_000);
    }
}

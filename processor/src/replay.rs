//! Exactly the same outputs after a crash. A checkpoint holds the offsets of the input
//! records it reflects and where each output partition ended; a processor restored from
//! it reads its inputs again from those offsets (skipping what the state already has)
//! and reads back what was published after the checkpoint, before the crash: those
//! records are not published a second time when the replay produces them again.
//!
//! The topics read back are those whose records are events (alerts, late taps, dead
//! letters). The live vehicle table is a table: a report published again is the same
//! latest value for its key, and is let through.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use streamcity_core::{Bus, BusError, Record, Topics};

/// The output topics read back after a restart.
pub fn event_outputs(topics: &Topics) -> [&str; 4] {
    [
        &topics.alerts,
        &topics.surge_alerts,
        &topics.late_events,
        &topics.dead_letters,
    ]
}

/// Where each partition of the event outputs ends now: `(topic, partition, offset)`.
pub async fn output_marks<B: Bus>(
    bus: &B,
    topics: &Topics,
) -> Result<Vec<(String, i32, i64)>, BusError> {
    let mut marks = Vec::new();
    for topic in event_outputs(topics) {
        for (partition, end) in bus.end_offsets(topic).await?.into_iter().enumerate() {
            marks.push((topic.to_owned(), partition as i32, end));
        }
    }
    Ok(marks)
}

/// Records already published, by content, with how many times each was.
#[derive(Debug, Default)]
pub struct Published {
    seen: HashMap<u64, u32>,
    /// Outputs not published again so far.
    pub suppressed: u64,
    /// When the replay last met an output it had published (or the read-back).
    last_met: Option<std::time::Instant>,
}

/// With nothing met again for this long, the outputs read back and not produced again
/// are let go (the replay is over; what remains will not come again).
pub const REPLAY_QUIET: std::time::Duration = std::time::Duration::from_secs(300);

fn fingerprint(record: &Record) -> u64 {
    let mut h = DefaultHasher::new();
    record.topic.hash(&mut h);
    record.key.hash(&mut h);
    record.payload.hash(&mut h);
    h.finish()
}

impl Published {
    /// What was published after `marks` (from a checkpoint), read back from the bus.
    pub async fn read_back<B: Bus>(
        bus: &B,
        marks: &[(String, i32, i64)],
    ) -> Result<Published, BusError> {
        let mut published = Published {
            last_met: Some(std::time::Instant::now()),
            ..Published::default()
        };
        for (topic, partition, from) in marks {
            for delivery in bus.read_range(topic, *partition, *from, None).await? {
                *published
                    .seen
                    .entry(fingerprint(&delivery.record))
                    .or_insert(0) += 1;
            }
        }
        Ok(published)
    }

    /// Records still expected from the replay.
    pub fn pending(&self) -> usize {
        self.seen.len()
    }

    /// Lets go of what was read back once the replay has met none of it for
    /// [`REPLAY_QUIET`] at `now`; returns how many records were let go.
    pub fn expire(&mut self, now: std::time::Instant) -> usize {
        if self.seen.is_empty() || self.last_met.is_some_and(|t| now - t < REPLAY_QUIET) {
            return 0;
        }
        let left: u32 = self.seen.values().sum();
        self.seen.clear();
        left as usize
    }

    /// Whether `record` was published already (and is not to be again): true once per
    /// copy read back.
    pub fn already(&mut self, record: &Record) -> bool {
        if self.seen.is_empty() {
            return false;
        }
        let key = fingerprint(record);
        match self.seen.get_mut(&key) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.seen.remove(&key);
                }
                self.suppressed += 1;
                self.last_met = Some(std::time::Instant::now());
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_replay_never_meets_again_is_let_go_after_a_quiet_while() {
        let mut p = Published::default();
        let a = Record::new(&"alerts".into(), "k", bytes::Bytes::from_static(b"1"), 0);
        *p.seen.entry(fingerprint(&a)).or_insert(0) += 3;
        let start = std::time::Instant::now();
        p.last_met = Some(start);
        assert!(p.already(&a));
        assert_eq!(p.expire(std::time::Instant::now()), 0, "still replaying");
        assert_eq!(p.expire(start + REPLAY_QUIET * 2), 2);
        assert_eq!(p.pending(), 0);
        assert!(!p.already(&a));
    }

    #[test]
    fn each_copy_read_back_stops_one_publication() {
        let mut p = Published::default();
        let a = Record::new(&"alerts".into(), "k", bytes::Bytes::from_static(b"1"), 0);
        let b = Record::new(&"alerts".into(), "k", bytes::Bytes::from_static(b"2"), 0);
        *p.seen.entry(fingerprint(&a)).or_insert(0) += 2;
        assert!(!p.already(&b), "another value");
        assert!(p.already(&a));
        assert!(p.already(&a));
        assert!(!p.already(&a), "published twice before, not a third time");
        assert_eq!((p.pending(), p.suppressed), (0, 2));
    }
}

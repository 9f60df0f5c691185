//! Event-time windows: records counted per key in hopping windows aligned to the UTC
//! epoch (start inclusive, end exclusive), closed when the watermark passes their end
//! plus an explicit grace period.

use std::collections::HashMap;
use std::hash::Hash;

use streamcity_core::TimestampMs;

/// The shape of a hopping window; a tumbling window is one whose advance equals its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoppingSpec {
    /// Window length, ms.
    pub size_ms: i64,
    /// Distance between window starts, ms (at most `size_ms`).
    pub advance_ms: i64,
    /// How long after its end a window still accepts late records, ms. Explicit: there
    /// is no hidden default.
    pub grace_ms: i64,
}

impl HoppingSpec {
    /// The starts of every window that contains `ts`, oldest first.
    pub fn windows_of(&self, ts: TimestampMs) -> impl Iterator<Item = TimestampMs> + use<> {
        let advance = self.advance_ms.max(1);
        let last = ts - ts.rem_euclid(advance);
        let first = last - (self.size_ms - 1).max(0) / advance * advance;
        (0..).map(move |k| first + k * advance).take_while(move |&s| s <= last)
    }
}

/// A window that has closed, with its final count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWindow<K> {
    /// The key counted.
    pub key: K,
    /// Window start (inclusive), ms.
    pub start: TimestampMs,
    /// Window end (exclusive), ms.
    pub end: TimestampMs,
    /// Records counted in it.
    pub count: u64,
}

/// What happened to one record offered to a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted in every window containing it that is still open. The largest count any
    /// of those windows reached, and that window's start.
    Counted {
        /// The highest count among the windows the record went into.
        max_count: u64,
        /// The start of that window.
        start: TimestampMs,
    },
    /// Every window containing it had already closed: a late record.
    Late,
}

/// Counts per key in hopping windows. Memory: one small entry per key per open window.
#[derive(Debug, Clone)]
pub struct HoppingCounter<K> {
    spec: HoppingSpec,
    /// Open windows per key: (start, count), oldest first.
    open: HashMap<K, Vec<(TimestampMs, u64)>>,
    /// Windows whose end plus grace is at or before this have been closed.
    closed_before: TimestampMs,
}

impl<K: Hash + Eq + Clone> HoppingCounter<K> {
    /// An empty counter.
    pub fn new(spec: HoppingSpec) -> Self {
        HoppingCounter { spec, open: HashMap::new(), closed_before: TimestampMs::MIN }
    }

    /// The window shape.
    pub fn spec(&self) -> HoppingSpec {
        self.spec
    }

    fn is_closed(&self, start: TimestampMs, watermark: TimestampMs) -> bool {
        start + self.spec.size_ms + self.spec.grace_ms <= watermark
    }

    /// Counts one record for `key` at event time `ts`, given the current watermark.
    pub fn add(&mut self, key: &K, ts: TimestampMs, watermark: TimestampMs) -> Admission {
        let mut best: Option<(u64, TimestampMs)> = None;
        let spec = self.spec;
        let closed_before = self.closed_before.max(watermark);
        for start in spec.windows_of(ts) {
            if start + spec.size_ms + spec.grace_ms <= closed_before {
                continue;
            }
            let windows = match self.open.get_mut(key) {
                Some(w) => w,
                None => self.open.entry(key.clone()).or_default(),
            };
            let count = match windows.binary_search_by_key(&start, |w| w.0) {
                Ok(i) => {
                    windows[i].1 += 1;
                    windows[i].1
                }
                Err(i) => {
                    windows.insert(i, (start, 1));
                    1
                }
            };
            if best.is_none_or(|(c, _)| count > c) {
                best = Some((count, start));
            }
        }
        match best {
            Some((max_count, start)) => Admission::Counted { max_count, start },
            None => Admission::Late,
        }
    }

    /// Closes every window whose end plus grace is at or before `watermark`, appending
    /// them to `out` (in no particular order of keys; oldest first per key).
    pub fn close_until(&mut self, watermark: TimestampMs, out: &mut Vec<ClosedWindow<K>>) {
        if watermark <= self.closed_before {
            return;
        }
        self.closed_before = watermark;
        let spec = self.spec;
        self.open.retain(|key, windows| {
            let n = windows.iter().take_while(|w| w.0 + spec.size_ms + spec.grace_ms <= watermark).count();
            out.extend(windows.drain(..n).map(|(start, count)| ClosedWindow {
                key: key.clone(),
                start,
                end: start + spec.size_ms,
                count,
            }));
            !windows.is_empty()
        });
    }

    /// The open windows of `key`: (start, count), oldest first.
    pub fn open_windows(&self, key: &K) -> &[(TimestampMs, u64)] {
        self.open.get(key).map_or(&[], |w| w.as_slice())
    }

    /// The number of open windows across all keys.
    pub fn open_window_count(&self) -> usize {
        self.open.values().map(Vec::len).sum()
    }

    /// Whether a window starting at `start` would be closed at `watermark`.
    pub fn would_be_closed(&self, start: TimestampMs, watermark: TimestampMs) -> bool {
        self.is_closed(start, watermark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn spec() -> HoppingSpec {
        HoppingSpec { size_ms: 5 * MIN, advance_ms: MIN, grace_ms: 10_000 }
    }

    #[test]
    fn a_record_falls_in_size_over_advance_windows_aligned_to_the_epoch() {
        let starts: Vec<_> = spec().windows_of(10 * MIN + 5).collect();
        assert_eq!(starts, vec![6 * MIN, 7 * MIN, 8 * MIN, 9 * MIN, 10 * MIN]);
        // End is exclusive: a record exactly at 10 min is not in the window [5, 10).
        assert!(!starts.contains(&(5 * MIN)));
        let tumbling = HoppingSpec { size_ms: MIN, advance_ms: MIN, grace_ms: 0 };
        assert_eq!(tumbling.windows_of(MIN - 1).collect::<Vec<_>>(), vec![0]);
        assert_eq!(tumbling.windows_of(MIN).collect::<Vec<_>>(), vec![MIN]);
    }

    #[test]
    fn counts_close_with_the_watermark_and_late_records_are_reported() {
        let mut c = HoppingCounter::new(spec());
        for t in 0..10 {
            c.add(&"s1", 10 * MIN + t * 1000, 0);
        }
        assert_eq!(c.add(&"s1", 10 * MIN + 20_000, 0), Admission::Counted { max_count: 11, start: 6 * MIN });
        let mut out = Vec::new();
        // The window [6, 11) closes at 11 min + 10 s grace.
        c.close_until(11 * MIN + 9_999, &mut out);
        assert!(out.is_empty());
        c.close_until(11 * MIN + 10_000, &mut out);
        assert_eq!(out, vec![ClosedWindow { key: "s1", start: 6 * MIN, end: 11 * MIN, count: 11 }]);
        // A record for the closed window only counts in the windows still open.
        assert_eq!(c.add(&"s1", 10 * MIN, 11 * MIN + 10_000), Admission::Counted { max_count: 12, start: 7 * MIN });
        // One whose windows have all closed is late.
        assert_eq!(c.add(&"s1", 5 * MIN, 11 * MIN + 10_000), Admission::Late);
    }

    #[test]
    fn window_totals_equal_input_totals() {
        let mut c = HoppingCounter::new(spec());
        let n = 1_000;
        for i in 0..n {
            c.add(&(i % 7), i * 997, 0);
        }
        let mut out = Vec::new();
        c.close_until(i64::MAX, &mut out);
        let total: u64 = out.iter().map(|w| w.count).sum();
        // Every record is in exactly size/advance windows.
        assert_eq!(total, n as u64 * 5);
        assert_eq!(c.open_window_count(), 0);
    }
}

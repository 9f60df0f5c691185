//! Event-time windows counting records per key.
//!
//! - **Tumbling** and **hopping** windows are aligned to the UTC epoch (a window starts
//!   at a multiple of its advance); start inclusive, end exclusive.
//! - **Session** windows group a key's records that are less than a gap apart: a
//!   session is `[first record, last record + gap)`, and a record that bridges two
//!   sessions merges them.
//! - Every window has an explicit grace period: it closes once the watermark reaches
//!   its end plus the grace, and a record arriving for a closed window is late (the
//!   caller counts it and sets it aside; nothing is dropped silently).
//! - Emit modes: every change (a result each time a count changes) or final (one result
//!   per window when it closes). Either way only open windows are held, so memory is
//!   bounded by keys × open windows per key, and closed windows are released at once.

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};
use streamcity_core::TimestampMs;

/// The shape of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum WindowKind {
    /// Back-to-back windows of one size.
    Tumbling {
        /// Window length, ms.
        size_ms: i64,
    },
    /// Overlapping windows of one size, starting every `advance_ms`.
    Hopping {
        /// Window length, ms.
        size_ms: i64,
        /// Distance between window starts, ms (at most the size).
        advance_ms: i64,
    },
    /// Activity sessions: a session ends after `gap_ms` without records.
    Session {
        /// Inactivity that ends a session, ms.
        gap_ms: i64,
    },
}

/// When results are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmitMode {
    /// A result every time a window's count changes (ksqlDB's `EMIT CHANGES`).
    #[default]
    Changes,
    /// One result per window, when it closes (ksqlDB's `EMIT FINAL`).
    Final,
}

/// A window definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Its shape.
    #[serde(flatten)]
    pub kind: WindowKind,
    /// How long after its end a window still accepts records, ms. Explicit: there is no
    /// hidden default.
    pub grace_ms: i64,
    /// When results are emitted.
    #[serde(default)]
    pub emit: EmitMode,
}

impl WindowSpec {
    /// A hopping window.
    pub const fn hopping(size_ms: i64, advance_ms: i64, grace_ms: i64) -> Self {
        WindowSpec {
            kind: WindowKind::Hopping {
                size_ms,
                advance_ms,
            },
            grace_ms,
            emit: EmitMode::Changes,
        }
    }

    /// A tumbling window.
    pub const fn tumbling(size_ms: i64, grace_ms: i64) -> Self {
        WindowSpec {
            kind: WindowKind::Tumbling { size_ms },
            grace_ms,
            emit: EmitMode::Changes,
        }
    }

    /// A session window.
    pub const fn session(gap_ms: i64, grace_ms: i64) -> Self {
        WindowSpec {
            kind: WindowKind::Session { gap_ms },
            grace_ms,
            emit: EmitMode::Changes,
        }
    }

    /// The same window with another emit mode.
    pub const fn emit(mut self, emit: EmitMode) -> Self {
        self.emit = emit;
        self
    }

    /// Checks the numbers: positive sizes, an advance no larger than the size, a grace
    /// that is not negative.
    pub fn validate(&self) -> Result<(), String> {
        let ok = match self.kind {
            WindowKind::Tumbling { size_ms } => size_ms > 0,
            WindowKind::Hopping {
                size_ms,
                advance_ms,
            } => size_ms > 0 && advance_ms > 0 && advance_ms <= size_ms,
            WindowKind::Session { gap_ms } => gap_ms > 0,
        };
        if !ok {
            return Err(format!(
                "invalid window {:?}: sizes must be positive and the advance at most the size",
                self.kind
            ));
        }
        if self.grace_ms < 0 {
            return Err(format!(
                "invalid window grace {} ms: must not be negative",
                self.grace_ms
            ));
        }
        Ok(())
    }

    /// The starts of the fixed windows (tumbling or hopping) containing `ts`, oldest
    /// first. Empty for sessions.
    pub fn windows_of(
        &self,
        ts: TimestampMs,
    ) -> impl Iterator<Item = (TimestampMs, TimestampMs)> + use<> {
        let (size, advance) = match self.kind {
            WindowKind::Tumbling { size_ms } => (size_ms, size_ms),
            WindowKind::Hopping {
                size_ms,
                advance_ms,
            } => (size_ms, advance_ms),
            WindowKind::Session { .. } => (0, 1),
        };
        let advance = advance.max(1);
        let last = ts - ts.rem_euclid(advance);
        let first = if size > 0 {
            last - (size - 1) / advance * advance
        } else {
            last + advance
        };
        (0..)
            .map(move |k| first + k * advance)
            .take_while(move |&s| s <= last)
            .map(move |s| (s, s + size))
    }
}

/// One window's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start (inclusive), ms.
    pub start: TimestampMs,
    /// End (exclusive), ms.
    pub end: TimestampMs,
    /// Records counted.
    pub count: u64,
}

/// A result: a window's count for a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowResult<K> {
    /// The key.
    pub key: K,
    /// Start (inclusive), ms.
    pub start: TimestampMs,
    /// End (exclusive), ms.
    pub end: TimestampMs,
    /// Records counted.
    pub count: u64,
    /// True when the window has closed and this count is final.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted in every open window containing it; the largest count among them, and
    /// that window.
    Counted {
        /// The highest count among the windows the record went into.
        max_count: u64,
        /// That window's start.
        start: TimestampMs,
        /// That window's end.
        end: TimestampMs,
    },
    /// Every window that would contain it has closed: a late record.
    Late,
}

/// Counts per key in windows of one spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash",
    deserialize = "K: Deserialize<'de> + Eq + Hash"
))]
pub struct WindowedCount<K> {
    spec: WindowSpec,
    /// Open windows per key, oldest first.
    open: HashMap<K, Vec<Window>>,
    /// The watermark windows were last closed at.
    closed_at: TimestampMs,
    /// No open window closes before this watermark (a lower bound: the earliest end
    /// plus grace, or less), so that moving the watermark short of it looks at no key.
    /// Unknown (`MIN`, look) after a restore.
    #[serde(skip, default = "unknown")]
    first_close: TimestampMs,
}

fn unknown() -> TimestampMs {
    TimestampMs::MIN
}

impl<K: Hash + Eq + Ord + Clone> WindowedCount<K> {
    /// No windows yet.
    pub fn new(spec: WindowSpec) -> Self {
        WindowedCount {
            spec,
            open: HashMap::new(),
            closed_at: TimestampMs::MIN,
            first_close: TimestampMs::MAX,
        }
    }

    /// The window definition.
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    fn closed(&self, end: TimestampMs, watermark: TimestampMs) -> bool {
        end.saturating_add(self.spec.grace_ms) <= watermark.max(self.closed_at)
    }

    /// Counts one record of `key` at event time `ts`. In `Changes` mode, appends a
    /// result for every window whose count changed.
    pub fn add(
        &mut self,
        key: &K,
        ts: TimestampMs,
        watermark: TimestampMs,
        out: &mut Vec<WindowResult<K>>,
    ) -> Admission {
        // Every window this record opens or extends ends after it; the first of a
        // fixed kind ends first.
        let end = match self.spec.kind {
            WindowKind::Session { .. } => Some(ts),
            _ => self.spec.windows_of(ts).next().map(|(_, end)| end),
        };
        if let Some(end) = end {
            self.first_close = self.first_close.min(end.saturating_add(self.spec.grace_ms));
        }
        match self.spec.kind {
            WindowKind::Session { gap_ms } => self.add_session(key, ts, gap_ms, watermark, out),
            _ => self.add_fixed(key, ts, watermark, out),
        }
    }

    fn add_fixed(
        &mut self,
        key: &K,
        ts: TimestampMs,
        watermark: TimestampMs,
        out: &mut Vec<WindowResult<K>>,
    ) -> Admission {
        let mut best: Option<Window> = None;
        for (start, end) in self.spec.windows_of(ts) {
            if self.closed(end, watermark) {
                continue;
            }
            let windows = match self.open.get_mut(key) {
                Some(w) => w,
                None => self.open.entry(key.clone()).or_default(),
            };
            let w = match windows.binary_search_by_key(&start, |w| w.start) {
                Ok(i) => {
                    windows[i].count += 1;
                    windows[i]
                }
                Err(i) => {
                    let w = Window {
                        start,
                        end,
                        count: 1,
                    };
                    windows.insert(i, w);
                    w
                }
            };
            if self.spec.emit == EmitMode::Changes {
                out.push(WindowResult {
                    key: key.clone(),
                    start,
                    end,
                    count: w.count,
                    is_final: false,
                });
            }
            if best.is_none_or(|b| w.count > b.count) {
                best = Some(w);
            }
        }
        match best {
            Some(w) => Admission::Counted {
                max_count: w.count,
                start: w.start,
                end: w.end,
            },
            None => Admission::Late,
        }
    }

    fn add_session(
        &mut self,
        key: &K,
        ts: TimestampMs,
        gap_ms: i64,
        watermark: TimestampMs,
        out: &mut Vec<WindowResult<K>>,
    ) -> Admission {
        // A record whose own session would already be closed is late.
        if self.closed(ts.saturating_add(gap_ms), watermark) {
            return Admission::Late;
        }
        let sessions = self.open.entry(key.clone()).or_default();
        // Sessions this record touches: it is within the gap of their records.
        let mut merged = Window {
            start: ts,
            end: ts + gap_ms,
            count: 1,
        };
        sessions.retain(|s| {
            // Less than a gap from its first record or its last (end = last + gap).
            let touches = ts > s.start - gap_ms && ts < s.end;
            if touches {
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                merged.count += s.count;
            }
            !touches
        });
        let i = sessions.partition_point(|s| s.start < merged.start);
        sessions.insert(i, merged);
        if self.spec.emit == EmitMode::Changes {
            out.push(WindowResult {
                key: key.clone(),
                start: merged.start,
                end: merged.end,
                count: merged.count,
                is_final: false,
            });
        }
        Admission::Counted {
            max_count: merged.count,
            start: merged.start,
            end: merged.end,
        }
    }

    /// Closes every window whose end plus grace is at or before `watermark`, appending a
    /// final result for each (in both emit modes: in `Changes` mode it marks the last
    /// count as final), ordered by end, start and key.
    pub fn close_until(&mut self, watermark: TimestampMs, out: &mut Vec<WindowResult<K>>) {
        if watermark <= self.closed_at {
            return;
        }
        let first = out.len();
        self.closed_at = watermark;
        if watermark < self.first_close {
            return; // nothing open ends that early
        }
        let grace = self.spec.grace_ms;
        let mut first_close = TimestampMs::MAX;
        self.open.retain(|key, windows| {
            let n = windows
                .iter()
                .take_while(|w| w.end.saturating_add(grace) <= watermark)
                .count();
            // Sessions are sorted by start, not end: close any that ended, wherever they are.
            if matches!(self.spec.kind, WindowKind::Session { .. }) {
                windows.retain(|w| {
                    let done = w.end.saturating_add(grace) <= watermark;
                    if done {
                        out.push(WindowResult {
                            key: key.clone(),
                            start: w.start,
                            end: w.end,
                            count: w.count,
                            is_final: true,
                        });
                    }
                    !done
                });
            } else {
                out.extend(windows.drain(..n).map(|w| WindowResult {
                    key: key.clone(),
                    start: w.start,
                    end: w.end,
                    count: w.count,
                    is_final: true,
                }));
            }
            for w in windows.iter() {
                first_close = first_close.min(w.end.saturating_add(grace));
            }
            !windows.is_empty()
        });
        self.first_close = first_close;
        // A deterministic order: by end, then start, then key.
        out[first..].sort_by(|a, b| (a.end, a.start, &a.key).cmp(&(b.end, b.start, &b.key)));
    }

    /// Forgets every open window of `key`, emitting nothing.
    pub fn remove_key(&mut self, key: &K) {
        self.open.remove(key);
    }

    /// The open windows of `key`, oldest first.
    pub fn open_windows(&self, key: &K) -> &[Window] {
        self.open.get(key).map_or(&[], |w| w.as_slice())
    }

    /// The watermark at which every window open now has closed (its end plus grace),
    /// if any is open.
    pub fn all_closed_at(&self) -> Option<TimestampMs> {
        self.open
            .values()
            .flat_map(|windows| windows.iter().map(|w| w.end))
            .max()
            .map(|end| end.saturating_add(self.spec.grace_ms))
    }

    /// Open windows across all keys.
    pub fn open_window_count(&self) -> usize {
        self.open.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_record_falls_in_size_over_advance_windows_aligned_to_the_epoch() {
        let spec = WindowSpec::hopping(5 * MIN, MIN, 0);
        let starts: Vec<_> = spec.windows_of(10 * MIN + 5).map(|w| w.0).collect();
        assert_eq!(starts, vec![6 * MIN, 7 * MIN, 8 * MIN, 9 * MIN, 10 * MIN]);
        let tumbling = WindowSpec::tumbling(MIN, 0);
        assert_eq!(
            tumbling.windows_of(MIN - 1).collect::<Vec<_>>(),
            vec![(0, MIN)]
        );
        assert_eq!(
            tumbling.windows_of(MIN).collect::<Vec<_>>(),
            vec![(MIN, 2 * MIN)]
        );
        assert_eq!(tumbling.windows_of(-1).collect::<Vec<_>>(), vec![(-MIN, 0)]);
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(WindowSpec::hopping(MIN, 2 * MIN, 0).validate().is_err());
        assert!(WindowSpec::tumbling(0, 0).validate().is_err());
        assert!(WindowSpec::session(MIN, -1).validate().is_err());
        assert!(WindowSpec::hopping(5 * MIN, MIN, 10_000).validate().is_ok());
    }

    #[test]
    fn sessions_merge_when_a_record_bridges_them() {
        let mut w = WindowedCount::new(WindowSpec::session(10_000, 0).emit(EmitMode::Final));
        let mut out = Vec::new();
        for ts in [0, 5_000, 20_000, 25_000] {
            w.add(&"k", ts, 0, &mut out);
        }
        // 15 s between 5 s and 20 s: two sessions. Exactly a gap apart is apart too.
        assert_eq!(w.open_windows(&"k").len(), 2);
        w.add(&"k", 35_000, 0, &mut out);
        assert_eq!(w.open_windows(&"k").len(), 3);
        // 12 s is less than 10 s from both 5 s and 20 s: it bridges them.
        w.add(&"k", 12_000, 0, &mut out);
        assert_eq!(
            w.open_windows(&"k")[0],
            Window {
                start: 0,
                end: 35_000,
                count: 5
            }
        );
        assert!(out.is_empty(), "final mode emits only on close");
        w.close_until(45_000, &mut out);
        assert_eq!(
            out,
            vec![
                WindowResult {
                    key: "k",
                    start: 0,
                    end: 35_000,
                    count: 5,
                    is_final: true
                },
                WindowResult {
                    key: "k",
                    start: 35_000,
                    end: 45_000,
                    count: 1,
                    is_final: true
                },
            ]
        );
        assert_eq!(w.add(&"k", 30_000, 45_000, &mut out), Admission::Late);
    }

    #[test]
    fn changes_mode_emits_every_update_and_marks_the_close() {
        let mut w = WindowedCount::new(WindowSpec::tumbling(MIN, 5_000));
        let mut out = Vec::new();
        w.add(&"k", 10, 0, &mut out);
        w.add(&"k", 20, 0, &mut out);
        assert_eq!(out.iter().map(|r| r.count).collect::<Vec<_>>(), vec![1, 2]);
        out.clear();
        w.close_until(MIN + 4_999, &mut out);
        assert!(out.is_empty(), "still within grace");
        // A record within the grace period still counts.
        w.add(&"k", 30, MIN + 4_999, &mut out);
        w.close_until(MIN + 5_000, &mut out);
        assert_eq!(
            out.last().unwrap(),
            &WindowResult {
                key: "k",
                start: 0,
                end: MIN,
                count: 3,
                is_final: true
            }
        );
        assert_eq!(w.open_window_count(), 0, "closed windows are released");
    }
}

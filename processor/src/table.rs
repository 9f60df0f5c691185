//! Tables: the latest value per key, as ksqlDB's `LATEST_BY_OFFSET` tables.

use std::collections::HashMap;
use std::hash::Hash;

use streamcity_core::TimestampMs;

/// How a table decides which of two values for a key is the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latest {
    /// The one that arrived last (ksqlDB's `LATEST_BY_OFFSET`).
    ByOffset,
    /// The one with the later event time; an older arrival is ignored.
    #[default]
    ByEventTime,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A new key.
    Inserted,
    /// An existing key got a newer value.
    Updated,
    /// The value was older than the one held (by event time) and was ignored.
    Stale,
}

/// The latest value per key.
#[derive(Debug, Clone)]
pub struct LatestTable<K, V> {
    mode: Latest,
    rows: HashMap<K, (TimestampMs, V)>,
}

impl<K: Hash + Eq, V> LatestTable<K, V> {
    /// An empty table.
    pub fn new(mode: Latest) -> Self {
        LatestTable { mode, rows: HashMap::new() }
    }

    /// Puts `value` (event time `ts`) for `key`, unless the table keeps the latest by
    /// event time and holds a newer one.
    pub fn upsert(&mut self, key: K, ts: TimestampMs, value: V) -> Upsert {
        match self.rows.get_mut(&key) {
            Some(row) if self.mode == Latest::ByEventTime && row.0 > ts => Upsert::Stale,
            Some(row) => {
                *row = (ts, value);
                Upsert::Updated
            }
            None => {
                self.rows.insert(key, (ts, value));
                Upsert::Inserted
            }
        }
    }

    /// Deletes a key (a tombstone). Returns the value it held.
    pub fn delete(&mut self, key: &K) -> Option<V> {
        self.rows.remove(key).map(|(_, v)| v)
    }

    /// The value for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.rows.get(key).map(|(_, v)| v)
    }

    /// Every row, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.rows.iter().map(|(k, (_, v))| (k, v))
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no rows are held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_event_time_ignores_older_values() {
        let mut t = LatestTable::new(Latest::ByEventTime);
        assert_eq!(t.upsert("v1", 10, 'a'), Upsert::Inserted);
        assert_eq!(t.upsert("v1", 5, 'b'), Upsert::Stale);
        assert_eq!(t.get(&"v1"), Some(&'a'));
        assert_eq!(t.upsert("v1", 11, 'c'), Upsert::Updated);
        assert_eq!(t.get(&"v1"), Some(&'c'));
    }

    #[test]
    fn by_offset_takes_the_last_arrival_and_tombstones_delete() {
        let mut t = LatestTable::new(Latest::ByOffset);
        t.upsert("v1", 10, 'a');
        assert_eq!(t.upsert("v1", 5, 'b'), Upsert::Updated);
        assert_eq!(t.get(&"v1"), Some(&'b'));
        assert_eq!(t.delete(&"v1"), Some('b'));
        assert!(t.is_empty());
    }
}

//! Tables: the latest value per key, as ksqlDB's `LATEST_BY_OFFSET` tables; and the
//! live vehicle table, the latest report of every vehicle by event time.

use std::collections::HashMap;
use std::hash::Hash;

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use streamcity_core::{Id, TimestampMs, VehiclePosition};

use crate::vehicles::VehicleMemory;

/// How a table decides which of two values for a key is the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, V: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, V: Deserialize<'de>"
))]
pub struct LatestTable<K, V> {
    mode: Latest,
    rows: HashMap<K, (TimestampMs, V)>,
}

impl<K: Hash + Eq, V> LatestTable<K, V> {
    /// An empty table.
    pub fn new(mode: Latest) -> Self {
        LatestTable {
            mode,
            rows: HashMap::new(),
        }
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

    /// The row of `key` to update in place for a value at event time `ts`: `None` when
    /// the value is stale (older by event time than the row, and the row's time no
    /// later than `trusted_until`: a row further ahead is not trusted to be the latest,
    /// and any value replaces it); otherwise the row, created with `new` for a new key.
    pub fn row_for(
        &mut self,
        key: &K,
        ts: TimestampMs,
        trusted_until: TimestampMs,
        new: impl FnOnce() -> V,
    ) -> Option<(&mut V, Upsert)>
    where
        K: Clone,
    {
        // One hash and one probe, new key or not (the key is cloned for the entry:
        // short ids are stored inline, so that is a copy).
        match self.rows.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let row = e.into_mut();
                if self.mode == Latest::ByEventTime && row.0 > ts && row.0 <= trusted_until {
                    return None;
                }
                row.0 = ts;
                Some((&mut row.1, Upsert::Updated))
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                Some((&mut e.insert((ts, new())).1, Upsert::Inserted))
            }
        }
    }

    /// Every row, mutable, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.rows.iter_mut().map(|(k, (_, v))| (k, v))
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

/// A row of the live vehicle table: a vehicle's latest report, the input partition its
/// reports come from (released when another instance takes it over), and what the
/// per-vehicle detectors remember of it (kept here, so that a report costs one lookup;
/// a cell, so that they can change it through the event that carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleRow {
    /// The latest report (by event time): the live table's value.
    pub position: VehiclePosition,
    /// The input partition its reports come from.
    pub partition: i32,
    /// The per-vehicle detectors' memory.
    #[serde(default)]
    pub memory: RefCell<VehicleMemory>,
}

/// The live vehicle table: the latest report per vehicle, by event time.
pub type VehicleTable = LatestTable<Id, VehicleRow>;

impl LatestTable<Id, VehicleRow> {
    /// Takes a report read from `partition`: `None` when it is older than the vehicle's
    /// row (ignored; unless the row is later than `trusted_until`, far ahead of the
    /// stream: then the report replaces it), otherwise the vehicle's row and whether it
    /// is new. A new row holds
    /// the report already; an existing one still holds the report before it, for the
    /// detectors to compare with: the caller puts the new one in with
    /// [`VehicleRow::update`].
    pub fn accept(
        &mut self,
        p: &VehiclePosition,
        partition: i32,
        trusted_until: TimestampMs,
    ) -> Option<(&mut VehicleRow, bool)> {
        let (row, how) =
            self.row_for(&p.vehicle_id, p.timestamp, trusted_until, || VehicleRow {
                position: p.clone(),
                partition,
                memory: RefCell::default(),
            })?;
        row.partition = partition;
        Some((row, how == Upsert::Inserted))
    }
}

impl VehicleRow {
    /// Puts report `p` in, reusing the row's storage.
    pub fn update(&mut self, p: &VehiclePosition) {
        self.position.clone_from(p);
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
    fn rows_update_in_place_unless_stale() {
        let mut t: LatestTable<&str, Vec<i64>> = LatestTable::new(Latest::ByEventTime);
        t.row_for(&"v1", 10, i64::MAX, Vec::new).unwrap().0.push(10);
        let (row, how) = t.row_for(&"v1", 12, i64::MAX, Vec::new).unwrap();
        row.push(12);
        assert_eq!(how, Upsert::Updated);
        assert!(
            t.row_for(&"v1", 11, i64::MAX, Vec::new).is_none(),
            "an older value is stale"
        );
        assert_eq!(t.get(&"v1"), Some(&vec![10, 12]));
        // A row later than what is trusted gives way to the next value, older or not.
        let (row, _) = t.row_for(&"v1", 11, 11, Vec::new).unwrap();
        row.push(11);
        assert_eq!(t.get(&"v1"), Some(&vec![10, 12, 11]));
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

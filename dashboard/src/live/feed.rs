//! The delta feed: what changed, conflated per tick and serialised once; the history
//! kept for clients resuming with `?since=`; snapshots.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use streamcity_core::{AlertKind, Id, TimestampMs};
use tokio::sync::broadcast;

use super::{ClientFilter, Live, splice};

/// One item of a delta: its JSON and what filters look at.
#[derive(Debug, Clone)]
pub struct Item {
    pub(super) raw: Bytes,
    pub(super) route: Option<Id>,
    pub(super) kind: Option<AlertKind>,
    pub(super) at: Option<(f64, f64)>,
}

/// What changed during one tick, serialised once for clients without filters.
#[derive(Debug)]
pub struct Delta {
    /// Sequence number.
    pub seq: u64,
    /// Latest event time, ms since the epoch.
    pub time: TimestampMs,
    vehicles: Vec<Item>,
    alerts: Vec<Item>,
    /// The whole delta as JSON.
    pub text: Bytes,
}

impl Delta {
    /// Bytes it holds: its text and the items it was made of.
    fn size(&self) -> usize {
        let items: usize = self
            .vehicles
            .iter()
            .chain(&self.alerts)
            .map(|i| i.raw.len() + std::mem::size_of::<Item>())
            .sum();
        self.text.len() + items
    }
}

/// The deltas waiting to go out, and those kept for resuming.
#[derive(Debug, Default)]
pub(super) struct Feed {
    pub(super) pending_vehicles: HashMap<Id, Item>,
    pub(super) pending_alerts: Vec<Item>,
    pub(super) history: VecDeque<Arc<Delta>>,
    /// Bytes held by `history`.
    pub(super) history_size: usize,
    pub(super) seq: u64,
    /// Bumped whenever the incidents in force change (they are not in the deltas, but
    /// the GTFS-realtime feeds are built from them).
    pub(super) incidents_version: u64,
}

/// Snapshots already built for one sequence number, a few filters at most.
#[derive(Debug, Default)]
pub(super) struct Snapshots {
    seq: u64,
    built: Vec<(ClientFilter, Bytes)>,
}

/// Distinct filters whose snapshots are kept for one sequence number.
const SNAPSHOTS_KEPT: usize = 16;

impl Snapshots {
    fn get(&self, seq: u64, filter: &ClientFilter) -> Option<Bytes> {
        (self.seq == seq)
            .then(|| self.built.iter().find(|(f, _)| f == filter))
            .flatten()
            .map(|(_, text)| text.clone())
    }

    fn put(&mut self, seq: u64, filter: &ClientFilter, text: Bytes) {
        if seq < self.seq {
            return; // built while a tick went out: already stale
        }
        if self.seq != seq {
            self.seq = seq;
            self.built.clear();
        }
        if self.built.len() < SNAPSHOTS_KEPT {
            self.built.push((filter.clone(), text));
        }
    }
}

/// Where a `/ws` client starts.
#[derive(Debug)]
pub enum Start {
    /// From a snapshot.
    Snapshot(u64, Bytes),
    /// From the deltas after the one it last saw.
    Resume(Vec<Arc<Delta>>),
}

/// `{"type":"delta","seq":..,"time":..,"vehicles":` into `out`.
fn delta_head(out: &mut Vec<u8>, seq: u64, time: TimestampMs) {
    let _ = write!(
        out,
        "{{\"type\":\"delta\",\"seq\":{seq},\"time\":{time},\"vehicles\":"
    );
}

impl Live {
    /// Sends what changed since the last tick to every client, as one delta. Returns
    /// false when nothing changed.
    pub fn tick(&self) -> bool {
        let mut state = self.write();
        if state.feed.pending_vehicles.is_empty() && state.feed.pending_alerts.is_empty() {
            return false;
        }
        state.feed.seq += 1;
        let vehicles: Vec<Item> = state
            .feed
            .pending_vehicles
            .drain()
            .map(|(_, item)| item)
            .collect();
        let alerts: Vec<Item> = std::mem::take(&mut state.feed.pending_alerts);
        let mut text = Vec::with_capacity(
            64 + vehicles
                .iter()
                .chain(&alerts)
                .map(|i| i.raw.len() + 1)
                .sum::<usize>(),
        );
        delta_head(&mut text, state.feed.seq, state.views.time);
        splice(&mut text, vehicles.iter().map(|i| &i.raw));
        text.extend_from_slice(b",\"alerts\":");
        splice(&mut text, alerts.iter().map(|i| &i.raw));
        text.push(b'}');
        let delta = Arc::new(Delta {
            seq: state.feed.seq,
            time: state.views.time,
            vehicles,
            alerts,
            text: Bytes::from(text),
        });
        state.feed.history_size += delta.size();
        state.feed.history.push_back(Arc::clone(&delta));
        // The newest delta always stays: a client that just saw it can resume.
        let mut evicted = Vec::new();
        while state.feed.history.len() > self.config.history.max(1)
            || (state.feed.history_size > self.config.history_bytes && state.feed.history.len() > 1)
        {
            if let Some(old) = state.feed.history.pop_front() {
                state.feed.history_size -= old.size();
                evicted.push(old);
            }
        }
        drop(state);
        // No receivers is fine: nobody is watching.
        let _ = self.deltas.send(delta);
        // Freed outside the lock: often the last hold on a thousand payloads.
        drop(evicted);
        true
    }

    /// A receiver of deltas, and where the client starts: the deltas after `since` when
    /// they are all still in the history (and `epoch`, when given, is this run's),
    /// otherwise a snapshot (filtered). Deltas at or below the start's sequence number
    /// are already covered by it.
    pub fn connect(
        &self,
        since: Option<u64>,
        epoch: Option<u64>,
        filter: &ClientFilter,
    ) -> (broadcast::Receiver<Arc<Delta>>, Start) {
        let rx = self.deltas.subscribe();
        if let Some(since) = since.filter(|_| epoch.is_none_or(|e| e == self.epoch)) {
            let state = self.read();
            let oldest = state
                .feed
                .history
                .front()
                .map_or(state.feed.seq + 1, |d| d.seq);
            if since <= state.feed.seq && since + 1 >= oldest {
                let missed = state
                    .feed
                    .history
                    .iter()
                    .filter(|d| d.seq > since)
                    .cloned()
                    .collect();
                return (rx, Start::Resume(missed));
            }
        }
        let (seq, text) = self.snapshot(filter);
        (rx, Start::Snapshot(seq, text))
    }

    /// A delta as `filter` wants it (shared text when it wants everything).
    pub fn render(&self, delta: &Delta, filter: &ClientFilter) -> Bytes {
        if filter.is_everything() {
            return delta.text.clone();
        }
        let mut text = Vec::with_capacity(delta.text.len());
        delta_head(&mut text, delta.seq, delta.time);
        splice(
            &mut text,
            delta
                .vehicles
                .iter()
                .filter(|i| filter.vehicle(i.route.as_ref(), i.at))
                .map(|i| &i.raw),
        );
        text.extend_from_slice(b",\"alerts\":");
        splice(
            &mut text,
            delta
                .alerts
                .iter()
                .filter(|i| filter.alert(i.kind, i.at))
                .map(|i| &i.raw),
        );
        text.push(b'}');
        Bytes::from(text)
    }

    /// The whole live picture as a `snapshot` message, filtered, with its sequence
    /// number. Built once per sequence number and filter: clients starting together
    /// share one copy. (A snapshot built earlier in a tick lacks the changes made since,
    /// and the next delta carries them all: clients end up with the same picture.)
    pub fn snapshot(&self, filter: &ClientFilter) -> (u64, Bytes) {
        let state = self.read();
        let seq = state.feed.seq;
        if let Some(text) = self
            .snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(seq, filter)
        {
            return (seq, text);
        }
        let mut text = Vec::with_capacity(
            128 + state.views.vehicles.len() * 340 + state.views.recent.len() * 500,
        );
        let _ = write!(
            text,
            "{{\"type\":\"snapshot\",\"epoch\":{},\"seq\":{},\"time\":{},\"vehicles\":",
            self.epoch, state.feed.seq, state.views.time
        );
        state.views.splice_vehicles(&mut text, |p| {
            filter.vehicle(Some(&p.route_id), Some((p.lat, p.lon)))
        });
        text.extend_from_slice(b",\"alerts\":");
        state
            .views
            .splice_alerts(&mut text, "recent_alerts", |kind, at| {
                filter.alert(Some(kind), at)
            });
        text.push(b'}');
        drop(state);
        let text = Bytes::from(text);
        self.snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(seq, filter, text.clone());
        (seq, text)
    }
}

//! What the vehicles have shown lately of each stretch of the network, learned from
//! their reports: how long they take between two stops when they run as fast as the
//! street lets them (late vehicles do), how they keep to the timetable when they are
//! not late, and how long they stand at each stop. Predictions ([`crate::predict`])
//! run on it; a stretch no vehicle has run yet falls back to its route's figures,
//! then to the timetable.
//!
//! Memory is bounded by the network (one entry per pair of consecutive stops of its
//! trips, one per stop, one per route) and by the vehicles reporting (one track each,
//! dropped when the vehicle leaves service).

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use streamcity_core::{Id, VehiclePosition, VehicleStatus};
use streamcity_network::Network;

use crate::predict::next_call;

/// Observations kept of each figure: the latest vehicles'.
const KEPT: usize = 5;
/// How late a vehicle must still be on arrival to count as having run flat out, ms.
const STILL_LATE_MS: i64 = 0;
/// How long a repair is expected to take before any was seen, ms.
const UNLEARNED_REPAIR_MS: i64 = 20 * 60_000;

/// The latest observations of one figure (at most [`KEPT`]), whose median is the
/// figure: it follows change within a few vehicles and is not thrown by one held up.
#[derive(Debug, Clone, Copy, Default)]
struct Average {
    latest: [f64; KEPT],
    len: u8,
    next: u8,
}

impl Average {
    fn add(&mut self, x: f64) {
        self.latest[usize::from(self.next)] = x;
        self.next = (self.next + 1) % KEPT as u8;
        self.len = (self.len + 1).min(KEPT as u8);
    }

    fn get(&self) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        let mut v = self.latest;
        let v = &mut v[..usize::from(self.len)];
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }
}

/// One stretch between two consecutive stops, or a route's stretches together.
#[derive(Debug, Clone, Copy, Default)]
struct Stretch {
    /// Running time of a vehicle still late on arrival, as a share of the scheduled
    /// running time: the most a vehicle can make up here.
    flat_out: Average,
    /// Running time of a vehicle that kept to time, as a share of the time the
    /// timetable left it.
    paced: Average,
}

/// Where a vehicle was at its last report, to see it arrive and leave.
#[derive(Debug, Clone)]
struct Track {
    trip_id: Id,
    start_time: Option<Id>,
    /// Its next call (standing: the call it stands at).
    index: usize,
    standing: bool,
    /// When it arrived at the call it stands at.
    arrived_ms: Option<i64>,
    /// When it left the call before its next one, and how late it was then, ms.
    left: Option<(usize, i64, i64)>,
    /// Since when it stands broken down.
    broken_since: Option<i64>,
}

/// The stretches, stops and routes as the vehicles have run them lately.
#[derive(Debug, Default)]
pub struct Learned {
    /// By the stops' indexes in [`Network::stops`] (a fast hash: a feed is built from
    /// a lookup for every call of every vehicle).
    stretches: FxHashMap<(u32, u32), Stretch>,
    /// By route index.
    routes: FxHashMap<u32, Stretch>,
    /// By stop index.
    dwell_ms: FxHashMap<u32, Average>,
    repairs_ms: Average,
    tracks: HashMap<Id, Track>,
}

/// How a vehicle runs a stretch, as learned: the running time when it is `late_ms`
/// late at the start of it and the timetable leaves it `left_ms` to run it.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    flat_out: f64,
    paced: f64,
}

impl Running {
    /// Running time, ms, of a stretch scheduled to take `scheduled_ms`, when the
    /// timetable leaves the vehicle `left_ms` for it (less when it is late): the
    /// longer of the fastest it has been run and the pace kept on time.
    pub fn time_ms(self, scheduled_ms: i64, left_ms: i64) -> i64 {
        let fastest = scheduled_ms as f64 * self.flat_out;
        let paced = left_ms.max(0) as f64 * self.paced;
        fastest.max(paced) as i64
    }
}

/// Without any observation: a late vehicle makes up a quarter of the scheduled time;
/// one on time keeps to it.
const UNLEARNED: Running = Running {
    flat_out: 0.75,
    paced: 1.0,
};

impl Learned {
    /// How vehicles run from stop `from` to stop `to` (indexes in [`Network::stops`])
    /// on route `route` (an index in [`Network::routes`]): this stretch's figures, else
    /// the route's, else the timetable's.
    pub fn running(&self, route: usize, from: usize, to: usize) -> Running {
        let stretch = self
            .stretches
            .get(&(from as u32, to as u32))
            .copied()
            .unwrap_or_default();
        let line = self
            .routes
            .get(&(route as u32))
            .copied()
            .unwrap_or_default();
        Running {
            flat_out: stretch
                .flat_out
                .get()
                .or(line.flat_out.get())
                .unwrap_or(UNLEARNED.flat_out),
            paced: stretch
                .paced
                .get()
                .or(line.paced.get())
                .unwrap_or(UNLEARNED.paced),
        }
    }

    /// How much is learned: stretches run, stops stood at, vehicles followed.
    pub fn known(&self) -> (usize, usize, usize) {
        (self.stretches.len(), self.dwell_ms.len(), self.tracks.len())
    }

    /// Forgets vehicle `id` (it left, or its row was deleted).
    pub fn forget_vehicle(&mut self, id: &str) {
        self.tracks.remove(id);
    }

    /// When vehicle `id` arrived at the call it stands at, ms.
    pub fn arrived_ms(&self, id: &str) -> Option<i64> {
        self.tracks
            .get(id)
            .filter(|t| t.standing)
            .and_then(|t| t.arrived_ms)
    }

    /// How much longer vehicle `id`, broken down, is likely to stand as of `now_ms`:
    /// what repairs have taken lately (without any seen, 20 minutes) less what it has
    /// stood, at least a minute; 0 for a vehicle not broken down.
    pub fn repair_left_ms(&self, id: &str, now_ms: i64) -> i64 {
        let Some(since) = self.tracks.get(id).and_then(|t| t.broken_since) else {
            return 0;
        };
        let usual = self
            .repairs_ms
            .get()
            .map_or(UNLEARNED_REPAIR_MS, |r| r as i64);
        (usual - (now_ms - since)).max(60_000)
    }

    /// How long vehicles stand at stop `stop` (an index in [`Network::stops`]) lately,
    /// ms (`None`: none seen there yet).
    pub fn dwell_ms(&self, stop: usize) -> Option<i64> {
        self.dwell_ms
            .get(&(stop as u32))
            .and_then(Average::get)
            .map(|d| d as i64)
    }

    /// Takes in a vehicle report: an arrival at a stop teaches the running time from
    /// the one before; a departure, the time stood there.
    pub fn observe(&mut self, network: &Network, p: &VehiclePosition) {
        if p.status == VehicleStatus::OutOfService {
            self.tracks.remove(p.vehicle_id.as_str());
            return;
        }
        let Some((trip, base, next)) = next_call(network, p) else {
            self.tracks.remove(p.vehicle_id.as_str());
            return;
        };
        let standing = matches!(p.status, VehicleStatus::StoppedAt | VehicleStatus::Layover);
        let now = p.timestamp;
        let at = |s: u32| base + i64::from(s) * 1000;
        let fresh = || Track {
            trip_id: p.trip_id.clone(),
            start_time: p.start_time.clone(),
            index: next,
            standing,
            arrived_ms: standing.then_some(now),
            left: None,
            broken_since: None,
        };
        let track = self
            .tracks
            .entry(p.vehicle_id.clone())
            .or_insert_with(fresh);
        if track.trip_id != p.trip_id || track.start_time != p.start_time {
            // A new run: nothing of the last one carries over.
            *track = fresh();
            return;
        }
        // A breakdown: how long it lasts.
        match (p.status == VehicleStatus::BrokenDown, track.broken_since) {
            (true, None) => track.broken_since = Some(now),
            (false, Some(since)) => {
                self.repairs_ms.add((now - since) as f64);
                track.broken_since = None;
            }
            _ => {}
        }
        let calls = &trip.stop_times;
        let stops = &network.patterns[trip.pattern].stops;
        let route = network.route_position(&trip.route_id).unwrap_or(usize::MAX) as u32;
        // Arrived at a call (standing there, or passed it between two reports): the
        // stretch from the call it left is run.
        let arrived_at = if standing && (!track.standing || next > track.index) {
            Some(next)
        } else if !standing && next > track.index + usize::from(track.standing) {
            Some(next - 1)
        } else {
            None
        };
        if let (Some(k), Some((from, left_ms, late_ms))) = (arrived_at, track.left)
            && k == from + 1
            && k < calls.len()
        {
            let scheduled = at(calls[k].arrival_s) - at(calls[from].departure_s);
            let ran = (now - left_ms) as f64;
            let still_late = now - at(calls[k].arrival_s) > STILL_LATE_MS;
            let key = (stops[from] as u32, stops[k] as u32);
            for stretch in [
                self.stretches.entry(key).or_default(),
                self.routes.entry(route).or_default(),
            ] {
                if still_late {
                    if scheduled > 0 {
                        stretch.flat_out.add(ran / scheduled as f64);
                    }
                } else if scheduled - late_ms > 0 {
                    stretch.paced.add(ran / (scheduled - late_ms) as f64);
                }
            }
        }
        // Left the call it stood at, or passed one without standing there.
        if track.standing && (!standing || next > track.index) && track.index < calls.len() {
            let k = track.index;
            let late = now - at(calls[k].departure_s);
            if let Some(arrived) = track.arrived_ms.filter(|_| k > 0) {
                // A vehicle early at a timepoint waits for its time: not a dwell.
                let held = calls[k].timepoint && late.abs() <= 2_000;
                if !held {
                    self.dwell_ms
                        .entry(stops[k] as u32)
                        .or_default()
                        .add((now - arrived) as f64);
                }
            }
            track.left = Some((k, now, late));
        }
        if !standing && next > 0 && next > track.index + usize::from(track.standing) {
            let k = next - 1;
            track.left = Some((k, now, now - at(calls[k].departure_s)));
        }
        if arrived_at.is_some() {
            track.arrived_ms = Some(now);
        }
        track.index = next;
        track.standing = standing;
    }
}

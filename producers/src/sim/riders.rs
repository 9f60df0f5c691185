//! Riders: arriving at stops as a Poisson process following the time of day and each
//! stop's importance (and scripted crowds), waiting for a vehicle of their line with
//! room, riding to a stop downstream and tapping off.

use compact_str::format_compact;
use rand::Rng;
use streamcity_core::{RiderTap, TimestampMs};
use streamcity_network::Network;

use super::demand::{demand_factor, local_hour};
use super::{SimEvent, Simulation};
use crate::arrivals::{Arrivals, Burst, Gaps};

/// A rider: a card, and the stop (in travel order) where they will get off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rider {
    pub(super) card: u32,
    pub(super) dest: u16,
}

#[derive(Debug, Clone)]
pub(super) struct ActiveCrowd {
    stop: usize,
    route: usize,
    k: usize,
    ends_ms: TimestampMs,
    arrivals: Arrivals,
}

/// Riders waiting at a stop in one direction beyond which newcomers give up.
pub(super) const MAX_WAITING: usize = 2_000;

/// A rider's destination: a later stop in travel order, nearer ones likelier.
pub(super) fn pick_destination<R: Rng>(rng: &mut R, k: usize, n: usize) -> u16 {
    let remaining = n - 1 - k;
    if remaining <= 1 {
        return (n - 1) as u16;
    }
    // Trip lengths skew short: the smaller of two uniform draws.
    let a = rng.random_range(1..=remaining);
    let b = rng.random_range(1..=remaining);
    (k + a.min(b)) as u16
}

/// Where riders arrive: a stop of a route (outbound order) on which they wait for the
/// route either way, or with a timetable a call of a course ([`Network::patterns`])
/// where they wait for its trips' direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TapPlace {
    Route(u16, u16),
    Pattern(u32, u16),
}

/// Every place riders arrive at, with the cumulative importance used to pick where the
/// next one does: each stop of each route; with a timetable, each call of each course
/// but the last (where nobody boards), so that a stop gets riders for every course
/// serving it.
pub(super) fn tap_places(network: &Network) -> (Vec<TapPlace>, Vec<f64>) {
    let mut tap_places = Vec::new();
    let mut tap_weights = Vec::new();
    let mut acc = 0.0;
    if network.runs_timetable() {
        for (p, pattern) in network.patterns.iter().enumerate() {
            for (k, &s) in pattern
                .stops
                .iter()
                .enumerate()
                .take(pattern.stops.len() - 1)
            {
                acc += network.stops[s].importance;
                tap_places.push(TapPlace::Pattern(p as u32, k as u16));
                tap_weights.push(acc);
            }
        }
    } else {
        for (r, route) in network.routes.iter().enumerate() {
            for (k, &s) in route.stops.iter().enumerate() {
                acc += network.stops[s].importance;
                tap_places.push(TapPlace::Route(r as u16, k as u16));
                tap_weights.push(acc);
            }
        }
    }
    (tap_places, tap_weights)
}

impl Simulation {
    /// A rider arrives at the `k`-th call of course `p` at `ts`, to wait for a trip of
    /// its direction (where they get off is drawn when they board).
    fn rider_arrives_for(&mut self, p: usize, k: usize, ts: TimestampMs, out: &mut Vec<SimEvent>) {
        let pattern = &self.network.patterns[p];
        let (s, route, dir) = (pattern.stops[k], pattern.route, pattern.direction_id);
        let rider = Rider {
            card: self.rng.random_range(0..100_000_000),
            dest: (pattern.stops.len() - 1) as u16,
        };
        self.queue_rider(s, route, dir == 0, rider, ts, out);
    }

    /// A rider arrives at the `k`-th stop (outbound order) of route `r` at `ts`.
    fn rider_arrives(&mut self, r: usize, k: usize, ts: TimestampMs, out: &mut Vec<SimEvent>) {
        let route = &self.network.routes[r];
        let n = route.stops.len();
        let s = route.stops[k];
        // Riders at a terminus can only go one way.
        let outbound = match k {
            0 => true,
            _ if k == n - 1 => false,
            _ => self.rng.random_bool(0.5),
        };
        let k_travel = if outbound { k } else { n - 1 - k };
        if self.waiting[s][usize::from(!outbound)].len() >= MAX_WAITING {
            return; // the stop is packed: newcomers give up before tapping on
        }
        let rider = Rider {
            card: self.rng.random_range(0..100_000_000),
            dest: pick_destination(&mut self.rng, k_travel, n),
        };
        self.queue_rider(s, r, outbound, rider, ts, out);
    }

    /// `rider` taps on at stop `s` for route `r` at `ts` and waits for a vehicle going
    /// `outbound` (or not); unless the stop is packed.
    fn queue_rider(
        &mut self,
        s: usize,
        r: usize,
        outbound: bool,
        rider: Rider,
        ts: TimestampMs,
        out: &mut Vec<SimEvent>,
    ) {
        let queue = &mut self.waiting[s][usize::from(!outbound)];
        if queue.len() >= MAX_WAITING {
            return; // the stop is packed: newcomers give up before tapping on
        }
        queue.push_back(rider);
        self.counts.tap_ons += 1;
        if self.config.taps.emit {
            out.push(SimEvent::TapOn(RiderTap {
                rider_id: format_compact!("C{:08}", rider.card),
                stop_id: self.network.stops[s].stop_id.clone(),
                route_id: Some(self.network.routes[r].route_id.clone()),
                timestamp: ts,
            }));
        }
    }

    pub(super) fn rider_step(&mut self, t0: TimestampMs, out: &mut Vec<SimEvent>) {
        let now = self.now;
        let factor = demand_factor(local_hour(t0, self.config.utc_offset_min));
        let total = self.tap_weights.last().copied().unwrap_or(0.0);
        let mut due: Vec<(TimestampMs, u32)> = Vec::new();
        self.taps
            .drain(now, factor, &mut self.rng, |_, t, n| due.push((t, n)));
        for (t, n) in due.drain(..) {
            // Where: stops weighted by importance. A burst is a group at one stop.
            let roll = self.rng.random_range(0.0..total.max(f64::MIN_POSITIVE));
            let i = self
                .tap_weights
                .partition_point(|&w| w <= roll)
                .min(self.tap_places.len() - 1);
            let place = self.tap_places[i];
            for _ in 0..n {
                match place {
                    TapPlace::Route(r, k) => self.rider_arrives(r as usize, k as usize, t, out),
                    TapPlace::Pattern(p, k) => {
                        self.rider_arrives_for(p as usize, k as usize, t, out)
                    }
                }
            }
        }
        // Scripted crowds.
        while self.pending_crowds.last().is_some_and(|c| c.start_ms < now) {
            let Some(c) = self.pending_crowds.pop() else {
                break;
            };
            let Some(stop) = self.network.stop_position(&c.stop_id) else {
                continue;
            };
            let Some((route, k)) = self
                .network
                .routes
                .iter()
                .enumerate()
                .find_map(|(r, route)| route.stops.iter().position(|&s| s == stop).map(|k| (r, k)))
            else {
                continue;
            };
            let rate = c.riders as f64 / (c.duration_ms.max(1) as f64 / 1000.0);
            let arrivals = Arrivals::new(Gaps::rate(rate), Burst::NONE, c.start_ms, &mut self.rng);
            self.crowds.push(ActiveCrowd {
                stop,
                route,
                k,
                ends_ms: c.start_ms + c.duration_ms,
                arrivals,
            });
        }
        let mut crowds = std::mem::take(&mut self.crowds);
        for crowd in &mut crowds {
            crowd
                .arrivals
                .drain(now.min(crowd.ends_ms), 1.0, &mut self.rng, |_, t, n| {
                    due.push((t, n))
                });
            for (t, n) in due.drain(..) {
                for _ in 0..n {
                    self.rider_arrives(crowd.route, crowd.k, t, out);
                }
            }
            debug_assert!(self.network.routes[crowd.route].stops[crowd.k] == crowd.stop);
        }
        crowds.retain(|c| c.ends_ms > now);
        self.crowds = crowds;
    }
}

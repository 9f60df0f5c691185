//! The last hour in figures, for the page's charts and line view: every
//! [`LiveConfig::series_every`](super::LiveConfig::series_every) of wall time the
//! dashboard samples what it shows (the on-time share of vehicles, active alerts by
//! kind, riders waiting, events ingested per second) and where each vehicle is along its
//! line (the "string lines" of `GET /api/lines/{route_id}`).
//!
//! Memory is bounded: [`LiveConfig::series_points`](super::LiveConfig::series_points)
//! samples (360 by default: an hour at 10 s), and the distance along the route of at
//! most [`MAX_TRACKED_VEHICLES`] vehicles (at most [`MAX_TRACKED_PER_LINE`] per line),
//! each for the samples still kept; a vehicle is forgotten once it has no sample left.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use streamcity_core::geo::LatLon;
use streamcity_core::{AlertKind, Id, TimestampMs, VehicleStatus, wire_name};
use streamcity_network::{Network, Route};

use super::Live;

/// Vehicles whose distance along their line is kept, at most; beyond, new vehicles are
/// not tracked until older ones age out.
pub const MAX_TRACKED_VEHICLES: usize = 5_000;
/// Vehicles per line whose distance along it is kept, at most.
pub const MAX_TRACKED_PER_LINE: usize = 300;
/// A vehicle is on time when it runs less than this early or late, seconds (as the
/// page's counter).
const ON_TIME_S: i32 = 120;

/// One sample of the dashboard's figures.
#[derive(Debug, Clone)]
struct Point {
    /// The sample's number (counting from the dashboard's start).
    tick: u64,
    /// Wall-clock time, ms since the epoch.
    wall: TimestampMs,
    /// Simulated time, ms since the epoch (the producer's clock, else the latest event
    /// time); `None` before anything was read.
    sim: Option<TimestampMs>,
    vehicles: u32,
    /// Share of vehicles on time, 0–1; `None` without vehicles.
    on_time: Option<f64>,
    /// Active alerts by kind, in the order of [`AlertKind::ALL`].
    alerts: [u32; AlertKind::ALL.len()],
    waiting: u64,
    events_per_s: f64,
}

/// A vehicle's distance along its line at each sample it was seen in.
#[derive(Debug, Clone, Default)]
struct Trail {
    /// (sample number, metres along the line's outbound path), oldest first.
    points: VecDeque<(u64, f32)>,
}

/// The sampled series and the vehicles' trails.
#[derive(Debug, Default)]
pub(super) struct Series {
    points: VecDeque<Point>,
    /// Trails by line (route id), then vehicle.
    trails: HashMap<Id, HashMap<Id, Trail>>,
    tracked: usize,
    next_tick: u64,
    /// Events counted at the previous sample, and when (wall ms).
    last_events: Option<(u64, TimestampMs)>,
}

/// What the sampler needs of a vehicle, copied out of the live state.
struct Seen {
    id: Id,
    route: Id,
    lat: f64,
    lon: f64,
}

/// Where a point lies along a route's outbound path, metres (0 without a path).
pub(super) fn along(network: &Network, route: &Route, lat: f64, lon: f64) -> f64 {
    if route.path.xy.len() < 2 || !LatLon::new(lat, lon).is_valid() {
        return 0.0;
    }
    let d = route
        .path
        .project_from(network.projection.to_xy(LatLon::new(lat, lon)), 0.0);
    if d.is_finite() { d.max(0.0) } else { 0.0 }
}

impl Live {
    /// Takes one sample of the figures and of where each vehicle is along its line;
    /// called every [`LiveConfig::series_every`](super::LiveConfig::series_every) by
    /// [`run_ingest`](super::run_ingest).
    pub fn sample_series(&self) {
        let wall = streamcity_core::clock::wall_clock_ms();
        let events = self.events.load(Ordering::Relaxed);
        let (sim, vehicles, on_time, alerts, waiting, seen) = {
            let state = self.read();
            let views = &state.views;
            let sim = match views.clock {
                Some(c) => Some(c.sim_at(wall)),
                None => (views.time > 0).then_some(views.time),
            };
            let mut on_time = 0u32;
            let mut seen = Vec::with_capacity(views.vehicles.len());
            for (id, v) in &views.vehicles {
                let p = &v.position;
                if p.delay_s.abs() < ON_TIME_S {
                    on_time += 1;
                }
                if p.status != VehicleStatus::OutOfService {
                    seen.push(Seen {
                        id: id.clone(),
                        route: p.route_id.clone(),
                        lat: p.lat,
                        lon: p.lon,
                    });
                }
            }
            let mut alerts = [0u32; AlertKind::ALL.len()];
            for (a, _) in views.active.values() {
                if let Some(i) = AlertKind::ALL.iter().position(|k| *k == a.kind) {
                    alerts[i] = alerts[i].saturating_add(1);
                }
            }
            let waiting: u64 = views.stops.values().map(|s| u64::from(s.waiting)).sum();
            let n = u32::try_from(views.vehicles.len()).unwrap_or(u32::MAX);
            let share = (n > 0).then(|| f64::from(on_time) / f64::from(n));
            (sim, n, share, alerts, waiting, seen)
        };
        // Distances along the lines, outside the state's lock.
        let placed: Vec<(Seen, f32)> = seen
            .into_iter()
            .filter_map(|s| {
                let route = self.network.route(&s.route)?;
                let d = along(&self.network, route, s.lat, s.lon) as f32;
                Some((s, d))
            })
            .collect();

        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let events_per_s = match series.last_events {
            Some((before, at)) if wall > at => {
                events.saturating_sub(before) as f64 * 1000.0 / (wall - at) as f64
            }
            _ => 0.0,
        };
        series.last_events = Some((events, wall));
        let tick = series.next_tick;
        series.next_tick += 1;
        let capacity = self.config.series_points.max(1);
        while series.points.len() >= capacity {
            series.points.pop_front();
        }
        series.points.push_back(Point {
            tick,
            wall,
            sim,
            vehicles,
            on_time,
            alerts,
            waiting,
            events_per_s,
        });
        let oldest = series.points.front().map_or(tick, |p| p.tick);
        series.record_trails(placed, tick, oldest);
    }

    /// `GET /api/series`: the sampled figures, as columns sharing one time axis.
    pub fn series_json(&self) -> Value {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let points = &series.points;
        let alerts: serde_json::Map<String, Value> = AlertKind::ALL
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    wire_name(k),
                    points
                        .iter()
                        .map(|p| p.alerts[i])
                        .collect::<Vec<_>>()
                        .into(),
                )
            })
            .collect();
        json!({
            "every_s": self.config.series_every.as_secs_f64(),
            "capacity": self.config.series_points.max(1),
            "wall_ms": points.iter().map(|p| p.wall).collect::<Vec<_>>(),
            "sim_ms": points.iter().map(|p| p.sim).collect::<Vec<_>>(),
            "vehicles": points.iter().map(|p| p.vehicles).collect::<Vec<_>>(),
            "on_time_share": points.iter().map(|p| p.on_time).collect::<Vec<_>>(),
            "alerts": alerts,
            "riders_waiting": points.iter().map(|p| p.waiting).collect::<Vec<_>>(),
            "events_per_s": points.iter().map(|p| (p.events_per_s * 10.0).round() / 10.0).collect::<Vec<_>>(),
        })
    }

    /// A line's trails: the samples' times and, per vehicle, its distance along the
    /// line at each (null where it was not seen), aligned with them.
    pub(super) fn trails_json(&self, route_id: &str) -> Value {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let points = &series.points;
        let first = points.front().map_or(0, |p| p.tick);
        let mut vehicles = serde_json::Map::new();
        if let Some(trails) = series.trails.get(route_id) {
            let mut ids: Vec<&Id> = trails.keys().collect();
            ids.sort();
            for id in ids {
                let mut column: Vec<Option<f64>> = vec![None; points.len()];
                for &(tick, d) in &trails[id].points {
                    if let Some(slot) = tick
                        .checked_sub(first)
                        .and_then(|i| usize::try_from(i).ok())
                        .and_then(|i| column.get_mut(i))
                    {
                        *slot = Some((f64::from(d) * 10.0).round() / 10.0);
                    }
                }
                vehicles.insert(id.to_string(), column.into());
            }
        }
        json!({
            "sim_ms": points.iter().map(|p| p.sim).collect::<Vec<_>>(),
            "wall_ms": points.iter().map(|p| p.wall).collect::<Vec<_>>(),
            "dist_m": vehicles,
        })
    }

    /// When the vehicle `id` of `route_id` was last at `dist_m` moving in `direction`
    /// (0: along the outbound path, 1: back), by its trail: simulated ms, or `None`
    /// when its trail does not show it passing there.
    pub(super) fn passed_at(
        &self,
        route_id: &str,
        id: &str,
        dist_m: f64,
        direction: u8,
    ) -> Option<TimestampMs> {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let trail = series.trails.get(route_id)?.get(id)?;
        let first = series.points.front()?.tick;
        let sim_of = |tick: u64| -> Option<f64> {
            let i = usize::try_from(tick.checked_sub(first)?).ok()?;
            series.points.get(i)?.sim.map(|t| t as f64)
        };
        let pts: Vec<&(u64, f32)> = trail.points.iter().collect();
        for w in pts.windows(2).rev() {
            let ((t0, d0), (t1, d1)) = (*w[0], *w[1]);
            let (d0, d1) = (f64::from(d0), f64::from(d1));
            let forward = d1 > d0;
            if d0 == d1 || forward != (direction == 0) {
                continue;
            }
            let (lo, hi) = if forward { (d0, d1) } else { (d1, d0) };
            if dist_m < lo || dist_m > hi {
                continue;
            }
            let (s0, s1) = (sim_of(t0)?, sim_of(t1)?);
            let f = (dist_m - d0) / (d1 - d0);
            return Some((s0 + f * (s1 - s0)) as TimestampMs);
        }
        None
    }

    /// Which way vehicle `id` of `route_id` last moved along the line's outbound path
    /// (0: along it, 1: back), by its trail.
    pub(super) fn last_moved(&self, route_id: &str, id: &str) -> Option<u8> {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let trail = series.trails.get(route_id)?.get(id)?;
        let pts: Vec<f32> = trail.points.iter().map(|p| p.1).collect();
        pts.windows(2)
            .rev()
            .find(|w| w[0] != w[1])
            .map(|w| u8::from(w[1] < w[0]))
    }

    /// Vehicles whose trail is kept (for the tests of the bounds).
    pub fn tracked_vehicles(&self) -> usize {
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tracked
    }

    /// Samples kept.
    pub fn series_len(&self) -> usize {
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .points
            .len()
    }
}

impl Series {
    /// Adds sample `tick` of the vehicles `placed`, and forgets what is older than
    /// sample `oldest` (vehicles left with nothing go).
    fn record_trails(&mut self, placed: Vec<(Seen, f32)>, tick: u64, oldest: u64) {
        for (seen, d) in placed {
            let tracked = self.tracked;
            let line = self.trails.entry(seen.route).or_default();
            if !line.contains_key(&seen.id) {
                if tracked >= MAX_TRACKED_VEHICLES || line.len() >= MAX_TRACKED_PER_LINE {
                    continue;
                }
                self.tracked += 1;
            }
            line.entry(seen.id).or_default().points.push_back((tick, d));
        }
        let mut tracked = 0;
        for line in self.trails.values_mut() {
            line.retain(|_, trail| {
                while trail.points.front().is_some_and(|p| p.0 < oldest) {
                    trail.points.pop_front();
                }
                !trail.points.is_empty()
            });
            tracked += line.len();
        }
        self.trails.retain(|_, line| !line.is_empty());
        self.tracked = tracked;
    }
}

//! The twin's own disruptions, for scenarios whose events answer them (CivicSense's
//! `transit_events`): a simulation of the city and a processor run in step with the
//! scenario's event time, and each delay, diversion or suspension the processor raises
//! is described with the values a scenario's `twin.` names read.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use streamcity_core::geo::{LatLon, distance_m};
use streamcity_core::{Alert, AlertKind, AlertState, Record, TimestampMs, Topics, wire_name};
use streamcity_network::Network;
use streamcity_processor::{Processor, ProcessorConfig};
use streamcity_producers::arrivals::Gaps;
use streamcity_producers::runner::to_record;
use streamcity_producers::sim::{SimConfig, SimEvent, Simulation};
use streamcity_scenario::Val;

/// One disruption: its kind (`delay`, `route_change`, `suspension`), when, and its
/// values by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Disruption {
    /// Its kind.
    pub kind: &'static str,
    /// When it was raised, ms since the epoch.
    pub at_ms: TimestampMs,
    /// Its values.
    pub values: Vec<(&'static str, Val)>,
}

/// What is known of an incident in force, to explain the delays it causes.
#[derive(Debug, Clone)]
struct Cause {
    reason: &'static str,
    ends_ms: TimestampMs,
}

/// The twin running in step with a scenario.
pub struct TwinDisruptions {
    sim: Simulation,
    processor: Processor,
    topics: Topics,
    network: Arc<Network>,
    events: Vec<SimEvent>,
    out: Vec<Record>,
    causes: HashMap<String, Cause>,
}

impl std::fmt::Debug for TwinDisruptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwinDisruptions")
            .field("now", &self.sim.now())
            .finish()
    }
}

impl TwinDisruptions {
    /// The twin of `network` from `start_ms`, seeded, with an incident (traffic or
    /// city) every `incident_every_s` seconds on average.
    pub fn new(
        network: Arc<Network>,
        seed: u64,
        start_ms: TimestampMs,
        incident_every_s: f64,
    ) -> Self {
        let mut config = SimConfig {
            seed,
            start_ms,
            ..SimConfig::default()
        };
        let each = Gaps::Poisson {
            mean_s: 2.0 * incident_every_s.max(0.1),
        };
        config.incidents.gaps = each;
        config.traffic.gaps = each;
        let topics = Topics::default();
        let mut processor_config = ProcessorConfig::default();
        processor_config.headway.route_headways_s = network.headways();
        TwinDisruptions {
            sim: Simulation::new(Arc::clone(&network), config),
            processor: Processor::new(topics.clone(), processor_config)
                .with_network(Arc::clone(&network)),
            topics,
            network,
            events: Vec::new(),
            out: Vec::new(),
            causes: HashMap::new(),
        }
    }

    /// Runs the twin up to `until_ms`, appending the disruptions raised on the way.
    pub fn advance_to(&mut self, until_ms: TimestampMs, found: &mut Vec<Disruption>) {
        let inputs: Vec<Arc<str>> = streamcity_processor::inputs(&self.topics)
            .into_iter()
            .cloned()
            .collect();
        while self.sim.now() < until_ms {
            self.sim.step(&mut self.events);
            let now = self.sim.now();
            for e in self.events.drain(..) {
                let r = to_record(&self.topics, &e);
                if inputs.contains(&r.topic) {
                    self.processor
                        .on_record(&r, r.partition(6) as i32, now, &mut self.out);
                }
            }
            self.processor.advance(now, &mut self.out);
            for r in std::mem::take(&mut self.out) {
                if r.topic != self.topics.alerts {
                    continue;
                }
                if let Ok(alert) = serde_json::from_slice::<Alert>(&r.payload) {
                    self.describe(&alert, found);
                }
            }
        }
        let now = self.sim.now();
        self.causes.retain(|_, c| c.ends_ms + 3_600_000 > now);
    }

    fn describe(&mut self, a: &Alert, found: &mut Vec<Disruption>) {
        let text = |k: &str| a.evidence.get(k).and_then(|v| v.as_str()).unwrap_or("");
        match (a.kind, a.state) {
            (AlertKind::Incident, AlertState::Raised) => {
                let incident_kind = text("incident_kind").to_owned();
                let reason = reason(&incident_kind);
                let ends_ms = a.window_end.max(a.timestamp + 15 * 60_000);
                self.causes
                    .insert(a.subject_id.to_string(), Cause { reason, ends_ms });
                let kind = if text("transit_effect") == "suspension" {
                    "suspension"
                } else if matches!(incident_kind.as_str(), "road_closure" | "roadworks") {
                    "route_change"
                } else {
                    // Slowdowns show as the delays they cause.
                    return;
                };
                let lines: Vec<String> = a
                    .evidence
                    .get("lines")
                    .and_then(|l| l.as_array())
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let number = |k: &str| a.evidence.get(k).and_then(serde_json::Value::as_f64);
                for line in lines {
                    let minutes = if kind == "suspension" {
                        (ends_ms - a.timestamp).max(0) / 60_000
                    } else {
                        // A diversion's extra time: around the area instead of through
                        // it (half its circumference against its diameter), or through
                        // it slowed down.
                        let cruise = self
                            .network
                            .route(&line)
                            .map_or(6.0, |r| r.cruise_mps.max(1.0));
                        let r = number("radius_m").unwrap_or(300.0);
                        let extra_s = match number("speed_factor") {
                            Some(f) if f > 0.05 && f < 1.0 => 2.0 * r / cruise * (1.0 / f - 1.0),
                            _ => (std::f64::consts::PI - 2.0) * r / cruise,
                        };
                        (extra_s / 60.0).ceil() as i64
                    };
                    if let Some(d) = self.disruption(kind, a, &line, reason, minutes, ends_ms) {
                        found.push(d);
                    }
                }
            }
            (AlertKind::Incident, AlertState::Cleared) => {
                self.causes.remove(a.subject_id.as_str());
            }
            (AlertKind::Delay, AlertState::Raised) => {
                let line = text("route_id").to_owned();
                let cause = self.causes.get(text("likely_cause")).cloned();
                let delay_s = a
                    .evidence
                    .get("max_delay_s")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0);
                let (reason, ends_ms) = match cause {
                    Some(c) => (c.reason, c.ends_ms),
                    None => ("Heavy traffic", a.timestamp + 30 * 60_000),
                };
                let minutes = (delay_s + 59) / 60;
                if let Some(d) = self.disruption("delay", a, &line, reason, minutes, ends_ms) {
                    found.push(d);
                }
            }
            _ => {}
        }
    }

    fn disruption(
        &self,
        kind: &'static str,
        a: &Alert,
        route_id: &str,
        reason: &'static str,
        delay_minutes: i64,
        ends_ms: TimestampMs,
    ) -> Option<Disruption> {
        let route = self.network.route(route_id)?;
        let here = (
            a.lat.unwrap_or(self.network.centre.lat),
            a.lon.unwrap_or(self.network.centre.lon),
        );
        // The line's stops nearest the disruption.
        let mut stops: Vec<(f64, &str, f64, f64)> = route
            .stop_ids
            .iter()
            .filter_map(|id| self.network.stop(id))
            .map(|s| {
                let d = (s.lat - here.0).powi(2)
                    + ((s.lon - here.1) * here.0.to_radians().cos()).powi(2);
                (d, s.name.as_str(), s.lat, s.lon)
            })
            .collect();
        stops.sort_by(|x, y| x.0.total_cmp(&y.0));
        let mut stations: Vec<Val> = Vec::new();
        let mut near: Vec<(f64, f64)> = Vec::new();
        for (_, name, lat, lon) in stops {
            let v = Val::str(name);
            if !stations.contains(&v) {
                stations.push(v);
                near.push((lat, lon));
            }
            if stations.len() == 4 {
                break;
            }
        }
        // Other lines stopping within a short walk of those stops: where riders can
        // change, nearest first.
        let mut nearby: Vec<(f64, &str)> = Vec::new();
        for s in &self.network.stops {
            let d = near
                .iter()
                .map(|p| distance_m(LatLon::new(p.0, p.1), LatLon::new(s.lat, s.lon)))
                .fold(f64::INFINITY, f64::min);
            if d <= WALK_M {
                for r in &s.route_ids {
                    if *r != route.route_id {
                        nearby.push((d, r.as_str()));
                    }
                }
            }
        }
        nearby.sort_by(|x, y| x.0.total_cmp(&y.0));
        let mut alternatives: Vec<Val> = Vec::new();
        for (_, id) in nearby {
            let Some(r) = self.network.route(id) else {
                continue;
            };
            let v = Val::str(line_name(r));
            if !alternatives.contains(&v) {
                alternatives.push(v);
            }
            if alternatives.len() == 2 {
                break;
            }
        }
        let mode = match wire_name(&route.mode).as_str() {
            "rail" => "train".to_owned(),
            other => other.to_owned(),
        };
        Some(Disruption {
            kind,
            at_ms: a.timestamp,
            values: vec![
                ("alert_id", Val::str(&a.alert_id)),
                ("type", Val::str(kind)),
                ("line", Val::str(line_name(route))),
                ("line_id", Val::str(&route.route_id)),
                ("mode", Val::Str(Rc::from(mode))),
                ("severity", Val::str(&wire_name(&a.severity))),
                ("reason", Val::str(reason)),
                ("delay_minutes", Val::Int(delay_minutes)),
                (
                    "vehicle_count",
                    Val::Int(
                        a.evidence
                            .get("vehicle_count")
                            .and_then(serde_json::Value::as_i64)
                            .unwrap_or(0),
                    ),
                ),
                ("affected_stations", Val::List(stations)),
                ("alternative_routes", Val::List(alternatives)),
                ("resolution_ms", Val::Int(ends_ms)),
                ("position", Val::Pos(here.0, here.1)),
            ],
        })
    }
}

/// How far riders walk to change lines, metres.
const WALK_M: f64 = 400.0;

/// A line's name as riders know it.
fn line_name(r: &streamcity_network::Route) -> &str {
    if r.name.is_empty() {
        &r.short_name
    } else {
        &r.name
    }
}

/// Why service is disrupted, in words, from the incident's kind.
fn reason(incident_kind: &str) -> &'static str {
    match incident_kind {
        "power_outage" => "Power outage",
        "weather_alert" => "Severe weather",
        "fire" => "Fire near the line",
        "public_safety" => "Police activity",
        "health_advisory" => "Health emergency",
        "water_advisory" => "Water main works",
        "road_closure" => "Road closure",
        "accident" => "Traffic accident",
        "roadworks" => "Road works",
        "congestion" => "Heavy traffic",
        _ => "Service disruption",
    }
}

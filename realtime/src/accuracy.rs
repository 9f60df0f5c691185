//! How good the predictions are: the twin knows when every vehicle really arrives, so
//! it samples each vehicle's predictions every so often, waits for the arrivals they
//! were about, and keeps the absolute errors by horizon (how far ahead the prediction
//! was made), beside those of the naive constant-delay prediction.

use std::collections::{HashMap, VecDeque};

use streamcity_core::{VehiclePosition, VehicleStatus};
use streamcity_network::Network;

use crate::learned::Learned;
use crate::predict::{next_call, predict};

/// The horizons errors are kept by: predictions made this many minutes ahead.
pub const HORIZONS: [(i64, i64); 4] = [(0, 5), (5, 10), (10, 20), (20, 30)];
/// How often a vehicle's predictions are sampled, ms of event time.
pub const SAMPLE_EVERY_MS: i64 = 30_000;
/// Errors kept per horizon and predictor (the latest).
pub const KEPT: usize = 5_000;
/// Predictions waiting for their arrival at most, before the oldest are let go.
const MAX_PENDING: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Sample {
    made_ms: i64,
    model_ms: i64,
    naive_ms: i64,
}

/// A run of a trip: its id, service day and start.
type Run = (String, String, String);

/// Predictions and what came of them.
#[derive(Debug)]
pub struct Ledger {
    /// Errors kept per horizon and predictor (the latest).
    kept: usize,
    last_sample: HashMap<String, i64>,
    pending: HashMap<(Run, usize), Vec<Sample>>,
    /// Per run, the calls reached so far (every call before this index).
    reached: HashMap<Run, usize>,
    /// Per horizon: errors in seconds (predicted less actual), of the model and of the
    /// naive prediction.
    errors: [[VecDeque<f64>; 2]; 4],
}

/// The errors at one horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct Accuracy {
    /// Minutes ahead, from and to.
    pub horizon: (i64, i64),
    /// Predictions checked (of the latest kept).
    pub samples: usize,
    /// The model's median and 90th percentile absolute error, seconds.
    pub model: (f64, f64),
    /// The naive prediction's median and 90th percentile absolute error, seconds.
    pub naive: (f64, f64),
    /// The median error of the model and of the naive prediction, seconds: positive,
    /// they expect vehicles later than they come.
    pub bias: (f64, f64),
}

fn quantile(values: impl Iterator<Item = f64>, q: f64) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::keeping(KEPT)
    }
}

fn abs_quantile(values: &VecDeque<f64>, q: f64) -> f64 {
    quantile(values.iter().map(|e| e.abs()), q)
}

impl Ledger {
    /// A ledger keeping the latest `kept` errors per horizon and predictor (a
    /// benchmark keeps them all).
    pub fn keeping(kept: usize) -> Self {
        Ledger {
            kept,
            last_sample: HashMap::new(),
            pending: HashMap::new(),
            reached: HashMap::new(),
            errors: Default::default(),
        }
    }

    /// Takes in a vehicle report: the arrivals it shows settle the predictions made for
    /// them, and every [`SAMPLE_EVERY_MS`] its predictions are sampled.
    pub fn on_report(&mut self, network: &Network, learned: &Learned, p: &VehiclePosition) {
        let (Some(date), Some(time)) = (&p.start_date, &p.start_time) else {
            return;
        };
        let Some(trip) = network.trip(&p.trip_id) else {
            return;
        };
        let run: Run = (p.trip_id.to_string(), date.to_string(), time.to_string());
        if p.status == VehicleStatus::OutOfService {
            self.pending.retain(|(r, _), _| *r != run);
            self.reached.remove(&run);
            self.last_sample.remove(p.vehicle_id.as_str());
            return;
        }
        // Where it is (every report): the calls before its next one are behind it;
        // standing at a stop, that one too.
        let next = next_call(network, p).map_or(trip.stop_times.len(), |(_, _, k)| k);
        let standing = matches!(p.status, VehicleStatus::StoppedAt | VehicleStatus::Layover);
        let reached = next + usize::from(standing);
        let before = self.reached.get(&run).copied().unwrap_or(next.min(reached));
        for index in before..reached {
            self.settle(&run, index, p.timestamp);
        }
        self.reached.insert(run.clone(), reached.max(before));
        // Sample its predictions now and then.
        let due = self
            .last_sample
            .get(p.vehicle_id.as_str())
            .is_none_or(|&t| p.timestamp - t >= SAMPLE_EVERY_MS);
        if !due {
            return;
        }
        self.last_sample
            .insert(p.vehicle_id.to_string(), p.timestamp);
        let calls = predict(network, learned, p, p.timestamp).unwrap_or_default();
        let limit = p.timestamp + HORIZONS[HORIZONS.len() - 1].1 * 60_000;
        for c in calls.iter().filter(|c| c.index >= reached && c.index > 0) {
            if c.arrival_ms > limit {
                break;
            }
            self.pending
                .entry((run.clone(), c.index))
                .or_default()
                .push(Sample {
                    made_ms: p.timestamp,
                    model_ms: c.arrival_ms,
                    naive_ms: c.naive_arrival_ms,
                });
        }
        if self.pending.len() > MAX_PENDING {
            // Runs that stopped reporting: let the oldest predictions go.
            let cutoff = p.timestamp - 2 * 3_600_000;
            self.pending
                .retain(|_, samples| samples.iter().any(|s| s.made_ms > cutoff));
        }
    }

    /// Forgets what was sampled of vehicle `id` (its row was deleted): its runs' own
    /// predictions go when they are the oldest.
    pub fn forget_vehicle(&mut self, id: &str) {
        self.last_sample.remove(id);
    }

    /// The vehicle of `run` reached its call `index` at `at_ms`.
    fn settle(&mut self, run: &Run, index: usize, at_ms: i64) {
        let Some(samples) = self.pending.remove(&(run.clone(), index)) else {
            return;
        };
        for s in samples {
            let ahead_min = (at_ms - s.made_ms) as f64 / 60_000.0;
            let Some(h) = HORIZONS
                .iter()
                .position(|&(from, to)| ahead_min >= from as f64 && ahead_min < to as f64)
            else {
                continue;
            };
            for (k, predicted) in [s.model_ms, s.naive_ms].into_iter().enumerate() {
                let errors = &mut self.errors[h][k];
                errors.push_back((predicted - at_ms) as f64 / 1000.0);
                if errors.len() > self.kept {
                    errors.pop_front();
                }
            }
        }
    }

    /// The errors by horizon.
    pub fn accuracy(&self) -> Vec<Accuracy> {
        HORIZONS
            .iter()
            .zip(&self.errors)
            .map(|(&horizon, [model, naive])| Accuracy {
                horizon,
                samples: model.len(),
                model: (abs_quantile(model, 0.5), abs_quantile(model, 0.9)),
                naive: (abs_quantile(naive, 0.5), abs_quantile(naive, 0.9)),
                bias: (
                    quantile(model.iter().copied(), 0.5),
                    quantile(naive.iter().copied(), 0.5),
                ),
            })
            .collect()
    }
}

//! When discrete events happen: rider arrivals, traffic incidents, city incidents.
//!
//! An [`Arrivals`] process draws the gap to the next event either from an exponential
//! distribution (a Poisson process, the default: independent events at a mean rate) or
//! uniformly between a minimum and a maximum (the retail seed's `--min-delta` and
//! `--max-delta`), and can turn an event into a burst of several at once (the CivicSense
//! seed's burst mode). A rate factor modulates the rate over time (the time-of-day
//! demand curve) without changing the process's shape.

use rand::Rng;

use streamcity_core::TimestampMs;

/// How gaps between events are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gaps {
    /// Exponential gaps with this mean, seconds: a Poisson process.
    Poisson {
        /// Mean gap, seconds.
        mean_s: f64,
    },
    /// Gaps uniformly distributed between two bounds, seconds.
    Uniform {
        /// Shortest gap, seconds.
        min_s: f64,
        /// Longest gap, seconds.
        max_s: f64,
    },
}

impl Gaps {
    /// A Poisson process with `rate` events per second.
    pub fn rate(rate: f64) -> Gaps {
        Gaps::Poisson {
            mean_s: if rate > 0.0 {
                1.0 / rate
            } else {
                f64::INFINITY
            },
        }
    }

    /// Mean gap, seconds.
    pub fn mean_s(&self) -> f64 {
        match *self {
            Gaps::Poisson { mean_s } => mean_s,
            Gaps::Uniform { min_s, max_s } => (min_s + max_s) / 2.0,
        }
    }
}

/// CivicSense-style bursts: with some probability an event comes with others at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Probability that an event is a burst, `[0, 1]`.
    pub probability: f64,
    /// Events in a burst (including the first).
    pub size: u32,
}

impl Burst {
    /// No bursts.
    pub const NONE: Burst = Burst {
        probability: 0.0,
        size: 1,
    };
}

/// A stream of event times.
#[derive(Debug, Clone)]
pub struct Arrivals {
    gaps: Gaps,
    burst: Burst,
    next_ms: TimestampMs,
}

impl Arrivals {
    /// A process whose first event comes one gap after `start`.
    pub fn new<R: Rng>(gaps: Gaps, burst: Burst, start: TimestampMs, rng: &mut R) -> Self {
        let mut a = Arrivals {
            gaps,
            burst,
            next_ms: start,
        };
        a.next_ms = start + a.gap_ms(rng, 1.0);
        a
    }

    /// The gap process.
    pub fn gaps(&self) -> Gaps {
        self.gaps
    }

    /// When the next event is due.
    pub fn next_ms(&self) -> TimestampMs {
        self.next_ms
    }

    fn gap_ms<R: Rng>(&self, rng: &mut R, rate_factor: f64) -> i64 {
        let factor = if rate_factor > 0.0 { rate_factor } else { 1e-9 };
        let secs = match self.gaps {
            Gaps::Poisson { mean_s } => {
                let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                -u.ln() * mean_s
            }
            Gaps::Uniform { min_s, max_s } => {
                if max_s > min_s {
                    rng.random_range(min_s..=max_s)
                } else {
                    min_s
                }
            }
        } / factor;
        // At least 1 ms apart, and never so far that the clock arithmetic overflows.
        (secs * 1000.0).clamp(1.0, 1e15) as i64
    }

    /// Calls `emit(time, n)` for every event due before `until` (`n` events at that
    /// time: more than one in a burst), in time order. `rate_factor` scales the rate
    /// (2 halves the gaps).
    pub fn drain<R: Rng>(
        &mut self,
        until: TimestampMs,
        rate_factor: f64,
        rng: &mut R,
        mut emit: impl FnMut(&mut R, TimestampMs, u32),
    ) {
        while self.next_ms < until {
            let n = if self.burst.probability > 0.0 && rng.random::<f64>() < self.burst.probability
            {
                self.burst.size.max(1)
            } else {
                1
            };
            emit(rng, self.next_ms, n);
            self.next_ms += self.gap_ms(rng, rate_factor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn collect(gaps: Gaps, burst: Burst, seconds: i64) -> Vec<(i64, u32)> {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut a = Arrivals::new(gaps, burst, 0, &mut rng);
        let mut out = Vec::new();
        a.drain(seconds * 1000, 1.0, &mut rng, |_, t, n| out.push((t, n)));
        out
    }

    #[test]
    fn poisson_gaps_have_the_right_mean_and_spread() {
        let events = collect(Gaps::rate(2.0), Burst::NONE, 20_000);
        let gaps: Vec<f64> = events
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) as f64 / 1000.0)
            .collect();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n;
        // ~40,000 draws: the mean is within 2% of 0.5 s, and exponential gaps have
        // standard deviation equal to their mean.
        assert!((mean - 0.5).abs() < 0.01, "mean gap {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.02, "sd {}", var.sqrt());
        assert!(
            (events.len() as f64 - 40_000.0).abs() < 800.0,
            "{} events",
            events.len()
        );
    }

    #[test]
    fn uniform_gaps_stay_within_bounds_and_fill_them() {
        let events = collect(
            Gaps::Uniform {
                min_s: 10.0,
                max_s: 60.0,
            },
            Burst::NONE,
            2_000_000,
        );
        let gaps: Vec<f64> = events
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) as f64 / 1000.0)
            .collect();
        assert!(gaps.iter().all(|g| (10.0..=60.0).contains(g)));
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 35.0).abs() < 0.5, "mean gap {mean}");
        // Each fifth of the range holds about a fifth of the gaps.
        for k in 0..5 {
            let lo = 10.0 + 10.0 * k as f64;
            let share = gaps.iter().filter(|&&g| g >= lo && g < lo + 10.0).count() as f64
                / gaps.len() as f64;
            assert!((share - 0.2).abs() < 0.02, "bucket {k}: {share}");
        }
    }

    #[test]
    fn bursts_come_at_the_configured_probability_and_size() {
        let events = collect(
            Gaps::rate(1.0),
            Burst {
                probability: 0.15,
                size: 4,
            },
            20_000,
        );
        let bursts = events.iter().filter(|e| e.1 == 4).count() as f64;
        let share = bursts / events.len() as f64;
        assert!((share - 0.15).abs() < 0.015, "burst share {share}");
        assert!(events.iter().all(|e| e.1 == 1 || e.1 == 4));
    }

    #[test]
    fn a_rate_factor_scales_the_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut a = Arrivals::new(Gaps::rate(1.0), Burst::NONE, 0, &mut rng);
        let mut n = 0;
        a.drain(10_000_000, 3.0, &mut rng, |_, _, k| n += k);
        assert!((n as f64 - 30_000.0).abs() < 900.0, "{n}");
    }
}

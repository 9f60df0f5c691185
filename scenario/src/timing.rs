//! When a stream's events happen: fixed, exponential (Poisson) or uniform gaps, bursts,
//! and a time-of-day profile.

use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

/// The gaps between a stream's events, seconds of event time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gaps {
    /// Always this long (`every = 3`).
    Every(f64),
    /// Exponential with this mean: a Poisson process (`rate = 10` per second).
    Exponential(f64),
    /// Uniform between the two (`gap = [10, 60]`).
    Uniform(f64, f64),
}

impl Gaps {
    /// The mean gap, seconds.
    pub fn mean(self) -> f64 {
        match self {
            Gaps::Every(s) | Gaps::Exponential(s) => s,
            Gaps::Uniform(a, b) => (a + b) / 2.0,
        }
    }

    /// The same shape, `factor` times faster.
    pub fn faster(self, factor: f64) -> Gaps {
        match self {
            Gaps::Every(s) => Gaps::Every(s / factor),
            Gaps::Exponential(s) => Gaps::Exponential(s / factor),
            Gaps::Uniform(a, b) => Gaps::Uniform(a / factor, b / factor),
        }
    }

    /// One gap, seconds.
    pub fn draw(self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Gaps::Every(s) => s,
            Gaps::Exponential(mean) => -(1.0 - rng.random::<f64>()).ln() * mean,
            Gaps::Uniform(a, b) if b > a => rng.random_range(a..=b),
            Gaps::Uniform(a, _) => a,
        }
    }
}

/// When a stream's events come.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// The gaps.
    pub gaps: Gaps,
    /// Probability that an event comes as a burst of several at the same moment.
    pub burst_p: f64,
    /// Events in a burst, fewest and most.
    pub burst_size: (u32, u32),
    /// Multipliers of the rate for each hour of the city's local day (24), when the
    /// rate follows the time of day.
    pub profile: Option<[f64; 24]>,
}

impl Timing {
    /// The gap after an event at `now_ms` (local offset `local_ms`), ms; the
    /// profile's hour stretches or shortens it.
    pub fn gap_ms(&self, now_ms: i64, local_ms: i64, rng: &mut ChaCha8Rng) -> f64 {
        let gap = self.gaps.draw(rng) * 1000.0;
        match &self.profile {
            None => gap,
            Some(p) => {
                let hour = (now_ms + local_ms).rem_euclid(86_400_000) / 3_600_000;
                // A profile's quiet hour (0) still moves on, an hour at most.
                let m = p[hour as usize];
                if m > 0.0 { gap / m } else { 3_600_000.0 }
            }
        }
    }

    /// How many events come at this moment: 1, or a burst's size.
    pub fn count(&self, rng: &mut ChaCha8Rng) -> u32 {
        if self.burst_p > 0.0 && rng.random::<f64>() < self.burst_p {
            let (lo, hi) = self.burst_size;
            rng.random_range(lo..=hi.max(lo))
        } else {
            1
        }
    }
}

/// Parses a duration as the seeds' users write it: `90s`, `15m`, `2h`, `1d`, `500ms`,
/// or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|_| {
        format!("{s:?} is not a duration: write 90s, 15m, 2h or a number of seconds")
    })?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" | "mins" => n * 60.0,
        "h" | "hr" | "hours" => n * 3600.0,
        "d" | "days" => n * 86_400.0,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (ms, s, m, h or d; a bare number is seconds)"
            ));
        }
    };
    if !(seconds > 0.0 && seconds < 1e10) {
        return Err(format!("{s:?}: a duration must be more than 0"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn durations_take_units_and_bare_numbers_are_seconds() {
        assert_eq!(parse_duration("90"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(
            parse_duration("90s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("15m"),
            Ok(std::time::Duration::from_secs(900))
        );
        assert_eq!(
            parse_duration("2h"),
            Ok(std::time::Duration::from_secs(7200))
        );
        assert_eq!(
            parse_duration("1.5m"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert!(parse_duration("0").is_err());
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn gaps_keep_within_their_bounds_and_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let uniform = Gaps::Uniform(10.0, 60.0);
        let draws: Vec<f64> = (0..10_000).map(|_| uniform.draw(&mut rng)).collect();
        assert!(draws.iter().all(|g| (10.0..=60.0).contains(g)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 35.0).abs() < 0.7, "{mean}");
        let exp = Gaps::Exponential(0.1);
        let mean = (0..10_000).map(|_| exp.draw(&mut rng)).sum::<f64>() / 10_000.0;
        assert!((mean - 0.1).abs() < 0.005, "{mean}");
        assert_eq!(Gaps::Every(3.0).faster(2.0), Gaps::Every(1.5));
    }
}

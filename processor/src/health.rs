//! How a processor judges its own health from what it sees every few seconds: the
//! partitions assigned to it and how far behind their ends it is (consumer lag). A
//! processor with no partitions while the input has records, or whose lag has grown
//! for a minute, says so (a warning, and not ready on `/readyz`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How long with no partitions before it is a problem (a rebalance takes seconds; the session timeout is 10 s).
pub const NO_PARTITIONS_AFTER: Duration = Duration::from_secs(15);
/// How long lag must grow before it is a problem.
pub const GROWING_FOR: Duration = Duration::from_secs(60);

/// What the processor has seen of its partitions over the last minute.
#[derive(Debug, Default)]
pub struct Health {
    /// Since when it has had no partitions (while the input had records).
    unassigned_since: Option<Instant>,
    /// Total lag, sampled, over the last [`GROWING_FOR`].
    lags: VecDeque<(Instant, i64)>,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong.
    Healthy,
    /// No partitions for this long, while the input has records.
    NoPartitions(Duration),
    /// Lag has grown for a minute, to this many records.
    FallingBehind(i64),
}

impl Verdict {
    /// Why it is not ready, when it is not.
    pub fn problem(&self) -> Option<String> {
        match self {
            Verdict::Healthy => None,
            Verdict::NoPartitions(d) => Some(format!(
                "no input partitions assigned for {} s while the input has records: the consumer group has not given this instance any (another instance may hold them, or the group is stuck)",
                d.as_secs()
            )),
            Verdict::FallingBehind(lag) => Some(format!(
                "falling behind: the input lag has grown for a minute, to {lag} records (the processor cannot keep up; add instances or partitions)"
            )),
        }
    }
}

impl Health {
    /// Takes one observation at `now`: partitions assigned, the input's records in all
    /// (the ends of its partitions), and the total lag of the assigned partitions.
    pub fn observe(&mut self, now: Instant, assigned: usize, input: i64, lag: i64) -> Verdict {
        if assigned == 0 && input > 0 {
            let since = *self.unassigned_since.get_or_insert(now);
            if now - since >= NO_PARTITIONS_AFTER {
                return Verdict::NoPartitions(now - since);
            }
        } else {
            self.unassigned_since = None;
        }
        self.lags.push_back((now, lag));
        while self
            .lags
            .front()
            .is_some_and(|(t, _)| now - *t > GROWING_FOR)
        {
            self.lags.pop_front();
        }
        let spans_a_minute = self
            .lags
            .front()
            .is_some_and(|(t, _)| now - *t >= GROWING_FOR - Duration::from_secs(5));
        let growing = self.lags.len() >= 3
            && self
                .lags
                .iter()
                .zip(self.lags.iter().skip(1))
                .all(|((_, a), (_, b))| b > a);
        if spans_a_minute && growing {
            return Verdict::FallingBehind(lag);
        }
        Verdict::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_partitions_while_the_input_has_records_is_a_problem_after_a_while() {
        let t0 = Instant::now();
        let mut h = Health::default();
        assert_eq!(
            h.observe(t0, 0, 0, 0),
            Verdict::Healthy,
            "nothing to read yet"
        );
        assert_eq!(h.observe(t0, 0, 100, 0), Verdict::Healthy);
        let later = t0 + NO_PARTITIONS_AFTER;
        assert_eq!(
            h.observe(later, 0, 100, 0),
            Verdict::NoPartitions(NO_PARTITIONS_AFTER)
        );
        assert!(h.observe(later, 0, 100, 0).problem().is_some());
        assert_eq!(
            h.observe(later, 3, 100, 0),
            Verdict::Healthy,
            "assigned again"
        );
    }

    #[test]
    fn lag_growing_for_a_minute_is_a_problem_and_a_steady_one_is_not() {
        let t0 = Instant::now();
        let mut h = Health::default();
        let mut verdict = Verdict::Healthy;
        for i in 0..=12 {
            verdict = h.observe(
                t0 + Duration::from_secs(5 * i),
                12,
                1_000_000,
                1000 * i as i64,
            );
        }
        assert_eq!(verdict, Verdict::FallingBehind(12_000));
        let mut h = Health::default();
        for i in 0..=12 {
            let lag = if i % 2 == 0 { 5_000 } else { 6_000 };
            verdict = h.observe(t0 + Duration::from_secs(5 * i), 12, 1_000_000, lag);
        }
        assert_eq!(verdict, Verdict::Healthy, "a lag that comes and goes");
    }
}

//! Whether the simulation keeps the speed asked of it. A fleet too large for the
//! machine at a high speed-up falls behind the clock; rather than let the other stages
//! believe a clock the events do not follow, the producer says so (a warning with the
//! speed achieved) and shares a clock that follows what is really simulated.

use streamcity_core::TimestampMs;

/// How often the pace is judged, ms of real time.
pub const SAMPLE_MS: i64 = 10_000;
/// Behind the clock by more than this (simulated ms) counts as not keeping up...
pub const BEHIND_MS: i64 = 5_000;
/// ... when the speed achieved is below this share of the speed asked.
pub const KEEPING_UP: f64 = 0.95;

/// The simulation's pace, sampled.
#[derive(Debug, Default)]
pub struct Pace {
    /// The last sample: real time and simulated time, ms.
    last: Option<(TimestampMs, TimestampMs)>,
    /// Whether the last verdict was "behind".
    behind: bool,
}

/// What changed at a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Not yet time to judge, or nothing changed.
    Same,
    /// It is falling behind: simulated seconds per real second achieved.
    Behind {
        /// The speed achieved.
        achieved: f64,
        /// How far behind the clock simulated time is, ms.
        behind_ms: i64,
    },
    /// It keeps the speed asked again.
    KeepingUp,
}

impl Pace {
    /// Takes a sample at real time `wall` with the simulation at `sim` and the clock
    /// (what it should be at) at `clock`, asked to run at `speed`.
    pub fn sample(
        &mut self,
        wall: TimestampMs,
        sim: TimestampMs,
        clock: TimestampMs,
        speed: f64,
    ) -> Verdict {
        let Some((last_wall, last_sim)) = self.last else {
            self.last = Some((wall, sim));
            return Verdict::Same;
        };
        let elapsed = wall - last_wall;
        if elapsed < SAMPLE_MS {
            return Verdict::Same;
        }
        self.last = Some((wall, sim));
        let achieved = (sim - last_sim) as f64 / elapsed as f64;
        let behind_ms = clock - sim;
        let behind = behind_ms > BEHIND_MS && achieved < speed * KEEPING_UP;
        let was = std::mem::replace(&mut self.behind, behind);
        match (was, behind) {
            (_, true) => Verdict::Behind {
                achieved,
                behind_ms,
            },
            (true, false) => Verdict::KeepingUp,
            (false, false) => Verdict::Same,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulation_slower_than_its_clock_is_told_and_so_is_its_recovery() {
        let mut pace = Pace::default();
        assert_eq!(pace.sample(0, 0, 0, 10.0), Verdict::Same);
        assert_eq!(
            pace.sample(5_000, 20_000, 50_000, 10.0),
            Verdict::Same,
            "too soon to judge"
        );
        // 10 s of real time: 11 s simulated at --speed 10, 89 s behind the clock.
        assert_eq!(
            pace.sample(10_000, 11_000, 100_000, 10.0),
            Verdict::Behind {
                achieved: 1.1,
                behind_ms: 89_000
            }
        );
        // Flat out, it catches up...
        assert!(matches!(
            pace.sample(20_000, 150_000, 200_000, 10.0),
            Verdict::KeepingUp
        ));
        // ... and keeping the pace is nothing to tell.
        assert_eq!(pace.sample(30_000, 250_000, 300_000, 10.0), Verdict::Same);
    }
}

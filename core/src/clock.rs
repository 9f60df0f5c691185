//! Time as an input. Event time drives windows; a [`Clock`] drives the simulators and
//! idle window closing, so that a run can be real-time, accelerated, or stepped by a test.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::event::{MIN_VALID_TIMESTAMP, TimestampMs};

/// A source of simulated time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current simulated time, ms since the epoch.
    fn now_ms(&self) -> TimestampMs;

    /// How long to wait in real time until the simulated time reaches `target`
    /// (zero when it already has).
    fn real_delay_until(&self, target: TimestampMs) -> Duration;

    /// How many simulated seconds pass per real second.
    fn speed(&self) -> f64;
}

/// A clock shared between stages.
pub type SharedClock = Arc<dyn Clock>;

/// The current wall-clock time, ms since the epoch.
pub fn wall_clock_ms() -> TimestampMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as TimestampMs)
        .unwrap_or(0)
}

/// Real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> TimestampMs {
        wall_clock_ms()
    }
    fn real_delay_until(&self, target: TimestampMs) -> Duration {
        Duration::from_millis(target.saturating_sub(self.now_ms()).max(0) as u64)
    }
    fn speed(&self) -> f64 {
        1.0
    }
}

/// Simulated time that starts at a chosen instant and runs `speed` times faster than
/// real time (`--speed`, `--start`).
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    real_origin: Instant,
    sim_origin: TimestampMs,
    speed: f64,
}

impl ScaledClock {
    /// A clock that reads `sim_origin` now and advances `speed` times faster than real
    /// time. A speed that is not finite and positive is taken as 1.
    pub fn new(sim_origin: TimestampMs, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        ScaledClock {
            real_origin: Instant::now(),
            sim_origin,
            speed,
        }
    }
}

impl Clock for ScaledClock {
    fn now_ms(&self) -> TimestampMs {
        let elapsed = self.real_origin.elapsed().as_secs_f64() * 1000.0 * self.speed;
        self.sim_origin + elapsed as TimestampMs
    }
    fn real_delay_until(&self, target: TimestampMs) -> Duration {
        let ahead_ms = target.saturating_sub(self.now_ms()).max(0) as f64;
        Duration::from_secs_f64(ahead_ms / 1000.0 / self.speed)
    }
    fn speed(&self) -> f64 {
        self.speed
    }
}

/// A clock that moves only when told to: for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: TimestampMs) -> Self {
        ManualClock {
            now: AtomicI64::new(now),
        }
    }
    /// Sets the time.
    pub fn set(&self, now: TimestampMs) {
        self.now.store(now, Ordering::SeqCst);
    }
    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> TimestampMs {
        self.now.load(Ordering::SeqCst)
    }
    /// A short poll interval while the target is ahead: the test moves the clock.
    fn real_delay_until(&self, target: TimestampMs) -> Duration {
        if target > self.now_ms() {
            Duration::from_millis(1)
        } else {
            Duration::ZERO
        }
    }
    fn speed(&self) -> f64 {
        f64::INFINITY
    }
}

/// The simulated clock as a producer runs it, published beside the network (key
/// `clock` on the `network` topic) so that every stage shares one clock: at wall-clock
/// time `wall_ms` the simulated time was `sim_ms`, and it advances `speed` simulated
/// seconds per real second. A producer that stops publishes a reading with speed 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockReading {
    /// Simulated time, ms since the epoch.
    pub sim_ms: TimestampMs,
    /// Wall-clock time of the reading, ms since the epoch.
    pub wall_ms: TimestampMs,
    /// Simulated seconds per real second; 0 when the clock has stopped.
    pub speed: f64,
}

impl ClockReading {
    /// A reading of `clock` now.
    pub fn of(clock: &dyn Clock) -> Self {
        ClockReading {
            sim_ms: clock.now_ms(),
            wall_ms: wall_clock_ms(),
            speed: clock.speed(),
        }
    }

    /// The clock stopped at `sim_ms`.
    pub fn stopped(sim_ms: TimestampMs) -> Self {
        ClockReading {
            sim_ms,
            wall_ms: wall_clock_ms(),
            speed: 0.0,
        }
    }

    /// The simulated time at wall-clock time `wall_ms`.
    pub fn sim_at(&self, wall_ms: TimestampMs) -> TimestampMs {
        let elapsed = wall_ms.saturating_sub(self.wall_ms).max(0) as f64;
        self.sim_ms
            .saturating_add((elapsed * self.speed) as TimestampMs)
    }

    /// Whether it can be used: times after 2000, a finite speed from 0 to 1,000,000.
    pub fn is_valid(&self) -> bool {
        self.sim_ms >= MIN_VALID_TIMESTAMP
            && self.wall_ms >= MIN_VALID_TIMESTAMP
            && self.speed.is_finite()
            && (0.0..=1_000_000.0).contains(&self.speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_faster() {
        let c = ScaledClock::new(1_000_000, 60.0);
        std::thread::sleep(Duration::from_millis(50));
        let advanced = c.now_ms() - 1_000_000;
        // 50 ms real at 60x is 3 s simulated; allow for a slow machine on the upper side.
        assert!(advanced >= 2_900, "{advanced}");
        let wait = c.real_delay_until(c.now_ms() + 60_000);
        assert!(
            wait <= Duration::from_millis(1000) && wait >= Duration::from_millis(900),
            "{wait:?}"
        );
    }

    #[test]
    fn bad_speed_is_real_time() {
        assert_eq!(ScaledClock::new(0, -3.0).speed(), 1.0);
        assert_eq!(ScaledClock::new(0, f64::NAN).speed(), 1.0);
    }

    #[test]
    fn a_reading_tells_the_simulated_time_later() {
        let r = ClockReading {
            sim_ms: 1_763_884_800_000,
            wall_ms: 1_700_000_000_000,
            speed: 10.0,
        };
        assert!(r.is_valid());
        assert_eq!(r.sim_at(1_700_000_001_000), 1_763_884_810_000);
        assert_eq!(
            r.sim_at(1_699_999_999_000),
            1_763_884_800_000,
            "never backwards"
        );
        let stopped = ClockReading { speed: 0.0, ..r };
        assert_eq!(stopped.sim_at(1_700_000_100_000), r.sim_ms);
        assert!(
            !ClockReading {
                speed: f64::NAN,
                ..r
            }
            .is_valid()
        );
        assert!(!ClockReading { sim_ms: 5, ..r }.is_valid());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(10);
        assert_eq!(c.now_ms(), 10);
        c.advance(5);
        assert_eq!(c.now_ms(), 15);
        assert_eq!(c.real_delay_until(15), Duration::ZERO);
        assert!(c.real_delay_until(16) > Duration::ZERO);
    }
}

//! Logging without flooding: a [`Throttle`] lets one line through per period and
//! counts the ones it held back, so that a storm of the same error (a broker down, a
//! topic full of junk) is one line with a count, never thousands.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// At most one line per period; the others are counted.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// A throttle letting one line through per `period`.
    pub const fn new(period: Duration) -> Self {
        Throttle {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// Whether a line may go out now: `Some(n)` with `n` the lines held back since the
    /// last one that went out, `None` (and one more counted) otherwise.
    pub fn ready(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, held) = &mut *state;
        if last.is_some_and(|t| t.elapsed() < self.period) {
            *held += 1;
            return None;
        }
        *last = Some(Instant::now());
        Some(std::mem::take(held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count_held_back() {
        let t = Throttle::new(Duration::from_millis(50));
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), None);
        assert_eq!(t.ready(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.ready(), Some(2));
    }
}

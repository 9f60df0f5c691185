//! A consumer's membership of its group, watched: one holding no partitions for a while
//! leaves and joins afresh. A broker may hand every partition to a member that died a
//! moment ago (its session not yet expired) and not rebalance when it expires, leaving
//! a restarted stage idle with the work undone; joining again ends that. The wait grows
//! four times after each rejoin (up to 10 minutes), so a member with truly nothing to
//! do (more members than partitions) does not keep its group rebalancing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Subscription;

/// How long a member may hold nothing before it first joins again.
pub const REJOIN_FIRST: Duration = Duration::from_secs(15);
/// The longest wait between two rejoins.
pub const REJOIN_MAX: Duration = Duration::from_secs(600);

/// The partitions a subscription holds, and since when it has held none.
#[derive(Debug)]
pub struct Membership {
    held: HashSet<(Arc<str>, i32)>,
    empty_since: Option<Instant>,
    rejoin_after: Duration,
    /// Whether the bus has groups that assign partitions (Kafka); on the memory bus a
    /// subscription reads everything and is never told so.
    grouped: bool,
}

impl Membership {
    /// Watching a subscription on a bus with groups (`grouped`) or without.
    pub fn new(grouped: bool) -> Self {
        Membership {
            held: HashSet::new(),
            empty_since: Some(Instant::now()),
            rejoin_after: REJOIN_FIRST,
            grouped,
        }
    }

    /// Takes the assignments and revocations `sub` reports; returns those revoked.
    pub fn note<S: Subscription>(&mut self, sub: &mut S) -> Vec<(Arc<str>, i32)> {
        let revoked = sub.take_revoked();
        for p in &revoked {
            self.held.remove(p);
        }
        self.held.extend(sub.take_assigned());
        if self.held.is_empty() {
            self.empty_since.get_or_insert_with(Instant::now);
        } else {
            self.empty_since = None;
        }
        revoked
    }

    /// Notes that a record arrived: whatever it was told, the member holds something.
    pub fn delivered(&mut self) {
        self.empty_since = None;
    }

    /// Whether it is time to leave the group and join it again; if so, the next wait
    /// is longer.
    pub fn should_rejoin(&mut self) -> bool {
        let due = self.grouped
            && self
                .empty_since
                .is_some_and(|since| since.elapsed() >= self.rejoin_after);
        if due {
            self.rejoin_after = (self.rejoin_after * 4).min(REJOIN_MAX);
            self.empty_since = Some(Instant::now());
        }
        due
    }

    /// The partitions it holds now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_grouped_member_holding_nothing_rejoins() {
        let mut m = Membership::new(false);
        m.empty_since = Some(Instant::now() - Duration::from_secs(60));
        assert!(!m.should_rejoin(), "the memory bus has no groups");
        let mut m = Membership::new(true);
        assert!(!m.should_rejoin(), "not yet");
        m.empty_since = Some(Instant::now() - REJOIN_FIRST);
        assert!(m.should_rejoin());
        assert_eq!(m.rejoin_after, REJOIN_FIRST * 4);
        assert!(!m.should_rejoin(), "the wait starts again, longer");
        m.delivered();
        m.rejoin_after = Duration::ZERO;
        assert!(!m.should_rejoin(), "it holds partitions");
    }
}

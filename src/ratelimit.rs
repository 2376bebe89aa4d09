//! Rate-limited warnings for input that peers may send at any rate (a flood of bad datagrams, a
//! stream of malformed messages): the first occurrence is logged, then at most one line per
//! period, which says how many were not logged in between. Time is passed in, so the decision is
//! testable without a clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Decides when a recurring warning may be logged again.
#[derive(Debug)]
pub(crate) struct RateLimit {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimit {
    /// At most one line per `period`.
    pub(crate) const fn new(period: Duration) -> RateLimit {
        RateLimit { period, state: Mutex::new((None, 0)) }
    }

    /// `Some(n)` if a line may be logged now, `n` being how many occurrences were held back since
    /// the last line; `None` if this one is to be held back (and counted).
    pub(crate) fn allow(&self, now: Instant) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, held) = &mut *st;
        match last {
            Some(t) if now.saturating_duration_since(*t) < self.period => {
                *held += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(held))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_one_per_period_with_the_count_held_back() {
        let rl = RateLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(rl.allow(t0), Some(0));
        assert_eq!(rl.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(rl.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(rl.allow(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(rl.allow(t0 + Duration::from_secs(11)), None);
        assert_eq!(rl.allow(t0 + Duration::from_secs(30)), Some(1));
    }
}

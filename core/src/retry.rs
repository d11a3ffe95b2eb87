//! One retry schedule for every transient fault: capped exponential backoff.
//!
//! A transient error ([`crate::ErrorClass::Transient`]) is retried after a delay that
//! doubles from [`RetryPolicy::initial`] up to [`RetryPolicy::max`]. An attempt that made
//! progress, or that ran longer than [`RetryPolicy::reset_after`] before failing, starts
//! the schedule over: a fault an hour after the last one is a new fault, not the same
//! one repeating, so twenty separate faults never add up to a minute's wait.
//!
//! The schedule is pure (no clock, no sleeping): callers sleep for
//! [`Backoff::next_delay`] in whatever way lets them also watch for shutdown. The three
//! places that retry use it with their own policy, named here so that each schedule is
//! written once:
//! - [`RetryPolicy::TASK`]: the supervisor restarting a connector's task (1 s → 60 s);
//! - [`RetryPolicy::RECONNECT`]: a source reopening its replication connection inside a
//!   running task (100 ms → 30 s);
//! - [`RetryPolicy::REQUEST`]: a client repeating one request to a service (200 ms →
//!   6.4 s, jittered so that many connectors do not retry in step).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a retry loop waits between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay before the first retry.
    pub initial: Duration,
    /// The delay never exceeds this (before jitter).
    pub max: Duration,
    /// An attempt that ran at least this long before failing starts the schedule over.
    pub reset_after: Duration,
    /// Adds up to the delay again, chosen at random, to each wait.
    pub jitter: bool,
}

impl RetryPolicy {
    /// A connector's task restarted by the supervisor.
    pub const TASK: Self = Self {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        reset_after: Duration::from_secs(300),
        jitter: false,
    };

    /// A replication connection reopened inside a running task.
    pub const RECONNECT: Self = Self {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(30),
        reset_after: Duration::from_secs(30),
        jitter: false,
    };

    /// One request to a service repeated by its client.
    pub const REQUEST: Self = Self {
        initial: Duration::from_millis(200),
        max: Duration::from_millis(6400),
        reset_after: Duration::from_secs(60),
        jitter: true,
    };

    /// A schedule starting at [`Self::initial`].
    pub fn schedule(self) -> Backoff {
        Backoff {
            policy: self,
            next: self.initial,
            retries: 0,
        }
    }
}

/// Where a retry loop stands in its [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    next: Duration,
    retries: u64,
}

impl Backoff {
    /// The wait before the next attempt; each call doubles the following one, up to the
    /// policy's maximum.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.policy.max);
        self.retries += 1;
        if self.policy.jitter {
            base + jitter(base)
        } else {
            base
        }
    }

    /// The attempt that just failed ran for `elapsed`, and `progressed` if it got further
    /// than the one before (stored a newer position, read a new event): either way, when
    /// it ran long or progressed, the schedule starts over.
    pub fn attempt_ended(&mut self, elapsed: Duration, progressed: bool) {
        if progressed || elapsed >= self.policy.reset_after {
            self.reset();
        }
    }

    /// Starts the schedule over at [`RetryPolicy::initial`].
    pub fn reset(&mut self) {
        self.next = self.policy.initial;
    }

    /// How many waits this schedule has handed out.
    pub fn retries(&self) -> u64 {
        self.retries
    }
}

/// A pseudo-random duration below `max` (the clock's nanoseconds: spread, not secrecy).
fn jitter(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let max_nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if max_nanos == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(nanos % max_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut b = RetryPolicy::TASK.schedule();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.retries(), 9);
        let mut r = RetryPolicy::RECONNECT.schedule();
        let delays: Vec<u128> = (0..10).map(|_| r.next_delay().as_millis()).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000]
        );
    }

    #[test]
    fn a_long_or_productive_attempt_starts_over() {
        let mut b = RetryPolicy::TASK.schedule();
        b.next_delay();
        b.next_delay();
        b.attempt_ended(Duration::from_secs(10), false);
        assert_eq!(b.next_delay(), Duration::from_secs(4));
        b.attempt_ended(Duration::from_secs(10), true);
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        b.next_delay();
        b.attempt_ended(Duration::from_secs(300), false);
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_one_delay() {
        let mut b = RetryPolicy::REQUEST.schedule();
        for base in [200u128, 400, 800, 1600, 3200, 6400, 6400] {
            let d = b.next_delay().as_millis();
            assert!(
                (base..2 * base).contains(&d),
                "{d} ms for a base of {base} ms"
            );
        }
    }
}

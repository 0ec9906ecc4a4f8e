//! The one backoff of everything that tries again: tasks and mail (by the
//! attempts stored with them), a room's store retries, and the reconnects
//! of workers, local worker processes and the terminal client.

use std::time::Duration;

use rand::Rng;

/// Waits that double from `first` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The wait after `failures` failures in a row: `first` after the first
    /// (and after none), then twice as long each time, never over `max`.
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }

    /// `after`, shortened by up to half at random (see `jittered`).
    pub fn jittered(&self, failures: u32) -> Duration {
        jittered(self.after(failures))
    }
}

/// `wait` shortened by up to half at random, so that many clients that
/// failed together (a fleet of workers after a server restart, the mails
/// of one refusing server) do not all try again at the same moment.
pub fn jittered(wait: Duration) -> Duration {
    let half = wait / 2;
    half + half.mul_f64(rand::rng().random_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_first_up_to_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(600));
        assert_eq!(backoff.after(0), Duration::from_secs(2));
        assert_eq!(backoff.after(1), Duration::from_secs(2));
        assert_eq!(backoff.after(3), Duration::from_secs(8));
        assert_eq!(backoff.after(12), Duration::from_secs(600));
        assert_eq!(backoff.after(u32::MAX), Duration::from_secs(600));
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let backoff = Backoff::new(Duration::from_secs(8), Duration::from_secs(8));
        for _ in 0..100 {
            let wait = backoff.jittered(5);
            assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(8));
        }
    }
}

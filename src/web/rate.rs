//! A per-key limit on how often something may be done: at most `limit`
//! times per `window`, counted from the key's first use in the window.
//! Per node: behind a load balancer each node allows the limit, which
//! bounds abuse without shared state (subscriptions). Admin actions and
//! registrations are counted for the whole cluster on the bus, and here
//! only while the bus is down (or there is none); failed logins are
//! counted in both places (`web::accounts`).
//!
//! The keys are the callers' (addresses, names), so they are kept in
//! bounded memory: `accounts::throttle::WindowCounts`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::accounts::throttle::{relock, WindowCounts, KEYS};

pub struct RateLimit {
    uses: Mutex<WindowCounts>,
}

impl RateLimit {
    pub fn new(limit: u32, window: Duration) -> RateLimit {
        RateLimit {
            uses: Mutex::new(WindowCounts::new(limit, window, KEYS)),
        }
    }

    /// Counts a use of `key`; `Err(wait)` if it is over the limit, and then
    /// it is not counted.
    pub fn hit(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut uses = relock(&self.uses);
        if let Some(wait) = uses.over(key, now) {
            return Err(wait);
        }
        uses.count(key, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_the_window_ends_per_key() {
        let limit = RateLimit::new(2, Duration::from_secs(60));
        let now = Instant::now();
        assert!(limit.hit("a", now).is_ok());
        assert!(limit.hit("a", now).is_ok());
        let wait = limit.hit("a", now + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limit.hit("b", now).is_ok());
        assert!(limit.hit("a", now + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn a_poisoned_lock_keeps_the_limit() {
        // Arrange: "a" used its one; then a thread panics holding the lock.
        let limit = std::sync::Arc::new(RateLimit::new(1, Duration::from_secs(60)));
        let now = Instant::now();
        assert!(limit.hit("a", now).is_ok());
        let holder = limit.clone();
        let panicked = std::thread::spawn(move || {
            let _uses = holder.uses.lock();
            panic!("a panic while counting");
        })
        .join();
        assert!(panicked.is_err() && limit.uses.is_poisoned());

        // Act
        let again = limit.hit("a", now);

        // Assert
        assert_eq!(again, Err(Duration::from_secs(60)));
    }
}

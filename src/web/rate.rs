//! A per-key limit on how often something may be done: at most `limit`
//! times per `window`, counted from the key's first use in the window.
//! Per node, like the login throttle: behind a load balancer each node
//! allows the limit, which bounds abuse without shared state. Admin
//! actions are counted for the whole cluster on the bus, and here only
//! while the bus is down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept before expired ones are swept out.
const SWEEP_AT: usize = 10_000;

pub struct RateLimit {
    limit: u32,
    window: Duration,
    uses: Mutex<HashMap<String, (u32, Instant)>>,
}

impl RateLimit {
    pub fn new(limit: u32, window: Duration) -> RateLimit {
        RateLimit {
            limit,
            window,
            uses: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a use of `key`; `Err(wait)` if it is over the limit, and then
    /// it is not counted.
    pub fn hit(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut uses) = self.uses.lock() else {
            return Ok(());
        };
        if uses.len() >= SWEEP_AT {
            uses.retain(|_, (_, since)| now.duration_since(*since) < self.window);
        }
        let entry = uses.entry(key.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        if entry.0 >= self.limit {
            let wait = self.window.saturating_sub(now.duration_since(entry.1));
            return Err(wait.max(Duration::from_secs(1)));
        }
        entry.0 += 1;
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
}

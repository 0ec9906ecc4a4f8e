//! Login throttling: failed attempts are counted per login name and per
//! client address over a window; past the limit, attempts are refused
//! without checking the password until the window ends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginThrottle {
    per_name: u32,
    per_address: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    pub fn new(per_name: u32, per_address: u32, window: Duration) -> LoginThrottle {
        LoginThrottle {
            per_name,
            per_address,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when either key is over its limit.
    pub fn check(&self, name: &str, address: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut failures) = self.failures.lock() else {
            return Ok(());
        };
        failures.retain(|_, (_, since)| now.duration_since(*since) < self.window);
        let over = |key: String, limit: u32| {
            failures
                .get(&key)
                .filter(|(count, _)| *count >= limit)
                .map(|(_, since)| self.window.saturating_sub(now.duration_since(*since)))
        };
        match over(format!("name:{name}"), self.per_name)
            .or_else(|| over(format!("addr:{address}"), self.per_address))
        {
            Some(wait) => Err(wait.max(Duration::from_secs(1))),
            None => Ok(()),
        }
    }

    pub fn failed(&self, name: &str, address: &str, now: Instant) {
        if let Ok(mut failures) = self.failures.lock() {
            for key in [format!("name:{name}"), format!("addr:{address}")] {
                failures.entry(key).or_insert((0, now)).0 += 1;
            }
        }
    }

    /// A successful login clears its name's count (not the address's: one
    /// good account must not unlock guessing at others).
    pub fn succeeded(&self, name: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&format!("name:{name}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_until_the_window_ends() {
        let t = LoginThrottle::new(3, 10, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.check("ana", "1.2.3.4", now).is_ok());
            t.failed("ana", "1.2.3.4", now);
        }
        let wait = t.check("ana", "5.6.7.8", now).unwrap_err();
        assert!(wait <= Duration::from_secs(60));
        assert!(t.check("bob", "1.2.3.4", now).is_ok(), "other names go on");
        assert!(t
            .check("ana", "1.2.3.4", now + Duration::from_secs(61))
            .is_ok());
        t.succeeded("ana");
        assert!(t.check("ana", "1.2.3.4", now).is_ok());
    }

    #[test]
    fn an_address_is_limited_across_names() {
        let t = LoginThrottle::new(100, 2, Duration::from_secs(60));
        let now = Instant::now();
        t.failed("a1", "9.9.9.9", now);
        t.failed("a2", "9.9.9.9", now);
        assert!(t.check("a3", "9.9.9.9", now).is_err());
    }
}

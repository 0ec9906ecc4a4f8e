//! A token bucket per connection: a steady rate with a burst allowance.

use std::time::{Duration, Instant};

/// Refills at `rate` tokens per second up to `burst`; each frame takes what
/// it costs (a request one token).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// When the bucket first ran dry in the current flood.
    dry_since: Option<Instant>,
    last_refused: Option<Instant>,
}

/// How long without a refusal ends a flood.
const CALM: Duration = Duration::from_secs(1);

/// What the bucket says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refused; the connection may go on.
    Refuse,
    /// Refused for longer than the grace: the connection is abusive.
    Abuse,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: rate.max(0.001),
            burst,
            tokens: burst,
            last: now,
            dry_since: None,
            last_refused: None,
        }
    }

    pub fn take(&mut self, now: Instant, grace: Duration, cost: f64) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= cost {
            // A token earned back between refusals does not end a flood; a
            // second without a refusal shows the client slowed down.
            if self
                .last_refused
                .is_some_and(|last| now.saturating_duration_since(last) >= CALM)
            {
                self.dry_since = None;
            }
            self.tokens -= cost;
            return Verdict::Allow;
        }
        self.last_refused = Some(now);
        let since = *self.dry_since.get_or_insert(now);
        if now.saturating_duration_since(since) > grace {
            Verdict::Abuse
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_that_earns_a_token_now_and_then_is_still_a_flood() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(1);
        let mut bucket = TokenBucket::new(5.0, 10, t0);
        let mut t = t0;
        let mut verdicts = Vec::new();
        for _ in 0..400 {
            t += Duration::from_millis(5);
            verdicts.push(bucket.take(t, grace, 1.0));
        }
        assert!(verdicts.contains(&Verdict::Allow));
        assert!(verdicts.contains(&Verdict::Abuse));
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(5);
        let mut bucket = TokenBucket::new(10.0, 5, t0);
        for _ in 0..5 {
            assert_eq!(bucket.take(t0, grace, 1.0), Verdict::Allow);
        }
        assert_eq!(bucket.take(t0, grace, 1.0), Verdict::Refuse);
        // 100 ms at 10/s buys one more.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(bucket.take(t1, grace, 1.0), Verdict::Allow);
        assert_eq!(bucket.take(t1, grace, 1.0), Verdict::Refuse);
    }

    #[test]
    fn cheap_frames_take_a_share_of_a_token() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(5);
        let mut bucket = TokenBucket::new(1.0, 1, t0);
        for _ in 0..4 {
            assert_eq!(bucket.take(t0, grace, 0.25), Verdict::Allow);
        }
        assert_eq!(bucket.take(t0, grace, 0.25), Verdict::Refuse);
    }

    #[test]
    fn staying_over_the_rate_past_the_grace_is_abuse() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(1);
        let mut bucket = TokenBucket::new(1.0, 1, t0);
        assert_eq!(bucket.take(t0, grace, 1.0), Verdict::Allow);
        let mut t = t0;
        let mut verdict = Verdict::Allow;
        for _ in 0..30 {
            t += Duration::from_millis(100);
            verdict = bucket.take(t, grace, 1.0);
            if verdict == Verdict::Abuse {
                break;
            }
        }
        assert_eq!(verdict, Verdict::Abuse);
    }
}

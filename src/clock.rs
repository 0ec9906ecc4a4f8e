//! The server's wall-clock time, at the one precision it stores.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Now, truncated to milliseconds: SQLite stores times as text, and one
/// precision everywhere keeps their text order equal to their time order.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(TimeDelta::milliseconds(1))
        .unwrap_or(now)
}

/// Converts a std duration for chrono arithmetic, saturating on overflow.
pub fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_has_millisecond_precision() {
        assert_eq!(now().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}

//! The task lifecycle as pure functions (docs/architecture.md §2): states,
//! lease tokens, and what an attempt's outcome does to a task.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backoff::Backoff;
use crate::clock::delta;

pub use entity::tasks::TaskState;

/// A lease's fencing token, `t<task>-a<attempt>`: a result carrying an older
/// token than the task's current one is stale.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(String);

impl LeaseToken {
    pub fn new(task: i64, attempt: i32) -> LeaseToken {
        LeaseToken(format!("t{task}-a{attempt}"))
    }

    /// Parses a token received from a worker; anything else is refused.
    pub fn parse(s: &str) -> Option<LeaseToken> {
        let (task, attempt) = s.strip_prefix('t')?.split_once("-a")?;
        let task: i64 = task.parse().ok()?;
        let attempt: i32 = attempt.parse().ok()?;
        (task > 0 && attempt > 0).then(|| LeaseToken::new(task, attempt))
    }

    /// The task id the token names.
    pub fn task(&self) -> i64 {
        self.0[1..]
            .split_once("-a")
            .and_then(|(t, _)| t.parse().ok())
            .unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How an attempt ended, other than with a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setback {
    /// The worker reported a failure.
    Failed { retryable: bool },
    /// The lease ran out without a heartbeat.
    Expired,
    /// The worker's connection closed.
    Disconnected,
}

/// Retries: exponential backoff, then `dead`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

/// What happens to a task next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    pub state: TaskState,
    pub not_before: DateTime<Utc>,
}

impl RetryPolicy {
    /// The task's next state after `attempts` attempts, the last of which ended
    /// in `setback`.
    pub fn after(&self, attempts: u32, setback: &Setback, now: DateTime<Utc>) -> Next {
        let permanent = matches!(setback, Setback::Failed { retryable: false });
        if permanent || attempts >= self.max_attempts {
            return Next {
                state: TaskState::Dead,
                not_before: now,
            };
        }
        // A lost connection says nothing about the page: retry at once.
        let wait = match setback {
            Setback::Disconnected => Duration::ZERO,
            _ => self.backoff(attempts),
        };
        Next {
            state: TaskState::Queued,
            not_before: now + delta(wait),
        }
    }

    /// The wait before attempt `attempts + 1`: base × 2^(attempts − 1), capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        Backoff::new(self.base, self.max).after(attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_retryable_failure_requeues_with_exponential_backoff() {
        let now = Utc::now();
        let fail = Setback::Failed { retryable: true };
        let first = policy().after(1, &fail, now);
        assert_eq!(first.state, TaskState::Queued);
        assert_eq!(first.not_before - now, chrono::TimeDelta::seconds(2));
        let second = policy().after(2, &fail, now);
        assert_eq!(second.not_before - now, chrono::TimeDelta::seconds(4));
    }

    #[test]
    fn the_last_attempt_makes_the_task_dead() {
        let next = policy().after(3, &Setback::Expired, Utc::now());
        assert_eq!(next.state, TaskState::Dead);
    }

    #[test]
    fn a_permanent_failure_is_dead_at_once() {
        let next = policy().after(1, &Setback::Failed { retryable: false }, Utc::now());
        assert_eq!(next.state, TaskState::Dead);
    }

    #[test]
    fn a_disconnect_requeues_without_waiting() {
        let now = Utc::now();
        let next = policy().after(1, &Setback::Disconnected, now);
        assert_eq!(
            next,
            Next {
                state: TaskState::Queued,
                not_before: now
            }
        );
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(policy().backoff(30), Duration::from_secs(60));
    }

    #[test]
    fn lease_tokens_round_trip_and_reject_garbage() {
        let token = LeaseToken::new(9, 2);
        assert_eq!(token.as_str(), "t9-a2");
        assert_eq!(LeaseToken::parse("t9-a2"), Some(token.clone()));
        assert_eq!(token.task(), 9);
        for bad in [
            "",
            "t9",
            "9-a2",
            "t-a2",
            "tx-a1",
            "t9-a0",
            "t9-a2; DROP TABLE tasks",
        ] {
            assert_eq!(LeaseToken::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_done_dead_and_cancelled_are_final() {
        let finals: Vec<_> = TaskState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [TaskState::Done, TaskState::Dead, TaskState::Cancelled]
        );
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
        }
    }
}

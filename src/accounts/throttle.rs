//! Login throttling: failed attempts are counted per login name and per
//! client address over a window; past the limit, attempts are refused
//! without checking the password until the window ends.
//!
//! The counts live in [`WindowCounts`], which holds a bounded number of
//! keys and does O(1) work per call, since every key is chosen by whoever
//! tries to log in. Not `governor`: its GCRA counts every check, while here
//! only failures count, a success clears its name, and a refusal says when
//! the window ends; and its keyed store shrinks only when asked to, so it
//! would not bound memory on its own.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Keys a [`WindowCounts`] keeps under its limit, and as many at it. Each
/// costs about 150 bytes with its place in line, so a full set of counts
/// stays under 20 MB.
pub const KEYS: usize = 50_000;

/// How often each key was counted in a fixed window that starts at the
/// key's first count, and which keys have reached the limit, in bounded
/// memory with O(1) work per call (amortized).
///
/// Keys under the limit and keys at it are kept apart, each set bounded by
/// `cap`. When a set is full, its oldest key goes: a flood of new keys can
/// only take away counts that have not reached the limit yet, never a key
/// that is refused. Filling the set of refused keys takes `limit` counts
/// per key, which the limits on addresses and the bounded password checks
/// make slow.
pub struct WindowCounts {
    limit: u32,
    window: Duration,
    cap: usize,
    counting: Keys<u32>,
    reached: Keys<()>,
}

/// Keys with the start of their window, in the order their windows began,
/// which is the order they end, all windows being as long.
struct Keys<V> {
    entries: HashMap<String, (Instant, V)>,
    /// May hold keys forgotten or restarted since: an entry whose start is
    /// not the key's current one is skipped.
    order: VecDeque<(String, Instant)>,
}

impl<V> Keys<V> {
    fn new() -> Keys<V> {
        Keys {
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// `key`'s entry, unless its window ended by `now`.
    fn live(&mut self, key: &str, window: Duration, now: Instant) -> Option<&mut (Instant, V)> {
        let ended = |since: &Instant| now.saturating_duration_since(*since) >= window;
        if self.entries.get(key).is_some_and(|(since, _)| ended(since)) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    /// Drops the keys at the front of the line whose window ended by `now`.
    /// The line is in the order windows began, give or take callers that
    /// raced for the lock, so a key's own end is checked too (`live`).
    fn expire(&mut self, window: Duration, now: Instant) {
        while let Some((_, since)) = self.order.front() {
            if now.saturating_duration_since(*since) < window {
                break;
            }
            self.pop_oldest();
        }
    }

    /// Removes the front of the line, and its key if the entry is current.
    fn pop_oldest(&mut self) {
        if let Some((key, since)) = self.order.pop_front() {
            if let Entry::Occupied(entry) = self.entries.entry(key) {
                if entry.get().0 == since {
                    entry.remove();
                }
            }
        }
    }

    /// Adds `key`, whose window began at `since`, making room if `cap`
    /// keys are kept; the line is kept within twice `cap` as well, since
    /// forgotten keys leave their place in it behind.
    fn insert(&mut self, key: String, since: Instant, value: V, cap: usize) {
        let cap = cap.max(1);
        while !self.order.is_empty() && (self.entries.len() >= cap || self.order.len() >= 2 * cap) {
            self.pop_oldest();
        }
        self.order.push_back((key.clone(), since));
        self.entries.insert(key, (since, value));
    }
}

impl WindowCounts {
    pub fn new(limit: u32, window: Duration, cap: usize) -> WindowCounts {
        WindowCounts {
            limit: limit.max(1),
            window,
            cap,
            counting: Keys::new(),
            reached: Keys::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        self.counting.expire(self.window, now);
        self.reached.expire(self.window, now);
    }

    /// How long until `key`'s window ends, if it has reached the limit.
    pub fn over(&mut self, key: &str, now: Instant) -> Option<Duration> {
        self.expire(now);
        let (since, ()) = self.reached.live(key, self.window, now)?;
        let wait = self
            .window
            .saturating_sub(now.saturating_duration_since(*since));
        Some(wait.max(Duration::from_secs(1)))
    }

    /// Counts `key` once (a key at the limit stays there).
    pub fn count(&mut self, key: &str, now: Instant) {
        self.expire(now);
        if self.reached.live(key, self.window, now).is_some() {
            return;
        }
        let since = match self.counting.live(key, self.window, now) {
            Some((since, count)) => {
                *count += 1;
                if *count < self.limit {
                    return;
                }
                *since
            }
            None if self.limit > 1 => {
                self.counting.insert(key.to_owned(), now, 1, self.cap);
                return;
            }
            None => now,
        };
        // At the limit: the key moves to the refused ones, keeping its
        // window (its old place in `counting`'s line is skipped later).
        self.counting.entries.remove(key);
        self.reached.insert(key.to_owned(), since, (), self.cap);
    }

    /// Forgets what was counted for `key` below the limit.
    pub fn forget(&mut self, key: &str) {
        self.counting.entries.remove(key);
    }

    /// Keys kept, counting and refused.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.counting.entries.len() + self.reached.entries.len()
    }
}

/// Locks counts whatever happened to the last holder. A thread that
/// panicked while holding the lock left the counts as they were, or at
/// worst a key counted once too few or too many; letting every attempt
/// through instead, as giving up on a poisoned lock would, would switch
/// the limit off for good.
pub(crate) fn relock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct LoginThrottle {
    counts: Mutex<Counts>,
}

struct Counts {
    names: WindowCounts,
    addresses: WindowCounts,
}

impl LoginThrottle {
    pub fn new(per_name: u32, per_address: u32, window: Duration) -> LoginThrottle {
        LoginThrottle::with_cap(per_name, per_address, window, KEYS)
    }

    fn with_cap(per_name: u32, per_address: u32, window: Duration, cap: usize) -> LoginThrottle {
        LoginThrottle {
            counts: Mutex::new(Counts {
                names: WindowCounts::new(per_name, window, cap),
                addresses: WindowCounts::new(per_address, window, cap),
            }),
        }
    }

    /// `Err(wait)` when either key is over its limit. `name` is `None`
    /// when what was typed cannot be a login name: then only the address
    /// counts.
    pub fn check(&self, name: Option<&str>, address: &str, now: Instant) -> Result<(), Duration> {
        let mut counts = relock(&self.counts);
        let by_name = name.and_then(|name| counts.names.over(name, now));
        match by_name.or_else(|| counts.addresses.over(address, now)) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub fn failed(&self, name: Option<&str>, address: &str, now: Instant) {
        let mut counts = relock(&self.counts);
        if let Some(name) = name {
            counts.names.count(name, now);
        }
        counts.addresses.count(address, now);
    }

    /// A successful login clears its name's count (not the address's: one
    /// good account must not unlock guessing at others).
    pub fn succeeded(&self, name: &str) {
        relock(&self.counts).names.forget(name);
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
            assert!(t.check(Some("ana"), "1.2.3.4", now).is_ok());
            t.failed(Some("ana"), "1.2.3.4", now);
        }
        let wait = t.check(Some("ana"), "5.6.7.8", now).unwrap_err();
        assert!(wait <= Duration::from_secs(60));
        assert!(
            t.check(Some("bob"), "1.2.3.4", now).is_ok(),
            "other names go on"
        );
        assert!(t
            .check(Some("ana"), "1.2.3.4", now + Duration::from_secs(61))
            .is_ok());
    }

    #[test]
    fn a_success_clears_its_names_count() {
        let t = LoginThrottle::new(3, 10, Duration::from_secs(60));
        let now = Instant::now();
        t.failed(Some("ana"), "1.2.3.4", now);
        t.failed(Some("ana"), "1.2.3.4", now);
        t.succeeded("ana");
        t.failed(Some("ana"), "1.2.3.4", now);
        t.failed(Some("ana"), "1.2.3.4", now);
        assert!(t.check(Some("ana"), "5.6.7.8", now).is_ok());
    }

    #[test]
    fn an_address_is_limited_across_names() {
        let t = LoginThrottle::new(100, 2, Duration::from_secs(60));
        let now = Instant::now();
        t.failed(Some("a1"), "9.9.9.9", now);
        t.failed(None, "9.9.9.9", now);
        assert!(t.check(Some("a3"), "9.9.9.9", now).is_err());
    }

    #[test]
    fn a_flood_of_new_keys_stays_within_the_cap_and_the_attacked_keys_stay_refused() {
        // Arrange: "ana" and one address have reached their limits.
        let cap = 100;
        let t = LoginThrottle::with_cap(3, 3, Duration::from_secs(60), cap);
        let now = Instant::now();
        for _ in 0..3 {
            t.failed(Some("ana"), "9.9.9.9", now);
        }

        // Act: a thousand other names from a thousand other addresses.
        for i in 0..1000 {
            t.failed(
                Some(&format!("n{i}")),
                &format!("10.0.{}.{}", i / 256, i % 256),
                now,
            );
        }

        // Assert
        let counts = relock(&t.counts);
        assert!(counts.names.len() <= 2 * cap, "{}", counts.names.len());
        assert!(counts.addresses.len() <= 2 * cap);
        assert!(counts.names.counting.order.len() <= 2 * cap);
        drop(counts);
        assert!(t.check(Some("ana"), "1.1.1.1", now).is_err());
        assert!(t.check(Some("bob"), "9.9.9.9", now).is_err());
    }

    #[test]
    fn keys_forgotten_and_counted_again_do_not_grow_the_line() {
        let cap = 10;
        let mut counts = WindowCounts::new(5, Duration::from_secs(60), cap);
        let now = Instant::now();
        for _ in 0..1000 {
            counts.count("ana", now);
            counts.forget("ana");
        }
        assert!(counts.counting.order.len() <= 2 * cap);
        counts.count("ana", now);
        assert_eq!(counts.len(), 1);
    }

    #[test]
    fn expired_keys_leave_at_once_and_a_new_window_starts() {
        let mut counts = WindowCounts::new(2, Duration::from_secs(60), 100);
        let start = Instant::now();
        counts.count("a", start);
        counts.count("a", start + Duration::from_secs(30));
        assert_eq!(
            counts.over("a", start + Duration::from_secs(40)),
            Some(Duration::from_secs(20)),
            "the window began at the first count"
        );
        let later = start + Duration::from_secs(60);
        assert_eq!(counts.over("a", later), None);
        assert_eq!(counts.len(), 0);
        counts.count("a", later);
        assert_eq!(counts.over("a", later), None, "one count in a new window");
    }

    #[test]
    fn a_poisoned_lock_keeps_the_limit() {
        // Arrange: "ana" is at the limit; then a thread panics holding the
        // lock.
        let t = std::sync::Arc::new(LoginThrottle::new(1, 10, Duration::from_secs(60)));
        let now = Instant::now();
        t.failed(Some("ana"), "1.2.3.4", now);
        let holder = t.clone();
        let panicked = std::thread::spawn(move || {
            let _counts = holder.counts.lock();
            panic!("a panic while counting");
        })
        .join();
        assert!(panicked.is_err() && t.counts.is_poisoned());

        // Act
        t.failed(Some("bob"), "5.6.7.8", now);

        // Assert: still counted, still refused.
        assert!(t.check(Some("ana"), "1.2.3.4", now).is_err());
        assert!(t.check(Some("bob"), "5.6.7.8", now).is_err());
    }
}

//! The password-guessing throttle: repeated digest failures for one user name, or from one
//! source address, open a back-off window during which further attempts for that user or
//! from that address are **answered without checking**.
//!
//! How it answers: with the same `401`/`407` and fresh challenge a wrong password gets.
//! A guesser therefore cannot tell a throttled attempt from a wrong guess — it learns nothing
//! even when it happens to send the right password during a back-off — and an unknown user
//! name is throttled exactly like a known one, so the throttle does not help enumeration
//! either. The price: a user who mistyped five times must wait out the window, even with the
//! right password (the window is short at first: [`ThrottleConfig::base_backoff`]).
//!
//! The window doubles with every failure past the threshold, up to
//! [`ThrottleConfig::max_backoff`]; a user or address quiet for
//! [`ThrottleConfig::forget_after`] starts afresh, and a success clears the user's count
//! (not the address's: one valid account must not let a guesser reset its address). Users
//! and addresses are counted apart, with a higher threshold for addresses because many users
//! may sit behind one NAT: a guesser spraying many names from one address is stopped by the
//! address count, while other users, from other addresses, are unaffected.
//!
//! Memory is bounded: each table holds at most [`ThrottleConfig::max_tracked`] entries;
//! when full, forgotten entries go first, then the one whose last failure is oldest.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::config::ThrottleConfig;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

#[derive(Debug)]
struct Table<K> {
    threshold: u32,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(threshold: u32) -> Self {
        Table {
            threshold,
            entries: HashMap::new(),
        }
    }

    fn blocked(&self, key: &K, now: Instant) -> Option<Instant> {
        self.entries
            .get(key)
            .and_then(|e| e.blocked_until)
            .filter(|until| *until > now)
    }

    /// Counts a failure; returns the new back-off window's end when one starts.
    fn fail(&mut self, key: &K, now: Instant, config: &ThrottleConfig) -> Option<Instant> {
        if !self.entries.contains_key(key) && self.entries.len() >= config.max_tracked {
            self.make_room(now, config);
        }
        let entry = self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        });
        if now.saturating_duration_since(entry.last_failure) > config.forget_after {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures < self.threshold {
            return None;
        }
        let doublings = (entry.failures - self.threshold).min(20);
        let backoff = config
            .base_backoff
            .saturating_mul(1u32 << doublings)
            .min(config.max_backoff);
        let until = now + backoff;
        entry.blocked_until = Some(until);
        Some(until)
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }

    fn make_room(&mut self, now: Instant, config: &ThrottleConfig) {
        self.entries.retain(|_, e| {
            now.saturating_duration_since(e.last_failure) <= config.forget_after
                || e.blocked_until.is_some_and(|u| u > now)
        });
        if self.entries.len() < config.max_tracked {
            return;
        }
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_failure)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.entries.remove(&k);
        }
    }
}

/// Counters of the throttle, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleStats {
    /// Authentication failures counted.
    pub failures: u64,
    /// Attempts answered without checking because of a back-off.
    pub throttled: u64,
    /// Back-off windows opened.
    pub backoffs: u64,
}

/// Failure counts per user name and per source address (see the module documentation).
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    users: Mutex<Table<String>>,
    addresses: Mutex<Table<IpAddr>>,
    failures: AtomicU64,
    throttled: AtomicU64,
    backoffs: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update leaves the table consistent; a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Throttle {
    /// A throttle with these settings.
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            users: Mutex::new(Table::new(config.user_failures)),
            addresses: Mutex::new(Table::new(config.address_failures)),
            config,
            failures: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            backoffs: AtomicU64::new(0),
        }
    }

    /// True when an attempt for `user` from `address` must be answered without checking;
    /// such an attempt is counted as throttled.
    pub fn is_throttled(&self, user: &str, address: IpAddr, now: Instant) -> bool {
        let user_until = lock(&self.users).blocked(&user.to_owned(), now);
        let address_until = lock(&self.addresses).blocked(&address, now);
        let blocked = user_until.or(address_until);
        if let Some(until) = blocked {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            debug!(
                user,
                %address,
                remaining_ms = until.saturating_duration_since(now).as_millis() as u64,
                "authentication attempt throttled: answered without checking"
            );
        }
        blocked.is_some()
    }

    /// Counts a failed authentication of `user` from `address`.
    pub fn failure(&self, user: &str, address: IpAddr, now: Instant) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let user_until = lock(&self.users).fail(&user.to_owned(), now, &self.config);
        let address_until = lock(&self.addresses).fail(&address, now, &self.config);
        for (what, until) in [("user", user_until), ("address", address_until)] {
            if let Some(until) = until {
                self.backoffs.fetch_add(1, Ordering::Relaxed);
                warn!(
                    user,
                    %address,
                    by = what,
                    backoff_ms = until.saturating_duration_since(now).as_millis() as u64,
                    "repeated authentication failures: backing off"
                );
            }
        }
    }

    /// Clears the failure count of `user` after a successful authentication.
    pub fn success(&self, user: &str) {
        lock(&self.users).clear(&user.to_owned());
    }

    /// The counters.
    pub fn stats(&self) -> ThrottleStats {
        ThrottleStats {
            failures: self.failures.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            backoffs: self.backoffs.load(Ordering::Relaxed),
        }
    }

    /// Entries tracked (users, addresses), for tests of the memory bound.
    pub fn tracked(&self) -> (usize, usize) {
        (
            lock(&self.users).entries.len(),
            lock(&self.addresses).entries.len(),
        )
    }
}

/// The back-off after `failures` failures with `threshold`, for documentation and tests.
pub fn backoff_after(config: &ThrottleConfig, threshold: u32, failures: u32) -> Duration {
    if failures < threshold {
        return Duration::ZERO;
    }
    config
        .base_backoff
        .saturating_mul(1u32 << (failures - threshold).min(20))
        .min(config.max_backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            user_failures: 3,
            address_failures: 5,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            forget_after: Duration::from_secs(60),
            max_tracked: 4,
        }
    }

    #[test]
    fn backoff_grows_and_other_users_are_unaffected() {
        let t = Throttle::new(config());
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other_ip: IpAddr = "192.0.2.2".parse().expect("ip");
        let now = Instant::now();
        for _ in 0..2 {
            t.failure("alice", ip, now);
        }
        assert!(!t.is_throttled("alice", ip, now));
        t.failure("alice", ip, now);
        assert!(t.is_throttled("alice", ip, now));
        assert!(t.is_throttled("alice", other_ip, now), "per user");
        assert!(!t.is_throttled("bob", other_ip, now), "others unaffected");
        assert!(!t.is_throttled("alice", ip, now + Duration::from_millis(1001)));
        t.failure("alice", ip, now + Duration::from_secs(2));
        assert!(
            t.is_throttled("alice", ip, now + Duration::from_secs(3)),
            "doubled: 2 s"
        );
        assert!(!t.is_throttled("alice", ip, now + Duration::from_secs(5)));
        assert_eq!(
            backoff_after(&config(), 3, 10),
            Duration::from_secs(8),
            "capped"
        );
        t.success("alice");
        assert!(!t.is_throttled("alice", other_ip, now + Duration::from_secs(3)));
        let stats = t.stats();
        assert_eq!(stats.failures, 4);
        assert_eq!(stats.backoffs, 2);
        assert!(stats.throttled >= 3);
    }

    #[test]
    fn an_address_spraying_names_is_stopped_and_memory_stays_bounded() {
        let t = Throttle::new(config());
        let ip: IpAddr = "198.51.100.9".parse().expect("ip");
        let now = Instant::now();
        for i in 0..5 {
            t.failure(&format!("user{i}"), ip, now);
        }
        assert!(t.is_throttled("anyone", ip, now));
        assert!(!t.is_throttled("anyone", "198.51.100.10".parse().expect("ip"), now));
        assert!(t.tracked().0 <= 4);
    }
}

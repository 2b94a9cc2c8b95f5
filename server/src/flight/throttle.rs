//! Failed logins slow their source down: back-off per user name and per
//! client address.
//!
//! The policy (documented in docs/security.md):
//!
//! - A user name may fail [`USER_FREE`] times in a row, an address
//!   [`ADDRESS_FREE`] times, without delay. Each failure after that locks
//!   the name (or the address) for 1 s, then 2 s, 4 s, … at most
//!   [`MAX_LOCK`].
//! - While locked, a handshake for that name or from that address is
//!   refused at once, without checking the password, and does not count:
//!   an attacker gets one guess per lock period, and cannot keep a user
//!   locked out for longer than that.
//! - A successful login clears its user's and its address's record.
//!   Unknown user names are tracked exactly as known ones, so the answers
//!   tell nothing about which names exist.
//! - Records are forgotten [`FORGET_AFTER`] after their last failure; at
//!   most [`MAX_RECORDS`] are kept (the stalest go first).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row a user name may have before it is locked.
pub(crate) const USER_FREE: u32 = 5;
/// Failures in a row an address may have before it is locked.
pub(crate) const ADDRESS_FREE: u32 = 20;
/// The longest lock.
pub(crate) const MAX_LOCK: Duration = Duration::from_secs(60);
/// A record with no failure for this long is dropped.
pub(crate) const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Records kept at most.
pub(crate) const MAX_RECORDS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    locked_until: Instant,
}

/// The failure records; a std mutex held only to read or update a record.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    records: Mutex<HashMap<Key, Record>>,
}

impl Throttle {
    /// How long until `user` from `address` may try again (`None`: now).
    pub(crate) fn locked_for(&self, user: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let records = self.records.lock().ok()?;
        let user = records.get(&Key::User(user.to_string()));
        let address = address.and_then(|a| records.get(&Key::Address(a)));
        [user, address]
            .into_iter()
            .flatten()
            .filter(|r| r.locked_until > now)
            .map(|r| r.locked_until - now)
            .max()
    }

    /// Records a failed password check.
    pub(crate) fn failed(&self, user: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let Ok(mut records) = self.records.lock() else {
            return;
        };
        if records.len() >= MAX_RECORDS {
            records.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
        }
        let keys = std::iter::once((Key::User(user.to_string()), USER_FREE))
            .chain(address.map(|a| (Key::Address(a), ADDRESS_FREE)));
        for (key, free) in keys {
            if !records.contains_key(&key) && records.len() >= MAX_RECORDS {
                let stalest = records
                    .iter()
                    .min_by_key(|(_, r)| r.last)
                    .map(|(k, _)| k.clone());
                if let Some(k) = stalest {
                    records.remove(&k);
                }
            }
            let record = records.entry(key).or_insert(Record {
                failures: 0,
                last: now,
                locked_until: now,
            });
            if now.duration_since(record.last) >= FORGET_AFTER {
                record.failures = 0;
            }
            record.failures = record.failures.saturating_add(1);
            record.last = now;
            if record.failures >= free {
                record.locked_until = now + lock(record.failures - free);
            }
        }
    }

    /// Clears the records of a successful login.
    pub(crate) fn succeeded(&self, user: &str, address: Option<IpAddr>) {
        if let Ok(mut records) = self.records.lock() {
            records.remove(&Key::User(user.to_string()));
            if let Some(a) = address {
                records.remove(&Key::Address(a));
            }
        }
    }
}

/// The lock after `n` failures beyond the free ones: 1 s · 2ⁿ, capped.
fn lock(n: u32) -> Duration {
    Duration::from_secs(1u64.checked_shl(n).unwrap_or(u64::MAX)).min(MAX_LOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_double_and_are_capped() {
        assert_eq!(lock(0), Duration::from_secs(1));
        assert_eq!(lock(3), Duration::from_secs(8));
        assert_eq!(lock(6), MAX_LOCK);
        assert_eq!(lock(200), MAX_LOCK);
    }

    #[test]
    fn a_user_is_locked_after_its_free_failures_and_cleared_by_success() {
        let t = Throttle::default();
        let a: Option<IpAddr> = "127.0.0.1".parse().ok();
        for _ in 0..USER_FREE - 1 {
            t.failed("ann", a);
            assert_eq!(t.locked_for("ann", a), None);
        }
        t.failed("ann", a);
        let locked = t.locked_for("ann", a);
        assert!(
            locked.is_some_and(|d| d <= Duration::from_secs(1)),
            "{locked:?}"
        );
        // Another name from the same address is not locked yet.
        assert_eq!(t.locked_for("bob", a), None);
        t.succeeded("ann", a);
        assert_eq!(t.locked_for("ann", a), None);
    }

    #[test]
    fn an_address_is_locked_after_many_names_fail() {
        let t = Throttle::default();
        let a: Option<IpAddr> = "127.0.0.2".parse().ok();
        for i in 0..ADDRESS_FREE {
            t.failed(&format!("user{i}"), a);
        }
        assert!(t.locked_for("someone-else", a).is_some());
        assert_eq!(t.locked_for("someone-else", "127.0.0.3".parse().ok()), None);
    }
}

//! Login throttling, as a pure structure with the clock passed in.
//!
//! Sign-in attempts are counted as failures per username and per source address within
//! a window *before* the password is checked, so concurrent guesses cannot outrun the
//! count; a sign-in that succeeds takes its count back. Reaching the limit locks that
//! key for the lockout period; while locked, attempts are refused before any password
//! is checked (HTTP 429 with Retry-After). A source address gets four times the
//! per-user allowance, so one office behind NAT is not locked out by one person's
//! typos, while password spraying across usernames still is. Usernames are counted
//! case-insensitively (a directory treats `ALICE` and `alice` as one person). An
//! administrator can lift a user's lock. Memory is bounded by pruning expired entries.

use std::collections::HashMap;
use std::net::IpAddr;

const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start_ms: i64,
    locked_until_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_failures: u32,
    pub window_ms: i64,
    pub lockout_ms: i64,
}

pub struct LoginThrottle {
    limits: Limits,
    entries: HashMap<Key, Entry>,
}

impl LoginThrottle {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
        }
    }

    fn keys(user: &str, addr: Option<IpAddr>) -> impl Iterator<Item = Key> {
        std::iter::once(Key::User(user.to_lowercase())).chain(addr.map(Key::Addr))
    }

    /// `Err(seconds)` while the username or the address is locked.
    pub fn check(&self, user: &str, addr: Option<IpAddr>, now_ms: i64) -> Result<(), u64> {
        let wait = Self::keys(user, addr)
            .filter_map(|k| self.entries.get(&k))
            .map(|e| e.locked_until_ms - now_ms)
            .max()
            .unwrap_or(0);
        if wait > 0 {
            Err((wait as u64).div_ceil(1000))
        } else {
            Ok(())
        }
    }

    pub fn failure(&mut self, user: &str, addr: Option<IpAddr>, now_ms: i64) {
        if self.entries.len() >= MAX_ENTRIES {
            let l = self.limits;
            self.entries.retain(|_, e| {
                e.locked_until_ms > now_ms || now_ms - e.window_start_ms <= l.window_ms
            });
        }
        for key in Self::keys(user, addr) {
            let max = match key {
                Key::User(_) => self.limits.max_failures,
                Key::Addr(_) => self.limits.max_failures.saturating_mul(4),
            };
            let e = self.entries.entry(key).or_insert(Entry {
                failures: 0,
                window_start_ms: now_ms,
                locked_until_ms: 0,
            });
            if now_ms - e.window_start_ms > self.limits.window_ms {
                e.failures = 0;
                e.window_start_ms = now_ms;
            }
            e.failures += 1;
            if e.failures >= max {
                e.locked_until_ms = now_ms + self.limits.lockout_ms;
                e.failures = 0;
                e.window_start_ms = now_ms;
            }
        }
    }

    /// A sign-in that was counted as a failure succeeded: the user's count is
    /// cleared and the address's count given back.
    pub fn success(&mut self, user: &str, addr: Option<IpAddr>) {
        self.entries.remove(&Key::User(user.to_lowercase()));
        if let Some(e) = addr.and_then(|a| self.entries.get_mut(&Key::Addr(a))) {
            e.failures = e.failures.saturating_sub(1);
        }
    }

    /// An attempt that was counted but never checked (the appliance was busy).
    pub fn not_attempted(&mut self, user: &str, addr: Option<IpAddr>) {
        for key in Self::keys(user, addr) {
            if let Some(e) = self.entries.get_mut(&key) {
                e.failures = e.failures.saturating_sub(1);
            }
        }
    }

    /// Lifts a user's lock (an administrator's `roomscribe user unlock`).
    pub fn unlock(&mut self, user: &str) -> bool {
        self.entries
            .remove(&Key::User(user.to_lowercase()))
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_failures: 3,
        window_ms: 60_000,
        lockout_ms: 30_000,
    };

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn locks_after_the_limit_and_unlocks_after_the_lockout() {
        let mut t = LoginThrottle::new(LIMITS);
        for i in 0..2 {
            t.failure("ann", ip(1), i);
            assert_eq!(t.check("ann", ip(1), i), Ok(()));
        }
        t.failure("ann", ip(1), 2);
        assert_eq!(t.check("ann", ip(1), 2), Err(30), "third failure locks");
        assert_eq!(t.check("ann", ip(2), 10_002), Err(20), "from any address");
        assert_eq!(
            t.check("bob", ip(1), 10_002),
            Ok(()),
            "other users on that address are not locked"
        );
        assert_eq!(t.check("ann", ip(1), 30_002), Ok(()), "lock expires");
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up_and_success_clears() {
        let mut t = LoginThrottle::new(LIMITS);
        t.failure("ann", None, 0);
        t.failure("ann", None, 1);
        t.failure("ann", None, 70_000);
        assert_eq!(t.check("ann", None, 70_000), Ok(()), "the window restarted");
        t.failure("ann", None, 70_001);
        t.success("ann", None);
        t.failure("ann", None, 70_002);
        assert_eq!(
            t.check("ann", None, 70_002),
            Ok(()),
            "success cleared the count"
        );
    }

    #[test]
    fn names_count_case_insensitively_and_unlock_lifts_the_lock() {
        let mut t = LoginThrottle::new(LIMITS);
        t.failure("ALICE", ip(1), 0);
        t.failure("Alice", ip(2), 1);
        t.failure("alice", ip(3), 2);
        assert_eq!(
            t.check("aLiCe", ip(4), 3),
            Err(30),
            "one person, one budget"
        );
        assert!(t.unlock("ALICE"));
        assert_eq!(t.check("alice", ip(4), 3), Ok(()));
    }

    #[test]
    fn spraying_one_address_across_users_locks_the_address() {
        let mut t = LoginThrottle::new(LIMITS);
        for i in 0..12 {
            t.failure(&format!("user{i}"), ip(9), i);
        }
        assert_eq!(t.check("someone-new", ip(9), 20), Err(30));
        assert_eq!(t.check("someone-new", ip(8), 20), Ok(()));
    }
}

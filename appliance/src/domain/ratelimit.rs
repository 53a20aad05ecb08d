//! API rate limits: one token bucket per key (an API token, a user's console
//! sessions, a source address). A bucket holds up to the per-minute allowance and
//! refills evenly, so bursts are allowed and sustained excess is refused with the wait
//! until the next request would fit. Pure: the clock is passed in.

use std::collections::HashMap;

/// Buckets kept at most; full (idle) ones are dropped first when there are more.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: HashMap<String, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: HashMap::new(),
        }
    }

    fn capacity(&self) -> f64 {
        f64::from(self.per_minute)
    }

    fn refill(&self, b: &mut Bucket, now_ms: i64) {
        let per_ms = self.capacity() / 60_000.0;
        let elapsed = (now_ms - b.at_ms).max(0) as f64;
        b.tokens = (b.tokens + elapsed * per_ms).min(self.capacity());
        b.at_ms = now_ms;
    }

    /// Takes one request for `key` at `now_ms`, or says how many seconds until one
    /// would be allowed.
    pub fn take(&mut self, key: &str, now_ms: i64) -> Result<(), u64> {
        if self.buckets.len() >= MAX_KEYS && !self.buckets.contains_key(key) {
            self.sweep(now_ms);
        }
        let fresh = Bucket {
            tokens: self.capacity(),
            at_ms: now_ms,
        };
        let mut b = *self.buckets.get(key).unwrap_or(&fresh);
        self.refill(&mut b, now_ms);
        let result = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let per_sec = self.capacity() / 60.0;
            Err(((1.0 - b.tokens) / per_sec).ceil().max(1.0) as u64)
        };
        self.buckets.insert(key.to_owned(), b);
        result
    }

    /// Drops buckets that have refilled completely (they hold no information).
    fn sweep(&mut self, now_ms: i64) {
        let cap = self.capacity();
        let per_ms = cap / 60_000.0;
        self.buckets
            .retain(|_, b| b.tokens + (now_ms - b.at_ms).max(0) as f64 * per_ms < cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_up_to_the_allowance_then_waits() {
        let mut r = RateLimiter::new(60);
        for _ in 0..60 {
            assert!(r.take("a", 0).is_ok());
        }
        assert_eq!(r.take("a", 0), Err(1), "one per second refills");
        assert!(r.take("b", 0).is_ok(), "keys are separate");
        assert!(r.take("a", 1_000).is_ok(), "a second later one fits");
        assert!(r.take("a", 1_000).is_err());
        // Sustained: exactly the allowance per minute gets through.
        let mut ok = 0;
        for i in 0..600 {
            if r.take("a", 2_000 + i * 100).is_ok() {
                ok += 1;
            }
        }
        assert!((59..=61).contains(&ok), "{ok} in a minute");
        let mut slow = RateLimiter::new(6);
        for _ in 0..6 {
            slow.take("k", 0).expect("burst");
        }
        assert_eq!(slow.take("k", 0), Err(10), "ten seconds per request");
    }

    #[test]
    fn idle_buckets_are_swept() {
        let mut r = RateLimiter::new(10);
        for i in 0..1000 {
            r.take(&format!("k{i}"), 0).expect("fresh");
        }
        r.sweep(60_000);
        assert!(r.buckets.is_empty());
    }
}

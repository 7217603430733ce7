//! Rate limits (SECURITY 38): token buckets kept in memory by each replica,
//! keyed by a client address, a presented key's public prefix, or a project.
//! A replica's buckets are a cache in the sense of the architecture: losing
//! them (a restart) only forgets recent history.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::config::Limits;

/// Buckets kept before full (idle) ones are forgotten.
const PRUNE_ABOVE: usize = 10_000;

struct Bucket {
    tokens: f64,
    updated: f64,
}

/// One limit: `per_minute` events per key, refilled evenly, bursting to `per_minute`.
pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// How many buckets there are, readable without the lock: with none, every
    /// key may act (the usual case of the failed-authentication limits).
    counted: AtomicUsize,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
            counted: AtomicUsize::new(0),
        }
    }

    /// Whether nothing has been counted against any key lately.
    pub fn is_empty(&self) -> bool {
        self.counted.load(Ordering::Relaxed) == 0
    }

    fn with_bucket<T>(&self, key: &str, now: f64, f: impl FnOnce(&mut Bucket, f64) -> T) -> T {
        let rate = self.per_minute / 60.0;
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() > PRUNE_ABOVE {
            let capacity = self.per_minute;
            buckets.retain(|_, b| b.tokens + (now - b.updated) * rate < capacity);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.per_minute,
            updated: now,
        });
        bucket.tokens =
            (bucket.tokens + (now - bucket.updated).max(0.0) * rate).min(self.per_minute);
        bucket.updated = now;
        let answer = f(bucket, rate);
        self.counted.store(buckets.len(), Ordering::Relaxed);
        answer
    }

    /// Whether `key` may act now; if not, in how many whole seconds it may.
    /// A key with no bucket (nothing counted against it lately) may: asking
    /// creates none.
    pub fn allowed(&self, key: &str, now: f64) -> Result<(), u64> {
        if self.is_empty() {
            return Ok(());
        }
        let counted = match self.buckets.lock() {
            Ok(b) => b.contains_key(key),
            Err(poisoned) => poisoned.into_inner().contains_key(key),
        };
        if !counted {
            return Ok(());
        }
        self.with_bucket(key, now, |bucket, rate| {
            if bucket.tokens >= 1.0 {
                Ok(())
            } else {
                Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
            }
        })
    }

    /// Counts one event for `key`: `Err` (seconds to wait) when over the limit.
    pub fn take(&self, key: &str, now: f64) -> Result<(), u64> {
        self.with_bucket(key, now, |bucket, rate| {
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                Ok(())
            } else {
                Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
            }
        })
    }
}

/// Every limit the server applies.
pub struct Limiters {
    /// Failed authentications per client address.
    pub auth_by_address: RateLimiter,
    /// Failed authentications per presented key (its public prefix).
    pub auth_by_key: RateLimiter,
    /// Connect sessions created per project.
    pub sessions: RateLimiter,
    /// Connect attempts started per project.
    pub attempts: RateLimiter,
    /// Credentials checked with a provider (`test_request`s) per connect
    /// attempt: a credential form is not a way to try keys at a provider.
    pub credential_checks: RateLimiter,
}

/// How many credentials one credential form may check with the provider per minute.
pub const CREDENTIAL_CHECKS_PER_MINUTE: u32 = 10;

impl Limiters {
    pub fn new(limits: &Limits) -> Limiters {
        Limiters {
            auth_by_address: RateLimiter::new(limits.auth_failures_per_minute),
            auth_by_key: RateLimiter::new(limits.auth_failures_per_minute),
            sessions: RateLimiter::new(limits.sessions_per_minute),
            attempts: RateLimiter::new(limits.attempts_per_minute),
            credential_checks: RateLimiter::new(CREDENTIAL_CHECKS_PER_MINUTE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refills_evenly() {
        let limit = RateLimiter::new(3);
        for _ in 0..3 {
            assert_eq!(limit.take("a", 100.0), Ok(()));
        }
        assert_eq!(limit.take("a", 100.0), Err(20));
        assert_eq!(limit.take("b", 100.0), Ok(()), "keys are apart");
        assert_eq!(limit.allowed("a", 110.0), Err(10));
        assert_eq!(limit.take("a", 120.0), Ok(()));
        assert_eq!(limit.take("a", 120.0), Err(20));
    }

    #[test]
    fn an_empty_limiter_says_so_until_something_is_counted() {
        let limit = RateLimiter::new(1);
        assert!(limit.is_empty());
        assert_eq!(limit.allowed("a", 100.0), Ok(()));
        assert!(limit.is_empty(), "asking creates no bucket");
        assert_eq!(limit.take("a", 100.0), Ok(()));
        assert!(!limit.is_empty());
        assert_eq!(limit.allowed("a", 100.0), Err(60));
        assert_eq!(limit.allowed("b", 100.0), Ok(()));
    }
}

//! Rate limit on failed authentication, per client address (a leaky bucket of failures).
//!
//! Each address may fail `limit` times at once; its failures drain evenly over `window`, so
//! it regains one attempt every `window / limit`. An address whose bucket is full is answered
//! 429 before any token lookup or PBKDF2, which also keeps a flood of wrong tokens from
//! turning into CPU work. Requests refused with 429 are not counted, so a client that waits as
//! told is let in again. Valid clients are never slowed: nothing here sleeps, and a token the
//! server already verified is accepted even from a limited address (`Authenticator`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at once; beyond that, new addresses share one bucket, so an attacker
/// with many addresses cannot grow memory or escape the limit by spreading out.
const MAX_TRACKED: usize = 10_000;

/// The settings (`[auth]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures an address may make at once; 0 turns the limit off.
    pub failed_attempts: u32,
    /// Time over which `failed_attempts` failures drain away.
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            failed_attempts: 10,
            window: Duration::from_secs(60),
        }
    }
}

struct Bucket {
    /// Failures not yet drained.
    level: f64,
    at: Instant,
}

pub struct FailureLimiter {
    limits: Limits,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The bucket an address counts against: IPv6 clients usually own a whole /64, so it is one
/// client; an IPv4-mapped IPv6 address is its IPv4 address; no address (never over TCP) is one
/// shared bucket.
fn bucket_key(addr: Option<IpAddr>) -> IpAddr {
    match addr {
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Stands for every address once `MAX_TRACKED` are tracked.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

impl FailureLimiter {
    pub fn new(limits: Limits) -> Self {
        FailureLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Failures drained per second.
    fn rate(&self) -> f64 {
        f64::from(self.limits.failed_attempts) / self.limits.window.as_secs_f64().max(0.001)
    }

    fn drained(&self, b: &Bucket, now: Instant) -> f64 {
        (b.level - now.saturating_duration_since(b.at).as_secs_f64() * self.rate()).max(0.0)
    }

    /// `Some(wait)` when `addr` may not try again yet: how long until it may.
    pub fn retry_after(&self, addr: Option<IpAddr>, now: Instant) -> Option<Duration> {
        if self.limits.failed_attempts == 0 {
            return None;
        }
        let key = bucket_key(addr);
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.get(&key).or_else(|| {
            // An address that is not tracked because the table is full counts as the overflow.
            (buckets.len() >= MAX_TRACKED)
                .then(|| buckets.get(&OVERFLOW))
                .flatten()
        })?;
        let level = self.drained(bucket, now);
        let room = f64::from(self.limits.failed_attempts) - 1.0;
        (level > room).then(|| Duration::from_secs_f64((level - room) / self.rate()))
    }

    /// Counts one failed attempt from `addr`.
    pub fn record_failure(&self, addr: Option<IpAddr>, now: Instant) {
        if self.limits.failed_attempts == 0 {
            return;
        }
        let mut key = bucket_key(addr);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, b| self.drained(b, now) > 0.0);
            if buckets.len() >= MAX_TRACKED {
                key = OVERFLOW;
            }
        }
        let level = buckets
            .get(&key)
            .map(|b| self.drained(b, now))
            .unwrap_or(0.0);
        // Capped, so a burst of concurrent failures cannot push the wait past one window.
        let level = (level + 1.0).min(f64::from(self.limits.failed_attempts));
        buckets.insert(key, Bucket { level, at: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(n: u32, secs: u64) -> FailureLimiter {
        FailureLimiter::new(Limits {
            failed_attempts: n,
            window: Duration::from_secs(secs),
        })
    }

    #[test]
    fn limits_after_the_burst_and_drains_evenly() {
        let l = limiter(3, 30);
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.retry_after(a, t0), None);
            l.record_failure(a, t0);
        }
        let wait = l.retry_after(a, t0).expect("limited after 3 failures");
        assert!((9.9..=10.1).contains(&wait.as_secs_f64()), "{wait:?}");
        // Another address is not affected.
        assert_eq!(l.retry_after(b, t0), None);
        // One attempt comes back every window / limit.
        assert!(l.retry_after(a, t0 + Duration::from_secs(9)).is_some());
        assert_eq!(l.retry_after(a, t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let l = limiter(1, 60);
        let now = Instant::now();
        l.record_failure(Some("2001:db8:1:2::1".parse().unwrap()), now);
        assert!(l
            .retry_after(Some("2001:db8:1:2:ffff::9".parse().unwrap()), now)
            .is_some());
        assert!(l
            .retry_after(Some("2001:db8:1:3::1".parse().unwrap()), now)
            .is_none());
        l.record_failure(Some("::ffff:192.0.2.7".parse().unwrap()), now);
        assert!(l
            .retry_after(Some("192.0.2.7".parse().unwrap()), now)
            .is_some());
    }

    #[test]
    fn zero_turns_it_off_and_the_table_stays_bounded() {
        let off = limiter(0, 60);
        let a = Some("192.0.2.1".parse().unwrap());
        let now = Instant::now();
        for _ in 0..100 {
            off.record_failure(a, now);
        }
        assert_eq!(off.retry_after(a, now), None);

        let l = limiter(2, 60);
        for i in 0..(MAX_TRACKED as u32 + 50) {
            l.record_failure(Some(IpAddr::V4(i.into())), now);
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_TRACKED + 1);
        // Addresses beyond the table share the overflow bucket, which is now limited.
        let fresh = Some(IpAddr::V4(u32::MAX.into()));
        assert!(l.retry_after(fresh, now).is_some());
    }
}

//! When to retry and how long to wait: exponential backoff with full jitter, and `Retry-After`.
//!
//! Shared by the API client and the token manager so that both back off the same way. Pure functions
//! apart from the random jitter, so the arithmetic is unit-tested here.

use std::time::{Duration, SystemTime};

/// How long to wait between attempts.
///
/// The n-th retry waits a uniformly random time in `[0, min(cap, base * 2^(n-1))]` ("full jitter"):
/// spreading retries over the whole interval is what keeps many clients that failed together from
/// retrying together. A `Retry-After` from the server replaces the jittered delay, capped at
/// `retry_after_cap` so that a confused server cannot park a job for hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Upper bound of the first retry's delay.
    pub base: Duration,
    /// Upper bound of any jittered delay.
    pub cap: Duration,
    /// Longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl Default for Backoff {
    /// 250 ms doubling to a 30 s cap; `Retry-After` honoured up to 120 s.
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    /// A fast policy for tests: 1 ms doubling to 20 ms. `Retry-After` is still honoured (up to 120 s).
    pub fn fast() -> Backoff {
        Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(20),
            retry_after_cap: Duration::from_secs(120),
        }
    }

    /// The upper bound of the jittered delay before retry number `retry` (1-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << exponent)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay before retry number `retry` (1-based): `Retry-After` when the server sent one
    /// (capped), otherwise full jitter under [`Backoff::ceiling`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.retry_after_cap),
            None => {
                let ceiling = u64::try_from(self.ceiling(retry).as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(fastrand::u64(0..=ceiling))
            }
        }
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date, relative to `now`. A date in the
/// past means "now" (zero); anything unparseable is ignored (`None`), falling back to backoff.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether an HTTP status is worth retrying: rate limiting, a request timeout, or a server error
/// other than 501 (which will not start working by asking again).
pub fn is_retriable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status) && status != 501
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(1), Duration::from_millis(250));
        assert_eq!(b.ceiling(2), Duration::from_millis(500));
        assert_eq!(b.ceiling(3), Duration::from_secs(1));
        assert_eq!(b.ceiling(8), Duration::from_secs(30)); // 32 s, capped
        assert_eq!(b.ceiling(200), Duration::from_secs(30)); // no overflow
        assert_eq!(b.ceiling(0), Duration::from_millis(250));
    }

    #[test]
    fn jittered_delay_stays_under_the_ceiling() {
        let b = Backoff::default();
        for retry in 1..12 {
            for _ in 0..50 {
                assert!(b.delay(retry, None) <= b.ceiling(retry));
            }
        }
    }

    #[test]
    fn retry_after_replaces_jitter_and_is_capped() {
        let b = Backoff::default();
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn retry_after_as_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retriable_statuses() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_retriable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 422, 501] {
            assert!(!is_retriable_status(s), "{s}");
        }
    }
}

//! The one retry loop of the crate, and the backoff between its attempts.
//!
//! Every operation that retries runs through [`run`]: API requests and token requests (in this
//! folder), and the database reconnects. It knows nothing of HTTP or SQL: it is generic over the
//! operation's error, and the caller's `classify` says what each error calls for.
//!
//! ```text
//! pub async fn run<T, E, Fut: Future<Output = Result<T, E>>>(
//!     policy: &Policy,                          // Backoff + max_retries (None: for ever)
//!     attempt: impl FnMut(u32) -> Fut,          // one attempt; gets its number, 1-based
//!     classify: impl FnMut(&E) -> Verdict,      // Retry | RetryAfter(d) | Fail
//!     on_retry: impl FnMut(&Retrying<'_, E>),   // error, attempt, delay: to log, count, report
//! ) -> Result<T, GaveUp<E>>                     // GaveUp { error, attempts }
//! ```
//!
//! `attempt` is a closure that returns a future rather than an async closure: the future of an
//! async closure borrows the closure, and rustc (1.95) cannot then prove the caller's future
//! `Send` for every such borrow, which a spawned task needs. State shared between attempts (or
//! with `on_retry`) lives outside the closure, behind a `&` (atomics, as the API client does).
//!
//! For example, a connection tried at most four times, 10, 20 and 40 ms apart, where a refusal
//! is worth retrying and a wrong password is not:
//!
//! ```
//! use std::time::Duration;
//! use rokt_export::api::retry::{self, Backoff, Jitter, Policy, Verdict};
//!
//! #[derive(Debug)]
//! enum ConnectError { Refused, WrongPassword }
//!
//! async fn connect(attempt: u32) -> Result<&'static str, ConnectError> {
//!     if attempt < 3 { Err(ConnectError::Refused) } else { Ok("connected") }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let policy = Policy {
//!     backoff: Backoff { base: Duration::from_millis(10), jitter: Jitter::Off, ..Backoff::default() },
//!     max_retries: Some(3),
//! };
//! let connected = retry::run(
//!     &policy,
//!     connect,
//!     |e| match e {
//!         ConnectError::Refused => Verdict::Retry,
//!         ConnectError::WrongPassword => Verdict::Fail,
//!     },
//!     |r| eprintln!("attempt {} failed: {:?}; retrying in {:?}", r.attempt, r.error, r.delay),
//! )
//! .await;
//! assert_eq!(connected.unwrap(), "connected");
//! # });
//! ```
//!
//! The loop holds nothing of an attempt while it sleeps: whatever the attempt acquired (an HTTP
//! concurrency permit, a connection) is released when its future ends, before the backoff.

use std::future::Future;
use std::time::Duration;

/// How often to try and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub backoff: Backoff,
    /// Retries after the first attempt; `None` retries for as long as it takes.
    pub max_retries: Option<u32>,
}

/// How long to wait between attempts.
///
/// The n-th retry waits at most `min(cap, base * 2^(n-1))`, spread below that by `jitter`. A delay
/// the server asked for ([`Verdict::RetryAfter`]) replaces the computed one, capped at
/// `retry_after_cap` so that a confused server cannot park a job for hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Upper bound of the first retry's delay.
    pub base: Duration,
    /// Upper bound of any computed delay.
    pub cap: Duration,
    /// Longest server-given delay honoured.
    pub retry_after_cap: Duration,
    pub jitter: Jitter,
}

/// How a computed delay is spread below its upper bound (the "ceiling").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Uniformly in `[0, ceiling]`: spreading retries over the whole interval is what keeps many
    /// clients that failed together from retrying together.
    Full,
    /// Uniformly in `[ceiling / 2, ceiling)`: never much sooner than the ceiling, still not in
    /// step with others that failed at the same moment.
    Equal,
    /// Exactly the ceiling.
    Off,
}

/// What the caller's `classify` makes of an attempt's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after the backoff's delay.
    Retry,
    /// Try again after this delay (the server's `Retry-After`), capped by
    /// [`Backoff::retry_after_cap`].
    RetryAfter(Duration),
    /// Retrying cannot help: give up with this error at once.
    Fail,
}

/// What `on_retry` hears before each wait.
#[derive(Debug)]
pub struct Retrying<'a, E> {
    /// Why the attempt failed.
    pub error: &'a E,
    /// The attempt that failed (1-based); the coming retry has the same number.
    pub attempt: u32,
    /// How long the loop waits before the next attempt.
    pub delay: Duration,
}

/// Why [`run`] gave up: the last attempt's error, which `classify` called final or which came
/// when no retry was left.
#[derive(Debug)]
pub struct GaveUp<E> {
    pub error: E,
    /// Attempts made, the last one included.
    pub attempts: u32,
}

/// Runs `attempt` until it succeeds, `classify` calls its error final, or `policy.max_retries`
/// retries are spent; between attempts it calls `on_retry`, then sleeps. See the module docs.
pub async fn run<T, E, Fut: Future<Output = Result<T, E>>>(
    policy: &Policy,
    mut attempt: impl FnMut(u32) -> Fut,
    mut classify: impl FnMut(&E) -> Verdict,
    mut on_retry: impl FnMut(&Retrying<'_, E>),
) -> Result<T, GaveUp<E>> {
    let mut number: u32 = 0;
    loop {
        number = number.saturating_add(1);
        let delay = {
            let error = match attempt(number).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let asked = match classify(&error) {
                Verdict::Retry => None,
                Verdict::RetryAfter(wait) => Some(wait),
                Verdict::Fail => {
                    return Err(GaveUp {
                        error,
                        attempts: number,
                    });
                }
            };
            if policy.max_retries.is_some_and(|max| number > max) {
                return Err(GaveUp {
                    error,
                    attempts: number,
                });
            }
            let delay = policy.backoff.delay(number, asked);
            on_retry(&Retrying {
                error: &error,
                attempt: number,
                delay,
            });
            delay
        };
        tokio::time::sleep(delay).await;
    }
}

impl Default for Backoff {
    /// 250 ms doubling to a 30 s cap, full jitter; `Retry-After` honoured up to 120 s.
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(120),
            jitter: Jitter::Full,
        }
    }
}

impl Backoff {
    /// A fast policy for tests: 1 ms doubling to 20 ms. `Retry-After` is still honoured (up to 120 s).
    pub fn fast() -> Backoff {
        Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(20),
            ..Backoff::default()
        }
    }

    /// The upper bound of the delay before retry number `retry` (1-based).
    fn ceiling(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << exponent)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay before retry number `retry` (1-based): the server's (capped) when it asked for
    /// one, otherwise the jittered [`Backoff::ceiling`].
    fn delay(&self, retry: u32, asked: Option<Duration>) -> Duration {
        if let Some(wait) = asked {
            return wait.min(self.retry_after_cap);
        }
        let ceiling = self.ceiling(retry);
        match self.jitter {
            Jitter::Full => {
                let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(fastrand::u64(0..=millis))
            }
            Jitter::Equal => ceiling.mul_f64(0.5 + fastrand::f64() / 2.0),
            Jitter::Off => ceiling,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::cell::RefCell;

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
    fn jittered_delays_stay_in_their_band() {
        let full = Backoff::default();
        let equal = Backoff {
            jitter: Jitter::Equal,
            ..full
        };
        let off = Backoff {
            jitter: Jitter::Off,
            ..full
        };
        for retry in 1..12 {
            let ceiling = full.ceiling(retry);
            for _ in 0..50 {
                assert!(full.delay(retry, None) <= ceiling);
                let d = equal.delay(retry, None);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "{d:?} against {ceiling:?}"
                );
            }
            assert_eq!(off.delay(retry, None), ceiling);
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

    /// A policy whose waits are zero, so the tests below do not sleep.
    fn instant(max_retries: Option<u32>) -> Policy {
        Policy {
            backoff: Backoff {
                base: Duration::ZERO,
                cap: Duration::ZERO,
                retry_after_cap: Duration::ZERO,
                jitter: Jitter::Off,
            },
            max_retries,
        }
    }

    #[tokio::test]
    async fn retries_until_success_and_tells_each_retry() {
        let heard = RefCell::new(Vec::new());
        let result = run(
            &instant(Some(5)),
            |n| async move { if n < 3 { Err(n) } else { Ok("done") } },
            |_| Verdict::Retry,
            |r: &Retrying<'_, u32>| heard.borrow_mut().push((*r.error, r.attempt)),
        )
        .await;
        assert_eq!(result.unwrap(), "done");
        assert_eq!(heard.into_inner(), [(1, 1), (2, 2)]);
    }

    #[tokio::test]
    async fn gives_up_after_max_retries_with_the_last_error() {
        let mut calls = 0;
        let result: Result<(), _> = run(
            &instant(Some(2)),
            |n| {
                calls += 1;
                async move { Err(n * 10) }
            },
            |_| Verdict::Retry,
            |_| {},
        )
        .await;
        let gave_up = result.unwrap_err();
        assert_eq!((gave_up.error, gave_up.attempts), (30, 3));
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn a_final_error_is_not_retried() {
        let result: Result<(), _> = run(
            &instant(None),
            |n| async move { Err(n) },
            |_| Verdict::Fail,
            |_| panic!("no retry"),
        )
        .await;
        let gave_up = result.unwrap_err();
        assert_eq!((gave_up.error, gave_up.attempts), (1, 1));
    }

    #[tokio::test]
    async fn unbounded_retries_go_on_and_the_server_delay_is_used() {
        let delays = RefCell::new(Vec::new());
        let policy = Policy {
            backoff: Backoff {
                base: Duration::from_secs(60),
                ..Backoff::default()
            },
            max_retries: None,
        };
        let result = run(
            &policy,
            |n| async move { if n <= 50 { Err(()) } else { Ok(n) } },
            |_| Verdict::RetryAfter(Duration::ZERO),
            |r| delays.borrow_mut().push(r.delay),
        )
        .await;
        assert_eq!(result.unwrap(), 51);
        let delays = delays.into_inner();
        assert_eq!(delays.len(), 50);
        assert!(delays.iter().all(|d| d.is_zero()), "{delays:?}");
    }
}

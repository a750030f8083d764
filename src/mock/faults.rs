//! Fault injection and the counters of what the simulation served.
//!
//! Faults apply to API paths only (`/v1/...`, `/reporting/...` and any unknown path), never to the
//! token endpoint or the admin API: a test that injects "every 3rd request answers 500" then knows
//! exactly which report requests fail, whatever the token manager does in between.
//! "Every Nth" counts API requests from the last time the faults were set.
//!
//! The counters also say whether a client honoured a `Retry-After` for the whole API: a 429 the
//! simulation answers announces a pause, and an API request that arrives before that pause is
//! over is counted in [`Counters::early_requests`]. A request that arrives within
//! [`IN_FLIGHT_GRACE`] of the announcement is not counted: it may have been sent before the
//! client read the 429 (it crossed the answer on the wire), which no client can prevent.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The faults the simulation injects. All off by default; a field left out of a JSON body is off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before every API answer, in milliseconds.
    pub latency_ms: u64,
    /// Every Nth API request is answered 429 with a `Retry-After` header.
    pub every_nth_429: Option<u32>,
    /// The `Retry-After` value of those 429 answers, in seconds.
    pub retry_after_secs: u64,
    /// Every Nth API request is answered 500.
    pub every_nth_500: Option<u32>,
    /// Every Nth API request is answered 503.
    pub every_nth_503: Option<u32>,
    /// Every Nth API request is answered 200 with a body that is not valid JSON.
    pub every_nth_malformed: Option<u32>,
    /// Every Nth API request gets no answer: the connection is closed.
    pub every_nth_drop: Option<u32>,
    /// Every Nth API request finds every token revoked (as `POST /__mock/revoke-tokens` does
    /// just before it), so it and every other request still using those tokens are answered 401.
    pub every_nth_revoke: Option<u32>,
    /// Tokens issued from now on expire after this many seconds (0: already expired when issued).
    pub token_lifetime_secs: Option<u64>,
    /// Query API reports answer without rows in this shape: no `data` key at all, or
    /// `"data": null` (both seen by real clients, who read them as zero rows).
    pub answers_without_data: Option<NoData>,
    /// Query API reports refuse an `endDate` after today (400 `{"message": "endDate cannot be in
    /// the future"}`, PostHog's sample of a Rokt 400), as the live API may.
    pub refuse_future_end_date: bool,
    /// Query API reports stop after this many rows and still look whole (`{"data": [...]}`
    /// closed, `accountId`, `queryTimeMs`): a silent row cap, as an API that publishes no
    /// pagination may have. Nothing in the answer shows it; `rokt-export verify` does (its
    /// requests, a row per day, stay under any cap of 31 rows or more).
    pub row_cap: Option<u64>,
}

/// How an answer without rows looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// `{"accountId": ..., "queryTimeMs": ...}`.
    Missing,
    /// `{"data": null, "accountId": ..., "queryTimeMs": ...}`.
    Null,
}

/// What the simulation served since it started or since the counters were last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests to the token endpoint, whatever their outcome.
    pub token_requests: u64,
    /// Requests to API paths (not the token endpoint, not the admin API), whatever their outcome.
    pub api_requests: u64,
    /// API requests by the status answered; a dropped connection counts under 0.
    pub api_requests_by_status: BTreeMap<u16, u64>,
    /// The most API requests that were in flight at the same time.
    pub max_concurrent_requests: u64,
    /// Report rows served (Query API `data` rows and legacy `items`).
    pub rows_served: u64,
    /// API requests that arrived while a `Retry-After` the simulation had announced (with a 429)
    /// was still pending, not counting those within 250 ms (`IN_FLIGHT_GRACE`) of it. A
    /// client that pauses the whole API for a `Retry-After` sends none.
    pub early_requests: u64,
}

/// How long after announcing a pause arrivals are not counted as early (see the module docs).
pub const IN_FLIGHT_GRACE: Duration = Duration::from_millis(250);

/// The fault picked for one API request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    Drop,
    TooManyRequests {
        retry_after_secs: u64,
    },
    Status(u16),
    Malformed,
    /// Revoke every token, then answer as usual (so: 401).
    Revoke,
}

impl Faults {
    /// The fault for the `n`-th API request (1-based) since the faults were set. When several
    /// apply, the first of: drop, 429, 500, 503, malformed, revoke.
    pub(crate) fn pick(&self, n: u64) -> Option<Injected> {
        let hits =
            |every: Option<u32>| every.is_some_and(|e| e > 0 && n.is_multiple_of(u64::from(e)));
        if hits(self.every_nth_drop) {
            Some(Injected::Drop)
        } else if hits(self.every_nth_429) {
            Some(Injected::TooManyRequests {
                retry_after_secs: self.retry_after_secs,
            })
        } else if hits(self.every_nth_500) {
            Some(Injected::Status(500))
        } else if hits(self.every_nth_503) {
            Some(Injected::Status(503))
        } else if hits(self.every_nth_malformed) {
            Some(Injected::Malformed)
        } else if hits(self.every_nth_revoke) {
            Some(Injected::Revoke)
        } else {
            None
        }
    }
}

/// The live counters, shared by every connection.
#[derive(Default)]
pub(crate) struct CounterState {
    token_requests: AtomicU64,
    api_requests: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    in_flight: AtomicU64,
    max_concurrent: AtomicU64,
    rows_served: AtomicU64,
    early_requests: AtomicU64,
    /// The last pause announced: from when arrivals count as early, until when.
    pause: Mutex<Option<(Instant, Instant)>>,
}

impl CounterState {
    pub(crate) fn token_request(&self) {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an API request as started (and as early, during an announced pause); it stays in
    /// flight until the guard is dropped.
    pub(crate) fn api_request(&self) -> InFlight<'_> {
        self.api_requests.fetch_add(1, Ordering::Relaxed);
        let pause = *self.pause.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((from, until)) = pause {
            let now = Instant::now();
            if from <= now && now < until {
                self.early_requests.fetch_add(1, Ordering::Relaxed);
            }
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    pub(crate) fn answered(&self, status: u16) {
        let mut map = self.by_status.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(status).or_default() += 1;
    }

    /// A 429 with `Retry-After: wait` was answered: no API request should arrive for `wait`.
    pub(crate) fn pause_announced(&self, wait: Duration) {
        let now = Instant::now();
        let (Some(from), Some(until)) = (now.checked_add(IN_FLIGHT_GRACE), now.checked_add(wait))
        else {
            return;
        };
        let mut pause = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        let until = match *pause {
            Some((_, current)) if current > until => current,
            _ => until,
        };
        *pause = Some((from, until));
    }

    pub(crate) fn rows(&self, n: u64) {
        self.rows_served.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        Counters {
            token_requests: self.token_requests.load(Ordering::Relaxed),
            api_requests: self.api_requests.load(Ordering::Relaxed),
            api_requests_by_status: self
                .by_status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            max_concurrent_requests: self.max_concurrent.load(Ordering::SeqCst),
            rows_served: self.rows_served.load(Ordering::Relaxed),
            early_requests: self.early_requests.load(Ordering::Relaxed),
        }
    }

    /// Zeroes every counter. Requests in flight stay counted as in flight, so the next maximum is
    /// still right.
    pub(crate) fn reset(&self) {
        self.token_requests.store(0, Ordering::Relaxed);
        self.api_requests.store(0, Ordering::Relaxed);
        self.by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.max_concurrent
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        self.rows_served.store(0, Ordering::Relaxed);
        self.early_requests.store(0, Ordering::Relaxed);
    }
}

/// An API request in flight; dropping it (also when the connection is cancelled) ends it.
pub(crate) struct InFlight<'a>(&'a CounterState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_every_nth_with_drop_first() {
        let f = Faults {
            every_nth_drop: Some(6),
            every_nth_429: Some(2),
            every_nth_500: Some(3),
            retry_after_secs: 4,
            ..Faults::default()
        };
        let picked: Vec<Option<Injected>> = (1..=6).map(|n| f.pick(n)).collect();
        assert_eq!(
            picked,
            vec![
                None,
                Some(Injected::TooManyRequests {
                    retry_after_secs: 4
                }),
                Some(Injected::Status(500)),
                Some(Injected::TooManyRequests {
                    retry_after_secs: 4
                }),
                None,
                Some(Injected::Drop),
            ]
        );
        assert_eq!(Faults::default().pick(1), None);
        let zero = Faults {
            every_nth_500: Some(0),
            ..Faults::default()
        };
        assert_eq!(zero.pick(5), None, "every 0th request means never");
    }

    #[test]
    fn revoke_comes_last() {
        let f = Faults {
            every_nth_revoke: Some(2),
            every_nth_503: Some(3),
            ..Faults::default()
        };
        let picked: Vec<Option<Injected>> = (1..=6).map(|n| f.pick(n)).collect();
        assert_eq!(
            picked,
            vec![
                None,
                Some(Injected::Revoke),
                Some(Injected::Status(503)),
                Some(Injected::Revoke),
                None,
                Some(Injected::Status(503)),
            ]
        );
    }

    #[test]
    fn arrivals_during_an_announced_pause_are_early() {
        let c = CounterState::default();
        drop(c.api_request());
        c.pause_announced(Duration::ZERO);
        drop(c.api_request());
        assert_eq!(c.snapshot().early_requests, 0);
        // A pause announced long ago and already over counts nothing; one that runs counts
        // arrivals after the grace. Set by hand so that the test does not wait for the grace.
        let now = Instant::now();
        *c.pause.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((now, now + Duration::from_secs(60)));
        drop(c.api_request());
        assert_eq!(c.snapshot().early_requests, 1);
        c.reset();
        assert_eq!(c.snapshot().early_requests, 0);
        // A later, shorter announcement does not shorten the pause.
        c.pause_announced(Duration::from_secs(1));
        let (_, until) = c
            .pause
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or((now, now));
        assert!(until >= now + Duration::from_secs(60));
    }

    #[test]
    fn faults_parse_from_partial_json() {
        let f: Faults = serde_json::from_str(r#"{"every_nth_503": 2}"#).unwrap();
        assert_eq!(f.every_nth_503, Some(2));
        assert_eq!(f.latency_ms, 0);
        assert!(serde_json::from_str::<Faults>(r#"{"every_nth_5O3": 2}"#).is_err());
    }

    #[test]
    fn in_flight_tracks_the_maximum() {
        let c = CounterState::default();
        let a = c.api_request();
        let b = c.api_request();
        drop(a);
        let _c = c.api_request();
        drop(b);
        assert_eq!(c.snapshot().max_concurrent_requests, 2);
        c.reset();
        assert_eq!(c.snapshot().max_concurrent_requests, 1);
        assert_eq!(c.snapshot().api_requests, 0);
    }
}

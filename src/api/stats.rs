//! Counters for API requests, kept by the client and read as snapshots (the daemon exports them as
//! Prometheus metrics). Plain integers behind a short std mutex: a request records once, after it
//! finished, so contention is negligible next to the HTTP round trip.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets, Prometheus style (`le`).
const LATENCY_BUCKETS_SECS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A snapshot of the client's counters since it was built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiStats {
    /// HTTP requests to the API (not the token endpoint) by response status.
    pub requests_by_status: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer (timeouts, refused or reset connections).
    pub transport_errors: u64,
    /// Retries made after 401, 429, 5xx or transport errors.
    pub retries: u64,
    /// Latency of every request, answered or not.
    pub latency: LatencyHistogram,
    /// Token requests that succeeded.
    pub token_renewals: u64,
}

/// A cumulative latency histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    /// `(upper bound in seconds, requests at most that slow)`, cumulative, one per bucket
    /// (0.05 s to 60 s); the `+Inf` bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    pub sum_secs: f64,
    pub count: u64,
}

impl ApiStats {
    /// All HTTP requests made, answered or not.
    pub fn total_requests(&self) -> u64 {
        self.requests_by_status.values().sum::<u64>() + self.transport_errors
    }
}

#[derive(Default)]
struct Counts {
    by_status: BTreeMap<u16, u64>,
    transport_errors: u64,
    retries: u64,
    /// Non-cumulative counts per bucket; index `LATENCY_BUCKETS_SECS.len()` is the overflow.
    buckets: Vec<u64>,
    sum_secs: f64,
    count: u64,
}

/// The live counters.
#[derive(Default)]
pub(crate) struct Recorder {
    counts: Mutex<Counts>,
}

impl Recorder {
    /// Records one request: its status (`None` for a transport error) and how long it took.
    pub(crate) fn request(&self, status: Option<u16>, latency: Duration) {
        let secs = latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS_SECS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(LATENCY_BUCKETS_SECS.len());
        let mut c = self.lock();
        match status {
            Some(s) => *c.by_status.entry(s).or_default() += 1,
            None => c.transport_errors += 1,
        }
        if c.buckets.is_empty() {
            c.buckets = vec![0; LATENCY_BUCKETS_SECS.len() + 1];
        }
        if let Some(n) = c.buckets.get_mut(bucket) {
            *n += 1;
        }
        c.sum_secs += secs;
        c.count += 1;
    }

    pub(crate) fn retry(&self) {
        self.lock().retries += 1;
    }

    pub(crate) fn snapshot(&self, token_renewals: u64) -> ApiStats {
        let c = self.lock();
        let mut running = 0;
        let buckets = LATENCY_BUCKETS_SECS
            .iter()
            .enumerate()
            .map(|(i, le)| {
                running += c.buckets.get(i).copied().unwrap_or(0);
                (*le, running)
            })
            .collect();
        ApiStats {
            requests_by_status: c.by_status.clone(),
            transport_errors: c.transport_errors,
            retries: c.retries,
            latency: LatencyHistogram {
                buckets,
                sum_secs: c.sum_secs,
                count: c.count,
            },
            token_renewals,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding this lock cannot leave the counters inconsistent enough to matter.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_statuses_and_cumulative_buckets() {
        let r = Recorder::default();
        r.request(Some(200), Duration::from_millis(10));
        r.request(Some(200), Duration::from_millis(300));
        r.request(Some(503), Duration::from_secs(100));
        r.request(None, Duration::from_millis(60));
        r.retry();
        let s = r.snapshot(2);
        assert_eq!(s.requests_by_status.get(&200), Some(&2));
        assert_eq!(s.requests_by_status.get(&503), Some(&1));
        assert_eq!(s.transport_errors, 1);
        assert_eq!(s.total_requests(), 4);
        assert_eq!(s.retries, 1);
        assert_eq!(s.token_renewals, 2);
        assert_eq!(s.latency.count, 4);
        assert_eq!(s.latency.buckets[0], (0.05, 1));
        assert_eq!(s.latency.buckets[1], (0.1, 2));
        assert_eq!(s.latency.buckets[3], (0.5, 3));
        assert_eq!(s.latency.buckets.last(), Some(&(60.0, 3)));
    }
}

//! The API-wide pause a `Retry-After` asks for.
//!
//! A rate limit belongs to the app (or the account), not to the one request that was told about
//! it: when any answer carries `Retry-After`, no request to the API is sent until that moment has
//! passed. The [`Gate`] holds that moment ("not before"); the client checks it after taking a
//! concurrency permit and before each send. Requests that wait hold their permits, so the ones
//! still queued for a permit stay queued in order behind them (tokio's semaphore is fair) and all
//! resume in the order they came once the pause is over. The request that was answered 429 waits
//! out the same delay in the retry loop, without a permit, and then queues like any other.
//!
//! A later `Retry-After` can only lengthen a pause, never shorten it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The moment before which no request may be sent.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    not_before: Mutex<Option<Instant>>,
}

impl Gate {
    /// No request before `wait` from now (or later, if a pause already runs longer).
    pub(crate) fn pause_for(&self, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        let Some(until) = Instant::now().checked_add(wait) else {
            return;
        };
        let mut not_before = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if not_before.is_none_or(|t| t < until) {
            *not_before = Some(until);
        }
    }

    /// Waits until no pause is pending; returns how long it waited (zero when it did not).
    pub(crate) async fn wait(&self) -> Duration {
        let mut started = None;
        loop {
            let until = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(until) if until > Instant::now() => {
                    started.get_or_insert_with(Instant::now);
                    tokio::time::sleep_until(until).await;
                }
                _ => return started.map_or(Duration::ZERO, |s| s.elapsed()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until(gate: &Gate) -> Option<Instant> {
        *gate.not_before.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[tokio::test]
    async fn a_pause_can_be_lengthened_never_shortened() {
        let gate = Gate::default();
        assert_eq!(gate.wait().await, Duration::ZERO);
        gate.pause_for(Duration::ZERO);
        assert_eq!(until(&gate), None);
        let before = Instant::now();
        gate.pause_for(Duration::from_secs(60));
        let long = until(&gate).unwrap_or(before);
        assert!(long >= before + Duration::from_secs(60));
        gate.pause_for(Duration::from_secs(1));
        assert_eq!(until(&gate), Some(long));
        gate.pause_for(Duration::from_secs(120));
        assert!(until(&gate).is_some_and(|t| t > long));
        gate.pause_for(Duration::MAX); // no overflow
    }
}

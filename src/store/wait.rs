//! Waiting for the database, on the crate's one retry loop (`api::retry::run`): the commands'
//! start-up attempts ([`while_unavailable`]) and the closing of a job's `running` runs once its
//! lock is free ([`Store::fail_running_runs_once_free`]).

use std::future::Future;
use std::time::{Duration, Instant};

use super::{Store, StoreError};
use crate::api::retry::{self, Backoff, Jitter, Policy, Verdict};

/// The commands' start-up attempts (`--run-now`, `status`, `verify`, `migrate`, `validate
/// --online`): four attempts, 0.5 s, 1 s and 2 s apart, while the database is unavailable (any
/// other error is final). Each retry is logged.
pub async fn while_unavailable<T, Fut: Future<Output = Result<T, StoreError>>>(
    attempt: impl FnMut(u32) -> Fut,
) -> Result<T, StoreError> {
    let policy = Policy {
        backoff: Backoff {
            base: Duration::from_millis(500),
            jitter: Jitter::Off,
            ..Backoff::default()
        },
        max_retries: Some(3),
    };
    retry::run(
        &policy,
        attempt,
        |e| {
            if e.is_unavailable() {
                Verdict::Retry
            } else {
                Verdict::Fail
            }
        },
        |retrying| {
            let (e, attempt) = (retrying.error, retrying.attempt);
            tracing::warn!(error = %e, attempt, "database not reachable yet; retrying");
        },
    )
    .await
    .map_err(|gave_up| gave_up.error)
}

/// How long [`Store::fail_running_runs_once_free`] keeps trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// How long the job's lock may look held: a run that was dropped (or panicked) closed its
    /// lock connection, and the server notices a moment later. Held longer, a live process (a
    /// daemon, a replica) runs the job, and its rows are not ours to touch.
    pub lock_held: Duration,
    /// How long to keep trying, in all, while the database does not answer.
    pub unreachable: Duration,
}

/// Why [`Store::fail_running_runs_once_free`] left the runs as they are.
#[derive(Debug, thiserror::Error)]
pub enum StillRunning {
    /// The job's lock stayed held for [`Patience::lock_held`]: a live process runs the job.
    #[error("the job's lock is held by a live process")]
    LockHeld,
    /// The database did not answer for [`Patience::unreachable`]; the last error.
    #[error(transparent)]
    Store(StoreError),
}

/// How often a held lock is looked at again.
const LOCK_POLL: Duration = Duration::from_millis(250);
/// How long to wait after a database error before trying again.
const ERROR_WAIT: Duration = Duration::from_secs(1);

impl Store {
    /// Marks the `running` runs of `job` failed with `error` ([`Store::fail_running_runs`]) as
    /// soon as the job's lock is free, trying again while it looks held (every 250 ms, for
    /// `patience.lock_held`) or the database does not answer (every second, for
    /// `patience.unreachable` in all; `on_error` hears each such error before the wait).
    /// Returns how many runs it marked.
    ///
    /// For the runs of a run that ended without closing them: stopped, dropped after the grace
    /// period, panicked, or unable to record a window's failure because the database was gone.
    /// Whatever is left is for the next start's [`Store::fail_stale_runs`].
    pub async fn fail_running_runs_once_free(
        &self,
        job: &str,
        error: &str,
        patience: Patience,
        mut on_error: impl FnMut(&StoreError),
    ) -> Result<u64, StillRunning> {
        let started = Instant::now();
        let policy = Policy {
            backoff: Backoff {
                base: LOCK_POLL,
                cap: LOCK_POLL,
                jitter: Jitter::Off,
                ..Backoff::default()
            },
            max_retries: None,
        };
        let marked = retry::run(
            &policy,
            |_| async move {
                match self.fail_running_runs(job, error).await {
                    Ok(Some(runs)) => Ok(runs),
                    Ok(None) => Err(StillRunning::LockHeld),
                    Err(e) => Err(StillRunning::Store(e)),
                }
            },
            |e| {
                let (wait, limit, verdict) = match e {
                    StillRunning::LockHeld => (LOCK_POLL, patience.lock_held, Verdict::Retry),
                    StillRunning::Store(_) => (
                        ERROR_WAIT,
                        patience.unreachable,
                        Verdict::RetryAfter(ERROR_WAIT),
                    ),
                };
                if started.elapsed() + wait > limit {
                    Verdict::Fail
                } else {
                    verdict
                }
            },
            |retrying| {
                if let StillRunning::Store(e) = retrying.error {
                    on_error(e);
                }
            },
        )
        .await;
        marked.map_err(|gave_up| gave_up.error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::NaiveDate;

    use super::*;
    use crate::store::{NewRun, RunStatus, Trigger};

    #[tokio::test]
    async fn runs_are_marked_once_the_lock_is_free_and_left_while_it_is_held() {
        let (_dir, store) = crate::store::temporary_sqlite().await;
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        for job in ["free", "held"] {
            let run = NewRun {
                job: job.into(),
                account_id: "1".into(),
                window_start: day,
                window_end: day,
                trigger: Trigger::Schedule,
            };
            store.start_run(&run).await.unwrap();
        }
        let held = store.try_lock_job("held").await.unwrap().unwrap();
        let patience = Patience {
            lock_held: Duration::from_millis(300),
            unreachable: Duration::from_millis(300),
        };
        let no_error = |e: &StoreError| panic!("{e}");

        let marked = store.fail_running_runs_once_free("free", "gone", patience, no_error);
        assert_eq!(marked.await.unwrap(), 1);
        let left = store.fail_running_runs_once_free("held", "gone", patience, no_error);
        assert!(matches!(left.await, Err(StillRunning::LockHeld)));

        let status = store.status().await.unwrap();
        let last = |job: &str| status.iter().find(|s| s.job == job).unwrap().last_status;
        assert_eq!(last("free"), Some(RunStatus::Failed));
        assert_eq!(last("held"), Some(RunStatus::Running));
        held.release().await;
        store.close().await;
    }
}

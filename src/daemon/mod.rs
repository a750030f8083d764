//! The daemon (`rokt-export run`): fires every job on its schedule, never runs a job twice at
//! once, serves health and metrics, and stops cleanly.
//!
//! Its one entry point is [`run_until_stopped`]; the command line (`cli::run`) loads the config,
//! binds the listener and turns signals into the shutdown future. The scheduling itself is in
//! `scheduler` (one task per job, overlaps skipped); across processes, `export::run_job` takes the
//! job's Postgres advisory lock and records `skipped` when a replica holds it. On stop, running
//! runs get the grace period; what is still running then is dropped (its window's transaction
//! rolls back) and its `export_runs` rows are marked failed. After a successful run of a job with
//! `verify = true`, the same run verifies the days it re-read (`crate::verify`).

mod scheduler;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::retry::{self, Backoff, Jitter, Policy, Verdict};
use crate::api::{ApiClient, ApiError};
use crate::config::{Config, Credentials, Job, JobKind};
use crate::export::{
    Context, FailureKind, NoProgress, RunRequest, RunResult, WindowOutcome, run_job,
};
use crate::metrics::{Metrics, RunCounts, RunOutcome};
use crate::server::{Health, ServerState};
use crate::store::{CheckTrigger, Patience, STALE_RUN_ERROR, Store, StoreError, Trigger};
use crate::verify::{AccountOutcome, Days, Outcome as VerifyOutcome, VerifyRequest, verify};
use scheduler::{RunSummary, Runner, Scheduler};

/// First wait before connecting to the database again; doubled after each failure.
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// The longest wait between two connection attempts.
const MAX_RETRY: Duration = Duration::from_secs(15);
/// How often the database is pinged for `/readyz` once connected.
const PING_EVERY: Duration = Duration::from_secs(2);
/// A ping that takes longer than this counts as "database unreachable".
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// After the grace period: how long marking abandoned runs failed and closing the pool may take,
/// so that a database that is down at that moment cannot hold the exit up (the next start marks
/// the runs failed instead).
const CLEANUP_LIMIT: Duration = Duration::from_secs(10);
/// The same after a second stop signal: whoever sent it wants the process gone.
const HURRIED_CLEANUP_LIMIT: Duration = Duration::from_secs(3);

/// Why the daemon could not run. Everything that can recover by itself (database, API) is
/// retried instead and never ends up here.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The HTTP client for the Rokt API could not be built (a TLS set-up problem).
    #[error("cannot build the Rokt API client: {0}")]
    Api(#[from] ApiError),
    /// The health and metrics server stopped with an error.
    #[error("the health and metrics server failed: {0}")]
    Server(#[source] std::io::Error),
}

/// The daemon: serves `/healthz`, `/readyz` and `/metrics` on `listener` at once, connects to the
/// database in the background (retrying with backoff for as long as it takes), then fires every
/// job on its schedule until `shutdown` completes; then stops firing, gives running windows
/// `[server] shutdown_grace_secs` to commit, marks what it abandoned as failed, and returns.
///
/// The listener and the shutdown future are arguments so that tests bind port 0 and stop the
/// daemon with a oneshot.
pub async fn run_until_stopped(
    config: Arc<Config>,
    credentials: Credentials,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DaemonError> {
    run_until_stopped_or_hurried(
        config,
        credentials,
        listener,
        shutdown,
        std::future::pending(),
    )
    .await
}

/// [`run_until_stopped`], where `hurry` (a second SIGTERM/SIGINT) cuts the grace period short:
/// runs still going then are abandoned at once (their windows roll back, their `export_runs`
/// rows are marked failed) and the clean-up gets [`HURRIED_CLEANUP_LIMIT`].
pub async fn run_until_stopped_or_hurried(
    config: Arc<Config>,
    credentials: Credentials,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    hurry: impl Future<Output = ()> + Send,
) -> Result<(), DaemonError> {
    crate::tls::install_crypto_provider();
    let api = ApiClient::new(&config.api, credentials)?;
    let mut metrics = Metrics::new(config.jobs.iter().map(|j| j.name.as_str()));
    metrics.register_api(api.clone());
    for job in config.jobs.iter().filter(|j| verifies(j)) {
        metrics.expect_verification(&job.name);
    }
    let metrics = Arc::new(metrics);
    let health = Arc::new(Health::new());
    let listen = listener.local_addr().map_err(DaemonError::Server)?;
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(
        listener,
        ServerState {
            health: Arc::clone(&health),
            metrics: Arc::clone(&metrics),
        },
        async move {
            let _ = server_stopped.await;
        },
    ));
    info!(%listen, jobs = config.jobs.len(), "serving /healthz /readyz /metrics; connecting to the database");
    // READY as soon as we serve: a database that is down must not make systemd kill us at
    // start-up; readiness for work is what /readyz says.
    notify(&[
        NotifyState::Ready,
        NotifyState::Status("waiting for the database"),
    ]);

    tokio::pin!(shutdown);
    let store = tokio::select! {
        store = open_store(&config, &health) => Some(store),
        () = &mut shutdown => None,
    };
    if let Some(store) = store {
        let pinger = tokio::spawn(ping_forever(store.clone(), Arc::clone(&health)));
        let stopping = CancellationToken::new();
        let runner = Arc::new(Export {
            ctx: Context::new(Arc::clone(&config), api, store.clone()),
            stopping: stopping.clone(),
            metrics: Arc::clone(&metrics),
        });
        let scheduler = Scheduler::start(
            &config.jobs,
            runner,
            Arc::clone(&metrics),
            Arc::clone(&health),
        );
        health.set_scheduler_running(true);
        let status = format!("scheduling {} jobs", config.jobs.len());
        notify(&[NotifyState::Status(&status)]);
        info!(jobs = config.jobs.len(), "scheduler running");

        shutdown.await;
        // First of all: no window starts from now on (runs check this before each window).
        stopping.cancel();
        health.set_scheduler_running(false);
        notify(&[NotifyState::Stopping]);
        info!(
            grace_secs = config.server.shutdown_grace.as_secs(),
            "stopping: no new runs; running windows may finish within the grace period"
        );
        let hurried = AtomicBool::new(false);
        let hurry = async {
            hurry.await;
            hurried.store(true, Ordering::SeqCst);
            info!("stopping now: running windows are rolled back");
        };
        let abandoned = scheduler
            .stop_or_hurry(config.server.shutdown_grace, hurry)
            .await;
        let cleanup_limit = if hurried.load(Ordering::SeqCst) {
            HURRIED_CLEANUP_LIMIT
        } else {
            CLEANUP_LIMIT
        };
        if !abandoned.is_empty() {
            let cleanup = fail_abandoned(&store, &abandoned);
            if tokio::time::timeout(cleanup_limit, cleanup).await.is_err() {
                warn!(jobs = ?abandoned, "could not mark the abandoned runs failed in time; the next start does");
            }
        }
        pinger.abort();
        if tokio::time::timeout(cleanup_limit, store.close())
            .await
            .is_err()
        {
            warn!("the database connections did not close in time");
        }
    } else {
        notify(&[NotifyState::Stopping]);
        info!("stopping before the database was reached");
    }

    let _ = stop_server.send(());
    let served = server
        .await
        .map_err(|e| DaemonError::Server(std::io::Error::other(e)))?;
    served.map_err(DaemonError::Server)?;
    info!("stopped");
    Ok(())
}

/// Tells systemd (when `NOTIFY_SOCKET` is set; a no-op otherwise).
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify the service manager");
    }
}

/// Connects, migrates and fails the runs a crashed process left `running`; retries everything
/// with capped exponential backoff until it works.
async fn open_store(config: &Config, health: &Health) -> Store {
    let policy = Policy {
        // Half to all of the delay, so replicas restarted together do not knock in step.
        backoff: Backoff {
            base: FIRST_RETRY,
            cap: MAX_RETRY,
            jitter: Jitter::Equal,
            ..Backoff::default()
        },
        max_retries: None,
    };
    let opened = retry::run(
        &policy,
        |attempt| async move { prepare_store(config).await.map(|store| (store, attempt)) },
        |_| Verdict::Retry,
        |retrying| {
            let (e, attempt) = (retrying.error, retrying.attempt);
            health.set_database(false);
            let retry_in_ms = u64::try_from(retrying.delay.as_millis()).unwrap_or(u64::MAX);
            if e.is_unavailable() {
                warn!(error = %e, attempt, retry_in_ms, "database not reachable; retrying");
            } else {
                error!(error = %e, attempt, retry_in_ms, "cannot use the database; retrying");
            }
        },
    )
    .await;
    match opened {
        Ok((store, attempt)) => {
            health.set_database(true);
            info!(attempt, database = %config.database.url, "connected to the database");
            store
        }
        Err(gave_up) => {
            // Not reached: the policy has no limit and no error is final. Were it, the daemon
            // would stay unready until stopped, as while it retries.
            error!(error = %gave_up.error, "gave up connecting to the database");
            std::future::pending().await
        }
    }
}

async fn prepare_store(config: &Config) -> Result<Store, StoreError> {
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    // Only jobs whose lock this takes are touched, so a replica's live runs are safe.
    store.fail_stale_runs().await?;
    Ok(store)
}

/// Keeps `/readyz` true to the database: pings it every [`PING_EVERY`].
async fn ping_forever(store: Store, health: Arc<Health>) {
    let mut was_ok = true;
    loop {
        tokio::time::sleep(PING_EVERY).await;
        let result = match tokio::time::timeout(PING_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer to a ping within {} s",
                PING_TIMEOUT.as_secs()
            )),
        };
        match (&result, was_ok) {
            (Err(e), true) => warn!(error = %e, "database unreachable; not ready until it answers"),
            (Ok(()), false) => info!("database reachable again"),
            _ => {}
        }
        was_ok = result.is_ok();
        health.set_database(result.is_ok());
    }
}

/// How long the daemon tries to close the runs of a run it dropped or that panicked: the run's
/// lock connection was dropped with it, and the server may notice the closed socket a moment
/// after our next statement, so its lock may look held for a moment (bounded); what is still left
/// is for the next start's stale-run check.
const CLOSING: Patience = Patience {
    lock_held: Duration::from_secs(5),
    unreachable: Duration::from_secs(5),
};

/// Marks the `export_runs` rows of abandoned runs failed (each job's at once, side by side).
///
/// Only a job whose advisory lock can be taken is touched, i.e. that no live process (this one,
/// a replica, a `--run-now`) is running.
async fn fail_abandoned(store: &Store, jobs: &[String]) {
    let closing = jobs.iter().map(|job| async move {
        let closed = store
            .fail_running_runs_once_free(job, STALE_RUN_ERROR, CLOSING, |e| {
                warn!(error = %e, "cannot mark the abandoned runs failed");
            })
            .await;
        match closed {
            Ok(0) => true,
            Ok(runs) => {
                warn!(
                    job = %job,
                    runs, "marked runs left running by a stopped process as failed"
                );
                true
            }
            Err(_) => false,
        }
    });
    let closed = futures_util::future::join_all(closing).await;
    let left: Vec<&String> = jobs
        .iter()
        .zip(closed)
        .filter_map(|(job, closed)| (!closed).then_some(job))
        .collect();
    if !left.is_empty() {
        warn!(
            jobs = ?left,
            "runs of these jobs may still be marked running (a replica may have taken them over); \
             the next start marks abandoned ones failed"
        );
    }
}

/// The `export_runs.error` of the runs of a run that panicked.
fn panicked_run_error(panic: &str) -> String {
    format!(
        "failed: the run panicked (a bug in rokt-export: please report it): {panic}; nothing of \
         its window in progress was committed"
    )
}

/// Marks the `running` rows of `job` failed after its run panicked (see [`CLOSING`]).
async fn fail_panicked(store: &Store, job: &str, panic: &str) {
    let error = panicked_run_error(panic);
    let closed = store
        .fail_running_runs_once_free(job, &error, CLOSING, |e| {
            warn!(error = %e, "cannot mark the panicked run's windows failed");
        })
        .await;
    match closed {
        Ok(0) => {}
        Ok(runs) => warn!(runs, "marked the panicked run's windows failed"),
        Err(_) => warn!(
            "the panicked run's windows may still be marked running; the next start marks them \
             failed"
        ),
    }
}

/// The real [`Runner`]: `export::run_job` with the daemon's shared context.
struct Export {
    ctx: Context,
    /// Cancelled when the daemon stops: runs start no further window, so the grace period is
    /// spent finishing the windows in flight, not starting new ones.
    stopping: CancellationToken,
    /// Where verifications after runs are counted (runs themselves are counted by the scheduler).
    metrics: Arc<Metrics>,
}

/// Whether the daemon verifies `job` after its successful runs: `verify = true` on a Query API
/// job (on a generic job it can only be inherited from `[defaults]`, and is not done).
fn verifies(job: &Job) -> bool {
    job.verify && matches!(job.kind, JobKind::Query(_))
}

/// The most differences a log line of a verification quotes.
const LOGGED_DIFFERENCES: usize = 5;

impl Export {
    /// After a successful run of a job with `verify = true`: compares the days the run re-read
    /// (up to yesterday) with the API's totals, records them in `export_checks` (in `verify`)
    /// and in the metrics, and logs what it found. Part of the run: the job's next firing waits
    /// for it like for the run.
    async fn verify_after(&self, name: &str, result: &RunResult) {
        if !self.ctx.config.job(name).is_ok_and(verifies) || self.stopping.is_cancelled() {
            return;
        }
        let request = VerifyRequest {
            job: name.to_owned(),
            days: Days::reread_by(result),
            accounts: Vec::new(),
            trigger: CheckTrigger::Schedule,
        };
        let verification = match verify(&self.ctx, &request).await {
            Ok(v) => v,
            Err(e) => {
                self.metrics
                    .verification_finished(name, VerifyOutcome::Failed, None);
                warn!(error = %e, "could not verify the days the run re-read");
                return;
            }
        };
        let compared = verification
            .accounts
            .iter()
            .any(|a| matches!(a.outcome, AccountOutcome::Checked { .. }));
        let outcome = verification.outcome();
        let (days, differ) = (verification.days_checked(), verification.days_differ());
        self.metrics
            .verification_finished(name, outcome, compared.then_some(differ));
        let requests = verification.api_requests();
        for a in &verification.accounts {
            if let AccountOutcome::Failed { error, .. } = &a.outcome {
                warn!(account_id = %a.account_id, error = %error, "could not verify the account's days");
            }
        }
        match outcome {
            VerifyOutcome::Mismatched => warn!(
                days,
                days_differ = differ,
                api_requests = requests,
                differences = %differences(&verification, LOGGED_DIFFERENCES),
                "verification: days of the table differ from the API's totals (all in export_checks; \
                 `rokt-export verify {name}` shows them)"
            ),
            VerifyOutcome::Clean => info!(
                days,
                api_requests = requests,
                "verification: every day re-read matches the API's totals"
            ),
            VerifyOutcome::Failed => {}
        }
    }
}

/// The first `max` differences of a verification, for a log line.
fn differences(v: &crate::verify::Verification, max: usize) -> String {
    let mut out = Vec::new();
    for a in &v.accounts {
        let AccountOutcome::Checked { checks, .. } = &a.outcome else {
            continue;
        };
        for day in checks.iter().filter(|d| !d.matches()) {
            for (metric, m) in v.checked.iter().zip(&day.metrics) {
                if !m.matches {
                    out.push(format!(
                        "account {} {} {metric}: table {} ({} rows), API {}",
                        a.account_id, day.date, m.table, day.table_rows, m.api
                    ));
                }
            }
        }
    }
    let more = out.len().saturating_sub(max);
    out.truncate(max);
    if more > 0 {
        out.push(format!("and {more} more"));
    }
    out.join("; ")
}

impl Runner for Export {
    async fn panicked(&self, job: &str, panic: &str) {
        fail_panicked(&self.ctx.store, job, panic).await;
    }

    async fn run(&self, job: &str) -> RunSummary {
        let mut request = RunRequest::new(job, Trigger::Schedule);
        request.stop = self.stopping.clone();
        match run_job(&self.ctx, &request, &NoProgress).await {
            Ok(result) => {
                let rows_written = result.rows_written();
                let counts = RunCounts {
                    rows_written,
                    rows_deleted: result.rows_deleted(),
                    empty_answers: result.empty_answers(),
                };
                let windows = result.windows.len();
                let outcome = if result.skipped.is_some() {
                    RunOutcome::Skipped
                } else if result.succeeded() {
                    info!(
                        windows,
                        rows_written,
                        rows_deleted = counts.rows_deleted,
                        rows_skipped_empty = result.rows_skipped_empty(),
                        rows_missing_dimension = result.rows_missing_dimension(),
                        empty_answers = counts.empty_answers,
                        "run succeeded"
                    );
                    self.verify_after(job, &result).await;
                    RunOutcome::Succeeded
                } else if self.stopping.is_cancelled()
                    && !result
                        .windows
                        .iter()
                        .any(|w| matches!(w.outcome, WindowOutcome::Failed { .. }))
                {
                    info!(
                        windows,
                        rows_written,
                        "run cut short by the stop; the next run resumes after its last committed window"
                    );
                    RunOutcome::Abandoned
                } else if result.worst_failure() == Some(FailureKind::Config) {
                    error!(
                        windows,
                        "run failed: the API rejected the credentials; check ROKT_APP_ID and ROKT_APP_SECRET"
                    );
                    RunOutcome::Failed
                } else {
                    // Each failed window was logged where it failed; the next firing resumes.
                    warn!(
                        windows,
                        rows_written, "run failed; the next firing catches up"
                    );
                    RunOutcome::Failed
                };
                RunSummary { outcome, counts }
            }
            Err(e) => {
                if e.kind() == FailureKind::Config {
                    error!(error = %e, "run could not start; check the job and the credentials");
                } else {
                    warn!(error = %e, "run could not start; the next firing retries");
                }
                RunSummary {
                    outcome: RunOutcome::Failed,
                    counts: RunCounts::default(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{NewRun, RunStatus};
    use chrono::NaiveDate;

    #[tokio::test]
    async fn the_rows_of_a_panicked_run_are_marked_failed_with_the_panic() {
        let (_dir, store) = crate::store::temporary_sqlite().await;
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let run = |account: &str| NewRun {
            job: "j".into(),
            account_id: account.into(),
            window_start: day,
            window_end: day,
            trigger: Trigger::Schedule,
        };
        // The panicked run had two accounts' windows open; another job's run is not touched.
        store.start_run(&run("1")).await.unwrap();
        store.start_run(&run("2")).await.unwrap();
        let other = NewRun {
            job: "other".into(),
            ..run("1")
        };
        store.start_run(&other).await.unwrap();
        let other_lock = store.try_lock_job("other").await.unwrap().unwrap();

        fail_panicked(&store, "j", "attempt to add with overflow").await;

        let status = store.status().await.unwrap();
        let j = status.iter().find(|s| s.job == "j").unwrap();
        assert_eq!(j.last_status, Some(RunStatus::Failed));
        let error = j.last_error.as_deref().unwrap();
        assert!(error.contains("panicked"), "{error}");
        assert!(error.contains("attempt to add with overflow"), "{error}");
        assert_eq!(store.fail_running_runs("j", "x").await.unwrap(), Some(0));
        let o = status.iter().find(|s| s.job == "other").unwrap();
        assert_eq!(o.last_status, Some(RunStatus::Running));
        assert_eq!(store.fail_running_runs("other", "x").await.unwrap(), None);
        other_lock.release().await;
        store.close().await;
    }
}

//! The daemon (`rokt-export run`): fires every job on its schedule, never runs a job twice at
//! once, serves health and metrics, and stops cleanly.
//!
//! Shape: one tokio task per job owns that job's [`Ticker`] and its one in-flight run. A firing
//! while the run is still going is skipped and counted (`rokt_export_skipped_overlaps_total`);
//! across processes, `export::run_job` takes the job's Postgres advisory lock and records `skipped`
//! when a replica holds it. On stop, the job tasks stop firing and give their running run the
//! grace period; what is still running then is dropped (its window's transaction rolls back) and
//! its `export_runs` rows are marked failed.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sd_notify::NotifyState;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument as _, error, info, info_span, warn};

use crate::api::retry::{self, Backoff, Jitter, Policy, Verdict};
use crate::api::{ApiClient, ApiError};
use crate::config::{Config, Credentials, Env, Job};
use crate::exit;
use crate::export::{Context, Progress, Range, RunRequest, run_job};
use crate::metrics::{Metrics, Outcome};
use crate::schedule::Ticker;
use crate::server::{Health, ServerState};
use crate::store::{RunStatus, Store, StoreError, Trigger};

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

/// `rokt-export run`: loads the config, binds `[server] listen`, runs until SIGTERM or SIGINT and
/// returns the exit code (0 after a clean stop).
pub async fn command(config_path: &Path, env: &Env) -> u8 {
    let config = match crate::cli::load_config(config_path, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let credentials = match Credentials::from_env(env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONFIG;
        }
    };
    // Handlers first, so that a SIGTERM arriving during start-up is not lost.
    let stop = match stop_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install the SIGTERM/SIGINT handlers: {e}");
            return exit::RUN_FAILED;
        }
    };
    let listener = match TcpListener::bind(config.server.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {} (`[server] listen` in {}): {e}",
                config.server.listen,
                config.path.display()
            );
            return exit::RUN_FAILED;
        }
    };
    match run_until_stopped(Arc::new(config), credentials, listener, stop).await {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            exit::RUN_FAILED
        }
    }
}

/// Completes on the first SIGTERM or SIGINT.
fn stop_signal() -> std::io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
        }
    })
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
    crate::tls::install_crypto_provider();
    let api = ApiClient::new(&config.api, credentials)?;
    let mut metrics = Metrics::new(config.jobs.iter().map(|j| j.name.as_str()));
    metrics.register_api(api.clone());
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
        let stopping = Arc::new(AtomicBool::new(false));
        let runner = Arc::new(Export {
            ctx: Context {
                config: Arc::clone(&config),
                api,
                store: store.clone(),
            },
            stopping: StopAware(Arc::clone(&stopping)),
        });
        let scheduler = Scheduler::start(&config.jobs, runner, Arc::clone(&metrics));
        health.set_scheduler_running(true);
        let status = format!("scheduling {} jobs", config.jobs.len());
        notify(&[NotifyState::Status(&status)]);
        info!(jobs = config.jobs.len(), "scheduler running");

        shutdown.await;
        // First of all: no window starts from now on (runs check this before each window).
        stopping.store(true, Ordering::SeqCst);
        health.set_scheduler_running(false);
        notify(&[NotifyState::Stopping]);
        info!(
            grace_secs = config.server.shutdown_grace.as_secs(),
            "stopping: no new runs; running windows may finish within the grace period"
        );
        let abandoned = scheduler.stop(config.server.shutdown_grace).await;
        if !abandoned.is_empty() {
            let cleanup = fail_abandoned(&store, &abandoned);
            if tokio::time::timeout(CLEANUP_LIMIT, cleanup).await.is_err() {
                warn!(jobs = ?abandoned, "could not mark the abandoned runs failed in time; the next start does");
            }
        }
        pinger.abort();
        if tokio::time::timeout(CLEANUP_LIMIT, store.close())
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
            health.set_database(Err(e.to_string()));
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
            health.set_database(Ok(()));
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
        health.set_database(result);
    }
}

/// Marks the `export_runs` rows of abandoned runs failed.
///
/// The store's `fail_stale_runs` only touches a job whose advisory lock it can take, i.e. that no
/// live process (this one, a replica, a `--run-now`) is running. The abandoned runs dropped their
/// lock connections, but the server may notice a closed socket a moment after our next
/// statement, so look again a few times.
async fn fail_abandoned(store: &Store, jobs: &[String]) {
    for _ in 0..20 {
        if let Err(e) = store.fail_stale_runs().await {
            warn!(error = %e, "cannot mark the abandoned runs failed");
        }
        match store.status().await {
            Ok(status) => {
                let still_running = status
                    .iter()
                    .any(|s| jobs.contains(&s.job) && s.last_status == Some(RunStatus::Running));
                if !still_running {
                    return;
                }
            }
            Err(e) => warn!(error = %e, "cannot read the run status"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    warn!(
        jobs = ?jobs,
        "runs of these jobs may still be marked running (a replica may have taken them over); \
         the next start marks abandoned ones failed"
    );
}

/// The real [`Runner`]: `export::run_job` with the daemon's shared context.
struct Export {
    ctx: Context,
    stopping: StopAware,
}

/// Tells a run to start no further window once the daemon is stopping, so the grace period is
/// spent finishing the windows in flight, not starting new ones.
struct StopAware(Arc<AtomicBool>);

impl Progress for StopAware {
    fn keep_going(&self) -> bool {
        !self.0.load(Ordering::SeqCst)
    }
}

impl Runner for Export {
    async fn run(&self, job: &str) -> RunSummary {
        let request = RunRequest {
            job: job.to_owned(),
            range: Range::Incremental,
            accounts: Vec::new(),
            trigger: Trigger::Schedule,
        };
        match run_job(&self.ctx, &request, &self.stopping).await {
            Ok(report) => {
                let rows_written = report.rows_written();
                let outcome = if report.skipped.is_some() {
                    Outcome::Skipped
                } else if report.succeeded() {
                    info!(
                        windows = report.windows.len(),
                        rows_written, "run succeeded"
                    );
                    Outcome::Succeeded
                } else if !self.stopping.keep_going()
                    && !report
                        .windows
                        .iter()
                        .any(|w| matches!(w.outcome, crate::export::Outcome::Failed { .. }))
                {
                    info!(
                        windows = report.windows.len(),
                        rows_written,
                        "run cut short by the stop; the next run resumes after its last committed window"
                    );
                    Outcome::Abandoned
                } else if report.exit_code() == exit::CONFIG {
                    error!(
                        windows = report.windows.len(),
                        "run failed: the API rejected the credentials; check ROKT_APP_ID and ROKT_APP_SECRET"
                    );
                    Outcome::Failed
                } else {
                    // Each failed window was logged where it failed; the next firing resumes.
                    warn!(
                        windows = report.windows.len(),
                        rows_written, "run failed; the next firing catches up"
                    );
                    Outcome::Failed
                };
                RunSummary {
                    outcome,
                    rows_written,
                }
            }
            Err(e) if e.exit_code() == exit::CONFIG => {
                error!(error = %e, "run could not start; check the job and the credentials");
                RunSummary {
                    outcome: Outcome::Failed,
                    rows_written: 0,
                }
            }
            Err(e) => {
                warn!(error = %e, "run could not start; the next firing retries");
                RunSummary {
                    outcome: Outcome::Failed,
                    rows_written: 0,
                }
            }
        }
    }
}

/// What one run of a job came to, as far as the scheduler and the metrics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub outcome: Outcome,
    pub rows_written: u64,
}

/// Performs one run of a job: `export::run_job` in the daemon, a fake in the scheduler's unit
/// tests (the seam that lets them drive overlaps and shutdowns without a database).
pub trait Runner: Send + Sync + 'static {
    /// Runs `job` once. Dropping the future abandons the run (the shutdown's last resort).
    fn run(&self, job: &str) -> impl Future<Output = RunSummary> + Send;
}

/// Why a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The job's cron fired.
    Schedule,
    /// `run_on_start = true`.
    Start,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::Schedule => "schedule",
            Cause::Start => "start",
        }
    }
}

/// The stop signal the job tasks watch: `None` while running, then the instant by which running
/// runs must have finished.
type StopSignal = watch::Receiver<Option<Instant>>;

/// The run a job task is waiting for.
struct InFlight {
    handle: JoinHandle<()>,
    started: Instant,
}

/// Schedules one job until `stop` says so; then waits for its running run until the deadline and
/// abandons it after. Returns true when a run was abandoned (its rows may be left `running`).
async fn job_loop<R: Runner>(
    job: Job,
    runner: Arc<R>,
    metrics: Arc<Metrics>,
    mut stop: StopSignal,
) -> bool {
    let mut ticker = Ticker::new(job.schedule.clone(), job.timezone);
    let mut current: Option<InFlight> = None;
    if job.run_on_start {
        current = Some(start_run(&job, &runner, &metrics, Cause::Start, Utc::now()));
    }
    loop {
        let fire = tokio::select! {
            fire = ticker.tick() => fire,
            // Err: the daemon dropped the sender, which also means stop.
            _ = stop.wait_for(Option::is_some) => break,
        };
        let Some(at) = fire else {
            info!(job = %job.name, schedule = job.schedule.source(), "the schedule fires no more; the job is idle");
            let _ = stop.wait_for(Option::is_some).await;
            break;
        };
        if current.as_ref().is_some_and(|c| !c.handle.is_finished()) {
            metrics.overlap_skipped(&job.name);
            info!(
                job = %job.name,
                fire_time = %at,
                "firing skipped: the previous run of this job is still running"
            );
        } else {
            current = Some(start_run(&job, &runner, &metrics, Cause::Schedule, at));
        }
    }
    let Some(InFlight {
        mut handle,
        started,
    }) = current.filter(|c| !c.handle.is_finished())
    else {
        return false;
    };
    let deadline = (*stop.borrow()).unwrap_or_else(Instant::now);
    info!(job = %job.name, "waiting for the running run to finish");
    if tokio::time::timeout_at(deadline, &mut handle).await.is_ok() {
        return false;
    }
    handle.abort();
    let _ = handle.await;
    metrics.run_finished(&job.name, Outcome::Abandoned, 0, started.elapsed());
    warn!(
        job = %job.name,
        "the run did not finish within the shutdown grace period; its window in progress was rolled back"
    );
    true
}

/// Spawns one run of `job` in its own span; the metrics are recorded when it ends.
fn start_run<R: Runner>(
    job: &Job,
    runner: &Arc<R>,
    metrics: &Arc<Metrics>,
    cause: Cause,
    fire_time: DateTime<Utc>,
) -> InFlight {
    let span = info_span!(
        "run",
        job = %job.name,
        cause = cause.as_str(),
        fire_time = %fire_time.format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let name = job.name.clone();
    let runner = Arc::clone(runner);
    let metrics = Arc::clone(metrics);
    let started = Instant::now();
    let handle = tokio::spawn(
        async move {
            let summary = runner.run(&name).await;
            if summary.outcome == Outcome::Skipped {
                // Another process held the job's lock: the same overlap, seen across replicas.
                metrics.overlap_skipped(&name);
            }
            metrics.run_finished(
                &name,
                summary.outcome,
                summary.rows_written,
                started.elapsed(),
            );
        }
        .instrument(span),
    );
    InFlight { handle, started }
}

/// The job tasks of a running scheduler: one per job, each firing its job on its schedule.
pub struct Scheduler {
    stop: watch::Sender<Option<Instant>>,
    tasks: Vec<(String, JoinHandle<bool>)>,
}

impl Scheduler {
    /// Starts one task per job; each runs its job through `runner` and records into `metrics`.
    pub fn start<R: Runner>(jobs: &[Job], runner: Arc<R>, metrics: Arc<Metrics>) -> Scheduler {
        let (stop, stop_rx) = watch::channel(None);
        let tasks = jobs
            .iter()
            .map(|job| {
                let task = tokio::spawn(job_loop(
                    job.clone(),
                    Arc::clone(&runner),
                    Arc::clone(&metrics),
                    stop_rx.clone(),
                ));
                (job.name.clone(), task)
            })
            .collect();
        Scheduler { stop, tasks }
    }

    /// Stops firing, waits up to `grace` for running runs, abandons the rest. Returns the jobs
    /// whose run was abandoned.
    pub async fn stop(self, grace: Duration) -> Vec<String> {
        let _ = self.stop.send(Some(Instant::now() + grace));
        let mut abandoned = Vec::new();
        for (job, task) in self.tasks {
            match task.await {
                Ok(false) => {}
                Ok(true) => abandoned.push(job),
                Err(e) => {
                    // A panicking job task must not keep the others from stopping.
                    warn!(job = %job, error = %e, "the job's scheduler task ended abnormally");
                    abandoned.push(job);
                }
            }
        }
        abandoned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::sync::Semaphore;

    /// A runner whose runs wait until the test hands out a permit, and that records what ran.
    struct Gate {
        permits: Arc<Semaphore>,
        started: AtomicUsize,
        finished: AtomicUsize,
        running: AtomicBool,
        overlapped: AtomicBool,
        dropped_unfinished: AtomicUsize,
        jobs: Mutex<Vec<String>>,
    }

    impl Default for Gate {
        fn default() -> Gate {
            Gate {
                permits: Arc::new(Semaphore::new(0)),
                started: AtomicUsize::new(0),
                finished: AtomicUsize::new(0),
                running: AtomicBool::new(false),
                overlapped: AtomicBool::new(false),
                dropped_unfinished: AtomicUsize::new(0),
                jobs: Mutex::new(Vec::new()),
            }
        }
    }

    struct Unfinished<'a>(&'a Gate, bool);
    impl Drop for Unfinished<'_> {
        fn drop(&mut self) {
            if !self.1 {
                self.0.dropped_unfinished.fetch_add(1, Ordering::SeqCst);
                self.0.running.store(false, Ordering::SeqCst);
            }
        }
    }

    impl Runner for Gate {
        async fn run(&self, job: &str) -> RunSummary {
            if self.running.swap(true, Ordering::SeqCst) {
                self.overlapped.store(true, Ordering::SeqCst);
            }
            self.jobs.lock().unwrap().push(job.to_owned());
            self.started.fetch_add(1, Ordering::SeqCst);
            let mut guard = Unfinished(self, false);
            let permit = self.permits.acquire().await;
            permit.unwrap().forget();
            guard.1 = true;
            self.running.store(false, Ordering::SeqCst);
            self.finished.fetch_add(1, Ordering::SeqCst);
            RunSummary {
                outcome: Outcome::Succeeded,
                rows_written: 3,
            }
        }
    }

    fn job(schedule: &str, run_on_start: bool) -> Job {
        let text = format!(
            "[[jobs]]\nname = \"j\"\nschedule = \"{schedule}\"\naccounts = [\"1\"]\nreport = \"campaigns\"\nmetrics = [\"impressions\"]\nrun_on_start = {run_on_start}\n"
        );
        let config = crate::config::Config::from_toml(
            std::path::Path::new("jobs.toml"),
            &text,
            &crate::config::Env::default(),
        )
        .unwrap();
        config.jobs[0].clone()
    }

    /// Waits (bounded) until `cond` holds.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        for _ in 0..200 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting until {what}");
    }

    fn metric(metrics: &Metrics, line_start: &str) -> u64 {
        metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {line_start}"))
    }

    #[tokio::test]
    async fn firings_while_a_run_is_running_are_skipped_and_counted() {
        let gate = Arc::new(Gate::default());
        let metrics = Arc::new(Metrics::new(["j"]));
        let scheduler = Scheduler::start(
            &[job("* * * * * *", false)],
            Arc::clone(&gate),
            Arc::clone(&metrics),
        );
        until("a run started", || gate.started.load(Ordering::SeqCst) == 1).await;
        until("two firings were skipped", || {
            metric(&metrics, "rokt_export_skipped_overlaps_total{job=\"j\"} ") >= 2
        })
        .await;
        assert_eq!(gate.started.load(Ordering::SeqCst), 1);
        gate.permits.add_permits(1000);
        until("a second run started", || {
            gate.started.load(Ordering::SeqCst) >= 2
        })
        .await;
        let abandoned = scheduler.stop(Duration::from_secs(30)).await;
        assert!(abandoned.is_empty());
        assert!(!gate.overlapped.load(Ordering::SeqCst));
        assert_eq!(
            gate.started.load(Ordering::SeqCst),
            gate.finished.load(Ordering::SeqCst)
        );
        assert!(
            metric(
                &metrics,
                "rokt_export_runs_total{job=\"j\",outcome=\"succeeded\"} "
            ) >= 2
        );
    }

    #[tokio::test]
    async fn stopping_waits_for_the_running_run_within_the_grace_period() {
        let gate = Arc::new(Gate::default());
        let metrics = Arc::new(Metrics::new(["j"]));
        // A yearly schedule: only run_on_start fires during the test.
        let scheduler = Scheduler::start(
            &[job("0 0 1 1 *", true)],
            Arc::clone(&gate),
            Arc::clone(&metrics),
        );
        until("the start run began", || {
            gate.started.load(Ordering::SeqCst) == 1
        })
        .await;
        let permits = Arc::clone(&gate.permits);
        let stopping = tokio::spawn(scheduler.stop(Duration::from_secs(60)));
        // The scheduler is stopping and waits for the blocked run, however long we look.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!stopping.is_finished(), "stop did not wait for the run");
        assert_eq!(gate.dropped_unfinished.load(Ordering::SeqCst), 0);
        permits.add_permits(1);
        let abandoned = stopping.await.unwrap();
        assert!(abandoned.is_empty());
        assert_eq!(gate.finished.load(Ordering::SeqCst), 1);
        assert_eq!(gate.dropped_unfinished.load(Ordering::SeqCst), 0);
        assert_eq!(*gate.jobs.lock().unwrap(), ["j"]);
        assert_eq!(
            metric(
                &metrics,
                "rokt_export_runs_total{job=\"j\",outcome=\"succeeded\"} "
            ),
            1
        );
        assert_eq!(
            metric(&metrics, "rokt_export_rows_written_total{job=\"j\"} "),
            3
        );
    }

    #[tokio::test]
    async fn a_run_that_outlasts_the_grace_period_is_abandoned() {
        let gate = Arc::new(Gate::default());
        let metrics = Arc::new(Metrics::new(["j"]));
        let scheduler = Scheduler::start(
            &[job("0 0 1 1 *", true)],
            Arc::clone(&gate),
            Arc::clone(&metrics),
        );
        until("the start run began", || {
            gate.started.load(Ordering::SeqCst) == 1
        })
        .await;
        let abandoned = scheduler.stop(Duration::from_millis(100)).await;
        assert_eq!(abandoned, ["j"]);
        assert_eq!(gate.finished.load(Ordering::SeqCst), 0);
        assert_eq!(gate.dropped_unfinished.load(Ordering::SeqCst), 1);
        assert_eq!(
            metric(
                &metrics,
                "rokt_export_runs_total{job=\"j\",outcome=\"abandoned\"} "
            ),
            1
        );
    }

    #[tokio::test]
    async fn stopping_an_idle_scheduler_abandons_nothing() {
        let gate = Arc::new(Gate::default());
        let metrics = Arc::new(Metrics::new(["j"]));
        let scheduler = Scheduler::start(
            &[job("0 0 1 1 *", false)],
            Arc::clone(&gate),
            Arc::clone(&metrics),
        );
        assert!(scheduler.stop(Duration::ZERO).await.is_empty());
        assert_eq!(gate.started.load(Ordering::SeqCst), 0);
    }
}

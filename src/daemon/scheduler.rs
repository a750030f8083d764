//! The scheduler: one tokio task per job owns that job's [`Ticker`] and its one in-flight run. A
//! firing while the run is still going is skipped and counted
//! (`rokt_export_skipped_overlaps_total`). On stop, the job tasks stop firing and give their
//! running run the grace period; what is still running then is dropped (its window's transaction
//! rolls back) and reported as abandoned.
//!
//! A job's runs go through the [`Runner`] trait: the export in production, a fake in the unit tests
//! below, which drive overlaps and shutdowns without a database.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument as _, error, info, info_span, warn};

use crate::config::Job;
use crate::metrics::{Metrics, RunCounts, RunOutcome};
use crate::schedule::Ticker;
use crate::server::Health;

/// What one run of a job came to, as far as the scheduler and the metrics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub outcome: RunOutcome,
    pub counts: RunCounts,
}

/// Performs one run of a job: `export::run_job` in the daemon, a fake in the scheduler's unit
/// tests (the seam that lets them drive overlaps, panics and shutdowns without a database).
pub trait Runner: Send + Sync + 'static {
    /// Runs `job` once. Dropping the future abandons the run (the shutdown's last resort).
    fn run(&self, job: &str) -> impl Future<Output = RunSummary> + Send;

    /// Called after a run of `job` panicked (`panic` is its message), once the run's future is
    /// gone: closes what the run left open (its `export_runs` rows, in the daemon).
    fn panicked(&self, job: &str, panic: &str) -> impl Future<Output = ()> + Send {
        let _ = (job, panic);
        async {}
    }
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
    health: Arc<Health>,
    mut stop: StopSignal,
) -> bool {
    let mut ticker = Ticker::new(job.schedule.clone(), job.cron_zone());
    let mut current: Option<InFlight> = None;
    if job.run_on_start {
        current = Some(start_run(
            &job,
            &runner,
            &metrics,
            &health,
            Cause::Start,
            Utc::now(),
        ));
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
            current = Some(start_run(
                &job,
                &runner,
                &metrics,
                &health,
                Cause::Schedule,
                at,
            ));
        }
    }
    let Some(InFlight {
        mut handle,
        started,
    }) = current.filter(|c| !c.handle.is_finished())
    else {
        return false;
    };
    info!(job = %job.name, "waiting for the running run to finish");
    loop {
        // The deadline may be brought forward (a second stop signal): look again when it changes.
        let deadline = (*stop.borrow_and_update()).unwrap_or_else(Instant::now);
        tokio::select! {
            _ = &mut handle => return false,
            () = tokio::time::sleep_until(deadline) => break,
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    handle.abort();
    let _ = handle.await;
    metrics.run_finished(
        &job.name,
        RunOutcome::Abandoned,
        RunCounts::default(),
        started.elapsed(),
    );
    warn!(
        job = %job.name,
        "the run did not finish within the shutdown grace period; its window in progress was rolled back"
    );
    true
}

/// Spawns one run of `job` in its own span; the metrics are recorded when it ends.
///
/// A run that panics (a bug) is caught here: logged at ERROR with the panic's message, handed to
/// [`Runner::panicked`] (which marks its `export_runs` rows failed), counted as `failed`, and
/// `health` reports the job as not ready until one of its runs ends without a panic.
fn start_run<R: Runner>(
    job: &Job,
    runner: &Arc<R>,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
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
    let health = Arc::clone(health);
    let started = Instant::now();
    let handle = tokio::spawn(
        async move {
            let run = std::panic::AssertUnwindSafe(runner.run(&name)).catch_unwind();
            let summary = match run.await {
                Ok(summary) => {
                    health.run_ended(&name, false);
                    summary
                }
                Err(panic) => {
                    let message = panic_message(panic.as_ref());
                    error!(
                        panic = %message,
                        "the run panicked (a bug: please report it); it is recorded as failed and \
                         /readyz reports the job until one of its runs ends without a panic"
                    );
                    runner.panicked(&name, &message).await;
                    health.run_ended(&name, true);
                    RunSummary {
                        outcome: RunOutcome::Failed,
                        counts: RunCounts::default(),
                    }
                }
            };
            if summary.outcome == RunOutcome::Skipped {
                // Another process held the job's lock: the same overlap, seen across replicas.
                metrics.overlap_skipped(&name);
            }
            metrics.run_finished(&name, summary.outcome, summary.counts, started.elapsed());
        }
        .instrument(span),
    );
    InFlight { handle, started }
}

/// The text of a panic's payload (what `panic!` was given), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

/// The job tasks of a running scheduler: one per job, each firing its job on its schedule.
pub struct Scheduler {
    stop: watch::Sender<Option<Instant>>,
    tasks: Vec<(String, JoinHandle<bool>)>,
}

impl Scheduler {
    /// Starts one task per job; each runs its job through `runner`, records into `metrics` and
    /// tells `health` about runs that panicked.
    pub fn start<R: Runner>(
        jobs: &[Job],
        runner: Arc<R>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Scheduler {
        let (stop, stop_rx) = watch::channel(None);
        let tasks = jobs
            .iter()
            .map(|job| {
                let task = tokio::spawn(job_loop(
                    job.clone(),
                    Arc::clone(&runner),
                    Arc::clone(&metrics),
                    Arc::clone(&health),
                    stop_rx.clone(),
                ));
                (job.name.clone(), task)
            })
            .collect();
        Scheduler { stop, tasks }
    }

    /// Stops firing, waits up to `grace` for running runs, abandons the rest. Returns the jobs
    /// whose run was abandoned.
    #[cfg(test)]
    pub async fn stop(self, grace: Duration) -> Vec<String> {
        self.stop_or_hurry(grace, std::future::pending()).await
    }

    /// [`Scheduler::stop`], cut short when `hurry` completes (a second stop signal): what is still
    /// running then is abandoned at once.
    pub async fn stop_or_hurry(
        self,
        grace: Duration,
        hurry: impl Future<Output = ()>,
    ) -> Vec<String> {
        let _ = self.stop.send(Some(Instant::now() + grace));
        let stop = self.stop;
        let hurried = async move {
            hurry.await;
            let _ = stop.send(Some(Instant::now()));
            // Keeps the sender alive: a dropped one would also end the waits.
            std::future::pending::<()>().await;
        };
        tokio::pin!(hurried);
        let mut abandoned = Vec::new();
        for (job, mut task) in self.tasks {
            let joined = tokio::select! {
                joined = &mut task => joined,
                () = &mut hurried => continue, // never completes
            };
            match joined {
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
                outcome: RunOutcome::Succeeded,
                counts: RunCounts {
                    rows_written: 3,
                    ..RunCounts::default()
                },
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
            Arc::new(Health::new()),
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
            Arc::new(Health::new()),
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
            Arc::new(Health::new()),
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

    /// A runner whose first run panics (as a bug would) and whose later runs succeed.
    #[derive(Default)]
    struct PanicsOnce {
        runs: AtomicUsize,
        told: Mutex<Vec<(String, String)>>,
    }

    impl Runner for PanicsOnce {
        async fn run(&self, _job: &str) -> RunSummary {
            if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("token lifetime overflow");
            }
            RunSummary {
                outcome: RunOutcome::Succeeded,
                counts: RunCounts {
                    rows_written: 1,
                    ..RunCounts::default()
                },
            }
        }

        async fn panicked(&self, job: &str, panic: &str) {
            self.told
                .lock()
                .unwrap()
                .push((job.to_owned(), panic.to_owned()));
        }
    }

    #[tokio::test]
    async fn a_panicking_run_is_counted_failed_closed_and_makes_the_job_unready() {
        let runner = Arc::new(PanicsOnce::default());
        let metrics = Arc::new(Metrics::new(["j"]));
        let health = Arc::new(Health::new());
        health.set_database(true);
        health.set_scheduler_running(true);
        // Every second: the start run panics, the next firing's run succeeds.
        let scheduler = Scheduler::start(
            &[job("* * * * * *", true)],
            Arc::clone(&runner),
            Arc::clone(&metrics),
            Arc::clone(&health),
        );
        until("the panicking run was counted", || {
            metric(
                &metrics,
                "rokt_export_runs_total{job=\"j\",outcome=\"failed\"} ",
            ) == 1
        })
        .await;
        assert_eq!(
            *runner.told.lock().unwrap(),
            [("j".to_owned(), "token lifetime overflow".to_owned())],
            "the runner was told, to close the run's records"
        );
        let not_ready = health.readiness().unwrap_err();
        assert!(
            not_ready.contains("job j") && not_ready.contains("panicked"),
            "{not_ready}"
        );
        // The job task survived the panic: the next firing runs, and readiness comes back.
        until("a later run succeeded", || {
            metric(
                &metrics,
                "rokt_export_runs_total{job=\"j\",outcome=\"succeeded\"} ",
            ) >= 1
        })
        .await;
        assert_eq!(health.readiness(), Ok(()));
        assert!(scheduler.stop(Duration::from_secs(5)).await.is_empty());
    }

    #[tokio::test]
    async fn a_second_stop_signal_cuts_the_grace_period_short() {
        let gate = Arc::new(Gate::default());
        let metrics = Arc::new(Metrics::new(["j"]));
        let scheduler = Scheduler::start(
            &[job("0 0 1 1 *", true)],
            Arc::clone(&gate),
            Arc::clone(&metrics),
            Arc::new(Health::new()),
        );
        until("the start run began", || {
            gate.started.load(Ordering::SeqCst) == 1
        })
        .await;
        let (hurry, hurried) = tokio::sync::oneshot::channel::<()>();
        // An hour of grace: only the second signal can end this stop in time.
        let stopping = tokio::spawn(scheduler.stop_or_hurry(Duration::from_secs(3600), async {
            let _ = hurried.await;
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!stopping.is_finished(), "stop did not wait for the run");
        hurry.send(()).unwrap();
        let abandoned = tokio::time::timeout(Duration::from_secs(30), stopping)
            .await
            .expect("the second signal ended the wait")
            .unwrap();
        assert_eq!(abandoned, ["j"]);
        assert_eq!(gate.dropped_unfinished.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stopping_an_idle_scheduler_abandons_nothing() {
        let gate = Arc::new(Gate::default());
        let metrics = Arc::new(Metrics::new(["j"]));
        let scheduler = Scheduler::start(
            &[job("0 0 1 1 *", false)],
            Arc::clone(&gate),
            Arc::clone(&metrics),
            Arc::new(Health::new()),
        );
        assert!(scheduler.stop(Duration::ZERO).await.is_empty());
        assert_eq!(gate.started.load(Ordering::SeqCst), 0);
    }
}

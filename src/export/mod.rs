//! One run of one job: which days, cut into windows, fetched from the API and loaded into the job's
//! table, one transaction per window.
//!
//! [`run_job`] is the single entry point: `--run-now`, the scheduler, `demo` and the tests all call
//! it. A window commits its rows, its `export_runs` row and the job's high-water mark together, so
//! a crash leaves either the whole window or none of it.
//!
//! Layout: [`plan`] is the date arithmetic, [`query`] and [`generic`] read the two kinds of answer
//! into typed columns (sharing [`rows`]), `window` runs one account's windows, and this file holds
//! the types a caller sees and the run itself (lock, accounts, plan).

pub(crate) mod accounts;
pub(crate) mod generic;
pub mod plan;
pub mod query;
pub(crate) mod rows;
mod window;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{NaiveDate, Utc};
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::api::{ApiClient, ApiError};
use crate::config::{Config, Job, JobKind, UnknownJob};
use crate::store::{NewRun, Store, StoreError, Trigger};
pub use plan::Window;

/// Everything a run needs, shared by all runs of a process.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub api: ApiClient,
    pub store: Store,
    shared: Arc<Shared>,
}

/// What the runs of a process learn and share.
#[derive(Debug, Default)]
struct Shared {
    /// The accounts the credentials read, with their own zones and currencies.
    accounts: accounts::Directory,
    /// Set once the API refused an `endDate` in the future: windows then end today (exclusive),
    /// so yesterday is their last day.
    end_today: AtomicBool,
}

impl Context {
    pub fn new(config: Arc<Config>, api: ApiClient, store: Store) -> Context {
        Context {
            config,
            api,
            store,
            shared: Arc::default(),
        }
    }
}

/// Which days to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayRange {
    /// `[min(high_water + 1, today - lookback_days), today]` in the job's time zone.
    Incremental,
    /// Explicit inclusive days (`--from`/`--to`); a missing end means today, a missing start means
    /// the incremental start.
    Explicit {
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub job: String,
    pub range: DayRange,
    /// Only these accounts (`--account`); empty means the job's own.
    pub accounts: Vec<String>,
    pub trigger: Trigger,
    /// Cancelled when the process is stopping: no further window starts (the ones in flight
    /// still finish; the rest are `NotAttempted` and the next run resumes there).
    pub stop: CancellationToken,
    /// Replaces each account's rows and state (`--reload`), so that a run whose zone or currency
    /// differs from what the table holds starts again from nothing. The deletions commit with the
    /// account's first window (counted in its `rows_deleted`): a run that loads nothing for an
    /// account leaves its rows and state as they were.
    pub reload: bool,
    /// An answer without any row empties days that hold rows (`--allow-empty`); otherwise such an
    /// answer is taken for a hiccup and the rows are kept.
    pub allow_empty: bool,
}

impl RunRequest {
    /// A run of `job` over its incremental range, for every account of the job, that nothing stops.
    pub fn new(job: impl Into<String>, trigger: Trigger) -> RunRequest {
        RunRequest {
            job: job.into(),
            range: DayRange::Incremental,
            accounts: Vec::new(),
            trigger,
            stop: CancellationToken::new(),
            reload: false,
            allow_empty: false,
        }
    }
}

/// What kind of failure a window (or a run that could not start) met: what the operator has to do
/// about it decides the exit code of a one-shot command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The configuration or the credentials are wrong: nothing succeeds until they are fixed.
    Config,
    /// The API or the database stayed unreachable after retries.
    Unavailable,
    /// Anything else (an answer that cannot be loaded, a refused request).
    Other,
}

impl FailureKind {
    /// How the API's error classifies.
    pub fn of_api(e: &ApiError) -> FailureKind {
        if e.is_config() {
            FailureKind::Config
        } else if e.is_unavailable() {
            FailureKind::Unavailable
        } else {
            FailureKind::Other
        }
    }

    /// The one of `kinds` an operator should hear about first: a configuration problem before an
    /// unavailable service before anything else; `None` when there is none.
    pub fn most_actionable(kinds: impl IntoIterator<Item = FailureKind>) -> Option<FailureKind> {
        let kinds: Vec<FailureKind> = kinds.into_iter().collect();
        [
            FailureKind::Config,
            FailureKind::Unavailable,
            FailureKind::Other,
        ]
        .into_iter()
        .find(|k| kinds.contains(k))
    }

    /// How the store's error classifies.
    pub fn of_store(e: &StoreError) -> FailureKind {
        if e.is_unavailable() {
            FailureKind::Unavailable
        } else {
            FailureKind::Other
        }
    }
}

/// The outcome of one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowOutcome {
    Succeeded {
        rows_received: u64,
        rows_written: u64,
        /// Rows of the window's days that the answer no longer had.
        rows_deleted: u64,
        /// Rows kept because the answer had none at all for days that hold them.
        kept_on_empty: u64,
        /// Rows of the answer that were empty (`{}` or `[]`), skipped.
        rows_skipped_empty: u64,
        /// Rows of the answer that lacked a dimension (kept).
        rows_missing_dimension: u64,
        /// What the run noticed about the answer (rows skipped, an empty answer whose rows were
        /// kept), also in the run record.
        warnings: Vec<String>,
    },
    Failed {
        error: String,
        kind: FailureKind,
    },
    /// Not attempted because an earlier window of the same account failed or the process is
    /// stopping; the next run resumes there.
    NotAttempted,
}

/// One window of one account.
#[derive(Debug, Clone)]
pub struct WindowResult {
    pub account_id: String,
    pub window: Window,
    pub api_requests: u32,
    pub outcome: WindowOutcome,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub job: String,
    pub table: String,
    /// Set when another process (or run) held the job's lock, so this run did nothing.
    pub skipped: Option<String>,
    pub windows: Vec<WindowResult>,
}

impl RunResult {
    /// True when the run was not skipped and every window succeeded.
    pub fn succeeded(&self) -> bool {
        self.skipped.is_none()
            && self
                .windows
                .iter()
                .all(|w| matches!(w.outcome, WindowOutcome::Succeeded { .. }))
    }

    /// The most actionable failure among the windows: a configuration problem before an
    /// unavailable service before anything else; `None` when no window failed.
    pub fn worst_failure(&self) -> Option<FailureKind> {
        FailureKind::most_actionable(self.windows.iter().filter_map(|w| match w.outcome {
            WindowOutcome::Failed { kind, .. } => Some(kind),
            _ => None,
        }))
    }

    pub fn rows_written(&self) -> u64 {
        self.windows
            .iter()
            .map(|w| match w.outcome {
                WindowOutcome::Succeeded { rows_written, .. } => rows_written,
                _ => 0,
            })
            .sum()
    }

    pub fn rows_deleted(&self) -> u64 {
        self.windows
            .iter()
            .map(|w| match w.outcome {
                WindowOutcome::Succeeded { rows_deleted, .. } => rows_deleted,
                _ => 0,
            })
            .sum()
    }

    /// Rows skipped because they were empty (`{}` or `[]`).
    pub fn rows_skipped_empty(&self) -> u64 {
        self.windows
            .iter()
            .map(|w| match w.outcome {
                WindowOutcome::Succeeded {
                    rows_skipped_empty, ..
                } => rows_skipped_empty,
                _ => 0,
            })
            .sum()
    }

    /// Rows kept although they lacked a dimension.
    pub fn rows_missing_dimension(&self) -> u64 {
        self.windows
            .iter()
            .map(|w| match w.outcome {
                WindowOutcome::Succeeded {
                    rows_missing_dimension,
                    ..
                } => rows_missing_dimension,
                _ => 0,
            })
            .sum()
    }

    /// Windows whose answer had no rows for days that hold rows (kept).
    pub fn empty_answers(&self) -> u64 {
        self.windows
            .iter()
            .filter(|w| {
                matches!(w.outcome, WindowOutcome::Succeeded { kept_on_empty, .. } if kept_on_empty > 0)
            })
            .count() as u64
    }

    /// Every warning of every window, with the account and window it is about.
    pub fn warnings(&self) -> Vec<String> {
        self.windows
            .iter()
            .flat_map(|w| match &w.outcome {
                WindowOutcome::Succeeded { warnings, .. } => warnings
                    .iter()
                    .map(|text| format!("account {} {}: {text}", w.account_id, w.window))
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    pub fn rows_received(&self) -> u64 {
        self.windows
            .iter()
            .map(|w| match w.outcome {
                WindowOutcome::Succeeded { rows_received, .. } => rows_received,
                _ => 0,
            })
            .sum()
    }
}

/// Why a run could not start at all (a window's failure is a [`WindowOutcome`] instead).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    UnknownJob(#[from] UnknownJob),
    #[error(
        "account {account} is not one of job \"{job}\"'s accounts ({listed}); add it to the job's `accounts` first"
    )]
    UnknownAccount {
        job: String,
        account: String,
        listed: String,
    },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RunError {
    /// What kind of failure this is (see [`FailureKind`]).
    pub fn kind(&self) -> FailureKind {
        match self {
            RunError::UnknownJob(_) | RunError::UnknownAccount { .. } => FailureKind::Config,
            RunError::Api(e) => FailureKind::of_api(e),
            RunError::Store(e) => FailureKind::of_store(e),
        }
    }
}

/// Something that wants to hear about progress (the terminal display of `--run-now`).
pub trait Progress: Send + Sync {
    /// Called once the windows are planned: each account with its number of windows, in the
    /// order the accounts run (an account the run cannot read counts one window, which fails).
    fn planned(&self, _job: &str, _accounts: &[(&str, usize)]) {}
    /// Called after each window, whatever its outcome.
    fn window_done(&self, _result: &WindowResult) {}
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Performs one run of one job and reports what happened to each window.
pub async fn run_job(
    ctx: &Context,
    request: &RunRequest,
    progress: &dyn Progress,
) -> Result<RunResult, RunError> {
    let job = ctx.config.job(&request.job)?;
    let Some(lock) = ctx.store.try_lock_job(&job.name).await? else {
        let today = plan::today_in(job.cron_zone(), Utc::now());
        let reason =
            "another run of this job holds its lock (a replica, the daemon or a --run-now)";
        let run = NewRun {
            job: job.name.clone(),
            account_id: "*".into(),
            window_start: today,
            window_end: today,
            trigger: request.trigger,
        };
        ctx.store.record_skipped(&run, reason).await?;
        info!(job = %job.name, "skipped: {reason}");
        return Ok(RunResult {
            job: job.name.clone(),
            table: job.table.clone(),
            skipped: Some(reason.into()),
            windows: Vec::new(),
        });
    };
    let result = run_locked(ctx, job, request, progress).await;
    lock.release().await;
    result
}

async fn run_locked(
    ctx: &Context,
    job: &Job,
    request: &RunRequest,
    progress: &dyn Progress,
) -> Result<RunResult, RunError> {
    let targets = accounts::targets(ctx, job, &request.accounts).await?;
    if let JobKind::Query(q) = &job.kind {
        ensure_table(&ctx.store, &query::table_spec(&job.table, q)).await?;
    }

    // Plan every account's windows first, so progress can show a total.
    let now = Utc::now();
    let mut plans = Vec::with_capacity(targets.len());
    let mut refused = Vec::new();
    for (account, target) in targets {
        let target = match target {
            Ok(t) => t,
            Err(message) => {
                refused.push(refusal(
                    account,
                    plan::today_in(job.cron_zone(), now),
                    message,
                ));
                continue;
            }
        };
        let state = ctx.store.account_state(&job.name, &target.id).await?;
        let today = plan::today_in(target.zone, now);
        if !request.reload
            && let Err(message) = accounts::check_units(ctx, job, &target, &state).await?
        {
            refused.push(refusal(account, today, message));
            continue;
        }
        // A reload plans as if nothing were loaded: its first window resets the state.
        let high_water = state.high_water.filter(|_| !request.reload);
        let range = match request.range {
            DayRange::Incremental => {
                plan::scheduled_range(today, high_water, job.lookback_days, job.start_date)
            }
            DayRange::Explicit { from, to } => {
                let last = to.unwrap_or(today);
                let start = match from {
                    Some(f) => Some(f),
                    None => {
                        plan::scheduled_range(last, high_water, job.lookback_days, job.start_date)
                            .map(|w| w.start)
                    }
                };
                start
                    .filter(|s| *s <= last)
                    .map(|start| Window { start, last })
            }
        };
        let windows = range
            .map(|r| plan::split(r, job.window_days))
            .unwrap_or_default();
        plans.push(window::AccountPlan {
            target,
            today,
            high_water,
            windows,
        });
    }
    let planned: Vec<(&str, usize)> = refused
        .iter()
        .map(|r| (r.account_id.as_str(), 1))
        .chain(
            plans
                .iter()
                .map(|p| (p.target.id.as_str(), p.windows.len())),
        )
        .collect();
    progress.planned(&job.name, &planned);
    for r in &refused {
        progress.window_done(r);
    }

    // Accounts run side by side; the API client's semaphore caps requests across all of them.
    // They are futures of this one task, not tasks of their own: tasks spread windows over every
    // worker thread's malloc arena and cost more memory than they save time (docs/performance.md).
    let concurrency = ctx.config.api.max_concurrent_requests.max(1);
    let scope = window::Scope {
        ctx,
        job,
        trigger: request.trigger,
        progress,
        stop: &request.stop,
        allow_empty: request.allow_empty,
        reload: request.reload,
        abort: AtomicBool::new(false),
    };
    let results: Vec<Vec<WindowResult>> = futures_util::stream::iter(plans)
        .map(|plan| window::run_account(&scope, plan))
        .buffered(concurrency)
        .collect()
        .await;
    let mut windows = refused;
    windows.extend(results.into_iter().flatten());
    Ok(RunResult {
        job: job.name.clone(),
        table: job.table.clone(),
        skipped: None,
        windows,
    })
}

/// Creates or widens a job's table (see [`Store::ensure_table`]), waiting out another session's
/// lock on it for about half a minute: each attempt waits a few seconds (`lock_timeout`), then
/// backs off, so a query left open on the table delays the run instead of queueing every other
/// query behind it; after that the run fails, naming the session that holds the lock.
pub async fn ensure_table(
    store: &Store,
    spec: &crate::store::TableSpec,
) -> Result<crate::store::TableChanges, StoreError> {
    use crate::api::retry::{self, Backoff, Jitter, Policy, Verdict};
    let policy = Policy {
        backoff: Backoff {
            base: std::time::Duration::from_secs(1),
            cap: std::time::Duration::from_secs(8),
            jitter: Jitter::Equal,
            ..Backoff::default()
        },
        max_retries: Some(4),
    };
    retry::run(
        &policy,
        |_| store.ensure_table(spec),
        |e| {
            if e.is_lock_timeout() {
                Verdict::Retry
            } else {
                Verdict::Fail
            }
        },
        |r| {
            tracing::warn!(table = %spec.table, error = %r.error, attempt = r.attempt,
                "the table is locked by another session; trying again");
        },
    )
    .await
    .map_err(|gave_up| gave_up.error)
}

/// An account the run cannot read (its zone or currency unknown, or the table holds it in
/// others): one failed window, so the run's outcome and exit code say so.
fn refusal(account: String, today: NaiveDate, message: String) -> WindowResult {
    tracing::error!(account_id = %account, error = %message, "account not read");
    WindowResult {
        account_id: account,
        window: Window {
            start: today,
            last: today,
        },
        api_requests: 0,
        outcome: WindowOutcome::Failed {
            error: message,
            kind: FailureKind::Config,
        },
    }
}

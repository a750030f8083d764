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

pub mod generic;
pub mod plan;
pub mod query;
pub mod rows;
mod window;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{NaiveDate, Utc};
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::api::{ApiClient, ApiError};
use crate::config::{Accounts, Config, Job, JobKind};
use crate::store::{NewRun, Store, StoreError, Trigger};
pub use plan::Window;

/// Everything a run needs, shared by all runs of a process.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub api: ApiClient,
    pub store: Store,
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
        let kinds: Vec<FailureKind> = self
            .windows
            .iter()
            .filter_map(|w| match w.outcome {
                WindowOutcome::Failed { kind, .. } => Some(kind),
                _ => None,
            })
            .collect();
        [
            FailureKind::Config,
            FailureKind::Unavailable,
            FailureKind::Other,
        ]
        .into_iter()
        .find(|k| kinds.contains(k))
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
    #[error("no job named \"{name}\" in the config; jobs are: {known}")]
    UnknownJob { name: String, known: String },
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
            RunError::UnknownJob { .. } | RunError::UnknownAccount { .. } => FailureKind::Config,
            RunError::Api(e) => FailureKind::of_api(e),
            RunError::Store(e) => FailureKind::of_store(e),
        }
    }
}

/// Something that wants to hear about progress (the terminal display of `--run-now`).
pub trait Progress: Send + Sync {
    /// Called once the windows are planned.
    fn planned(&self, _job: &str, _windows: usize) {}
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
    let job = ctx
        .config
        .job(&request.job)
        .ok_or_else(|| RunError::UnknownJob {
            name: request.job.clone(),
            known: ctx
                .config
                .jobs
                .iter()
                .map(|j| j.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let today = plan::today_in(job.timezone, Utc::now());
    let Some(lock) = ctx.store.try_lock_job(&job.name).await? else {
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
    let result = run_locked(ctx, job, request, today, progress).await;
    lock.release().await;
    result
}

async fn run_locked(
    ctx: &Context,
    job: &Job,
    request: &RunRequest,
    today: NaiveDate,
    progress: &dyn Progress,
) -> Result<RunResult, RunError> {
    let accounts = accounts_for(ctx, job, &request.accounts).await?;
    if let JobKind::Query(q) = &job.kind {
        ctx.store
            .ensure_table(&query::table_spec(&job.table, q))
            .await?;
    }

    // Plan every account's windows first, so progress can show a total.
    let mut plans = Vec::with_capacity(accounts.len());
    for account in accounts {
        let high_water = ctx.store.high_water(&job.name, &account).await?;
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
        plans.push((account, high_water, windows));
    }
    progress.planned(&job.name, plans.iter().map(|p| p.2.len()).sum());

    // Accounts run side by side; the API client's semaphore caps requests across all of them.
    // They are futures of this one task, not tasks of their own: tasks spread windows over every
    // worker thread's malloc arena and cost more memory than they save time (docs/performance.md).
    let concurrency = ctx.config.api.max_concurrent_requests.max(1);
    let scope = window::Scope {
        ctx,
        job,
        trigger: request.trigger,
        today,
        progress,
        stop: &request.stop,
        abort: AtomicBool::new(false),
    };
    let results: Vec<Vec<WindowResult>> = futures_util::stream::iter(plans)
        .map(|(account, high_water, windows)| {
            window::run_account(&scope, account, high_water, windows)
        })
        .buffered(concurrency)
        .collect()
        .await;
    Ok(RunResult {
        job: job.name.clone(),
        table: job.table.clone(),
        skipped: None,
        windows: results.into_iter().flatten().collect(),
    })
}

/// The accounts a run reads: the job's list, or every account the credentials see, narrowed by
/// `--account`.
async fn accounts_for(ctx: &Context, job: &Job, only: &[String]) -> Result<Vec<String>, RunError> {
    let accounts = match &job.accounts {
        Accounts::List(ids) => {
            for a in only {
                if !ids.contains(a) {
                    return Err(RunError::UnknownAccount {
                        job: job.name.clone(),
                        account: a.clone(),
                        listed: ids.join(", "),
                    });
                }
            }
            ids.clone()
        }
        Accounts::All => {
            let all: Vec<String> = ctx
                .api
                .accounts()
                .await?
                .into_iter()
                .map(|a| a.account_id)
                .collect();
            for a in only {
                if !all.contains(a) {
                    return Err(RunError::UnknownAccount {
                        job: job.name.clone(),
                        account: a.clone(),
                        listed: all.join(", "),
                    });
                }
            }
            all
        }
    };
    Ok(if only.is_empty() {
        accounts
    } else {
        accounts.into_iter().filter(|a| only.contains(a)).collect()
    })
}

//! One run of one job: which days, cut into windows, fetched from the API and loaded into the job's
//! table, one transaction per window.
//!
//! [`run_job`] is the single entry point: `--run-now`, the scheduler, `demo` and the tests all call
//! it. A window commits its rows, its `export_runs` row and the job's high-water mark together, so
//! a crash leaves either the whole window or none of it.

mod json_row;
pub mod plan;
pub mod rows;
mod split;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use futures_util::StreamExt as _;
use tracing::{Instrument as _, info, info_span, warn};

use crate::api::{ApiClient, ApiError, Piece, ReportRequest};
use crate::config::template::Values;
use crate::config::{Accounts, Config, Job, JobKind};
use crate::store::{
    ColumnData, ColumnType, NewRun, StateUpdate, Store, StoreError, StoredRows, TableSpec, Trigger,
};
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
pub enum Range {
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
    pub range: Range,
    /// Only these accounts (`--account`); empty means the job's own.
    pub accounts: Vec<String>,
    pub trigger: Trigger,
}

/// The outcome of one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        rows_received: u64,
        rows_written: u64,
    },
    Failed {
        error: String,
        /// The exit code this failure calls for: 1 (the run failed), 69 (the API or database stayed
        /// unreachable) or 78 (the credentials or config are wrong).
        code: u8,
    },
    /// Not attempted because an earlier window of the same account failed; the next run resumes there.
    NotAttempted,
}

/// One window of one account.
#[derive(Debug, Clone)]
pub struct WindowReport {
    pub account_id: String,
    pub window: Window,
    pub api_requests: u32,
    pub outcome: Outcome,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub job: String,
    pub table: String,
    /// Set when another process (or run) held the job's lock, so this run did nothing.
    pub skipped: Option<String>,
    pub windows: Vec<WindowReport>,
}

impl RunReport {
    /// True when the run was not skipped and every window succeeded.
    pub fn succeeded(&self) -> bool {
        self.skipped.is_none()
            && self
                .windows
                .iter()
                .all(|w| matches!(w.outcome, Outcome::Succeeded { .. }))
    }

    /// The process exit code for this run: 0 when every window succeeded; otherwise the most
    /// actionable failure: 78 (credentials or config) before 69 (unavailable) before 1.
    pub fn exit_code(&self) -> u8 {
        if self.succeeded() {
            return crate::exit::SUCCESS;
        }
        let codes: Vec<u8> = self
            .windows
            .iter()
            .filter_map(|w| match w.outcome {
                Outcome::Failed { code, .. } => Some(code),
                _ => None,
            })
            .collect();
        [crate::exit::CONFIG, crate::exit::UNAVAILABLE]
            .into_iter()
            .find(|c| codes.contains(c))
            .unwrap_or(crate::exit::RUN_FAILED)
    }

    pub fn rows_written(&self) -> u64 {
        self.windows
            .iter()
            .map(|w| match w.outcome {
                Outcome::Succeeded { rows_written, .. } => rows_written,
                _ => 0,
            })
            .sum()
    }

    pub fn rows_received(&self) -> u64 {
        self.windows
            .iter()
            .map(|w| match w.outcome {
                Outcome::Succeeded { rows_received, .. } => rows_received,
                _ => 0,
            })
            .sum()
    }
}

/// Why a run could not start at all (a window's failure is an [`Outcome`] instead).
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
    /// The process exit code this error calls for (78 config or credentials, 69 unavailable, 1).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::UnknownJob { .. } | RunError::UnknownAccount { .. } => crate::exit::CONFIG,
            RunError::Api(e) => api_code(e),
            RunError::Store(e) if e.is_unavailable() => crate::exit::UNAVAILABLE,
            RunError::Store(_) => crate::exit::RUN_FAILED,
        }
    }
}

/// Something that wants to hear about progress (the terminal display of `--run-now`).
pub trait Progress: Send + Sync {
    /// Called once the windows are planned.
    fn planned(&self, _job: &str, _windows: usize) {}
    /// Called after each window, whatever its outcome.
    fn window_done(&self, _report: &WindowReport) {}
    /// Asked before a window is started; `false` (the daemon is stopping) starts no further
    /// window: the ones in flight still finish, the rest are `NotAttempted` and the next run
    /// resumes there.
    fn keep_going(&self) -> bool {
        true
    }
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Performs one run of one job and reports what happened to each window.
pub async fn run_job(
    ctx: &Context,
    request: &RunRequest,
    progress: &dyn Progress,
) -> Result<RunReport, RunError> {
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
        return Ok(RunReport {
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
) -> Result<RunReport, RunError> {
    let accounts = accounts_for(ctx, job, &request.accounts).await?;
    if let JobKind::Query(q) = &job.kind {
        let changes = ctx
            .store
            .ensure_table(&rows::query_table(&job.table, q))
            .await?;
        if !changes.added.is_empty() {
            info!(job = %job.name, table = %job.table, columns = ?changes.added, "added columns to the job's table");
        }
    }

    // Plan every account's windows first, so progress can show a total.
    let mut plans = Vec::with_capacity(accounts.len());
    for account in accounts {
        let high_water = ctx.store.high_water(&job.name, &account).await?;
        let range = match request.range {
            Range::Incremental => {
                plan::scheduled_range(today, high_water, job.lookback_days, job.start_date)
            }
            Range::Explicit { from, to } => {
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
    // They are futures of this one task, not tasks of their own: as tasks (one per account, or
    // the fetch beside the write) re-reads took 20-40% less time, but each worker thread's malloc
    // arena then held windows of its own and the year-long benchmark peaked at 60-74 MiB instead
    // of 53-55 (over the 64 MiB target). See README "Performance".
    let concurrency = ctx.config.api.max_concurrent_requests.max(1);
    let scope = Scope {
        ctx,
        job,
        trigger: request.trigger,
        today,
        progress,
        abort: AtomicBool::new(false),
    };
    let reports: Vec<Vec<WindowReport>> = futures_util::stream::iter(plans)
        .map(|(account, high_water, windows)| run_account(&scope, account, high_water, windows))
        .buffered(concurrency)
        .collect()
        .await;
    Ok(RunReport {
        job: job.name.clone(),
        table: job.table.clone(),
        skipped: None,
        windows: reports.into_iter().flatten().collect(),
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

/// What every account of one run shares.
struct Scope<'a> {
    ctx: &'a Context,
    job: &'a Job,
    trigger: Trigger,
    today: NaiveDate,
    progress: &'a dyn Progress,
    /// Set when a failure means no window can succeed (rejected credentials): the other accounts
    /// stop too instead of each asking the token endpoint again.
    abort: AtomicBool,
}

/// Runs one account's windows in order. The next window is fetched while the previous one is
/// written, so the API and the database work at the same time; at most two windows of an account
/// are in memory at once.
async fn run_account(
    scope: &Scope<'_>,
    account: String,
    mut high_water: Option<NaiveDate>,
    windows: Vec<Window>,
) -> Vec<WindowReport> {
    let mut out = Vec::with_capacity(windows.len());
    let mut prefetched: Option<Fetched> = None;
    let mut stop = false;
    // The columns of the window loaded last, for the window fetched next to fill (see
    // `rows::QueryStream::reusing`): two windows' columns go round instead of new ones each time.
    let mut spare: Option<crate::store::Batch> = None;
    for (i, window) in windows.iter().copied().enumerate() {
        let stopping = prefetched.is_none() && !scope.progress.keep_going();
        if stop || stopping || scope.abort.load(Ordering::Relaxed) {
            stop = true;
            let report = WindowReport {
                account_id: account.clone(),
                window,
                api_requests: 0,
                outcome: Outcome::NotAttempted,
            };
            scope.progress.window_done(&report);
            out.push(report);
            continue;
        }
        let current = match prefetched.take() {
            Some(f) => f,
            None => fetch(scope, &account, window, spare.take(), true).await,
        };
        let next_window = windows.get(i + 1).copied();
        let reuse = spare.take();
        // The next window's stored fingerprints may be read while this one commits only if
        // this one has no rows on the next one's days (a `datetime` that is not a midnight is
        // moved into the report's time zone, so a row can land a day later): else they could be
        // read before this commit changes them, and a changed row would be taken as unchanged.
        let read_ahead = next_window.is_some_and(|next| !reaches_into(&current, next));
        let (report, next) = tokio::join!(
            finish(scope, &account, current, &mut high_water, &mut spare),
            async {
                match next_window {
                    Some(w) if scope.progress.keep_going() => {
                        Some(fetch(scope, &account, w, reuse, read_ahead).await)
                    }
                    _ => None,
                }
            }
        );
        stop = !matches!(report.outcome, Outcome::Succeeded { .. });
        if matches!(
            report.outcome,
            Outcome::Failed {
                code: crate::exit::CONFIG,
                ..
            }
        ) {
            scope.abort.store(true, Ordering::Relaxed);
        }
        scope.progress.window_done(&report);
        out.push(report);
        if stop {
            // The window fetched ahead will not be loaded: close its run record.
            if let Some(Fetched {
                run_id: Some(run_id),
                api_requests,
                ..
            }) = next
            {
                let reason = "not loaded: an earlier window of this account failed; the next run resumes there";
                if let Err(e) = scope.ctx.store.fail_run(run_id, reason, api_requests).await {
                    warn!(error = %e, run_id, "could not close the run record of a window fetched ahead");
                }
            }
        } else {
            prefetched = next;
        }
    }
    out
}

/// A window fetched and parsed, or the reason it could not be.
struct Fetched {
    window: Window,
    /// The `export_runs` row, once recorded.
    run_id: Option<i64>,
    api_requests: u32,
    started: Instant,
    result: Result<Parsed, Failure>,
}

struct Parsed {
    spec: TableSpec,
    batch: crate::store::Batch,
    /// The fingerprints of the stored rows of the window's days, read while it was fetched.
    ahead: Option<StoredRows>,
}

/// True when the rows of `fetched` (if parsed) include a day of `next`, or their days are not
/// known.
fn reaches_into(fetched: &Fetched, next: Window) -> bool {
    let Ok(parsed) = &fetched.result else {
        return false; // a failed window commits nothing
    };
    let days = parsed
        .spec
        .columns
        .iter()
        .position(|c| c.name == "date" && c.ty == ColumnType::Date)
        .and_then(|i| parsed.batch.columns.get(i));
    match days {
        Some(ColumnData::Date(days)) => days
            .iter()
            .flatten()
            .any(|d| (next.start..=next.last).contains(d)),
        _ => true,
    }
}

/// Records the window's run and fetches and parses its rows; with `read_ahead`, also reads the
/// fingerprints of the stored rows of its days (see [`Store::read_stored_rows`]).
async fn fetch(
    scope: &Scope<'_>,
    account: &str,
    window: Window,
    spare: Option<crate::store::Batch>,
    read_ahead: bool,
) -> Fetched {
    let started = Instant::now();
    let run = NewRun {
        job: scope.job.name.clone(),
        account_id: account.to_owned(),
        window_start: window.start,
        window_end: window.last,
        trigger: scope.trigger,
    };
    let span = info_span!("window", job = %scope.job.name, account_id = %account, %window,
        run_id = tracing::field::Empty);
    let mut api_requests = 0;
    // The run is recorded while the request is already on its way (an insert and its commit
    // took 2-15 ms before each window's request). Should recording fail, the request is
    // abandoned and the window fails as it did before. The fingerprints of the stored rows of the
    // window's days are read meanwhile too, for its commit not to wait for them (a range scan of
    // ~30 ms per 31,000 rows on the benchmark's machine). Events of the request logged before the
    // run is recorded carry no `run_id` yet.
    let stored_ahead = async {
        match &scope.job.kind {
            JobKind::Query(q) if read_ahead => {
                let spec = rows::query_table(&scope.job.table, q);
                let store = &scope.ctx.store;
                store
                    .read_stored_rows(&spec, account, window.start, window.last)
                    .await
            }
            JobKind::Query(_) | JobKind::Generic(_) => None,
        }
    };
    let joined = tokio::try_join!(
        async {
            let id = scope.ctx.store.start_run(&run).await?;
            span.record("run_id", id);
            Ok::<_, StoreError>(id)
        },
        async {
            let fetched = fetch_rows(
                scope.ctx,
                scope.job,
                account,
                window,
                &mut api_requests,
                spare,
            )
            .instrument(span.clone())
            .await;
            Ok(fetched)
        },
        async { Ok(stored_ahead.await) }
    );
    let (run_id, result) = match joined {
        Ok((id, result, ahead)) => (id, result.map(|parsed| Parsed { ahead, ..parsed })),
        Err(e) => {
            return Fetched {
                window,
                run_id: None,
                api_requests,
                started,
                result: Err(Failure {
                    message: format!("cannot record the run: {e}"),
                    code: store_code(&e),
                }),
            };
        }
    };
    Fetched {
        window,
        run_id: Some(run_id),
        api_requests,
        started,
        result,
    }
}

/// Commits a fetched window (or records why it failed) and reports it. The columns of a window
/// that was parsed are left in `spare`, for another window to fill.
async fn finish(
    scope: &Scope<'_>,
    account: &str,
    fetched: Fetched,
    high_water: &mut Option<NaiveDate>,
    spare: &mut Option<crate::store::Batch>,
) -> WindowReport {
    let Fetched {
        window,
        run_id,
        api_requests,
        started,
        result,
    } = fetched;
    let span = info_span!("window", job = %scope.job.name, account_id = %account, %window, run_id);
    let outcome = async {
        let committed = match (result, run_id) {
            (Ok(mut parsed), Some(run_id)) => {
                let committed = commit(
                    scope,
                    account,
                    run_id,
                    window,
                    &mut parsed,
                    *high_water,
                    api_requests,
                )
                .await;
                *spare = Some(parsed.batch);
                committed
            }
            (Err(failure), _) => Err(failure),
            (Ok(_), None) => Err(Failure {
                message: "the run could not be recorded".into(),
                code: crate::exit::RUN_FAILED,
            }),
        };
        match committed {
            Ok((received, written, new_mark)) => {
                *high_water = new_mark;
                info!(
                    rows_received = received,
                    rows_written = written,
                    api_requests,
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "window loaded"
                );
                Outcome::Succeeded {
                    rows_received: received,
                    rows_written: written,
                }
            }
            Err(failure) => {
                warn!(error = %failure.message, api_requests, "window failed; its rows were rolled back");
                if let Some(run_id) = run_id
                    && let Err(e) = scope.ctx.store.fail_run(run_id, &failure.message, api_requests).await
                {
                    warn!(error = %e, "could not record the failed window; the next daemon start marks it failed");
                }
                Outcome::Failed {
                    error: failure.message,
                    code: failure.code,
                }
            }
        }
    }
    .instrument(span)
    .await;
    WindowReport {
        account_id: account.to_owned(),
        window,
        api_requests,
        outcome,
    }
}

struct Failure {
    message: String,
    code: u8,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure {
            code: api_code(&e),
            message: e.to_string(),
        }
    }
}

fn api_code(e: &ApiError) -> u8 {
    if e.is_config() {
        crate::exit::CONFIG
    } else if e.is_unavailable() {
        crate::exit::UNAVAILABLE
    } else {
        crate::exit::RUN_FAILED
    }
}

fn store_code(e: &StoreError) -> u8 {
    if e.is_unavailable() {
        crate::exit::UNAVAILABLE
    } else {
        crate::exit::RUN_FAILED
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure {
            code: store_code(&e),
            message: format!("database: {e}"),
        }
    }
}

#[allow(clippy::too_many_arguments)]
/// Fetches one window from the API and turns it into typed rows (for a generic job, also makes its
/// table fit them).
async fn fetch_rows(
    ctx: &Context,
    job: &Job,
    account: &str,
    window: Window,
    api_requests: &mut u32,
    spare: Option<crate::store::Batch>,
) -> Result<Parsed, Failure> {
    let (spec, batch, diversions, endpoint) = match &job.kind {
        JobKind::Query(q) => {
            // The answer is parsed while it arrives, so the body is never held whole: its pieces
            // go through a small channel to the parser, which runs beside the request on this
            // task. (On tokio's blocking pool, as the generic answers below, the year-long bench
            // peaked at 65-68 MiB instead of 56, from the extra threads' malloc arenas, and loaded
            // no faster: 63k against 76k rows/s, re-reads 2.7-3.2 s against 2.7-3.4 s.)
            let (pieces, mut received) = tokio::sync::mpsc::channel::<Piece>(PIECES_IN_FLIGHT);
            let (query, owner) = (q.clone(), account.to_owned());
            let (timezone, currency) = (job.timezone, job.currency.clone());
            let parser = async move {
                let mut stream = rows::QueryStream::reusing(&query, timezone, spare);
                while let Some(piece) = received.recv().await {
                    match piece {
                        Piece::Start => stream.reset(),
                        Piece::Data(bytes) => {
                            if !stream.write(&bytes) {
                                break; // closing the channel stops the reading
                            }
                        }
                    }
                }
                stream.finish(&owner, &currency)
            };
            let request = async {
                let response = ctx
                    .api
                    .query_report_into(
                        &ReportRequest {
                            account_id: account,
                            job: q,
                            start: window.start,
                            last: window.last,
                            timezone: job.timezone.name(),
                            currency: &job.currency,
                        },
                        &pieces,
                    )
                    .await;
                drop(pieces); // the end of the answer for the parser
                response
            };
            let (response, parsed) = tokio::join!(request, parser);
            let response = response?;
            *api_requests = response.attempts;
            let (batch, diversions) = parsed.map_err(|e| Failure {
                message: format!("{}: {e}", response.endpoint),
                code: crate::exit::RUN_FAILED,
            })?;
            (
                rows::query_table(&job.table, q),
                batch,
                diversions,
                response.endpoint,
            )
        }
        JobKind::Generic(g) => {
            let values = Values {
                account_id: account,
                start_date: window.start,
                last_date: window.last,
                timezone: job.timezone.name(),
                currency: &job.currency,
            };
            let response = ctx.api.generic(g, &values).await?;
            *api_requests = response.attempts;
            let (body, generic, owner) = (response.body, g.clone(), account.to_owned());
            let (table, start) = (job.table.clone(), window.start);
            let mut parsed = parse_off_runtime(move || {
                rows::generic_rows(&body, &generic, &table, &owner, start)
            })
            .await
            .map_err(|e| Failure {
                message: format!("{}: {e}", response.endpoint),
                code: crate::exit::RUN_FAILED,
            })?;
            let changes = ctx.store.ensure_table(&parsed.spec).await?;
            if !changes.added.is_empty() {
                info!(table = %job.table, columns = ?changes.added, "added columns for new fields");
            }
            rows::conform(&mut parsed, &changes.type_mismatches);
            (
                parsed.spec,
                parsed.batch,
                parsed.diversions,
                response.endpoint,
            )
        }
    };
    for (column, count) in &diversions.by_column {
        warn!(
            %endpoint, column = %column, values = count,
            "values of an unexpected type were kept in _extra instead of their column"
        );
    }
    Ok(Parsed {
        spec,
        batch,
        ahead: None,
    })
}

/// Pieces of an answer on their way to its parser at most (each a few KB to a few hundred KB of
/// hyper's read buffer), whatever the size of the answer.
const PIECES_IN_FLIGHT: usize = 2;

/// Runs a parse on tokio's blocking pool. A window's answer takes tens of milliseconds of CPU to
/// parse; on the run's own task that kept every account's parsing (and the daemon's other work on
/// that thread) one after the other on one core, so re-reads were bound by a single core.
async fn parse_off_runtime<T: Send + 'static>(
    parse: impl FnOnce() -> Result<T, rows::RowsError> + Send + 'static,
) -> Result<T, rows::RowsError> {
    tokio::task::spawn_blocking(parse)
        .await
        .unwrap_or_else(|e| Err(rows::RowsError::Shape(format!("the parser stopped: {e}"))))
}

/// Writes a window's rows, its run record and the high-water mark in one transaction.
async fn commit(
    scope: &Scope<'_>,
    account: &str,
    run_id: i64,
    window: Window,
    parsed: &mut Parsed,
    high_water: Option<NaiveDate>,
    api_requests: u32,
) -> Result<(u64, u64, Option<NaiveDate>), Failure> {
    let new_mark = plan::advance_high_water(high_water, window, scope.today);
    let state = new_mark
        .filter(|m| Some(*m) != high_water)
        .map(|m| StateUpdate {
            job: scope.job.name.clone(),
            account_id: account.to_owned(),
            high_water: m,
        });
    let received = parsed.batch.rows() as u64;
    let written = scope
        .ctx
        .store
        .commit_window_with(
            run_id,
            &parsed.spec,
            &parsed.batch,
            api_requests,
            state.as_ref(),
            parsed.ahead.take(),
        )
        .await?;
    Ok((received, written, new_mark))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::{QueryJob, Report};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    /// A parsed Query window holding rows of `days`.
    fn fetched(days: &[u32]) -> Fetched {
        let job = QueryJob {
            report: Report::Campaigns,
            dimensions: vec!["campaign_id".into()],
            metrics: vec![],
        };
        let body = days
            .iter()
            .map(|d| format!(r#"{{"campaign_id":"1","datetime":"{}"}}"#, day(*d)))
            .collect::<Vec<_>>()
            .join(",");
        let (batch, _) = rows::query_rows(
            format!(r#"{{"data":[{body}]}}"#).as_bytes(),
            &job,
            "1",
            chrono_tz::UTC,
            "USD",
        )
        .unwrap();
        Fetched {
            window: Window {
                start: day(1),
                last: day(10),
            },
            run_id: Some(1),
            api_requests: 1,
            started: Instant::now(),
            result: Ok(Parsed {
                spec: rows::query_table("t", &job),
                batch,
                ahead: None,
            }),
        }
    }

    #[test]
    fn a_window_with_rows_on_the_next_windows_days_is_seen() {
        let next = Window {
            start: day(11),
            last: day(20),
        };
        assert!(!reaches_into(&fetched(&[1, 5, 10]), next));
        assert!(
            reaches_into(&fetched(&[1, 5, 11]), next),
            "a row moved a day later"
        );
        assert!(reaches_into(&fetched(&[20]), next));
        assert!(!reaches_into(&fetched(&[21]), next));
        assert!(!reaches_into(&fetched(&[]), next));
        let mut failed = fetched(&[11]);
        failed.result = Err(Failure {
            message: "x".into(),
            code: crate::exit::RUN_FAILED,
        });
        assert!(
            !reaches_into(&failed, next),
            "a failed window commits nothing"
        );
    }
}

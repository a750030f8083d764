//! One account's windows, in order: each window is fetched and parsed, then committed in one
//! transaction with its run record and the account's state, replacing the rows of its days.
//!
//! The next window is fetched while the previous one commits (a two-stage pipeline), into the
//! columns of the window before it, so the API and the database work at the same time and two
//! windows' buffers go round instead of new ones per window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::accounts::Target;
use super::plan::{self, Window};
use super::rows::{Notes, RowsError};
use super::{Context, FailureKind, Progress, WindowOutcome, WindowResult, generic, query};
use crate::api::{ApiError, Piece, ReportRequest};
use crate::config::template::Values;
use crate::config::{Job, JobKind, QueryJob};
use crate::store::{
    Batch, ColumnData, ColumnType, NewRun, Replace, StateUpdate, StoreError, StoredRows, TableSpec,
    Trigger, WindowLoad,
};

/// What every account of one run shares.
pub(super) struct Scope<'a> {
    pub ctx: &'a Context,
    pub job: &'a Job,
    pub trigger: Trigger,
    pub progress: &'a dyn Progress,
    /// Cancelled when the process stops: no further window starts.
    pub stop: &'a CancellationToken,
    /// An answer without rows empties days that hold rows (`--allow-empty`).
    pub allow_empty: bool,
    /// `--reload`: each account's first window to commit also deletes the account's other rows
    /// and its state, in its own transaction.
    pub reload: bool,
    /// Set when a failure means no window can succeed (rejected credentials): the other accounts
    /// stop too instead of each asking the token endpoint again.
    pub abort: AtomicBool,
}

/// One account's part of a run.
pub(super) struct AccountPlan {
    /// The account and the zone and currency its report is asked in.
    pub target: Target,
    /// Today in the account's report zone.
    pub today: NaiveDate,
    pub high_water: Option<NaiveDate>,
    pub windows: Vec<Window>,
}

/// Runs one account's windows in order. The next window is fetched while the previous one is
/// written, so the API and the database work at the same time; at most two windows of an account
/// are in memory at once.
pub(super) async fn run_account(scope: &Scope<'_>, plan: AccountPlan) -> Vec<WindowResult> {
    let AccountPlan {
        target,
        today,
        mut high_water,
        windows,
    } = plan;
    let account = Account {
        target: &target,
        today,
        reload: false,
    };
    let mut out = Vec::with_capacity(windows.len());
    let mut prefetched: Option<Fetched> = None;
    let mut stop = false;
    // The columns of the window loaded last, for the window fetched next to fill (see
    // `query::QueryStream::reusing`): two windows' columns go round instead of new ones each time.
    let mut spare: Option<Batch> = None;
    // A reload's deletions go with the first window that commits: should it fail, nothing of the
    // account was deleted and its later windows are not attempted.
    let mut reload = scope.reload;
    for (i, window) in windows.iter().copied().enumerate() {
        let stopping = prefetched.is_none() && scope.stop.is_cancelled();
        if stop || stopping || scope.abort.load(Ordering::Relaxed) {
            stop = true;
            let result = WindowResult {
                account_id: target.id.clone(),
                window,
                api_requests: 0,
                outcome: WindowOutcome::NotAttempted,
            };
            scope.progress.window_done(&result);
            out.push(result);
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
        // Nor while this one reloads: its commit deletes the account's rows of the next days.
        let read_ahead = !reload && next_window.is_some_and(|next| !reaches_into(&current, next));
        let committing = Account { reload, ..account };
        let (result, next) = tokio::join!(
            finish(scope, &committing, current, &mut high_water, &mut spare),
            async {
                match next_window {
                    Some(w) if !scope.stop.is_cancelled() => {
                        Some(fetch(scope, &account, w, reuse, read_ahead).await)
                    }
                    _ => None,
                }
            }
        );
        stop = !matches!(result.outcome, WindowOutcome::Succeeded { .. });
        reload &= stop;
        if matches!(
            result.outcome,
            WindowOutcome::Failed {
                kind: FailureKind::Config,
                ..
            }
        ) {
            scope.abort.store(true, Ordering::Relaxed);
        }
        scope.progress.window_done(&result);
        out.push(result);
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

/// The account a window belongs to, as the window's steps need it.
#[derive(Clone, Copy)]
struct Account<'a> {
    target: &'a Target,
    /// Today in the account's report zone.
    today: NaiveDate,
    /// Whether the window committed now carries the run's `--reload` (the account's first).
    reload: bool,
}

/// A window fetched and parsed, or the reason it could not be.
struct Fetched {
    window: Window,
    /// The `export_runs` row, once recorded.
    run_id: Option<i64>,
    api_requests: u32,
    started: Instant,
    result: Result<Parsed, WindowError>,
}

struct Parsed {
    spec: TableSpec,
    batch: Batch,
    /// The days the API was asked for (the window's, or up to yesterday when the API refuses an
    /// `endDate` in the future); `None`: none (the window is today alone then). These are the
    /// days the answer replaces.
    asked: Option<Window>,
    /// What reading the answer noticed.
    warnings: Vec<String>,
    /// Rows of the answer skipped as empty, and rows that lacked a dimension (see [`Notes`]).
    skipped_empty: u64,
    missing_dimension: u64,
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
/// fingerprints of the stored rows of its days (see [`crate::store::Store::read_stored_rows`]).
async fn fetch(
    scope: &Scope<'_>,
    account: &Account<'_>,
    window: Window,
    spare: Option<Batch>,
    read_ahead: bool,
) -> Fetched {
    let started = Instant::now();
    let id = account.target.id.as_str();
    let run = NewRun {
        job: scope.job.name.clone(),
        account_id: id.to_owned(),
        window_start: window.start,
        window_end: window.last,
        trigger: scope.trigger,
    };
    let span = info_span!("window", job = %scope.job.name, account_id = %id, %window,
        run_id = tracing::field::Empty);
    let mut api_requests = 0;
    // The run is recorded while the request is already on its way, so that a window does not
    // wait for an insert and its commit before asking the API. Should recording fail, the request
    // is abandoned and the window fails. The fingerprints of the stored rows of the window's days
    // are read meanwhile too, so that its commit does not wait for that range scan. Events of the
    // request logged before the run is recorded carry no `run_id` yet.
    let stored_ahead = async {
        match &scope.job.kind {
            JobKind::Query(q) if read_ahead => {
                let spec = query::table_spec(&scope.job.table, q);
                let store = &scope.ctx.store;
                store
                    .read_stored_rows(&spec, id, window.start, window.last)
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
            let deadline = scope.job.window_timeout;
            let fetching = fetch_rows(scope, account, window, &mut api_requests, spare);
            let fetched = tokio::time::timeout(deadline, fetching.instrument(span.clone()))
                .await
                .unwrap_or_else(|_| Err(WindowError::past_deadline(deadline)));
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
                result: Err(WindowError {
                    message: format!("cannot record the run: {e}"),
                    kind: FailureKind::of_store(&e),
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
    account: &Account<'_>,
    fetched: Fetched,
    high_water: &mut Option<NaiveDate>,
    spare: &mut Option<Batch>,
) -> WindowResult {
    let Fetched {
        window,
        run_id,
        api_requests,
        started,
        result,
    } = fetched;
    let id = account.target.id.as_str();
    let span = info_span!("window", job = %scope.job.name, account_id = %id, %window, run_id);
    let outcome = async {
        let committed = match (result, run_id) {
            (Ok(mut parsed), Some(run_id)) => {
                // What is left of the window's deadline; past it the commit is dropped, which
                // rolls its transaction back.
                let deadline = tokio::time::Instant::from_std(started) + scope.job.window_timeout;
                let committing = commit(
                    scope,
                    account,
                    run_id,
                    window,
                    &mut parsed,
                    *high_water,
                    api_requests,
                );
                let committed = tokio::time::timeout_at(deadline, committing)
                    .await
                    .unwrap_or_else(|_| Err(WindowError::past_deadline(scope.job.window_timeout)));
                *spare = Some(parsed.batch);
                committed
            }
            (Err(failure), _) => Err(failure),
            (Ok(_), None) => Err(WindowError {
                message: "the run could not be recorded".into(),
                kind: FailureKind::Other,
            }),
        };
        match committed {
            Ok(done) => {
                *high_water = done.new_mark;
                for warning in &done.warnings {
                    warn!(warning = %warning, "the answer was not as expected");
                }
                info!(
                    rows_received = done.received,
                    rows_written = done.written,
                    rows_deleted = done.deleted,
                    rows_skipped_empty = done.skipped_empty,
                    rows_missing_dimension = done.missing_dimension,
                    warnings = done.warnings.len(),
                    api_requests,
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "window loaded"
                );
                WindowOutcome::Succeeded {
                    rows_received: done.received,
                    rows_written: done.written,
                    rows_deleted: done.deleted,
                    kept_on_empty: done.kept_on_empty,
                    rows_skipped_empty: done.skipped_empty,
                    rows_missing_dimension: done.missing_dimension,
                    warnings: done.warnings,
                }
            }
            Err(failure) => {
                warn!(error = %failure.message, api_requests, "window failed; its rows were rolled back");
                if let Some(run_id) = run_id
                    && let Err(e) = scope.ctx.store.fail_run(run_id, &failure.message, api_requests).await
                {
                    warn!(error = %e, "could not record the failed window; the next daemon start marks it failed");
                }
                WindowOutcome::Failed {
                    error: failure.message,
                    kind: failure.kind,
                }
            }
        }
    }
    .instrument(span)
    .await;
    WindowResult {
        account_id: id.to_owned(),
        window,
        api_requests,
        outcome,
    }
}

/// Why a window failed: the message stored in its run record, and what kind of failure it is.
struct WindowError {
    message: String,
    kind: FailureKind,
}

impl WindowError {
    /// The window took longer than the job's `window_timeout_secs`.
    fn past_deadline(deadline: std::time::Duration) -> WindowError {
        WindowError {
            message: format!(
                "the window took longer than its deadline ({} s, `window_timeout_secs`); \
                 nothing of it was committed",
                deadline.as_secs()
            ),
            kind: FailureKind::Other,
        }
    }

    /// The answer at `endpoint` could not be turned into rows.
    fn unreadable(endpoint: &str, e: &RowsError) -> WindowError {
        WindowError {
            message: format!("{endpoint}: {e}"),
            kind: FailureKind::Other,
        }
    }
}

impl From<ApiError> for WindowError {
    fn from(e: ApiError) -> WindowError {
        WindowError {
            kind: FailureKind::of_api(&e),
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for WindowError {
    fn from(e: StoreError) -> WindowError {
        WindowError {
            kind: FailureKind::of_store(&e),
            message: format!("database: {e}"),
        }
    }
}

/// Fetches one window from the API and turns it into typed rows (for a generic job, also makes its
/// table fit them).
async fn fetch_rows(
    scope: &Scope<'_>,
    account: &Account<'_>,
    window: Window,
    api_requests: &mut u32,
    spare: Option<Batch>,
) -> Result<Parsed, WindowError> {
    let (ctx, job, target) = (scope.ctx, scope.job, account.target);
    let (spec, batch, notes, asked, mut warnings) = match &job.kind {
        JobKind::Query(q) => {
            let spec = query::table_spec(&job.table, q);
            let end_today = ctx.shared.end_today.load(Ordering::Relaxed);
            let mut asked = asked_days(window, account.today, end_today);
            let mut warnings = Vec::new();
            let Some(days) = asked else {
                debug!(today = %account.today, "{}", refused_future_note(account.today));
                return Ok(Parsed {
                    spec,
                    batch: Batch::default(),
                    asked: None,
                    warnings: Vec::new(),
                    skipped_empty: 0,
                    missing_dimension: 0,
                    ahead: None,
                });
            };
            let mut read = query_window(scope, q, target, days, spare, api_requests).await;
            if let Err(Fetch::Api(e)) = &read
                && refuses_future_end(e)
                && window.last >= account.today
            {
                // Every client sends tomorrow as the exclusive `endDate` to include today; this
                // API refuses it, so windows end today from now on (today is still changing and
                // never counted as fully loaded anyway).
                // Said once per process (an INFO line, and a remark on the window that found it):
                // from then on it is how this API works, not news, so later windows only debug.
                if ctx.shared.end_today.swap(true, Ordering::Relaxed) {
                    debug!("{}", refused_future_note(account.today));
                } else {
                    info!(
                        "the API refuses an endDate in the future: windows end today (exclusive) from now on"
                    );
                    warnings.push(refused_future_note(account.today));
                }
                asked = asked_days(window, account.today, true);
                read = match asked {
                    Some(days) => query_window(scope, q, target, days, None, api_requests).await,
                    None => Ok((Batch::default(), Notes::default())),
                };
            } else if end_today && asked != Some(window) {
                debug!("{}", refused_future_note(account.today));
            }
            let (batch, notes) = read.map_err(|e| match e {
                Fetch::Api(e) => WindowError::from(e),
                Fetch::Unreadable(e) => e,
            })?;
            (spec, batch, notes, asked, warnings)
        }
        JobKind::Generic(g) => {
            let values = Values {
                account_id: &target.id,
                start_date: window.start,
                last_date: window.last,
                timezone: target.zone.name(),
                currency: &target.currency,
            };
            let response = ctx.api.generic(g, &values).await?;
            *api_requests = response.attempts;
            let (body, definition, owner) = (response.body, g.clone(), target.id.clone());
            let (table, start) = (job.table.clone(), window.start);
            let mut parsed = parse_off_runtime(move || {
                generic::parse_answer(&body, &definition, &table, &owner, start)
            })
            .await
            .map_err(|e| WindowError::unreadable(&response.endpoint, &e))?;
            let changes = super::ensure_table(&ctx.store, &parsed.spec).await?;
            generic::conform(&mut parsed, &changes.type_mismatches);
            (
                parsed.spec,
                parsed.batch,
                parsed.notes,
                Some(window),
                Vec::new(),
            )
        }
    };
    warnings.extend(notes.remarks());
    Ok(Parsed {
        spec,
        batch,
        asked,
        warnings,
        skipped_empty: notes.empty_rows as u64,
        missing_dimension: notes.rows_missing_dimension as u64,
        ahead: None,
    })
}

/// How asking a Query API window can fail.
enum Fetch {
    Api(ApiError),
    Unreadable(WindowError),
}

/// The days of `window` to ask for: all of them, or, once the API refused an `endDate` in the
/// future (`end_today`), those before today; `None` when that leaves none.
fn asked_days(window: Window, today: NaiveDate, end_today: bool) -> Option<Window> {
    if !end_today || window.last < today {
        return Some(window);
    }
    let last = today.pred_opt()?;
    (window.start <= last).then_some(Window {
        start: window.start,
        last,
    })
}

/// Whether the API refused the request because its `endDate` lies in the future (PostHog's
/// fixture: 400 `{"message": "endDate cannot be in the future"}`).
fn refuses_future_end(e: &ApiError) -> bool {
    match e {
        ApiError::Status {
            status: 400,
            message,
            ..
        } => {
            let m = message.to_ascii_lowercase();
            m.contains("future") && (m.contains("enddate") || m.contains("end date"))
        }
        _ => false,
    }
}

fn refused_future_note(today: NaiveDate) -> String {
    format!(
        "the API refuses an endDate in the future, so today ({today}) was not asked; the next run \
         reads it"
    )
}

/// Asks the Query API for `days` of `target` and parses the answer while it arrives: its pieces
/// go through a small channel to the parser, which runs beside the request on this task (not on
/// the blocking pool: more threads' malloc arenas, no faster; see docs/performance.md), so the
/// body is never held whole.
async fn query_window(
    scope: &Scope<'_>,
    q: &QueryJob,
    target: &Target,
    days: Window,
    spare: Option<Batch>,
    api_requests: &mut u32,
) -> Result<(Batch, Notes), Fetch> {
    let (pieces, mut received) = tokio::sync::mpsc::channel::<Piece>(PIECES_IN_FLIGHT);
    let (query, owner) = (q.clone(), target.id.clone());
    let (timezone, currency) = (target.zone, target.currency.clone());
    let parser = async move {
        let mut stream = query::QueryStream::reusing(&query, timezone, spare);
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
        let response = scope
            .ctx
            .api
            .query_report_into(
                &ReportRequest {
                    account_id: &target.id,
                    job: q,
                    start: days.start,
                    last: days.last,
                    timezone: target.zone.name(),
                    currency: &target.currency,
                },
                &pieces,
            )
            .await;
        drop(pieces); // the end of the answer for the parser
        response
    };
    let (response, parsed) = tokio::join!(request, parser);
    let response = response.map_err(Fetch::Api)?;
    *api_requests += response.attempts;
    parsed.map_err(|e| Fetch::Unreadable(WindowError::unreadable(&response.endpoint, &e)))
}

/// Pieces of an answer on their way to its parser at most (each a few KB to a few hundred KB of
/// hyper's read buffer), whatever the size of the answer.
const PIECES_IN_FLIGHT: usize = 2;

/// Runs a parse on tokio's blocking pool. A window's answer takes tens of milliseconds of CPU to
/// parse; on the run's own task that kept every account's parsing (and the daemon's other work on
/// that thread) one after the other on one core, so re-reads were bound by a single core.
async fn parse_off_runtime<T: Send + 'static>(
    parse: impl FnOnce() -> Result<T, RowsError> + Send + 'static,
) -> Result<T, RowsError> {
    tokio::task::spawn_blocking(parse)
        .await
        .unwrap_or_else(|e| Err(RowsError::Shape(format!("the parser stopped: {e}"))))
}

/// What a committed window did.
struct Done {
    received: u64,
    written: u64,
    deleted: u64,
    kept_on_empty: u64,
    skipped_empty: u64,
    missing_dimension: u64,
    warnings: Vec<String>,
    new_mark: Option<NaiveDate>,
}

/// Writes a window's rows (replacing those of the days it asked for), its run record and the
/// account's state in one transaction.
async fn commit(
    scope: &Scope<'_>,
    account: &Account<'_>,
    run_id: i64,
    window: Window,
    parsed: &mut Parsed,
    high_water: Option<NaiveDate>,
    api_requests: u32,
) -> Result<Done, WindowError> {
    let target = account.target;
    let new_mark = plan::advance_high_water(high_water, window, account.today);
    let state = StateUpdate {
        job: scope.job.name.clone(),
        account_id: target.id.clone(),
        high_water: new_mark.filter(|m| Some(*m) != high_water),
        timezone: target.zone.name().to_owned(),
        currency: target.currency.clone(),
    };
    let reload = account.reload.then_some(scope.job.name.as_str());
    let replace = match parsed.asked {
        Some(days) => Some(Replace {
            account_id: &target.id,
            first: days.start,
            last: days.last,
            // A reload replaces the whole range: rows of another zone or currency never stay.
            empty_answer_empties: scope.allow_empty || reload.is_some(),
            reload,
        }),
        // Nothing was asked (today alone, from an API that refuses a future `endDate`), yet a
        // reload still resets the account: no day replaced, none kept.
        None => reload.map(|job| Replace {
            account_id: &target.id,
            first: window.start,
            last: window.start.pred_opt().unwrap_or(window.start),
            empty_answer_empties: true,
            reload: Some(job),
        }),
    };
    let committed = scope
        .ctx
        .store
        .commit(WindowLoad {
            run_id,
            spec: &parsed.spec,
            batch: &parsed.batch,
            api_requests,
            state: Some(&state),
            replace,
            warnings: &parsed.warnings,
            ahead: parsed.ahead.take(),
        })
        .await?;
    let mut warnings = std::mem::take(&mut parsed.warnings);
    if committed.kept_on_empty > 0 {
        warnings.push(format!(
            "the answer had no rows for days that hold {} rows; they were kept (an empty answer \
             is taken for a hiccup: `run-now --allow-empty` empties such days)",
            committed.kept_on_empty
        ));
    }
    Ok(Done {
        received: parsed.batch.rows() as u64,
        written: committed.rows_written,
        deleted: committed.rows_deleted,
        kept_on_empty: committed.kept_on_empty,
        skipped_empty: parsed.skipped_empty,
        missing_dimension: parsed.missing_dimension,
        warnings,
        new_mark,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::Report;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    /// A parsed Query window holding rows of `days`.
    fn fetched(days: &[u32]) -> Fetched {
        let job = QueryJob::new(Report::Campaigns, vec!["campaign_id".into()], vec![]);
        let body = days
            .iter()
            .map(|d| format!(r#"{{"campaign_id":"1","datetime":"{}"}}"#, day(*d)))
            .collect::<Vec<_>>()
            .join(",");
        let (batch, _) = query::parse_answer(
            format!(r#"{{"data":[{body}]}}"#).as_bytes(),
            &job,
            "1",
            chrono_tz::UTC,
            "USD",
        )
        .unwrap();
        let window = Window {
            start: day(1),
            last: day(10),
        };
        Fetched {
            window,
            run_id: Some(1),
            api_requests: 1,
            started: Instant::now(),
            result: Ok(Parsed {
                spec: query::table_spec("t", &job),
                batch,
                asked: Some(window),
                warnings: Vec::new(),
                skipped_empty: 0,
                missing_dimension: 0,
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
        failed.result = Err(WindowError {
            message: "x".into(),
            kind: FailureKind::Other,
        });
        assert!(
            !reaches_into(&failed, next),
            "a failed window commits nothing"
        );
    }

    #[test]
    fn once_the_api_refuses_a_future_end_windows_stop_at_yesterday() {
        let w = |a, b| Window {
            start: day(a),
            last: day(b),
        };
        assert_eq!(asked_days(w(1, 10), day(10), false), Some(w(1, 10)));
        assert_eq!(asked_days(w(1, 10), day(10), true), Some(w(1, 9)));
        assert_eq!(asked_days(w(1, 5), day(10), true), Some(w(1, 5)));
        assert_eq!(asked_days(w(10, 10), day(10), true), None);
    }

    #[test]
    fn a_future_end_date_is_recognised_in_the_apis_words() {
        let status = |status, message: &str| ApiError::Status {
            status,
            endpoint: "POST /x".into(),
            message: message.into(),
        };
        assert!(refuses_future_end(&status(
            400,
            "endDate cannot be in the future"
        )));
        assert!(refuses_future_end(&status(
            400,
            "The end date must not be in the future."
        )));
        assert!(!refuses_future_end(&status(400, "unknown metric foo")));
        assert!(!refuses_future_end(&status(
            403,
            "endDate cannot be in the future"
        )));
    }
}

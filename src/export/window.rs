//! One account's windows, in order: each window is fetched and parsed, then committed in one
//! transaction with its run record and the job's high-water mark.
//!
//! The next window is fetched while the previous one commits (a two-stage pipeline), into the
//! columns of the window before it, so the API and the database work at the same time and two
//! windows' buffers go round instead of new ones per window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, info, info_span, warn};

use super::plan::{self, Window};
use super::rows::RowsError;
use super::{Context, FailureKind, Progress, WindowOutcome, WindowResult, generic, query};
use crate::api::{ApiError, Piece, ReportRequest};
use crate::config::template::Values;
use crate::config::{Job, JobKind};
use crate::store::{
    Batch, ColumnData, ColumnType, NewRun, StateUpdate, StoreError, StoredRows, TableSpec, Trigger,
};

/// What every account of one run shares.
pub(super) struct Scope<'a> {
    pub ctx: &'a Context,
    pub job: &'a Job,
    pub trigger: Trigger,
    pub today: NaiveDate,
    pub progress: &'a dyn Progress,
    /// Cancelled when the process stops: no further window starts.
    pub stop: &'a CancellationToken,
    /// Set when a failure means no window can succeed (rejected credentials): the other accounts
    /// stop too instead of each asking the token endpoint again.
    pub abort: AtomicBool,
}

/// Runs one account's windows in order. The next window is fetched while the previous one is
/// written, so the API and the database work at the same time; at most two windows of an account
/// are in memory at once.
pub(super) async fn run_account(
    scope: &Scope<'_>,
    account: String,
    mut high_water: Option<NaiveDate>,
    windows: Vec<Window>,
) -> Vec<WindowResult> {
    let mut out = Vec::with_capacity(windows.len());
    let mut prefetched: Option<Fetched> = None;
    let mut stop = false;
    // The columns of the window loaded last, for the window fetched next to fill (see
    // `query::QueryStream::reusing`): two windows' columns go round instead of new ones each time.
    let mut spare: Option<Batch> = None;
    for (i, window) in windows.iter().copied().enumerate() {
        let stopping = prefetched.is_none() && scope.stop.is_cancelled();
        if stop || stopping || scope.abort.load(Ordering::Relaxed) {
            stop = true;
            let result = WindowResult {
                account_id: account.clone(),
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
        let read_ahead = next_window.is_some_and(|next| !reaches_into(&current, next));
        let (report, next) = tokio::join!(
            finish(scope, &account, current, &mut high_water, &mut spare),
            async {
                match next_window {
                    Some(w) if !scope.stop.is_cancelled() => {
                        Some(fetch(scope, &account, w, reuse, read_ahead).await)
                    }
                    _ => None,
                }
            }
        );
        stop = !matches!(report.outcome, WindowOutcome::Succeeded { .. });
        if matches!(
            report.outcome,
            WindowOutcome::Failed {
                kind: FailureKind::Config,
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
    result: Result<Parsed, WindowError>,
}

struct Parsed {
    spec: TableSpec,
    batch: Batch,
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
    spare: Option<Batch>,
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
    account: &str,
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
            (Ok(_), None) => Err(WindowError {
                message: "the run could not be recorded".into(),
                kind: FailureKind::Other,
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
                WindowOutcome::Succeeded {
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
        account_id: account.to_owned(),
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
    ctx: &Context,
    job: &Job,
    account: &str,
    window: Window,
    api_requests: &mut u32,
    spare: Option<Batch>,
) -> Result<Parsed, WindowError> {
    let (spec, batch, diversions, endpoint) = match &job.kind {
        JobKind::Query(q) => {
            // The answer is parsed while it arrives, so the body is never held whole: its pieces
            // go through a small channel to the parser, which runs beside the request on this
            // task (not on the blocking pool: more threads' malloc arenas, no faster; see
            // docs/performance.md).
            let (pieces, mut received) = tokio::sync::mpsc::channel::<Piece>(PIECES_IN_FLIGHT);
            let (query, owner) = (q.clone(), account.to_owned());
            let (timezone, currency) = (job.timezone, job.currency.clone());
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
            let (batch, diversions) =
                parsed.map_err(|e| WindowError::unreadable(&response.endpoint, &e))?;
            (
                query::table_spec(&job.table, q),
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
            let (body, definition, owner) = (response.body, g.clone(), account.to_owned());
            let (table, start) = (job.table.clone(), window.start);
            let mut parsed = parse_off_runtime(move || {
                generic::parse_answer(&body, &definition, &table, &owner, start)
            })
            .await
            .map_err(|e| WindowError::unreadable(&response.endpoint, &e))?;
            let changes = ctx.store.ensure_table(&parsed.spec).await?;
            generic::conform(&mut parsed, &changes.type_mismatches);
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
    parse: impl FnOnce() -> Result<T, RowsError> + Send + 'static,
) -> Result<T, RowsError> {
    tokio::task::spawn_blocking(parse)
        .await
        .unwrap_or_else(|e| Err(RowsError::Shape(format!("the parser stopped: {e}"))))
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
) -> Result<(u64, u64, Option<NaiveDate>), WindowError> {
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
        let (batch, _) = query::parse_answer(
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
                spec: query::table_spec("t", &job),
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
        failed.result = Err(WindowError {
            message: "x".into(),
            kind: FailureKind::Other,
        });
        assert!(
            !reaches_into(&failed, next),
            "a failed window commits nothing"
        );
    }
}

//! What a person reads after a run: counts, where the rows went, a table of the accounts, and
//! every failed window's error; and the exit code the run calls for.

use std::fmt::Write as _;

use super::exit::Exit;
use super::table::Align;
use crate::config::Config;
use crate::export::{RunError, RunResult, WindowOutcome};
use crate::telemetry::sanitize;

/// The longest error quoted per failed window, in characters (the full text is in
/// `export_runs.error` and the log).
pub(super) const MAX_ERROR_CHARS: usize = 1_000;

/// How much a summary says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Detail {
    /// The counts on one line, warnings and failures below (`demo`, which runs every job and
    /// ends with its own table of what landed).
    Line,
    /// The same with a table of the accounts after the first line (`--run-now`).
    Table,
}

/// Prints a run's summary on stdout and returns how the command ends: `Ok` when every window
/// succeeded, else the exit code of the most actionable failure (its errors are in the summary);
/// a skipped run, or one whose windows were not all attempted, exits 1.
pub(super) fn report(
    config: &Config,
    result: Result<RunResult, RunError>,
    detail: Detail,
) -> Result<(), Exit> {
    let result = result?;
    print!("{}", summary(config, &result, detail));
    if result.succeeded() {
        return Ok(());
    }
    let code = result
        .worst_failure()
        .map_or(super::exit::RUN_FAILED, Exit::code_of);
    Err(Exit::quietly(code))
}

/// The text printed after a run: counts, where the rows went, (the table of the accounts,) and
/// every failed window's error.
pub(super) fn summary(config: &Config, report: &RunResult, detail: Detail) -> String {
    let mut out = String::new();
    if let Some(reason) = &report.skipped {
        let _ = writeln!(
            out,
            "{}: skipped: {}",
            report.job,
            sanitize(reason, MAX_ERROR_CHARS)
        );
        return out;
    }
    let count =
        |f: fn(&WindowOutcome) -> bool| report.windows.iter().filter(|w| f(&w.outcome)).count();
    let ok = count(|o| matches!(o, WindowOutcome::Succeeded { .. }));
    let failed = count(|o| matches!(o, WindowOutcome::Failed { .. }));
    let not_attempted = count(|o| matches!(o, WindowOutcome::NotAttempted));
    let table = super::qualified(config, &report.table);
    let _ = write!(
        out,
        "{}: {} window{}: {ok} succeeded",
        report.job,
        report.windows.len(),
        if report.windows.len() == 1 { "" } else { "s" }
    );
    if failed > 0 {
        let _ = write!(out, ", {failed} failed");
    }
    if not_attempted > 0 {
        let _ = write!(
            out,
            ", {not_attempted} not attempted (they follow a failed window; the next run resumes there)"
        );
    }
    let _ = write!(
        out,
        "; {} rows received, {} new or changed rows written to {table}",
        report.rows_received(),
        report.rows_written()
    );
    let deleted = report.rows_deleted();
    if deleted > 0 {
        let _ = write!(out, ", {deleted} deleted (the API no longer has them)");
    }
    let _ = writeln!(out);
    if detail == Detail::Table {
        out.push_str(&accounts_table(report));
    }
    for warning in report.warnings() {
        let _ = writeln!(out, "  warning: {warning}");
    }
    for w in &report.windows {
        if let WindowOutcome::Failed { error, .. } = &w.outcome {
            // The account id and the error may come from the API: one line each, no escapes.
            let _ = writeln!(
                out,
                "  failed: account {} {}: {}",
                sanitize(&w.account_id, 100),
                w.window,
                sanitize(error, MAX_ERROR_CHARS)
            );
        }
    }
    out
}

/// One account's line of the table.
#[derive(Default)]
struct Row {
    windows: usize,
    succeeded: usize,
    received: u64,
    written: u64,
    deleted: u64,
    warnings: usize,
}

/// The table of a run's accounts, in the order they were planned, with a total when there are
/// several: windows (succeeded/all), rows received, written (new or changed), deleted, warnings.
/// Empty when the run had no window.
fn accounts_table(report: &RunResult) -> String {
    let mut rows: Vec<(String, Row)> = Vec::new();
    let mut total = Row::default();
    for w in &report.windows {
        let i = match rows.iter().position(|(id, _)| *id == w.account_id) {
            Some(i) => i,
            None => {
                rows.push((w.account_id.clone(), Row::default()));
                rows.len() - 1
            }
        };
        for row in [&mut rows[i].1, &mut total] {
            row.windows += 1;
            if let WindowOutcome::Succeeded {
                rows_received,
                rows_written,
                rows_deleted,
                warnings,
                ..
            } = &w.outcome
            {
                row.succeeded += 1;
                row.received += rows_received;
                row.written += rows_written;
                row.deleted += rows_deleted;
                row.warnings += warnings.len();
            }
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    if rows.len() > 1 {
        rows.push(("total".into(), total));
    }
    let header = [
        "account",
        "windows",
        "rows received",
        "written",
        "deleted",
        "warnings",
    ];
    // The account id may come from the API: escaped, and cut.
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|(id, r)| {
            [
                sanitize(id, 40).into_owned(),
                format!("{}/{}", r.succeeded, r.windows),
                r.received.to_string(),
                r.written.to_string(),
                r.deleted.to_string(),
                r.warnings.to_string(),
            ]
        })
        .collect();
    let mut out = String::from("\n");
    let numbers = Align::Right;
    let align = [Align::Left, numbers, numbers, numbers, numbers, numbers];
    super::table::write(&mut out, "  ", header, align, &cells);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{FailureKind, Window, WindowResult};
    use chrono::NaiveDate;

    fn window(account: &str, day: u32, outcome: WindowOutcome) -> WindowResult {
        let day = NaiveDate::from_ymd_opt(2026, 3, day).unwrap_or_default();
        WindowResult {
            account_id: account.into(),
            window: Window {
                start: day,
                last: day,
            },
            api_requests: 1,
            outcome,
        }
    }

    fn loaded(received: u64, written: u64, deleted: u64, warnings: usize) -> WindowOutcome {
        WindowOutcome::Succeeded {
            rows_received: received,
            rows_written: written,
            rows_deleted: deleted,
            kept_on_empty: 0,
            rows_skipped_empty: 0,
            rows_missing_dimension: 0,
            warnings: vec!["w".into(); warnings],
        }
    }

    #[test]
    fn the_table_has_a_line_per_account_and_a_total() {
        let report = RunResult {
            job: "campaign_daily".into(),
            table: "campaign_daily".into(),
            skipped: None,
            windows: vec![
                window("3141592", 1, loaded(1550, 1550, 0, 0)),
                window("2718281", 1, loaded(20, 3, 2, 1)),
                window("3141592", 2, loaded(1500, 0, 0, 0)),
                window(
                    "2718281",
                    2,
                    WindowOutcome::Failed {
                        error: "boom".into(),
                        kind: FailureKind::Other,
                    },
                ),
                window("2718281", 3, WindowOutcome::NotAttempted),
            ],
        };
        assert_eq!(
            accounts_table(&report),
            "
  account  windows  rows received  written  deleted  warnings
  3141592      2/2           3050     1550        0         0
  2718281      1/3             20        3        2         1
  total        3/5           3070     1553        2         1

"
        );
    }

    #[test]
    fn one_account_has_no_total_and_a_run_without_windows_no_table() {
        let mut report = RunResult {
            job: "j".into(),
            table: "j".into(),
            skipped: None,
            windows: vec![window("1\n2", 1, loaded(5, 5, 0, 0))],
        };
        assert_eq!(
            accounts_table(&report),
            "
  account  windows  rows received  written  deleted  warnings
  1\\n2         1/1              5        5        0         0

"
        );
        report.windows.clear();
        assert_eq!(accounts_table(&report), "");
    }
}

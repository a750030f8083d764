//! What a person reads after a run: counts, where the rows went, and every failed window's error;
//! and the exit code the run calls for.

use std::fmt::Write as _;

use super::exit::Exit;
use crate::config::Config;
use crate::export::{RunError, RunResult, WindowOutcome};
use crate::telemetry::sanitize;

/// The longest error quoted per failed window, in characters (the full text is in
/// `export_runs.error` and the log).
pub(super) const MAX_ERROR_CHARS: usize = 1_000;

/// Prints a run's summary on stdout and returns how the command ends: `Ok` when every window
/// succeeded, else the exit code of the most actionable failure (its errors are in the summary);
/// a skipped run, or one whose windows were not all attempted, exits 1.
pub(super) fn report(config: &Config, result: Result<RunResult, RunError>) -> Result<(), Exit> {
    let result = result?;
    print!("{}", summary(config, &result));
    if result.succeeded() {
        return Ok(());
    }
    let code = result
        .worst_failure()
        .map_or(super::exit::RUN_FAILED, Exit::code_of);
    Err(Exit::quietly(code))
}

/// The text printed after a run: counts, where the rows went, and every failed window's error.
pub(super) fn summary(config: &Config, report: &RunResult) -> String {
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

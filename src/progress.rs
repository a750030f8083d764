//! What a person at a terminal sees: a progress line during `--run-now`, the run's summary, and the
//! `status` table. Plain log lines take over when stderr is not a terminal.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::export::{Outcome, Progress, RunReport, WindowReport};
use crate::store::JobStatus;

/// A one-line progress display on stderr, redrawn after each window (only on a terminal).
pub struct Terminal {
    enabled: bool,
    state: Mutex<State>,
}

struct State {
    job: String,
    total: usize,
    done: usize,
    failed: usize,
    rows: u64,
    started: Instant,
}

impl Terminal {
    pub fn new() -> Terminal {
        Terminal {
            enabled: std::io::stderr().is_terminal(),
            state: Mutex::new(State {
                job: String::new(),
                total: 0,
                done: 0,
                failed: 0,
                rows: 0,
                started: Instant::now(),
            }),
        }
    }

    /// Ends the progress line so that what follows starts on a fresh line.
    pub fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }

    fn draw(&self, s: &State) {
        if !self.enabled {
            return;
        }
        let secs = s.started.elapsed().as_secs_f64().max(0.001);
        let failed = if s.failed > 0 {
            format!(", {} failed", s.failed)
        } else {
            String::new()
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{}: {}/{} windows{failed}, {} rows, {:.0} rows/s",
            s.job,
            s.done,
            s.total,
            s.rows,
            s.rows as f64 / secs
        );
        let _ = err.flush();
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Terminal::new()
    }
}

impl Progress for Terminal {
    fn planned(&self, job: &str, windows: usize) {
        if let Ok(mut s) = self.state.lock() {
            s.job = job.to_owned();
            s.total = windows;
            s.started = Instant::now();
            self.draw(&s);
        }
    }

    fn window_done(&self, report: &WindowReport) {
        if let Ok(mut s) = self.state.lock() {
            s.done += 1;
            match report.outcome {
                Outcome::Succeeded { rows_received, .. } => s.rows += rows_received,
                Outcome::Failed { .. } => s.failed += 1,
                Outcome::NotAttempted => {}
            }
            self.draw(&s);
        }
    }
}

/// The text printed after a run: counts, where the rows went, and every failed window's error.
pub fn summary(config: &Config, report: &RunReport) -> String {
    let mut out = String::new();
    if let Some(reason) = &report.skipped {
        let _ = writeln!(out, "{}: skipped: {reason}", report.job);
        return out;
    }
    let count = |f: fn(&Outcome) -> bool| report.windows.iter().filter(|w| f(&w.outcome)).count();
    let ok = count(|o| matches!(o, Outcome::Succeeded { .. }));
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    let not_attempted = count(|o| matches!(o, Outcome::NotAttempted));
    let table = match config.database.url.backend() {
        crate::config::Backend::Postgres => format!("{}.{}", config.database.schema, report.table),
        crate::config::Backend::Sqlite => report.table.clone(),
    };
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
    let _ = writeln!(
        out,
        "; {} rows received, {} new or changed rows written to {table}",
        report.rows_received(),
        report.rows_written()
    );
    for w in &report.windows {
        if let Outcome::Failed { error, .. } = &w.outcome {
            let _ = writeln!(
                out,
                "  failed: account {} {}: {error}",
                w.account_id, w.window
            );
        }
    }
    out
}

/// The table `rokt-export status` prints: one line per job of the config, plus jobs that only the
/// database still knows (removed from the config).
pub fn status_table(config: &Config, rows: &[JobStatus], now: DateTime<Utc>) -> String {
    let header = [
        "job",
        "last run (UTC)",
        "outcome",
        "rows",
        "high-water",
        "next run",
    ];
    let mut lines: Vec<[String; 6]> = Vec::new();
    let none = || "-".to_owned();
    for job in &config.jobs {
        let status = rows.iter().find(|r| r.job == job.name);
        let next = job
            .schedule
            .upcoming(now.with_timezone(&job.timezone), 1)
            .first()
            .map_or_else(none, |t| t.format("%Y-%m-%d %H:%M %Z").to_string());
        lines.push(status_line(&job.name, status, next));
    }
    for r in rows {
        if config.job(&r.job).is_none() {
            lines.push(status_line(&r.job, Some(r), "(not in the config)".into()));
        }
    }
    let mut widths = header.map(str::len);
    for l in &lines {
        for (w, cell) in widths.iter_mut().zip(l.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let row = |out: &mut String, cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths.iter())
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    row(&mut out, &header.map(str::to_owned));
    for l in &lines {
        row(&mut out, l);
    }
    let failed: Vec<&JobStatus> = rows
        .iter()
        .filter(|r| r.last_status.map(|s| s.as_str()) == Some("failed"))
        .collect();
    for r in failed {
        if let Some(e) = &r.last_error {
            let _ = writeln!(out, "\n{}: last error: {e}", r.job);
        }
    }
    out
}

fn status_line(job: &str, status: Option<&JobStatus>, next: String) -> [String; 6] {
    let none = || "-".to_owned();
    let Some(s) = status else {
        return [job.to_owned(), "never".into(), none(), none(), none(), next];
    };
    let high_water = match (s.high_water_min, s.high_water_max) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}..{b}"),
        _ => none(),
    };
    [
        job.to_owned(),
        s.last_started_at
            .map_or_else(none, |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
        s.last_status.map_or_else(none, |st| st.as_str().to_owned()),
        s.last_rows_written.map_or_else(none, |n| n.to_string()),
        high_water,
        next,
    ]
}

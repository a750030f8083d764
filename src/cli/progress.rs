//! The progress line a person at a terminal sees during `--run-now`. Plain log lines take over
//! when stderr is not a terminal.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::Instant;

use crate::export::{Progress, WindowOutcome, WindowResult};

/// A one-line progress display on stderr, redrawn after each window (only on a terminal).
pub(super) struct Terminal {
    enabled: bool,
    state: Mutex<State>,
}

struct State {
    job: String,
    total: usize,
    done: usize,
    failed: usize,
    rows: u64,
    deleted: u64,
    started: Instant,
}

impl Terminal {
    pub(super) fn new() -> Terminal {
        Terminal {
            enabled: std::io::stderr().is_terminal(),
            state: Mutex::new(State {
                job: String::new(),
                total: 0,
                done: 0,
                failed: 0,
                rows: 0,
                deleted: 0,
                started: Instant::now(),
            }),
        }
    }

    /// Ends the progress line so that what follows starts on a fresh line.
    pub(super) fn finish(&self) {
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
        let deleted = if s.deleted > 0 {
            format!(", {} deleted", s.deleted)
        } else {
            String::new()
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{}: {}/{} windows{failed}, {} rows{deleted}, {:.0} rows/s",
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

    fn window_done(&self, result: &WindowResult) {
        if let Ok(mut s) = self.state.lock() {
            s.done += 1;
            match result.outcome {
                WindowOutcome::Succeeded {
                    rows_received,
                    rows_deleted,
                    ..
                } => {
                    s.rows += rows_received;
                    s.deleted += rows_deleted;
                }
                WindowOutcome::Failed { .. } => s.failed += 1,
                WindowOutcome::NotAttempted => {}
            }
            self.draw(&s);
        }
    }
}

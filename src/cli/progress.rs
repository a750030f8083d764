//! What a person at a terminal sees while `--run-now` runs: progress bars on stderr, a line for
//! the job (percent of windows done, rows, rows/s, an ETA) and, when several accounts run side by
//! side, a line for each account while it runs. Log lines print above the bars (`telemetry`'s
//! writer clears and redraws them around each line). Off a terminal there are no bars at all: the
//! log's line per window says the same, one plain line at a time.
//!
//! The lines are one indicatif bar whose text is drawn from [`Board`] at each redraw, so that the
//! job's line and the accounts' lines always show the same moment.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use indicatif::{HumanDuration, MultiProgress, ProgressBar, ProgressState, ProgressStyle};

use crate::export::{Progress, WindowOutcome, WindowResult};
use crate::telemetry::sanitize;

/// How often the bars are redrawn (the rate and the ETA move on while no window ends).
const TICK: Duration = Duration::from_millis(100);

/// The longest account id shown on a bar, in characters.
const MAX_ACCOUNT_CHARS: usize = 24;

/// The most accounts with a line of their own at once; the others are counted on one line.
const MAX_ACCOUNT_LINES: usize = 8;

/// The bars' width, in columns: what the terminal leaves beside the label and the numbers
/// (about [`NUMBERS_WIDTH`] columns), within these bounds; the same on every line, so that the
/// bars line up.
const BAR_WIDTH: (usize, usize) = (10, 40);
const NUMBERS_WIDTH: usize = 52;

/// Whether stderr can show progress bars: a terminal that is not `TERM=dumb` (which cannot move
/// the cursor).
pub(super) fn stderr_shows_bars(stderr_is_terminal: bool, term: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && term.is_none_or(|t| t != "dumb")
}

/// The bars of one run on a terminal; a [`Progress`] for `export::run_job`.
pub(super) struct Bars {
    multi: MultiProgress,
    colour: bool,
    board: Arc<Mutex<Board>>,
    /// `None` before the plan and after [`Bars::finish`].
    bar: Mutex<Option<ProgressBar>>,
}

/// What the lines show.
#[derive(Default)]
struct Board {
    job: String,
    /// Every window of every account.
    total: Tally,
    /// Each account, in the order the accounts run.
    accounts: Vec<(String, Tally)>,
    /// The width of the lines' labels, so that the bars line up.
    label_width: usize,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    windows: u64,
    done: u64,
    rows: u64,
    /// Stored rows the windows deleted (the answer no longer had them, or `--reload`).
    deleted: u64,
    failed: u64,
}

impl Tally {
    fn add(&mut self, outcome: &WindowOutcome) {
        self.done += 1;
        match outcome {
            WindowOutcome::Succeeded {
                rows_received,
                rows_deleted,
                ..
            } => {
                self.rows += *rows_received;
                self.deleted += *rows_deleted;
            }
            WindowOutcome::Failed { .. } => self.failed += 1,
            WindowOutcome::NotAttempted => {}
        }
    }

    /// Some of its windows are done, not all.
    fn running(&self) -> bool {
        self.done > 0 && self.done < self.windows
    }
}

impl Bars {
    /// Bars drawn on `multi` (the `MultiProgress` the logs are printed above); `colour` as the
    /// logs have it.
    pub(super) fn new(multi: MultiProgress, colour: bool) -> Bars {
        Bars {
            multi,
            colour,
            board: Arc::default(),
            bar: Mutex::new(None),
        }
    }

    /// Clears the bars, so that what follows (the summary) starts where they were. Idempotent.
    pub(super) fn finish(&self) {
        if let Some(bar) = lock(&self.bar).take() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }

    fn style(&self) -> ProgressStyle {
        let (board, colour) = (Arc::clone(&self.board), self.colour);
        ProgressStyle::with_template("{board}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "board",
                move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    // Sized at each draw, so that a resized terminal gets bars that fit.
                    let columns = console::Term::stderr()
                        .size_checked()
                        .map_or(80, |(_, columns)| usize::from(columns));
                    let _ = w.write_str(&lock(&board).draw(state.elapsed(), columns, colour));
                },
            )
    }
}

impl Board {
    /// The lines, without a final newline.
    fn draw(&self, elapsed: Duration, columns: usize, colour: bool) -> String {
        let width = columns
            .saturating_sub(self.label_width + 4 + NUMBERS_WIDTH)
            .clamp(BAR_WIDTH.0, BAR_WIDTH.1);
        let mut out = String::new();
        let line = |out: &mut String, label: &str, tally: &Tally, rate: Option<Duration>| {
            let label = format!("{label:<w$}", w = self.label_width);
            let bar = bar(tally.done, tally.windows, width);
            let _ = if colour {
                write!(
                    out,
                    "{} [{}] ",
                    console::style(label).bold().for_stderr(),
                    console::style(bar).cyan().for_stderr()
                )
            } else {
                write!(out, "{label} [{bar}] ")
            };
            out.push_str(&numbers(tally, rate));
        };
        line(&mut out, &self.job, &self.total, Some(elapsed));
        if self.accounts.len() > 1 {
            let running: Vec<&(String, Tally)> =
                self.accounts.iter().filter(|(_, t)| t.running()).collect();
            for (id, tally) in running.iter().take(MAX_ACCOUNT_LINES) {
                out.push('\n');
                line(&mut out, &format!("  {id}"), tally, None);
            }
            if running.len() > MAX_ACCOUNT_LINES {
                let _ = write!(
                    out,
                    "\n  and {} more accounts",
                    running.len() - MAX_ACCOUNT_LINES
                );
            }
        }
        out
    }

    /// Adds the outcome of a window of `account` (as [`label`] writes it); true when an
    /// account's line appears or goes.
    fn add(&mut self, account: &str, outcome: &WindowOutcome) -> bool {
        self.total.add(outcome);
        let Some((_, tally)) = self.accounts.iter_mut().find(|(id, _)| id == account) else {
            return false;
        };
        let was = tally.running();
        tally.add(outcome);
        was != tally.running()
    }
}

/// `=====>     `: `done` of `windows` over `width` columns.
fn bar(done: u64, windows: u64, width: usize) -> String {
    let filled = (done.min(windows) * width as u64)
        .checked_div(windows)
        .map_or(width, |f| usize::try_from(f).unwrap_or(width));
    let mut out = "=".repeat(filled);
    if filled < width {
        out.push(if filled > 0 { '>' } else { ' ' });
        out.push_str(&" ".repeat(width - filled - 1));
    }
    out
}

/// `45% 8/18 windows, 4650 rows, 1638 rows/s, ETA 6s, 12 deleted, 1 failed`; the rate and the ETA
/// when the time elapsed is given (the job's line), the deletions and failures when there are any.
fn numbers(tally: &Tally, elapsed: Option<Duration>) -> String {
    let Tally {
        windows,
        done,
        rows,
        deleted,
        failed,
    } = *tally;
    let percent = (done * 100).checked_div(windows).unwrap_or(100);
    let mut out = format!("{percent:>3}% {done}/{windows} windows, {rows} rows");
    if let Some(elapsed) = elapsed {
        let secs = elapsed.as_secs_f64().max(0.001);
        let _ = write!(out, ", {:.0} rows/s, ETA ", rows as f64 / secs);
        // The mean time per window so far, for the windows left.
        if done == 0 {
            out.push('?');
        } else {
            let left = elapsed.mul_f64(windows.saturating_sub(done) as f64 / done as f64);
            let _ = write!(out, "{:#}", HumanDuration(left));
        }
    }
    if deleted > 0 {
        let _ = write!(out, ", {deleted} deleted");
    }
    if failed > 0 {
        let _ = write!(out, ", {failed} failed");
    }
    out
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Progress for Bars {
    fn planned(&self, job: &str, accounts: &[(&str, usize)]) {
        {
            let mut board = lock(&self.board);
            board.job = job.to_owned();
            board.accounts = accounts
                .iter()
                .map(|(id, windows)| {
                    let tally = Tally {
                        windows: *windows as u64,
                        ..Tally::default()
                    };
                    (label(id).into_owned(), tally)
                })
                .collect();
            board.total.windows = board.accounts.iter().map(|(_, t)| t.windows).sum();
            board.label_width = board
                .accounts
                .iter()
                .map(|(id, _)| 2 + id.chars().count())
                .chain([job.chars().count()])
                .max()
                .unwrap_or(0);
        }
        let bar = self.multi.add(ProgressBar::new(1).with_style(self.style()));
        bar.force_draw();
        bar.enable_steady_tick(TICK);
        *lock(&self.bar) = Some(bar);
    }

    fn window_done(&self, result: &WindowResult) {
        // The board is drawn under indicatif's lock: never hold it while calling indicatif.
        let lines_changed = lock(&self.board).add(&label(&result.account_id), &result.outcome);
        // Redrawn at the next tick; at once when a line appears or goes.
        if lines_changed && let Some(bar) = &*lock(&self.bar) {
            bar.force_draw();
        }
    }
}

/// An account id as the bars show it: from outside (the API's list of accounts), so escaped, and
/// cut.
fn label(account_id: &str) -> std::borrow::Cow<'_, str> {
    sanitize(account_id, MAX_ACCOUNT_CHARS)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Window;
    use chrono::NaiveDate;
    use std::ffi::OsStr;

    #[test]
    fn bars_only_on_a_terminal_that_can_move_the_cursor() {
        assert!(stderr_shows_bars(true, Some(OsStr::new("xterm-256color"))));
        assert!(stderr_shows_bars(true, None));
        assert!(!stderr_shows_bars(true, Some(OsStr::new("dumb"))));
        assert!(!stderr_shows_bars(false, Some(OsStr::new("xterm"))));
    }

    #[test]
    fn a_bar_fills_its_width_by_the_windows_done() {
        assert_eq!(bar(0, 20, 10), "          ");
        assert_eq!(bar(9, 20, 10), "====>     ");
        assert_eq!(bar(19, 20, 10), "=========>");
        assert_eq!(bar(20, 20, 10), "==========");
        assert_eq!(bar(0, 0, 4), "====");
    }

    fn loaded(account: &str, rows: u64) -> WindowResult {
        deleting(account, rows, 0)
    }

    fn deleting(account: &str, rows: u64, deleted: u64) -> WindowResult {
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default();
        WindowResult {
            account_id: account.into(),
            window: Window {
                start: day,
                last: day,
            },
            api_requests: 1,
            outcome: WindowOutcome::Succeeded {
                rows_received: rows,
                rows_written: rows,
                rows_deleted: deleted,
                kept_on_empty: 0,
                rows_skipped_empty: 0,
                rows_missing_dimension: 0,
                warnings: Vec::new(),
            },
        }
    }

    #[test]
    fn the_job_line_and_a_line_per_running_account() {
        let bars = Bars::new(
            MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden()),
            false,
        );
        bars.planned("campaign_daily", &[("3141592", 2), ("2718281", 3)]);
        let board = |bars: &Bars| lock(&bars.board).draw(Duration::from_secs(2), 90, false);
        assert_eq!(
            board(&bars),
            "campaign_daily [                    ]   0% 0/5 windows, 0 rows, 0 rows/s, ETA ?"
        );
        bars.window_done(&loaded("3141592", 100));
        bars.window_done(&loaded("2718281", 50));
        assert_eq!(
            board(&bars),
            "campaign_daily [========>           ]  40% 2/5 windows, 150 rows, 75 rows/s, ETA 3s\n  \
             3141592      [==========>         ]  50% 1/2 windows, 100 rows\n  \
             2718281      [======>             ]  33% 1/3 windows, 50 rows"
        );
        // A finished account's line goes.
        bars.window_done(&loaded("3141592", 100));
        assert_eq!(
            board(&bars),
            "campaign_daily [============>       ]  60% 3/5 windows, 250 rows, 125 rows/s, ETA 1s\n  \
             2718281      [======>             ]  33% 1/3 windows, 50 rows"
        );
        // Deletions, on the job's line and the account's.
        bars.window_done(&deleting("2718281", 50, 7));
        assert_eq!(
            board(&bars),
            "campaign_daily [================>   ]  80% 4/5 windows, 300 rows, 150 rows/s, ETA 1s, 7 deleted\n  \
             2718281      [=============>      ]  66% 2/3 windows, 100 rows, 7 deleted"
        );
    }
}

//! `rokt-export --run-now JOB` / `rokt-export run-now JOB`: one run of one job, then exit.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::RunNowArgs;
use super::exit::{Context as _, Exit};
use super::progress::Bars;
use crate::api::ApiClient;
use crate::config::{Credentials, Env};
use crate::export::{Context, DayRange, NoProgress, Progress, RunRequest};
use crate::store::{Patience, StillRunning, Store, Trigger};

/// `bars`: the progress display when stderr is a terminal (else the log says what happens).
pub(super) async fn run_now(
    path: &Path,
    env: &Env,
    args: &RunNowArgs,
    bars: Option<Bars>,
) -> Result<(), Exit> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(Exit::usage(format!("--from {from} is after --to {to}")));
    }
    let config = super::load_config(path, env)?;
    config.job(&args.job)?;
    let credentials = Credentials::from_env(env)?;
    let store = super::open_store(&config).await?;
    // Runs a killed process left `running` (e.g. an earlier --run-now): only jobs whose lock no
    // live process holds are touched, so a daemon's or replica's live runs are safe.
    if let Err(e) = store.fail_stale_runs().await {
        tracing::warn!(error = %e, "cannot mark runs left running by a stopped process as failed");
    }
    let api = ApiClient::new(&config.api, credentials).context("cannot build the HTTP client")?;
    let ctx = Context::new(Arc::new(config), api, store.clone());
    let mut request = RunRequest::new(&args.job, Trigger::RunNow);
    request.accounts = args.account.clone();
    request.reload = args.reload;
    request.allow_empty = args.allow_empty;
    if args.from.is_some() || args.to.is_some() {
        request.range = DayRange::Explicit {
            from: args.from,
            to: args.to,
        };
    }
    let signals = super::signals::Signals::install()
        .map_err(|e| Exit::failed(format!("cannot install the SIGTERM/SIGINT handlers: {e}")))?;
    let stop = request.stop.clone();
    let grace = ctx.config.server.shutdown_grace;
    let progress: &dyn Progress = match &bars {
        Some(bars) => bars,
        None => &NoProgress,
    };
    let mut run = Box::pin(crate::export::run_job(&ctx, &request, progress));
    // The first SIGTERM/SIGINT: no new window; the windows in flight get the grace period. A
    // second one (or the end of the grace period) drops the run: its windows roll back.
    let result = tokio::select! {
        result = &mut run => Some(result),
        () = signals.nth(1) => {
            stop.cancel();
            tracing::info!(
                grace_secs = grace.as_secs(),
                "stopping: no new window; the windows in flight may finish within the grace period \
                 (a second signal stops at once)"
            );
            tokio::select! {
                result = &mut run => Some(result),
                () = signals.nth(2) => None,
                () = tokio::time::sleep(grace) => None,
            }
        }
    };
    // An unfinished run is dropped here: its window's transaction rolls back, its lock goes.
    drop(run);
    if let Some(bars) = &bars {
        bars.finish();
    }
    close_left_runs(&store, &args.job).await;
    store.close().await;
    match result {
        Some(result) => super::summary::report(&ctx.config, result, super::summary::Detail::Table),
        None => Err(Exit::failed(
            "stopped before the run finished: its windows in progress were rolled back; the same \
             command resumes after the last committed window",
        )),
    }
}

/// The `export_runs.error` of the windows a `--run-now` could not close itself.
const LEFT_RUNNING_ERROR: &str = "failed: the run could not record this window's end (the database \
     was unreachable when the window failed, or the run was stopped); nothing of the window was \
     committed";

/// How long closing the run's windows is tried: the run's lock may look held a moment after the
/// run dropped it (a rolled-back run's lock connection is closed, and the server notices a moment
/// later); held longer, a live process (a daemon, a replica) runs the job, and its rows are not
/// ours to touch. While the database does not answer, closing is tried for 15 s.
const CLOSING: Patience = Patience {
    lock_held: Duration::from_secs(3),
    unreachable: Duration::from_secs(15),
};

/// Marks the job's `export_runs` rows that are still `running` after the run. When the database
/// vanished mid-window, the window failed and so did recording its failure; when the run was
/// stopped, its window in progress was dropped: either way its row would stay `running` until the
/// next start found it. The run's lock is released by now, so taking it proves no live process
/// runs the job (else nothing is touched). While the database does not answer this is retried
/// (see [`CLOSING`]); if it stays away the row stays `running`, and the next `run` or
/// `--run-now` marks it failed (nothing can reach a database that is gone).
async fn close_left_runs(store: &Store, job: &str) {
    let closed = store
        .fail_running_runs_once_free(job, LEFT_RUNNING_ERROR, CLOSING, |e| {
            tracing::warn!(error = %e, "cannot close this run's windows yet; retrying");
        })
        .await;
    match closed {
        Ok(0) | Err(StillRunning::LockHeld) => {}
        Ok(runs) => tracing::warn!(
            runs,
            "marked windows failed whose end could not be recorded when they ended"
        ),
        Err(StillRunning::Store(e)) => tracing::warn!(
            error = %e,
            "the database stayed unreachable: windows of this run may still show `running`; the \
             next start of `run` or `--run-now` marks them failed"
        ),
    }
}

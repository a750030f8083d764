//! `rokt-export --run-now JOB` / `rokt-export run-now JOB`: one run of one job, then exit.

use std::path::Path;
use std::sync::Arc;

use super::RunNowArgs;
use super::exit::{Context as _, Exit};
use crate::api::ApiClient;
use crate::config::{Credentials, Env};
use crate::export::{Context, DayRange, RunRequest};
use crate::store::Trigger;

pub(super) async fn run_now(path: &Path, env: &Env, args: &RunNowArgs) -> Result<(), Exit> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(Exit::usage(format!("--from {from} is after --to {to}")));
    }
    let config = super::load_config(path, env)?;
    if config.job(&args.job).is_none() {
        let known: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
        return Err(Exit::config(format!(
            "no job named \"{}\" in {}; jobs are: {}",
            args.job,
            path.display(),
            known.join(", ")
        )));
    }
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
    let progress = super::progress::Terminal::new();
    let result = crate::export::run_job(&ctx, &request, &progress).await;
    progress.finish();
    store.close().await;
    super::summary::report(&ctx.config, result)
}

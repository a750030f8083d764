//! `rokt-export discover`: lists the accounts the credentials read and what each report offers
//! them, and prints ready-to-paste `[[jobs]]` blocks ([`crate::discover`]), to stdout or to
//! `--output FILE` (an existing file only with `--force`).
//!
//! It needs no jobs: only `[api]` is read from the config file, and a missing file means the
//! defaults (with `ROKT_API_BASE_URL`, as everywhere).

use std::io::Write as _;
use std::path::Path;

use chrono::Utc;

use super::DiscoverArgs;
use super::exit::Exit;
use crate::api::ApiClient;
use crate::catalogue::Report;
use crate::config::{Config, Credentials, Env};
use crate::discover::DiscoverError;

pub(super) async fn discover(path: &Path, env: &Env, args: &DiscoverArgs) -> Result<(), Exit> {
    // Before any request: a file that would be overwritten.
    if let Some(output) = &args.output
        && !args.force
        && output.exists()
    {
        return Err(Exit::usage(format!(
            "{} exists; discover never overwrites a file without --force",
            output.display()
        )));
    }
    let api_config = Config::load_api(path, env)?;
    let credentials = Credentials::from_env(env)?;
    let api = ApiClient::new(&api_config, credentials)?;
    let reports = match args.report {
        Some(r) => vec![r],
        None => Report::ALL.to_vec(),
    };
    let discovery = crate::discover::discover(&api, &args.account, &reports)
        .await
        .map_err(|e| match e {
            DiscoverError::Api(e) => Exit::from(e),
            e @ DiscoverError::UnknownAccount { .. } => Exit::config(e.to_string()),
        })?;
    let text = crate::discover::jobs_toml(&discovery, Utc::now().date_naive());
    let Some(output) = &args.output else {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Exit::failed(format!("cannot write to stdout: {e}")));
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        // Not `exists()` then `create`: another process may create it in between.
        options.create_new(true);
    }
    let exists = || {
        Exit::usage(format!(
            "{} exists; discover never overwrites a file without --force",
            output.display()
        ))
    };
    options
        .open(output)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => exists(),
            _ => Exit::failed(format!("cannot write {}: {e}", output.display())),
        })?;
    let jobs = text.lines().filter(|l| *l == "[[jobs]]").count();
    println!(
        "wrote {jobs} job{} for {} account{} to {}; check it with `rokt-export --config {} validate`",
        if jobs == 1 { "" } else { "s" },
        discovery.accounts.len(),
        if discovery.accounts.len() == 1 {
            ""
        } else {
            "s"
        },
        output.display(),
        output.display(),
    );
    Ok(())
}

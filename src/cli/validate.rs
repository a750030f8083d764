//! `rokt-export validate`: parses and checks the config without touching the network or the
//! database, and prints each job with its next three fire times. With `--online` it then asks the
//! API and the database what the offline check cannot know ([`crate::check`]) and prints each
//! finding.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::ValidateArgs;
use super::exit::{self, Exit};
use crate::api::retry::Backoff;
use crate::check::{OnlineReport, Severity};
use crate::config::{Accounts, Config, Credentials, Env, JobKind};

pub(super) async fn validate(path: &Path, env: &Env, args: &ValidateArgs) -> Result<(), Exit> {
    let config = super::load_config(path, env)?;
    print!("{}", describe_config(&config, env, Utc::now()));
    if !args.online {
        return Ok(());
    }
    let report =
        crate::check::check_online(&config, Credentials::from_env(env), Backoff::default()).await;
    print!("{}", describe_online(&report));
    let (problems, unreachable) = (
        report.count(Severity::Problem),
        report.count(Severity::Unreachable),
    );
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match report.worst() {
        Severity::Ok => Ok(()),
        Severity::Problem => Err(Exit::config(format!(
            "validate --online found {problems} problem{} to fix (listed above)",
            plural(problems)
        ))),
        Severity::Unreachable => Err(Exit::new(
            exit::UNAVAILABLE,
            format!(
                "validate --online could not check {unreachable} thing{} (listed above): the API \
                 or the database did not answer",
                plural(unreachable)
            ),
        )),
    }
}

/// The lines `validate --online` prints: each finding with its severity.
fn describe_online(report: &OnlineReport) -> String {
    let mut out = String::from("\nonline checks\n");
    for f in &report.findings {
        let mark = match f.severity {
            Severity::Ok => "ok",
            Severity::Problem => "PROBLEM",
            Severity::Unreachable => "UNREACHABLE",
        };
        // The text may quote the API or the database.
        let text = crate::telemetry::sanitize_message(&f.text, 2_000);
        let _ = writeln!(out, "  {mark:<11} {}: {text}", f.scope);
    }
    out
}

/// The text `validate` prints: each job with its next three fire times in its time zone.
fn describe_config(config: &Config, env: &Env, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let n = config.jobs.len();
    let _ = writeln!(
        out,
        "{} is valid: {n} job{}",
        config.path.display(),
        if n == 1 { "" } else { "s" }
    );
    let _ = writeln!(out, "  api       {}", config.api.base_url);
    let _ = writeln!(out, "  database  {}", config.database.url);
    let credentials = match Credentials::from_env(env) {
        Ok(c) => format!("from {}", c.source()),
        Err(e) => format!("not usable yet ({e})"),
    };
    let _ = writeln!(out, "  credentials {credentials}");
    for job in &config.jobs {
        let _ = writeln!(out);
        let _ = writeln!(out, "{} ({} job)", job.name, job.kind_name());
        let _ = writeln!(out, "  endpoint  {}", job.endpoint_display());
        let accounts = match &job.accounts {
            Accounts::All => "all (every account the credentials can read)".to_owned(),
            Accounts::List(ids) => ids.join(", "),
        };
        let _ = writeln!(out, "  accounts  {accounts}");
        let table = super::qualified(config, &job.table);
        let _ = writeln!(out, "  table     {table}");
        let key = match &job.kind {
            JobKind::Query(q) => {
                let mut key = vec!["account_id", "date"];
                key.extend(q.key.iter().map(String::as_str));
                let described: Vec<&str> = q
                    .dimensions
                    .iter()
                    .map(String::as_str)
                    .filter(|d| !q.key.iter().any(|k| k == d))
                    .collect();
                if described.is_empty() {
                    key.join(", ")
                } else {
                    format!(
                        "{} ({} last value wins: not part of a row's identity)",
                        key.join(", "),
                        described.join(", ")
                    )
                }
            }
            JobKind::Generic(g) => {
                let mut key = vec!["account_id".to_owned(), "window_start".to_owned()];
                key.extend(g.key.iter().map(|k| crate::export::generic::column_name(k)));
                key.join(", ")
            }
        };
        let _ = writeln!(out, "  key       {key}");
        let zone = job
            .timezone
            .map_or("each account's own zone".to_owned(), |tz| {
                tz.name().to_owned()
            });
        let currency = job
            .currency
            .clone()
            .unwrap_or_else(|| "each account's own currency".to_owned());
        let _ = writeln!(
            out,
            "  window    {} days per request, re-reads the last {} days, {currency}, {zone}",
            job.window_days, job.lookback_days,
        );
        let fires: Vec<String> = job
            .schedule
            .upcoming(now.with_timezone(&job.cron_zone()), 3)
            .iter()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
            .collect();
        let _ = writeln!(
            out,
            "  schedule  \"{}\"; next: {}",
            job.schedule.source(),
            fires.join(", ")
        );
    }
    out
}

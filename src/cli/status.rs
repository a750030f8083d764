//! `rokt-export status`: each job's last run, its outcome, rows, high-water mark, latest
//! verification and next fire time, from the database's run history and `export_checks`.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::exit::{Context as _, Exit};
use super::table::Align;
use crate::config::{Config, Env};
use crate::store::{JobStatus, LastCheck};
use crate::telemetry::sanitize;

pub(super) async fn status(path: &Path, env: &Env) -> Result<(), Exit> {
    let config = super::load_config(path, env)?;
    let store = super::open_store(&config).await?;
    let rows = store.status().await;
    let checks = store.last_checks().await;
    store.close().await;
    let rows = rows.context("cannot read the run history")?;
    let checks = checks.context("cannot read the verifications (export_checks)")?;
    print!("{}", status_table(&config, &rows, &checks, Utc::now()));
    Ok(())
}

/// The table `rokt-export status` prints: one line per job of the config, plus jobs that only the
/// database still knows (removed from the config).
fn status_table(
    config: &Config,
    rows: &[JobStatus],
    checks: &[LastCheck],
    now: DateTime<Utc>,
) -> String {
    let header = [
        "job",
        "last run (UTC)",
        "outcome",
        "rows",
        "high-water",
        "verified (UTC)",
        "next run",
    ];
    let mut lines: Vec<[String; 7]> = Vec::new();
    let verified = |job: &str| verified(checks.iter().find(|c| c.job == job));
    let none = || "-".to_owned();
    for job in &config.jobs {
        let status = rows.iter().find(|r| r.job == job.name);
        let next = job
            .schedule
            .upcoming(now.with_timezone(&job.cron_zone()), 1)
            .first()
            .map_or_else(none, |t| t.format("%Y-%m-%d %H:%M %Z").to_string());
        lines.push(status_line(&job.name, status, verified(&job.name), next));
    }
    for r in rows {
        if config.job(&r.job).is_err() {
            // A name only the database knows: anything may be in it.
            let job = sanitize(&r.job, 200);
            let check = verified(&r.job);
            lines.push(status_line(
                &job,
                Some(r),
                check,
                "(not in the config)".into(),
            ));
        }
    }
    let mut out = String::new();
    super::table::write(&mut out, "", header, [Align::Left; 7], &lines);
    let failed: Vec<&JobStatus> = rows
        .iter()
        .filter(|r| r.last_status.map(|s| s.as_str()) == Some("failed"))
        .collect();
    for r in failed {
        if let Some(e) = &r.last_error {
            let _ = writeln!(
                out,
                "\n{}: last error: {}",
                sanitize(&r.job, 200),
                sanitize(e, super::summary::MAX_ERROR_CHARS)
            );
        }
    }
    out
}

/// The latest verification of a job, in a few words: when, and how many days differed.
fn verified(check: Option<&LastCheck>) -> String {
    let Some(c) = check else {
        return "-".to_owned();
    };
    let when = c.checked_at.format("%Y-%m-%d %H:%M");
    match c.days_differ {
        0 if c.days == 1 => format!("{when}: 1 day matches"),
        0 => format!("{when}: {} days match", c.days),
        n => format!("{when}: {n} of {} days differ", c.days),
    }
}

fn status_line(
    job: &str,
    status: Option<&JobStatus>,
    verified: String,
    next: String,
) -> [String; 7] {
    let none = || "-".to_owned();
    let Some(s) = status else {
        return [
            job.to_owned(),
            "never".into(),
            none(),
            none(),
            none(),
            verified,
            next,
        ];
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
        match (s.last_rows_written, s.last_rows_deleted) {
            (Some(w), Some(d)) if d > 0 => format!("{w} (-{d})"),
            (Some(w), _) => w.to_string(),
            (None, _) => none(),
        },
        high_water,
        verified,
        next,
    ]
}

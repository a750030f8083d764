//! `rokt-export validate --online`: what the offline check cannot know, asked of the API and the
//! database without changing either.
//!
//! - The API: a token for the credentials, and the accounts they read (for `accounts = "all"`, how
//!   many); each listed account must be among them.
//! - Each Query API job against each of its accounts' `/help`: every dimension and metric it names
//!   must be offered to that account (what is available varies by account: a GB account has no
//!   `campaign_objective`), with a "did you mean" from what the account offers; and the zone and
//!   currency each account would be read in.
//! - The database: it answers, and the role may create and alter the tables
//!   ([`crate::store::probe`], which creates nothing that stays).
//!
//! Each finding is [`Severity::Ok`], [`Severity::Problem`] (something to fix in the configuration,
//! the credentials or the database role) or [`Severity::Unreachable`] (the API or the database did
//! not answer after retries, so it could not be checked). The command turns the worst into its
//! exit code.

use std::collections::HashMap;
use std::fmt;

use futures_util::future::join_all;

use crate::api::retry::Backoff;
use crate::api::{Account, ApiClient, ApiError, Offer};
use crate::catalogue::Report;
use crate::config::{Accounts, Config, Credentials, CredentialsError, Job, JobKind, QueryJob};

/// How serious a finding is, from best to worst (the worst decides `validate --online`'s exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    /// The API or the database could not be reached: not checked.
    Unreachable,
    /// Something to fix.
    Problem,
}

/// One thing found: what it is about (`api`, `database`, a job's name), how it came out, and a
/// sentence (it may quote the API or the database: escape it before printing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub scope: String,
    pub severity: Severity,
    pub text: String,
}

/// Everything [`check_online`] found, in the order checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnlineReport {
    pub findings: Vec<Finding>,
}

impl OnlineReport {
    /// The worst severity (`Ok` when nothing was found).
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok)
    }

    /// How many findings are of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    fn push(&mut self, scope: &str, severity: Severity, text: impl fmt::Display) {
        self.findings.push(Finding {
            scope: scope.to_owned(),
            severity,
            text: text.to_string(),
        });
    }
}

/// Checks `config` against the API (with `credentials`, retrying as `backoff` says) and the
/// database. Never changes anything in either.
pub async fn check_online(
    config: &Config,
    credentials: Result<Credentials, CredentialsError>,
    backoff: Backoff,
) -> OnlineReport {
    let mut report = OnlineReport::default();
    let accounts = match credentials {
        Err(e) => {
            report.push("credentials", Severity::Problem, e);
            None
        }
        Ok(credentials) => match ApiClient::with_backoff(&config.api, credentials, backoff) {
            Err(e) => {
                report.push("api", Severity::Problem, e);
                None
            }
            Ok(api) => check_api(config, &api, &mut report)
                .await
                .map(|accounts| (api, accounts)),
        },
    };
    match accounts {
        Some((api, accounts)) => check_jobs(config, &api, &accounts, &mut report).await,
        None => report.push(
            "jobs",
            Severity::Unreachable,
            "not checked against the API: no accounts list",
        ),
    }
    check_database(config, &mut report).await;
    report
}

/// The API's severity for an error.
fn severity_of(e: &ApiError) -> Severity {
    if e.is_unavailable() {
        Severity::Unreachable
    } else {
        Severity::Problem
    }
}

/// A token and the accounts list.
async fn check_api(
    config: &Config,
    api: &ApiClient,
    report: &mut OnlineReport,
) -> Option<Vec<Account>> {
    match api.accounts().await {
        Ok(accounts) => {
            let ids: Vec<&str> = accounts.iter().map(|a| a.account_id.as_str()).collect();
            report.push(
                "api",
                Severity::Ok,
                format_args!(
                    "{}: a token, and {} account{} these credentials read ({})",
                    config.api.base_url,
                    ids.len(),
                    if ids.len() == 1 { "" } else { "s" },
                    if ids.is_empty() {
                        "none".to_owned()
                    } else {
                        ids.join(", ")
                    }
                ),
            );
            Some(accounts)
        }
        Err(e) => {
            report.push("api", severity_of(&e), e);
            None
        }
    }
}

/// The accounts a job reads that the credentials read, and the listed ones they do not.
fn job_accounts<'a>(job: &Job, readable: &'a [Account]) -> (Vec<&'a Account>, Vec<String>) {
    match &job.accounts {
        Accounts::All => (readable.iter().collect(), Vec::new()),
        Accounts::List(ids) => {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for id in ids {
                match readable.iter().find(|a| a.account_id == *id) {
                    Some(a) => found.push(a),
                    None => missing.push(id.clone()),
                }
            }
            (found, missing)
        }
    }
}

async fn check_jobs(
    config: &Config,
    api: &ApiClient,
    readable: &[Account],
    report: &mut OnlineReport,
) {
    // Every (account, report) help the jobs need, asked once and side by side (the client's
    // semaphore bounds how many are in flight).
    let mut wanted: Vec<(String, Report)> = Vec::new();
    for job in &config.jobs {
        if let JobKind::Query(q) = &job.kind {
            for a in job_accounts(job, readable).0 {
                let pair = (a.account_id.clone(), q.report);
                if !wanted.contains(&pair) {
                    wanted.push(pair);
                }
            }
        }
    }
    let answers = join_all(wanted.iter().map(|(id, r)| api.help(id, *r))).await;
    let helps: HashMap<(String, Report), Result<Offer, ApiError>> =
        wanted.into_iter().zip(answers).collect();

    for job in &config.jobs {
        let scope = job.name.as_str();
        let (accounts, missing) = job_accounts(job, readable);
        match &job.accounts {
            Accounts::All => report.push(
                scope,
                if accounts.is_empty() {
                    Severity::Problem
                } else {
                    Severity::Ok
                },
                format_args!(
                    "accounts = \"all\": {} account{} these credentials read",
                    accounts.len(),
                    if accounts.len() == 1 { "" } else { "s" }
                ),
            ),
            Accounts::List(_) => {
                for id in &missing {
                    report.push(
                        scope,
                        Severity::Problem,
                        format_args!(
                            "account {id} is not among the accounts these credentials read \
                             (GET /v1/query/accounts): check the id, or the app's access to it"
                        ),
                    );
                }
            }
        }
        let JobKind::Query(q) = &job.kind else {
            if !accounts.is_empty() {
                report.push(
                    scope,
                    Severity::Ok,
                    format_args!(
                        "accounts {} readable (a generic job's endpoint is first called by its \
                         first run)",
                        ids(&accounts)
                    ),
                );
            }
            continue;
        };
        for account in accounts {
            let key = (account.account_id.clone(), q.report);
            match helps.get(&key) {
                Some(Ok(offer)) => check_slugs(scope, job, q, account, offer, report),
                Some(Err(e)) => report.push(
                    scope,
                    severity_of(e),
                    format_args!(
                        "account {}: cannot read what the {} report offers it: {e}",
                        account.account_id,
                        q.report.name()
                    ),
                ),
                None => {}
            }
        }
    }
}

fn ids(accounts: &[&Account]) -> String {
    accounts
        .iter()
        .map(|a| a.account_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One account's `/help` against a job's slugs, and the units the account would be read in.
fn check_slugs(
    scope: &str,
    job: &Job,
    q: &QueryJob,
    account: &Account,
    offer: &Offer,
    report: &mut OnlineReport,
) {
    let id = &account.account_id;
    let mut lacks = Vec::new();
    for (what, asked, offered) in [
        ("dimension", &q.dimensions, &offer.dimensions),
        ("metric", &q.metrics, &offer.metrics),
    ] {
        for slug in asked {
            if offered.iter().any(|s| s.slug == *slug) {
                continue;
            }
            // A slug the report knows is simply not this account's; another may be a typo.
            let known = q.report.dimension(slug).is_some() || q.report.metric(slug).is_some();
            let hint = if known {
                None
            } else {
                crate::config::suggest(slug, offered.iter().map(|s| s.slug.as_str()))
            };
            let hint = hint
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            lacks.push(format!("{what} \"{slug}\"{hint}"));
        }
    }
    if !lacks.is_empty() {
        report.push(
            scope,
            Severity::Problem,
            format_args!(
                "account {id} lacks {} in the {} report (GET /v1/query/accounts/{id}/{}/help \
                 lists what it has); a run would fail for this account",
                lacks.join(", "),
                q.report.name(),
                q.report.name(),
            ),
        );
    }
    let own = " (the account's own)";
    let zone = match job.timezone {
        Some(tz) => Ok(tz.name().to_owned()),
        None => account
            .timezone
            .as_deref()
            .filter(|z| z.parse::<chrono_tz::Tz>().is_ok())
            .map(|z| format!("{z}{own}"))
            .ok_or("the job sets no `timezone` and the accounts list gives no usable zone for it"),
    };
    let currency = match &job.currency {
        Some(c) => Ok(c.clone()),
        None => account
            .currency
            .as_deref()
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
            .map(|c| format!("{c}{own}"))
            .ok_or("the job sets no `currency` and the accounts list gives no usable one for it"),
    };
    match (zone, currency) {
        (Ok(zone), Ok(currency)) if lacks.is_empty() => report.push(
            scope,
            Severity::Ok,
            format_args!(
                "account {id}: every dimension and metric offered; read in {zone}, {currency}"
            ),
        ),
        (Ok(_), Ok(_)) => {}
        (zone, currency) => {
            for why in [zone.err(), currency.err()].into_iter().flatten() {
                report.push(
                    scope,
                    Severity::Problem,
                    format_args!("account {id}: {why}; set it on the job or in [defaults]"),
                );
            }
        }
    }
}

/// The tables a run touches: the core ones and every job's.
fn tables(config: &Config) -> Vec<String> {
    let mut tables: Vec<String> = ["export_runs", "export_state"]
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    for job in &config.jobs {
        if !tables.contains(&job.table) {
            tables.push(job.table.clone());
        }
    }
    tables
}

/// The database answers (four attempts, 0.5 s, 1 s and 2 s apart, as the other commands try),
/// and the role may create and alter the tables.
async fn check_database(config: &Config, report: &mut OnlineReport) {
    let tables = tables(config);
    let probed =
        crate::store::while_unavailable(|_| crate::store::probe(&config.database, &tables)).await;
    let url = config.database.url.redacted();
    match probed {
        Err(e) => {
            let severity = if e.is_unavailable() {
                Severity::Unreachable
            } else {
                Severity::Problem
            };
            let text = e.to_string();
            if text.contains(&url) {
                report.push("database", severity, text);
            } else {
                report.push("database", severity, format_args!("{url}: {text}"));
            }
        }
        Ok(probe) => {
            report.push(
                "database",
                Severity::Ok,
                format_args!("{url}: {}", probe.who),
            );
            for note in probe.notes {
                report.push("database", Severity::Ok, note);
            }
            for problem in probe.problems {
                report.push("database", Severity::Problem, problem);
            }
        }
    }
}

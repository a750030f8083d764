//! `rokt-export verify JOB`: compares a job's table with the API's own totals (see
//! `crate::verify`) and prints the days that differ, as a table or as JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::exit::{Context as _, Exit};
use super::table::Align;
use super::{VerifyArgs, VerifyFormat};
use crate::api::ApiClient;
use crate::config::{Credentials, Env};
use crate::export::{Context, Window};
use crate::store::CheckTrigger;
use crate::telemetry::sanitize;
use crate::verify::{AccountCheck, AccountOutcome, Days, Verification, VerifyRequest};

/// The longest text from outside (an error, a note) quoted per account, in characters.
const MAX_TEXT_CHARS: usize = 1_000;

pub(super) async fn verify(path: &Path, env: &Env, args: &VerifyArgs) -> Result<(), Exit> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(Exit::usage(format!("--from {from} is after --to {to}")));
    }
    let config = super::load_config(path, env)?;
    let job = config.job(&args.job)?;
    // Before credentials and the database: a job that cannot be verified says so at once.
    crate::verify::verifiable(job)?;
    let credentials = Credentials::from_env(env)?;
    let store = super::open_store(&config).await?;
    let api = ApiClient::new(&config.api, credentials).context("cannot build the HTTP client")?;
    let ctx = Context::new(Arc::new(config), api, store.clone());
    let days = if args.from.is_some() || args.to.is_some() {
        Days::Explicit {
            from: args.from,
            to: args.to,
        }
    } else {
        Days::Recent
    };
    let request = VerifyRequest {
        job: args.job.clone(),
        days,
        accounts: args.account.clone(),
        trigger: CheckTrigger::Verify,
    };
    let result = crate::verify::verify(&ctx, &request).await;
    store.close().await;
    let verification = result?;
    let table = super::qualified(&ctx.config, &verification.table);
    match args.format {
        VerifyFormat::Text => print!("{}", text(&verification, &table)),
        VerifyFormat::Json => println!("{}", as_json(&verification, &table)),
    }
    match exit_code(&verification) {
        super::exit::SUCCESS => Ok(()),
        code => Err(Exit::quietly(code)),
    }
}

/// 0 when every day checked matches; else the most actionable account failure (78, 69), else 1.
fn exit_code(v: &Verification) -> u8 {
    match v.worst_failure() {
        Some(kind) => Exit::code_of(kind),
        None if v.days_differ() > 0 => super::exit::RUN_FAILED,
        None => super::exit::SUCCESS,
    }
}

/// What `verify` prints: what was compared, each account's days (or why not), a table of the
/// days that differ, and a last line with the counts.
fn text(v: &Verification, table: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (table {table}): {} compared per account and day with the API's daily totals",
        v.job,
        v.checked.join(", ")
    );
    if !v.not_checked.is_empty() {
        let listed: Vec<String> = v
            .not_checked
            .iter()
            .map(|n| format!("{} ({})", n.metric, n.why.describe()))
            .collect();
        let _ = writeln!(out, "not checked: {}", listed.join(", "));
    }
    for a in &v.accounts {
        let _ = writeln!(out, "{}", account_line(v, a));
        if let AccountOutcome::Checked { notes, .. } = &a.outcome {
            for note in notes {
                let _ = writeln!(out, "  note: {}", sanitize(note, MAX_TEXT_CHARS));
            }
        }
    }

    let header = [
        "account",
        "day",
        "metric",
        "table",
        "API",
        "difference",
        "table rows",
    ];
    let mut lines: Vec<[String; 7]> = Vec::new();
    for a in &v.accounts {
        let AccountOutcome::Checked { checks, .. } = &a.outcome else {
            continue;
        };
        for day in checks.iter().filter(|d| !d.matches() && !d.not_loaded()) {
            for (metric, m) in v.checked.iter().zip(&day.metrics) {
                if m.matches {
                    continue;
                }
                lines.push([
                    sanitize(&a.account_id, 80).into_owned(),
                    day.date.to_string(),
                    metric.clone(),
                    m.table.to_string(),
                    m.api.to_string(),
                    m.difference()
                        .map_or_else(|| "(too large)".to_owned(), |d| signed(&d.to_string())),
                    day.table_rows.to_string(),
                ]);
            }
        }
    }
    if !lines.is_empty() {
        out.push('\n');
        super::table::write(&mut out, "", header, [Align::Left; 7], &lines);
    }
    let differ = v.days_differ();
    if differ > 0 {
        let _ = writeln!(
            out,
            "\nTo load days again: rokt-export run-now {} --from DAY --to DAY (--account ID).\n\
             A day that still differs after that is answered differently by the report and by \
             its totals\n(a row cap, rows it drops): see README, \"Verifying a table\".",
            v.job
        );
    }
    let _ = writeln!(
        out,
        "\n{} checked, {} differ{}, {} API request{}",
        plural(v.days_checked(), "day"),
        differ,
        if differ == 1 { "s" } else { "" },
        v.api_requests(),
        if v.api_requests() == 1 { "" } else { "s" },
    );
    out
}

/// One line per account: its units and days, what was found when it is not a table line, or
/// why it was not checked.
fn account_line(v: &Verification, a: &AccountCheck) -> String {
    let id = sanitize(&a.account_id, 80);
    let units = match (&a.zone, &a.currency) {
        (Some(zone), Some(currency)) => format!(" ({}, {currency})", zone.name()),
        _ => String::new(),
    };
    match &a.outcome {
        AccountOutcome::Checked { days, checks, .. } => {
            let with_numbers = checks.iter().filter(|c| c.api_has_row).count();
            if a.no_rows_loaded() {
                let api = match with_numbers {
                    0 => "nor has the API any: nothing to compare".to_owned(),
                    n => format!(
                        "the API has numbers for {n} of {}; load them with `rokt-export \
                         run-now {} --account {id} --from {} --to {}`",
                        plural(checks.len() as u64, "day"),
                        v.job,
                        days.start,
                        days.last
                    ),
                };
                return format!("account {id}{units}: {days}: no rows loaded ({api})");
            }
            let differ = checks.iter().filter(|c| !c.matches()).count();
            let mut line = format!(
                "account {id}{units}: {days}: {}",
                match differ {
                    0 => "every day matches".to_owned(),
                    n => format!("{} of {} differ", n, plural(checks.len() as u64, "day")),
                }
            );
            for span in a.not_loaded() {
                let _ = write!(
                    line,
                    "\n  {}: not loaded (the table has no rows, the API has numbers)",
                    span_text(span)
                );
            }
            line
        }
        AccountOutcome::NothingToCheck { why } => {
            format!("account {id}{units}: nothing to check: {why}")
        }
        AccountOutcome::Failed { error, .. } => format!(
            "account {id}{units}: not verified: {}",
            sanitize(error, MAX_TEXT_CHARS)
        ),
    }
}

/// The JSON `verify --format json` prints. Numbers are strings of their exact decimal.
fn as_json(v: &Verification, table: &str) -> Value {
    let accounts: Vec<Value> = v
        .accounts
        .iter()
        .map(|a| {
            let mut o = json!({
                "account_id": a.account_id,
                "timezone": a.zone.map(|z| z.name().to_owned()),
                "currency": a.currency,
                "api_requests": a.api_requests,
            });
            match &a.outcome {
                AccountOutcome::Checked {
                    days,
                    checks,
                    notes,
                } => {
                    o["status"] = json!(if a.no_rows_loaded() {
                        "no_rows_loaded"
                    } else {
                        "checked"
                    });
                    o["from"] = json!(days.start.to_string());
                    o["to"] = json!(days.last.to_string());
                    o["days_checked"] = json!(checks.len());
                    o["days_differ"] = json!(checks.iter().filter(|c| !c.matches()).count());
                    o["not_loaded"] = a
                        .not_loaded()
                        .into_iter()
                        .map(|w| json!({"from": w.start.to_string(), "to": w.last.to_string()}))
                        .collect();
                    o["notes"] = json!(notes);
                }
                AccountOutcome::NothingToCheck { why } => {
                    o["status"] = json!("nothing_to_check");
                    o["reason"] = json!(why);
                }
                AccountOutcome::Failed { error, kind } => {
                    o["status"] = json!("failed");
                    o["error"] = json!(error);
                    o["exit_code"] = json!(Exit::code_of(*kind));
                }
            }
            o
        })
        .collect();
    let mut differences = Vec::new();
    for a in &v.accounts {
        let AccountOutcome::Checked { checks, .. } = &a.outcome else {
            continue;
        };
        for day in checks.iter().filter(|d| !d.matches()) {
            for (metric, m) in v.checked.iter().zip(&day.metrics) {
                if m.matches {
                    continue;
                }
                differences.push(json!({
                    "account_id": a.account_id,
                    "date": day.date.to_string(),
                    "metric": metric,
                    "table": m.table.to_string(),
                    "api": m.api.to_string(),
                    "difference": m.difference().map(|d| d.to_string()),
                    "table_rows": day.table_rows,
                }));
            }
        }
    }
    let not_checked: Vec<Value> = v
        .not_checked
        .iter()
        .map(|n| json!({"metric": n.metric, "reason": n.why.describe()}))
        .collect();
    json!({
        "job": v.job,
        "table": table,
        "checked_at": v.checked_at.to_rfc3339(),
        "outcome": v.outcome().as_str(),
        "exit_code": exit_code(v),
        "checked": v.checked,
        "not_checked": not_checked,
        "accounts": accounts,
        "differences": differences,
        "days_checked": v.days_checked(),
        "days_differ": v.days_differ(),
        "api_requests": v.api_requests(),
    })
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A difference with its sign: `+3`, `-1.50`.
fn signed(d: &str) -> String {
    if d.starts_with('-') || d == "0" {
        d.to_owned()
    } else {
        format!("+{d}")
    }
}

fn span_text(w: Window) -> String {
    if w.start == w.last {
        w.start.to_string()
    } else {
        w.to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{NaiveDate, Utc};

    use super::*;
    use crate::decimal::Decimal;
    use crate::verify::{DayCheck, MetricCheck, NotChecked, Unchecked};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    fn metric(table: &str, api: &str) -> MetricCheck {
        let (table, api) = (Decimal::parse(table).unwrap(), Decimal::parse(api).unwrap());
        MetricCheck {
            table,
            api,
            matches: table == api,
        }
    }

    fn verification(accounts: Vec<AccountCheck>) -> Verification {
        Verification {
            job: "campaign_daily".into(),
            table: "campaign_daily".into(),
            checked: vec!["impressions".into(), "gross_cost".into()],
            not_checked: vec![NotChecked {
                metric: "cpa".into(),
                why: Unchecked::Ratio,
            }],
            accounts,
            checked_at: Utc::now(),
        }
    }

    fn checked(id: &str, checks: Vec<DayCheck>) -> AccountCheck {
        AccountCheck {
            account_id: id.into(),
            zone: Some(chrono_tz::UTC),
            currency: Some("USD".into()),
            api_requests: 1,
            outcome: AccountOutcome::Checked {
                days: Window {
                    start: checks[0].date,
                    last: checks[checks.len() - 1].date,
                },
                checks,
                notes: vec![],
            },
        }
    }

    fn check(d: u32, rows: u64, api_has_row: bool, metrics: Vec<MetricCheck>) -> DayCheck {
        DayCheck {
            date: day(d),
            table_rows: rows,
            api_has_row,
            metrics,
        }
    }

    #[test]
    fn the_days_that_differ_are_a_table_and_the_last_line_counts() {
        let v = verification(vec![checked(
            "3141592",
            vec![
                check(1, 3, true, vec![metric("10", "10"), metric("1.50", "1.50")]),
                check(2, 3, true, vec![metric("10", "12"), metric("1.50", "1.25")]),
                check(3, 0, true, vec![metric("0", "7"), metric("0", "2.00")]),
            ],
        )]);
        let out = text(&v, "rokt.campaign_daily");
        assert!(
            out.contains("not checked: cpa (a rate, ratio or average"),
            "{out}"
        );
        assert!(out.contains("2 of 3 days differ"), "{out}");
        assert!(out.contains("2026-03-03: not loaded"), "{out}");
        let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("3141592")).collect();
        assert_eq!(rows.len(), 2, "{out}");
        assert!(rows[0].contains("2026-03-02") && rows[0].contains("impressions"));
        assert!(rows[0].contains("-2"), "{out}");
        assert!(rows[1].contains("+0.25"), "{out}");
        assert!(
            out.trim_end()
                .ends_with("3 days checked, 2 differ, 1 API request"),
            "{out}"
        );
        assert_eq!(exit_code(&v), 1);
        let j = as_json(&v, "rokt.campaign_daily");
        assert_eq!(j["days_differ"], 2);
        assert_eq!(j["differences"].as_array().unwrap().len(), 4);
        assert_eq!(j["differences"][1]["difference"], "0.25");
        assert_eq!(j["accounts"][0]["not_loaded"][0]["from"], "2026-03-03");
        assert_eq!(j["outcome"], "mismatched");
    }

    #[test]
    fn a_range_without_rows_says_so_instead_of_listing_every_day() {
        let v = verification(vec![checked(
            "1",
            vec![
                check(1, 0, true, vec![metric("0", "5"), metric("0", "1")]),
                check(2, 0, true, vec![metric("0", "6"), metric("0", "1")]),
            ],
        )]);
        let out = text(&v, "t");
        assert!(out.contains("no rows loaded"), "{out}");
        assert!(out.contains("the API has numbers for 2 of 2 days"), "{out}");
        assert!(!out.contains("impressions  "), "no table of metrics: {out}");
        assert_eq!(exit_code(&v), 1);
        let none = verification(vec![checked(
            "1",
            vec![check(1, 0, false, vec![metric("0", "0"), metric("0", "0")])],
        )]);
        let out = text(&none, "t");
        assert!(out.contains("no rows loaded (nor has the API any"), "{out}");
        assert_eq!(exit_code(&none), 0);
    }

    #[test]
    fn an_account_that_could_not_be_verified_sets_the_exit_code() {
        let mut failed = checked(
            "2",
            vec![check(1, 1, true, vec![metric("1", "1"), metric("1", "1")])],
        );
        failed.outcome = AccountOutcome::Failed {
            error: "POST /v1/... failed 3 times\u{1b}[31m".into(),
            kind: crate::export::FailureKind::Unavailable,
        };
        let v = verification(vec![failed]);
        let out = text(&v, "t");
        assert!(out.contains("not verified"), "{out}");
        assert!(!out.contains('\u{1b}'), "escaped: {out}");
        assert_eq!(exit_code(&v), 69);
    }
}

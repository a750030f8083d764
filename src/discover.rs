//! `rokt-export discover`'s work: the accounts the credentials read, what each report offers each
//! of them (`GET /v1/query/accounts/{id}/{report}/help`), and `[[jobs]]` blocks written from that.
//!
//! [`jobs_toml`] writes a whole configuration file: comments that list the accounts (id, name,
//! country, zone, currency, owner) and what each report offers them, then one `[[jobs]]` block per
//! report over every account that has it. A block asks every account for the same slugs, so it
//! names the slugs all of them offer and lists the others as comments saying who lacks them. In
//! a block the grain comes first (the id dimensions that identify a row), then the names that
//! describe it (ordinary columns, the latest value wins), then further dimensions as comments (each
//! one uncommented adds to the grain); additive metrics (counts, money) come before the others
//! (rates, ratios, averages, distinct counts, which a total must not sum). Each slug has its
//! description as a comment. No block sets `timezone` or `currency`: each account is read in its
//! own, which the account list shows. The text passes `rokt-export validate` as it is.
//!
//! Everything the API sends is outside text: names and descriptions reach the file only as
//! comments, escaped to one line (`telemetry::sanitize`), and a slug that is not a plain
//! column name is left out (it could not be one of a job's columns anyway).

use std::fmt::Write as _;

use chrono::NaiveDate;
use futures_util::future::join_all;

use crate::api::{Account, ApiClient, ApiError, Offer};
use crate::catalogue::{self, Report};
use crate::config::is_usable_slug;
use crate::telemetry::sanitize;

/// What the credentials read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The accounts looked at (all the credentials read, or those asked for), in the API's order.
    pub accounts: Vec<Account>,
    /// How many accounts the credentials read in all.
    pub readable: usize,
    /// Per report asked for, what it offers each account.
    pub reports: Vec<ReportOffers>,
}

/// What one report offers each account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOffers {
    pub report: Report,
    /// In the accounts' order: the report's help, or why the API refused it for that account.
    pub offers: Vec<(String, Result<Offer, String>)>,
}

/// Why discovering failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// `--account` named an account the credentials do not read.
    #[error(
        "account {account} is not among the accounts these credentials read ({listed}); \
         GET /v1/query/accounts lists them"
    )]
    UnknownAccount { account: String, listed: String },
}

/// Lists the accounts the credentials read (only those in `only`, when it is not empty) and asks
/// each report in `reports` what it offers each of them. A report the API refuses for one account
/// (403, 404) is recorded for that account; any other failure ends the discovery.
pub async fn discover(
    api: &ApiClient,
    only: &[String],
    reports: &[Report],
) -> Result<Discovery, DiscoverError> {
    let all = api.accounts().await?;
    for id in only {
        if !all.iter().any(|a| a.account_id == *id) {
            let listed: Vec<&str> = all.iter().map(|a| a.account_id.as_str()).collect();
            return Err(DiscoverError::UnknownAccount {
                account: id.clone(),
                listed: if listed.is_empty() {
                    "none".to_owned()
                } else {
                    listed.join(", ")
                },
            });
        }
    }
    let readable = all.len();
    let accounts: Vec<Account> = all
        .into_iter()
        .filter(|a| only.is_empty() || only.contains(&a.account_id))
        .collect();
    let mut offers_by_report = Vec::new();
    for &report in reports {
        // Side by side; the client's semaphore bounds how many are in flight.
        let answers = join_all(accounts.iter().map(|a| api.help(&a.account_id, report))).await;
        let mut offers = Vec::new();
        for (account, answer) in accounts.iter().zip(answers) {
            let offer = match answer {
                Ok(offer) => Ok(offer),
                Err(
                    e @ ApiError::Status {
                        status: 403 | 404, ..
                    },
                ) => Err(e.to_string()),
                Err(e) => return Err(e.into()),
            };
            offers.push((account.account_id.clone(), offer));
        }
        offers_by_report.push(ReportOffers { report, offers });
    }
    Ok(Discovery {
        accounts,
        readable,
        reports: offers_by_report,
    })
}

/// The id dimension a job of `report` starts from: one row per campaign and day (campaigns), per
/// page type and day (transactions). Its names come along; other dimensions are offered as
/// comments.
fn starter(report: Report) -> &'static str {
    match report {
        Report::Campaigns => "campaign_id",
        Report::Transactions => "page_type",
    }
}

/// A sensible cron for `report` (read in UTC: the jobs set no time zone), with why.
fn schedule(report: Report) -> (&'static str, &'static str) {
    match report {
        Report::Campaigns => (
            "15 5,17 * * *",
            "twice a day, in UTC; each run re-reads lookback_days (conversions are restated)",
        ),
        Report::Transactions => ("45 5 * * *", "once a day, in UTC"),
    }
}

/// The longest outside text put in one comment, in characters.
const MAX_COMMENT: usize = 160;

/// The column at which a slug's comment starts.
const COMMENT_COLUMN: usize = 40;

/// The configuration text for `discovery`: comments about the accounts and one `[[jobs]]` block
/// per report that at least one account offers. `today` dates the header.
pub fn jobs_toml(discovery: &Discovery, today: NaiveDate) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `rokt-export discover` on {today}, from what the API offers these \
         credentials.\n\
         # Check it with `rokt-export validate` (add --online to ask the API and the database too);\n\
         # paste the [[jobs]] blocks into your jobs.toml, or use this file as it is.\n#"
    );
    let n = discovery.accounts.len();
    let _ = writeln!(
        out,
        "# Accounts ({n}{}):",
        if n == discovery.readable {
            String::new()
        } else {
            format!(" of the {} these credentials read", discovery.readable)
        }
    );
    for a in &discovery.accounts {
        let _ = writeln!(out, "#   {}", describe_account(a));
    }
    out.push_str(
        "#\n# No job below sets `timezone` or `currency`: each account is read in its own zone and\n\
         # currency (above), as One Platform shows it, and each cron is read in UTC. A [defaults]\n\
         # section that sets them applies to these jobs too. A table then holds several\n\
         # currencies when the accounts differ: group or filter by its `currency` column.\n",
    );
    for offers in &discovery.reports {
        out.push('\n');
        report_block(&mut out, offers);
    }
    out
}

/// One account's line: id, name, country, zone (with its offset), currency, owner.
fn describe_account(a: &Account) -> String {
    let text = |v: &Option<String>| {
        v.as_deref()
            .map_or_else(|| "?".to_owned(), |s| sanitize(s, MAX_COMMENT).into_owned())
    };
    let offset = a
        .timezone_offset_minutes
        .map(|m| {
            let sign = if m < 0 { '-' } else { '+' };
            format!(" (UTC{sign}{:02}:{:02})", m.abs() / 60, m.abs() % 60)
        })
        .unwrap_or_default();
    format!(
        "{}  {}  country {}, zone {}{offset}, currency {}, owner {}",
        a.account_id,
        text(&a.account_name),
        text(&a.country),
        text(&a.timezone),
        text(&a.currency),
        text(&a.owner),
    )
}

/// A slug as the accounts offer it: its description and who lacks it.
struct Entry<'a> {
    slug: &'a str,
    description: String,
    lacking: Vec<&'a str>,
}

impl Entry<'_> {
    fn common(&self) -> bool {
        self.lacking.is_empty()
    }
}

/// The union of the slugs `pick` lists in the accounts' offers, in the order first seen, each
/// with a description (the API's, else the catalogue's) and the accounts that lack it. Slugs that
/// cannot be columns are left out.
fn entries<'a>(
    offers: &[(&'a str, &'a Offer)],
    pick: fn(&Offer) -> &[crate::api::Slug],
    catalogue_description: impl Fn(&str) -> Option<&'static str>,
) -> Vec<Entry<'a>> {
    let mut out: Vec<Entry<'a>> = Vec::new();
    for (_, offer) in offers {
        for s in pick(offer) {
            if !is_usable_slug(&s.slug) || out.iter().any(|e| e.slug == s.slug) {
                continue;
            }
            let description = s
                .description
                .as_deref()
                .filter(|d| !d.trim().is_empty())
                .map(|d| sanitize(d, MAX_COMMENT).into_owned())
                .or_else(|| catalogue_description(&s.slug).map(str::to_owned))
                .unwrap_or_default();
            let lacking = offers
                .iter()
                .filter(|(_, o)| !pick(o).iter().any(|x| x.slug == s.slug))
                .map(|(id, _)| *id)
                .collect();
            out.push(Entry {
                slug: &s.slug,
                description,
                lacking,
            });
        }
    }
    out
}

fn report_block(out: &mut String, offers: &ReportOffers) {
    let report = offers.report;
    let rule = "# ".to_owned() + &"-".repeat(96);
    let _ = writeln!(out, "{rule}");
    let _ = writeln!(
        out,
        "# The {} report: POST /v1/query/accounts/{{account_id}}{} with interval \"day\".",
        report.name(),
        report.path_suffix()
    );
    let readable: Vec<(&str, &Offer)> = offers
        .offers
        .iter()
        .filter_map(|(id, o)| o.as_ref().ok().map(|o| (id.as_str(), o)))
        .collect();
    let dimensions = entries(
        &readable,
        |o| &o.dimensions,
        |s| report.dimension(s).map(|d| d.description),
    );
    let mut metrics = entries(
        &readable,
        |o| &o.metrics,
        |s| report.metric(s).map(|m| m.description),
    );
    // A slug that is both would be a column twice.
    metrics.retain(|m| !dimensions.iter().any(|d| d.slug == m.slug));
    let _ = writeln!(
        out,
        "# What it offers each account (GET /v1/query/accounts/{{id}}/{}/help):",
        report.name()
    );
    for (id, offer) in &offers.offers {
        match offer {
            Ok(o) => {
                let lacks: Vec<&str> = dimensions
                    .iter()
                    .chain(&metrics)
                    .filter(|e| e.lacking.contains(&id.as_str()))
                    .map(|e| e.slug)
                    .collect();
                let _ = writeln!(
                    out,
                    "#   {id}: {} dimensions, {} metrics{}",
                    o.dimensions.len(),
                    o.metrics.len(),
                    if lacks.is_empty() {
                        String::new()
                    } else {
                        format!("; not {}", lacks.join(", "))
                    }
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "#   {id}: not offered ({}); left out of the job",
                    sanitize(e, MAX_COMMENT)
                );
            }
        }
    }
    if !metrics.iter().any(Entry::common) {
        let _ = writeln!(
            out,
            "# No metric is offered to every account above, so there is no job for this report: \
             run `rokt-export discover --account ID --report {}` for each account.",
            report.name()
        );
        return;
    }
    let (cron, why) = schedule(report);
    let ids: Vec<String> = readable.iter().map(|(id, _)| format!("\"{id}\"")).collect();
    let _ = writeln!(out, "[[jobs]]");
    let _ = writeln!(out, "name = \"{}_daily\"", report.name());
    line(out, &format!("schedule = \"{cron}\""), why);
    line(
        out,
        &format!("accounts = [{}]", ids.join(", ")),
        "or \"all\": every account these credentials read",
    );
    line(
        out,
        &format!("report = \"{}\"", report.name()),
        "the table is the job's name; set `table` for another",
    );
    line(
        out,
        "# start_date = \"2025-01-01\"",
        "where the first run starts; without it, lookback_days ago",
    );
    line(
        out,
        "# timezone = \"UTC\"",
        "unset: each account is read in its own zone (the accounts above)",
    );
    line(
        out,
        "# currency = \"USD\"",
        "unset: each account's own currency; set both to read every account alike",
    );

    // Dimensions: the grain, then what describes it, then the rest as comments.
    let grain: Vec<&Entry> = dimensions
        .iter()
        .filter(|d| d.slug == starter(report) && d.common())
        .collect();
    let names: Vec<&Entry> = dimensions
        .iter()
        .filter(|d| {
            d.common()
                && report
                    .dimension(d.slug)
                    .and_then(|c| c.describes)
                    .is_some_and(|id| grain.iter().any(|g| g.slug == id))
        })
        .collect();
    let others: Vec<&Entry> = dimensions
        .iter()
        .filter(|d| {
            !grain.iter().any(|g| g.slug == d.slug) && !names.iter().any(|n| n.slug == d.slug)
        })
        .collect();
    out.push_str("dimensions = [\n");
    if !grain.is_empty() {
        out.push_str("    # The grain: with account_id and date, one row per value of these.\n");
        for d in &grain {
            slug_line(out, d, "");
        }
    }
    if !names.is_empty() {
        out.push_str(
            "    # What describes the grain: ordinary columns, the latest value wins (a rename \
             never makes a second row).\n",
        );
        for d in &names {
            let id = report
                .dimension(d.slug)
                .and_then(|c| c.describes)
                .unwrap_or_default();
            slug_line(out, d, &format!(" (describes {id})"));
        }
    }
    if !others.is_empty() {
        out.push_str(
            "    # More dimensions: each one uncommented adds to the grain (more rows per day).\n",
        );
        for d in &others {
            commented_line(out, d);
        }
    }
    out.push_str("]\n");

    // Metrics: additive ones, then the others, then those some accounts lack.
    let additive = |m: &&Entry| catalogue::is_additive(report, m.slug);
    let common: Vec<&Entry> = metrics.iter().filter(|m| m.common()).collect();
    let (sums, others): (Vec<&Entry>, Vec<&Entry>) = common.into_iter().partition(additive);
    out.push_str("metrics = [\n");
    if !sums.is_empty() {
        out.push_str(
            "    # Additive (counts, money): a total over days, rows or accounts is their sum \
             (per currency).\n",
        );
        for m in &sums {
            slug_line(out, m, "");
        }
    }
    if !others.is_empty() {
        out.push_str(
            "    # Not additive (rates, ratios, averages, distinct counts): a total is not their \
             sum; compute it from the additive parts.\n",
        );
        for m in &others {
            slug_line(out, m, "");
        }
    }
    let lacking: Vec<&Entry> = metrics.iter().filter(|m| !m.common()).collect();
    if !lacking.is_empty() {
        out.push_str(
            "    # Not offered by every account above: a job that names one fails for the others.\n",
        );
        for m in &lacking {
            commented_line(out, m);
        }
    }
    out.push_str("]\n");
}

/// `text`, then `# comment` at the comment column.
fn line(out: &mut String, text: &str, comment: &str) {
    let pad = COMMENT_COLUMN.saturating_sub(text.chars().count()).max(1);
    let _ = writeln!(out, "{text}{:pad$}# {comment}", "");
}

/// `    "slug",` with its description.
fn slug_line(out: &mut String, e: &Entry<'_>, extra: &str) {
    line(
        out,
        &format!("    \"{}\",", e.slug),
        &format!("{}{extra}", e.description),
    );
}

/// `    # "slug",` with its description and who lacks it.
fn commented_line(out: &mut String, e: &Entry<'_>) {
    let lacking = if e.lacking.is_empty() {
        String::new()
    } else {
        format!(" (not offered by {})", e.lacking.join(", "))
    };
    line(
        out,
        &format!("    # \"{}\",", e.slug),
        &format!("{}{lacking}", e.description),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Slug;
    use crate::config::{Config, Env, JobKind};

    fn slugs(list: &[&str]) -> Vec<Slug> {
        list.iter()
            .map(|s| Slug {
                slug: (*s).to_owned(),
                description: Some(format!("about {s}\nwith a second line")),
            })
            .collect()
    }

    fn account(id: &str, zone: &str) -> Account {
        Account {
            account_id: id.to_owned(),
            account_name: Some("Name \"quoted\"\n[[jobs]]".to_owned()),
            country: Some("AU".to_owned()),
            currency: Some("AUD".to_owned()),
            timezone: Some(zone.to_owned()),
            timezone_offset_minutes: Some(660),
            owner: Some("ops@example.com".to_owned()),
        }
    }

    fn discovery() -> Discovery {
        let us = Offer {
            dimensions: slugs(&[
                "campaign_id",
                "campaign_name",
                "campaign_objective",
                "creative_id",
            ]),
            metrics: slugs(&[
                "impressions",
                "referral_rate",
                "gross_cost",
                "cost_per_impression",
            ]),
        };
        let gb = Offer {
            dimensions: slugs(&["campaign_id", "campaign_name", "creative_id", "Bad Slug"]),
            metrics: slugs(&["impressions", "referral_rate", "gross_cost", "date"]),
        };
        Discovery {
            accounts: vec![
                account("1", "America/New_York"),
                account("3", "Europe/London"),
            ],
            readable: 3,
            reports: vec![
                ReportOffers {
                    report: Report::Campaigns,
                    offers: vec![("1".into(), Ok(us)), ("3".into(), Ok(gb))],
                },
                ReportOffers {
                    report: Report::Transactions,
                    offers: vec![
                        ("1".into(), Err("HTTP 403".into())),
                        ("3".into(), Err("HTTP 403".into())),
                    ],
                },
            ],
        }
    }

    #[test]
    fn the_text_is_a_valid_config_with_the_slugs_every_account_offers() {
        let text = jobs_toml(&discovery(), NaiveDate::from_ymd_opt(2026, 3, 20).unwrap());
        let config = Config::from_toml(
            std::path::Path::new("discovered.toml"),
            &text,
            &Env::default(),
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.jobs.len(), 1, "{text}");
        let job = &config.jobs[0];
        assert!(job.timezone.is_none() && job.currency.is_none());
        assert!(
            text.contains("unset: each account's own currency"),
            "{text}"
        );
        let JobKind::Query(q) = &job.kind else {
            panic!("not a query job")
        };
        // Ids, then their names; what one account lacks is only a comment.
        assert_eq!(q.dimensions, ["campaign_id", "campaign_name"]);
        assert_eq!(q.key, ["campaign_id"]);
        // Additive first.
        assert_eq!(q.metrics, ["impressions", "gross_cost", "referral_rate"]);
        assert!(text.contains("# \"campaign_objective\","), "{text}");
        assert!(text.contains("(not offered by 3)"), "{text}");
        assert!(text.contains("# \"creative_id\","), "{text}");
        // Outside text stays in comments, on one line.
        assert!(!text.contains("Bad Slug"), "{text}");
        assert!(!text.contains("\"date\""), "{text}");
        assert!(
            text.contains("about impressions\\nwith a second line"),
            "{text}"
        );
        assert!(text.contains("Name \"quoted\"\\n[[jobs]]"), "{text}");
        assert!(text.contains("zone Europe/London (UTC+11:00)"), "{text}");
        assert!(
            text.contains("Accounts (2 of the 3 these credentials read)"),
            "{text}"
        );
        assert!(text.contains("not offered (HTTP 403)"), "{text}");
    }
}

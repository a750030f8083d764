//! `verify`: does a job's table hold what Rokt shows? For every account and day it compares the
//! table's sums of the job's additive metrics with the API's own totals, asked for as the export
//! asks: the job's report, the account's zone and currency, `interval = "day"`, but no dimensions
//! and only those metrics, so a window of up to 31 days costs one small request (a row per day),
//! not a second copy of the data.
//!
//! Only counts and money are compared (`catalogue::Metric::is_additive`): a day's rate, ratio,
//! average or count of distinct things is not the sum of its rows' values, so those metrics are
//! listed as not checked. A day matches when each metric's table sum, rounded to the API's
//! precision, equals the API's number exactly ([`Decimal`]: never a float).
//!
//! [`verify`] is the one entry point: `rokt-export verify` and the daemon (after a successful run of
//! a job with `verify = true`, over the days the run re-read) call it. Every comparison is appended
//! to `export_checks`. Generic jobs are not verified: their fields have no catalogue saying which
//! add up (see `rokt-export verify --help`).
//!
//! Invariants: no SQL (`store`), no HTTP (`api`), no exit codes or printing (`cli`); never writes to
//! a job table; today is never checked (its numbers still move).

mod compare;

use std::collections::BTreeSet;

use chrono::{DateTime, Days as DayCount, NaiveDate, Utc};
use chrono_tz::Tz;
use futures_util::StreamExt as _;

use crate::api::{ApiError, ReportRequest};
use crate::catalogue::Measure;
use crate::config::{Job, JobKind, QueryJob, UnknownJob};
use crate::decimal::Decimal;
use crate::export::accounts::{self, Target};
use crate::export::query;
use crate::export::{Context, FailureKind, RunError, RunResult, Window, WindowOutcome, plan};
use crate::store::{CheckTrigger, ColumnData, NewCheck, StoreError};

/// The most days one verification request covers: the Query API's own limit for one query.
pub const MAX_REQUEST_DAYS: u32 = 31;

/// Which days to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Days {
    /// The job's `lookback_days` up to yesterday, in each account's report zone, but not past
    /// the account's high-water mark (a later day is not fully loaded yet).
    Recent,
    /// These days (inclusive), up to yesterday at most. A missing `to` is where `Recent` ends, a
    /// missing `from` is `lookback_days` before `to`.
    Explicit {
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    },
    /// The days a run re-read, per account (up to yesterday: today is still changing).
    Reread(Vec<(String, Window)>),
}

impl Days {
    /// The days each account's successful windows of `result` covered.
    pub fn reread_by(result: &RunResult) -> Days {
        let mut spans: Vec<(String, Window)> = Vec::new();
        for w in &result.windows {
            if !matches!(w.outcome, WindowOutcome::Succeeded { .. }) {
                continue;
            }
            match spans.iter_mut().find(|(a, _)| *a == w.account_id) {
                Some((_, span)) => {
                    span.start = span.start.min(w.window.start);
                    span.last = span.last.max(w.window.last);
                }
                None => spans.push((w.account_id.clone(), w.window)),
            }
        }
        Days::Reread(spans)
    }
}

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub job: String,
    pub days: Days,
    /// Only these accounts (`--account`); empty: the job's own (for `Days::Reread`, its accounts).
    pub accounts: Vec<String>,
    /// Recorded with the checks in `export_checks`.
    pub trigger: CheckTrigger,
}

/// What a verification found.
#[derive(Debug, Clone)]
pub struct Verification {
    pub job: String,
    pub table: String,
    /// The metrics compared, in the job's order.
    pub checked: Vec<String>,
    /// The job's other metrics, and why they were not compared.
    pub not_checked: Vec<NotChecked>,
    pub accounts: Vec<AccountCheck>,
    /// When it ran (every `export_checks` row it wrote has this time).
    pub checked_at: DateTime<Utc>,
}

/// A metric of the job that is not compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotChecked {
    pub metric: String,
    pub why: Unchecked,
}

/// Why a metric is not compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unchecked {
    /// A rate, ratio, cost per something or average: a day's value is not the sum of its rows'.
    Ratio,
    /// A count of distinct things (`unique_*`): the same thing in two rows counts once.
    Distinct,
    /// Not in the catalogue (`catalogue.rs`), so not known to add up.
    Unknown,
    /// The table has no column for it yet (the job's next run adds it).
    NoColumn,
}

impl Unchecked {
    /// Why, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Unchecked::Ratio => "a rate, ratio or average: not a sum",
            Unchecked::Distinct => "a distinct count: not a sum",
            Unchecked::Unknown => "not in the catalogue: not known to be a sum",
            Unchecked::NoColumn => "no column in the table yet",
        }
    }
}

/// One account of a verification.
#[derive(Debug, Clone)]
pub struct AccountCheck {
    pub account_id: String,
    /// The zone and currency the API was asked in (`None` when the account could not be read).
    pub zone: Option<Tz>,
    pub currency: Option<String>,
    /// HTTP requests made for this account, retries included.
    pub api_requests: u32,
    pub outcome: AccountOutcome,
}

/// How an account's verification ended.
#[derive(Debug, Clone)]
pub enum AccountOutcome {
    /// Every day of `days` compared.
    Checked {
        days: Window,
        checks: Vec<DayCheck>,
        /// What reading the API's answer noticed, and days left out of the range asked for.
        notes: Vec<String>,
    },
    /// No day to compare: `why` says.
    NothingToCheck { why: String },
    /// The account could not be verified.
    Failed { error: String, kind: FailureKind },
}

/// One day of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCheck {
    pub date: NaiveDate,
    /// The rows the table holds for the account and day.
    pub table_rows: u64,
    /// Whether the API's answer had a row for the day.
    pub api_has_row: bool,
    /// One per checked metric, in [`Verification::checked`]'s order.
    pub metrics: Vec<MetricCheck>,
}

impl DayCheck {
    /// Every metric matches.
    pub fn matches(&self) -> bool {
        self.metrics.iter().all(|m| m.matches)
    }

    /// The day differs and the table holds no row for it: never loaded, or lost.
    pub fn not_loaded(&self) -> bool {
        self.table_rows == 0 && !self.matches()
    }
}

/// One metric on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricCheck {
    /// The sum of the table's rows (0 when it has none).
    pub table: Decimal,
    /// The API's total (0 when its answer had no row for the day).
    pub api: Decimal,
    /// Equal at the API's precision.
    pub matches: bool,
}

impl MetricCheck {
    /// Table minus API; `None` if it does not fit (38 digits).
    pub fn difference(&self) -> Option<Decimal> {
        self.table.checked_sub(self.api)
    }
}

/// The outcome of a whole verification, for the metrics and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every day compared matches.
    Clean,
    /// A day differs.
    Mismatched,
    /// No day differs, but an account could not be verified.
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Clean, Outcome::Mismatched, Outcome::Failed];

    /// The label value of `rokt_export_verify_runs_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Mismatched => "mismatched",
            Outcome::Failed => "failed",
        }
    }
}

impl Verification {
    fn days(&self) -> impl Iterator<Item = &DayCheck> {
        self.accounts.iter().flat_map(|a| match &a.outcome {
            AccountOutcome::Checked { checks, .. } => checks.as_slice(),
            _ => &[],
        })
    }

    /// Account-days compared.
    pub fn days_checked(&self) -> u64 {
        self.days().count() as u64
    }

    /// Account-days where a metric differs (days without rows that the API has numbers for
    /// included).
    pub fn days_differ(&self) -> u64 {
        self.days().filter(|d| !d.matches()).count() as u64
    }

    /// HTTP requests made to the API's report endpoint, retries included.
    pub fn api_requests(&self) -> u32 {
        self.accounts.iter().map(|a| a.api_requests).sum()
    }

    /// The most actionable failure of an account: configuration before an unavailable service
    /// before anything else.
    pub fn worst_failure(&self) -> Option<FailureKind> {
        FailureKind::most_actionable(self.accounts.iter().filter_map(|a| match a.outcome {
            AccountOutcome::Failed { kind, .. } => Some(kind),
            _ => None,
        }))
    }

    pub fn outcome(&self) -> Outcome {
        if self.days_differ() > 0 {
            Outcome::Mismatched
        } else if self.worst_failure().is_some() {
            Outcome::Failed
        } else {
            Outcome::Clean
        }
    }
}

impl AccountCheck {
    /// True when the account was compared and the table held no row on any of its days.
    pub fn no_rows_loaded(&self) -> bool {
        match &self.outcome {
            AccountOutcome::Checked { checks, .. } => checks.iter().all(|c| c.table_rows == 0),
            _ => false,
        }
    }

    /// Runs of consecutive days that differ while the table holds no row for them.
    pub fn not_loaded(&self) -> Vec<Window> {
        match &self.outcome {
            AccountOutcome::Checked { checks, .. } => compare::not_loaded(checks),
            _ => Vec::new(),
        }
    }
}

/// Why a verification could not start.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    UnknownJob(#[from] UnknownJob),
    /// The job cannot be verified (a generic job; no additive metric).
    #[error("job \"{job}\" cannot be verified: {reason}")]
    NotVerifiable { job: String, reason: String },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VerifyError {
    /// What kind of failure this is.
    pub fn kind(&self) -> FailureKind {
        match self {
            VerifyError::UnknownJob(_) | VerifyError::NotVerifiable { .. } => FailureKind::Config,
            VerifyError::Run(e) => e.kind(),
            VerifyError::Store(e) => FailureKind::of_store(e),
        }
    }
}

/// Verifies `request.days` of a job: per account, the table's per-day sums of its additive
/// metrics against one Query API request per [`MAX_REQUEST_DAYS`] days, then appends every
/// comparison to `export_checks`. An account that cannot be verified (unreachable API, units that
/// differ from the table's) is reported in its [`AccountCheck`]; the others go on.
pub async fn verify(ctx: &Context, request: &VerifyRequest) -> Result<Verification, VerifyError> {
    let job = ctx.config.job(&request.job)?;
    let q = verifiable(job)?;
    let columns = ctx.store.table_columns(&job.table).await?;
    let (checked, not_checked) = split_metrics(q, columns.as_deref());
    if checked.is_empty() {
        let listed: Vec<String> = not_checked
            .iter()
            .map(|n| format!("{} ({})", n.metric, n.why.describe()))
            .collect();
        return Err(VerifyError::NotVerifiable {
            job: job.name.clone(),
            reason: format!(
                "none of its metrics can be compared as a sum: {}",
                listed.join(", ")
            ),
        });
    }
    let only: Vec<String> = match &request.days {
        Days::Reread(spans) => spans.iter().map(|(a, _)| a.clone()).collect(),
        _ => request.accounts.clone(),
    };
    let targets = if only.is_empty() && matches!(request.days, Days::Reread(_)) {
        Vec::new() // the run read no account
    } else {
        accounts::targets(ctx, job, &only).await?
    };
    let checked_at = Utc::now();
    let asked = QueryJob::new(q.report, Vec::new(), checked.clone());
    let scope = Scope {
        ctx,
        job,
        asked: &asked,
        table_exists: columns.is_some(),
        days: &request.days,
        now: checked_at,
    };
    let concurrency = ctx.config.api.max_concurrent_requests.max(1);
    let accounts: Vec<AccountCheck> = futures_util::stream::iter(targets)
        .map(|(id, target)| verify_account(&scope, id, target))
        .buffered(concurrency)
        .collect()
        .await;
    let verification = Verification {
        job: job.name.clone(),
        table: job.table.clone(),
        checked,
        not_checked,
        accounts,
        checked_at,
    };
    let rows = checks_of(&verification);
    ctx.store
        .record_checks(&job.name, request.trigger, checked_at, &rows)
        .await?;
    Ok(verification)
}

/// The Query API definition of `job`, or why it cannot be verified (a generic job).
pub fn verifiable(job: &Job) -> Result<&QueryJob, VerifyError> {
    match &job.kind {
        JobKind::Query(q) => Ok(q),
        JobKind::Generic(_) => Err(VerifyError::NotVerifiable {
            job: job.name.clone(),
            reason: "it is a generic job (`endpoint = ...`), and a generic job's fields have no \
                     catalogue saying which of them add up; verify a Query API job that reads the \
                     same numbers instead (see `rokt-export verify --help`)"
                .into(),
        }),
    }
}

/// The job's metrics that are compared (additive, with a column in the table when it exists)
/// and the others with the reason.
fn split_metrics(q: &QueryJob, columns: Option<&[String]>) -> (Vec<String>, Vec<NotChecked>) {
    let mut checked = Vec::new();
    let mut not_checked = Vec::new();
    for m in &q.metrics {
        let why = match q.report.metric(m).map(|metric| metric.measure) {
            None => Some(Unchecked::Unknown),
            Some(Measure::Ratio) => Some(Unchecked::Ratio),
            Some(Measure::Distinct) => Some(Unchecked::Distinct),
            Some(Measure::Count | Measure::Money) => match columns {
                Some(cols) if !cols.iter().any(|c| c == m) => Some(Unchecked::NoColumn),
                _ => None,
            },
        };
        match why {
            None => checked.push(m.clone()),
            Some(why) => not_checked.push(NotChecked {
                metric: m.clone(),
                why,
            }),
        }
    }
    (checked, not_checked)
}

/// What every account of one verification shares.
struct Scope<'a> {
    ctx: &'a Context,
    job: &'a Job,
    /// The request: the job's report, no dimensions, the checked metrics.
    asked: &'a QueryJob,
    table_exists: bool,
    days: &'a Days,
    now: DateTime<Utc>,
}

async fn verify_account(
    scope: &Scope<'_>,
    id: String,
    target: Result<Target, String>,
) -> AccountCheck {
    let mut check = AccountCheck {
        account_id: id,
        zone: None,
        currency: None,
        api_requests: 0,
        outcome: AccountOutcome::NothingToCheck { why: String::new() },
    };
    let failed = |error: String, kind| AccountOutcome::Failed { error, kind };
    let target = match target {
        Ok(t) => t,
        Err(message) => {
            check.outcome = failed(message, FailureKind::Config);
            return check;
        }
    };
    check.zone = Some(target.zone);
    check.currency = Some(target.currency.clone());
    let (ctx, job) = (scope.ctx, scope.job);
    let state = match ctx.store.account_state(&job.name, &target.id).await {
        Ok(s) => s,
        Err(e) => {
            check.outcome = failed(e.to_string(), FailureKind::of_store(&e));
            return check;
        }
    };
    match accounts::check_units(ctx, job, &target, &state).await {
        Ok(Ok(())) => {}
        Ok(Err(message)) => {
            check.outcome = failed(message, FailureKind::Config);
            return check;
        }
        Err(e) => {
            check.outcome = failed(e.to_string(), FailureKind::of_store(&e));
            return check;
        }
    }
    let today = plan::today_in(target.zone, scope.now);
    let lookback = job.lookback_days;
    let days = range(scope.days, lookback, &target.id, today, state.high_water);
    let (range, mut notes) = match days {
        Ok(r) => r,
        Err(why) => {
            check.outcome = AccountOutcome::NothingToCheck { why };
            return check;
        }
    };
    let table = if scope.table_exists {
        let metrics = &scope.asked.metrics;
        match ctx
            .store
            .day_totals(&job.table, &target.id, range.start, range.last, metrics)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                check.outcome = failed(e.to_string(), FailureKind::of_store(&e));
                return check;
            }
        }
    } else {
        Vec::new()
    };
    let mut api = compare::ApiTotals::new(scope.asked.metrics.len());
    for window in plan::split(range, MAX_REQUEST_DAYS) {
        match api_totals(scope, &target, window, &mut api, &mut check.api_requests).await {
            Ok(more) => notes.extend(more),
            Err((error, kind)) => {
                check.outcome = failed(error, kind);
                return check;
            }
        }
    }
    check.outcome = AccountOutcome::Checked {
        days: range,
        checks: compare::compare(range, &table, &api),
        notes,
    };
    check
}

/// The days to verify for `account`, and a note when the days asked for were cut; `Err` says why
/// there are none.
fn range(
    days: &Days,
    lookback_days: u32,
    account: &str,
    today: NaiveDate,
    high_water: Option<NaiveDate>,
) -> Result<(Window, Vec<String>), String> {
    let yesterday = today.pred_opt().ok_or("no day before today")?;
    let lookback = u64::from(lookback_days.max(1));
    let back = |last: NaiveDate| {
        last.checked_sub_days(DayCount::new(lookback - 1))
            .unwrap_or(last)
    };
    let mut notes = Vec::new();
    let today_note = |notes: &mut Vec<String>| {
        notes.push(format!(
            "checked up to yesterday ({yesterday}): today's numbers are still changing"
        ));
    };
    let (start, last) = match days {
        Days::Recent => {
            let first = back(yesterday);
            let last = high_water.map_or(yesterday, |h| h.min(yesterday));
            if last < first {
                return Err(format!(
                    "no day from {first} on is fully loaded yet (high-water mark {last}); name \
                     the days with --from/--to"
                ));
            }
            (first, last)
        }
        Days::Explicit { from, to } => {
            let wanted = to.unwrap_or_else(|| high_water.map_or(yesterday, |h| h.min(yesterday)));
            if wanted > yesterday {
                today_note(&mut notes);
            }
            let last = wanted.min(yesterday);
            let first = from.unwrap_or_else(|| back(last));
            if first > last {
                return Err(format!("no day to check from {first} to {last}"));
            }
            (first, last)
        }
        Days::Reread(spans) => {
            let Some((_, span)) = spans.iter().find(|(a, _)| a == account) else {
                return Err("the run read no day of this account".into());
            };
            let last = span.last.min(yesterday);
            if span.start > last {
                return Err(format!(
                    "the run re-read only today ({today}), whose numbers are still changing"
                ));
            }
            (span.start, last)
        }
    };
    Ok((Window { start, last }, notes))
}

/// Asks the API for the totals of `window` and adds them to `totals`; returns what reading the
/// answer noticed, or the failure and its kind.
async fn api_totals(
    scope: &Scope<'_>,
    target: &Target,
    window: Window,
    totals: &mut compare::ApiTotals,
    requests: &mut u32,
) -> Result<Vec<String>, (String, FailureKind)> {
    let asked = scope.asked;
    let request = ReportRequest {
        account_id: &target.id,
        job: asked,
        start: window.start,
        last: window.last,
        timezone: target.zone.name(),
        currency: &target.currency,
    };
    let response = match scope.ctx.api.query_report(&request).await {
        Ok(r) => r,
        Err(e) => {
            *requests += attempts_of(&e);
            return Err((e.to_string(), FailureKind::of_api(&e)));
        }
    };
    *requests += response.attempts;
    let unreadable = |e: String| (format!("{}: {e}", response.endpoint), FailureKind::Other);
    let (batch, notes) = query::parse_answer(
        &response.body,
        asked,
        &target.id,
        target.zone,
        &target.currency,
    )
    .map_err(|e| unreadable(e.to_string()))?;
    // The columns of a Query API table without dimensions: account_id, date, the metrics, ...
    let dates = match batch.columns.get(1) {
        Some(ColumnData::Date(d)) => d,
        _ => return Err(unreadable("the answer has no days".into())),
    };
    let mut other_days = BTreeSet::new();
    let mut values = Vec::with_capacity(asked.metrics.len());
    for (row, day) in dates.iter().enumerate() {
        let Some(day) = *day else { continue };
        if !(window.start..=window.last).contains(&day) {
            // A `datetime` the zone moves out of the days asked: not a day of this window.
            other_days.insert(day);
            continue;
        }
        values.clear();
        for i in 0..asked.metrics.len() {
            let value = match batch.columns.get(2 + i) {
                Some(ColumnData::Numeric(c)) => c.get(row),
                _ => None,
            };
            match value.map(|v| (v, Decimal::parse(v))) {
                None => values.push(None),
                Some((_, Some(d))) => values.push(Some(d)),
                Some((text, None)) => {
                    return Err(unreadable(format!(
                        "{} on {day} is {text:?}, not a number that can be compared exactly",
                        asked.metrics[i]
                    )));
                }
            }
        }
        totals
            .add(day, &values)
            .ok_or_else(|| unreadable(format!("the totals of {day} are too large to compare")))?;
    }
    let mut notes = notes.remarks();
    if !other_days.is_empty() {
        let days: Vec<String> = other_days.iter().map(ToString::to_string).collect();
        notes.push(format!(
            "the answer for {window} also had rows for {}, outside the days asked; they were \
             left out",
            days.join(", ")
        ));
    }
    Ok(notes)
}

/// HTTP requests a failed call made: all of its attempts when it spent its retries, else the
/// one that failed (a refusal before sending counts none).
fn attempts_of(e: &ApiError) -> u32 {
    match e {
        ApiError::RetriesExhausted { attempts, .. } => *attempts,
        ApiError::Refused { .. } | ApiError::Client(_) | ApiError::Auth(_) => 0,
        _ => 1,
    }
}

/// The `export_checks` rows of a verification: one per account, day and checked metric.
fn checks_of(v: &Verification) -> Vec<NewCheck> {
    let mut rows = Vec::new();
    for a in &v.accounts {
        let AccountOutcome::Checked { checks, .. } = &a.outcome else {
            continue;
        };
        for day in checks {
            for (metric, m) in v.checked.iter().zip(&day.metrics) {
                rows.push(NewCheck {
                    account_id: a.account_id.clone(),
                    date: day.date,
                    metric: metric.clone(),
                    table_value: m.table,
                    api_value: m.api,
                    table_rows: day.table_rows,
                    matches: m.matches,
                });
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::Report;
    use crate::export::WindowResult;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    fn window(a: u32, b: u32) -> Window {
        Window {
            start: day(a),
            last: day(b),
        }
    }

    #[test]
    fn the_default_days_are_the_lookback_up_to_yesterday_and_the_high_water_mark() {
        let today = day(20);
        let recent = |hw| range(&Days::Recent, 7, "1", today, hw).map(|(w, _)| w);
        assert_eq!(recent(Some(day(19))), Ok(window(13, 19)));
        assert_eq!(
            recent(None),
            Ok(window(13, 19)),
            "no mark: no rows, said so"
        );
        assert_eq!(recent(Some(day(25))), Ok(window(13, 19)), "never today");
        assert_eq!(
            recent(Some(day(16))),
            Ok(window(13, 16)),
            "not past the last day fully loaded"
        );
        assert!(recent(Some(day(10))).unwrap_err().contains("fully loaded"));
        assert_eq!(
            range(&Days::Recent, 0, "1", today, None).map(|(w, _)| w),
            Ok(window(19, 19)),
            "lookback_days = 0 still checks yesterday"
        );
    }

    #[test]
    fn explicit_days_stop_at_yesterday_and_say_so() {
        let today = day(20);
        let explicit = |from, to| range(&Days::Explicit { from, to }, 7, "1", today, Some(day(19)));
        assert_eq!(
            explicit(Some(day(1)), Some(day(5))),
            Ok((window(1, 5), vec![]))
        );
        let (w, notes) = explicit(Some(day(15)), Some(day(25))).unwrap();
        assert_eq!(w, window(15, 19));
        assert!(notes[0].contains("up to yesterday"), "{notes:?}");
        assert_eq!(explicit(None, Some(day(10))).unwrap().0, window(4, 10));
        assert_eq!(explicit(Some(day(2)), None).unwrap().0, window(2, 19));
        assert!(explicit(Some(day(20)), None).is_err(), "today alone");
    }

    #[test]
    fn a_run_rereads_the_days_of_its_successful_windows() {
        let done = |account: &str, w| WindowResult {
            account_id: account.into(),
            window: w,
            api_requests: 1,
            outcome: WindowOutcome::Succeeded {
                rows_received: 1,
                rows_written: 0,
                rows_deleted: 0,
                kept_on_empty: 0,
                rows_skipped_empty: 0,
                rows_missing_dimension: 0,
                warnings: vec![],
            },
        };
        let mut failed = done("2", window(11, 20));
        failed.outcome = WindowOutcome::NotAttempted;
        let result = RunResult {
            job: "j".into(),
            table: "j".into(),
            skipped: None,
            windows: vec![
                done("1", window(1, 10)),
                done("2", window(1, 10)),
                done("1", window(11, 20)),
                failed,
            ],
        };
        let Days::Reread(spans) = Days::reread_by(&result) else {
            unreachable!()
        };
        assert_eq!(
            spans,
            vec![
                ("1".to_owned(), window(1, 20)),
                ("2".to_owned(), window(1, 10))
            ]
        );
        let reread = Days::Reread(spans);
        let today = day(20);
        assert_eq!(
            range(&reread, 7, "1", today, None).unwrap().0,
            window(1, 19),
            "not today"
        );
        assert!(range(&reread, 7, "3", today, None).is_err());
        let only_today = Days::Reread(vec![("1".into(), window(20, 20))]);
        assert!(
            range(&only_today, 7, "1", today, None)
                .unwrap_err()
                .contains("still changing")
        );
    }

    #[test]
    fn only_additive_metrics_with_a_column_are_checked() {
        let q = QueryJob::new(
            Report::Campaigns,
            vec!["campaign_id".into()],
            [
                "impressions",
                "referral_rate",
                "gross_cost",
                "cpa",
                "unique_creatives",
                "made_up",
                "acquisitions",
            ]
            .map(String::from)
            .to_vec(),
        );
        let (checked, not) = split_metrics(&q, None);
        assert_eq!(checked, ["impressions", "gross_cost", "acquisitions"]);
        let why: Vec<(&str, Unchecked)> = not.iter().map(|n| (n.metric.as_str(), n.why)).collect();
        assert_eq!(
            why,
            [
                ("referral_rate", Unchecked::Ratio),
                ("cpa", Unchecked::Ratio),
                ("unique_creatives", Unchecked::Distinct),
                ("made_up", Unchecked::Unknown),
            ]
        );
        let columns = ["account_id", "date", "impressions", "gross_cost"].map(String::from);
        let (checked, not) = split_metrics(&q, Some(&columns));
        assert_eq!(checked, ["impressions", "gross_cost"]);
        assert!(not.contains(&NotChecked {
            metric: "acquisitions".into(),
            why: Unchecked::NoColumn
        }));
    }
}

//! What `verify` reads and writes: the per-day sums of a job table's metrics for one account, and
//! `export_checks`, the append-only history of what each verification found.
//!
//! Sums are exact. Postgres adds its `numeric` column itself and hands the sum over as text; SQLite
//! has no exact decimal sum (its `sum` of a NUMERIC column is a float), so each day's values come as
//! text and are added here as [`Decimal`]s. A SQLite NUMERIC cell holds what SQLite kept of the
//! API's text: an integer, or a float of about 15 significant digits.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{QueryBuilder, Row as _};

use super::error::StoreError;
use super::spec::{quote, validate_identifier};
use super::{Inner, Store};
use crate::decimal::Decimal;

/// One day of one account in a job table: how many rows it holds and the sum of each metric asked
/// for (in the order asked; a column that holds only NULLs sums to 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTotal {
    pub date: NaiveDate,
    pub rows: u64,
    pub sums: Vec<Decimal>,
}

/// Who verified: stored in `export_checks.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckTrigger {
    /// The daemon, after a successful run of a job with `verify = true` (`schedule`).
    Schedule,
    /// `rokt-export verify` (`verify`).
    Verify,
}

impl CheckTrigger {
    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckTrigger::Schedule => "schedule",
            CheckTrigger::Verify => "verify",
        }
    }

    fn parse(s: &str) -> Option<CheckTrigger> {
        [CheckTrigger::Schedule, CheckTrigger::Verify]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// One comparison of one metric on one day of one account: an `export_checks` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheck {
    pub account_id: String,
    pub date: NaiveDate,
    pub metric: String,
    pub table_value: Decimal,
    pub api_value: Decimal,
    pub table_rows: u64,
    pub matches: bool,
}

/// The latest verification of a job, as `export_checks` holds it (for `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCheck {
    pub job: String,
    pub checked_at: DateTime<Utc>,
    pub trigger: Option<CheckTrigger>,
    /// Account-days compared.
    pub days: u64,
    /// Of those, the days where a metric differed.
    pub days_differ: u64,
}

/// Rows per `INSERT` on SQLite: 7 parameters a row, well under its bind limit.
const SQLITE_CHUNK_ROWS: usize = 1_000;

impl Store {
    /// The columns of a table (in the configured schema on Postgres), in order; `None` when there
    /// is no such table.
    pub async fn table_columns(&self, table: &str) -> Result<Option<Vec<String>>, StoreError> {
        validate_identifier("table", table)?;
        let err = |e| StoreError::query(format!("reading the columns of {table:?}"), e);
        let columns: Vec<String> = match &self.inner {
            Inner::Postgres(s) => sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(s.pool())
            .await
            .map_err(err)?,
            Inner::Sqlite(s) => sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                .bind(table)
                .fetch_all(s.pool())
                .await
                .map_err(err)?,
        };
        Ok((!columns.is_empty()).then_some(columns))
    }

    /// The days of `account_id` from `first` to `last` that `table` (a Query API job's table:
    /// `account_id`, `date`) holds rows for, each with its row count and the exact sum of each of
    /// `metrics` (columns the caller knows exist): `SELECT date, count(*), sum(m)... GROUP BY
    /// date`. Days without rows are not returned.
    pub async fn day_totals(
        &self,
        table: &str,
        account_id: &str,
        first: NaiveDate,
        last: NaiveDate,
        metrics: &[String],
    ) -> Result<Vec<DayTotal>, StoreError> {
        validate_identifier("table", table)?;
        for m in metrics {
            validate_identifier("column", m)?;
        }
        let err = |e| StoreError::query(format!("summing the days of {table:?}"), e);
        let unreadable = |metric: &str, text: &str| StoreError::InvalidBatch {
            table: table.to_owned(),
            reason: format!(
                "the sum of {metric:?} on a day of account {account_id:?} is {text:?}, not a \
                 number that can be compared exactly"
            ),
        };
        let mut days = Vec::new();
        match &self.inner {
            Inner::Postgres(s) => {
                let sums: Vec<String> = metrics
                    .iter()
                    .map(|m| format!("coalesce(sum({}), 0)::text", quote(m)))
                    .collect();
                let sql = totals_sql(table, &sums);
                let rows = sqlx::query(&sql)
                    .bind(account_id)
                    .bind(first)
                    .bind(last)
                    .fetch_all(s.pool())
                    .await
                    .map_err(err)?;
                for row in rows {
                    let mut sums = Vec::with_capacity(metrics.len());
                    for (i, m) in metrics.iter().enumerate() {
                        let text: String = row.try_get(i + 2).map_err(err)?;
                        sums.push(Decimal::parse(&text).ok_or_else(|| unreadable(m, &text))?);
                    }
                    days.push(DayTotal {
                        date: row.try_get(0).map_err(err)?,
                        rows: u64::try_from(row.try_get::<i64, _>(1).map_err(err)?).unwrap_or(0),
                        sums,
                    });
                }
            }
            Inner::Sqlite(s) => {
                // Each day's values as text, separated by spaces (a number has none), added here.
                let values: Vec<String> = metrics
                    .iter()
                    .map(|m| format!("group_concat(CAST({} AS TEXT), ' ')", quote(m)))
                    .collect();
                let sql = totals_sql(table, &values);
                let rows = sqlx::query(&sql)
                    .bind(account_id)
                    .bind(first)
                    .bind(last)
                    .fetch_all(s.pool())
                    .await
                    .map_err(err)?;
                for row in rows {
                    let mut sums = Vec::with_capacity(metrics.len());
                    for (i, m) in metrics.iter().enumerate() {
                        let text: Option<String> = row.try_get(i + 2).map_err(err)?;
                        let mut sum = Decimal::ZERO;
                        for value in text.as_deref().unwrap_or_default().split_whitespace() {
                            sum = Decimal::parse(value)
                                .and_then(|v| sum.checked_add(v))
                                .ok_or_else(|| unreadable(m, value))?;
                        }
                        sums.push(sum);
                    }
                    days.push(DayTotal {
                        date: row.try_get(0).map_err(err)?,
                        rows: u64::try_from(row.try_get::<i64, _>(1).map_err(err)?).unwrap_or(0),
                        sums,
                    });
                }
            }
        }
        Ok(days)
    }

    /// Appends one verification's comparisons to `export_checks`, all with `checked_at`, in one
    /// transaction. Returns the rows written.
    pub async fn record_checks(
        &self,
        job: &str,
        trigger: CheckTrigger,
        checked_at: DateTime<Utc>,
        checks: &[NewCheck],
    ) -> Result<u64, StoreError> {
        if checks.is_empty() {
            return Ok(0);
        }
        let err = |e| StoreError::query("recording the checks in export_checks", e);
        let rows = |c: &NewCheck| i64::try_from(c.table_rows).unwrap_or(i64::MAX);
        match &self.inner {
            Inner::Postgres(s) => {
                // One statement whatever the number of checks: a column per array.
                let accounts: Vec<&str> = checks.iter().map(|c| c.account_id.as_str()).collect();
                let dates: Vec<NaiveDate> = checks.iter().map(|c| c.date).collect();
                let metrics: Vec<&str> = checks.iter().map(|c| c.metric.as_str()).collect();
                let table: Vec<String> = checks.iter().map(|c| c.table_value.to_string()).collect();
                let api: Vec<String> = checks.iter().map(|c| c.api_value.to_string()).collect();
                let counts: Vec<i64> = checks.iter().map(rows).collect();
                let matches: Vec<bool> = checks.iter().map(|c| c.matches).collect();
                let done = sqlx::query(
                    "INSERT INTO export_checks (job, account_id, date, metric, table_value, \
                         api_value, table_rows, matches, trigger, checked_at) \
                     SELECT $1, u.a, u.d, u.m, u.t::numeric, u.v::numeric, u.r, u.ok, $2, $3 \
                     FROM UNNEST($4::text[], $5::date[], $6::text[], $7::text[], $8::text[], \
                         $9::bigint[], $10::boolean[]) AS u(a, d, m, t, v, r, ok)",
                )
                .bind(job)
                .bind(trigger.as_str())
                .bind(checked_at)
                .bind(accounts)
                .bind(dates)
                .bind(metrics)
                .bind(table)
                .bind(api)
                .bind(counts)
                .bind(matches)
                .execute(s.pool())
                .await
                .map_err(err)?;
                Ok(done.rows_affected())
            }
            Inner::Sqlite(s) => {
                let mut tx = s.pool().begin().await.map_err(err)?;
                let mut written = 0;
                for chunk in checks.chunks(SQLITE_CHUNK_ROWS) {
                    let mut insert = QueryBuilder::new(
                        "INSERT INTO export_checks (job, account_id, date, metric, table_value, \
                         api_value, table_rows, matches, trigger, checked_at) ",
                    );
                    insert.push_values(chunk, |mut row, c| {
                        row.push_bind(job)
                            .push_bind(c.account_id.as_str())
                            .push_bind(c.date)
                            .push_bind(c.metric.as_str())
                            .push_bind(c.table_value.to_string())
                            .push_bind(c.api_value.to_string())
                            .push_bind(rows(c))
                            .push_bind(c.matches)
                            .push_bind(trigger.as_str())
                            .push_bind(checked_at);
                    });
                    written += insert
                        .build()
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?
                        .rows_affected();
                }
                tx.commit().await.map_err(err)?;
                Ok(written)
            }
        }
    }

    /// The latest verification of each job that `export_checks` holds, by job name.
    pub async fn last_checks(&self) -> Result<Vec<LastCheck>, StoreError> {
        let err = |e| StoreError::query("reading the latest checks", e);
        type Row = (String, DateTime<Utc>, String, i64, i64);
        let rows: Vec<Row> = match &self.inner {
            Inner::Postgres(s) => sqlx::query_as(LAST_CHECKS)
                .fetch_all(s.pool())
                .await
                .map_err(err)?,
            Inner::Sqlite(s) => sqlx::query_as(LAST_CHECKS)
                .fetch_all(s.pool())
                .await
                .map_err(err)?,
        };
        Ok(rows
            .into_iter()
            .map(|(job, checked_at, trigger, days, differ)| LastCheck {
                job,
                checked_at,
                trigger: CheckTrigger::parse(&trigger),
                days: u64::try_from(days).unwrap_or(0),
                days_differ: u64::try_from(differ).unwrap_or(0),
            })
            .collect())
    }
}

/// `SELECT date, count(*), <per metric>... FROM table WHERE account_id = $1 AND date BETWEEN $2
/// AND $3 GROUP BY date ORDER BY date`.
fn totals_sql(table: &str, per_metric: &[String]) -> String {
    let mut select = vec![quote("date"), "count(*)".to_owned()];
    select.extend(per_metric.iter().cloned());
    format!(
        "SELECT {} FROM {} WHERE {} = $1 AND {date} BETWEEN $2 AND $3 GROUP BY {date} \
         ORDER BY {date}",
        select.join(", "),
        quote(table),
        quote("account_id"),
        date = quote("date"),
    )
}

/// The latest verification per job: its account-days and those where a metric differed. Both
/// backends take it as it is (a verification writes all its rows with one `checked_at`).
const LAST_CHECKS: &str = "SELECT d.job, d.checked_at, d.trigger, count(*) AS days, \
        sum(CASE WHEN d.ok = 0 THEN 1 ELSE 0 END) AS differ \
    FROM (SELECT c.job, c.checked_at, c.trigger, c.account_id, c.date, \
            min(CASE WHEN c.matches THEN 1 ELSE 0 END) AS ok \
          FROM export_checks AS c \
          WHERE c.checked_at = \
            (SELECT max(x.checked_at) FROM export_checks AS x WHERE x.job = c.job) \
          GROUP BY c.job, c.checked_at, c.trigger, c.account_id, c.date) AS d \
    GROUP BY d.job, d.checked_at, d.trigger \
    ORDER BY d.job";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{Batch, ColumnData, ColumnSpec, ColumnType, TableSpec, TextColumn};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    #[tokio::test]
    async fn sqlite_sums_are_exact_and_days_without_rows_are_left_out() {
        let (_dir, store) = crate::store::temporary_sqlite().await;
        let spec = TableSpec {
            table: "t".into(),
            columns: vec![
                ColumnSpec::new("account_id", ColumnType::Text),
                ColumnSpec::new("date", ColumnType::Date),
                ColumnSpec::new("c", ColumnType::Text),
                ColumnSpec::new("cost", ColumnType::Numeric),
                ColumnSpec::new("clicks", ColumnType::Numeric),
            ],
            key: vec!["account_id".into(), "date".into(), "c".into()],
            descriptive: Vec::new(),
        };
        store.ensure_table(&spec).await.unwrap();
        let text = |v: &[Option<&str>]| ColumnData::Text(TextColumn::from(v.to_vec()));
        let numeric = |v: &[Option<&str>]| ColumnData::Numeric(TextColumn::from(v.to_vec()));
        // Ten rows of 0.1 on day 1 (a float sum would not be 1), one NULL on day 3.
        let n = 12;
        let mut accounts = vec![Some("1"); n];
        accounts[11] = Some("2");
        let mut days = vec![Some(day(1)); 10];
        days.extend([Some(day(3)), Some(day(1))]);
        let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let keys: Vec<Option<&str>> = keys.iter().map(|k| Some(k.as_str())).collect();
        let mut cost = vec![Some("0.1"); 10];
        cost.extend([None, Some("5")]);
        let mut clicks = vec![Some("3"); 10];
        clicks.extend([Some("1"), Some("7")]);
        let batch = Batch {
            columns: vec![
                text(&accounts),
                ColumnData::Date(days),
                text(&keys),
                numeric(&cost),
                numeric(&clicks),
            ],
        };
        let run = store
            .start_run(&crate::store::NewRun {
                job: "j".into(),
                account_id: "1".into(),
                window_start: day(1),
                window_end: day(3),
                trigger: crate::store::Trigger::RunNow,
            })
            .await
            .unwrap();
        store
            .commit_window(run, &spec, &batch, 1, None)
            .await
            .unwrap();

        assert_eq!(
            store.table_columns("t").await.unwrap().unwrap()[..5],
            ["account_id", "date", "c", "cost", "clicks"]
        );
        assert_eq!(store.table_columns("missing").await.unwrap(), None);
        let metrics = vec!["cost".to_owned(), "clicks".to_owned()];
        let totals = store
            .day_totals("t", "1", day(1), day(5), &metrics)
            .await
            .unwrap();
        let d = |s: &str| Decimal::parse(s).unwrap();
        assert_eq!(
            totals,
            vec![
                DayTotal {
                    date: day(1),
                    rows: 10,
                    sums: vec![d("1"), d("30")],
                },
                DayTotal {
                    date: day(3),
                    rows: 1,
                    sums: vec![d("0"), d("1")],
                },
            ]
        );
        store.close().await;
    }

    #[tokio::test]
    async fn the_last_check_of_each_job_counts_its_days_and_those_that_differ() {
        let (_dir, store) = crate::store::temporary_sqlite().await;
        let check = |account: &str, d: u32, metric: &str, matches: bool| NewCheck {
            account_id: account.into(),
            date: day(d),
            metric: metric.into(),
            table_value: Decimal::parse("1.50").unwrap(),
            api_value: Decimal::parse("1.5").unwrap(),
            table_rows: 2,
            matches,
        };
        let earlier = DateTime::parse_from_rfc3339("2026-03-10T05:00:00Z")
            .unwrap()
            .to_utc();
        let later = earlier + chrono::Duration::hours(12);
        let old = [check("1", 1, "m", false)];
        assert_eq!(
            store
                .record_checks("j", CheckTrigger::Verify, earlier, &old)
                .await
                .unwrap(),
            1
        );
        let new = [
            check("1", 1, "m", true),
            check("1", 1, "n", false),
            check("1", 2, "m", true),
            check("2", 1, "m", true),
        ];
        store
            .record_checks("j", CheckTrigger::Schedule, later, &new)
            .await
            .unwrap();
        let last = store.last_checks().await.unwrap();
        assert_eq!(
            last,
            vec![LastCheck {
                job: "j".into(),
                checked_at: later,
                trigger: Some(CheckTrigger::Schedule),
                days: 3,
                days_differ: 1,
            }]
        );
        store.close().await;
    }
}

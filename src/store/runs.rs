//! Run records (`export_runs`) and job state (`export_state`): the types the rest of the crate
//! uses, and the statements both backends run, written once.
//!
//! The statements are plain SQL both databases accept (sqlx takes `$n` placeholders on SQLite
//! too), run by [`Runs`], which is generic over the sqlx database. What differs is in [`Dialect`]:
//! the one statement whose SQL does (raising the high-water mark: `GREATEST` on Postgres, `max`
//! on SQLite) and the affected-row count, which sqlx has no common method for.
//!
//! Why generic code and not sqlx's `Any` driver: `Any` decodes no dates or timestamps, and the
//! backends need their own pools anyway (the loads are backend-specific). The price of the
//! generic code is the list of sqlx bounds on `impl Runs`, written once for every statement here;
//! the alternative was a second copy of each statement's code in `postgres.rs` and `sqlite.rs`.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Row, Type,
};

use super::error::StoreError;

/// What a reload deletes in the first window's transaction, before the upsert: every row of
/// `account_id` in `table` outside the days `keep` (which the window itself replaces, and whose
/// stored fingerprints were read), and the job's `export_state` row for the account, so the
/// window's state starts afresh. Counted with the window's deletions.
pub(super) struct Reset<'a> {
    pub job: &'a str,
    pub table: &'a str,
    pub account_column: &'a str,
    pub account_id: &'a str,
    pub day_column: &'a str,
    /// First and last day kept; first after last keeps none.
    pub keep: (NaiveDate, NaiveDate),
}

/// What started a run; stored in `export_runs.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A cron firing of the daemon (`schedule`).
    Schedule,
    /// `--run-now` (`run-now`).
    RunNow,
    /// `rokt-export demo` (`demo`).
    Demo,
}

impl Trigger {
    /// The text stored in the database.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::RunNow => "run-now",
            Trigger::Demo => "demo",
        }
    }

    fn parse(s: &str) -> Option<Trigger> {
        [Trigger::Schedule, Trigger::RunNow, Trigger::Demo]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// The outcome of a run, as stored in `export_runs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl RunStatus {
    /// The text stored in the database.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Skipped,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// One run of one job for one account and window: becomes an `export_runs` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub job: String,
    pub account_id: String,
    /// First day of the window.
    pub window_start: NaiveDate,
    /// Last day of the window, inclusive.
    pub window_end: NaiveDate,
    pub trigger: Trigger,
}

/// The state of a job and account after a window, committed with it: the report zone and
/// currency of the rows loaded, and a new high-water mark when the window moved it. The stored mark
/// never moves backwards: the larger of the stored and the new date wins. Keeping the mark to a
/// contiguous prefix of loaded days is the caller's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUpdate {
    pub job: String,
    pub account_id: String,
    /// The last day fully loaded, when this window moved it.
    pub high_water: Option<NaiveDate>,
    /// The report time zone the rows were read in (an Olson name).
    pub timezone: String,
    /// The report currency the rows were read in.
    pub currency: String,
}

/// What the store remembers of a job and account (`export_state`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    /// The last day fully loaded.
    pub high_water: Option<NaiveDate>,
    /// The report zone of the rows loaded (`None`: loaded by a release that did not record it).
    pub timezone: Option<String>,
    /// The report currency of the rows loaded (`None` as for `timezone`).
    pub currency: Option<String>,
}

/// The state of one job for `rokt-export status`: its latest run (by start time) and the range of
/// its high-water marks over accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub job: String,
    /// `None` when the job has state but no recorded run (runs pruned by hand).
    pub last_run_id: Option<i64>,
    pub last_trigger: Option<Trigger>,
    pub last_account_id: Option<String>,
    pub last_started_at: Option<DateTime<Utc>>,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub last_status: Option<RunStatus>,
    pub last_rows_written: Option<i64>,
    pub last_rows_deleted: Option<i64>,
    pub last_error: Option<String>,
    /// When the latest successful run finished.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The lowest high-water mark over the job's accounts (the one furthest behind).
    pub high_water_min: Option<NaiveDate>,
    pub high_water_max: Option<NaiveDate>,
}

/// The error text a run left `running` by a dead process gets from
/// [`super::Store::fail_stale_runs`].
pub const STALE_RUN_ERROR: &str = "abandoned: the process running it stopped before the run finished \
     (no live process holds the job's lock); nothing of its window was committed";

/// The longest error text stored in `export_runs.error`, in bytes; longer texts are cut.
const MAX_ERROR_BYTES: usize = 8192;

/// What differs between the backends in the statements of [`Runs`].
pub(super) trait Dialect: Database {
    /// The rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// The run-record and state statements on one pool.
pub(super) struct Runs<'p, DB: Database> {
    pool: &'p Pool<DB>,
}

impl<'p, DB: Database> Runs<'p, DB> {
    pub fn new(pool: &'p Pool<DB>) -> Self {
        Runs { pool }
    }
}

impl<DB> Runs<'_, DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> NaiveDate: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<NaiveDate>: Encode<'q, DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB>,
    for<'r> StatusRow: FromRow<'r, DB::Row>,
    for<'r> AccountState: FromRow<'r, DB::Row>,
    for<'r> (String, i64): FromRow<'r, DB::Row>,
    for<'r> (String, String): FromRow<'r, DB::Row>,
{
    /// Inserts a run with `status` (its error cut to [`MAX_ERROR_BYTES`]); returns its id.
    pub async fn insert(
        &self,
        run: &NewRun,
        status: RunStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let finished = (status != RunStatus::Running).then_some(now);
        sqlx::query_scalar(sql::INSERT_RUN)
            .bind(run.job.as_str())
            .bind(run.account_id.as_str())
            .bind(run.window_start)
            .bind(run.window_end)
            .bind(run.trigger.as_str())
            .bind(now)
            .bind(finished)
            .bind(status.as_str())
            .bind(error.map(|e| truncate(e, MAX_ERROR_BYTES)))
            .fetch_one(self.pool)
            .await
            .map_err(|e| StoreError::query("recording a run", e))
    }

    /// Marks a `running` run failed with `error` (cut to [`MAX_ERROR_BYTES`]).
    pub async fn fail(
        &self,
        run_id: i64,
        error: &str,
        api_requests: u32,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::FAIL_RUN)
            .bind(run_id)
            .bind(now)
            .bind(truncate(error, MAX_ERROR_BYTES))
            .bind(i32::try_from(api_requests).unwrap_or(i32::MAX))
            .execute(self.pool)
            .await
            .map_err(|e| StoreError::query(format!("recording run {run_id} as failed"), e))?;
        Ok(())
    }

    /// The distinct `(timezone, currency)` of `account_id`'s rows in `table` (which has those
    /// columns), at most three.
    pub async fn table_units(
        &self,
        table: &str,
        account_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT coalesce(\"timezone\", ''), coalesce(\"currency\", '') FROM {} \
             WHERE \"account_id\" = $1 LIMIT 3",
            super::spec::quote(table)
        );
        sqlx::query_as(&sql)
            .bind(account_id)
            .fetch_all(self.pool)
            .await
            .map_err(|e| StoreError::query(format!("reading the time zones of {table:?}"), e))
    }

    /// What the store remembers of `job` and `account_id`; the default when nothing yet.
    pub async fn account_state(
        &self,
        job: &str,
        account_id: &str,
    ) -> Result<AccountState, StoreError> {
        let found: Option<AccountState> = sqlx::query_as(sql::ACCOUNT_STATE)
            .bind(job)
            .bind(account_id)
            .fetch_optional(self.pool)
            .await
            .map_err(|e| StoreError::query("reading the job's state", e))?;
        Ok(found.unwrap_or_default())
    }

    /// The jobs that have a `running` run, by name.
    pub async fn running_jobs(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(sql::RUNNING_JOBS)
            .fetch_all(self.pool)
            .await
            .map_err(|e| StoreError::query("failing runs left running", e))
    }

    /// Marks every `running` run of `job` failed with `error` ([`STALE_RUN_ERROR`] for runs a
    /// dead process left); returns how many. The caller holds the job's lock (that proves no live
    /// holder is running it).
    pub async fn fail_stale(
        &self,
        job: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(sql::FAIL_STALE)
            .bind(job)
            .bind(now)
            .bind(truncate(error, MAX_ERROR_BYTES))
            .execute(self.pool)
            .await
            .map_err(|e| StoreError::query("failing runs left running", e))?;
        Ok(DB::rows_affected(&result))
    }

    /// How many runs each trigger (as stored) started.
    pub async fn trigger_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as(sql::TRIGGER_COUNTS)
            .fetch_all(self.pool)
            .await
            .map_err(|e| StoreError::query("counting runs by trigger", e))
    }

    pub async fn status(&self) -> Result<Vec<JobStatus>, StoreError> {
        let rows: Vec<StatusRow> = sqlx::query_as(sql::STATUS)
            .fetch_all(self.pool)
            .await
            .map_err(|e| StoreError::query("reading job status", e))?;
        Ok(rows.into_iter().map(JobStatus::from).collect())
    }

    /// A reload's deletions on `conn`, inside the first window's transaction (see [`Reset`]);
    /// returns the rows deleted from the job's table.
    pub async fn reset_account(
        conn: &mut DB::Connection,
        reset: &Reset<'_>,
    ) -> Result<u64, StoreError> {
        let err = |e| {
            StoreError::query(
                format!(
                    "reloading account {:?} of {:?}",
                    reset.account_id, reset.table
                ),
                e,
            )
        };
        let sql = format!(
            "DELETE FROM {} WHERE {} = $1 AND {} NOT BETWEEN $2 AND $3",
            super::spec::quote(reset.table),
            super::spec::quote(reset.account_column),
            super::spec::quote(reset.day_column),
        );
        let done = sqlx::query(&sql)
            .bind(reset.account_id)
            .bind(reset.keep.0)
            .bind(reset.keep.1)
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        sqlx::query("DELETE FROM export_state WHERE job = $1 AND account_id = $2")
            .bind(reset.job)
            .bind(reset.account_id)
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        Ok(DB::rows_affected(&done))
    }

    /// The end of a window's transaction on `conn`: marks the run `succeeded` with what it did,
    /// and records the account's `state`. [`StoreError::RunNotRunning`] when the run is not
    /// `running` (the caller's transaction must then roll back).
    pub async fn finish_window(
        conn: &mut DB::Connection,
        run_id: i64,
        now: DateTime<Utc>,
        done: &WindowDone<'_>,
    ) -> Result<(), StoreError> {
        let run_err = |e| StoreError::query(format!("recording run {run_id}"), e);
        let finished = sqlx::query(sql::FINISH_RUN)
            .bind(run_id)
            .bind(now)
            .bind(i64::try_from(done.rows_written).unwrap_or(i64::MAX))
            .bind(i32::try_from(done.api_requests).unwrap_or(i32::MAX))
            .bind(i64::try_from(done.rows_deleted).unwrap_or(i64::MAX))
            .bind(done.warnings.map(|w| truncate(w, MAX_ERROR_BYTES)))
            .execute(&mut *conn)
            .await
            .map_err(run_err)?;
        if DB::rows_affected(&finished) == 0 {
            return Err(StoreError::RunNotRunning(run_id));
        }
        if let Some(state) = done.state {
            sqlx::query(sql::UPDATE_STATE)
                .bind(state.job.as_str())
                .bind(state.account_id.as_str())
                .bind(state.high_water)
                .bind(now)
                .bind(state.timezone.as_str())
                .bind(state.currency.as_str())
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::query("updating the job's state", e))?;
        }
        Ok(())
    }
}

/// What a committed window did, for its run record and the account's state.
pub(super) struct WindowDone<'a> {
    pub rows_written: u64,
    pub rows_deleted: u64,
    pub api_requests: u32,
    /// What the run noticed, one remark per line (no secrets; cut to 8 KiB).
    pub warnings: Option<&'a str>,
    pub state: Option<&'a StateUpdate>,
}

/// One row of [`sql::STATUS`], as the database returns it.
pub(super) struct StatusRow {
    job: String,
    last_run_id: Option<i64>,
    last_trigger: Option<String>,
    last_account_id: Option<String>,
    last_started_at: Option<DateTime<Utc>>,
    last_finished_at: Option<DateTime<Utc>>,
    last_status: Option<String>,
    last_rows_written: Option<i64>,
    last_rows_deleted: Option<i64>,
    last_error: Option<String>,
    last_success_at: Option<DateTime<Utc>>,
    high_water_min: Option<NaiveDate>,
    high_water_max: Option<NaiveDate>,
}

// Rows are read by column name. Written out instead of `#[derive(sqlx::FromRow)]`: the derive needs
// sqlx's macros, which compile sqlx (and the bundled SQLite) a second time for the build host.
impl<'r, R: Row> FromRow<'r, R> for StatusRow
where
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    NaiveDate: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(StatusRow {
            job: row.try_get("job")?,
            last_run_id: row.try_get("last_run_id")?,
            last_trigger: row.try_get("last_trigger")?,
            last_account_id: row.try_get("last_account_id")?,
            last_started_at: row.try_get("last_started_at")?,
            last_finished_at: row.try_get("last_finished_at")?,
            last_status: row.try_get("last_status")?,
            last_rows_written: row.try_get("last_rows_written")?,
            last_rows_deleted: row.try_get("last_rows_deleted")?,
            last_error: row.try_get("last_error")?,
            last_success_at: row.try_get("last_success_at")?,
            high_water_min: row.try_get("high_water_min")?,
            high_water_max: row.try_get("high_water_max")?,
        })
    }
}

impl<'r, R: Row> FromRow<'r, R> for AccountState
where
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    NaiveDate: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(AccountState {
            high_water: row.try_get("high_water")?,
            timezone: row.try_get("timezone")?,
            currency: row.try_get("currency")?,
        })
    }
}

impl From<StatusRow> for JobStatus {
    fn from(row: StatusRow) -> JobStatus {
        JobStatus {
            job: row.job,
            last_run_id: row.last_run_id,
            last_trigger: row.last_trigger.as_deref().and_then(Trigger::parse),
            last_account_id: row.last_account_id,
            last_started_at: row.last_started_at,
            last_finished_at: row.last_finished_at,
            last_status: row.last_status.as_deref().and_then(RunStatus::parse),
            last_rows_written: row.last_rows_written,
            last_rows_deleted: row.last_rows_deleted,
            last_error: row.last_error,
            last_success_at: row.last_success_at,
            high_water_min: row.high_water_min,
            high_water_max: row.high_water_max,
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The statements of [`Runs`] (both backends accept them as they are).
mod sql {
    pub const INSERT_RUN: &str = "INSERT INTO export_runs \
        (job, account_id, window_start, window_end, trigger, started_at, finished_at, status, error) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";

    pub const FINISH_RUN: &str = "UPDATE export_runs \
        SET status = 'succeeded', finished_at = $2, rows_written = $3, api_requests = $4, \
            rows_deleted = $5, warnings = $6 \
        WHERE id = $1 AND status = 'running'";

    /// Upserts an account's state (`$1` job, `$2` account, `$3` new mark or NULL, `$4` now, `$5`
    /// zone, `$6` currency), keeping the larger of the stored and the new mark. Written without
    /// `GREATEST`/`max` so that both backends take it as it is (SQLite's `max` is NULL when one
    /// side is).
    pub const UPDATE_STATE: &str = "INSERT INTO export_state AS s \
            (job, account_id, high_water_date, updated_at, timezone, currency) \
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job, account_id) DO UPDATE \
        SET high_water_date = CASE \
                WHEN excluded.high_water_date IS NULL THEN s.high_water_date \
                WHEN s.high_water_date IS NULL OR excluded.high_water_date > s.high_water_date \
                    THEN excluded.high_water_date \
                ELSE s.high_water_date END, \
            timezone = excluded.timezone, currency = excluded.currency, \
            updated_at = excluded.updated_at";

    pub const FAIL_RUN: &str = "UPDATE export_runs \
        SET status = 'failed', finished_at = $2, error = $3, api_requests = $4 \
        WHERE id = $1 AND status = 'running'";

    pub const FAIL_STALE: &str = "UPDATE export_runs \
        SET status = 'failed', finished_at = $2, error = $3 \
        WHERE job = $1 AND status = 'running'";

    pub const RUNNING_JOBS: &str =
        "SELECT DISTINCT job FROM export_runs WHERE status = 'running' ORDER BY job";

    pub const ACCOUNT_STATE: &str = "SELECT high_water_date AS high_water, timezone, currency \
        FROM export_state WHERE job = $1 AND account_id = $2";

    pub const TRIGGER_COUNTS: &str =
        "SELECT trigger, count(*) FROM export_runs GROUP BY trigger ORDER BY trigger";

    /// Latest run per job by start time (id breaks ties), plus state; jobs from either table.
    /// Named as the fields of `StatusRow`.
    pub const STATUS: &str = "SELECT j.job AS job, r.id AS last_run_id, \
            r.trigger AS last_trigger, r.account_id AS last_account_id, \
            r.started_at AS last_started_at, r.finished_at AS last_finished_at, \
            r.status AS last_status, r.rows_written AS last_rows_written, \
            r.rows_deleted AS last_rows_deleted, r.error AS last_error, \
            (SELECT max(s.finished_at) FROM export_runs s \
              WHERE s.job = j.job AND s.status = 'succeeded') AS last_success_at, \
            (SELECT min(e.high_water_date) FROM export_state e WHERE e.job = j.job) \
              AS high_water_min, \
            (SELECT max(e.high_water_date) FROM export_state e WHERE e.job = j.job) \
              AS high_water_max \
        FROM (SELECT job FROM export_runs UNION SELECT job FROM export_state) AS j \
        LEFT JOIN export_runs r ON r.id = \
            (SELECT x.id FROM export_runs x WHERE x.job = j.job \
              ORDER BY x.started_at DESC, x.id DESC LIMIT 1) \
        ORDER BY j.job";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn triggers_and_statuses_read_back_what_they_store() {
        for t in [Trigger::Schedule, Trigger::RunNow, Trigger::Demo] {
            assert_eq!(Trigger::parse(t.as_str()), Some(t));
        }
        for s in [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Skipped,
        ] {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(Trigger::parse("cron"), None);
    }
}

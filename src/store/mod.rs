//! All SQL: the core tables (`export_runs`, `export_state`, by sqlx migrations), the job tables
//! (created and widened from a [`TableSpec`]), transactional window loads, run records, job locks.
//!
//! Two backends behind one [`Store`], chosen by the database URL:
//!
//! - **Postgres** (production). Every table lives in the configured schema: the store creates it if
//!   missing and sets each pooled connection's `search_path` to it, so all SQL here is unqualified.
//!   Windows load with `INSERT ... SELECT FROM UNNEST($n::type[], ...) ON CONFLICT (key) DO UPDATE
//!   ... WHERE (old) IS DISTINCT FROM (new)` in chunks of 5,000 rows, after leaving out the rows
//!   whose fingerprint (`_row_hash`) is already stored: an unchanged re-read sends and writes nothing. Job locks are session advisory locks on a dedicated connection.
//! - **SQLite** (the embedded default for `demo` and first tries): a file created if missing, WAL,
//!   a busy timeout, foreign keys on. Multi-row `INSERT ... VALUES ... ON CONFLICT` chunked under the
//!   bind-parameter limit. Job locks are in-process only: **one process per SQLite file is assumed**.
//!
//! Invariants: no other module holds SQL; identifiers are validated (see [`StoreError::InvalidName`])
//! and always double-quoted; nothing is ever dropped (a column whose type no longer matches is kept
//! and reported, see [`TableChanges`]).

mod column;
mod error;
mod fingerprint;
mod postgres;
mod spec;
mod sqlite;

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::config::{Backend, DatabaseConfig};
pub use column::TextColumn;
pub(crate) use column::loose;
pub use error::StoreError;

/// A connection pool to the export database. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Postgres(postgres::PgStore),
    Sqlite(sqlite::SqliteStore),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
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
    pub fn as_str(self) -> &'static str {
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
    pub fn as_str(self) -> &'static str {
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

/// A new high-water mark for a job and account, committed with a window. The stored mark never
/// moves backwards: the larger of the stored and the new date wins. Keeping the mark to a
/// contiguous prefix of loaded days is the caller's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUpdate {
    pub job: String,
    pub account_id: String,
    /// The last day fully loaded.
    pub high_water: NaiveDate,
}

/// The shape of a job table.
///
/// The store adds three metadata columns of its own to every job table, `_run_id` (the
/// `export_runs.id` that last changed the row), `_loaded_at` (when) and `_row_hash` (a fingerprint
/// of the row's values, to leave unchanged rows out of a load); a spec must not name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Table name (in the configured schema on Postgres).
    pub table: String,
    /// The columns, in table order.
    pub columns: Vec<ColumnSpec>,
    /// The primary key: names from `columns`. A key may gain columns over time (the table's primary
    /// key is widened; existing rows get '' in a new text key column), never lose them.
    pub key: Vec<String>,
}

/// One column of a [`TableSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub ty: ColumnType,
}

impl ColumnSpec {
    /// A column named `name` of type `ty`.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            ty,
        }
    }
}

/// The column types a job table uses.
///
/// | type | Postgres | SQLite |
/// |---|---|---|
/// | `Text` | `text` | `TEXT` |
/// | `Numeric` | `numeric` (exact) | `NUMERIC` (SQLite keeps about 15 significant digits) |
/// | `Date` | `date` | `TEXT` `YYYY-MM-DD` |
/// | `Boolean` | `boolean` | `INTEGER` 0/1 |
/// | `Json` | `jsonb` | `TEXT` (checked and minified with `json()`) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Numeric,
    Date,
    Boolean,
    Json,
}

/// The rows of one window, column-major: one [`ColumnData`] per column of the [`TableSpec`], in the
/// same order, all of the same length.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub columns: Vec<ColumnData>,
}

impl Batch {
    /// Number of rows (the length of the first column; 0 without columns).
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, ColumnData::len)
    }
}

/// The values of one column.
///
/// Null in a key column: a **text** key value that is `None` is stored as `''` (the empty string),
/// so a row whose dimension is missing has a stable key and a second such row upserts onto it.
/// A null in a key column of any other type fails the load with [`StoreError::InvalidBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnData {
    Text(TextColumn),
    /// Exact decimal text as the API sent it, e.g. `"12.340000"`; Postgres parses it, so text that
    /// is not a number fails the window.
    Numeric(TextColumn),
    Date(Vec<Option<NaiveDate>>),
    Boolean(Vec<Option<bool>>),
    /// JSON text; invalid JSON fails the window.
    Json(TextColumn),
}

impl ColumnData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v) => v.len(),
            ColumnData::Date(v) => v.len(),
            ColumnData::Boolean(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column type these values are for.
    pub fn ty(&self) -> ColumnType {
        match self {
            ColumnData::Text(_) => ColumnType::Text,
            ColumnData::Numeric(_) => ColumnType::Numeric,
            ColumnData::Date(_) => ColumnType::Date,
            ColumnData::Boolean(_) => ColumnType::Boolean,
            ColumnData::Json(_) => ColumnType::Json,
        }
    }

    /// The text of `row` in a text, numeric or JSON column (`None`: null, or another type).
    pub fn text(&self, row: usize) -> Option<&str> {
        match self {
            ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v) => v.get(row),
            ColumnData::Date(_) | ColumnData::Boolean(_) => None,
        }
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v) => v.is_null(row),
            ColumnData::Date(v) => v[row].is_none(),
            ColumnData::Boolean(v) => v[row].is_none(),
        }
    }

    /// True when a text value did not fit the column's limit (see [`TextColumn::overflowed`]).
    fn overflowed(&self) -> bool {
        match self {
            ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v) => v.overflowed(),
            ColumnData::Date(_) | ColumnData::Boolean(_) => false,
        }
    }
}

/// What [`Store::ensure_table`] did or found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableChanges {
    /// The table did not exist and was created.
    pub created: bool,
    /// Columns added to an existing table (`ALTER TABLE ... ADD COLUMN`).
    pub added: Vec<String>,
    /// The primary key was widened to the spec's key (it gained columns).
    pub key_widened: bool,
    /// Columns that exist with another type than the spec asks for. They are kept as they are
    /// (nothing is converted or dropped behind the operator's back); loading a value that the old
    /// type cannot hold fails the window.
    pub type_mismatches: Vec<TypeMismatch>,
}

/// A column whose existing type differs from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMismatch {
    pub column: String,
    /// The type in the database, as the database names it (e.g. `text`, `NUMERIC`).
    pub existing: String,
    /// The existing type as a [`ColumnType`], when it is one of ours.
    pub existing_type: Option<ColumnType>,
    pub wanted: ColumnType,
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
    pub last_error: Option<String>,
    /// When the latest successful run finished.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The lowest high-water mark over the job's accounts (the one furthest behind).
    pub high_water_min: Option<NaiveDate>,
    pub high_water_max: Option<NaiveDate>,
}

/// A held job lock: while it lives, no other holder (another task, another process, another
/// replica on the same Postgres) gets the same job's lock.
///
/// Postgres: a session advisory lock on a connection of its own, outside the pool. Dropping the
/// lock closes that connection, which releases it too (also when the process dies: the server
/// notices the closed socket). SQLite: an entry in a process-wide table, removed on drop.
pub struct JobLock {
    job: String,
    inner: LockInner,
}

enum LockInner {
    Postgres(postgres::PgJobLock),
    Sqlite(sqlite::SqliteJobLock),
}

impl fmt::Debug for JobLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobLock").field("job", &self.job).finish()
    }
}

impl JobLock {
    /// The job this lock is for.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Releases the lock now. Never fails: if unlocking goes wrong the connection is closed, which
    /// releases the lock on the server as well.
    pub async fn release(self) {
        match self.inner {
            LockInner::Postgres(lock) => lock.release().await,
            LockInner::Sqlite(lock) => drop(lock),
        }
    }
}

/// The error text a run left `running` by a dead process gets from [`Store::fail_stale_runs`].
pub const STALE_RUN_ERROR: &str = "abandoned: the process running it stopped before the run finished \
     (no live process holds the job's lock); nothing of its window was committed";

/// The longest error text stored in `export_runs.error`, in bytes; longer texts are cut.
const MAX_ERROR_BYTES: usize = 8192;

/// The fingerprints of the stored rows of one account's days, read ahead of a commit
/// ([`Store::read_stored_rows`]).
pub struct StoredRows {
    table: String,
    account_column: String,
    account_id: String,
    day_column: String,
    first: NaiveDate,
    last: NaiveDate,
    fingerprints: fingerprint::Fingerprints,
}

impl StoredRows {
    /// True when every stored row a batch of `table` with this `scope` can touch is among these:
    /// the same account, days within these. (More rows than needed do no harm: a fingerprint
    /// covers the row's day, so one of another day never equals a row of the batch.)
    fn covers(&self, table: &str, scope: &[fingerprint::Bound<'_>]) -> bool {
        use fingerprint::Bound;
        match scope {
            [Bound::Text(a, id), Bound::Dates(d, first, last), ..] => {
                table == self.table
                    && *a == self.account_column
                    && *id == self.account_id
                    && *d == self.day_column
                    && *first >= self.first
                    && *last <= self.last
            }
            _ => false,
        }
    }
}

impl Store {
    /// Connects to the database the URL names.
    ///
    /// Postgres: creates the configured schema if it is missing (only when missing, so a role
    /// without `CREATE` on the database works against a prepared schema) and sets every pooled
    /// connection's `search_path` to it. SQLite: creates the file if missing, WAL journal,
    /// `synchronous=FULL` (a committed window is on disk), 30 s busy timeout, foreign keys on.
    pub async fn connect(db: &DatabaseConfig) -> Result<Store, StoreError> {
        let inner = match db.url.backend() {
            Backend::Postgres => Inner::Postgres(postgres::PgStore::connect(db).await?),
            Backend::Sqlite => Inner::Sqlite(sqlite::SqliteStore::connect(db).await?),
        };
        Ok(Store { inner })
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        match &self.inner {
            Inner::Postgres(_) => Backend::Postgres,
            Inner::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Applies the core-table migrations (`migrations/postgres` or `migrations/sqlite`, embedded
    /// in the binary). Idempotent; safe to call from several processes at once on Postgres (sqlx
    /// takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.inner {
            Inner::Postgres(s) => s.migrate().await,
            Inner::Sqlite(s) => s.migrate().await,
        }
    }

    /// A trivial query: is the database there? For `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.inner {
            Inner::Postgres(s) => s.ping().await,
            Inner::Sqlite(s) => s.ping().await,
        }
    }

    /// Creates the job table if missing (the spec's columns, `NOT NULL` key columns, the primary
    /// key, the metadata columns), adds columns the spec has and the table lacks, and widens the
    /// primary key when the spec's key gained columns. Never drops or converts anything: a column
    /// of another type is kept and reported in [`TableChanges::type_mismatches`] (and logged at
    /// WARN). A key that lost columns is an error ([`StoreError::KeyMismatch`]).
    pub async fn ensure_table(&self, spec: &TableSpec) -> Result<TableChanges, StoreError> {
        let prepared = spec::prepare(spec)?;
        let changes = match &self.inner {
            Inner::Postgres(s) => s.ensure_table(&prepared).await?,
            Inner::Sqlite(s) => s.ensure_table(&prepared).await?,
        };
        if changes.created {
            tracing::info!(table = %spec.table, "created table");
        }
        if !changes.added.is_empty() {
            tracing::info!(table = %spec.table, columns = ?changes.added, "added columns");
        }
        if changes.key_widened {
            tracing::info!(table = %spec.table, key = ?spec.key, "widened the primary key");
        }
        for m in &changes.type_mismatches {
            tracing::warn!(
                table = %spec.table,
                column = %m.column,
                existing = %m.existing,
                wanted = ?m.wanted,
                "column has another type than the job asks for; it is kept as it is"
            );
        }
        Ok(changes)
    }

    /// Records the start of a run (`status = 'running'`), committed at once. Returns its id.
    pub async fn start_run(&self, run: &NewRun) -> Result<i64, StoreError> {
        self.insert_run(run, RunStatus::Running, None).await
    }

    /// Commits one window in ONE transaction: upserts `batch` into `spec.table`, marks the run
    /// `succeeded` with its rows written and API requests, and raises the high-water mark (never
    /// lowers it). Any error rolls all of it back; the caller then records it with [`Store::fail_run`].
    ///
    /// Rows whose key occurs more than once in the batch: the last one wins (logged at WARN).
    /// Returns the rows written: inserted plus changed; a row identical to the stored one is not
    /// rewritten and not counted, so re-reading unchanged days writes 0 rows. Such rows are not even
    /// sent: the fingerprints (`_row_hash`) of the stored rows the window can touch are read first
    /// (see `fingerprint.rs`), and only rows with a fingerprint not among them go to the upsert.
    ///
    /// The run must be `running`, else [`StoreError::RunNotRunning`] and nothing is committed.
    pub async fn commit_window(
        &self,
        run_id: i64,
        spec: &TableSpec,
        batch: &Batch,
        api_requests: u32,
        state: Option<&StateUpdate>,
    ) -> Result<u64, StoreError> {
        self.commit_window_with(run_id, spec, batch, api_requests, state, None)
            .await
    }

    /// [`Store::commit_window`], with the stored fingerprints read ahead by
    /// [`Store::read_stored_rows`] (used when they cover the batch's rows, else read here).
    pub async fn commit_window_with(
        &self,
        run_id: i64,
        spec: &TableSpec,
        batch: &Batch,
        api_requests: u32,
        state: Option<&StateUpdate>,
        ahead: Option<StoredRows>,
    ) -> Result<u64, StoreError> {
        let prepared = spec::prepare(spec)?;
        let rows = spec::check_batch(&prepared, batch)?;
        // The stored fingerprints are read while this window's own are computed: the query goes
        // out first, and the hashing runs while the server answers.
        let scope = fingerprint::scope(&prepared, batch);
        let read_stored = async {
            if scope.is_empty() {
                return fingerprint::Fingerprints::default();
            }
            if let Some(ahead) = ahead
                && ahead.covers(&spec.table, &scope)
            {
                return ahead.fingerprints;
            }
            let found = self.stored_hashes(&prepared, &scope).await;
            // Only an optimisation: without it every row is sent and the upsert sorts them out.
            found.unwrap_or_else(|e| {
                tracing::warn!(table = %spec.table, run_id, error = %e,
                    "could not read the stored row fingerprints; sending every row");
                fingerprint::Fingerprints::default()
            })
        };
        let compute = async {
            // Lets the query be written to the connection before the CPU work starts.
            tokio::task::yield_now().await;
            // One pass gives each row's fingerprint and its key's hash (for the de-duplication).
            let hashes = fingerprint::row_hashes(&prepared, batch);
            let (selection, dropped) = spec::dedup(&prepared, batch, &hashes.keys);
            (hashes.values, selection, dropped)
        };
        let (stored, (hashes, selection, dropped)) = tokio::join!(read_stored, compute);
        if dropped > 0 {
            tracing::warn!(
                table = %spec.table,
                run_id,
                dropped,
                rows,
                "rows with a key seen again later in the same window were dropped (the last one wins)"
            );
        }
        // Compare before sending: rows whose fingerprint is already stored are left out.
        let (selection, unchanged) = if stored.is_empty() {
            (selection, 0)
        } else {
            selection.retain(|row| !stored.contains(&hashes[row].as_u128()))
        };
        let load = Load {
            run_id,
            prepared: &prepared,
            batch,
            hashes: &hashes,
            selection: &selection,
            api_requests,
            state,
            now: Utc::now(),
        };
        let written = match &self.inner {
            Inner::Postgres(s) => s.commit_window(&load).await?,
            Inner::Sqlite(s) => s.commit_window(&load).await?,
        };
        tracing::debug!(table = %spec.table, run_id, rows, unchanged, written, "window committed");
        Ok(written)
    }

    /// The fingerprints of the stored rows within `scope` (see `fingerprint::scope`).
    async fn stored_hashes(
        &self,
        prepared: &spec::Prepared<'_>,
        scope: &[fingerprint::Bound<'_>],
    ) -> Result<fingerprint::Fingerprints, StoreError> {
        match &self.inner {
            Inner::Postgres(s) => s.stored_hashes(prepared, scope).await,
            Inner::Sqlite(s) => s.stored_hashes(prepared, scope).await,
        }
    }

    /// Reads the fingerprints of the stored rows of `spec.table` whose key starts with
    /// `account_id` (a text column) and a day in `first..=last` (a date column), as a Query API
    /// table's does: the rows a window of those days can touch. The export reads them while the
    /// window is fetched, so that committing it does not wait for them. `None` when the table's key
    /// does not start that way, or the read fails (the commit then reads them itself).
    pub async fn read_stored_rows(
        &self,
        spec: &TableSpec,
        account_id: &str,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Option<StoredRows> {
        let prepared = spec::prepare(spec).ok()?;
        let account = &spec.columns[*prepared.key_idx.first()?];
        let day = &spec.columns[*prepared.key_idx.get(1)?];
        if account.ty != ColumnType::Text || day.ty != ColumnType::Date {
            return None;
        }
        let scope = [
            fingerprint::Bound::Text(&account.name, account_id),
            fingerprint::Bound::Dates(&day.name, first, last),
        ];
        let found = self.stored_hashes(&prepared, &scope).await;
        Some(StoredRows {
            table: spec.table.clone(),
            account_column: account.name.clone(),
            account_id: account_id.to_owned(),
            day_column: day.name.clone(),
            first,
            last,
            fingerprints: found.ok()?,
        })
    }

    /// Marks a run `failed` with `error` (the caller guarantees it holds no secret; it is cut to
    /// 8 KiB). A run that is no longer `running` is left as it is.
    pub async fn fail_run(
        &self,
        run_id: i64,
        error: &str,
        api_requests: u32,
    ) -> Result<(), StoreError> {
        let error = truncate(error, MAX_ERROR_BYTES);
        match &self.inner {
            Inner::Postgres(s) => s.fail_run(run_id, error, api_requests).await,
            Inner::Sqlite(s) => s.fail_run(run_id, error, api_requests).await,
        }
    }

    /// Records a run that did not happen (e.g. another process holds the job's lock) as `skipped`
    /// with `reason` in `error`. Returns its id.
    pub async fn record_skipped(&self, run: &NewRun, reason: &str) -> Result<i64, StoreError> {
        self.insert_run(
            run,
            RunStatus::Skipped,
            Some(truncate(reason, MAX_ERROR_BYTES)),
        )
        .await
    }

    async fn insert_run(
        &self,
        run: &NewRun,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<i64, StoreError> {
        let now = Utc::now();
        match &self.inner {
            Inner::Postgres(s) => s.insert_run(run, status, error, now).await,
            Inner::Sqlite(s) => s.insert_run(run, status, error, now).await,
        }
    }

    /// The last day fully loaded for a job and account, if any.
    pub async fn high_water(
        &self,
        job: &str,
        account_id: &str,
    ) -> Result<Option<NaiveDate>, StoreError> {
        match &self.inner {
            Inner::Postgres(s) => s.high_water(job, account_id).await,
            Inner::Sqlite(s) => s.high_water(job, account_id).await,
        }
    }

    /// Marks `running` runs left by a dead process as `failed` with [`STALE_RUN_ERROR`]; returns
    /// how many. Safe to call at any time, also beside live runs: a job's runs are touched only
    /// while this call holds the job's lock itself, i.e. when no live holder (another task, process
    /// or replica on Postgres; this process on SQLite) is running that job.
    pub async fn fail_stale_runs(&self) -> Result<u64, StoreError> {
        let failed = match &self.inner {
            Inner::Postgres(s) => s.fail_stale_runs().await?,
            Inner::Sqlite(s) => s.fail_stale_runs().await?,
        };
        if failed > 0 {
            tracing::warn!(
                runs = failed,
                "marked runs left running by a stopped process as failed"
            );
        }
        Ok(failed)
    }

    /// Every job that has a run or a high-water mark, by name: its latest run and high-water range.
    pub async fn status(&self) -> Result<Vec<JobStatus>, StoreError> {
        match &self.inner {
            Inner::Postgres(s) => s.status().await,
            Inner::Sqlite(s) => s.status().await,
        }
    }

    /// Takes the job's lock if it is free; `None` when someone else holds it. Hold the returned
    /// [`JobLock`] for the whole run.
    ///
    /// Postgres: `pg_try_advisory_lock` on a dedicated connection, keyed by a stable 64-bit hash of
    /// the schema and job name (so two deployments in different schemas do not block each other),
    /// which excludes every process and replica on that database. SQLite: a lock inside this
    /// process only; two processes on one SQLite file are not supported.
    pub async fn try_lock_job(&self, job: &str) -> Result<Option<JobLock>, StoreError> {
        let inner = match &self.inner {
            Inner::Postgres(s) => s.try_lock_job(job).await?.map(LockInner::Postgres),
            Inner::Sqlite(s) => s.try_lock_job(job).map(LockInner::Sqlite),
        };
        Ok(inner.map(|inner| JobLock {
            job: job.to_owned(),
            inner,
        }))
    }

    /// The number of rows in a job table (for `demo`'s summary).
    pub async fn table_row_count(&self, table: &str) -> Result<i64, StoreError> {
        spec::validate_identifier("table", table)?;
        let sql = format!("SELECT count(*) FROM {}", spec::quote(table));
        match &self.inner {
            Inner::Postgres(s) => s.scalar_i64(&sql, "counting rows").await,
            Inner::Sqlite(s) => s.scalar_i64(&sql, "counting rows").await,
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.inner {
            Inner::Postgres(s) => s.close().await,
            Inner::Sqlite(s) => s.close().await,
        }
    }
}

/// Everything a backend needs to commit one window.
struct Load<'a> {
    run_id: i64,
    prepared: &'a spec::Prepared<'a>,
    batch: &'a Batch,
    /// The `_row_hash` of every row of `batch`, by row number.
    hashes: &'a [Uuid],
    selection: &'a spec::Selection,
    api_requests: u32,
    state: Option<&'a StateUpdate>,
    now: DateTime<Utc>,
}

/// A stable 64-bit key for the job lock: FNV-1a over the schema and the job name. Stable across
/// builds and releases (unlike `std`'s hasher), so old and new versions exclude each other.
fn lock_key(schema: &str, job: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in ["rokt-export", schema, job] {
        for &b in part.as_bytes().iter().chain(&[0u8]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
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

/// The password of a `scheme://user:password@host/...` URL, to scrub from driver messages.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let auth = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let at = auth.rfind('@')?;
    auth[..at].split_once(':').map(|(_, p)| p)
}

/// Decodes the text columns of a `status` row into a [`JobStatus`].
#[allow(clippy::too_many_arguments)]
fn job_status(
    job: String,
    last_run_id: Option<i64>,
    trigger: Option<String>,
    account_id: Option<String>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    status: Option<String>,
    rows_written: Option<i64>,
    error: Option<String>,
    last_success_at: Option<DateTime<Utc>>,
    high_water_min: Option<NaiveDate>,
    high_water_max: Option<NaiveDate>,
) -> JobStatus {
    JobStatus {
        job,
        last_run_id,
        last_trigger: trigger.as_deref().and_then(Trigger::parse),
        last_account_id: account_id,
        last_started_at: started_at,
        last_finished_at: finished_at,
        last_status: status.as_deref().and_then(RunStatus::parse),
        last_rows_written: rows_written,
        last_error: error,
        last_success_at,
        high_water_min,
        high_water_max,
    }
}

/// SQL both backends share (sqlx accepts `$n` placeholders on SQLite too).
mod shared_sql {
    pub const INSERT_RUN: &str = "INSERT INTO export_runs \
        (job, account_id, window_start, window_end, trigger, started_at, finished_at, status, error) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";

    pub const FINISH_RUN: &str = "UPDATE export_runs \
        SET status = 'succeeded', finished_at = $2, rows_written = $3, api_requests = $4 \
        WHERE id = $1 AND status = 'running'";

    pub const FAIL_RUN: &str = "UPDATE export_runs \
        SET status = 'failed', finished_at = $2, error = $3, api_requests = $4 \
        WHERE id = $1 AND status = 'running'";

    pub const FAIL_STALE: &str = "UPDATE export_runs \
        SET status = 'failed', finished_at = $2, error = $3 \
        WHERE job = $1 AND status = 'running'";

    pub const RUNNING_JOBS: &str =
        "SELECT DISTINCT job FROM export_runs WHERE status = 'running' ORDER BY job";

    pub const HIGH_WATER: &str =
        "SELECT high_water_date FROM export_state WHERE job = $1 AND account_id = $2";

    /// Latest run per job by start time (id breaks ties), plus state; jobs from either table.
    pub const STATUS: &str = "SELECT j.job, r.id, r.trigger, r.account_id, r.started_at, \
            r.finished_at, r.status, r.rows_written, r.error, \
            (SELECT max(s.finished_at) FROM export_runs s \
              WHERE s.job = j.job AND s.status = 'succeeded'), \
            (SELECT min(e.high_water_date) FROM export_state e WHERE e.job = j.job), \
            (SELECT max(e.high_water_date) FROM export_state e WHERE e.job = j.job) \
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
    fn lock_keys_are_stable_and_distinct() {
        // Fixed value: changing the hash would let old and new versions run a job at once.
        assert_eq!(
            lock_key("rokt", "campaign_daily"),
            8_457_588_195_510_631_218
        );
        assert_ne!(lock_key("rokt", "a"), lock_key("other", "a"));
        assert_ne!(lock_key("ro", "kta"), lock_key("rok", "ta"));
    }

    #[test]
    fn passwords_are_found_for_scrubbing() {
        assert_eq!(url_password("postgres://u:s3cr3t@h:5/db"), Some("s3cr3t"));
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("sqlite://a.db"), None);
    }

    #[test]
    fn fingerprints_read_ahead_are_used_only_for_the_rows_they_cover() {
        use fingerprint::Bound;
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap_or_default();
        let ahead = StoredRows {
            table: "t".into(),
            account_column: "account_id".into(),
            account_id: "1".into(),
            day_column: "date".into(),
            first: day(1),
            last: day(31),
            fingerprints: fingerprint::Fingerprints::default(),
        };
        let scope = |account, first, last| {
            vec![
                Bound::Text("account_id", account),
                Bound::Dates("date", day(first), day(last)),
            ]
        };
        assert!(ahead.covers("t", &scope("1", 1, 31)));
        assert!(
            ahead.covers("t", &scope("1", 5, 9)),
            "fewer days than were read"
        );
        let one_day = [scope("1", 7, 7), vec![Bound::Text("campaign_id", "c")]].concat();
        assert!(ahead.covers("t", &one_day), "a narrower scope");
        assert!(!ahead.covers("t", &scope("2", 1, 31)), "another account");
        assert!(!ahead.covers("other", &scope("1", 1, 31)), "another table");
        let later = [
            Bound::Text("account_id", "1"),
            Bound::Dates("date", day(2), day(31) + chrono::Days::new(1)),
        ];
        assert!(!ahead.covers("t", &later), "a day after those read");
        let earlier = [
            Bound::Text("account_id", "1"),
            Bound::Dates("date", day(1) - chrono::Days::new(1), day(3)),
        ];
        assert!(!ahead.covers("t", &earlier), "a day before those read");
        assert!(
            !ahead.covers("t", &[Bound::Text("account_id", "1")]),
            "no day range"
        );
        assert!(!ahead.covers(
            "t",
            &[Bound::Text("x", "1"), Bound::Dates("date", day(1), day(2))]
        ));
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}

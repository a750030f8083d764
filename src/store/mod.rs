//! All SQL: the core tables (`export_runs`, `export_state`, `export_checks`, by sqlx
//! migrations), the job tables (created and widened from a [`TableSpec`]), transactional window
//! loads, run records, job locks. This file is the backend-neutral API; each backend is a file of
//! its own.
//!
//! Two backends behind one [`Store`], chosen by the database URL:
//!
//! - **Postgres** (production). Every table lives in the configured schema: the store creates it if
//!   missing and sets each pooled connection's `search_path` to it, so all SQL here is unqualified.
//!   Windows load with `INSERT ... SELECT FROM UNNEST($n::type[], ...) ON CONFLICT (key) DO UPDATE
//!   ... WHERE (old) IS DISTINCT FROM (new)` in statements of 2,000 rows, after leaving out the
//!   rows whose fingerprint (`_row_hash`) is already stored: an unchanged re-read sends and writes
//!   nothing. Job locks are session advisory locks on a dedicated connection.
//! - **SQLite** (the embedded default for `demo` and first tries): a file created if missing, WAL,
//!   a busy timeout, foreign keys on. Multi-row `INSERT ... VALUES ... ON CONFLICT` chunked under the
//!   bind-parameter limit. Job locks are in-process only: **one process per SQLite file is assumed**.
//!
//! The files: `table.rs` (table specs, batches, what `ensure_table` found), `column.rs` (the text
//! column of a batch), `runs.rs` (run records and job state, their statements written once for
//! both backends), `spec.rs` (validation and de-duplication of a load), `fingerprint.rs`
//! (`_row_hash`), `postgres.rs` and `sqlite.rs` (creating tables, loading windows, job locks),
//! `checks.rs` (`verify`'s per-day sums and the `export_checks` history), `probe.rs` (what
//! `validate --online` asks of the database, creating nothing that stays), `wait.rs` (waiting for
//! the database: start-up attempts, closing a job's runs once its lock is free), `error.rs`
//! ([`StoreError`]).
//!
//! Invariants: no other module holds SQL; identifiers are validated (see [`StoreError::InvalidName`])
//! and always double-quoted; nothing is ever dropped (a column whose type no longer matches is kept
//! and reported, see [`TableChanges`]).

mod checks;
mod column;
mod error;
mod fingerprint;
mod load;
mod migrations;
mod postgres;
mod probe;
mod runs;
mod spec;
mod sqlite;
mod table;
mod wait;

/// A migrated SQLite store in a temporary directory, for unit tests (kept while the directory
/// lives).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) async fn temporary_sqlite() -> (tempfile::TempDir, Store) {
    use crate::config::{DatabaseConfig, DatabaseUrl};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Store::connect(&DatabaseConfig::new(
        DatabaseUrl::parse(&url).unwrap(),
        "rokt",
    ))
    .await
    .unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

use std::fmt;

use chrono::{NaiveDate, Utc};

use crate::config::{Backend, DatabaseConfig};
pub use checks::{CheckTrigger, DayTotal, LastCheck, NewCheck};
pub use column::TextColumn;
pub(crate) use column::loose;
pub use error::StoreError;
pub use probe::{Probe, probe};
pub use runs::{AccountState, JobStatus, NewRun, RunStatus, STALE_RUN_ERROR, StateUpdate, Trigger};
pub use table::{Batch, ColumnData, ColumnSpec, ColumnType, TableChanges, TableSpec, TypeMismatch};
pub use wait::{Patience, StillRunning, while_unavailable};

/// A connection pool to the export database. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    inner: Inner,
}

/// The name a person reads for `table`: `schema.table` on Postgres (the store keeps every table in
/// the configured schema), the bare name on SQLite. For display only: it is not quoted, so it
/// never goes into SQL.
pub fn qualified(db: &DatabaseConfig, table: &str) -> String {
    match db.url.backend() {
        Backend::Postgres => format!("{}.{table}", db.schema),
        Backend::Sqlite => table.to_owned(),
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
    /// primary key when the spec's key gained columns. Never drops or converts a column: a column
    /// of another type is kept and reported in [`TableChanges::type_mismatches`].
    ///
    /// A key that lost columns (a table made when names were part of a Query API job's key) is
    /// narrowed, in the same transaction: of rows that share the new key, the most recently
    /// loaded one is kept and the others are deleted (counted in [`TableChanges::collapsed`]); the
    /// columns that left the key stay, as ordinary columns. A key that is neither a superset nor a
    /// subset of the table's is an error ([`StoreError::KeyMismatch`]). On Postgres the DDL waits at
    /// most a few seconds for a lock (`lock_timeout`), so a reader holding a transaction open fails
    /// the run instead of queueing it, and every query after it, forever.
    ///
    /// Logs what it changed (created, added columns, widened key) at INFO and each type mismatch
    /// at WARN, once here, so callers do not log them again.
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
        if changes.key_narrowed {
            tracing::info!(table = %spec.table, key = ?spec.key, collapsed = changes.collapsed,
                "narrowed the primary key to the rows' grain; of rows that shared it, the most \
                 recently loaded one was kept");
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
    /// lowers it). Rows are only upserted: see [`Store::commit`] for a window that replaces its
    /// days. Returns the rows written.
    pub async fn commit_window(
        &self,
        run_id: i64,
        spec: &TableSpec,
        batch: &Batch,
        api_requests: u32,
        state: Option<&StateUpdate>,
    ) -> Result<u64, StoreError> {
        let load = WindowLoad {
            run_id,
            spec,
            batch,
            api_requests,
            state,
            replace: None,
            warnings: &[],
            ahead: None,
        };
        Ok(self.commit(load).await?.rows_written)
    }

    /// Commits one window in ONE transaction: upserts its rows into `spec.table` and, when it
    /// [`Replace`]s its account's days, deletes the rows of those days that the answer no longer
    /// has; then marks the run `succeeded` with what it did and records the account's state (the
    /// high-water mark never moves backwards). Any error rolls all of it back; the caller then
    /// records it with [`Store::fail_run`].
    ///
    /// Rows whose key occurs more than once in the batch: the last one wins (logged at WARN). A
    /// row identical to the stored one is not rewritten and not counted, so re-reading unchanged
    /// days writes 0 rows. Such rows are not even sent: the fingerprints (`_row_hash`) of the stored
    /// rows the window can touch are read first (see `fingerprint.rs`), and only rows with a
    /// fingerprint not among them go to the upsert. The same fingerprints say which stored rows
    /// the answer no longer has (each carries its key's hash: `fingerprint::vanished`), so a
    /// `DELETE` is sent only when some stored row's key is not in the answer (or a stored row has
    /// no fingerprint), and it deletes exactly those rows. A re-read in which rows only changed
    /// sends none.
    ///
    /// The run must be `running`, else [`StoreError::RunNotRunning`] and nothing is committed.
    pub async fn commit(&self, window: WindowLoad<'_>) -> Result<Committed, StoreError> {
        let WindowLoad {
            run_id,
            spec,
            batch,
            api_requests,
            state,
            replace,
            warnings,
            ahead,
        } = window;
        let prepared = spec::prepare(spec)?;
        let rows = spec::check_batch(&prepared, batch)?;
        let replaced = match &replace {
            Some(r) => Some(replace_scope(&prepared, r)?),
            None => None,
        };
        // The stored fingerprints are read while this window's own are computed: the query goes
        // out first, and the hashing runs while the server answers.
        let scope = match &replaced {
            Some(r) => r.clone(),
            None => fingerprint::scope(&prepared, batch),
        };
        let read_stored = async {
            if scope.is_empty() {
                return Ok(fingerprint::Stored::default());
            }
            if let Some(ahead) = ahead
                && ahead.covers(&spec.table, &scope, replaced.is_some())
            {
                return Ok(ahead.stored);
            }
            self.stored_hashes(&prepared, &scope).await
        };
        let compute = async {
            // Lets the query be written to the connection before the CPU work starts.
            tokio::task::yield_now().await;
            // One pass gives each row's fingerprint and its key's hash (for the de-duplication).
            let hashes = fingerprint::row_hashes(&prepared, batch);
            let (selection, dropped) = spec::dedup(&prepared, batch, &hashes.keys);
            (hashes, selection, dropped)
        };
        let (
            stored,
            (
                fingerprint::RowHashes {
                    values: hashes,
                    keys,
                },
                selection,
                dropped,
            ),
        ) = tokio::join!(read_stored, compute);
        let stored = match stored {
            Ok(stored) => stored,
            // Knowing what is stored is what a replace needs; for an upsert it is only an
            // optimisation: without it every row is sent and the upsert sorts them out.
            Err(e) if replaced.is_some() => return Err(e),
            Err(e) => {
                tracing::warn!(table = %spec.table, run_id, error = %e,
                    "could not read the stored row fingerprints; sending every row");
                fingerprint::Stored::default()
            }
        };
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
        let (selection, unchanged) = if stored.hashes.is_empty() {
            (selection, 0)
        } else {
            selection.retain(|row| !stored.hashes.contains(&hashes[row].as_u128()))
        };
        let reset = match (&replaced, &replace) {
            (
                Some(r),
                Some(Replace {
                    reload: Some(job), ..
                }),
            ) => reset_of(&spec.table, job, r),
            _ => None,
        };
        let mut kept_on_empty = 0;
        let vanished = match (replaced, &replace) {
            (Some(scope), Some(how)) => {
                if batch.rows() == 0 && !stored.is_empty() && !how.empty_answer_empties {
                    // An empty answer for days that hold rows is more often an API hiccup than
                    // days that lost every row: keep them, and say so.
                    kept_on_empty = stored.rows();
                    None
                } else if unchanged == stored.hashes.len() && stored.unhashed == 0 {
                    // Every stored fingerprint is one of the answer's: nothing vanished (and
                    // no set of the answer's keys is needed to know it).
                    None
                } else {
                    // The keys of every row, a duplicate dropped above included (it has the key
                    // of the row that won). A stored row whose key is among them is updated by
                    // the upsert, however its values changed; one whose key is not has vanished.
                    let candidates = fingerprint::vanished(&stored.hashes, &keys);
                    (!candidates.is_empty() || stored.unhashed > 0).then_some(load::Vanished {
                        scope,
                        candidates,
                        unhashed: stored.unhashed > 0,
                    })
                }
            }
            _ => None,
        };
        let mut remarks: Vec<String> = warnings.to_vec();
        if kept_on_empty > 0 {
            remarks.push(format!(
                "the answer had no rows; the {kept_on_empty} stored rows of these days were kept"
            ));
        }
        let remarks = (!remarks.is_empty()).then(|| remarks.join("\n"));
        let load = load::Load {
            reset,
            run_id,
            prepared: &prepared,
            batch,
            hashes: &hashes,
            selection: &selection,
            api_requests,
            state,
            warnings: remarks.as_deref(),
            vanished,
            now: Utc::now(),
        };
        let written = match &self.inner {
            Inner::Postgres(s) => s.commit_window(&load).await?,
            Inner::Sqlite(s) => s.commit_window(&load).await?,
        };
        tracing::debug!(table = %spec.table, run_id, rows, unchanged,
            written = written.written, deleted = written.deleted, "window committed");
        Ok(Committed {
            rows_written: written.written,
            rows_deleted: written.deleted,
            kept_on_empty,
        })
    }

    /// The fingerprints of the stored rows within `scope` (see `fingerprint::scope`).
    async fn stored_hashes(
        &self,
        prepared: &spec::Prepared<'_>,
        scope: &[fingerprint::Bound<'_>],
    ) -> Result<fingerprint::Stored, StoreError> {
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
            stored: found.ok()?,
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
        let now = Utc::now();
        match &self.inner {
            Inner::Postgres(s) => s.runs().fail(run_id, error, api_requests, now).await,
            Inner::Sqlite(s) => s.runs().fail(run_id, error, api_requests, now).await,
        }
    }

    /// Records a run that did not happen (e.g. another process holds the job's lock) as `skipped`
    /// with `reason` in `error`. Returns its id.
    pub async fn record_skipped(&self, run: &NewRun, reason: &str) -> Result<i64, StoreError> {
        self.insert_run(run, RunStatus::Skipped, Some(reason)).await
    }

    async fn insert_run(
        &self,
        run: &NewRun,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<i64, StoreError> {
        let now = Utc::now();
        match &self.inner {
            Inner::Postgres(s) => s.runs().insert(run, status, error, now).await,
            Inner::Sqlite(s) => s.runs().insert(run, status, error, now).await,
        }
    }

    /// The last day fully loaded for a job and account, if any.
    pub async fn high_water(
        &self,
        job: &str,
        account_id: &str,
    ) -> Result<Option<NaiveDate>, StoreError> {
        Ok(self.account_state(job, account_id).await?.high_water)
    }

    /// What is remembered of a job and account: its high-water mark and the zone and currency of
    /// the rows loaded (the default when nothing yet).
    pub async fn account_state(
        &self,
        job: &str,
        account_id: &str,
    ) -> Result<AccountState, StoreError> {
        match &self.inner {
            Inner::Postgres(s) => s.runs().account_state(job, account_id).await,
            Inner::Sqlite(s) => s.runs().account_state(job, account_id).await,
        }
    }

    /// The report zones and currencies of the rows `table` holds for `account_id` (its `timezone`
    /// and `currency` columns), at most a few: for rows loaded before the state recorded them.
    /// Empty when the table does not exist or has no such columns.
    pub async fn table_units(
        &self,
        table: &str,
        account_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        spec::validate_identifier("table", table)?;
        let err = |e| StoreError::query(format!("reading the time zones of {table:?}"), e);
        if !self
            .has_columns(table, &["account_id", "timezone", "currency"])
            .await
            .map_err(err)?
        {
            return Ok(Vec::new());
        }
        match &self.inner {
            Inner::Postgres(s) => s.runs().table_units(table, account_id).await,
            Inner::Sqlite(s) => s.runs().table_units(table, account_id).await,
        }
    }

    /// Whether `table` exists with every one of `columns`.
    async fn has_columns(&self, table: &str, columns: &[&str]) -> Result<bool, sqlx::Error> {
        match &self.inner {
            Inner::Postgres(s) => s.has_columns(table, columns).await,
            Inner::Sqlite(s) => s.has_columns(table, columns).await,
        }
    }

    /// Marks `running` runs left by a dead process as `failed` with [`STALE_RUN_ERROR`]; returns
    /// how many. Safe to call at any time, also beside live runs: a job's runs are touched only
    /// while this call holds the job's lock itself, i.e. when no live holder (another task, process
    /// or replica on Postgres; this process on SQLite) is running that job.
    pub async fn fail_stale_runs(&self) -> Result<u64, StoreError> {
        let jobs = match &self.inner {
            Inner::Postgres(s) => s.runs().running_jobs().await?,
            Inner::Sqlite(s) => s.runs().running_jobs().await?,
        };
        let mut failed = 0;
        for job in jobs {
            // Holding the job's lock proves no live holder is running it (on SQLite: no holder in
            // this process, and one process per file is assumed).
            let Some(lock) = self.try_lock_job(&job).await? else {
                continue;
            };
            let now = Utc::now();
            let result = match &self.inner {
                Inner::Postgres(s) => s.runs().fail_stale(&job, STALE_RUN_ERROR, now).await,
                Inner::Sqlite(s) => s.runs().fail_stale(&job, STALE_RUN_ERROR, now).await,
            };
            lock.release().await;
            failed += result?;
        }
        if failed > 0 {
            tracing::warn!(
                runs = failed,
                "marked runs left running by a stopped process as failed"
            );
        }
        Ok(failed)
    }

    /// Marks the `running` runs of `job` failed with `error` (cut to 8 KiB), as
    /// [`Store::fail_stale_runs`] does for runs a dead process left, but for one job and with the
    /// reason the caller knows (the daemon, after a run of the job panicked). `None` when a live
    /// holder runs the job (its lock is taken), and nothing is touched.
    pub async fn fail_running_runs(
        &self,
        job: &str,
        error: &str,
    ) -> Result<Option<u64>, StoreError> {
        let Some(lock) = self.try_lock_job(job).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        let result = match &self.inner {
            Inner::Postgres(s) => s.runs().fail_stale(job, error, now).await,
            Inner::Sqlite(s) => s.runs().fail_stale(job, error, now).await,
        };
        lock.release().await;
        result.map(Some)
    }

    /// Every job that has a run or a high-water mark, by name: its latest run and high-water range.
    pub async fn status(&self) -> Result<Vec<JobStatus>, StoreError> {
        match &self.inner {
            Inner::Postgres(s) => s.runs().status().await,
            Inner::Sqlite(s) => s.runs().status().await,
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

    /// What the database holds already: its tables (in the configured schema on Postgres) other
    /// than the core ones, and its runs by trigger. Reads only, and works before [`Store::migrate`]
    /// (no `export_runs` table: no runs). For `demo`, which must write only into a database of its
    /// own (see [`Contents::all_runs_are_demo_runs`]).
    pub async fn contents(&self) -> Result<Contents, StoreError> {
        let names = match &self.inner {
            Inner::Postgres(s) => s.table_names().await?,
            Inner::Sqlite(s) => s.table_names().await?,
        };
        let runs_by_trigger = if names.iter().any(|n| n == "export_runs") {
            match &self.inner {
                Inner::Postgres(s) => s.runs().trigger_counts().await?,
                Inner::Sqlite(s) => s.runs().trigger_counts().await?,
            }
        } else {
            Vec::new()
        };
        let tables = names
            .into_iter()
            .filter(|n| !CORE_TABLES.contains(&n.as_str()))
            .collect();
        Ok(Contents {
            tables,
            runs_by_trigger: runs_by_trigger
                .into_iter()
                .map(|(t, n)| (t, u64::try_from(n).unwrap_or(0)))
                .collect(),
        })
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

/// One window to [`Store::commit`].
pub struct WindowLoad<'a> {
    /// Its `export_runs` row, `running`.
    pub run_id: i64,
    pub spec: &'a TableSpec,
    pub batch: &'a Batch,
    pub api_requests: u32,
    /// The account's state after the window.
    pub state: Option<&'a StateUpdate>,
    /// The account and days whose rows the window replaces; `None`: rows are only upserted.
    pub replace: Option<Replace<'a>>,
    /// What the run noticed about the answer, one remark each, for the run record.
    pub warnings: &'a [String],
    /// The stored fingerprints read ahead ([`Store::read_stored_rows`]), used when they cover
    /// the window's rows.
    pub ahead: Option<StoredRows>,
}

/// The rows a window replaces: those of `account_id` (the table's first key column) on the days
/// `first..=last` (its second, a date). After the commit the table holds, for them, exactly the
/// rows of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replace<'a> {
    pub account_id: &'a str,
    pub first: NaiveDate,
    pub last: NaiveDate,
    /// Whether an answer without any row empties days that hold rows. When false such an answer
    /// is taken for a hiccup: the rows are kept and counted in [`Committed::kept_on_empty`].
    pub empty_answer_empties: bool,
    /// `--reload` of this job: in the same transaction, before the upsert, the account's rows
    /// outside these days (and any day the answer's rows reach) and the job's state for it are
    /// deleted, counted in [`Committed::rows_deleted`]. A first window that commits nothing (it
    /// fails) so leaves the table as it was. `first` after `last` replaces no day and keeps none.
    pub reload: Option<&'a str>,
}

/// What [`Store::commit`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// Rows inserted or changed.
    pub rows_written: u64,
    /// Rows of the replaced days that the answer no longer had.
    pub rows_deleted: u64,
    /// Rows kept because the answer had none at all for days that hold them.
    pub kept_on_empty: u64,
}

/// Where a replace reads the stored fingerprints and deletes what vanished: the account's days.
///
/// Exactly those days, also when the answer has rows beyond them (a `datetime` moved into the
/// report's zone can land a day later): every stored fingerprint read must be one the window may
/// delete, or a stored row of another day, whose key no row of the answer has, would be taken for
/// vanished and a `DELETE` sent that deletes nothing. A row beyond these days is sent to the
/// upsert without comparing (the upsert's `IS DISTINCT FROM` still leaves an unchanged one as it
/// is).
fn replace_scope<'a>(
    prepared: &spec::Prepared<'a>,
    replace: &Replace<'a>,
) -> Result<Vec<fingerprint::Bound<'a>>, StoreError> {
    let spec = prepared.spec;
    let account = prepared.key_idx.first().map(|&i| &spec.columns[i]);
    let day = prepared.key_idx.get(1).map(|&i| &spec.columns[i]);
    let (Some(account), Some(day)) = (account, day) else {
        return Err(StoreError::InvalidSpec {
            table: spec.table.clone(),
            reason: "a window can only replace days of a table keyed on an account and a day"
                .into(),
        });
    };
    if account.ty != ColumnType::Text || day.ty != ColumnType::Date {
        return Err(StoreError::InvalidSpec {
            table: spec.table.clone(),
            reason: "a window can only replace days of a table keyed on an account (text) and a \
                     day (date)"
                .into(),
        });
    }
    use fingerprint::Bound;
    Ok(vec![
        Bound::Text(&account.name, replace.account_id),
        Bound::Dates(&day.name, replace.first, replace.last),
    ])
}

/// What a reload of `job` deletes before the window's upsert: the account's rows outside the days
/// the window replaces (`scope`, see [`replace_scope`]), which the upsert and the replace take care
/// of. A row of the answer that lands beyond those days is deleted by the reset and written again
/// by the upsert after it.
fn reset_of<'a>(
    table: &'a str,
    job: &'a str,
    scope: &[fingerprint::Bound<'a>],
) -> Option<runs::Reset<'a>> {
    match scope {
        [
            fingerprint::Bound::Text(account_column, account_id),
            fingerprint::Bound::Dates(day_column, first, last),
        ] => Some(runs::Reset {
            job,
            table,
            account_column,
            account_id,
            day_column,
            keep: (*first, *last),
        }),
        _ => None,
    }
}

/// The tables the migrations create (and sqlx's own record of them).
const CORE_TABLES: [&str; 4] = [
    "export_runs",
    "export_state",
    "export_checks",
    "_sqlx_migrations",
];

/// What a database holds already ([`Store::contents`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// Tables (and views) besides the core ones: job tables, or anything else that lives there.
    pub tables: Vec<String>,
    /// Runs recorded in `export_runs`, by trigger as stored (`schedule`, `run-now`, `demo`).
    pub runs_by_trigger: Vec<(String, u64)>,
}

impl Contents {
    /// Every recorded run was started by `demo` (also true when there is none).
    pub fn all_runs_are_demo_runs(&self) -> bool {
        self.runs_by_trigger
            .iter()
            .all(|(t, _)| t == Trigger::Demo.as_str())
    }

    /// How many runs there are.
    pub fn runs(&self) -> u64 {
        self.runs_by_trigger.iter().map(|(_, n)| n).sum()
    }
}

/// The fingerprints of the stored rows of one account's days, read ahead of a commit
/// ([`Store::read_stored_rows`]).
pub struct StoredRows {
    table: String,
    account_column: String,
    account_id: String,
    day_column: String,
    first: NaiveDate,
    last: NaiveDate,
    stored: fingerprint::Stored,
}

impl StoredRows {
    /// True when these are the stored rows a batch of `table` with this `scope` can touch: the
    /// same account, and days within these; with `exact` (a window that replaces its days),
    /// exactly these days. (For an upsert more rows than needed do no harm: a fingerprint covers
    /// the row's day, so one of another day never equals a row of the batch. A replace takes every
    /// stored fingerprint whose key the answer lacks for a row to delete, so one of a day it does
    /// not replace must not be among them.)
    fn covers(&self, table: &str, scope: &[fingerprint::Bound<'_>], exact: bool) -> bool {
        use fingerprint::Bound;
        let same_place = |a: &str, id: &str, d: &str| {
            table == self.table
                && a == self.account_column
                && id == self.account_id
                && d == self.day_column
        };
        match scope {
            [Bound::Text(a, id), Bound::Dates(d, first, last)] if exact => {
                same_place(a, id, d) && *first == self.first && *last == self.last
            }
            [Bound::Text(a, id), Bound::Dates(d, first, last), ..] if !exact => {
                same_place(a, id, d) && *first >= self.first && *last <= self.last
            }
            _ => false,
        }
    }
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

/// The backend behind a [`Store`].
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

/// The backend's lock behind a [`JobLock`].
enum LockInner {
    Postgres(postgres::PgJobLock),
    Sqlite(sqlite::SqliteJobLock),
}

impl fmt::Debug for JobLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobLock").field("job", &self.job).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tables_are_named_with_their_schema_on_postgres_only() {
        let db = |url: &str| {
            DatabaseConfig::new(crate::config::DatabaseUrl::parse(url).unwrap(), "rokt")
        };
        assert_eq!(
            qualified(&db("postgres://u@h/db"), "campaign_daily"),
            "rokt.campaign_daily"
        );
        assert_eq!(
            qualified(&db("sqlite://a.db"), "campaign_daily"),
            "campaign_daily"
        );
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
            stored: fingerprint::Stored::default(),
        };
        let scope = |account, first, last| {
            vec![
                Bound::Text("account_id", account),
                Bound::Dates("date", day(first), day(last)),
            ]
        };
        for exact in [false, true] {
            assert!(
                ahead.covers("t", &scope("1", 1, 31), exact),
                "the days read"
            );
            assert!(
                !ahead.covers("t", &scope("2", 1, 31), exact),
                "another account"
            );
            assert!(
                !ahead.covers("other", &scope("1", 1, 31), exact),
                "another table"
            );
            let later = [
                Bound::Text("account_id", "1"),
                Bound::Dates("date", day(2), day(31) + chrono::Days::new(1)),
            ];
            assert!(!ahead.covers("t", &later, exact), "a day after those read");
            let earlier = [
                Bound::Text("account_id", "1"),
                Bound::Dates("date", day(1) - chrono::Days::new(1), day(3)),
            ];
            assert!(
                !ahead.covers("t", &earlier, exact),
                "a day before those read"
            );
            assert!(
                !ahead.covers("t", &[Bound::Text("account_id", "1")], exact),
                "no day range"
            );
            assert!(!ahead.covers(
                "t",
                &[Bound::Text("x", "1"), Bound::Dates("date", day(1), day(2))],
                exact
            ));
        }
        // An upsert may use more rows than it needs; a replace deletes what it read and the
        // answer lacks, so it needs exactly its days.
        assert!(
            ahead.covers("t", &scope("1", 5, 9), false),
            "fewer days than were read"
        );
        assert!(
            !ahead.covers("t", &scope("1", 5, 9), true),
            "a replace of fewer days than were read"
        );
        assert!(
            !ahead.covers("t", &scope("1", 1, 30), true),
            "a replace up to yesterday of a window read up to today"
        );
        let one_day = [scope("1", 7, 7), vec![Bound::Text("campaign_id", "c")]].concat();
        assert!(ahead.covers("t", &one_day, false), "a narrower scope");
        assert!(!ahead.covers("t", &one_day, true));
    }
}

//! The SQLite backend: one file, WAL, multi-row VALUES upserts, job locks inside this process.
//! Run records and job state are `runs.rs`'s, on this pool; this file gives them their
//! [`Dialect`].
//!
//! One process per database file is assumed (the demo and first tries): job locks are not seen by
//! other processes. SQLite serializes writers itself; `BEGIN IMMEDIATE` plus the busy timeout make
//! concurrent windows of one process wait for each other instead of failing.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Executor, Row, Sqlite};

use super::error::{StoreError, connect_error, connect_options};
use super::fingerprint::{Bound, Stored, bind_scope, scope_params, scope_sql, stored_hashes_sql};
use super::load::{Load, Written};
use super::runs::{Dialect, Runs, WindowDone};
use super::spec::{LOADED_AT_COLUMN, Prepared, ROW_HASH_COLUMN, RUN_ID_COLUMN, quote};
use super::table::{ColumnData, ColumnType, TableChanges, TypeMismatch};
use crate::config::DatabaseConfig;
use uuid::Uuid;

/// SQLite's default bound on `?NNN` (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
const MAX_PARAMS: usize = 32_766;

/// Rows per statement at most, also for narrow tables: beyond this the statement text only grows.
const MAX_CHUNK_ROWS: usize = 5_000;

/// Held job locks of this process: (database file, job).
static LOCKS: LazyLock<Mutex<HashSet<(String, String)>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

#[derive(Clone)]
pub(super) struct SqliteStore {
    pool: SqlitePool,
    /// The database file, canonical where possible: the scope of this process's job locks.
    file: String,
}

/// Creates the database file, empty and readable by its owner only (0600), when it does not exist
/// yet; SQLite then gives its `-wal` and `-shm` files the same mode. An existing file is left as
/// it is; any error is left for the connection to report.
fn create_private(path: &std::path::Path) {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = options.open(path);
}

/// A job lock held inside this process; dropping it releases it.
pub(super) struct SqliteJobLock {
    entry: (String, String),
}

impl Drop for SqliteJobLock {
    fn drop(&mut self) {
        LOCKS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.entry);
    }
}

impl SqliteStore {
    pub async fn connect(db: &DatabaseConfig) -> Result<SqliteStore, StoreError> {
        let options = connect_options::<SqliteConnectOptions>(&db.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        create_private(options.get_filename());
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(connect_error(&db.url))?;
        let path = options.get_filename();
        let file = std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .to_string_lossy()
            .into_owned();
        Ok(SqliteStore { pool, file })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        super::migrations::sqlite().await?.run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool
            .execute("SELECT 1")
            .await
            .map_err(|e| StoreError::query("pinging the database", e))?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn scalar_i64(&self, sql: &str, action: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::query(action, e))
    }

    /// Every table (or view) in the file, by name, SQLite's own left out.
    pub async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::query("listing the tables", e))
    }

    /// The pool, for statements of other files of the store (`checks.rs`).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The run-record and state statements on this store's pool.
    pub fn runs(&self) -> Runs<'_, Sqlite> {
        Runs::new(&self.pool)
    }

    pub async fn ensure_table(&self, p: &Prepared<'_>) -> Result<TableChanges, StoreError> {
        let spec = p.spec;
        let table = quote(&spec.table);
        let err = |e| StoreError::query(format!("creating or altering table {:?}", spec.table), e);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        // (name, declared type, position in the primary key: 0 = not in it)
        let existing: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, type, pk FROM pragma_table_info($1)")
                .bind(&spec.table)
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
        let mut changes = TableChanges::default();
        if existing.is_empty() {
            let sql = create_table_sql(&table, p, &[]);
            tx.execute(sql.as_str()).await.map_err(err)?;
            changes.created = true;
            tx.commit().await.map_err(err)?;
            return Ok(changes);
        }
        for (i, column) in spec.columns.iter().enumerate() {
            match existing
                .iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(&column.name))
            {
                Some((_, ty, _)) => {
                    if !ty.eq_ignore_ascii_case(sqlite_type(column.ty)) {
                        changes.type_mismatches.push(TypeMismatch {
                            column: column.name.clone(),
                            existing: ty.clone(),
                            existing_type: sqlite_column_type(ty),
                            wanted: column.ty,
                        });
                    }
                }
                None => {
                    // SQLite needs a default for a NOT NULL column added to a table with rows;
                    // a new text key column gets '' (how a null key dimension is stored).
                    let constraint = match (p.is_key(i), column.ty) {
                        (true, ColumnType::Text) => " NOT NULL DEFAULT ''",
                        _ => "",
                    };
                    let sql = format!(
                        "ALTER TABLE {table} ADD COLUMN {} {}{constraint}",
                        quote(&column.name),
                        sqlite_type(column.ty)
                    );
                    tx.execute(sql.as_str()).await.map_err(err)?;
                    changes.added.push(column.name.clone());
                }
            }
        }
        if !existing
            .iter()
            .any(|(name, _, _)| name.eq_ignore_ascii_case(ROW_HASH_COLUMN))
        {
            // Tables from before fingerprints: their rows are sent (and fingerprinted) once.
            let sql = format!(
                "ALTER TABLE {table} ADD COLUMN {} BLOB",
                quote(ROW_HASH_COLUMN)
            );
            tx.execute(sql.as_str()).await.map_err(err)?;
            changes.added.push(ROW_HASH_COLUMN.to_owned());
        }
        let existing_key: Vec<&str> = existing
            .iter()
            .filter(|(_, _, pk)| *pk > 0)
            .map(|(n, _, _)| n.as_str())
            .collect();
        let in_spec_key = |k: &&str| spec.key.iter().any(|s| s.eq_ignore_ascii_case(k));
        let in_existing = |k: &String| existing_key.iter().any(|e| e.eq_ignore_ascii_case(k));
        let same = existing_key.len() == spec.key.len() && existing_key.iter().all(in_spec_key);
        let widening = existing_key.iter().all(in_spec_key);
        // Narrowed only by columns that describe the key (names): dropping any other would merge
        // rows that are different things.
        let narrowing = spec.key.iter().all(in_existing)
            && existing_key
                .iter()
                .filter(|k| !in_spec_key(k))
                .all(|k| spec.descriptive.iter().any(|d| d.eq_ignore_ascii_case(k)));
        if !same && !widening && !narrowing {
            return Err(StoreError::KeyMismatch {
                table: spec.table.clone(),
                existing: existing_key.join(", "),
                wanted: spec.key.join(", "),
            });
        }
        if !same {
            // SQLite cannot alter a primary key: rebuild the table under the new key, inside
            // this transaction, keeping every column, and every row (widening) or the most
            // recently loaded row of each new key (narrowing: rows unique on the old key may
            // share the new one, a campaign loaded under two names).
            let extra: Vec<&(String, String, i64)> = existing
                .iter()
                .filter(|(n, _, _)| {
                    !spec.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n))
                        && ![RUN_ID_COLUMN, LOADED_AT_COLUMN, ROW_HASH_COLUMN]
                            .iter()
                            .any(|m| n.eq_ignore_ascii_case(m))
                })
                .collect();
            let extra_defs: Vec<String> = extra
                .iter()
                .map(|(n, ty, _)| format!("{} {ty}", quote(n)))
                .collect();
            let new_table = quote(&format!("_rokt_export_rebuild_{}", spec.table));
            let create = create_table_sql(&new_table, p, &extra_defs);
            let mut names: Vec<String> = spec.columns.iter().map(|c| quote(&c.name)).collect();
            names.extend(extra.iter().map(|(n, _, _)| quote(n)));
            names.push(quote(RUN_ID_COLUMN));
            names.push(quote(LOADED_AT_COLUMN));
            names.push(quote(ROW_HASH_COLUMN));
            let names = names.join(", ");
            let newest = if widening {
                String::new()
            } else {
                let same_key: Vec<String> = spec
                    .key
                    .iter()
                    .map(|k| format!("n.{k} = o.{k}", k = quote(k)))
                    .collect();
                format!(
                    " AS o WHERE NOT EXISTS (SELECT 1 FROM {table} AS n WHERE {} AND \
                     (n.{l} > o.{l} OR (n.{l} = o.{l} AND (n.{r} > o.{r} OR \
                     (n.{r} = o.{r} AND n.rowid > o.rowid)))))",
                    same_key.join(" AND "),
                    l = quote(LOADED_AT_COLUMN),
                    r = quote(RUN_ID_COLUMN),
                )
            };
            let before: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            for sql in [
                create,
                format!("INSERT INTO {new_table} ({names}) SELECT {names} FROM {table}{newest}"),
            ] {
                tx.execute(sql.as_str()).await.map_err(err)?;
            }
            let after: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {new_table}"))
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            for sql in [
                format!("DROP TABLE {table}"),
                format!("ALTER TABLE {new_table} RENAME TO {table}"),
            ] {
                tx.execute(sql.as_str()).await.map_err(err)?;
            }
            changes.key_widened = widening;
            changes.key_narrowed = !widening;
            changes.collapsed = u64::try_from(before - after).unwrap_or(0);
        }
        tx.commit().await.map_err(err)?;
        Ok(changes)
    }

    pub async fn commit_window(&self, load: &Load<'_>) -> Result<Written, StoreError> {
        let p = load.prepared;
        let table = &p.spec.table;
        let upsert_err = |e| StoreError::query(format!("loading rows into {table:?}"), e);
        let run_err = |e| StoreError::query(format!("recording run {}", load.run_id), e);
        let columns = p.spec.columns.len();
        let chunk_rows = (MAX_PARAMS / (columns + 3)).clamp(1, MAX_CHUNK_ROWS);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(run_err)?;
        let mut deleted = match &load.reset {
            Some(reset) => Runs::<Sqlite>::reset_account(&mut tx, reset).await?,
            None => 0,
        };
        let mut written = 0u64;
        let mut full_sql: Option<String> = None;
        for chunk in load.selection.chunks(chunk_rows) {
            // Full chunks share one statement text, so SQLite prepares it once per connection.
            let partial;
            let sql = if chunk.len() == chunk_rows {
                full_sql.get_or_insert_with(|| upsert_sql(p, chunk_rows))
            } else {
                partial = upsert_sql(p, chunk.len());
                &partial
            };
            let mut query = sqlx::query(sql);
            for row in chunk.rows() {
                for (i, column) in load.batch.columns.iter().enumerate() {
                    query = bind_value(query, column, row, p.is_key(i));
                }
                query = query
                    .bind(load.run_id)
                    .bind(load.now)
                    .bind(load.hashes[row]);
            }
            // Each row the statement inserted or updated, by the run id it has now: ours when its
            // values are new or changed, the old one when only its fingerprint was filled in.
            let run_ids: Vec<i64> = query
                .fetch_all(&mut *tx)
                .await
                .map_err(upsert_err)?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()
                .map_err(upsert_err)?;
            written += run_ids.iter().filter(|&&id| id == load.run_id).count() as u64;
        }
        if let Some(vanished) = &load.vanished {
            // Only when a stored row's key is not in the answer (or a row has no fingerprint):
            // after the upsert, rows of the answer carry fingerprints with their keys, none of
            // which is a candidate. The candidates go in lists under the bind limit: one
            // statement unless there are more than about 32,000.
            let scope = &vanished.scope;
            let room = MAX_PARAMS.saturating_sub(scope_params(scope)).max(1);
            let delete_err =
                |e| StoreError::query(format!("deleting vanished rows of {table:?}"), e);
            let hash = quote(ROW_HASH_COLUMN);
            let head = format!(
                "DELETE FROM {} WHERE {} AND ",
                quote(table),
                scope_sql(scope, |_| "?".to_owned())
            );
            let mut lists: Vec<&[u128]> = vanished.candidates.chunks(room).collect();
            if lists.is_empty() {
                lists.push(&[]); // only rows without a fingerprint
            }
            for (i, list) in lists.into_iter().enumerate() {
                let mut conditions = Vec::with_capacity(2);
                if i == 0 && vanished.unhashed {
                    conditions.push(format!("{hash} IS NULL"));
                }
                if !list.is_empty() {
                    conditions.push(format!("{hash} IN ({})", vec!["?"; list.len()].join(", ")));
                }
                if conditions.is_empty() {
                    continue;
                }
                let sql = format!("{head}({})", conditions.join(" OR "));
                let mut query = bind_scope!(sqlx::query(&sql), scope);
                for h in list {
                    query = query.bind(Uuid::from_u128(*h));
                }
                deleted += query
                    .execute(&mut *tx)
                    .await
                    .map_err(delete_err)?
                    .rows_affected();
            }
        }
        // On an error, dropping `tx` rolls the whole window back.
        let done = WindowDone {
            rows_written: written,
            rows_deleted: deleted,
            api_requests: load.api_requests,
            warnings: load.warnings,
            state: load.state,
        };
        Runs::<Sqlite>::finish_window(&mut tx, load.run_id, load.now, &done).await?;
        tx.commit().await.map_err(run_err)?;
        Ok(Written { written, deleted })
    }

    /// Whether `table` exists with every one of `columns`.
    pub async fn has_columns(&self, table: &str, columns: &[&str]) -> Result<bool, sqlx::Error> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(table)
            .fetch_all(&self.pool)
            .await?;
        Ok(columns
            .iter()
            .all(|c| names.iter().any(|n| n.eq_ignore_ascii_case(c))))
    }

    /// The fingerprints of the stored rows within `scope` (see [`super::fingerprint::scope`]).
    pub async fn stored_hashes(
        &self,
        p: &Prepared<'_>,
        scope: &[Bound<'_>],
    ) -> Result<Stored, StoreError> {
        let sql = stored_hashes_sql(&p.spec.table, scope, |_| "?".to_owned());
        let query = bind_scope!(sqlx::query_scalar::<_, Option<Uuid>>(&sql), scope);
        let table = &p.spec.table;
        let hashes = query
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::query(format!("reading row fingerprints of {table:?}"), e))?;
        let mut stored = Stored::default();
        for hash in hashes {
            match hash {
                Some(h) => {
                    stored.hashes.insert(h.as_u128());
                }
                None => stored.unhashed += 1,
            }
        }
        Ok(stored)
    }

    pub fn try_lock_job(&self, job: &str) -> Option<SqliteJobLock> {
        let entry = (self.file.clone(), job.to_owned());
        let inserted = LOCKS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(entry.clone());
        // Build the guard only when the entry is ours (and after the mutex is released): dropping
        // a guard removes its entry, which must never remove another holder's lock.
        inserted.then(|| SqliteJobLock { entry })
    }
}

impl Dialect for Sqlite {
    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

fn sqlite_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text | ColumnType::Date | ColumnType::Json => "TEXT",
        ColumnType::Numeric => "NUMERIC",
        ColumnType::Boolean => "INTEGER",
    }
}

/// Our column type for a declared SQLite type (TEXT could be text, a date or JSON: say text).
fn sqlite_column_type(declared: &str) -> Option<ColumnType> {
    match declared.to_ascii_uppercase().as_str() {
        "TEXT" => Some(ColumnType::Text),
        "NUMERIC" => Some(ColumnType::Numeric),
        "INTEGER" => Some(ColumnType::Boolean),
        _ => None,
    }
}

/// `CREATE TABLE` for the spec (plus `extra` column definitions kept from an older table).
fn create_table_sql(table: &str, p: &Prepared<'_>, extra: &[String]) -> String {
    let mut columns: Vec<String> = p
        .spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let not_null = if p.is_key(i) { " NOT NULL" } else { "" };
            format!("{} {}{not_null}", quote(&c.name), sqlite_type(c.ty))
        })
        .collect();
    columns.extend(extra.iter().cloned());
    columns.push(format!("{} INTEGER NOT NULL", quote(RUN_ID_COLUMN)));
    columns.push(format!("{} TEXT NOT NULL", quote(LOADED_AT_COLUMN)));
    columns.push(format!("{} BLOB", quote(ROW_HASH_COLUMN)));
    let key: Vec<String> = p
        .key_idx
        .iter()
        .map(|&i| quote(&p.spec.columns[i].name))
        .collect();
    format!(
        "CREATE TABLE {table} ({}, PRIMARY KEY ({}))",
        columns.join(", "),
        key.join(", ")
    )
}

/// Multi-row upsert of `rows` rows, each row's values then its run id, load time and fingerprint.
/// Returns the `_run_id` of every row it inserted or updated (see the Postgres `upsert_sql` for
/// why a row whose values did not change keeps its `_run_id` and `_loaded_at`).
///
/// Anonymous `?` placeholders on purpose: SQLite looks numbered ones (`?NNN`) up by a linear scan
/// when a parameter is bound, which made a 30,000-parameter statement take seconds (measured).
/// JSON goes through `json()`, which rejects invalid JSON (as Postgres' jsonb cast does).
fn upsert_sql(p: &Prepared<'_>, rows: usize) -> String {
    let spec = p.spec;
    let mut targets: Vec<String> = spec.columns.iter().map(|c| quote(&c.name)).collect();
    targets.extend([RUN_ID_COLUMN, LOADED_AT_COLUMN, ROW_HASH_COLUMN].map(quote));
    let row: Vec<&str> = spec
        .columns
        .iter()
        .map(|c| match c.ty {
            ColumnType::Json => "json(?)",
            _ => "?",
        })
        .chain(["?", "?", "?"])
        .collect();
    let row = format!("({})", row.join(","));
    let mut sql = format!(
        "INSERT INTO {} AS tgt ({}) VALUES ",
        quote(&spec.table),
        targets.join(", ")
    );
    sql.reserve(rows * (row.len() + 1));
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&row);
    }
    let key: Vec<String> = p
        .key_idx
        .iter()
        .map(|&i| quote(&spec.columns[i].name))
        .collect();
    let values: Vec<String> = p
        .value_idx
        .iter()
        .map(|&i| quote(&spec.columns[i].name))
        .collect();
    let changed = if values.is_empty() {
        "0".to_owned()
    } else {
        let each: Vec<String> = values
            .iter()
            .map(|c| format!("tgt.{c} IS NOT excluded.{c}"))
            .collect();
        format!("({})", each.join(" OR "))
    };
    let mut set: Vec<String> = values
        .iter()
        .chain([&quote(ROW_HASH_COLUMN)])
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    for meta in [RUN_ID_COLUMN, LOADED_AT_COLUMN].map(quote) {
        set.push(format!(
            "{meta} = CASE WHEN {changed} THEN excluded.{meta} ELSE tgt.{meta} END"
        ));
    }
    let hash = quote(ROW_HASH_COLUMN);
    sql.push_str(&format!(
        " ON CONFLICT ({}) DO UPDATE SET {} WHERE {changed} OR tgt.{hash} IS NOT excluded.{hash} \
         RETURNING {}",
        key.join(", "),
        set.join(", "),
        quote(RUN_ID_COLUMN)
    ));
    sql
}

type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

/// Binds one value; a null text key value is bound as '' (see `ColumnData::Text`).
fn bind_value<'q>(
    query: SqliteQuery<'q>,
    column: &'q ColumnData,
    row: usize,
    is_key: bool,
) -> SqliteQuery<'q> {
    match column {
        ColumnData::Text(v) if is_key => query.bind(v.get(row).unwrap_or("")),
        ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v) => {
            query.bind(v.get(row))
        }
        ColumnData::Date(v) => query.bind(v[row]),
        ColumnData::Boolean(v) => query.bind(v[row]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{ColumnSpec, TableSpec, spec::prepare};

    #[test]
    fn upsert_statement_shape() {
        let spec = TableSpec {
            table: "t".into(),
            columns: vec![
                ColumnSpec::new("k", ColumnType::Text),
                ColumnSpec::new("j", ColumnType::Json),
            ],
            key: vec!["k".into()],
            descriptive: Vec::new(),
        };
        let p = prepare(&spec).unwrap();
        let sql = upsert_sql(&p, 2);
        assert!(
            sql.contains("VALUES (?,json(?),?,?,?),(?,json(?),?,?,?) ON"),
            "{sql}"
        );
        assert!(
            sql.ends_with(
                "WHERE (tgt.\"j\" IS NOT excluded.\"j\") \
                 OR tgt.\"_row_hash\" IS NOT excluded.\"_row_hash\" RETURNING \"_run_id\""
            ),
            "{sql}"
        );
    }
}

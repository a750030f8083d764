//! The Postgres backend: a pool whose connections all use the configured schema, UNNEST-array
//! upserts, session advisory locks on dedicated connections. Run records and job state are
//! `runs.rs`'s, on this pool; this file gives them their [`Dialect`].

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::query::QueryScalar;
use sqlx::{Connection, Executor, PgConnection, Postgres};

use super::error::{StoreError, connect_error, connect_options};
use super::fingerprint::{Bound, Stored, bind_scope, scope_params, scope_sql, stored_hashes_sql};
use super::load::{Load, Written};
use super::runs::{Dialect, Runs, WindowDone};
use super::spec::{
    Chunk, LOADED_AT_COLUMN, Prepared, ROW_HASH_COLUMN, RUN_ID_COLUMN, quote, validate_identifier,
};
use super::table::{ColumnData, ColumnType, TableChanges, TypeMismatch};
use crate::config::DatabaseConfig;
use uuid::Uuid;

/// Rows per UNNEST statement: large enough that per-statement overhead vanishes, small enough that a
/// statement's encoding, built twice over by sqlx (its arguments, then the message), stays under
/// 1 MB each (see docs/performance.md).
const CHUNK_ROWS: usize = 2_000;

/// Quotes a name read from the catalogue, which was never validated: any character may be in it,
/// so a `"` is doubled (the names this tool makes never hold one; see `validate_identifier`).
fn quote_any(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Pool size: loads are bound by the server (one backend per core), so a few connections suffice;
/// locks do not count against it (they use their own connections).
const MAX_CONNECTIONS: u32 = 8;

#[derive(Clone)]
pub(super) struct PgStore {
    pool: PgPool,
    /// For the dedicated lock connections (behind an `Arc`: it is large and the store is cloned
    /// often).
    options: Arc<PgConnectOptions>,
    schema: String,
}

/// A job lock: the connection that holds the session advisory lock.
pub(super) struct PgJobLock {
    conn: PgConnection,
    key: i64,
}

impl PgJobLock {
    pub async fn release(mut self) {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut self.conn)
            .await;
        if let Err(e) = unlocked {
            tracing::debug!(error = %e, "unlocking failed; closing the connection releases the lock");
        }
        // Closing ends the session, which releases the lock even if unlocking failed.
        let _ = self.conn.close().await;
    }
}

impl PgStore {
    pub async fn connect(db: &DatabaseConfig) -> Result<PgStore, StoreError> {
        validate_identifier("schema", &db.schema)?;
        crate::tls::install_crypto_provider();
        let failed = connect_error(&db.url);
        let options = connect_options::<PgConnectOptions>(&db.url)?
            .application_name("rokt-export")
            // No statement may hang a window (or a job) forever: past it, the statement is
            // cancelled and its window's transaction rolled back.
            .options([(
                "statement_timeout",
                format!("{}s", db.statement_timeout.as_secs().max(1)),
            )]);
        warn_unless_verified(&options);

        // The schema first, on a connection of its own, so every pooled connection finds it.
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(&failed)?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&db.schema)
                .fetch_one(&mut conn)
                .await
                .map_err(&failed)?;
        if !exists {
            // IF NOT EXISTS: another replica may create it at the same moment.
            conn.execute(format!("CREATE SCHEMA IF NOT EXISTS {}", quote(&db.schema)).as_str())
                .await
                .map_err(|e| StoreError::query(format!("creating schema {:?}", db.schema), e))?;
        }
        let _ = conn.close().await;

        let set_search_path = format!("SET search_path TO {}", quote(&db.schema));
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                let sql = set_search_path.clone();
                Box::pin(async move {
                    conn.execute(sql.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(&failed)?;
        Ok(PgStore {
            pool,
            options: Arc::new(options),
            schema: db.schema.clone(),
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        super::migrations::postgres().await?.run(&self.pool).await?;
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

    /// Every table (or view) in the configured schema, by name.
    pub async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1",
        )
        .bind(&self.schema)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::query("listing the tables", e))
    }

    /// The pool, for statements of other files of the store (`checks.rs`).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The run-record and state statements on this store's pool.
    pub fn runs(&self) -> Runs<'_, Postgres> {
        Runs::new(&self.pool)
    }

    /// Creates or widens the table (see [`super::Store::ensure_table`]). When another session's
    /// lock on the table outlasts the DDL's `lock_timeout`, the error names that session.
    pub async fn ensure_table(&self, p: &Prepared<'_>) -> Result<TableChanges, StoreError> {
        match self.ensure_table_once(p).await {
            Err(e) if e.is_lock_not_available() => Err(StoreError::LockTimeout {
                table: p.spec.table.clone(),
                holders: self.lock_holders(&p.spec.table).await,
            }),
            other => other,
        }
    }

    /// Who holds a lock on `table` (besides us), for the message of a DDL that timed out.
    async fn lock_holders(&self, table: &str) -> String {
        let qualified = format!("{}.{}", quote(&self.schema), quote(table));
        let found: Result<Vec<LockHolder>, _> = sqlx::query_as(
            "SELECT DISTINCT a.pid, coalesce(a.application_name, ''), \
                        coalesce(a.usename::text, ''), coalesce(a.state, ''), a.xact_start \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.relation = to_regclass($1) AND l.granted AND a.pid <> pg_backend_pid() \
                 ORDER BY a.pid LIMIT 5",
        )
        .bind(&qualified)
        .fetch_all(&self.pool)
        .await;
        match found {
            Ok(rows) if !rows.is_empty() => rows
                .iter()
                .map(|(pid, app, user, state, since)| {
                    let since = since
                        .map(|t| {
                            format!(
                                ", its transaction open since {}",
                                t.format("%Y-%m-%d %H:%M:%S UTC")
                            )
                        })
                        .unwrap_or_default();
                    format!(
                        "pid {pid}, application \"{}\", user \"{}\", {}{since}",
                        crate::telemetry::sanitize(app, 64),
                        crate::telemetry::sanitize(user, 64),
                        if state.is_empty() {
                            "state unknown"
                        } else {
                            state.as_str()
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Ok(_) => "a session that has let go of it since".to_owned(),
            Err(e) => format!("the holders could not be read: {e}"),
        }
    }

    async fn ensure_table_once(&self, p: &Prepared<'_>) -> Result<TableChanges, StoreError> {
        let spec = p.spec;
        let table = quote(&spec.table);
        let err = |e| StoreError::query(format!("creating or altering table {:?}", spec.table), e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        // DDL waits for every reader of the table; never queue forever behind one (a SQL client
        // holding a transaction open), which would also queue every dashboard query behind us.
        tx.execute("SET LOCAL lock_timeout = '5s'")
            .await
            .map_err(err)?;
        // Serialize DDL on this table across processes: two replicas starting together must not
        // both try to create it or add the same column.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key(&self.schema, &format!("table:{}", spec.table)))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let qualified = format!("{}.{}", quote(&self.schema), table);
        let existing: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    coalesce(a.attnum = ANY (c.conkey), false) \
             FROM pg_attribute a \
             LEFT JOIN pg_constraint c ON c.conrelid = a.attrelid AND c.contype = 'p' \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
        )
        .bind(&qualified)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;

        let mut changes = TableChanges::default();
        if existing.is_empty() {
            let mut columns: Vec<String> = spec
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let not_null = if p.is_key(i) { " NOT NULL" } else { "" };
                    format!("{} {}{not_null}", quote(&c.name), pg_type(c.ty))
                })
                .collect();
            columns.push(format!("{} bigint NOT NULL", quote(RUN_ID_COLUMN)));
            columns.push(format!("{} timestamptz NOT NULL", quote(LOADED_AT_COLUMN)));
            columns.push(format!("{} uuid", quote(ROW_HASH_COLUMN)));
            let sql = format!(
                "CREATE TABLE {table} ({}, PRIMARY KEY ({}))",
                columns.join(", "),
                key_list(p)
            );
            tx.execute(sql.as_str()).await.map_err(err)?;
            changes.created = true;
        } else {
            for (i, column) in spec.columns.iter().enumerate() {
                match existing.iter().find(|(name, _, _)| *name == column.name) {
                    Some((_, ty, _)) => {
                        let existing_type = pg_column_type(ty);
                        if existing_type != Some(column.ty) {
                            changes.type_mismatches.push(TypeMismatch {
                                column: column.name.clone(),
                                existing: ty.clone(),
                                existing_type,
                                wanted: column.ty,
                            });
                        }
                    }
                    None => {
                        // A new text key column gets '' in existing rows, the value a null key
                        // dimension is stored as; other new key columns need an empty table.
                        let constraint = match (p.is_key(i), column.ty) {
                            (true, ColumnType::Text) => " NOT NULL DEFAULT ''",
                            (true, _) => " NOT NULL",
                            (false, _) => "",
                        };
                        let sql = format!(
                            "ALTER TABLE {table} ADD COLUMN {} {}{constraint}",
                            quote(&column.name),
                            pg_type(column.ty)
                        );
                        tx.execute(sql.as_str()).await.map_err(err)?;
                        changes.added.push(column.name.clone());
                    }
                }
            }
            if !existing.iter().any(|(name, _, _)| name == ROW_HASH_COLUMN) {
                // Tables from before fingerprints: their rows are sent (and fingerprinted) once.
                let sql = format!(
                    "ALTER TABLE {table} ADD COLUMN {} uuid",
                    quote(ROW_HASH_COLUMN)
                );
                tx.execute(sql.as_str()).await.map_err(err)?;
                changes.added.push(ROW_HASH_COLUMN.to_owned());
            }
            let existing_key: Vec<&str> = existing
                .iter()
                .filter(|(_, _, pk)| *pk)
                .map(|(n, _, _)| n.as_str())
                .collect();
            let same = existing_key.len() == spec.key.len()
                && existing_key.iter().all(|k| spec.key.iter().any(|s| s == k));
            let in_existing = |k: &String| existing_key.iter().any(|e| e == k);
            let widening = existing_key.iter().all(|k| spec.key.iter().any(|s| s == k));
            // Narrowed only by columns that describe the key (names): dropping any other would
            // merge rows that are different things.
            let narrowing = spec.key.iter().all(in_existing)
                && existing_key
                    .iter()
                    .filter(|k| !spec.key.iter().any(|s| s == *k))
                    .all(|k| spec.descriptive.iter().any(|d| d == k));
            if !same && !widening && !narrowing {
                return Err(StoreError::KeyMismatch {
                    table: spec.table.clone(),
                    existing: existing_key.join(", "),
                    wanted: spec.key.join(", "),
                });
            }
            if !same {
                let constraint: Option<String> = sqlx::query_scalar(
                    "SELECT conname::text FROM pg_constraint \
                     WHERE conrelid = to_regclass($1) AND contype = 'p'",
                )
                .bind(&qualified)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
                let mut alter: Vec<String> = Vec::new();
                if let Some(c) = constraint {
                    alter.push(format!("DROP CONSTRAINT {}", quote_any(&c)));
                }
                if !widening {
                    // Rows unique on the old key may share the new one (a campaign loaded
                    // under two names): keep the most recently loaded row of each, then the
                    // columns that leave the key may hold NULL like any other column.
                    changes.collapsed = collapse_to_key(&mut tx, &table, p).await.map_err(err)?;
                    for gone in existing_key
                        .iter()
                        .filter(|k| !spec.key.iter().any(|s| s == *k))
                    {
                        alter.push(format!("ALTER COLUMN {} DROP NOT NULL", quote_any(gone)));
                    }
                }
                // Rows unique on the old key are unique on any superset of it.
                alter.push(format!("ADD PRIMARY KEY ({})", key_list(p)));
                let sql = format!("ALTER TABLE {table} {}", alter.join(", "));
                tx.execute(sql.as_str()).await.map_err(err)?;
                changes.key_widened = widening;
                changes.key_narrowed = !widening;
            }
        }
        tx.commit().await.map_err(err)?;
        Ok(changes)
    }

    pub async fn commit_window(&self, load: &Load<'_>) -> Result<Written, StoreError> {
        let p = load.prepared;
        let table = &p.spec.table;
        let upsert_err = |e| StoreError::query(format!("loading rows into {table:?}"), e);
        let run_err = |e| StoreError::query(format!("recording run {}", load.run_id), e);
        let sql = upsert_sql(p);
        let mut conn = self.pool.acquire().await.map_err(run_err)?;
        let mut tx = conn.begin().await.map_err(run_err)?;
        let mut deleted = match &load.reset {
            Some(reset) => Runs::<Postgres>::reset_account(&mut tx, reset).await?,
            None => 0,
        };
        let mut written = 0u64;
        for chunk in load.selection.chunks(CHUNK_ROWS) {
            let mut query = sqlx::query_scalar(&sql).bind(load.run_id).bind(load.now);
            for column in &load.batch.columns {
                query = bind_column(query, column, &chunk);
            }
            query = match chunk {
                Chunk::Range(ref r) => query.bind(&load.hashes[r.clone()]),
                Chunk::Rows(_) => {
                    query.bind(chunk.rows().map(|i| load.hashes[i]).collect::<Vec<_>>())
                }
            };
            let changed: i64 = query.fetch_one(&mut *tx).await.map_err(upsert_err)?;
            written += u64::try_from(changed).unwrap_or(0);
        }
        if let Some(vanished) = &load.vanished {
            // One statement, and only when a stored row's key is not in the answer (or a row has
            // no fingerprint): after the upsert, rows of the answer carry fingerprints with their
            // keys, none of which is a candidate.
            let scope = &vanished.scope;
            let n = scope_params(scope);
            let hash = quote(ROW_HASH_COLUMN);
            let unhashed = if vanished.unhashed {
                format!("{hash} IS NULL OR ")
            } else {
                String::new()
            };
            let sql = format!(
                "DELETE FROM {} WHERE {} AND ({unhashed}{hash} = ANY(${}::uuid[]))",
                quote(table),
                scope_sql(scope, |i| format!("${i}")),
                n + 1,
            );
            let query = bind_scope!(sqlx::query(&sql), scope);
            let candidates: Vec<Uuid> = vanished
                .candidates
                .iter()
                .map(|h| Uuid::from_u128(*h))
                .collect();
            let result = query
                .bind(candidates)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    StoreError::query(format!("deleting vanished rows of {table:?}"), e)
                })?;
            deleted += result.rows_affected();
        }
        // On an error, dropping `tx` rolls the whole window back.
        let done = WindowDone {
            rows_written: written,
            rows_deleted: deleted,
            api_requests: load.api_requests,
            warnings: load.warnings,
            state: load.state,
        };
        Runs::<Postgres>::finish_window(&mut tx, load.run_id, load.now, &done).await?;
        tx.commit().await.map_err(run_err)?;
        // The connection's write buffer grew to the largest statement (several MB of arrays);
        // every pooled connection would keep one.
        conn.shrink_buffers();
        Ok(Written { written, deleted })
    }

    /// Whether `table` exists in the store's schema with every one of `columns`.
    pub async fn has_columns(&self, table: &str, columns: &[&str]) -> Result<bool, sqlx::Error> {
        let found: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped \
               AND attname::text = ANY($2)",
        )
        .bind(format!("{}.{}", quote(&self.schema), quote(table)))
        .bind(columns)
        .fetch_one(&self.pool)
        .await?;
        Ok(usize::try_from(found).unwrap_or(0) == columns.len())
    }

    /// The fingerprints of the stored rows within `scope` (see [`super::fingerprint::scope`]).
    pub async fn stored_hashes(
        &self,
        p: &Prepared<'_>,
        scope: &[Bound<'_>],
    ) -> Result<Stored, StoreError> {
        let sql = stored_hashes_sql(&p.spec.table, scope, |n| format!("${n}"));
        // As one array: tens of thousands of one-column rows cost the client more to receive
        // than the server to find (a message, a row and a decode each).
        let sql = format!(
            "SELECT array_agg(h) FILTER (WHERE h IS NOT NULL), count(*) FILTER (WHERE h IS NULL) \
             FROM ({sql}) AS stored(h)"
        );
        let query = bind_scope!(sqlx::query_as::<_, (Option<Vec<Uuid>>, i64)>(&sql), scope);
        let table = &p.spec.table;
        let (hashes, unhashed) = query
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::query(format!("reading row fingerprints of {table:?}"), e))?;
        Ok(Stored {
            hashes: hashes
                .unwrap_or_default()
                .iter()
                .map(Uuid::as_u128)
                .collect(),
            unhashed: u64::try_from(unhashed).unwrap_or(0),
        })
    }

    pub async fn try_lock_job(&self, job: &str) -> Result<Option<PgJobLock>, StoreError> {
        let err = |e| StoreError::query(format!("taking the lock of job {job:?}"), e);
        let mut conn = PgConnection::connect_with(&self.options)
            .await
            .map_err(err)?;
        let key = lock_key(&self.schema, job);
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(err)?;
        if locked {
            Ok(Some(PgJobLock { conn, key }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }
}

impl Dialect for Postgres {
    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// A session holding a lock: pid, application, user, state, since when its transaction is open.
type LockHolder = (
    i32,
    String,
    String,
    String,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// Warns when the connection to a server that is not on this machine does not check the server's
/// certificate (`sslmode` below `verify-full`): `prefer` and `require` encrypt, but a machine in
/// the middle could pose as the database.
fn warn_unless_verified(options: &PgConnectOptions) {
    if !checks_the_server(options) {
        tracing::warn!(
            host = options.get_host(),
            sslmode = ?options.get_ssl_mode(),
            "the connection to the database does not verify the server's certificate; set \
             sslmode=verify-full (and sslrootcert for a private CA) in DATABASE_URL (see \
             docs/operations.md, Security)"
        );
    }
}

/// Whether a connection with `options` either stays on this machine (a Unix socket, a loopback
/// address) or verifies the server's certificate and name (`verify-full`).
fn checks_the_server(options: &PgConnectOptions) -> bool {
    use sqlx::postgres::PgSslMode;
    let host = options.get_host();
    let local = host.starts_with('/')
        || host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    local || matches!(options.get_ssl_mode(), PgSslMode::VerifyFull)
}

/// Deletes every row that shares the spec's key with a more recently loaded one (by `_loaded_at`,
/// then `_run_id`, then physical position), so the key can become the primary key. Returns the
/// rows deleted.
async fn collapse_to_key(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    table: &str,
    p: &Prepared<'_>,
) -> Result<u64, sqlx::Error> {
    let same_key: Vec<String> = p
        .spec
        .key
        .iter()
        .map(|k| format!("n.{k} = o.{k}", k = quote(k)))
        .collect();
    let newer = format!(
        "(n.{l}, n.{r}, n.ctid) > (o.{l}, o.{r}, o.ctid)",
        l = quote(LOADED_AT_COLUMN),
        r = quote(RUN_ID_COLUMN)
    );
    let sql = format!(
        "DELETE FROM {table} AS o USING {table} AS n WHERE {} AND {newer}",
        same_key.join(" AND ")
    );
    Ok(tx.execute(sql.as_str()).await?.rows_affected())
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

fn pg_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "text",
        ColumnType::Numeric => "numeric",
        ColumnType::Date => "date",
        ColumnType::Boolean => "boolean",
        ColumnType::Json => "jsonb",
    }
}

/// Our column type for a `format_type` name, if it is one of ours.
fn pg_column_type(name: &str) -> Option<ColumnType> {
    match name {
        "text" => Some(ColumnType::Text),
        "date" => Some(ColumnType::Date),
        "boolean" => Some(ColumnType::Boolean),
        "jsonb" => Some(ColumnType::Json),
        n if n == "numeric" || n.starts_with("numeric(") => Some(ColumnType::Numeric),
        _ => None,
    }
}

fn key_list(p: &Prepared<'_>) -> String {
    p.key_idx
        .iter()
        .map(|&i| quote(&p.spec.columns[i].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The upsert for one chunk: `$1` run id, `$2` load time, `$3..` one array per column, then the
/// fingerprints. Returns one number: the rows inserted or changed.
///
/// Arrays of numeric and JSON values travel as `text[]` and are cast in the SELECT, so Postgres
/// parses the exact decimal text itself. A null text key becomes '' (`COALESCE`). The `WHERE ...
/// IS DISTINCT FROM` leaves rows whose values did not change untouched (no new tuple, no WAL);
/// a row whose values are the same but whose fingerprint was missing (written before fingerprints
/// existed) gets its fingerprint and keeps its `_run_id` and `_loaded_at`, so those still say when
/// the values last changed, and it is not counted.
fn upsert_sql(p: &Prepared<'_>) -> String {
    let spec = p.spec;
    let columns = spec.columns.len();
    let mut targets: Vec<String> = spec.columns.iter().map(|c| quote(&c.name)).collect();
    targets.extend([RUN_ID_COLUMN, LOADED_AT_COLUMN, ROW_HASH_COLUMN].map(quote));
    let mut select: Vec<String> = spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| match c.ty {
            ColumnType::Text if p.is_key(i) => format!("COALESCE(u.c{i}, '')"),
            ColumnType::Numeric => format!("u.c{i}::numeric"),
            ColumnType::Json => format!("u.c{i}::jsonb"),
            _ => format!("u.c{i}"),
        })
        .collect();
    select.extend(["$1".into(), "$2".into(), "u.h".into()]);
    let mut arrays: Vec<String> = spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let elem = match c.ty {
                ColumnType::Text | ColumnType::Numeric | ColumnType::Json => "text",
                ColumnType::Date => "date",
                ColumnType::Boolean => "boolean",
            };
            format!("${}::{elem}[]", i + 3)
        })
        .collect();
    arrays.push(format!("${}::uuid[]", columns + 3));
    let mut aliases: Vec<String> = (0..columns).map(|i| format!("c{i}")).collect();
    aliases.push("h".into());
    let values: Vec<String> = p
        .value_idx
        .iter()
        .map(|&i| quote(&spec.columns[i].name))
        .collect();
    let changed = if values.is_empty() {
        "false".to_owned()
    } else {
        let old: Vec<String> = values.iter().map(|c| format!("tgt.{c}")).collect();
        let new: Vec<String> = values.iter().map(|c| format!("excluded.{c}")).collect();
        format!("({}) IS DISTINCT FROM ({})", old.join(", "), new.join(", "))
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
    format!(
        "WITH w AS (INSERT INTO {} AS tgt ({}) SELECT {} FROM UNNEST({}) AS u({}) \
         ON CONFLICT ({}) DO UPDATE SET {} WHERE {changed} OR tgt.{hash} IS DISTINCT FROM \
         excluded.{hash} RETURNING {}) SELECT count(*) FROM w WHERE {} = $1",
        quote(&spec.table),
        targets.join(", "),
        select.join(", "),
        arrays.join(", "),
        aliases.join(", "),
        key_list(p),
        set.join(", "),
        quote(RUN_ID_COLUMN),
        quote(RUN_ID_COLUMN),
    )
}

type PgQuery<'q> = QueryScalar<'q, Postgres, i64, PgArguments>;

/// Binds one column's values for `chunk` as an array: a borrowed slice when the chunk is a
/// contiguous range of a date or boolean column (no copy), else the values gathered by reference.
fn bind_column<'q>(query: PgQuery<'q>, column: &'q ColumnData, chunk: &Chunk<'_>) -> PgQuery<'q> {
    match (column, chunk) {
        (ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v), _) => {
            query.bind(chunk.rows().map(|i| v.get(i)).collect::<Vec<_>>())
        }
        (ColumnData::Date(v), Chunk::Range(r)) => query.bind(&v[r.clone()]),
        (ColumnData::Date(v), Chunk::Rows(_)) => {
            query.bind(chunk.rows().map(|i| v[i]).collect::<Vec<_>>())
        }
        (ColumnData::Boolean(v), Chunk::Range(r)) => query.bind(&v[r.clone()]),
        (ColumnData::Boolean(v), Chunk::Rows(_)) => {
            query.bind(chunk.rows().map(|i| v[i]).collect::<Vec<_>>())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_remote_server_without_verify_full_is_warned_about() {
        let checked = |url: &str| super::checks_the_server(&url.parse().unwrap());
        assert!(checked("postgres://u@127.0.0.1/db"));
        assert!(checked("postgres://u@localhost/db?sslmode=disable"));
        assert!(checked("postgres://u@[::1]:5432/db"));
        assert!(checked("postgres://u@db.internal/db?sslmode=verify-full"));
        assert!(!checked("postgres://u@db.internal/db"));
        assert!(!checked("postgres://u@db.internal/db?sslmode=require"));
        assert!(!checked("postgres://u@10.0.0.5/db?sslmode=verify-ca"));
    }

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
}

//! `validate --online`'s look at the database: does it answer, and may this role create tables in
//! the schema and alter the tables the jobs load, without creating anything that stays.
//!
//! Postgres: privilege queries (`has_schema_privilege`, or `has_database_privilege` when the
//! schema does not exist yet and the first run would create it; the owner of each existing table
//! the jobs use), then, in one transaction that is always rolled back, what a first run does:
//! the schema if missing, a table, a column added to it. SQLite: an existing file is opened
//! without creating it and the same statements run in a transaction rolled back; for a file that
//! does not exist yet, a probe file is created in its directory and removed at once.
//!
//! Nothing here goes through [`super::Store::connect`], which creates a missing schema or file.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Executor, PgConnection, SqliteConnection};

use super::error::{StoreError, connect_error, connect_options};
use super::spec::{quote, validate_identifier};
use crate::config::{Backend, DatabaseConfig};

/// What the database said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// Who answered: the role and database (Postgres), the file (SQLite).
    pub who: String,
    /// What was found to be fine, one sentence each.
    pub notes: Vec<String>,
    /// What stops a run, one sentence each (a privilege the role lacks, a file it cannot write).
    pub problems: Vec<String>,
}

/// The table the probe transaction creates and rolls back (with the process id, so that two
/// probes at once do not wait for each other).
fn probe_table() -> String {
    format!("_rokt_export_probe_{}", std::process::id())
}

/// Looks at the database `db` names: it answers, and this role may create tables in its schema
/// and alter `tables` (the job tables and core tables a run would touch) where they exist. An
/// `Err` is a database that cannot be reached or opened; what the role may not do is in
/// [`Probe::problems`].
pub async fn probe(db: &DatabaseConfig, tables: &[String]) -> Result<Probe, StoreError> {
    match db.url.backend() {
        Backend::Postgres => probe_postgres(db, tables).await,
        Backend::Sqlite => probe_sqlite(db).await,
    }
}

async fn probe_postgres(db: &DatabaseConfig, tables: &[String]) -> Result<Probe, StoreError> {
    validate_identifier("schema", &db.schema)?;
    crate::tls::install_crypto_provider();
    let options =
        connect_options::<PgConnectOptions>(&db.url)?.application_name("rokt-export validate");
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(connect_error(&db.url))?;
    let result = postgres_checks(&mut conn, &db.schema, tables).await;
    let _ = conn.close().await;
    result
}

async fn postgres_checks(
    conn: &mut PgConnection,
    schema: &str,
    tables: &[String],
) -> Result<Probe, StoreError> {
    let query = |what: &str| {
        let what = what.to_owned();
        move |e| StoreError::query(what, e)
    };
    let (user, database): (String, String) =
        sqlx::query_as("SELECT current_user::text, current_database()::text")
            .fetch_one(&mut *conn)
            .await
            .map_err(query("asking who this role is"))?;
    let mut probe = Probe {
        who: format!("answers, as role {user} in database {database}"),
        ..Probe::default()
    };
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *conn)
            .await
            .map_err(query("looking for the schema"))?;
    if exists {
        let (usage, create): (bool, bool) = sqlx::query_as(
            "SELECT has_schema_privilege($1, 'USAGE'), has_schema_privilege($1, 'CREATE')",
        )
        .bind(schema)
        .fetch_one(&mut *conn)
        .await
        .map_err(query("reading the schema's privileges"))?;
        if !usage || !create {
            probe.problems.push(format!(
                "role {user} lacks {} on schema {schema}: a run creates and alters its tables \
                 there (GRANT USAGE, CREATE ON SCHEMA {schema} TO {user})",
                match (usage, create) {
                    (false, false) => "USAGE and CREATE",
                    (false, true) => "USAGE",
                    _ => "CREATE",
                }
            ));
        }
        let owners: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT c.relname::text, pg_get_userbyid(c.relowner)::text, \
             pg_has_role(c.relowner, 'USAGE') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname = ANY($2) \
             ORDER BY 1",
        )
        .bind(schema)
        .bind(tables)
        .fetch_all(&mut *conn)
        .await
        .map_err(query("reading who owns the tables"))?;
        let (mine, theirs): (Vec<_>, Vec<_>) = owners.iter().partition(|(_, _, own)| *own);
        for (table, owner, _) in &theirs {
            probe.problems.push(format!(
                "table {schema}.{table} belongs to role {owner}, and role {user} may not alter \
                 it (adding a column for a new metric needs its owner): ALTER TABLE \
                 {schema}.{table} OWNER TO {user}, or GRANT {owner} TO {user}"
            ));
        }
        if !mine.is_empty() {
            let names: Vec<&str> = mine.iter().map(|(t, _, _)| t.as_str()).collect();
            probe.notes.push(format!(
                "may alter the existing tables {}",
                names.join(", ")
            ));
        }
    } else {
        let create: bool =
            sqlx::query_scalar("SELECT has_database_privilege(current_database(), 'CREATE')")
                .fetch_one(&mut *conn)
                .await
                .map_err(query("reading the database's privileges"))?;
        if !create {
            probe.problems.push(format!(
                "schema {schema} does not exist and role {user} may not create it (CREATE on \
                 database {database}): create it for the role (CREATE SCHEMA {schema} \
                 AUTHORIZATION {user}) or set [database] schema"
            ));
        } else {
            probe.notes.push(format!(
                "schema {schema} does not exist yet: the first run creates it"
            ));
        }
    }
    if probe.problems.is_empty() {
        // What a first run does, undone: the rollback leaves no schema, table or column behind.
        let table = format!("{}.{}", quote(schema), quote(&probe_table()));
        let statements = [
            "SET LOCAL lock_timeout = '5s'".to_owned(),
            "SET LOCAL statement_timeout = '10s'".to_owned(),
            format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)),
            format!("CREATE TABLE {table} (probe integer PRIMARY KEY)"),
            format!("ALTER TABLE {table} ADD COLUMN probe_added numeric"),
        ];
        let mut tx = conn
            .begin()
            .await
            .map_err(query("starting the probe transaction"))?;
        let mut failed = None;
        for sql in &statements {
            if let Err(e) = tx.execute(sql.as_str()).await {
                failed = Some(e);
                break;
            }
        }
        let _ = tx.rollback().await;
        match failed.map(|e| StoreError::query("creating and altering a probe table", e)) {
            None => probe.notes.push(format!(
                "may create and alter tables in schema {schema} (tried in a transaction that \
                 was rolled back)"
            )),
            Some(e) if e.is_unavailable() => return Err(e),
            Some(e) => probe.problems.push(format!(
                "role {user} cannot create or alter a table in schema {schema}: {e}"
            )),
        }
    }
    Ok(probe)
}

async fn probe_sqlite(db: &DatabaseConfig) -> Result<Probe, StoreError> {
    let options = connect_options::<SqliteConnectOptions>(&db.url)?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(5));
    let path = options.get_filename().to_path_buf();
    let mut probe = Probe {
        who: format!("opens, as file {}", path.display()),
        ..Probe::default()
    };
    let in_memory = path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:");
    if !in_memory && !path.exists() {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let trial = dir.join(format!(".rokt-export-probe-{}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&trial)
        {
            Ok(_) => {
                let _ = std::fs::remove_file(&trial);
                probe.who = format!("file {} does not exist yet", path.display());
                probe.notes.push(format!(
                    "the first run creates it: files can be created in {} (a probe file was \
                     created and removed)",
                    dir.display()
                ));
            }
            Err(e) => {
                probe.who = format!("file {} does not exist", path.display());
                probe.problems.push(format!(
                    "{} cannot be created in {}: {e}",
                    path.display(),
                    dir.display()
                ));
            }
        }
        return Ok(probe);
    }
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(connect_error(&db.url))?;
    let table = quote(&probe_table());
    let statements = [
        format!("CREATE TABLE {table} (probe INTEGER PRIMARY KEY)"),
        format!("ALTER TABLE {table} ADD COLUMN probe_added NUMERIC"),
    ];
    let mut failed = None;
    match conn.begin().await {
        Ok(mut tx) => {
            for sql in &statements {
                if let Err(e) = tx.execute(sql.as_str()).await {
                    failed = Some(e);
                    break;
                }
            }
            let _ = tx.rollback().await;
        }
        Err(e) => failed = Some(e),
    }
    let _ = conn.close().await;
    match failed {
        None => probe.notes.push(
            "may create and alter tables in it (tried in a transaction that was rolled back)"
                .to_owned(),
        ),
        Some(e) => probe.problems.push(format!(
            "cannot create or alter a table in {}: {e}",
            path.display()
        )),
    }
    Ok(probe)
}

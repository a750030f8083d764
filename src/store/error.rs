//! The store's error type: what went wrong, and whether waiting and retrying can help.

use std::str::FromStr;

use crate::config::DatabaseUrl;

/// Everything the store can fail with. `Display` never contains the database password: the URL is
/// only ever shown redacted, and driver messages from connecting are scrubbed of it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not open the database (or set up its schema) at `url` (redacted).
    #[error("cannot connect to the database at {url}: {message}")]
    Connect {
        url: String,
        /// The driver's message with the password scrubbed out.
        message: String,
        #[source]
        source: sqlx::Error,
    },

    /// Applying the core-table migrations failed.
    #[error("applying the database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// A statement failed; `action` says what the store was doing.
    #[error("{action}: {source}")]
    Query {
        action: String,
        #[source]
        source: sqlx::Error,
    },

    /// A table or column name that cannot be used as an identifier.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },

    /// A `TableSpec` that does not describe a loadable table (no key, unknown key column, ...).
    #[error("invalid table definition for {table:?}: {reason}")]
    InvalidSpec { table: String, reason: String },

    /// A `Batch` that does not match its `TableSpec`, or a key value that cannot be stored.
    #[error("invalid rows for table {table:?}: {reason}")]
    InvalidBatch { table: String, reason: String },

    /// The table's primary key differs from the job's key in a way the store will not change by
    /// itself (a key column removed, or reordered): widening is automatic, narrowing is not.
    #[error(
        "table {table:?} has primary key ({existing}) but the job's key is ({wanted}); \
         the tool widens a key or narrows it to a part of itself, not one into another: set the \
         job's `key`, change the table by hand, or give the job a new table name"
    )]
    KeyMismatch {
        table: String,
        existing: String,
        wanted: String,
    },

    /// Changing a table waited for another session's lock longer than its `lock_timeout` (an
    /// analyst's transaction left open on the table, say). Retried by the caller for a while.
    #[error(
        "table {table:?} is locked by another session ({holders}): the change of its columns or \
         key waited a few seconds and gave up, so that queries behind it do not queue too; \
         end that session's transaction (or wait for it), and the next run tries again"
    )]
    LockTimeout { table: String, holders: String },

    /// `commit_window` on a run that is not `running` (unknown id, or already finished or failed).
    #[error("run {0} is not running (unknown, or already finished); its window was not committed")]
    RunNotRunning(i64),
}

impl StoreError {
    pub(super) fn query(action: impl Into<String>, source: sqlx::Error) -> StoreError {
        StoreError::Query {
            action: action.into(),
            source,
        }
    }

    /// The driver error underneath, if any.
    fn sqlx(&self) -> Option<&sqlx::Error> {
        match self {
            StoreError::Connect { source, .. } | StoreError::Query { source, .. } => Some(source),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(source)) => Some(source),
            _ => None,
        }
    }

    /// True when a statement gave up waiting for a lock (`lock_not_available`, 55P03).
    pub(super) fn is_lock_not_available(&self) -> bool {
        matches!(self.sqlx(), Some(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03"))
    }

    /// True when a table change gave up waiting for another session's lock: worth trying again
    /// shortly.
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, StoreError::LockTimeout { .. })
    }

    /// True when the same operation may succeed if tried again later: the connection was lost or
    /// refused, the pool timed out, or the database asked the client to retry (serialization
    /// failure, deadlock, SQLite busy/locked). Bad input, bad names and SQL errors are not retriable.
    pub fn is_retriable(&self) -> bool {
        match self.sqlx() {
            Some(sqlx::Error::Database(db)) => db.code().is_some_and(|c| retriable_code(&c)),
            Some(e) => connection_level(e),
            None => false,
        }
    }

    /// True when the database itself is unreachable or not accepting work (refused, lost, pool
    /// exhausted, shutting down, too many connections): the database is unavailable, rather than
    /// this operation wrong. Callers decide what that means for them (readiness, an exit code).
    pub fn is_unavailable(&self) -> bool {
        match self.sqlx() {
            Some(sqlx::Error::Database(db)) => db.code().is_some_and(|c| unavailable_code(&c)),
            Some(e) => connection_level(e),
            None => false,
        }
    }
}

/// Errors below SQL: the socket, TLS, the pool.
fn connection_level(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    )
}

/// SQLSTATE classes (Postgres) and result codes (SQLite, as decimal text) worth retrying.
fn retriable_code(code: &str) -> bool {
    unavailable_code(code)
        || matches!(
            code,
            "40001" // serialization_failure
            | "40P01" // deadlock_detected
            | "55P03" // lock_not_available
            | "5" | "261" | "517" // SQLITE_BUSY (and _RECOVERY, _SNAPSHOT)
            | "6" | "262" // SQLITE_LOCKED (and _SHAREDCACHE)
        )
}

/// SQLSTATEs that mean the server is not there for us right now.
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08") // connection_exception
        || matches!(
            code,
            "57P01" // admin_shutdown
            | "57P02" // crash_shutdown
            | "57P03" // cannot_connect_now
            | "53300" // too_many_connections
        )
}

/// Removes every spelling of a password from `message` (driver messages from connecting may echo
/// parts of the URL). `secrets` comes from `DatabaseUrl::secrets`.
/// Turns what connecting to `url` failed with into [`StoreError::Connect`]: the URL redacted,
/// the driver's message scrubbed of the password's spellings ([`DatabaseUrl::secrets`]). Used by
/// both backends and the probe, for the URL's parse and every step of connecting.
pub(super) fn connect_error(url: &DatabaseUrl) -> impl Fn(sqlx::Error) -> StoreError + use<> {
    let (redacted, secrets) = (url.redacted(), url.secrets());
    move |source| StoreError::Connect {
        url: redacted.clone(),
        message: scrub(source.to_string(), &secrets),
        source,
    }
}

/// The driver's connect options (`PgConnectOptions`, `SqliteConnectOptions`) parsed from `url`;
/// a URL the driver refuses is a [`StoreError::Connect`] (see [`connect_error`]).
pub(super) fn connect_options<O: FromStr<Err = sqlx::Error>>(
    url: &DatabaseUrl,
) -> Result<O, StoreError> {
    O::from_str(url.expose()).map_err(connect_error(url))
}

pub(super) fn scrub(message: String, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(message, |message, s| message.replace(s.as_str(), "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_removes_every_spelling() {
        let url = DatabaseUrl::parse("postgres://u:a%2Fb@h/db").unwrap();
        assert_eq!(
            scrub("bad password a/b (a%2Fb) for u".to_owned(), &url.secrets()),
            "bad password *** (***) for u"
        );
        let raw_at = DatabaseUrl::parse("postgres://u:p@ss@h/db").unwrap();
        assert_eq!(
            scrub("p@ss or p%40ss".to_owned(), &raw_at.secrets()),
            "*** or ***"
        );
        assert_eq!(scrub("nothing".to_owned(), &[]), "nothing");
        assert_eq!(scrub("x".to_owned(), &[String::new()]), "x");
    }
}

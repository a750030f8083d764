//! Issue 19's operational hardening: the demo never touches a database it did not create, the
//! SQLite file is private, catalogue names are quoted, and a `--run-now` does not leave runs
//! `running` behind.

use rokt_export::config::{DatabaseConfig, DatabaseUrl};
use rokt_export::store::{ColumnSpec, ColumnType, Store, TableSpec};
use sqlx::{Connection, PgConnection};

use crate::helpers::TestDb;

fn spec(key: &[&str]) -> TableSpec {
    TableSpec {
        table: "campaign_daily".into(),
        columns: vec![
            ColumnSpec::new("account_id", ColumnType::Text),
            ColumnSpec::new("date", ColumnType::Date),
            ColumnSpec::new("campaign_id", ColumnType::Text),
            ColumnSpec::new("impressions", ColumnType::Numeric),
        ],
        key: key.iter().map(|k| (*k).to_owned()).collect(),
        descriptive: Vec::new(),
    }
}

#[tokio::test]
async fn widening_a_key_whose_constraint_name_holds_a_double_quote_works() {
    let db = TestDb::new().await;
    let config = DatabaseConfig::new(DatabaseUrl::parse(&db.url).unwrap(), "rokt");
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    store
        .ensure_table(&spec(&["account_id", "date"]))
        .await
        .unwrap();
    // Someone renamed the primary key by hand; the name read back from the catalogue must be
    // quoted as an identifier, its `"` doubled.
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        r#"ALTER TABLE rokt.campaign_daily RENAME CONSTRAINT campaign_daily_pkey TO "pk ""x"" ; --""#,
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let changes = store
        .ensure_table(&spec(&["account_id", "date", "campaign_id"]))
        .await
        .unwrap();
    assert!(changes.key_widened);
    let (key,): (String,) = sqlx::query_as(
        "SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = 'rokt.campaign_daily'::regclass AND i.indisprimary",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(key, "account_id,date,campaign_id");
    store.close().await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_file_is_created_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.db");
    let config = DatabaseConfig::new(
        DatabaseUrl::parse(&format!("sqlite://{}", file.display())).unwrap(),
        "rokt",
    );
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}: {mode:o}", entry.path().display());
    }
}

// ---------------------------------------------------------------------------------------------
// The demo and real exports.

/// Every table of the `rokt` schema with its row count and a digest of all its rows, and the
/// run records: what must come out of a refused demo exactly as it went in.
async fn snapshot(url: &str) -> Vec<(String, i64, String)> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'rokt' AND c.relkind = 'r' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let (n, digest): (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) \
             FROM rokt.\"{t}\" x"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        out.push((t, n, digest));
    }
    let _ = conn.close().await;
    out
}

/// Impressions summed over `rokt.campaign_daily`, as text (exact).
async fn impressions(url: &str) -> (i64, String) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let sums = sqlx::query_as(
        "SELECT count(*), coalesce(sum(impressions), 0)::text FROM rokt.campaign_daily",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    sums
}

/// Runs the binary in `dir` with a clean environment plus `env`, off the async runtime.
async fn run_in(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(crate::helpers::binary());
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// A database holding real exports: `--run-now campaign_daily` of the shipped jobs.toml against
/// the simulated API (trigger `run-now`), in `dir` (which holds that jobs.toml).
async fn real_exports(dir: &std::path::Path, db: &TestDb) {
    std::fs::copy(crate::helpers::shipped_config(), dir.join("jobs.toml")).unwrap();
    let mock = rokt_export::mock::MockServer::start(rokt_export::mock::MockConfig::default())
        .await
        .unwrap();
    let today = chrono::Utc::now().date_naive();
    let from = (today - chrono::Days::new(10)).to_string();
    let to = (today - chrono::Days::new(1)).to_string();
    let base = mock.base_url();
    let out = run_in(
        dir,
        &["--run-now", "campaign_daily", "--from", &from, "--to", &to],
        &[
            ("DATABASE_URL", &db.url),
            ("ROKT_API_BASE_URL", &base),
            ("ROKT_APP_ID", "demo-app-id"),
            ("ROKT_APP_SECRET", "demo-app-secret"),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    mock.stop().await;
    let (rows, _) = impressions(&db.url).await;
    assert!(rows > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_leaves_a_database_of_real_exports_unchanged() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    real_exports(dir.path(), &db).await;
    let before = snapshot(&db.url).await;
    let sums_before = impressions(&db.url).await;

    // DATABASE_URL set, as in the service's shell: the demo does not use it.
    let out = run_in(
        dir.path(),
        &["demo", "--days", "2"],
        &[("DATABASE_URL", &db.url)],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stderr.contains("does not use DATABASE_URL"), "{stderr}");
    assert!(dir.path().join("rokt-export-demo.db").exists());
    assert!(
        !dir.path().join("rokt-export.db").exists(),
        "not the config's default file either"
    );
    assert_eq!(snapshot(&db.url).await, before);

    // Named explicitly: refused, with the reason, and nothing changed.
    let out = run_in(
        dir.path(),
        &["demo", "--days", "2", "--database", &db.url],
        &[],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("does not write to"), "{stderr}");
    assert!(stderr.contains("runs the demo did not start"), "{stderr}");
    assert!(stderr.contains("`run-now`"), "{stderr}");
    assert!(
        !stderr.contains("simulated Rokt API on"),
        "refused before anything ran: {stderr}"
    );
    assert_eq!(impressions(&db.url).await, sums_before);
    assert_eq!(snapshot(&db.url).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_refuses_job_tables_without_runs_and_reuses_its_own_database() {
    // Tables but no run record: nothing says they are the demo's.
    let db = TestDb::new().await;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    for sql in [
        "CREATE SCHEMA rokt",
        "CREATE TABLE rokt.campaign_daily (account_id text, date date, impressions numeric)",
        "INSERT INTO rokt.campaign_daily VALUES ('3141592', '2026-01-01', 920)",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let _ = conn.close().await;
    let before = snapshot(&db.url).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["demo", "--database", &db.url], &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(
        stderr.contains("campaign_daily") && stderr.contains("no runs"),
        "{stderr}"
    );
    assert_eq!(snapshot(&db.url).await, before);

    // An empty database is the demo's; a second demo finds only demo runs and goes ahead.
    let fresh = TestDb::new().await;
    for _ in 0..2 {
        let out = run_in(
            dir.path(),
            &["demo", "--days", "1", "--database", &fresh.url],
            &[],
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("psql"), "{stdout}");
    }
    let mut conn = PgConnection::connect(&fresh.url).await.unwrap();
    let (all, demo): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE trigger = 'demo') FROM rokt.export_runs",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(all > 0);
    assert_eq!(all, demo);
    let _ = conn.close().await;
}

// ---------------------------------------------------------------------------------------------
// A `--run-now` whose database vanishes mid-window.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_now_whose_database_vanished_mid_window_leaves_no_run_running() {
    use std::time::{Duration, Instant};
    let db = TestDb::new().await;
    let mock = rokt_export::mock::MockServer::start(rokt_export::mock::MockConfig::default())
        .await
        .unwrap();
    mock.set_faults(rokt_export::mock::Faults {
        latency_ms: 2_000,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobs.toml");
    std::fs::write(
        &config,
        "[[jobs]]\nname = \"campaign_daily\"\nschedule = \"15 5 * * *\"\naccounts = [\"3141592\"]\n\
         report = \"campaigns\"\nmetrics = [\"impressions\"]\nwindow_days = 1\n",
    )
    .unwrap();
    let log = dir.path().join("run-now.log");
    let today = chrono::Utc::now().date_naive();
    let mut child = std::process::Command::new(crate::helpers::binary())
        .arg("--config")
        .arg(&config)
        .args(["--run-now", "campaign_daily", "--from"])
        .arg((today - chrono::Days::new(6)).to_string())
        .arg("--to")
        .arg((today - chrono::Days::new(1)).to_string())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("ROKT_API_BASE_URL", mock.base_url())
        .env("ROKT_APP_ID", "demo-app-id")
        .env("ROKT_APP_SECRET", "demo-app-secret")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let pool = db.pool().await;
    let running = "SELECT count(*) FROM rokt.export_runs WHERE status = 'running'";
    let started = Instant::now();
    loop {
        let (n,): (i64,) = sqlx::query_as(running)
            .fetch_one(&pool)
            .await
            .unwrap_or((0,));
        if n > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pool.close().await;

    // The database goes away mid-window: no new connections, and the open ones are cut.
    let other = TestDb::new().await;
    let admin = other.pool().await;
    sqlx::query(&format!(
        "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS false",
        db.name
    ))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db.name)
        .execute(&admin)
        .await
        .unwrap();
    // The window fails; the run cannot record that yet and says it retries. Then the database
    // returns.
    let started = Instant::now();
    while !read_log().contains("cannot close this run's windows yet") {
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "the run exited without trying to close its windows:\n{}",
            read_log()
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::query(&format!(
        "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS true",
        db.name
    ))
    .execute(&admin)
    .await
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_ne!(status.code(), Some(0), "{}", read_log());

    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(running).fetch_one(&mut conn).await.unwrap();
    assert_eq!(n, 0, "{}", read_log());
    let (closed,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM rokt.export_runs WHERE status = 'failed' \
         AND error LIKE '%could not record this window''s end%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(closed >= 1, "{}", read_log());
    let _ = conn.close().await;
    admin.close().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_now_stops_on_a_signal_and_at_once_on_a_second_leaving_nothing_running() {
    use std::time::{Duration, Instant};
    let db = TestDb::new().await;
    let mock = rokt_export::mock::MockServer::start(rokt_export::mock::MockConfig::default())
        .await
        .unwrap();
    // Longer than the default 30 s grace: only the second signal ends the wait in time.
    mock.set_faults(rokt_export::mock::Faults {
        latency_ms: 120_000,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobs.toml");
    // Fixed units: the first request is then the slow window, not the accounts list.
    let text = format!(
        "[defaults]\ntimezone = \"UTC\"\ncurrency = \"USD\"\n{}",
        crate::helpers::MINIMAL_JOB
    );
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("run-now.log");
    let mut child = std::process::Command::new(crate::helpers::binary())
        .arg("--config")
        .arg(&config)
        .args(["--run-now", "campaign_daily"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("ROKT_API_BASE_URL", mock.base_url())
        .env("ROKT_APP_ID", "demo-app-id")
        .env("ROKT_APP_SECRET", "demo-app-secret")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let pool = db.pool().await;
    let running = "SELECT count(*) FROM rokt.export_runs WHERE status = 'running'";
    let started = Instant::now();
    loop {
        let (n,): (i64,) = sqlx::query_as(running)
            .fetch_one(&pool)
            .await
            .unwrap_or((0,));
        if n > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let term = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
    };
    term(child.id());
    let started = Instant::now();
    while !read_log().contains("stopping: no new window") {
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "the first SIGTERM ended the run at once:\n{}",
            read_log()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    term(child.id());
    let sent = Instant::now();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(sent.elapsed() < Duration::from_secs(25), "{}", read_log());
    assert_eq!(status.code(), Some(1), "{}", read_log());
    let (n,): (i64,) = sqlx::query_as(running).fetch_one(&pool).await.unwrap();
    assert_eq!(n, 0, "{}", read_log());
    pool.close().await;
    mock.stop().await;
}

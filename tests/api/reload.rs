//! `--reload` (issue 15's way out of a changed zone or currency) and what a run tells about the
//! answers it got: the reload's deletions commit with the account's first window, so a run that
//! loads nothing keeps the old rows. The built binary against real Postgres and the simulated API
//! over HTTP.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use chrono::{Days, NaiveDate, Utc};
use rokt_export::mock::{Faults, MockConfig, MockServer};

use crate::helpers::{TestDb, config_file, run_binary};

const AU: &str = "2718281";

fn days_ago(n: u64) -> NaiveDate {
    Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(n))
        .unwrap()
}

/// A job of account `AU` with `units` (its `timezone`/`currency` lines) and `window_days`.
fn job(units: &str, window_days: u32) -> String {
    format!(
        "[[jobs]]\nname = \"campaign_daily\"\nschedule = \"15 5 * * *\"\naccounts = [\"{AU}\"]\n\
         report = \"campaigns\"\ndimensions = [\"campaign_id\"]\nmetrics = [\"impressions\"]\n\
         window_days = {window_days}\n{units}"
    )
}

const UTC_USD: &str = "timezone = \"UTC\"\ncurrency = \"USD\"\n";
const SYDNEY_AUD: &str = "timezone = \"Australia/Sydney\"\ncurrency = \"AUD\"\n";

/// `--run-now campaign_daily --from --to` with `config`, against `db` and `mock`.
fn run_now(
    db: &TestDb,
    mock: &MockServer,
    config: &Path,
    from: NaiveDate,
    to: NaiveDate,
    extra: &[&str],
) -> Output {
    let (from, to) = (from.to_string(), to.to_string());
    let mut args = vec!["--run-now", "campaign_daily", "--from", &from, "--to", &to];
    args.extend_from_slice(extra);
    let base_url = mock.base_url();
    let config = config.display().to_string();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("ROKT_API_BASE_URL", base_url.as_str()),
        ("ROKT_APP_ID", "demo-app-id"),
        ("ROKT_APP_SECRET", "demo-app-secret"),
        ("ROKT_EXPORT_CONFIG", config.as_str()),
    ];
    tokio::task::block_in_place(|| run_binary(&args, &env))
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What the table and the state hold: each row's (day, campaign, timezone, impressions), and the
/// state's (high-water mark, timezone, currency).
async fn contents(db: &TestDb) -> (BTreeSet<(String, String, String, String)>, Vec<String>) {
    let pool = db.pool().await;
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT date::text, campaign_id, timezone, impressions::text FROM rokt.campaign_daily",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let state: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(high_water_date::text, '-') || ' ' || timezone || ' ' || currency \
         FROM rokt.export_state",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    (rows.into_iter().collect(), state)
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    let pool = db.pool().await;
    let v: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    v
}

/// A table loaded in UTC and USD, then a job that asks Sydney and AUD: refused (exit 78).
async fn loaded_then_refused(
    db: &TestDb,
    mock: &MockServer,
    window_days: u32,
) -> [tempfile::TempDir; 2] {
    let (old_dir, old) = config_file(&job(UTC_USD, window_days));
    let out = run_now(db, mock, &old, days_ago(10), days_ago(1), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let (new_dir, new) = config_file(&job(SYDNEY_AUD, window_days));
    let out = run_now(db, mock, &new, days_ago(5), days_ago(1), &[]);
    assert_eq!(out.status.code(), Some(78), "{}", said(&out));
    [old_dir, new_dir]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_loads_nothing_keeps_the_old_rows_and_one_that_loads_replaces_them() {
    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dirs = loaded_then_refused(&db, &mock, 31).await;
    let config = dirs[1].path().join("jobs.toml");
    let before = contents(&db).await;
    assert!(!before.0.is_empty());
    assert_eq!(before.1, [format!("{} UTC USD", days_ago(1))]);

    // The API answers nothing readable: the reload's one window fails before committing.
    mock.set_faults(Faults {
        every_nth_malformed: Some(1),
        ..Faults::default()
    });
    let out = run_now(&db, &mock, &config, days_ago(5), days_ago(1), &["--reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert_eq!(
        contents(&db).await,
        before,
        "the old rows and state are still there"
    );

    // The API is back: the reload replaces every row of the account.
    mock.set_faults(Faults::default());
    let last_run = scalar(&db, "SELECT max(id) FROM rokt.export_runs").await;
    let out = run_now(&db, &mock, &config, days_ago(5), days_ago(1), &["--reload"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let (rows, state) = contents(&db).await;
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.2 == "Australia/Sydney"),
        "only rows read in Sydney: {rows:?}"
    );
    let first = days_ago(5).to_string();
    assert!(rows.iter().all(|r| r.0 >= first), "{rows:?}");
    assert_eq!(state, [format!("{} Australia/Sydney AUD", days_ago(1))]);
    // Every old row whose key the new answer has was rewritten; every other one was deleted, and
    // counted.
    let keys = |rows: &BTreeSet<(String, String, String, String)>| -> BTreeSet<(String, String)> {
        rows.iter().map(|r| (r.0.clone(), r.1.clone())).collect()
    };
    let gone = keys(&before.0).difference(&keys(&rows)).count() as i64;
    assert!(gone > 0, "the old rows before the reload's days");
    let counted = scalar(
        &db,
        &format!(
            "SELECT coalesce(sum(rows_deleted), 0)::bigint FROM rokt.export_runs \
             WHERE id > {last_run} AND status = 'succeeded'"
        ),
    )
    .await;
    assert_eq!(counted, gone);
    let said = said(&out);
    assert!(said.contains(&format!("{gone} deleted")), "{said}");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_whose_later_window_fails_leaves_only_the_new_rows_and_an_honest_mark() {
    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dirs = loaded_then_refused(&db, &mock, 2).await;
    let config = dirs[1].path().join("jobs.toml");

    // Windows [6, 5], [4, 3] and [2, 1] days ago: the second one's answer is unreadable.
    mock.set_faults(Faults {
        every_nth_malformed: Some(2),
        ..Faults::default()
    });
    let out = run_now(&db, &mock, &config, days_ago(6), days_ago(1), &["--reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let (rows, state) = contents(&db).await;
    let days: BTreeSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let first_window: BTreeSet<String> = [days_ago(6), days_ago(5)]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        days,
        first_window.iter().map(String::as_str).collect(),
        "the first window's days only"
    );
    assert!(rows.iter().all(|r| r.2 == "Australia/Sydney"), "{rows:?}");
    assert_eq!(state, [format!("{} Australia/Sydney AUD", days_ago(5))]);

    // Consistent: the next run needs no reload, and catches up.
    mock.set_faults(Faults::default());
    let out = run_now(&db, &mock, &config, days_ago(4), days_ago(1), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let (_, state) = contents(&db).await;
    assert_eq!(state, [format!("{} Australia/Sydney AUD", days_ago(1))]);
    mock.stop().await;
}

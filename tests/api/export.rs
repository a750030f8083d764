//! Export runs end to end: the simulated API over HTTP, real Postgres (and SQLite), `run_job`.

use std::sync::Arc;

use chrono::{Days, NaiveDate, Utc};
use rokt_export::api::ApiClient;
use rokt_export::config::{Config, Env};
use rokt_export::export::{self, Context, DayRange, NoProgress, RunRequest, WindowOutcome};
use rokt_export::mock::{Faults, MockConfig, MockServer};
use rokt_export::store::{Store, Trigger};
use sqlx::Row as _;

use crate::helpers::TestDb;

const CAMPAIGNS: &str = r#"
[defaults]
timezone = "UTC"
currency = "USD"
start_date = "2026-01-01"
lookback_days = 7
window_days = 10

[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592", "2718281"]
report = "campaigns"
dimensions = ["campaign_id", "campaign_name"]
metrics = ["impressions", "referrals", "gross_cost", "acquisitions"]
"#;

/// A generic job on the legacy campaign breakdown, one day per window, keyed by `key`.
fn breakdown_job(key: &str) -> String {
    legacy_job("breakdown", "campaigns/breakdown", "campaign", key, 1)
}

/// A generic job named `name` on the legacy endpoint `/reporting/accounts/{account_id}/{path}` of
/// account 3141592, keyed by `key` (`groupby` empty: none sent).
fn legacy_job(name: &str, path: &str, groupby: &str, key: &str, window_days: u32) -> String {
    let groupby = match groupby {
        "" => String::new(),
        g => format!(", groupby = \"{g}\""),
    };
    format!(
        r#"
[[jobs]]
name = "{name}"
schedule = "0 6 * * *"
accounts = ["3141592"]
endpoint = "/reporting/accounts/{{account_id}}/{path}"
query = {{ dateStart = "{{start_date}}T00:00:00.000", dateEnd = "{{last_date}}T23:59:59.999", currency = "{{currency}}", timeZoneVariation = "{{timezone}}"{groupby} }}
records = "/data/items"
key = ["{key}"]
window_days = {window_days}
"#
    )
}

/// `toml` with its jobs limited to the account 3141592.
fn one_account(toml: &str) -> String {
    toml.replace(
        "accounts = [\"3141592\", \"2718281\"]",
        "accounts = [\"3141592\"]",
    )
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn days_ago(n: u64) -> NaiveDate {
    today().checked_sub_days(Days::new(n)).unwrap()
}

/// A running pipeline: the simulated API, a database, and a context wired to both.
struct Pipeline {
    mock: MockServer,
    ctx: Context,
}

async fn pipeline(toml: &str, database_url: &str, mock_config: MockConfig) -> Pipeline {
    rokt_export::tls::install_crypto_provider();
    let mock = MockServer::start(mock_config).await.unwrap();
    let env = Env::default()
        .with("DATABASE_URL", database_url)
        .with("ROKT_API_BASE_URL", &mock.base_url());
    let mut config = Config::from_toml(std::path::Path::new("jobs.toml"), toml, &env).unwrap();
    config.api.max_retries = 2;
    let store = Store::connect(&config.database).await.unwrap();
    store.migrate().await.unwrap();
    let api = ApiClient::new(&config.api, mock.credentials()).unwrap();
    Pipeline {
        mock,
        ctx: Context::new(Arc::new(config), api, store),
    }
}

fn mock_config() -> MockConfig {
    MockConfig {
        today: today(),
        ..MockConfig::default()
    }
}

fn explicit(job: &str, from: NaiveDate, to: NaiveDate) -> RunRequest {
    RunRequest {
        job: job.into(),
        range: DayRange::Explicit {
            from: Some(from),
            to: Some(to),
        },
        accounts: Vec::new(),
        trigger: Trigger::RunNow,
        stop: Default::default(),
        reload: false,
        allow_empty: false,
    }
}

/// Sum of an integer metric over what the simulated API answers for the range, all accounts.
fn api_sum(p: &Pipeline, metric: &str, from: NaiveDate, to: NaiveDate) -> i128 {
    let dims = vec!["campaign_id".to_owned(), "campaign_name".to_owned()];
    let metrics = vec![metric.to_owned()];
    let mut total = 0i128;
    for account in ["3141592", "2718281"] {
        let rows = p.mock.query_rows_in(
            account,
            "campaigns",
            &dims,
            &metrics,
            from,
            to.succ_opt().unwrap(),
            "UTC",
            "USD",
        );
        for r in rows {
            total += micros(&r[metric].to_string());
        }
    }
    total
}

/// How many rows the simulated API serves account 3141592's campaign report for `[from, end)`.
fn served_rows(mock: &MockServer, from: NaiveDate, end_exclusive: NaiveDate) -> usize {
    let dims = ["campaign_id".to_owned(), "campaign_name".to_owned()];
    mock.query_rows_in(
        "3141592",
        "campaigns",
        &dims,
        &["impressions".to_owned()],
        from,
        end_exclusive,
        "UTC",
        "USD",
    )
    .len()
}

/// A decimal string as an integer number of millionths (exact for up to 6 decimal places).
fn micros(s: &str) -> i128 {
    let s = s.trim_matches('"');
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut frac = frac.to_owned();
    assert!(
        frac.len() <= 6 || frac[6..].chars().all(|c| c == '0'),
        "more than 6 decimals: {s}"
    );
    frac.truncate(6);
    while frac.len() < 6 {
        frac.push('0');
    }
    let v = int.parse::<i128>().unwrap() * 1_000_000 + frac.parse::<i128>().unwrap();
    if neg { -v } else { v }
}

async fn pg_sum(db: &TestDb, sql: &str) -> i128 {
    let pool = db.pool().await;
    let row = sqlx::query(sql).fetch_one(&pool).await.unwrap();
    let v: Option<String> = row.try_get(0).unwrap();
    pool.close().await;
    v.map_or(0, |s| micros(&s))
}

async fn pg_count(db: &TestDb, sql: &str) -> i64 {
    let pool = db.pool().await;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn a_multi_window_backfill_lands_exactly_what_the_api_served() {
    let db = TestDb::new().await;
    let p = pipeline(CAMPAIGNS, &db.url, mock_config()).await;
    let (from, to) = (days_ago(40), days_ago(1));
    let report = export::run_job(&p.ctx, &explicit("campaign_daily", from, to), &NoProgress)
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        report.windows.len(),
        8,
        "40 days in windows of 10, for two accounts"
    );
    assert!(report.rows_written() > 0);
    assert_eq!(report.rows_written(), report.rows_received());

    for metric in ["impressions", "referrals", "gross_cost", "acquisitions"] {
        let table = pg_sum(
            &db,
            &format!("SELECT sum({metric})::text FROM rokt.campaign_daily"),
        )
        .await;
        assert_eq!(table, api_sum(&p, metric, from, to), "sum of {metric}");
    }
    // Every window has a succeeded run record; the high-water mark is the last day loaded.
    let pool = db.pool().await;
    let (succeeded,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM rokt.export_runs WHERE job = 'campaign_daily' AND status = 'succeeded' AND trigger = 'run-now'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(succeeded, 8);
    let marks: Vec<(NaiveDate,)> = sqlx::query_as(
        "SELECT high_water_date FROM rokt.export_state WHERE job = 'campaign_daily'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(marks, vec![(to,), (to,)]);
    p.mock.stop().await;
}

#[tokio::test]
async fn running_the_same_range_twice_writes_nothing_new() {
    let db = TestDb::new().await;
    let p = pipeline(CAMPAIGNS, &db.url, mock_config()).await;
    let request = explicit("campaign_daily", days_ago(12), days_ago(1));
    let first = export::run_job(&p.ctx, &request, &NoProgress)
        .await
        .unwrap();
    let count = pg_count(&db, "SELECT count(*) FROM rokt.campaign_daily").await;
    let second = export::run_job(&p.ctx, &request, &NoProgress)
        .await
        .unwrap();
    assert!(first.succeeded() && second.succeeded());
    assert!(first.rows_written() > 0);
    assert_eq!(second.rows_received(), first.rows_received());
    assert_eq!(second.rows_written(), 0, "unchanged rows are not rewritten");
    assert_eq!(
        pg_count(&db, "SELECT count(*) FROM rokt.campaign_daily").await,
        count
    );
    p.mock.stop().await;
}

#[tokio::test]
async fn a_scheduled_run_picks_up_restated_conversions() {
    let db = TestDb::new().await;
    let p = pipeline(CAMPAIGNS, &db.url, mock_config()).await;
    let from = days_ago(30);
    let backfill = export::run_job(
        &p.ctx,
        &explicit("campaign_daily", from, today()),
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(backfill.succeeded());
    let old_days =
        "SELECT sum(acquisitions)::text FROM rokt.campaign_daily WHERE date < current_date - 7";
    let before_old = pg_sum(&db, old_days).await;

    // Time passes: the API restates the last days' conversions.
    p.mock.advance_time(1);
    let scheduled = RunRequest {
        job: "campaign_daily".into(),
        range: DayRange::Incremental,
        accounts: Vec::new(),
        trigger: Trigger::Schedule,
        stop: Default::default(),
        reload: false,
        allow_empty: false,
    };
    let report = export::run_job(&p.ctx, &scheduled, &NoProgress)
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert!(report.rows_written() > 0, "restated rows were rewritten");
    assert!(
        report.rows_written() < report.rows_received(),
        "unchanged rows were not"
    );
    let table = pg_sum(
        &db,
        "SELECT sum(acquisitions)::text FROM rokt.campaign_daily",
    )
    .await;
    assert_eq!(
        table,
        api_sum(&p, "acquisitions", from, today()),
        "the table agrees with the API after restatement"
    );
    assert_eq!(
        pg_sum(&db, old_days).await,
        before_old,
        "days before the lookback did not change"
    );
    p.mock.stop().await;
}

#[tokio::test]
async fn a_new_metric_adds_a_column_and_keeps_old_rows() {
    let db = TestDb::new().await;
    let p = pipeline(CAMPAIGNS, &db.url, mock_config()).await;
    let request = explicit("campaign_daily", days_ago(3), days_ago(1));
    assert!(
        export::run_job(&p.ctx, &request, &NoProgress)
            .await
            .unwrap()
            .succeeded()
    );
    let rows_before = pg_count(&db, "SELECT count(*) FROM rokt.campaign_daily").await;
    p.mock.stop().await;

    let more = CAMPAIGNS.replace("\"acquisitions\"]", "\"acquisitions\", \"net_cost\"]");
    let p = pipeline(&more, &db.url, mock_config()).await;
    let older = explicit("campaign_daily", days_ago(6), days_ago(4));
    assert!(
        export::run_job(&p.ctx, &older, &NoProgress)
            .await
            .unwrap()
            .succeeded()
    );
    let pool = db.pool().await;
    let (with_net, without_net): (i64, i64) = sqlx::query_as(
        "SELECT count(net_cost), count(*) - count(net_cost) FROM rokt.campaign_daily",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(with_net > 0);
    assert_eq!(
        without_net, rows_before,
        "old rows are kept, with NULL in the new column"
    );
    p.mock.stop().await;
}

#[tokio::test]
async fn malformed_json_fails_that_window_and_keeps_the_earlier_ones() {
    let db = TestDb::new().await;
    let toml = one_account(CAMPAIGNS);
    let p = pipeline(&toml, &db.url, mock_config()).await;
    // The token request is not an API request; the 2nd report answer is broken.
    p.mock.set_faults(Faults {
        every_nth_malformed: Some(2),
        ..Faults::default()
    });
    let report = export::run_job(
        &p.ctx,
        &explicit("campaign_daily", days_ago(30), days_ago(1)),
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(!report.succeeded());
    let outcomes: Vec<&WindowOutcome> = report.windows.iter().map(|w| &w.outcome).collect();
    assert!(
        matches!(outcomes[0], WindowOutcome::Succeeded { .. }),
        "{outcomes:?}"
    );
    let WindowOutcome::Failed { error, .. } = outcomes[1] else {
        panic!("{outcomes:?}")
    };
    assert!(
        error.contains("/v1/query/accounts/3141592/campaigns/"),
        "the error names the endpoint: {error}"
    );
    assert!(matches!(outcomes[2], WindowOutcome::NotAttempted));

    let pool = db.pool().await;
    let statuses: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT status, error FROM rokt.export_runs WHERE job = 'campaign_daily' ORDER BY window_start",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(statuses[0].0, "succeeded");
    assert_eq!(statuses[1].0, "failed");
    assert!(statuses[1].1.as_deref().unwrap_or("").contains("campaigns"));
    // The window fetched ahead while the failed one was handled is closed, not left `running`.
    for (status, error) in &statuses[2..] {
        assert_eq!(status, "failed");
        assert!(
            error
                .as_deref()
                .unwrap_or("")
                .contains("an earlier window of this account failed")
        );
    }
    assert!(
        statuses.len() <= 3,
        "at most one window is fetched ahead: {statuses:?}"
    );
    let first = report.windows[0].window;
    let (outside,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM rokt.campaign_daily WHERE date > $1")
            .bind(first.last)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(outside, 0, "the failed window left no rows");
    let (mark,): (NaiveDate,) = sqlx::query_as("SELECT high_water_date FROM rokt.export_state")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        mark, first.last,
        "the mark stops at the last committed window"
    );

    // The next scheduled-style run resumes from the mark and completes.
    p.mock.set_faults(Faults::default());
    let resumed = RunRequest {
        job: "campaign_daily".into(),
        range: DayRange::Explicit {
            from: None,
            to: Some(days_ago(1)),
        },
        accounts: Vec::new(),
        trigger: Trigger::RunNow,
        stop: Default::default(),
        reload: false,
        allow_empty: false,
    };
    let report = export::run_job(&p.ctx, &resumed, &NoProgress)
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        report.windows[0].window.start,
        first.last.succ_opt().unwrap()
    );
    p.mock.stop().await;
}

#[tokio::test]
async fn a_window_whose_run_cannot_be_recorded_fails_and_loads_nothing() {
    let db = TestDb::new().await;
    let toml = one_account(CAMPAIGNS);
    let p = pipeline(&toml, &db.url, mock_config()).await;
    // The run record is written while the request is on its way: when it cannot be, the window
    // fails with the database's reason and none of its rows are loaded.
    let pool = db.pool().await;
    for sql in [
        "CREATE FUNCTION rokt.refuse_runs() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'export_runs is read-only today'; END $$",
        "CREATE TRIGGER refuse_runs BEFORE INSERT ON rokt.export_runs \
         FOR EACH ROW EXECUTE FUNCTION rokt.refuse_runs()",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let report = export::run_job(
        &p.ctx,
        &explicit("campaign_daily", days_ago(30), days_ago(1)),
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(!report.succeeded());
    let WindowOutcome::Failed { error, .. } = &report.windows[0].outcome else {
        panic!("{:?}", report.windows)
    };
    assert!(error.contains("cannot record the run"), "{error}");
    assert!(error.contains("export_runs is read-only today"), "{error}");
    assert!(report.windows.len() >= 3, "30 days in 10-day windows");
    assert!(
        report.windows[1..]
            .iter()
            .all(|w| matches!(w.outcome, WindowOutcome::NotAttempted)),
        "{:?}",
        report.windows
    );
    assert_eq!(
        pg_count(&db, "SELECT count(*) FROM rokt.campaign_daily").await,
        0
    );
    assert_eq!(
        pg_count(&db, "SELECT count(*) FROM rokt.export_runs").await,
        0
    );
    p.mock.stop().await;
}

#[tokio::test]
async fn rows_missing_a_key_field_fail_the_window_with_a_clear_error() {
    let db = TestDb::new().await;
    let p = pipeline(&breakdown_job("noSuchField"), &db.url, mock_config()).await;
    let report = export::run_job(
        &p.ctx,
        &explicit("breakdown", days_ago(2), days_ago(1)),
        &NoProgress,
    )
    .await
    .unwrap();
    let WindowOutcome::Failed { error, .. } = &report.windows[0].outcome else {
        panic!("{report:?}")
    };
    assert!(error.contains("noSuchField"), "{error}");
    assert!(
        error.contains("/reporting/accounts/3141592/campaigns/breakdown"),
        "{error}"
    );
    p.mock.stop().await;
}

#[tokio::test]
async fn a_generic_job_lands_typed_snake_case_columns() {
    let db = TestDb::new().await;
    let p = pipeline(&breakdown_job("groupByValue"), &db.url, mock_config()).await;
    let first = export::run_job(
        &p.ctx,
        &explicit("breakdown", days_ago(3), days_ago(1)),
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(first.succeeded(), "{first:?}");
    assert_eq!(first.windows.len(), 3);
    let pool = db.pool().await;
    let types: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = 'rokt' AND table_name = 'breakdown'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let ty = |c: &str| types.iter().find(|(n, _)| n == c).map(|(_, t)| t.as_str());
    assert_eq!(ty("group_by_value"), Some("text"), "{types:?}");
    assert_eq!(ty("impressions"), Some("numeric"), "{types:?}");
    assert_eq!(ty("window_start"), Some("date"), "{types:?}");
    let again = export::run_job(
        &p.ctx,
        &explicit("breakdown", days_ago(3), days_ago(1)),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(again.rows_written(), 0);
    p.mock.stop().await;
}

#[tokio::test]
async fn generic_jobs_land_the_legacy_transactions_and_campaign_endpoints() {
    let db = TestDb::new().await;
    // The simulated account 3141592's third campaign (ids are deterministic).
    let campaign = "7000001002";
    let jobs = [
        legacy_job(
            "placements",
            "transactions/breakdown",
            "placement",
            "groupByValue",
            1,
        ),
        // The campaign-level breakdown by the partner sub-verticals it ran in (issue 16: the
        // campaign-level groupings are creative, audience, country and subvertical).
        legacy_job(
            "subverticals",
            &format!("campaigns/{campaign}/breakdown"),
            "subvertical",
            "groupByValue",
            1,
        ),
        legacy_job(
            "histogram",
            &format!("campaigns/{campaign}/histogram"),
            "",
            "intervalTimestamp",
            7,
        ),
    ]
    .concat();
    let p = pipeline(&jobs, &db.url, mock_config()).await;
    let (from, to) = (days_ago(3), days_ago(1));
    let total = |report: &str, dims: &[&str], metric: &str| -> i128 {
        let dims: Vec<String> = dims.iter().map(|d| (*d).to_owned()).collect();
        let rows = p.mock.query_rows(
            "3141592",
            report,
            &dims,
            &[metric.to_owned()],
            from,
            to.succ_opt().unwrap(),
            false,
        );
        rows.iter()
            .filter(|r| dims.is_empty() || r["campaign_id"] == campaign)
            .map(|r| micros(&r[metric].to_string()))
            .sum()
    };
    let campaign_impressions = total("campaigns", &["campaign_id"], "impressions");
    assert!(campaign_impressions > 0);
    // (job, rows: items a window times windows, a column, what it sums to in the Query API)
    let cases = [
        (
            "placements",
            3 * 3,
            "referrals",
            total("transactions", &[], "referrals"),
        ),
        ("subverticals", 8 * 3, "impressions", campaign_impressions),
        ("histogram", 3, "impressions", campaign_impressions),
    ];
    for (job, rows, column, expected) in cases {
        let run = export::run_job(&p.ctx, &explicit(job, from, to), &NoProgress)
            .await
            .unwrap();
        assert!(run.succeeded(), "{job}: {run:?}");
        let count = pg_count(&db, &format!("SELECT count(*) FROM rokt.{job}")).await;
        assert_eq!(count, rows, "{job}");
        let sum = pg_sum(&db, &format!("SELECT sum({column})::text FROM rokt.{job}")).await;
        assert_eq!(sum, expected, "{job}: sum of {column}");
    }
    // By placement, Rokt has no page-level metrics: the columns are there, every value NULL.
    let page_level =
        "SELECT count(transactions) + count(purchases) + count(rpt) FROM rokt.placements";
    assert_eq!(pg_count(&db, page_level).await, 0);
    p.mock.stop().await;
}

#[tokio::test]
async fn names_with_quotes_tabs_emoji_and_cjk_round_trip() {
    let db = TestDb::new().await;
    let p = pipeline(CAMPAIGNS, &db.url, mock_config()).await;
    let day = days_ago(1);
    assert!(
        export::run_job(&p.ctx, &explicit("campaign_daily", day, day), &NoProgress)
            .await
            .unwrap()
            .succeeded()
    );
    let dims = vec!["campaign_id".to_owned(), "campaign_name".to_owned()];
    let served: std::collections::BTreeSet<String> = p
        .mock
        .query_rows(
            "3141592",
            "campaigns",
            &dims,
            &["impressions".to_owned()],
            day,
            today(),
            true,
        )
        .iter()
        .map(|r| r["campaign_name"].as_str().unwrap().to_owned())
        .collect();
    let pool = db.pool().await;
    let stored: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT campaign_name FROM rokt.campaign_daily WHERE account_id = '3141592'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let stored: std::collections::BTreeSet<String> = stored.into_iter().map(|(s,)| s).collect();
    assert_eq!(stored, served);
    assert!(
        stored
            .iter()
            .any(|s| s.contains('\t') || s.contains('"') || !s.is_ascii()),
        "{stored:?}"
    );
    p.mock.stop().await;
}

#[tokio::test]
async fn sqlite_backfill_matches_the_api_too() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rokt.db").display());
    let p = pipeline(CAMPAIGNS, &url, mock_config()).await;
    let (from, to) = (days_ago(15), days_ago(1));
    let request = explicit("campaign_daily", from, to);
    let first = export::run_job(&p.ctx, &request, &NoProgress)
        .await
        .unwrap();
    assert!(first.succeeded(), "{first:?}");
    let second = export::run_job(&p.ctx, &request, &NoProgress)
        .await
        .unwrap();
    assert_eq!(second.rows_written(), 0);
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (impressions, rows): (i64, i64) =
        sqlx::query_as("SELECT CAST(sum(impressions) AS INTEGER), count(*) FROM campaign_daily")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        i128::from(impressions) * 1_000_000,
        api_sum(&p, "impressions", from, to)
    );
    assert_eq!(u64::try_from(rows).unwrap(), first.rows_received());
    p.mock.stop().await;
}

/// Waits (bounded) until `sql` returns at least `n`.
async fn wait_for_count(db: &TestDb, sql: &str, n: i64) {
    let pool = db.pool().await;
    for _ in 0..600 {
        let count: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap_or(0);
        if count >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {sql} to reach {n}");
}

// Multi-threaded: the simulated API runs in this process and must keep serving while the test waits
// for the child processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_backfill_leaves_whole_windows_and_a_rerun_completes() {
    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig {
        today: today(),
        faults: Faults {
            latency_ms: 400,
            ..Faults::default()
        },
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let toml = one_account(CAMPAIGNS).replace("window_days = 10", "window_days = 3");
    let (_dir, path) = crate::helpers::config_file(&toml);
    let base_url = mock.base_url();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("ROKT_API_BASE_URL", base_url.as_str()),
        ("ROKT_APP_ID", "demo-app-id"),
        ("ROKT_APP_SECRET", "demo-app-secret"),
    ];
    let (from, to) = (days_ago(30).to_string(), days_ago(1).to_string());
    let args = [
        "--config",
        path.to_str().unwrap(),
        "--run-now",
        "campaign_daily",
        "--from",
        &from,
        "--to",
        &to,
    ];
    let mut child = std::process::Command::new(crate::helpers::binary())
        .args(args)
        .env_clear()
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(
        &db,
        "SELECT count(*) FROM rokt.export_runs WHERE status = 'succeeded'",
        2,
    )
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let pool = db.pool().await;
    // Every committed window is whole; nothing beyond them; the mark is not ahead of the data.
    let windows: Vec<(NaiveDate, NaiveDate)> = sqlx::query_as(
        "SELECT window_start, window_end FROM rokt.export_runs WHERE status = 'succeeded' ORDER BY window_start",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (start, end) in &windows {
        let served = served_rows(&mock, *start, end.succ_opt().unwrap());
        let (stored,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM rokt.campaign_daily WHERE date BETWEEN $1 AND $2")
                .bind(start)
                .bind(end)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(
            usize::try_from(stored).unwrap(),
            served,
            "window {start}..{end} is whole"
        );
    }
    let last_committed = windows.last().unwrap().1;
    let (beyond,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM rokt.campaign_daily WHERE date > $1")
            .bind(last_committed)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(beyond, 0, "no partial window");
    let (mark,): (NaiveDate,) = sqlx::query_as("SELECT high_water_date FROM rokt.export_state")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        mark <= last_committed,
        "the mark {mark} is not ahead of the data {last_committed}"
    );

    let running = "SELECT count(*) FROM rokt.export_runs WHERE status = 'running'";
    assert!(
        pg_count(&db, running).await >= 1,
        "the killed run left its window in flight as running"
    );

    // A rerun of the whole range completes, with exactly the API's rows, and closes the killed
    // run's rows as failed.
    mock.set_faults(Faults::default());
    let (args_owned, env_owned): (Vec<String>, Vec<(String, String)>) = (
        args.iter().map(|a| a.to_string()).collect(),
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args_owned.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env_owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        crate::helpers::run_binary(&args, &env)
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served: usize = served_rows(&mock, days_ago(30), today());
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM rokt.campaign_daily")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        usize::try_from(stored).unwrap(),
        served,
        "no duplicates, nothing missing"
    );
    assert_eq!(pg_count(&db, running).await, 0);
    let abandoned = format!(
        "SELECT count(*) FROM rokt.export_runs WHERE status = 'failed' AND error = '{}'",
        rokt_export::store::STALE_RUN_ERROR.replace('\'', "''")
    );
    assert!(pg_count(&db, &abandoned).await >= 1);
    mock.stop().await;
}

#[tokio::test]
async fn demo_runs_end_to_end_with_no_setup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        crate::helpers::shipped_config(),
        dir.path().join("jobs.toml"),
    )
    .unwrap();
    let out = std::process::Command::new(crate::helpers::binary())
        .args(["demo", "--days", "3"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("what landed"), "{stdout}");
    assert!(stdout.contains("SELECT"), "{stdout}");
    let url = format!(
        "sqlite://{}",
        dir.path().join("rokt-export-demo.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    for table in [
        "campaign_daily",
        "creative_daily",
        "campaign_breakdown_legacy",
    ] {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(n > 0, "{table} is empty");
    }
    let (demo_runs,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM export_runs WHERE trigger = 'demo' AND status = 'succeeded'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(demo_runs >= 3);
}

// Multi-threaded: the simulated API in this process keeps serving while the test waits on the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_mid_run_fails_whole_windows_and_the_next_run_catches_up() {
    let db = TestDb::new().await;
    let toml = one_account(CAMPAIGNS).replace("window_days = 10", "window_days = 2");
    let p = Arc::new(pipeline(&toml, &db.url, mock_config()).await);
    p.mock.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let (from, to) = (days_ago(20), days_ago(1));
    let run = {
        let p = Arc::clone(&p);
        tokio::spawn(async move {
            export::run_job(&p.ctx, &explicit("campaign_daily", from, to), &NoProgress).await
        })
    };
    wait_for_count(
        &db,
        "SELECT count(*) FROM rokt.export_runs WHERE status = 'succeeded'",
        2,
    )
    .await;

    // The database goes away: no new connections, and every open one is cut.
    let admin = sqlx::PgPool::connect(&crate::helpers::with_database(&db.url, "postgres"))
        .await
        .unwrap();
    let off = format!(
        "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS false",
        db.name
    );
    sqlx::query(&off).execute(&admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&db.name)
        .execute(&admin)
        .await
        .unwrap();
    let report = run.await.unwrap().unwrap();
    assert!(
        !report.succeeded(),
        "the run cannot succeed without its database"
    );
    let failed = report
        .windows
        .iter()
        .find(|w| matches!(w.outcome, WindowOutcome::Failed { .. }))
        .unwrap();
    let WindowOutcome::Failed { error, .. } = &failed.outcome else {
        unreachable!()
    };
    assert!(error.contains("database"), "{error}");

    // It comes back: what committed is whole, the mark is not ahead of it, and the next run catches up.
    let on = format!("ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS true", db.name);
    sqlx::query(&on).execute(&admin).await.unwrap();
    let pool = db.pool().await;
    let (mark,): (NaiveDate,) = sqlx::query_as("SELECT high_water_date FROM rokt.export_state")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (beyond,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM rokt.campaign_daily WHERE date > $1")
            .bind(mark)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(beyond, 0, "no rows beyond the last committed window");
    p.mock.set_faults(Faults::default());
    let resumed = RunRequest {
        job: "campaign_daily".into(),
        range: DayRange::Explicit {
            from: None,
            to: Some(to),
        },
        accounts: Vec::new(),
        trigger: Trigger::RunNow,
        stop: Default::default(),
        reload: false,
        allow_empty: false,
    };
    let report = export::run_job(&p.ctx, &resumed, &NoProgress)
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    let served = served_rows(&p.mock, from, to.succ_opt().unwrap());
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM rokt.campaign_daily")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(usize::try_from(stored).unwrap(), served);
    pool.close().await;
    admin.close().await;
}

#[tokio::test]
async fn migrate_and_status_work_from_the_command_line() {
    let db = TestDb::new().await;
    let (_dir, path) = crate::helpers::config_file(CAMPAIGNS);
    let env = [("DATABASE_URL", db.url.as_str())];
    let out = crate::helpers::run_binary(&["--config", path.to_str().unwrap(), "migrate"], &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created table campaign_daily"));
    let out = crate::helpers::run_binary(&["--config", path.to_str().unwrap(), "migrate"], &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("table campaign_daily is up to date"));

    let out = crate::helpers::run_binary(&["--config", path.to_str().unwrap(), "status"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("campaign_daily") && l.contains("never")),
        "{stdout}"
    );

    // After a run, status shows it.
    let p = pipeline(CAMPAIGNS, &db.url, mock_config()).await;
    let day = days_ago(1);
    assert!(
        export::run_job(&p.ctx, &explicit("campaign_daily", day, day), &NoProgress)
            .await
            .unwrap()
            .succeeded()
    );
    let out = crate::helpers::run_binary(&["--config", path.to_str().unwrap(), "status"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("campaign_daily"))
        .unwrap();
    assert!(
        line.contains("succeeded") && line.contains(&day.to_string()),
        "{stdout}"
    );
    p.mock.stop().await;

    // The database unreachable: exit 69 after retries.
    let out = crate::helpers::run_binary(
        &["--config", path.to_str().unwrap(), "status"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")],
    );
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn run_now_exit_codes_follow_the_contract() {
    let db = TestDb::new().await;
    let mock = MockServer::start(mock_config()).await.unwrap();
    let (_dir, path) = crate::helpers::config_file(CAMPAIGNS);
    let base = mock.base_url();
    let good = [
        ("DATABASE_URL", db.url.as_str()),
        ("ROKT_API_BASE_URL", base.as_str()),
        ("ROKT_APP_ID", "demo-app-id"),
        ("ROKT_APP_SECRET", "demo-app-secret"),
    ];
    let config = path.to_str().unwrap().to_owned();
    let run = move |args: Vec<String>, env: Vec<(String, String)>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            crate::helpers::run_binary(&args, &env)
        })
    };
    let owned = |env: &[(&str, &str)]| {
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let args = |extra: &[&str]| {
        let mut a = vec!["--config".to_owned(), config.clone()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let day = days_ago(1).to_string();

    let ok = run(
        args(&["--run-now", "campaign_daily", "--from", &day, "--to", &day]),
        owned(&good),
    )
    .await
    .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("2 windows: 2 succeeded"));

    let unknown = run(args(&["run-now", "nope"]), owned(&good)).await.unwrap();
    assert_eq!(unknown.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("campaign_daily"));

    let mut wrong = owned(&good);
    wrong.retain(|(k, _)| k != "ROKT_APP_SECRET");
    wrong.push(("ROKT_APP_SECRET".into(), "wrong-SECRET".into()));
    let rejected = run(
        args(&["--run-now", "campaign_daily", "--from", &day, "--to", &day]),
        wrong,
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&rejected.stderr);
    assert_eq!(rejected.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("ROKT_APP_SECRET") && !stderr.contains("wrong-SECRET"),
        "{stderr}"
    );

    let mut missing = owned(&good);
    missing.retain(|(k, _)| !k.starts_with("ROKT_APP"));
    let no_credentials = run(args(&["--run-now", "campaign_daily"]), missing)
        .await
        .unwrap();
    assert_eq!(no_credentials.status.code(), Some(78));

    let mut down = owned(&good);
    down.retain(|(k, _)| k != "ROKT_API_BASE_URL");
    down.push(("ROKT_API_BASE_URL".into(), "http://127.0.0.1:1".into()));
    let unavailable = run(
        args(&["--run-now", "campaign_daily", "--from", &day, "--to", &day]),
        down,
    )
    .await
    .unwrap();
    assert_eq!(
        unavailable.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&unavailable.stderr)
    );
    mock.stop().await;
}

//! Numbers that stay right when Rokt's data changes (issue 15): campaigns renamed, rows that
//! vanish, answers without rows, tables made when names were part of the key, each account in its
//! own zone and currency, an API that refuses an `endDate` in the future, a process killed while a
//! window deletes. Real Postgres (and SQLite), the simulated API over HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Days, NaiveDate, Utc};
use rokt_export::api::ApiClient;
use rokt_export::config::{Config, Env};
use rokt_export::export::{self, Context, DayRange, NoProgress, RunRequest, RunResult};
use rokt_export::mock::{Faults, MockConfig, MockServer, NoData};
use rokt_export::store::{Store, Trigger};
use sqlx::Row as _;

use crate::helpers::{TestDb, config_file, run_binary};

const US: &str = "3141592";
const AU: &str = "2718281";

/// Campaigns and creatives, a name beside each id: the grain is (campaign_id, creative_id). Each
/// account in its own zone and currency (no `timezone`/`currency`).
const CREATIVES: &str = r#"
[defaults]
lookback_days = 7
window_days = 10

[[jobs]]
name = "creative_daily"
schedule = "15 5 * * *"
accounts = ["3141592", "2718281"]
report = "campaigns"
dimensions = ["campaign_id", "campaign_name", "creative_id", "creative_name"]
metrics = ["impressions", "referrals", "gross_cost", "acquisitions"]
"#;

const METRICS: [&str; 4] = ["impressions", "referrals", "gross_cost", "acquisitions"];

fn days_ago(n: u64) -> NaiveDate {
    Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(n))
        .unwrap()
}

struct Pipeline {
    mock: MockServer,
    ctx: Context,
}

async fn pipeline(toml: &str, database_url: &str) -> Pipeline {
    rokt_export::tls::install_crypto_provider();
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let env = Env::default()
        .with("DATABASE_URL", database_url)
        .with("ROKT_API_BASE_URL", &mock.base_url());
    let config = Config::from_toml(std::path::Path::new("jobs.toml"), toml, &env).unwrap();
    let store = Store::connect(&config.database).await.unwrap();
    store.migrate().await.unwrap();
    let api = ApiClient::new(&config.api, mock.credentials()).unwrap();
    Pipeline {
        mock,
        ctx: Context::new(Arc::new(config), api, store),
    }
}

fn between(job: &str, from: NaiveDate, to: NaiveDate) -> RunRequest {
    let mut r = RunRequest::new(job, Trigger::RunNow);
    r.range = DayRange::Explicit {
        from: Some(from),
        to: Some(to),
    };
    r
}

async fn run(p: &Pipeline, request: &RunRequest) -> RunResult {
    let result = export::run_job(&p.ctx, request, &NoProgress).await.unwrap();
    assert!(result.succeeded(), "{result:?}");
    result
}

/// A decimal as an exact number of millionths.
fn micros(s: &str) -> i128 {
    let s = s.trim_matches('"');
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut frac = frac.to_owned();
    frac.truncate(6);
    while frac.len() < 6 {
        frac.push('0');
    }
    let v = int.parse::<i128>().unwrap() * 1_000_000 + frac.parse::<i128>().unwrap();
    if neg { -v } else { v }
}

/// What the simulated API answers for `dims` over `[from, to]`, per (account, day): each metric's
/// sum in millionths, and the rows; in each account's own zone and currency.
fn api_days(
    mock: &MockServer,
    dims: &[&str],
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<(String, String), (Vec<i128>, usize)> {
    let dims: Vec<String> = dims.iter().map(|d| (*d).to_owned()).collect();
    let metrics: Vec<String> = METRICS.iter().map(|m| (*m).to_owned()).collect();
    let mut out: BTreeMap<(String, String), (Vec<i128>, usize)> = BTreeMap::new();
    for account in [US, AU] {
        for row in mock.query_rows(
            account,
            "campaigns",
            &dims,
            &metrics,
            from,
            to.succ_opt().unwrap(),
            true,
        ) {
            let day = row["datetime"].as_str().unwrap()[..10].to_owned();
            let entry = out
                .entry((account.to_owned(), day))
                .or_insert((vec![0; METRICS.len()], 0));
            for (i, m) in METRICS.iter().enumerate() {
                entry.0[i] += micros(&row[*m].to_string());
            }
            entry.1 += 1;
        }
    }
    out
}

/// The same per (account, day) from a Postgres table.
async fn table_days(
    db: &TestDb,
    table: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<(String, String), (Vec<i128>, usize)> {
    let pool = db.pool().await;
    let sums: Vec<String> = METRICS.iter().map(|m| format!("sum({m})::text")).collect();
    let sql = format!(
        "SELECT account_id, date::text, count(*), {} FROM rokt.{table} \
         WHERE date BETWEEN $1 AND $2 GROUP BY 1, 2",
        sums.join(", ")
    );
    let rows = sqlx::query(&sql)
        .bind(from)
        .bind(to)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| {
            let count: i64 = r.get(2);
            let sums = (0..METRICS.len())
                .map(|i| micros(&r.get::<String, _>(3 + i)))
                .collect();
            (
                (r.get(0), r.get(1)),
                (sums, usize::try_from(count).unwrap()),
            )
        })
        .collect()
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    let pool = db.pool().await;
    let v: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    v
}

async fn primary_key(db: &TestDb, table: &str) -> Vec<String> {
    let pool = db.pool().await;
    let key: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_constraint c \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
         WHERE c.conrelid = to_regclass($1) AND c.contype = 'p' \
         ORDER BY array_position(c.conkey, a.attnum)",
    )
    .bind(format!("rokt.{table}"))
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    key
}

#[tokio::test]
async fn a_rename_leaves_one_row_per_grain_and_sums_equal_the_apis() {
    let db = TestDb::new().await;
    let p = pipeline(CREATIVES, &db.url).await;
    let (from, to) = (days_ago(20), days_ago(1));
    run(&p, &between("creative_daily", from, to)).await;
    assert_eq!(
        primary_key(&db, "creative_daily").await,
        ["account_id", "date", "campaign_id", "creative_id"],
        "names are not part of the key"
    );

    // Two campaigns renamed: a live report shows the new name on every day, past days included.
    let campaigns = p.mock.campaign_ids(US);
    for (i, id) in campaigns.iter().take(2).enumerate() {
        assert!(
            p.mock
                .rename_campaign(US, id, &format!("Renamed {i} \"again\""))
        );
    }
    let again = run(&p, &between("creative_daily", from, to)).await;
    assert!(again.rows_written() > 0, "the renamed rows were rewritten");
    assert_eq!(again.rows_deleted(), 0);

    let duplicates = scalar(
        &db,
        "SELECT count(*) FROM (SELECT 1 FROM rokt.creative_daily \
         GROUP BY account_id, date, campaign_id, creative_id HAVING count(*) > 1) d",
    )
    .await;
    assert_eq!(duplicates, 0);
    let dims = [
        "campaign_id",
        "campaign_name",
        "creative_id",
        "creative_name",
    ];
    assert_eq!(
        table_days(&db, "creative_daily", from, to).await,
        api_days(&p.mock, &dims, from, to),
        "per account and day: every metric's sum and the row count equal the API's"
    );
    let old_name = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM rokt.creative_daily WHERE campaign_id = '{}' \
             AND campaign_name NOT LIKE 'Renamed 0%'",
            campaigns[0]
        ),
    )
    .await;
    assert_eq!(old_name, 0, "every day shows the new name");
    p.mock.stop().await;
}

#[tokio::test]
async fn rows_the_api_no_longer_has_are_deleted_and_counted() {
    let db = TestDb::new().await;
    let p = pipeline(CREATIVES, &db.url).await;
    let (from, to) = (days_ago(20), days_ago(1));
    run(&p, &between("creative_daily", from, to)).await;
    let creative = p.mock.creative_ids(US)[3].clone();
    let invalid_from = days_ago(6);
    let vanishing = format!(
        "SELECT count(*) FROM rokt.creative_daily WHERE account_id = '{US}' \
         AND creative_id = '{creative}' AND date >= '{invalid_from}'"
    );
    let before = scalar(&db, &vanishing).await;
    assert!(before > 0);
    assert!(p.mock.invalidate_creative(US, &creative, invalid_from));

    let recent = run(&p, &between("creative_daily", days_ago(9), to)).await;
    assert_eq!(recent.rows_deleted(), u64::try_from(before).unwrap());
    assert_eq!(scalar(&db, &vanishing).await, 0);
    let recorded = scalar(
        &db,
        "SELECT coalesce(sum(rows_deleted), 0)::bigint FROM rokt.export_runs",
    )
    .await;
    assert_eq!(recorded, before, "export_runs.rows_deleted counts them");
    let dims = [
        "campaign_id",
        "campaign_name",
        "creative_id",
        "creative_name",
    ];
    assert_eq!(
        table_days(&db, "creative_daily", from, to).await,
        api_days(&p.mock, &dims, from, to)
    );
    // An unchanged re-read deletes nothing and writes nothing.
    let same = run(&p, &between("creative_daily", days_ago(9), to)).await;
    assert_eq!((same.rows_written(), same.rows_deleted()), (0, 0));
    p.mock.stop().await;
}

#[tokio::test]
async fn an_answer_without_rows_keeps_the_days_unless_told_otherwise() {
    let db = TestDb::new().await;
    let p = pipeline(CREATIVES, &db.url).await;
    let (from, to) = (days_ago(12), days_ago(1));
    run(&p, &between("creative_daily", from, to)).await;
    let rows = "SELECT count(*) FROM rokt.creative_daily";
    let before = scalar(&db, rows).await;

    for shape in [NoData::Missing, NoData::Null] {
        p.mock.set_faults(Faults {
            answers_without_data: Some(shape),
            ..Faults::default()
        });
        let empty = run(&p, &between("creative_daily", from, to)).await;
        assert_eq!(scalar(&db, rows).await, before, "{shape:?}: rows kept");
        assert_eq!(empty.rows_deleted(), 0);
        assert_eq!(empty.empty_answers(), 4, "two windows of two accounts");
        assert!(
            empty.warnings().iter().all(|w| w.contains("no rows")),
            "{:?}",
            empty.warnings()
        );
    }
    let warned = scalar(
        &db,
        "SELECT count(*) FROM rokt.export_runs WHERE warnings LIKE '%no rows%'",
    )
    .await;
    assert_eq!(warned, 8, "recorded on each run");

    // Told so, an empty answer empties its days.
    let mut emptying = between("creative_daily", days_ago(3), to);
    emptying.allow_empty = true;
    let emptied = run(&p, &emptying).await;
    assert!(emptied.rows_deleted() > 0);
    let left = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM rokt.creative_daily WHERE date >= '{}'",
            days_ago(3)
        ),
    )
    .await;
    assert_eq!(left, 0);
    p.mock.stop().await;
}

/// A job whose key still holds the campaign's name, as every table made before the grain key.
const NAMED_KEY: &str = r#"
[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592"]
report = "campaigns"
timezone = "UTC"
currency = "USD"
dimensions = ["campaign_id", "campaign_name"]
key = ["campaign_id", "campaign_name"]
metrics = ["impressions", "acquisitions"]
"#;

/// What the release before the grain key left behind after a rename: besides each row of
/// `campaign`'s last four days, a twin under its old name, loaded earlier.
fn old_twins_sql(table: &str, campaign: &str, since: NaiveDate, older: &str) -> String {
    format!(
        "INSERT INTO {table} (account_id, date, campaign_id, campaign_name, impressions, \
         acquisitions, currency, timezone, _extra, _run_id, _loaded_at, _row_hash) \
         SELECT account_id, date, campaign_id, 'Its Old Name', impressions + 1, acquisitions, \
         currency, timezone, _extra, _run_id, {older}, NULL FROM {table} \
         WHERE campaign_id = '{campaign}' AND date >= '{since}'"
    )
}

#[tokio::test]
async fn a_table_keyed_on_names_is_brought_to_its_grain_keeping_the_newest_rows() {
    let db = TestDb::new().await;
    let (from, to) = (days_ago(10), days_ago(1));
    let old = pipeline(NAMED_KEY, &db.url).await;
    run(&old, &between("campaign_daily", from, to)).await;
    assert_eq!(
        primary_key(&db, "campaign_daily").await,
        ["account_id", "date", "campaign_id", "campaign_name"]
    );
    let renamed = old.mock.campaign_ids(US)[1].clone();
    old.mock.stop().await;
    let pool = db.pool().await;
    let sql = old_twins_sql(
        "rokt.campaign_daily",
        &renamed,
        days_ago(4),
        "_loaded_at - interval '1 day'",
    );
    sqlx::query(&sql).execute(&pool).await.unwrap();
    pool.close().await;
    let total = scalar(&db, "SELECT count(*) FROM rokt.campaign_daily").await;
    let grains = scalar(
        &db,
        "SELECT count(*) FROM (SELECT DISTINCT account_id, date, campaign_id \
         FROM rokt.campaign_daily) g",
    )
    .await;
    assert_eq!(total - grains, 4, "four days hold the campaign twice");

    // The new release: the job's key is its grain; the first run upgrades the table.
    let grain_job = NAMED_KEY.replace("key = [\"campaign_id\", \"campaign_name\"]\n", "");
    let new = pipeline(&grain_job, &db.url).await;
    run(&new, &between("campaign_daily", to, to)).await;
    assert_eq!(
        primary_key(&db, "campaign_daily").await,
        ["account_id", "date", "campaign_id"]
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM rokt.campaign_daily").await,
        grains,
        "one row per grain, none without a twin lost"
    );
    let old_names = scalar(
        &db,
        "SELECT count(*) FROM rokt.campaign_daily WHERE campaign_name = 'Its Old Name'",
    )
    .await;
    assert_eq!(old_names, 0, "of two rows of a grain, the newest was kept");
    // A name may be NULL now that it is an ordinary column.
    let nullable = scalar(
        &db,
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'rokt' \
         AND table_name = 'campaign_daily' AND column_name = 'campaign_name' AND is_nullable = 'YES'",
    )
    .await;
    assert_eq!(nullable, 1);
    new.mock.stop().await;
}

#[tokio::test]
async fn on_sqlite_a_table_keyed_on_names_is_brought_to_its_grain_too() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rokt.db").display());
    let (from, to) = (days_ago(6), days_ago(1));
    let old = pipeline(NAMED_KEY, &url).await;
    run(&old, &between("campaign_daily", from, to)).await;
    let renamed = old.mock.campaign_ids(US)[0].clone();
    old.ctx.store.close().await;
    old.mock.stop().await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let sql = old_twins_sql(
        "campaign_daily",
        &renamed,
        days_ago(4),
        "'2000-01-01T00:00:00+00:00'",
    );
    sqlx::query(&sql).execute(&pool).await.unwrap();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let grains = count(
        "SELECT count(*) FROM (SELECT DISTINCT account_id, date, campaign_id FROM campaign_daily)",
    )
    .await;
    assert_eq!(
        count("SELECT count(*) FROM campaign_daily").await,
        grains + 4
    );

    let grain_job = NAMED_KEY.replace("key = [\"campaign_id\", \"campaign_name\"]\n", "");
    let new = pipeline(&grain_job, &url).await;
    run(&new, &between("campaign_daily", to, to)).await;
    assert_eq!(count("SELECT count(*) FROM campaign_daily").await, grains);
    assert_eq!(
        count("SELECT count(*) FROM campaign_daily WHERE campaign_name = 'Its Old Name'").await,
        0,
        "the newest row of each grain was kept"
    );
    new.mock.stop().await;
}

#[tokio::test]
async fn each_account_is_read_in_its_own_zone_and_currency() {
    let db = TestDb::new().await;
    let p = pipeline(CREATIVES, &db.url).await;
    let (from, to) = (days_ago(12), days_ago(2));
    run(&p, &between("creative_daily", from, to)).await;
    let pool = db.pool().await;
    let units: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT DISTINCT account_id, timezone, currency FROM rokt.creative_daily ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        units,
        [
            (AU.into(), "Australia/Sydney".into(), "AUD".into()),
            (US.into(), "America/New_York".into(), "USD".into()),
        ]
    );
    let state: Vec<(String, String, String)> =
        sqlx::query_as("SELECT account_id, timezone, currency FROM rokt.export_state ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(state, units, "the state remembers them");
    pool.close().await;
    let dims = [
        "campaign_id",
        "campaign_name",
        "creative_id",
        "creative_name",
    ];
    let api = api_days(&p.mock, &dims, from, to);
    assert_eq!(table_days(&db, "creative_daily", from, to).await, api);
    // Sydney's days are not UTC's: the same day asked in UTC and USD has other numbers.
    let utc = p.mock.query_rows_in(
        AU,
        "campaigns",
        &[],
        &["impressions".to_owned()],
        to,
        to.succ_opt().unwrap(),
        "UTC",
        "USD",
    );
    let utc_impressions = micros(&utc[0]["impressions"].to_string());
    assert_ne!(api[&(AU.to_owned(), to.to_string())].0[0], utc_impressions);
    p.mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_would_change_an_accounts_zone_is_refused_until_reloaded() {
    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let job = |units: &str| {
        format!(
            "[[jobs]]\nname = \"campaign_daily\"\nschedule = \"15 5 * * *\"\naccounts = [\"{AU}\"]\n\
             report = \"campaigns\"\ndimensions = [\"campaign_id\"]\nmetrics = [\"impressions\"]\n{units}"
        )
    };
    let env = |config: &std::path::Path| {
        vec![
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("ROKT_API_BASE_URL".to_owned(), mock.base_url()),
            ("ROKT_APP_ID".to_owned(), "demo-app-id".to_owned()),
            ("ROKT_APP_SECRET".to_owned(), "demo-app-secret".to_owned()),
            (
                "ROKT_EXPORT_CONFIG".to_owned(),
                config.display().to_string(),
            ),
        ]
    };
    let from = days_ago(5).to_string();
    let to = days_ago(1).to_string();
    let run_now = |config: &std::path::Path, extra: &[&str]| {
        let env = env(config);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut args = vec!["--run-now", "campaign_daily", "--from", &from, "--to", &to];
        args.extend_from_slice(extra);
        run_binary(&args, &env)
    };
    let (_dir, utc) = config_file(&job("timezone = \"UTC\"\ncurrency = \"USD\"\n"));
    let out = tokio::task::block_in_place(|| run_now(&utc, &[]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Without units the account's own would be read: Sydney and AUD, into a table of UTC and USD.
    let (_dir2, own) = config_file(&job(""));
    let out = tokio::task::block_in_place(|| run_now(&own, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{stdout}\n{stderr}");
    let said = format!("{stdout}{stderr}");
    for needle in [
        "UTC and USD",
        "Australia/Sydney and AUD",
        "--reload",
        "another `table`",
    ] {
        assert!(said.contains(needle), "{needle} in {said}");
    }
    let mixed = scalar(
        &db,
        "SELECT count(DISTINCT timezone) FROM rokt.campaign_daily",
    )
    .await;
    assert_eq!(mixed, 1, "nothing was loaded");

    let out = tokio::task::block_in_place(|| run_now(&own, &["--reload"]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let pool = db.pool().await;
    let units: Vec<(String, String)> =
        sqlx::query_as("SELECT DISTINCT timezone, currency FROM rokt.campaign_daily")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(units, [("Australia/Sydney".into(), "AUD".into())]);
    pool.close().await;
    mock.stop().await;
}

#[tokio::test]
async fn an_api_that_refuses_a_future_end_date_gets_windows_ending_today() {
    let db = TestDb::new().await;
    let toml = r#"
[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592"]
report = "campaigns"
timezone = "UTC"
currency = "USD"
dimensions = ["campaign_id"]
metrics = ["impressions"]
window_days = 3
"#;
    let p = pipeline(toml, &db.url).await;
    p.mock.set_faults(Faults {
        refuse_future_end_date: true,
        ..Faults::default()
    });
    let today = Utc::now().date_naive();
    let result = run(&p, &between("campaign_daily", days_ago(5), today)).await;
    let last_day = scalar(
        &db,
        "SELECT (max(date) = current_date - 1)::int::bigint FROM rokt.campaign_daily",
    )
    .await;
    assert_eq!(last_day, 1, "up to yesterday");
    assert!(
        result.warnings().iter().any(|w| w.contains("future")),
        "{:?}",
        result.warnings()
    );
    // Remembered: the next run asks no future end at all.
    p.mock.reset_counters();
    run(&p, &between("campaign_daily", days_ago(1), today)).await;
    assert_eq!(
        p.mock.counters().api_requests_by_status.get(&400),
        None,
        "{:?}",
        p.mock.counters()
    );
    p.mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_while_its_window_deletes_leaves_all_or_nothing() {
    let db = TestDb::new().await;
    let toml = r#"
[[jobs]]
name = "creative_daily"
schedule = "15 5 * * *"
accounts = ["3141592"]
report = "campaigns"
timezone = "UTC"
currency = "USD"
dimensions = ["campaign_id", "creative_id"]
metrics = ["impressions", "acquisitions"]
"#;
    let p = pipeline(toml, &db.url).await;
    let (from, to) = (days_ago(6), days_ago(1));
    run(&p, &between("creative_daily", from, to)).await;
    let fingerprint = "SELECT count(*) || ':' || sum(impressions) || ':' || sum(acquisitions) \
                       FROM rokt.creative_daily";
    let pool = db.pool().await;
    let before: String = sqlx::query_scalar(fingerprint)
        .fetch_one(&pool)
        .await
        .unwrap();

    // The next load both rewrites rows (conversions restated) and deletes some (a creative gone).
    p.mock.advance_time(1);
    let creative = p.mock.creative_ids(US)[2].clone();
    assert!(p.mock.invalidate_creative(US, &creative, days_ago(3)));
    // Hold the rows that will be deleted, so the window's DELETE waits inside its transaction.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(
        "SELECT 1 FROM rokt.creative_daily WHERE creative_id = $1 AND date >= $2 FOR UPDATE",
    )
    .bind(&creative)
    .bind(days_ago(3))
    .fetch_all(&mut *holder)
    .await
    .unwrap();

    let (_dir, config) = config_file(toml);
    let mut child = std::process::Command::new(crate::helpers::binary())
        .args(["--config", config.to_str().unwrap()])
        .args([
            "--run-now",
            "creative_daily",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("ROKT_API_BASE_URL", p.mock.base_url())
        .env("ROKT_APP_ID", "demo-app-id")
        .env("ROKT_APP_SECRET", "demo-app-secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM%'";
    let mut seen = false;
    for _ in 0..600 {
        let n: i64 = sqlx::query_scalar(waiting).fetch_one(&pool).await.unwrap();
        if n > 0 {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "the window never reached its delete");
    // SIGKILL: no clean-up of any kind.
    child.kill().unwrap();
    let _ = child.wait();
    holder.rollback().await.unwrap();
    // The killed backend's transaction is rolled back by the server.
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar(waiting).fetch_one(&pool).await.unwrap();
        if n == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let after: String = sqlx::query_scalar(fingerprint)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        after, before,
        "neither the rewritten nor the deleted rows of the window"
    );
    pool.close().await;
    p.mock.stop().await;
}

//! Values and situations Postgres refuses or that would hang a run (issue 19, items 9 to 12): a NUL
//! in a text, a number beyond `numeric`, an over-long key, deep nesting, system column names, an
//! endpoint whose rows bring ever more fields, DDL behind an analyst's open transaction, a window
//! that outlasts its deadline. Real Postgres; the API is a small hostile server or the simulated
//! one over HTTP.

use std::sync::Arc;

use chrono::NaiveDate;
use rokt_export::api::ApiClient;
use rokt_export::config::{Config, Credentials, Env};
use rokt_export::export::{
    self, Context, DayRange, NoProgress, RunRequest, RunResult, WindowOutcome,
};
use rokt_export::store::{Store, Trigger};

use crate::helpers::TestDb;
use crate::hostile::{Hostile, json, token_answer};

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn run_against(base_url: &str, db: &TestDb, toml: &str) -> RunResult {
    run_with(base_url, db, toml, Credentials::new("app", "secret")).await
}

async fn run_with(base_url: &str, db: &TestDb, toml: &str, credentials: Credentials) -> RunResult {
    rokt_export::tls::install_crypto_provider();
    let env = Env::default()
        .with("DATABASE_URL", &db.url)
        .with("ROKT_API_BASE_URL", base_url);
    let mut config = Config::from_toml(std::path::Path::new("jobs.toml"), toml, &env).unwrap();
    config.api.max_retries = 0;
    let store = Store::connect(&config.database).await.unwrap();
    store.migrate().await.unwrap();
    let api = ApiClient::new(&config.api, credentials).unwrap();
    let ctx = Context::new(Arc::new(config), api, store.clone());
    let job = ctx.config.jobs[0].name.clone();
    let mut request = RunRequest::new(job, Trigger::RunNow);
    request.range = DayRange::Explicit {
        from: Some(day("2026-03-01")),
        to: Some(day("2026-03-01")),
    };
    let result = export::run_job(&ctx, &request, &NoProgress).await.unwrap();
    store.close().await;
    result
}

/// Serves the token endpoint and answers every other request with `body` (200, JSON).
async fn answering(body: String) -> Hostile {
    Hostile::start(move |seen, _| {
        if seen.is_token_request() {
            token_answer()
        } else {
            json("200 OK", &body)
        }
    })
    .await
}

const QUERY_JOB: &str = r#"
[api]
allow_insecure_http = true

[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["1"]
report = "campaigns"
timezone = "UTC"
currency = "USD"
dimensions = ["campaign_id", "campaign_name"]
metrics = ["impressions", "gross_cost"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_and_numbers_beyond_numeric_load_instead_of_failing_every_run() {
    let db = TestDb::new().await;
    let body = r#"{"data":[
        {"campaign_id":"c\u0000d","campaign_name":"a\u0000b","impressions":1e1000000,"gross_cost":"2.5",
         "datetime":"2026-03-01T00:00:00Z","note":"x\u0000y","huge":-1E999999,"nested":{"k\u0000":[1e400000]}}
    ]}"#
    .to_owned();
    let api = answering(body).await;
    let result = run_against(&api.base_url(), &db, QUERY_JOB).await;
    assert!(result.succeeded(), "{result:?}");
    let warnings = result.warnings().join("\n");
    assert!(
        warnings.contains("too large for a numeric column"),
        "{warnings}"
    );
    let pool = db.pool().await;
    let (id, name, impressions, extra): (String, String, Option<String>, String) = sqlx::query_as(
        "SELECT campaign_id, campaign_name, impressions::text, _extra::text FROM rokt.campaign_daily",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(id, "c\u{FFFD}d");
    assert_eq!(name, "a\u{FFFD}b");
    assert_eq!(impressions, None, "the number is kept in _extra, as text");
    let extra: serde_json::Value = serde_json::from_str(&extra).unwrap();
    assert_eq!(extra["impressions"], "1e1000000");
    assert_eq!(extra["huge"], "-1E999999");
    assert_eq!(extra["note"], "x\u{FFFD}y");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_key_value_fails_its_window_saying_so() {
    let db = TestDb::new().await;
    let long = "x".repeat(5_000);
    let body = format!(
        r#"{{"data":[{{"campaign_id":"{long}","campaign_name":"n","impressions":1,"gross_cost":1,"datetime":"2026-03-01"}}]}}"#
    );
    let api = answering(body).await;
    let result = run_against(&api.base_url(), &db, QUERY_JOB).await;
    let WindowOutcome::Failed { error, .. } = &result.windows[0].outcome else {
        panic!("{result:?}");
    };
    assert!(error.contains("campaign_id"), "{error}");
    assert!(error.contains("5000 bytes"), "{error}");
    assert!(error.contains("at most 2000"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_is_refused_not_followed() {
    let db = TestDb::new().await;
    let depth = 200_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let body = format!(
        r#"{{"data":[{{"campaign_id":"1","campaign_name":"n","impressions":1,"gross_cost":1,"datetime":"2026-03-01","deep":{nested}}}]}}"#
    );
    let api = answering(body.clone()).await;
    let result = run_against(&api.base_url(), &db, QUERY_JOB).await;
    let too_deep = |result: &RunResult| {
        matches!(&result.windows[0].outcome,
            WindowOutcome::Failed { error, .. } if error.contains("nested more than 64 levels deep"))
    };
    assert!(too_deep(&result), "{result:?}");
    // A generic job's answer too.
    let db = TestDb::new().await;
    let generic = format!(r#"{{"data":{{"items":[{{"groupByValue":"a","deep":{nested}}}]}}}}"#);
    let api = answering(generic).await;
    let result = run_against(&api.base_url(), &db, GENERIC_JOB).await;
    assert!(too_deep(&result), "{result:?}");
}

const GENERIC_JOB: &str = r#"
[api]
allow_insecure_http = true

[[jobs]]
name = "breakdown"
schedule = "0 6 * * *"
accounts = ["1"]
timezone = "UTC"
currency = "USD"
endpoint = "/reporting/accounts/{account_id}/campaigns/breakdown"
records = "/data/items"
key = ["groupByValue"]
window_days = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_column_names_and_ever_more_fields_go_to_extra() {
    let db = TestDb::new().await;
    // The system column names first, so that the column cap is not what keeps them out.
    let mut fields: Vec<String> =
        vec![r#""xmin":"7","xmax":"7","cmin":"7","cmax":"7","ctid":"8","tableoid":9"#.to_owned()];
    fields.extend((0..400).map(|i| format!(r#""field{i:03}":{i}"#)));
    let body = format!(
        r#"{{"data":{{"items":[{{"groupByValue":"a",{}}}]}}}}"#,
        fields.join(",")
    );
    let api = answering(body).await;
    let result = run_against(&api.base_url(), &db, GENERIC_JOB).await;
    assert!(result.succeeded(), "{result:?}");
    let pool = db.pool().await;
    let columns: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_schema = 'rokt' AND table_name = 'breakdown'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // account_id, window_start, 200 inferred columns, _extra and the three metadata columns.
    assert_eq!(columns, 2 + 200 + 1 + 3);
    let extra: String = sqlx::query_scalar("SELECT _extra::text FROM rokt.breakdown")
        .fetch_one(&pool)
        .await
        .unwrap();
    let extra: serde_json::Value = serde_json::from_str(&extra).unwrap();
    for system in ["xmin", "xmax", "cmin", "cmax", "ctid"] {
        assert_eq!(
            extra[system],
            if system == "ctid" { "8" } else { "7" },
            "{system}"
        );
    }
    assert_eq!(extra["tableoid"], 9);
    // The key and the first 199 ordinary fields are the 200 columns; the system names took none
    // of their places.
    assert!(extra.get("field000").is_none() && extra.get("field198").is_none());
    assert_eq!(extra["field199"], 199);
    assert_eq!(extra["field399"], 399);
    pool.close().await;
}

const SIMULATED_JOB: &str = r#"
[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592"]
report = "campaigns"
timezone = "UTC"
currency = "USD"
dimensions = ["campaign_id"]
metrics = ["impressions"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_change_behind_an_open_transaction_gives_up_naming_the_session() {
    use rokt_export::mock::{MockConfig, MockServer};
    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let first = run_with(&mock.base_url(), &db, SIMULATED_JOB, mock.credentials()).await;
    assert!(first.succeeded(), "{first:?}");
    // An analyst's SQL client, autocommit off, holding the table.
    let mut analyst = sqlx::PgConnection::connect(&db.url).await.unwrap();
    use sqlx::Connection as _;
    sqlx::query("SET application_name = 'metabase-analyst'")
        .execute(&mut analyst)
        .await
        .unwrap();
    let mut tx = analyst.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM rokt.campaign_daily")
        .execute(&mut *tx)
        .await
        .unwrap();
    // The job gains a metric: the next run must add a column.
    let wider = SIMULATED_JOB.replace(
        "metrics = [\"impressions\"]",
        "metrics = [\"impressions\", \"referrals\"]",
    );
    let started = std::time::Instant::now();
    let env = Env::default()
        .with("DATABASE_URL", &db.url)
        .with("ROKT_API_BASE_URL", &mock.base_url());
    let config = Config::from_toml(std::path::Path::new("jobs.toml"), &wider, &env).unwrap();
    let store = Store::connect(&config.database).await.unwrap();
    let api = ApiClient::new(&config.api, mock.credentials()).unwrap();
    let ctx = Context::new(Arc::new(config), api, store.clone());
    let err = export::run_job(
        &ctx,
        &RunRequest::new("campaign_daily", Trigger::RunNow),
        &NoProgress,
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("locked by another session"), "{message}");
    assert!(message.contains("metabase-analyst"), "{message}");
    assert!(message.contains("pid "), "{message}");
    assert!(message.contains("its transaction open since "), "{message}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "bounded"
    );
    // The analyst's queries were never queued behind the change.
    sqlx::query("SELECT count(*) FROM rokt.campaign_daily")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    // Once the transaction ends, the change goes through.
    let again = export::run_job(
        &ctx,
        &RunRequest::new("campaign_daily", Trigger::RunNow),
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(again.succeeded(), "{again:?}");
    store.close().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_past_its_deadline_is_rolled_back_and_failed() {
    use rokt_export::mock::{Faults, MockConfig, MockServer};
    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    mock.set_faults(Faults {
        latency_ms: 60_000,
        ..Faults::default()
    });
    let toml = format!("{SIMULATED_JOB}window_timeout_secs = 10\n");
    let result = run_with(&mock.base_url(), &db, &toml, mock.credentials()).await;
    let WindowOutcome::Failed { error, .. } = &result.windows[0].outcome else {
        panic!("{result:?}");
    };
    assert!(error.contains("deadline"), "{error}");
    let pool = db.pool().await;
    let (failed, running): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'running') \
         FROM rokt.export_runs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((failed, running), (1, 0));
    pool.close().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_statement_timeout_is_cancelled_and_its_window_rolled_back() {
    use rokt_export::mock::{MockConfig, MockServer};
    use sqlx::Connection as _;
    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let job = format!("[database]\nstatement_timeout_secs = 1\n{SIMULATED_JOB}");
    let first = run_with(&mock.base_url(), &db, &job, mock.credentials()).await;
    assert!(first.succeeded(), "{first:?}");
    // One row's fingerprint forgotten, so the re-read sends it again; another session holds
    // that row locked, so the upsert waits for it.
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE rokt.campaign_daily SET _row_hash = NULL WHERE campaign_id = (SELECT min(campaign_id) FROM rokt.campaign_daily)")
        .execute(&mut other)
        .await
        .unwrap();
    let before: String = sqlx::query_scalar(
        "SELECT string_agg(campaign_id || ':' || impressions::text || ':' || _run_id::text, ',' ORDER BY campaign_id) FROM rokt.campaign_daily",
    )
    .fetch_one(&mut other)
    .await
    .unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM rokt.campaign_daily FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();

    let second = run_with(&mock.base_url(), &db, &job, mock.credentials()).await;
    let WindowOutcome::Failed { error, .. } = &second.windows[0].outcome else {
        panic!("{second:?}")
    };
    assert!(error.contains("statement timeout"), "{error}");
    tx.rollback().await.unwrap();

    // Nothing of the window stayed: the rows as they were, its run recorded as failed.
    let after: String = sqlx::query_scalar(
        "SELECT string_agg(campaign_id || ':' || impressions::text || ':' || _run_id::text, ',' ORDER BY campaign_id) FROM rokt.campaign_daily",
    )
    .fetch_one(&mut other)
    .await
    .unwrap();
    assert_eq!(after, before);
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rokt.export_runs WHERE status = 'failed' AND error LIKE '%statement timeout%'",
    )
    .fetch_one(&mut other)
    .await
    .unwrap();
    assert_eq!(failed, 1);
    mock.stop().await;
}

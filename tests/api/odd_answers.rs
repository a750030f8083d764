//! What a process says about an API that answers unlike the documentation, over time: an API that
//! refuses a future `endDate` is news once per process (an INFO line, a remark on the window that
//! found it), not a warning on every later run. Real Postgres, the simulated API over HTTP, the
//! runs in this process with their logs captured.

use std::sync::Arc;

use chrono::{Days, NaiveDate, Utc};
use rokt_export::api::ApiClient;
use rokt_export::config::{Config, Env};
use rokt_export::export::{self, Context, DayRange, NoProgress, RunRequest, RunResult};
use rokt_export::mock::{Faults, MockConfig, MockServer};
use rokt_export::store::{Store, Trigger};

use crate::helpers::{Captured, TestDb, config_file, run_binary};

fn days_ago(n: u64) -> NaiveDate {
    Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(n))
        .unwrap()
}

fn between(job: &str, from: NaiveDate, to: NaiveDate) -> RunRequest {
    let mut r = RunRequest::new(job, Trigger::Schedule);
    r.range = DayRange::Explicit {
        from: Some(from),
        to: Some(to),
    };
    r
}

async fn run(ctx: &Context, request: &RunRequest) -> RunResult {
    let result = export::run_job(ctx, request, &NoProgress).await.unwrap();
    assert!(result.succeeded(), "{result:?}");
    result
}

/// A process's context for `toml`, against `db` and `mock`.
async fn context(toml: &str, db: &TestDb, mock: &MockServer) -> Context {
    rokt_export::tls::install_crypto_provider();
    let env = Env::default()
        .with("DATABASE_URL", &db.url)
        .with("ROKT_API_BASE_URL", &mock.base_url());
    let config = Config::from_toml(std::path::Path::new("jobs.toml"), toml, &env).unwrap();
    let store = Store::connect(&config.database).await.unwrap();
    store.migrate().await.unwrap();
    let api = ApiClient::new(&config.api, mock.credentials()).unwrap();
    Context::new(Arc::new(config), api, store)
}

const INFO_LINE: &str =
    "the API refuses an endDate in the future: windows end today (exclusive) from now on";

#[tokio::test] // current-thread: every event of the runs lands in this thread's subscriber
async fn a_refused_future_end_date_is_said_once_per_process_not_on_every_run() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // See `client::trace_logs_of_a_whole_run_hold_no_secret`: a second live dispatcher keeps a
    // test on another thread from caching "never" for the callsites this one captures.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());

    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    mock.set_faults(Faults {
        refuse_future_end_date: true,
        ..Faults::default()
    });
    let toml = r#"
[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592", "2718281"]
report = "campaigns"
timezone = "UTC"
currency = "USD"
dimensions = ["campaign_id"]
metrics = ["impressions"]
window_days = 3
"#;
    let ctx = context(toml, &db, &mock).await;
    let today = Utc::now().date_naive();

    // The first run finds out: windows that end today are asked again ending yesterday.
    let first = run(&ctx, &between("campaign_daily", days_ago(5), today)).await;
    assert!(
        first.warnings().iter().any(|w| w.contains("future")),
        "{:?}",
        first.warnings()
    );
    mock.reset_counters();
    let pool = db.pool().await;
    let last_run: i64 = sqlx::query_scalar("SELECT max(id) FROM rokt.export_runs")
        .fetch_one(&pool)
        .await
        .unwrap();

    // Every later run knows it: its windows end yesterday without a word above DEBUG.
    for _ in 0..2 {
        let later = run(&ctx, &between("campaign_daily", days_ago(1), today)).await;
        assert_eq!(later.warnings(), Vec::<String>::new());
        assert!(later.rows_received() > 0, "yesterday was read");
    }
    let noted: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, warnings FROM rokt.export_runs WHERE id > $1 ORDER BY id")
            .bind(last_run)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(noted.len(), 4, "two runs of two accounts: {noted:?}");
    assert!(
        noted
            .iter()
            .all(|(status, w)| status == "succeeded" && w.is_none()),
        "{noted:?}"
    );
    pool.close().await;

    let text = logs.text();
    assert_eq!(text.matches(INFO_LINE).count(), 1, "{text}");
    let warned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("future"))
        .collect();
    assert_eq!(warned.len(), 1, "the finding's window only: {warned:?}");
    assert_eq!(
        mock.counters().api_requests_by_status.get(&400),
        None,
        "later runs ask no future end"
    );
    mock.stop().await;
}

#[tokio::test]
async fn the_accounts_list_is_asked_once_for_every_account_and_job_of_a_process() {
    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // Two jobs of two accounts each, in each account's own zone and currency: both need the
    // accounts list.
    let job = |name: &str, dimension: &str| {
        format!(
            "[[jobs]]\nname = \"{name}\"\nschedule = \"15 5 * * *\"\n\
             accounts = [\"3141592\", \"2718281\"]\nreport = \"campaigns\"\n\
             dimensions = [\"{dimension}\"]\nmetrics = [\"impressions\"]\n"
        )
    };
    let toml = format!(
        "{}{}",
        job("campaign_daily", "campaign_id"),
        job("creative_daily", "creative_id")
    );
    let ctx = context(&toml, &db, &mock).await;
    let day = days_ago(2);
    mock.reset_counters();
    let first = run(&ctx, &between("campaign_daily", day, day)).await;
    assert_eq!(first.windows.len(), 2, "one window per account");
    // The accounts list, then one report per account: nothing asked twice.
    assert_eq!(mock.counters().api_requests, 1 + 2, "{:?}", mock.counters());
    let second = run(&ctx, &between("creative_daily", day, day)).await;
    assert_eq!(second.windows.len(), 2);
    assert_eq!(
        mock.counters().api_requests,
        1 + 2 + 2,
        "the second job reuses the list: {:?}",
        mock.counters()
    );
    let pool = db.pool().await;
    let zones: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT timezone FROM rokt.creative_daily ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        zones,
        ["America/New_York", "Australia/Sydney"],
        "each its own"
    );
    pool.close().await;
    mock.stop().await;
}

/// An API that hands out tokens and answers every report with two empty rows, a row without its
/// `campaign_id` (a key column) nor `campaign_name` (a name beside it), and a whole row.
async fn odd_api() -> std::net::SocketAddr {
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let day = days_ago(2);
    let app = axum::Router::new()
        .route(
            "/auth/oauth2/token",
            post(|| async {
                axum::Json(serde_json::json!({
                    "access_token": "t0k3n", "token_type": "Bearer", "expires_in": 3600
                }))
            }),
        )
        .fallback(move || async move {
            let at = format!("{day}T00:00:00Z");
            axum::Json(serde_json::json!({
                "data": [
                    {},
                    [],
                    {"impressions": 3, "datetime": at},
                    {"campaign_id": "7", "campaign_name": "Seven", "impressions": 4, "datetime": at},
                ],
                "accountId": "1",
                "queryTimeMs": 1
            }))
        });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_line_counts_rows_skipped_and_rows_missing_a_dimension() {
    let db = TestDb::new().await;
    let addr = odd_api().await;
    let (_dir, config) = config_file(
        r#"
[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["1"]
report = "campaigns"
timezone = "UTC"
currency = "USD"
dimensions = ["campaign_id", "campaign_name"]
metrics = ["impressions"]
"#,
    );
    let day = days_ago(2).to_string();
    let base_url = format!("http://{addr}");
    let config = config.display().to_string();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("ROKT_API_BASE_URL", base_url.as_str()),
        ("ROKT_APP_ID", "app"),
        ("ROKT_APP_SECRET", "secret"),
        ("ROKT_EXPORT_CONFIG", config.as_str()),
    ];
    let args = ["--run-now", "campaign_daily", "--from", &day, "--to", &day];
    let out = tokio::task::block_in_place(|| run_binary(&args, &env));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let loaded: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("window loaded"))
        .collect();
    assert_eq!(loaded.len(), 1, "{text}");
    for field in [
        "rows_received=2",
        "rows_deleted=0",
        "rows_skipped_empty=2",
        "rows_missing_dimension=1",
    ] {
        assert!(loaded[0].contains(field), "{field} in {}", loaded[0]);
    }
    for said in [
        "2 empty row(s)",
        "1 row(s) had no `campaign_id`; they were kept with '' in its column (part of the key)",
        "1 row(s) had no `campaign_name`; they were kept with NULL in its column",
    ] {
        assert!(text.contains(said), "{said} in {text}");
    }
    let pool = db.pool().await;
    let stored: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT campaign_id, campaign_name FROM rokt.campaign_daily ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        [(String::new(), None), ("7".into(), Some("Seven".into()))],
        "as the warnings say"
    );
    pool.close().await;
}

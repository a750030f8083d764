//! What a process says about an API that answers unlike the documentation, over time: an API that
//! refuses a future `endDate` is news once per process (an INFO line, a remark on the window that
//! found it), not a warning on every later run. Real Postgres, the simulated API over HTTP, the
//! runs in this process with their logs captured.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{Days, NaiveDate, Utc};
use rokt_export::api::ApiClient;
use rokt_export::config::{Config, Env};
use rokt_export::export::{self, Context, DayRange, NoProgress, RunRequest, RunResult};
use rokt_export::mock::{Faults, MockConfig, MockServer};
use rokt_export::store::{Store, Trigger};

use crate::helpers::TestDb;

fn days_ago(n: u64) -> NaiveDate {
    Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(n))
        .unwrap()
}

/// A `MakeWriter` that appends every log line to one shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
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

    rokt_export::tls::install_crypto_provider();
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
    let env = Env::default()
        .with("DATABASE_URL", &db.url)
        .with("ROKT_API_BASE_URL", &mock.base_url());
    let config = Config::from_toml(std::path::Path::new("jobs.toml"), toml, &env).unwrap();
    let store = Store::connect(&config.database).await.unwrap();
    store.migrate().await.unwrap();
    let api = ApiClient::new(&config.api, mock.credentials()).unwrap();
    let ctx = Context::new(Arc::new(config), api, store);
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

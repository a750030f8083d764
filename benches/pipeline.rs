//! The end-to-end benchmark: a year-long backfill of a large advertiser from the simulated Rokt API
//! into Postgres (and SQLite), against the `COPY` ceiling of the same rows on the same machine.
//!
//! Run: `cargo bench --bench pipeline` (options after `--`: `--runs N`, `--days N`, `--campaigns N`,
//! `--creatives N`, `--accounts N`, `--skip-sqlite`, `--skip-accounts`). Needs the Postgres the tests
//! use (`TEST_DATABASE_URL`, or `postgres://postgres@127.0.0.1:5432/postgres`). The simulated API runs as
//! a separate process, so the peak RSS printed is the exporter's alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Instant;

use chrono::{Days, NaiveDate, Utc};
use rokt_export::api::ApiClient;
use rokt_export::config::{Config, Credentials, Env};
use rokt_export::export::{self, Context, DayRange, NoProgress, RunRequest};
use rokt_export::store::{Store, Trigger};
use sqlx::Connection as _;

struct Options {
    runs: usize,
    days: u64,
    accounts: usize,
    campaigns: u32,
    creatives: u32,
    sqlite: bool,
    many_accounts: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        runs: value("--runs", 3) as usize,
        days: value("--days", 365),
        accounts: value("--accounts", 2) as usize,
        campaigns: value("--campaigns", 200) as u32,
        creatives: value("--creatives", 5) as u32,
        sqlite: !args.iter().any(|a| a == "--skip-sqlite"),
        many_accounts: !args.iter().any(|a| a == "--skip-accounts"),
    }
}

/// The simulated API as a child process.
struct MockProcess {
    child: Child,
    base_url: String,
}

impl MockProcess {
    fn start(accounts: &[String], campaigns: u32, creatives: u32, today: NaiveDate) -> MockProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rokt-export"))
            .args(["mock-api", "--port", "0", "--today", &today.to_string()])
            .args(["--accounts", &accounts.join(",")])
            .args([
                "--campaigns",
                &campaigns.to_string(),
                "--creatives",
                &creatives.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rokt-export mock-api");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().unwrap().unwrap();
        let base_url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("the mock prints its URL")
            .to_owned();
        // Keep draining its output so it never writes into a closed pipe.
        std::thread::spawn(move || for _ in lines {});
        MockProcess { child, base_url }
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> serde_json::Value {
        let client = reqwest::Client::new();
        let mut req = client.request(method, format!("{}{path}", self.base_url));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.unwrap();
        resp.json().await.unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn fresh_database(name: &str) -> String {
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url_with_db(&admin, name);
    if !url.contains("sslmode") {
        url.push_str(if url.contains('?') {
            "&sslmode=prefer"
        } else {
            "?sslmode=prefer"
        });
    }
    url
}

async fn drop_database(name: &str) {
    let mut conn = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await;
}

fn url_with_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn job_toml(accounts: &[String], window_days: u32) -> String {
    let list: Vec<String> = accounts.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
[api]
max_concurrent_requests = 4
[[jobs]]
name = "bench"
schedule = "0 5 * * *"
accounts = [{}]
report = "campaigns"
dimensions = ["campaign_id", "campaign_name", "creative_id", "creative_name"]
metrics = ["impressions", "referrals", "gross_cost", "net_cost", "acquisitions", "conversions", "conversion_value", "cpa"]
window_days = {window_days}
"#,
        list.join(", ")
    )
}

/// Peak resident set size of this process since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU time (user + system) a process has used so far, in seconds, from `/proc/PID/stat`
/// (Linux counts it in ticks of 1/100 s).
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count from the `)` that ends it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // After the name come field 3 (state) onwards: utime (field 14) and stime (15) are the 12th
    // and 13th of those.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resets the peak RSS counter (Linux: writing 5 to clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Load {
    rows: u64,
    written: u64,
    secs: f64,
    requests: u64,
    tokens: u64,
    peak_mib: f64,
    /// CPU seconds the exporter (this process) and the simulated API used during the load.
    cpu: f64,
    mock_cpu: f64,
}

async fn load(
    mock: &MockProcess,
    toml: &str,
    database_url: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Load {
    let env = Env::default()
        .with("DATABASE_URL", database_url)
        .with("ROKT_API_BASE_URL", &mock.base_url);
    let config = Config::from_toml(std::path::Path::new("bench.toml"), toml, &env).unwrap();
    let store = Store::connect(&config.database).await.unwrap();
    store.migrate().await.unwrap();
    let api = ApiClient::new(
        &config.api,
        Credentials::new("demo-app-id", "demo-app-secret"),
    )
    .unwrap();
    let ctx = Context::new(Arc::new(config), api, store.clone());
    let before = mock
        .admin(reqwest::Method::GET, "/__mock/counters", None)
        .await;
    reset_peak_rss();
    let mock_pid = mock.child.id().to_string();
    let (cpu_before, mock_before) = (cpu_secs("self"), cpu_secs(&mock_pid));
    let request = RunRequest {
        job: "bench".into(),
        range: DayRange::Explicit {
            from: Some(from),
            to: Some(to),
        },
        accounts: Vec::new(),
        trigger: Trigger::RunNow,
        stop: Default::default(),
        reload: false,
        allow_empty: false,
    };
    let started = Instant::now();
    let report = export::run_job(&ctx, &request, &NoProgress).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let peak_mib = peak_rss_mib();
    let (cpu, mock_cpu) = (
        cpu_secs("self") - cpu_before,
        cpu_secs(&mock_pid) - mock_before,
    );
    assert!(report.succeeded(), "the benchmark run failed: {report:?}");
    let after = mock
        .admin(reqwest::Method::GET, "/__mock/counters", None)
        .await;
    let count = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    store.close().await;
    Load {
        rows: report.rows_received(),
        written: report.rows_written(),
        secs,
        requests: count(&after, "api_requests") - count(&before, "api_requests"),
        tokens: count(&after, "token_requests") - count(&before, "token_requests"),
        peak_mib,
        cpu,
        mock_cpu,
    }
}

/// Rows per second of one `COPY` of the loaded table into an empty table of the same shape.
async fn copy_ceiling(database_url: &str) -> (u64, f64) {
    let options = sqlx::postgres::PgConnectOptions::from_str(database_url).unwrap();
    let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("CREATE TABLE rokt.ceiling (LIKE rokt.bench INCLUDING ALL)")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut data = Vec::new();
    {
        use futures_util::TryStreamExt as _;
        let mut stream = conn
            .copy_out_raw("COPY rokt.bench TO STDOUT")
            .await
            .unwrap();
        while let Some(chunk) = stream.try_next().await.unwrap() {
            data.extend_from_slice(&chunk);
        }
    }
    let rows = data.iter().filter(|b| **b == b'\n').count() as u64;
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY rokt.ceiling FROM STDIN")
        .await
        .unwrap();
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk).await.unwrap();
    }
    copy.finish().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let _ = conn.close().await;
    (rows, secs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

#[tokio::main]
async fn main() {
    rokt_export::tls::install_crypto_provider();
    let o = options();
    let today = Utc::now().date_naive();
    let from = today.checked_sub_days(Days::new(o.days - 1)).unwrap();
    let accounts: Vec<String> = (0..o.accounts)
        .map(|i| format!("{}", 1_000_001 + i))
        .collect();
    let mock = MockProcess::start(&accounts, o.campaigns, o.creatives, today);
    let toml = job_toml(&accounts, 31);
    println!(
        "rokt-export pipeline benchmark: {} accounts x {} campaigns x {} creatives x {} days; {} runs; {} cores",
        o.accounts,
        o.campaigns,
        o.creatives,
        o.days,
        o.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let (mut first, mut rerun, mut ceiling, mut peaks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for run in 0..o.runs {
        let name = format!("rokt_bench_{run}");
        let url = fresh_database(&name).await;
        let a = load(&mock, &toml, &url, from, today).await;
        let b = load(&mock, &toml, &url, from, today).await;
        let (copy_rows, copy_secs) = copy_ceiling(&url).await;
        println!(
            "  run {}: load {:.1}s ({:.0} rows/s, peak {:.0} MiB, CPU: exporter {:.1}s, API {:.1}s), rerun {:.2}s ({} rows rewritten, CPU: exporter {:.2}s, API {:.2}s), COPY {:.1}s ({:.0} rows/s)",
            run + 1,
            a.secs,
            a.rows as f64 / a.secs,
            a.peak_mib,
            a.cpu,
            a.mock_cpu,
            b.secs,
            b.written,
            b.cpu,
            b.mock_cpu,
            copy_secs,
            copy_rows as f64 / copy_secs
        );
        first.push(a.rows as f64 / a.secs);
        rerun.push(a.secs / b.secs);
        ceiling.push(copy_rows as f64 / copy_secs);
        peaks.push(a.peak_mib.max(b.peak_mib));
        last = Some(a);
        drop_database(&name).await;
    }
    let a = last.unwrap();
    let e2e = median(first);
    let copy = median(ceiling);
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| rows | {} |", a.rows);
    println!(
        "| API requests / token requests (one load) | {} / {} |",
        a.requests, a.tokens
    );
    println!("| Postgres backfill, median rows/s | {e2e:.0} |");
    println!("| COPY ceiling, median rows/s | {copy:.0} |");
    println!(
        "| backfill as a fraction of COPY | {:.0}% (target >= 60%) |",
        100.0 * e2e / copy
    );
    println!(
        "| unchanged rerun speed-up (first load time / rerun time), median | {:.1}x (target >= 5x) |",
        median(rerun)
    );
    println!(
        "| peak RSS during a load, max over runs | {:.0} MiB (target <= 64 MiB) |",
        peaks.iter().cloned().fold(0.0, f64::max)
    );

    if o.sqlite {
        let dir = std::env::temp_dir().join(format!("rokt-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("bench.db").display());
        let s = load(&mock, &toml, &url, from, today).await;
        println!(
            "| SQLite backfill rows/s (one run) | {:.0} (peak {:.0} MiB) |",
            s.rows as f64 / s.secs,
            s.peak_mib
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    drop(mock);

    if o.many_accounts {
        let many: Vec<String> = (0..100).map(|i| format!("{}", 2_000_001 + i)).collect();
        let mock = MockProcess::start(&many, 5, 1, today);
        mock.admin(
            reqwest::Method::PUT,
            "/__mock/faults",
            Some(r#"{"latency_ms": 100}"#),
        )
        .await;
        let toml = job_toml(&many, 31);
        let name = "rokt_bench_accounts";
        let url = fresh_database(name).await;
        let month_ago = today.checked_sub_days(Days::new(30)).unwrap();
        let m = load(&mock, &toml, &url, month_ago, today).await;
        let ideal = m.requests as f64 * 0.1 / 4.0;
        println!(
            "| 100 accounts, 100 ms latency: wall / (requests x latency / concurrency) | {:.2}s / {:.2}s = {:.2}x (target <= 1.3x) |",
            m.secs,
            ideal,
            m.secs / ideal
        );
        drop_database(name).await;
    }
}

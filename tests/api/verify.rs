//! `rokt-export verify` and `verify = true`: a table compared with the API's own daily totals, end to
//! end (real Postgres, the simulated API over HTTP, the built binary for the command).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use rokt_export::api::{ApiClient, ReportRequest};
use rokt_export::config::{Config, Env, JobKind};
use rokt_export::daemon::{DaemonError, run_until_stopped};
use rokt_export::export::{self, Context, DayRange, NoProgress, RunRequest};
use rokt_export::mock::{Faults, MockConfig, MockServer};
use rokt_export::store::{CheckTrigger, NewRun, Store, Trigger};
use rokt_export::verify::{self, VerifyRequest};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::helpers::{TestDb, run_binary};

/// Two accounts read in UTC and USD (no accounts request), four additive metrics and two that
/// are not sums.
const CAMPAIGNS: &str = r#"
[defaults]
timezone = "UTC"
currency = "USD"
lookback_days = 7

[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592", "2718281"]
report = "campaigns"
dimensions = ["campaign_id", "campaign_name"]
metrics = ["impressions", "referrals", "gross_cost", "acquisitions", "referral_rate", "cpa"]

[[jobs]]
name = "breakdown"
schedule = "0 6 * * *"
accounts = ["3141592"]
endpoint = "/reporting/accounts/{account_id}/campaigns/breakdown"
query = { dateStart = "{start_date}T00:00:00.000", dateEnd = "{last_date}T23:59:59.999", currency = "{currency}", timeZoneVariation = "{timezone}", groupby = "campaign" }
records = "/data/items"
key = ["groupByValue"]
window_days = 1
"#;

/// One account, one row per campaign and day (5 a day).
const ONE_ACCOUNT: &str = r#"
[defaults]
timezone = "UTC"
currency = "USD"
lookback_days = 7

[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592"]
report = "campaigns"
dimensions = ["campaign_id"]
metrics = ["impressions", "gross_cost"]
"#;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn days_ago(n: u64) -> NaiveDate {
    today().checked_sub_days(Days::new(n)).unwrap()
}

/// The simulated API, a database, a context wired to both and the same config on disk for the
/// binary.
struct Setup {
    mock: MockServer,
    ctx: Context,
    db: TestDb,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

async fn setup(toml: &str) -> Setup {
    rokt_export::tls::install_crypto_provider();
    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig {
        today: today(),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let (dir, config) = crate::helpers::config_file(toml);
    let env = Env::default()
        .with("DATABASE_URL", &db.url)
        .with("ROKT_API_BASE_URL", &mock.base_url());
    let mut parsed = Config::from_toml(&config, toml, &env).unwrap();
    parsed.api.max_retries = 1;
    let store = Store::connect(&parsed.database).await.unwrap();
    store.migrate().await.unwrap();
    let api = ApiClient::new(&parsed.api, mock.credentials()).unwrap();
    Setup {
        ctx: Context::new(Arc::new(parsed), api, store),
        mock,
        db,
        _dir: dir,
        config,
    }
}

impl Setup {
    /// Loads `from..=to` of `job` with today's loader; every window must succeed.
    async fn load(&self, job: &str, from: NaiveDate, to: NaiveDate) {
        let mut request = RunRequest::new(job, Trigger::RunNow);
        request.range = DayRange::Explicit {
            from: Some(from),
            to: Some(to),
        };
        let result = export::run_job(&self.ctx, &request, &NoProgress)
            .await
            .unwrap();
        assert!(result.succeeded(), "{result:?}");
    }

    /// `rokt-export --config ... ARGS` with the database, the simulated API and its credentials.
    async fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        self.cli_with(args, &[]).await
    }

    /// [`Setup::cli`] with some of its environment replaced.
    async fn cli_with(
        &self,
        args: &[&str],
        replaced: &[(&str, &str)],
    ) -> (Option<i32>, String, String) {
        let mut all = vec![
            "--config".to_owned(),
            self.config.to_str().unwrap().to_owned(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let env = [
            ("DATABASE_URL".to_owned(), self.db.url.clone()),
            ("ROKT_API_BASE_URL".to_owned(), self.mock.base_url()),
            ("ROKT_APP_ID".to_owned(), "demo-app-id".to_owned()),
            ("ROKT_APP_SECRET".to_owned(), "demo-app-secret".to_owned()),
        ]
        .map(|(k, v)| {
            let v = replaced
                .iter()
                .find(|(r, _)| *r == k)
                .map_or(v, |(_, new)| (*new).to_owned());
            (k, v)
        });
        let out: Output = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            run_binary(&args, &env)
        })
        .await
        .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn sql(&self, sql: &str) {
        let pool = self.db.pool().await;
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }

    async fn count(&self, sql: &str) -> i64 {
        let pool = self.db.pool().await;
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }
}

/// The table rows of `verify`'s text output that name `account` (the lines of differences).
fn difference_lines<'a>(stdout: &'a str, account: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{account} ")))
        .collect()
}

#[tokio::test]
async fn a_faithful_load_verifies_clean_with_one_request_per_account_and_31_days() {
    let s = setup(CAMPAIGNS).await;
    let (from, to) = (days_ago(40), days_ago(1));
    s.load("campaign_daily", from, to).await;

    // 40 days: two requests per account (31 + 9 days), and nothing else (fixed units: no
    // accounts list).
    s.mock.reset_counters();
    let (code, out, err) = s
        .cli(&[
            "verify",
            "campaign_daily",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
        ])
        .await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(s.mock.counters().api_requests, 4, "{out}");
    assert!(
        out.contains("impressions, referrals, gross_cost, acquisitions compared"),
        "{out}"
    );
    assert!(out.contains("account 3141592 (UTC, USD)"), "{out}");
    assert!(
        out.contains(&format!(
            "account 2718281 (UTC, USD): {from}..{to}: every day matches"
        )),
        "{out}"
    );
    assert!(
        out.trim_end()
            .ends_with("80 days checked, 0 differ, 4 API requests"),
        "{out}"
    );

    // The default range: the job's 7 lookback days up to yesterday, one request per account.
    let (code, out, err) = s
        .cli(&["verify", "campaign_daily", "--format", "json"])
        .await;
    assert_eq!(code, Some(0), "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["outcome"], "clean");
    assert_eq!(json["days_checked"], 14);
    assert_eq!(json["days_differ"], 0);
    assert_eq!(json["api_requests"], 2);
    assert_eq!(json["accounts"][0]["from"], days_ago(7).to_string());
    assert_eq!(json["accounts"][0]["to"], days_ago(1).to_string());
    assert_eq!(json["differences"].as_array().unwrap().len(), 0);

    // Every comparison is in export_checks: (80 + 14) days x 4 metrics, all matching.
    let checks = "SELECT count(*) FROM rokt.export_checks WHERE job = 'campaign_daily' \
                  AND trigger = 'verify'";
    assert_eq!(s.count(checks).await, (80 + 14) * 4);
    assert_eq!(
        s.count("SELECT count(*) FROM rokt.export_checks WHERE NOT matches")
            .await,
        0
    );
    s.mock.stop().await;
}

#[tokio::test]
async fn a_silent_row_cap_is_caught_and_the_truncated_days_are_named() {
    let s = setup(ONE_ACCOUNT).await;
    // 7 days of 5 campaigns is 35 rows; the API stops after 22 and the answer looks whole.
    s.mock.set_faults(Faults {
        row_cap: Some(22),
        ..Faults::default()
    });
    s.load("campaign_daily", days_ago(7), days_ago(1)).await;
    let loaded = "SELECT count(*) FROM rokt.campaign_daily";
    assert_eq!(s.count(loaded).await, 22, "the load saw nothing wrong");

    // Verify's own answers (a row a day) stay under the cap.
    let (code, out, err) = s.cli(&["verify", "campaign_daily"]).await;
    assert_eq!(code, Some(1), "{out}{err}");
    // Days 1-4 whole (20 rows), day 5 cut after 2 rows, days 6 and 7 never loaded.
    let cut = days_ago(3).to_string();
    let lines = difference_lines(&out, "3141592");
    assert_eq!(lines.len(), 2, "{out}");
    for (line, metric) in lines.iter().zip(["impressions", "gross_cost"]) {
        assert!(line.contains(&cut) && line.contains(metric), "{out}");
        assert!(line.trim_end().ends_with(" 2"), "2 table rows: {out}");
    }
    assert!(
        out.contains(&format!(
            "{}..{}: not loaded (the table has no rows, the API has numbers)",
            days_ago(2),
            days_ago(1)
        )),
        "{out}"
    );
    assert!(out.contains("3 of 7 days differ"), "{out}");
    assert!(
        out.trim_end()
            .ends_with("7 days checked, 3 differ, 1 API request"),
        "{out}"
    );
    s.mock.stop().await;
}

#[tokio::test]
async fn a_hand_edited_row_is_caught() {
    let s = setup(CAMPAIGNS).await;
    s.load("campaign_daily", days_ago(7), days_ago(1)).await;
    let day = days_ago(4);
    s.sql(&format!(
        "UPDATE rokt.campaign_daily SET impressions = impressions + 7, gross_cost = gross_cost - 0.01 \
         WHERE account_id = '2718281' AND date = '{day}' \
           AND campaign_id = (SELECT min(campaign_id) FROM rokt.campaign_daily WHERE account_id = '2718281')"
    ))
    .await;
    let (code, out, err) = s.cli(&["verify", "campaign_daily"]).await;
    assert_eq!(code, Some(1), "{out}{err}");
    let lines = difference_lines(&out, "2718281");
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains(&day.to_string()) && lines[0].contains("impressions"),
        "{out}"
    );
    assert!(lines[0].contains("+7"), "{out}");
    assert!(
        lines[1].contains("gross_cost") && lines[1].contains("-0.01"),
        "{out}"
    );
    assert!(difference_lines(&out, "3141592").is_empty(), "{out}");
    assert!(out.contains("14 days checked, 1 differ"), "{out}");
    s.mock.stop().await;
}

#[tokio::test]
async fn a_rename_before_the_grain_key_change_would_have_been_caught() {
    // The key names the campaign's name, as tables did before the grain key.
    let toml = ONE_ACCOUNT
        .replace(
            "dimensions = [\"campaign_id\"]",
            "dimensions = [\"campaign_id\", \"campaign_name\"]\nkey = [\"campaign_id\", \"campaign_name\"]",
        )
        .replace(
            "metrics = [\"impressions\", \"gross_cost\"]",
            "metrics = [\"impressions\", \"referrals\"]",
        );
    let s = setup(&toml).await;
    let (from, to) = (days_ago(7), days_ago(1));
    s.load("campaign_daily", from, to).await;
    let campaign = s.mock.campaign_ids("3141592")[0].clone();
    assert!(s.mock.rename_campaign("3141592", &campaign, "Renamed 🚀"));

    // The loader before the grain key and the window replace: upsert only, keyed on the name,
    // so the renamed campaign's rows come in a second time under the new name.
    let job = s.ctx.config.job("campaign_daily").unwrap();
    let JobKind::Query(q) = &job.kind else {
        unreachable!()
    };
    let answer = s
        .ctx
        .api
        .query_report(&ReportRequest {
            account_id: "3141592",
            job: q,
            start: from,
            last: to,
            timezone: "UTC",
            currency: "USD",
        })
        .await
        .unwrap();
    let (batch, _) =
        export::query::parse_answer(&answer.body, q, "3141592", chrono_tz::UTC, "USD").unwrap();
    let run = s
        .ctx
        .store
        .start_run(&NewRun {
            job: job.name.clone(),
            account_id: "3141592".into(),
            window_start: from,
            window_end: to,
            trigger: Trigger::RunNow,
        })
        .await
        .unwrap();
    let spec = export::query::table_spec(&job.table, q);
    s.ctx
        .store
        .commit_window(run, &spec, &batch, 1, None)
        .await
        .unwrap();
    assert_eq!(
        s.count("SELECT count(*) FROM rokt.campaign_daily").await,
        7 * 5 + 7,
        "one campaign twice a day"
    );

    let (code, out, err) = s.cli(&["verify", "campaign_daily"]).await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("7 of 7 days differ"), "{out}");
    // Each day is over by exactly the renamed campaign's numbers, with 6 rows for 5 campaigns.
    let rows = s.mock.query_rows_in(
        "3141592",
        "campaigns",
        &["campaign_id".to_owned()],
        &["impressions".to_owned()],
        from,
        to.succ_opt().unwrap(),
        "UTC",
        "USD",
    );
    for r in rows
        .iter()
        .filter(|r| r["campaign_id"] == campaign.as_str())
    {
        let day = &r["datetime"].as_str().unwrap()[..10];
        let line = difference_lines(&out, "3141592")
            .into_iter()
            .find(|l| l.contains(day) && l.contains("impressions"))
            .unwrap_or_else(|| panic!("{day} not named: {out}"));
        assert!(
            line.contains(&format!("+{}", r["impressions"])),
            "{line}\n{out}"
        );
        assert!(line.trim_end().ends_with(" 6"), "{line}");
    }

    // Today's loader replaces the account's days: the old name's rows go, and it verifies.
    s.load("campaign_daily", from, to).await;
    let (code, out, err) = s.cli(&["verify", "campaign_daily"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    s.mock.stop().await;
}

#[tokio::test]
async fn non_additive_metrics_are_never_compared() {
    let s = setup(CAMPAIGNS).await;
    s.load("campaign_daily", days_ago(7), days_ago(1)).await;
    // Numbers no API total would ever match, in the metrics that are not sums.
    s.sql("UPDATE rokt.campaign_daily SET referral_rate = 999, cpa = -1")
        .await;
    let (code, out, err) = s.cli(&["verify", "campaign_daily"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(
            "not checked: referral_rate (a rate, ratio or average: not a sum), cpa (a rate, \
             ratio or average: not a sum)"
        ),
        "{out}"
    );
    let compared = "SELECT count(*) FROM rokt.export_checks \
                    WHERE metric IN ('referral_rate', 'cpa')";
    assert_eq!(s.count(compared).await, 0);
    assert_eq!(
        s.count("SELECT count(DISTINCT metric) FROM rokt.export_checks")
            .await,
        4
    );
    s.mock.stop().await;
}

#[tokio::test]
async fn verifying_a_range_with_no_rows_loaded_says_so() {
    let s = setup(ONE_ACCOUNT).await;
    s.load("campaign_daily", days_ago(3), days_ago(1)).await;
    let (from, to) = (days_ago(60), days_ago(50));
    let (code, out, err) = s
        .cli(&[
            "verify",
            "campaign_daily",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
        ])
        .await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(&format!(
            "account 3141592 (UTC, USD): {from}..{to}: no rows loaded (the API has numbers for \
             11 of 11 days; load them with `rokt-export run-now campaign_daily --account 3141592 \
             --from {from} --to {to}`)"
        )),
        "{out}"
    );
    assert!(
        difference_lines(&out, "3141592").is_empty(),
        "not every day as different: {out}"
    );
    assert!(
        !out.contains("table rows"),
        "no table of differences: {out}"
    );
    s.mock.stop().await;
}

#[tokio::test]
async fn generic_jobs_unknown_jobs_and_help() {
    let s = setup(CAMPAIGNS).await;
    let (code, out, err) = s.cli(&["verify", "breakdown"]).await;
    assert_eq!(code, Some(78), "{out}{err}");
    assert!(
        err.contains("job \"breakdown\" cannot be verified: it is a generic job"),
        "{err}"
    );
    let (code, _, err) = s.cli(&["verify", "nope"]).await;
    assert_eq!(code, Some(78));
    assert!(err.contains("campaign_daily"), "{err}");
    let (code, _, err) = s
        .cli(&[
            "verify",
            "campaign_daily",
            "--from",
            "2026-02-01",
            "--to",
            "2026-01-01",
        ])
        .await;
    assert_eq!(code, Some(2), "{err}");

    let help = run_binary(&["verify", "--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    for said in [
        "one Query API request per account and 31 days",
        "Generic jobs",
        "cannot be verified",
        "totals",
        "--format",
        "export_checks",
    ] {
        assert!(help.contains(said), "{said}:\n{help}");
    }
    let top = run_binary(&["--help"], &[]);
    assert!(String::from_utf8_lossy(&top.stdout).contains("  verify "));
    s.mock.stop().await;
}

#[test]
fn verify_is_a_key_of_defaults_and_jobs_and_only_query_jobs_may_set_it() {
    let env = Env::default();
    let path = std::path::Path::new("jobs.toml");
    let inherited = format!("[defaults]\nverify = true\n{CAMPAIGNS}");
    let inherited = inherited.replacen("[defaults]\ntimezone", "timezone", 1);
    let config = Config::from_toml(path, &inherited, &env).unwrap();
    assert!(config.job("campaign_daily").unwrap().verify);
    let own = ONE_ACCOUNT.replace(
        "metrics = [\"impressions\", \"gross_cost\"]",
        "metrics = [\"impressions\"]\nverify = true",
    );
    assert!(
        Config::from_toml(path, &own, &env)
            .unwrap()
            .job("campaign_daily")
            .unwrap()
            .verify
    );
    assert!(
        !Config::from_toml(path, ONE_ACCOUNT, &env).unwrap().jobs[0].verify,
        "off by default"
    );
    let generic = CAMPAIGNS.replace("window_days = 1", "window_days = 1\nverify = true");
    let e = Config::from_toml(path, &generic, &env)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("verify") && e.contains("Query API jobs only"),
        "{e}"
    );
    let table = ONE_ACCOUNT.replace(
        "metrics = [\"impressions\", \"gross_cost\"]",
        "metrics = [\"impressions\"]\ntable = \"export_checks\"",
    );
    assert!(Config::from_toml(path, &table, &env).is_err(), "reserved");
}

#[tokio::test]
async fn sqlite_tables_verify_with_exact_money_sums() {
    rokt_export::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let mock = MockServer::start(MockConfig {
        today: today(),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let env = Env::default()
        .with("DATABASE_URL", &url)
        .with("ROKT_API_BASE_URL", &mock.base_url());
    let config = Config::from_toml(std::path::Path::new("jobs.toml"), CAMPAIGNS, &env).unwrap();
    let store = Store::connect(&config.database).await.unwrap();
    store.migrate().await.unwrap();
    let api = ApiClient::new(&config.api, mock.credentials()).unwrap();
    let ctx = Context::new(Arc::new(config), api, store.clone());
    let mut load = RunRequest::new("campaign_daily", Trigger::RunNow);
    load.range = DayRange::Explicit {
        from: Some(days_ago(10)),
        to: Some(days_ago(1)),
    };
    assert!(
        export::run_job(&ctx, &load, &NoProgress)
            .await
            .unwrap()
            .succeeded()
    );
    let request = VerifyRequest {
        job: "campaign_daily".into(),
        days: verify::Days::Explicit {
            from: Some(days_ago(10)),
            to: None,
        },
        accounts: vec!["2718281".into()],
        trigger: CheckTrigger::Verify,
    };
    let v = verify::verify(&ctx, &request).await.unwrap();
    assert_eq!(v.days_checked(), 10, "{v:?}");
    assert_eq!(v.days_differ(), 0, "{v:?}");
    assert_eq!(v.outcome(), verify::Outcome::Clean);
    assert_eq!(v.accounts.len(), 1);
    let last = store.last_checks().await.unwrap();
    assert_eq!((last[0].days, last[0].days_differ), (10, 0));
    store.close().await;
    mock.stop().await;
}

/// A daemon in this test's runtime, stopped with a oneshot.
struct Daemon {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

impl Daemon {
    async fn start(s: &Setup, toml: &str) -> Daemon {
        let env = Env::default()
            .with("DATABASE_URL", &s.db.url)
            .with("ROKT_API_BASE_URL", &s.mock.base_url());
        let config = Config::from_toml(std::path::Path::new("jobs.toml"), toml, &env).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_until_stopped(
            Arc::new(config),
            s.mock.credentials(),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Daemon { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the daemon stops")
            .unwrap()
            .unwrap();
    }

    /// The value of the sample `name{job="campaign_daily", extra}` once it exists.
    async fn wait_for_sample(&self, name: &str, extra: &[(&str, &str)]) -> f64 {
        let start = Instant::now();
        loop {
            if let Some(v) = sample(self.addr, name, extra).await {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no {name} after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One sample of `/metrics`, if present.
async fn sample(addr: SocketAddr, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).ok()?;
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && s.labels.get("job") == Some("campaign_daily")
                && extra.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[tokio::test]
async fn verify_true_records_export_checks_sets_the_gauge_and_status_shows_it() {
    let toml = ONE_ACCOUNT
        .replace("schedule = \"15 5 * * *\"", "schedule = \"0 0 1 1 *\"")
        .replace(
            "metrics = [\"impressions\", \"gross_cost\"]",
            "metrics = [\"impressions\", \"gross_cost\"]\nrun_on_start = true\nverify = true",
        );
    let toml = format!("[server]\nlisten = \"127.0.0.1:0\"\n{toml}");
    let s = setup(&toml).await;

    // A run under a silent row cap: 8 days (the lookback and today) of 5 rows, 22 served.
    s.mock.set_faults(Faults {
        row_cap: Some(22),
        ..Faults::default()
    });
    let daemon = Daemon::start(&s, &toml).await;
    let mismatched = daemon
        .wait_for_sample("rokt_export_verify_mismatched_days", &[])
        .await;
    // Days 7..4 ago whole, 3 days ago cut, 2 and 1 days ago missing; today is not verified.
    assert_eq!(mismatched, 3.0);
    let runs = "rokt_export_verify_runs_total";
    let mismatched_runs = sample(daemon.addr, runs, &[("outcome", "mismatched")]).await;
    assert_eq!(mismatched_runs, Some(1.0));
    let clean_runs = sample(daemon.addr, runs, &[("outcome", "clean")]).await;
    assert_eq!(clean_runs, Some(0.0));
    daemon.stop().await;
    let recorded = "SELECT count(*) FROM rokt.export_checks \
                    WHERE job = 'campaign_daily' AND trigger = 'schedule'";
    assert_eq!(s.count(recorded).await, 7 * 2, "7 days x 2 metrics");
    let differ = "SELECT count(DISTINCT date) FROM rokt.export_checks WHERE NOT matches";
    assert_eq!(s.count(differ).await, 3);
    let newest = format!(
        "SELECT count(*) FROM rokt.export_checks WHERE date > '{}'",
        days_ago(1)
    );
    assert_eq!(s.count(&newest).await, 0, "today is not verified");
    let (code, out, err) = s.cli(&["status"]).await;
    assert_eq!(code, Some(0), "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("campaign_daily"))
        .unwrap();
    assert!(line.contains("3 of 7 days differ"), "{out}");

    // The cap lifted, the next run reloads the days and its verification is clean.
    s.mock.set_faults(Faults::default());
    let daemon = Daemon::start(&s, &toml).await;
    let mismatched = daemon
        .wait_for_sample("rokt_export_verify_mismatched_days", &[])
        .await;
    assert_eq!(mismatched, 0.0);
    assert_eq!(
        sample(
            daemon.addr,
            "rokt_export_verify_runs_total",
            &[("outcome", "clean")]
        )
        .await,
        Some(1.0)
    );
    daemon.stop().await;
    let (_, out, _) = s.cli(&["status"]).await;
    assert!(out.contains("7 days match"), "{out}");
    s.mock.stop().await;
}

#[tokio::test]
async fn an_unreachable_api_or_database_exits_69_and_says_which() {
    let s = setup(&format!("[api]\nmax_retries = 0\n{ONE_ACCOUNT}")).await;
    let (from, to) = (days_ago(3).to_string(), days_ago(1).to_string());
    s.load("campaign_daily", days_ago(3), days_ago(1)).await;
    let verify = ["verify", "campaign_daily", "--from", &from, "--to", &to];

    // Nothing listens where the API should be: the account cannot be verified, which is not
    // "the numbers differ" (1) but "a service is unreachable" (69).
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let no_api = [("ROKT_API_BASE_URL", closed.as_str())];
    let (code, out, err) = s.cli_with(&verify, &no_api).await;
    assert_eq!(code, Some(69), "{out}{err}");
    assert!(out.contains("3141592"), "{out}{err}");
    let json_args = [&verify[..], &["--format", "json"]].concat();
    let (code, out, err) = s.cli_with(&json_args, &no_api).await;
    assert_eq!(code, Some(69), "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["outcome"], "failed", "{out}");

    // The database does not answer: 69 too, before any API request.
    s.mock.reset_counters();
    let no_db = [("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing")];
    let (code, out, err) = s.cli_with(&verify, &no_db).await;
    assert_eq!(code, Some(69), "{out}{err}");
    assert!(err.to_lowercase().contains("database"), "{err}");
    assert_eq!(s.mock.counters().api_requests, 0);
    s.mock.stop().await;
}

//! The daemon end to end: real Postgres, the simulated Rokt API over loopback, the daemon either
//! in-process through `run_until_stopped` (a port-0 listener and a oneshot to stop it) or as real
//! child processes of the built binary (replicas, SIGTERM).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rokt_export::config::{Config, Env};
use rokt_export::daemon::{DaemonError, run_until_stopped};
use rokt_export::mock::{Faults, MockConfig, MockServer};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::helpers::{TestDb, binary, with_database};

const APP_ID: &str = "daemon-test-app";
const APP_SECRET: &str = "daemon-test-secret";
const JOB: &str = "every_second";

/// The simulated API with every answer delayed by `latency_ms`.
async fn mock_api(latency_ms: u64) -> MockServer {
    let server = MockServer::start(MockConfig {
        app_id: APP_ID.into(),
        app_secret: APP_SECRET.into(),
        accounts: vec!["3141592".into()],
        ..MockConfig::default()
    })
    .await
    .expect("start the simulated API");
    server.set_faults(Faults {
        latency_ms,
        ..Faults::default()
    });
    server
}

/// One Query API job on `schedule`; each run is one window of one account (the last 7 days), so
/// one API request.
fn jobs_toml(listen: &str, grace_secs: u64, schedule: &str, run_on_start: bool) -> String {
    jobs_toml_with(listen, grace_secs, schedule, run_on_start, "")
}

/// [`jobs_toml`] with more keys for the job.
fn jobs_toml_with(
    listen: &str,
    grace_secs: u64,
    schedule: &str,
    run_on_start: bool,
    extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = "{listen}"
shutdown_grace_secs = {grace_secs}

# Fixed units: no accounts request before the windows (some tests slow every API answer down).
[defaults]
timezone = "UTC"
currency = "USD"

[[jobs]]
name = "{JOB}"
schedule = "{schedule}"
accounts = ["3141592"]
report = "campaigns"
dimensions = ["campaign_id"]
metrics = ["impressions", "referrals"]
run_on_start = {run_on_start}
{extra}
"#
    )
}

/// `[server] listen` for every test daemon: port 0, so that no two tests (or test processes)
/// can race for a port. In-process daemons get a listener bound by the test instead; child
/// processes log the address they bound, and the test reads it from there.
const ANY_PORT: &str = "127.0.0.1:0";

/// A daemon running in this test's runtime.
struct InProcess {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), DaemonError>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    async fn start(toml: &str, database_url: &str, api: &MockServer) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.toml");
        std::fs::write(&path, toml).unwrap();
        let env = Env::from_pairs([
            ("DATABASE_URL", database_url.to_owned()),
            ("ROKT_API_BASE_URL", api.base_url()),
        ]);
        let config = Config::load(&path, &env).expect("valid test config");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_until_stopped(
            Arc::new(config),
            api.credentials(),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        InProcess {
            addr,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// Asks it to stop and waits (bounded) until it has.
    async fn stop(mut self) -> Result<(), DaemonError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(60), &mut self.task)
            .await
            .expect("the daemon did not stop within 60 s")
            .expect("the daemon task panicked")
    }
}

/// GET `http://addr/path`: status and body; `None` when nothing answers.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    rokt_export::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let response = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Polls `check` every 100 ms until it yields a value, for at most `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/metrics`, parsed by a real Prometheus text-format parser.
async fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = get(addr, "/metrics").await.expect("/metrics answers");
    assert_eq!(status, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text format")
}

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a plain sample"),
        })
        .sum()
}

#[derive(Debug)]
struct Run {
    id: i64,
    status: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    error: Option<String>,
}

/// The job's runs in start order (none while the core tables do not exist yet).
async fn runs(pool: &PgPool) -> Vec<Run> {
    sqlx::query_as::<
        _,
        (
            i64,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<String>,
        ),
    >(
        "SELECT id, status, started_at, finished_at, error FROM rokt.export_runs \
         WHERE job = $1 ORDER BY started_at, id",
    )
    .bind(JOB)
    .fetch_all(pool)
    .await
    .unwrap_or_default()
    .into_iter()
    .map(|(id, status, started_at, finished_at, error)| Run {
        id,
        status,
        started_at,
        finished_at,
        error,
    })
    .collect()
}

fn count(runs: &[Run], status: &str) -> usize {
    runs.iter().filter(|r| r.status == status).count()
}

/// No two runs that did work (`skipped` rows did none) overlap in time.
fn assert_no_overlap(runs: &[Run]) {
    let mut worked: Vec<&Run> = runs.iter().filter(|r| r.status != "skipped").collect();
    worked.sort_by_key(|r| r.started_at);
    for pair in worked.windows(2) {
        let finished = pair[0]
            .finished_at
            .unwrap_or_else(|| panic!("run {} never finished: {:?}", pair[0].id, pair[0]));
        assert!(
            finished <= pair[1].started_at,
            "runs overlap: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test]
async fn a_job_that_outlasts_its_interval_never_overlaps_and_skips_are_counted() {
    let db = TestDb::new().await;
    let api = mock_api(1500).await;
    let daemon = InProcess::start(
        &jobs_toml(ANY_PORT, 30, "* * * * * *", false),
        &db.url,
        &api,
    )
    .await;
    let addr = daemon.addr;
    wait_for("/readyz to answer 200", Duration::from_secs(30), || async {
        get(addr, "/readyz").await.filter(|(s, _)| *s == 200)
    })
    .await;
    let pool = db.pool().await;
    wait_for(
        "three succeeded runs and a skipped firing",
        Duration::from_secs(60),
        || async {
            let m = scrape(addr).await;
            let skipped = value(&m, "rokt_export_skipped_overlaps_total", &[("job", JOB)]);
            let done = value(
                &m,
                "rokt_export_runs_total",
                &[("job", JOB), ("outcome", "succeeded")],
            );
            (done >= 3.0 && skipped >= 1.0).then_some(())
        },
    )
    .await;
    let metrics = scrape(addr).await;
    daemon.stop().await.expect("clean stop");

    let all = runs(&pool).await;
    assert_no_overlap(&all);
    assert_eq!(count(&all, "running"), 0, "{all:?}");
    assert_eq!(
        count(&all, "skipped"),
        0,
        "one process: no lock was contended"
    );

    // Every metric the issue names, read back through a Prometheus parser.
    assert!(
        value(
            &metrics,
            "rokt_export_skipped_overlaps_total",
            &[("job", JOB)]
        ) >= 1.0
    );
    let succeeded = value(
        &metrics,
        "rokt_export_runs_total",
        &[("job", JOB), ("outcome", "succeeded")],
    );
    assert!(succeeded >= 3.0, "{succeeded}");
    assert!(value(&metrics, "rokt_export_rows_written_total", &[("job", JOB)]) > 0.0);
    assert!(
        value(
            &metrics,
            "rokt_export_last_success_timestamp_seconds",
            &[("job", JOB)]
        ) > 1.7e9
    );
    assert!(
        value(
            &metrics,
            "rokt_export_api_requests_total",
            &[("status", "200")]
        ) >= 3.0
    );
    assert!(value(&metrics, "rokt_export_token_renewals_total", &[]) >= 1.0);
    for histogram in [
        "rokt_export_run_duration_seconds",
        "rokt_export_api_request_duration_seconds",
    ] {
        assert!(
            metrics
                .samples
                .iter()
                .any(|s| s.metric.starts_with(histogram)
                    && matches!(s.value, prometheus_parse::Value::Histogram(_))),
            "no histogram {histogram}"
        );
        assert!(
            metrics.docs.keys().any(|k| k == histogram),
            "no HELP for {histogram}"
        );
    }
}

/// A child process of the built binary running `rokt-export run`.
struct Daemon {
    child: Child,
    /// Known once the daemon logged it.
    addr: Option<SocketAddr>,
    log: PathBuf,
}

impl Daemon {
    fn spawn(dir: &Path, name: &str, toml: &str, database_url: &str, api: &MockServer) -> Daemon {
        Daemon::spawn_with(dir, name, toml, database_url, api, &[])
    }

    /// [`Daemon::spawn`] with more environment variables.
    fn spawn_with(
        dir: &Path,
        name: &str,
        toml: &str,
        database_url: &str,
        api: &MockServer,
        env: &[(&str, &Path)],
    ) -> Daemon {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, toml).unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new(binary());
        cmd.arg("--config")
            .arg(&config)
            .args(["--log-format", "json", "run"])
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("ROKT_API_BASE_URL", api.base_url())
            .env("ROKT_APP_ID", APP_ID)
            .env("ROKT_APP_SECRET", APP_SECRET)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon {
            child: cmd.spawn().expect("start rokt-export run"),
            addr: None,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address the daemon bound, from its JSON log line `"listen":"127.0.0.1:PORT"`.
    fn logged_addr(&self) -> Option<SocketAddr> {
        let log = self.log();
        let at = log.find("\"listen\":\"")? + "\"listen\":\"".len();
        let end = log[at..].find('"')?;
        log[at..at + end].parse().ok()
    }

    /// Waits (bounded) until `/readyz` answers 200; returns the daemon's address.
    async fn wait_ready(&mut self) -> SocketAddr {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the daemon exited early ({status}):\n{}", self.log());
            }
            if self.addr.is_none() {
                self.addr = self.logged_addr();
            }
            if let Some(addr) = self.addr
                && get(addr, "/readyz").await.is_some_and(|(s, _)| s == 200)
            {
                return addr;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the daemon was not ready within 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM (with kill(1): no unsafe code needed).
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits until the process exits, at most `limit`; kills it and fails after that.
    async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the daemon did not exit within {limit:?}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed test must not leave a daemon behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test]
async fn two_replicas_on_one_postgres_never_run_a_job_at_once_and_both_make_progress() {
    let db = TestDb::new().await;
    let api = mock_api(700).await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = Daemon::spawn(
        dir.path(),
        "a",
        &jobs_toml(ANY_PORT, 30, "* * * * * *", false),
        &db.url,
        &api,
    );
    let mut b = Daemon::spawn(
        dir.path(),
        "b",
        &jobs_toml(ANY_PORT, 30, "* * * * * *", false),
        &db.url,
        &api,
    );
    let addr_a = a.wait_ready().await;
    let addr_b = b.wait_ready().await;
    let pool = db.pool().await;
    // Progress: each replica has finished runs of its own (succeeded, or skipped because the
    // other held the lock), and the job advanced.
    wait_for(
        "both replicas to have finished runs",
        Duration::from_secs(60),
        || async {
            let done = |m: &prometheus_parse::Scrape| {
                value(
                    m,
                    "rokt_export_runs_total",
                    &[("job", JOB), ("outcome", "succeeded")],
                ) + value(
                    m,
                    "rokt_export_runs_total",
                    &[("job", JOB), ("outcome", "skipped")],
                )
            };
            let (ma, mb) = (scrape(addr_a).await, scrape(addr_b).await);
            let all = runs(&pool).await;
            (done(&ma) >= 2.0
                && done(&mb) >= 2.0
                && count(&all, "succeeded") >= 3
                && count(&all, "skipped") >= 1)
                .then_some(())
        },
    )
    .await;
    a.terminate();
    b.terminate();
    let (status_a, status_b) = (
        a.wait_exit(Duration::from_secs(40)).await,
        b.wait_exit(Duration::from_secs(40)).await,
    );
    assert!(status_a.success(), "a: {status_a}\n{}", a.log());
    assert!(status_b.success(), "b: {status_b}\n{}", b.log());

    let all = runs(&pool).await;
    assert_no_overlap(&all);
    assert_eq!(count(&all, "running"), 0, "{all:?}");
}

#[tokio::test]
async fn sigterm_mid_run_lets_the_window_finish_within_the_grace_period_and_starts_no_other() {
    let db = TestDb::new().await;
    let api = mock_api(2000).await;
    let dir = tempfile::tempdir().unwrap();
    // A yearly cron: only run_on_start runs during the test. One day per window: the run has 8
    // windows of 2 s each, far less than the grace period.
    // systemd's side of Type=notify: a datagram socket named by NOTIFY_SOCKET.
    let socket_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    let mut d = Daemon::spawn_with(
        dir.path(),
        "d",
        &jobs_toml_with(ANY_PORT, 30, "0 0 1 1 *", true, "window_days = 1"),
        &db.url,
        &api,
        &[("NOTIFY_SOCKET", &socket_path)],
    );
    let pool = db.pool().await;
    wait_for("a running window", Duration::from_secs(30), || async {
        (count(&runs(&pool).await, "running") == 1).then_some(())
    })
    .await;
    let sent_at = Utc::now();
    let sent = Instant::now();
    d.terminate();
    let status = d.wait_exit(Duration::from_secs(30 + 10)).await;
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(sent.elapsed() < Duration::from_secs(30 + 10));
    let all = runs(&pool).await;
    assert_eq!(count(&all, "running"), 0, "{all:?}");
    // The window in flight (and one being fetched ahead, if any) finished and committed; no
    // window started after the signal, so the run did not get through its 8 windows.
    let succeeded = count(&all, "succeeded");
    assert!((1..8).contains(&succeeded), "{all:?}\n{}", d.log());
    assert_eq!(succeeded, all.len(), "{all:?}");
    assert!(all.iter().all(|r| r.started_at < sent_at), "{all:?}");

    notify.set_nonblocking(true).unwrap();
    let mut told = String::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = notify.recv(&mut buf) {
        told.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(told.contains("READY=1"), "{told:?}");
    assert!(told.contains("STOPPING=1"), "{told:?}");
}

#[test]
fn run_without_credentials_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobs.toml");
    std::fs::write(&config, jobs_toml(ANY_PORT, 30, "0 0 1 1 *", false)).unwrap();
    let out = crate::helpers::run_binary(
        &["--config", config.to_str().unwrap(), "run"],
        &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
    );
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ROKT_APP_ID"));
}

#[tokio::test]
async fn sigterm_mid_run_past_the_grace_period_rolls_back_and_leaves_nothing_running() {
    let db = TestDb::new().await;
    let api = mock_api(30_000).await;
    let dir = tempfile::tempdir().unwrap();
    let grace = 1;
    let mut d = Daemon::spawn(
        dir.path(),
        "d",
        &jobs_toml(ANY_PORT, grace, "0 0 1 1 *", true),
        &db.url,
        &api,
    );
    let pool = db.pool().await;
    wait_for("a running window", Duration::from_secs(30), || async {
        (count(&runs(&pool).await, "running") == 1).then_some(())
    })
    .await;
    let sent = Instant::now();
    d.terminate();
    // The grace period plus a margin for marking the abandoned window failed.
    let status = d.wait_exit(Duration::from_secs(grace + 15)).await;
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(sent.elapsed() < Duration::from_secs(grace + 15));
    let all = runs(&pool).await;
    assert_eq!(count(&all, "running"), 0, "{all:?}");
    assert_eq!(count(&all, "failed"), 1, "{all:?}");
    assert!(
        all[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("stopped"),
        "{all:?}"
    );
    let (rows,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM rokt.\"{JOB}\""))
        .fetch_one(&pool)
        .await
        .unwrap_or((0,));
    assert_eq!(rows, 0, "the abandoned window was rolled back whole");
}

/// A database that does not exist yet; created on demand, dropped with the value.
struct LateDb {
    admin_url: String,
    name: String,
    url: String,
}

impl LateDb {
    fn new(beside: &TestDb) -> LateDb {
        let name = format!("{}_late", beside.name);
        LateDb {
            admin_url: beside.url.clone(),
            url: with_database(&beside.url, &name),
            name,
        }
    }

    async fn create(&self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE \"{}\"", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
        let _ = admin.close().await;
    }
}

impl Drop for LateDb {
    fn drop(&mut self) {
        crate::helpers::drop_database_blocking(&self.admin_url, &self.name);
    }
}

#[tokio::test]
async fn unreachable_database_at_start_is_not_ready_but_alive_and_recovers() {
    let beside = TestDb::new().await;
    let late = LateDb::new(&beside);
    let api = mock_api(0).await;
    let daemon = InProcess::start(
        &jobs_toml(ANY_PORT, 30, "0 0 1 1 *", false),
        &late.url,
        &api,
    )
    .await;
    let addr = daemon.addr;
    let (status, body) = wait_for("/readyz to answer", Duration::from_secs(10), || async {
        get(addr, "/readyz").await
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database"), "{body}");
    let (status, _) = get(addr, "/healthz").await.expect("/healthz answers");
    assert_eq!(status, 200);
    // Metrics are served without a database too.
    let metrics = scrape(addr).await;
    assert_eq!(
        value(
            &metrics,
            "rokt_export_runs_total",
            &[("job", JOB), ("outcome", "succeeded")]
        ),
        0.0
    );

    late.create().await;
    wait_for(
        "/readyz to turn 200 once the database exists",
        Duration::from_secs(60),
        || async { get(addr, "/readyz").await.filter(|(s, _)| *s == 200) },
    )
    .await;
    let (status, _) = get(addr, "/healthz").await.expect("/healthz answers");
    assert_eq!(status, 200);
    daemon.stop().await.expect("clean stop");
}

#[tokio::test]
async fn database_lost_mid_life_turns_readyz_503_until_it_returns() {
    let db = TestDb::new().await;
    let api = mock_api(0).await;
    let daemon =
        InProcess::start(&jobs_toml(ANY_PORT, 30, "0 0 1 1 *", false), &db.url, &api).await;
    let addr = daemon.addr;
    wait_for("/readyz to answer 200", Duration::from_secs(30), || async {
        get(addr, "/readyz").await.filter(|(s, _)| *s == 200)
    })
    .await;

    // The database goes away for this daemon: no new connections, the open ones cut. (Issued
    // from another database: Postgres refuses to lock out the connection's own.)
    let other = TestDb::new().await;
    let admin = other.pool().await;
    let lose = format!(
        "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS false",
        db.name
    );
    sqlx::query(&lose).execute(&admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db.name)
        .execute(&admin)
        .await
        .unwrap();
    let (_, body) = wait_for("/readyz to answer 503", Duration::from_secs(30), || async {
        get(addr, "/readyz").await.filter(|(s, _)| *s == 503)
    })
    .await;
    assert!(body.contains("database"), "{body}");
    let (status, _) = get(addr, "/healthz").await.expect("/healthz answers");
    assert_eq!(status, 200, "alive while the database is away");

    let restore = format!("ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS true", db.name);
    sqlx::query(&restore).execute(&admin).await.unwrap();
    wait_for(
        "/readyz to turn 200 again",
        Duration::from_secs(30),
        || async { get(addr, "/readyz").await.filter(|(s, _)| *s == 200) },
    )
    .await;
    daemon.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_second_sigterm_cuts_the_grace_period_short_and_leaves_nothing_running() {
    let db = TestDb::new().await;
    let api = mock_api(120_000).await;
    let dir = tempfile::tempdir().unwrap();
    let grace = 100;
    let mut d = Daemon::spawn(
        dir.path(),
        "d",
        &jobs_toml(ANY_PORT, grace, "0 0 1 1 *", true),
        &db.url,
        &api,
    );
    let pool = db.pool().await;
    wait_for("a running window", Duration::from_secs(30), || async {
        (count(&runs(&pool).await, "running") == 1).then_some(())
    })
    .await;
    d.terminate();
    wait_for(
        "the daemon to be stopping",
        Duration::from_secs(30),
        || async { d.log().contains("stopping: no new runs").then_some(()) },
    )
    .await;
    let sent = Instant::now();
    d.terminate();
    // Far below the 100 s grace period the first signal granted.
    let status = d.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(sent.elapsed() < Duration::from_secs(30));
    let all = runs(&pool).await;
    assert_eq!(count(&all, "running"), 0, "{all:?}");
    assert_eq!(count(&all, "failed"), 1, "{all:?}");
}

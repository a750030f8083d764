//! Shared test helpers: a Postgres database per test, the built binary, config files on disk.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::str::FromStr;

/// Where Postgres for the tests comes from, resolved once per test process.
struct Server {
    /// URL of a database we may connect to for CREATE/DROP DATABASE.
    admin_url: String,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

const LOCAL_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn server() -> &'static Server {
    let result = SERVER.get_or_init(|| {
        // Resolve on a separate thread with its own runtime: each #[tokio::test] has its own runtime
        // and a connection must not outlive the runtime that made it.
        std::thread::spawn(resolve_server)
            .join()
            .unwrap_or_else(|_| Err("resolving the test database panicked".into()))
    });
    match result {
        Ok(s) => s,
        Err(message) => panic!("{message}"),
    }
}

fn resolve_server() -> Result<Server, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    for var in ["TEST_DATABASE_URL", "DATABASE_URL"] {
        if let Ok(url) = std::env::var(var)
            && !url.is_empty()
        {
            if !url.starts_with("postgres") {
                continue; // DATABASE_URL may point at the demo's SQLite file
            }
            return match rt.block_on(can_connect(&url)) {
                Ok(()) => Ok(Server { admin_url: url }),
                Err(e) => Err(format!(
                    "{var} is set but Postgres does not answer there: {e}"
                )),
            };
        }
    }
    let local = rt.block_on(can_connect(LOCAL_URL));
    if local.is_ok() {
        return Ok(Server {
            admin_url: LOCAL_URL.into(),
        });
    }
    match start_container() {
        Ok(url) => Ok(Server { admin_url: url }),
        Err(container_error) => Err(format!(
            "no Postgres for the tests. Provide one of:\n  \
             - TEST_DATABASE_URL=postgres://user@host:port/db (a role that may CREATE DATABASE)\n  \
             - a server on {LOCAL_URL} (trust auth), e.g. `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`\n  \
             - a Docker engine, for a testcontainers Postgres\n\
             tried {LOCAL_URL}: {}\ntried testcontainers: {container_error}",
            local.err().unwrap_or_default()
        )),
    }
}

async fn can_connect(url: &str) -> Result<(), String> {
    let conn = PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

/// Starts a throw-away Postgres container; it lives as long as the test process.
fn start_container() -> Result<String, String> {
    use testcontainers::runners::SyncRunner;
    use testcontainers_modules::postgres::Postgres;
    static CONTAINER: OnceLock<testcontainers::Container<Postgres>> = OnceLock::new();
    let container = Postgres::default().start().map_err(|e| e.to_string())?;
    let host = container.get_host().map_err(|e| e.to_string())?;
    let port = container
        .get_host_port_ipv4(5432)
        .map_err(|e| e.to_string())?;
    let _ = CONTAINER.set(container);
    Ok(format!(
        "postgres://postgres:postgres@{host}:{port}/postgres"
    ))
}

/// A fresh database for one test, dropped when the value is dropped (also when the test fails).
pub struct TestDb {
    pub name: String,
    /// URL of the test's own database.
    pub url: String,
    admin_url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin_url = server().admin_url.clone();
        let name = format!("rokt_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the admin database");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        TestDb {
            name,
            url,
            admin_url,
        }
    }

    /// A small pool on the test's database.
    pub async fn pool(&self) -> PgPool {
        let options = PgConnectOptions::from_str(&self.url)
            .expect("test database URL")
            .disable_statement_logging();
        PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database_blocking(&self.admin_url, &self.name);
    }
}

/// Drops database `name` through `admin_url`, from synchronous code (a `Drop`) that may run inside a
/// test's runtime: the async work happens on a thread with its own runtime.
pub fn drop_database_blocking(admin_url: &str, name: &str) {
    let (admin_url, name) = (admin_url.to_owned(), name.to_owned());
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
                let _ = admin.close().await;
            }
        });
    })
    .join();
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a valid Postgres URL");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// The built `rokt-export` binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rokt-export"))
}

/// Runs the binary with `args` and a clean environment (only PATH and what `env` adds).
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rokt-export")
}

/// The shipped jobs.toml.
pub fn shipped_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("jobs.toml")
}

/// Writes `text` to a `jobs.toml` in a fresh temporary directory.
pub fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("jobs.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

/// A minimal valid job, for configs that test one section.
pub const MINIMAL_JOB: &str = r#"
[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592"]
report = "campaigns"
metrics = ["impressions"]
"#;

/// A `MakeWriter` for a tracing subscriber that appends every log line to one shared buffer, so a
/// test can read what was logged.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

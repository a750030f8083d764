//! `rokt-export demo`: the whole pipeline with nothing installed and no credentials.
//!
//! Starts the simulated Rokt API on a loopback port, points every job of the config at it, runs each
//! once over the most recent days into the embedded SQLite file (or `DATABASE_URL` when set), then
//! prints what landed and a query to try.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use chrono::{Days, Utc};

use crate::api::ApiClient;
use crate::cli::DemoArgs;
use crate::config::{Accounts, Backend, Config, DatabaseUrl, ENV_DATABASE_URL, Env};
use crate::exit;
use crate::export::{self, Context, Range, RunRequest};
use crate::mock::{MockConfig, MockServer};
use crate::store::Trigger;

/// The jobs the demo uses when there is no config file: the shipped `jobs.toml`.
const SHIPPED_CONFIG: &str = include_str!("../jobs.toml");

/// Where the demo writes when `DATABASE_URL` is not set.
pub const DEMO_DATABASE_URL: &str = "sqlite://rokt-export.db";

/// Runs the demo; returns the exit code.
pub async fn run(path: &Path, env: &Env, args: &DemoArgs) -> u8 {
    // The demo never talks to the real API, so ROKT_API_BASE_URL is ignored here on purpose.
    let env_without_api = Env::from_pairs(
        env.get(ENV_DATABASE_URL)
            .map(|u| (ENV_DATABASE_URL.to_owned(), u.to_owned())),
    );
    let mut config = if path.exists() {
        match crate::cli::load_config(path, &env_without_api) {
            Ok(c) => c,
            Err(code) => return code,
        }
    } else {
        eprintln!(
            "note: {} not found; using the shipped example jobs",
            path.display()
        );
        match Config::from_toml(
            Path::new("jobs.toml (built in)"),
            SHIPPED_CONFIG,
            &env_without_api,
        ) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::CONFIG;
            }
        }
    };
    if env.get(ENV_DATABASE_URL).is_none() {
        match DatabaseUrl::parse(DEMO_DATABASE_URL) {
            Ok(url) => config.database.url = url,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::CONFIG;
            }
        }
    }

    let today = Utc::now().date_naive();
    let mut accounts: Vec<String> = Vec::new();
    for job in &config.jobs {
        if let Accounts::List(ids) = &job.accounts {
            for id in ids {
                if !accounts.contains(id) {
                    accounts.push(id.clone());
                }
            }
        }
    }
    let mut mock_config = MockConfig {
        today,
        ..MockConfig::default()
    };
    if !accounts.is_empty() {
        mock_config.accounts = accounts;
    }
    let mock = match MockServer::start(mock_config).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: cannot start the simulated Rokt API: {e}");
            return exit::RUN_FAILED;
        }
    };
    config.api.base_url = mock.base_url();
    println!("simulated Rokt API on {}", mock.base_url());
    println!("database: {}", config.database.url);

    let store = match crate::cli::open_store(&config).await {
        Ok(s) => s,
        Err(code) => {
            mock.stop().await;
            return code;
        }
    };
    crate::tls::install_crypto_provider();
    let api = match ApiClient::new(&config.api, mock.credentials()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot build the HTTP client: {e}");
            mock.stop().await;
            return exit::RUN_FAILED;
        }
    };
    let ctx = Context {
        config: Arc::new(config),
        api,
        store: store.clone(),
    };
    let from = today
        .checked_sub_days(Days::new(u64::from(args.days.saturating_sub(1))))
        .unwrap_or(today);
    let mut code = exit::SUCCESS;
    let mut landed = String::new();
    for job in &ctx.config.jobs {
        let request = RunRequest {
            job: job.name.clone(),
            range: Range::Explicit {
                from: Some(from),
                to: Some(today),
            },
            accounts: Vec::new(),
            trigger: Trigger::Demo,
        };
        let result = export::run_job(&ctx, &request, &export::NoProgress).await;
        let job_code = crate::cli::report_run(&ctx.config, result);
        if job_code != exit::SUCCESS && code == exit::SUCCESS {
            code = job_code;
        }
        let rows = store.table_row_count(&job.table).await.unwrap_or(0);
        let _ = writeln!(
            landed,
            "  {:<28} {rows:>8} rows",
            qualified(&ctx.config, &job.table)
        );
    }
    store.close().await;
    mock.stop().await;

    println!();
    println!("what landed:");
    print!("{landed}");
    println!();
    println!("try it:");
    println!("{}", sample_query(&ctx.config));
    code
}

fn qualified(config: &Config, table: &str) -> String {
    match config.database.url.backend() {
        Backend::Postgres => format!("{}.{table}", config.database.schema),
        Backend::Sqlite => table.to_owned(),
    }
}

/// A query worth running against the first Query API job's table.
fn sample_query(config: &Config) -> String {
    let job = config
        .jobs
        .iter()
        .find(|j| matches!(j.kind, crate::config::JobKind::Query(_)));
    let Some(job) = job else {
        return format!(
            "  SELECT * FROM {} LIMIT 10;",
            config
                .jobs
                .first()
                .map_or("export_runs".into(), |j| qualified(config, &j.table))
        );
    };
    let crate::config::JobKind::Query(q) = &job.kind else {
        return String::new();
    };
    let table = qualified(config, &job.table);
    let dims = if q.dimensions.is_empty() {
        "account_id".to_owned()
    } else {
        q.dimensions.join(", ")
    };
    let sums: Vec<String> = q
        .metrics
        .iter()
        .take(3)
        .map(|m| format!("sum({m}) AS {m}"))
        .collect();
    let open = match config.database.url.backend() {
        Backend::Sqlite => "  sqlite3 rokt-export.db".to_owned(),
        Backend::Postgres => "  psql \"$DATABASE_URL\"".to_owned(),
    };
    let order = q
        .metrics
        .first()
        .map_or("1".to_owned(), |m| format!("{m} DESC"));
    format!(
        "{open}\n  SELECT {dims}, {} FROM {table} GROUP BY {dims} ORDER BY {order} LIMIT 10;",
        sums.join(", ")
    )
}

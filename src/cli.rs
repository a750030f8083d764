//! The command line (clap) and what each command does, as a function of parsed arguments.
//!
//! `main.rs` parses [`Cli`] and calls [`execute`]; every command returns an exit code from
//! [`crate::exit`]. Output meant for the user goes to stdout, logs to stderr.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use std::sync::Arc;

use crate::api::ApiClient;
use crate::api::retry::{self, Backoff, Jitter, Policy, Verdict};
use crate::config::{Accounts, Config, ConfigError, Credentials, Env, JobKind};
use crate::exit;
use crate::export::{Context, Range, RunError, RunReport, RunRequest};
use crate::store::{Store, Trigger};
use crate::telemetry::LogFormat;

/// Exports Rokt Reporting API reports into Postgres (or an embedded SQLite file) on cron schedules.
///
/// Jobs are defined in jobs.toml; credentials come from ROKT_APP_ID and ROKT_APP_SECRET (or their
/// _FILE forms, or $CREDENTIALS_DIRECTORY); DATABASE_URL and ROKT_API_BASE_URL override the file.
/// Try it without credentials or a database: `rokt-export demo`.
#[derive(Debug, Parser)]
#[command(name = "rokt-export", version, arg_required_else_help = true)]
pub struct Cli {
    /// The job definitions.
    #[arg(
        long,
        global = true,
        env = "ROKT_EXPORT_CONFIG",
        default_value = "jobs.toml",
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// Log line format (logs go to stderr; verbosity through RUST_LOG).
    #[arg(long, global = true, env = "ROKT_EXPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Run one job now, then exit (same as the `run-now` command).
    #[arg(long = "run-now", value_name = "JOB")]
    pub run_now: Option<String>,

    /// With --run-now: first day to export, inclusive (YYYY-MM-DD).
    #[arg(long, value_name = "DAY", value_parser = parse_day, requires = "run_now")]
    pub from: Option<NaiveDate>,

    /// With --run-now: last day to export, inclusive (YYYY-MM-DD).
    #[arg(long, value_name = "DAY", value_parser = parse_day, requires = "run_now")]
    pub to: Option<NaiveDate>,

    /// With --run-now: only this account (repeatable).
    #[arg(long, value_name = "ID", requires = "run_now")]
    pub account: Vec<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: schedule every job, serve /healthz /readyz /metrics, stop cleanly on SIGTERM.
    Run,
    /// Run one job now, then exit; exit 0 only when every window succeeded.
    RunNow(RunNowArgs),
    /// Check the config without touching the network or the database; print each job with its next three fire times.
    Validate,
    /// Apply the database migrations and create or alter the job tables, then exit.
    Migrate,
    /// Show each job's last run, its outcome, rows, high-water mark and next fire time.
    Status,
    /// Run the whole pipeline against the built-in simulated Rokt API into the embedded database: no credentials, no setup.
    Demo(DemoArgs),
    /// Serve the simulated Rokt API alone (for trying dashboards and for tests).
    MockApi(MockApiArgs),
}

/// Arguments of `run-now`.
#[derive(Debug, Clone, Args)]
pub struct RunNowArgs {
    /// The job's name in jobs.toml.
    pub job: String,
    /// First day to export, inclusive (YYYY-MM-DD). Without --from/--to: the job's normal incremental window.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub from: Option<NaiveDate>,
    /// Last day to export, inclusive (YYYY-MM-DD). Default: today in the job's time zone.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub to: Option<NaiveDate>,
    /// Only this account (repeatable). Default: the job's accounts.
    #[arg(long, value_name = "ID")]
    pub account: Vec<String>,
}

/// Arguments of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// How many recent days to export.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
}

/// Arguments of `mock-api`.
#[derive(Debug, Clone, Args)]
pub struct MockApiArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    /// The app id the simulated token endpoint accepts.
    #[arg(long, default_value = "demo-app-id")]
    pub app_id: String,
    /// The app secret the simulated token endpoint accepts.
    #[arg(long, default_value = "demo-app-secret")]
    pub app_secret: String,
    /// The simulation's today (YYYY-MM-DD): no rows after it. Default: today in UTC.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub today: Option<NaiveDate>,
    /// Account ids the credentials can read, comma-separated. Default: 3141592,2718281.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub accounts: Vec<String>,
    /// Campaigns in each account.
    #[arg(long, default_value_t = 5)]
    pub campaigns: u32,
    /// Creatives in each campaign.
    #[arg(long, default_value_t = 2)]
    pub creatives: u32,
    /// How long an issued access token lasts, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_lifetime_secs: u64,
    /// Seeds every number the simulation serves (the same seed serves the same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 10)
        .ok_or_else(|| format!("\"{s}\" is not a calendar day; write YYYY-MM-DD, e.g. 2025-01-31"))
}

/// Runs the parsed command line and returns the process exit code.
pub async fn execute(cli: Cli) -> u8 {
    let env = Env::from_process();
    let command = match (cli.run_now.clone(), cli.command) {
        (Some(_), Some(_)) => {
            eprintln!(
                "error: --run-now cannot be combined with a command; use either `rokt-export --run-now JOB` or `rokt-export run-now JOB`"
            );
            return exit::USAGE;
        }
        (Some(job), None) => Command::RunNow(RunNowArgs {
            job,
            from: cli.from,
            to: cli.to,
            account: cli.account.clone(),
        }),
        (None, Some(command)) => command,
        (None, None) => {
            eprintln!("error: no command given; see `rokt-export --help`");
            return exit::USAGE;
        }
    };
    match command {
        Command::Validate => validate(&cli.config, &env),
        Command::Run => crate::daemon::command(&cli.config, &env).await,
        Command::RunNow(args) => {
            if let (Some(from), Some(to)) = (args.from, args.to)
                && from > to
            {
                eprintln!("error: --from {from} is after --to {to}");
                return exit::USAGE;
            }
            run_now(&cli.config, &env, &args).await
        }
        Command::Migrate => migrate(&cli.config, &env).await,
        Command::Status => status(&cli.config, &env).await,
        Command::Demo(args) => crate::demo::run(&cli.config, &env, &args).await,
        Command::MockApi(args) => crate::mock::run_standalone(&args).await,
    }
}

/// Connects to the database, retrying a few times; prints the error and returns the exit code.
pub async fn connect_store(config: &Config) -> Result<Store, u8> {
    crate::tls::install_crypto_provider();
    // Four attempts, 0.5 s, 1 s and 2 s apart.
    let policy = Policy {
        backoff: Backoff {
            base: std::time::Duration::from_millis(500),
            jitter: Jitter::Off,
            ..Backoff::default()
        },
        max_retries: Some(3),
    };
    let connected = retry::run(
        &policy,
        |_| Store::connect(&config.database),
        |e| {
            if e.is_unavailable() {
                Verdict::Retry
            } else {
                Verdict::Fail
            }
        },
        |retrying| {
            let (e, attempt) = (retrying.error, retrying.attempt);
            tracing::warn!(error = %e, attempt, "database not reachable yet; retrying");
        },
    )
    .await;
    connected.map_err(|gave_up| {
        let e = gave_up.error;
        eprintln!(
            "error: cannot use the database {}: {e}",
            config.database.url
        );
        if e.is_unavailable() {
            exit::UNAVAILABLE
        } else {
            exit::RUN_FAILED
        }
    })
}

/// Connects and applies the migrations.
pub async fn open_store(config: &Config) -> Result<Store, u8> {
    let store = connect_store(config).await?;
    if let Err(e) = store.migrate().await {
        eprintln!("error: cannot apply the database migrations: {e}");
        return Err(if e.is_unavailable() {
            exit::UNAVAILABLE
        } else {
            exit::RUN_FAILED
        });
    }
    Ok(store)
}

/// `rokt-export migrate`: core tables, then every job's table.
async fn migrate(path: &Path, env: &Env) -> u8 {
    let config = match load_config(path, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut code = exit::SUCCESS;
    for job in &config.jobs {
        match &job.kind {
            JobKind::Query(q) => match store
                .ensure_table(&crate::export::rows::query_table(&job.table, q))
                .await
            {
                Ok(c) if c.created => println!("{}: created table {}", job.name, job.table),
                Ok(c) if c.added.is_empty() => {
                    println!("{}: table {} is up to date", job.name, job.table)
                }
                Ok(c) => println!(
                    "{}: table {} has new columns: {}",
                    job.name,
                    job.table,
                    c.added.join(", ")
                ),
                Err(e) => {
                    eprintln!(
                        "error: {}: cannot create or alter table {}: {e}",
                        job.name, job.table
                    );
                    code = exit::RUN_FAILED;
                }
            },
            JobKind::Generic(_) => println!(
                "{}: table {} is created on the first run (its columns follow the API's fields)",
                job.name, job.table
            ),
        }
    }
    store.close().await;
    if code == exit::SUCCESS {
        println!("migrations applied to {}", config.database.url);
    }
    code
}

/// `rokt-export --run-now JOB` / `rokt-export run-now JOB`.
async fn run_now(path: &Path, env: &Env, args: &RunNowArgs) -> u8 {
    let config = match load_config(path, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.job(&args.job).is_none() {
        let known: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
        eprintln!(
            "error: no job named \"{}\" in {}; jobs are: {}",
            args.job,
            path.display(),
            known.join(", ")
        );
        return exit::CONFIG;
    }
    let credentials = match Credentials::from_env(env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONFIG;
        }
    };
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    // Runs a killed process left `running` (e.g. an earlier --run-now): only jobs whose lock no
    // live process holds are touched, so a daemon's or replica's live runs are safe.
    if let Err(e) = store.fail_stale_runs().await {
        tracing::warn!(error = %e, "cannot mark runs left running by a stopped process as failed");
    }
    crate::tls::install_crypto_provider();
    let api = match ApiClient::new(&config.api, credentials) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot build the HTTP client: {e}");
            return exit::RUN_FAILED;
        }
    };
    let ctx = Context {
        config: Arc::new(config),
        api,
        store: store.clone(),
    };
    let range = if args.from.is_none() && args.to.is_none() {
        Range::Incremental
    } else {
        Range::Explicit {
            from: args.from,
            to: args.to,
        }
    };
    let request = RunRequest {
        job: args.job.clone(),
        range,
        accounts: args.account.clone(),
        trigger: Trigger::RunNow,
    };
    let progress = crate::progress::Terminal::new();
    let result = crate::export::run_job(&ctx, &request, &progress).await;
    progress.finish();
    store.close().await;
    report_run(&ctx.config, result)
}

/// Prints a run's summary and returns its exit code.
pub fn report_run(config: &Config, result: Result<RunReport, RunError>) -> u8 {
    match result {
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
        Ok(report) => {
            print!("{}", crate::progress::summary(config, &report));
            report.exit_code()
        }
    }
}

/// `rokt-export status`.
async fn status(path: &Path, env: &Env) -> u8 {
    let config = match load_config(path, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = store.status().await;
    store.close().await;
    match result {
        Ok(rows) => {
            print!(
                "{}",
                crate::progress::status_table(&config, &rows, chrono::Utc::now())
            );
            exit::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot read the run history: {e}");
            if e.is_unavailable() {
                exit::UNAVAILABLE
            } else {
                exit::RUN_FAILED
            }
        }
    }
}

/// Loads the config, printing the problems and returning the exit code on failure.
pub fn load_config(path: &Path, env: &Env) -> Result<Config, u8> {
    Config::load(path, env).map_err(|e| {
        report_config_error(&e);
        exit::CONFIG
    })
}

fn report_config_error(e: &ConfigError) {
    eprintln!("error: {e}");
}

/// `rokt-export validate`.
fn validate(path: &Path, env: &Env) -> u8 {
    let config = match load_config(path, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    print!("{}", describe_config(&config, env, chrono::Utc::now()));
    exit::SUCCESS
}

/// The text `validate` prints: each job with its next three fire times in its time zone.
pub fn describe_config(config: &Config, env: &Env, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut out = String::new();
    let n = config.jobs.len();
    let _ = writeln!(
        out,
        "{} is valid: {n} job{}",
        config.path.display(),
        if n == 1 { "" } else { "s" }
    );
    let _ = writeln!(out, "  api       {}", config.api.base_url);
    let _ = writeln!(out, "  database  {}", config.database.url);
    let credentials = match Credentials::from_env(env) {
        Ok(c) => format!("from {}", c.source()),
        Err(e) => format!("not usable yet ({e})"),
    };
    let _ = writeln!(out, "  credentials {credentials}");
    for job in &config.jobs {
        let _ = writeln!(out);
        let _ = writeln!(out, "{} ({} job)", job.name, job.kind_name());
        let _ = writeln!(out, "  endpoint  {}", job.endpoint_display());
        let accounts = match &job.accounts {
            Accounts::All => "all (every account the credentials can read)".to_owned(),
            Accounts::List(ids) => ids.join(", "),
        };
        let _ = writeln!(out, "  accounts  {accounts}");
        let table = match config.database.url.backend() {
            crate::config::Backend::Postgres => format!("{}.{}", config.database.schema, job.table),
            crate::config::Backend::Sqlite => job.table.clone(),
        };
        let _ = writeln!(out, "  table     {table}");
        let _ = writeln!(
            out,
            "  window    {} days per request, re-reads the last {} days, {} {}",
            job.window_days,
            job.lookback_days,
            job.currency,
            job.timezone.name()
        );
        let fires: Vec<String> = job
            .schedule
            .upcoming(now.with_timezone(&job.timezone), 3)
            .iter()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
            .collect();
        let _ = writeln!(
            out,
            "  schedule  \"{}\"; next: {}",
            job.schedule.source(),
            fires.join(", ")
        );
    }
    out
}

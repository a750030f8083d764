//! The command line (clap) and what each command does, as a function of parsed arguments.
//!
//! `main.rs` parses [`Cli`] and calls [`execute`]; every command returns an exit code from
//! [`crate::exit`]. Output meant for the user goes to stdout, logs to stderr.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::config::{Accounts, Config, ConfigError, Credentials, Env};
use crate::exit;
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
        Command::Run => not_built("run", 6),
        Command::RunNow(args) => {
            if let (Some(from), Some(to)) = (args.from, args.to)
                && from > to
            {
                eprintln!("error: --from {from} is after --to {to}");
                return exit::USAGE;
            }
            not_built("run-now", 5)
        }
        Command::Migrate => not_built("migrate", 5),
        Command::Status => not_built("status", 5),
        Command::Demo(_) => not_built("demo", 5),
        Command::MockApi(args) => crate::mock::run_standalone(&args).await,
    }
}

fn not_built(command: &str, issue: u32) -> u8 {
    eprintln!("error: `rokt-export {command}` is not built yet (tracked in issue #{issue})");
    exit::RUN_FAILED
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

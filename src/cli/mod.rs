//! The command line: clap's definitions, and one file per command. Only this layer knows clap,
//! stdout and exit codes: the library below takes plain values, returns typed errors, and never
//! prints; each command here turns those into output and an [`Exit`].
//!
//! `main.rs` calls [`main`]. Output meant for the user goes to stdout, logs to stderr.

mod demo;
mod discover;
mod exit;
mod migrate;
mod mock_api;
mod progress;
mod run;
mod run_now;
mod signals;
mod status;
mod summary;
mod table;
mod validate;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, Env};
use crate::store::Store;
use crate::telemetry::LogFormat;
use exit::{Context as _, Exit};

/// The whole program: parses the command line, sets up logging, runs the command on a tokio
/// runtime and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let stderr_is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let colour =
        crate::telemetry::use_colour(stderr_is_terminal, std::env::var_os("NO_COLOR").as_deref());
    // A run on a terminal shows progress bars; the log says less there (see `log_filter`).
    let run_now = cli.run_now.is_some() || matches!(cli.command, Some(Command::RunNow(_)));
    let bars = (run_now
        && progress::stderr_shows_bars(stderr_is_terminal, std::env::var_os("TERM").as_deref()))
    .then(indicatif::MultiProgress::new);
    crate::telemetry::init(crate::telemetry::Logging {
        format: cli.log_format.into(),
        default_filter: log_filter(&cli),
        colour,
        window_detail: bars.is_none() || cli.verbose > 0,
        bars: bars.clone(),
    });
    raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::RUN_FAILED);
        }
    };
    let screen = bars.map(|multi| progress::Bars::new(multi, colour));
    ExitCode::from(runtime.block_on(execute(cli, screen)))
}

/// The log filter when `RUST_LOG` is not set: interactive one-shot commands, whose own output
/// says what happened, log warnings and errors only; the others from INFO; `-v` makes any
/// command log from INFO, and brings back the per-window lines a run on a terminal leaves to its
/// bars; `-vv` adds this program's DEBUG events.
fn log_filter(cli: &Cli) -> &'static str {
    let quiet = matches!(
        cli.command,
        Some(
            Command::Demo(_)
                | Command::Validate(_)
                | Command::Discover(_)
                | Command::Status
                | Command::Migrate
                | Command::Verify(_)
        )
    );
    match cli.verbose {
        0 if quiet => crate::telemetry::QUIET_FILTER,
        0 | 1 => crate::telemetry::DEFAULT_FILTER,
        _ => crate::telemetry::VERBOSE_FILTER,
    }
}

/// The soft limit on open files this process raises itself to, at most (when the hard limit
/// allows): database and API connections, the health port's clients and a few files.
const OPEN_FILES_WANTED: u64 = 65_536;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, at most [`OPEN_FILES_WANTED`]: a common
/// soft default of 1,024 (or a `ulimit -n 256`) should not be what makes connections fail.
/// Never lowers it; a failure is logged and harmless.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let wanted = hard.min(OPEN_FILES_WANTED);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return;
    }
    let raised = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        },
    );
    match raised {
        Ok(()) => tracing::debug!(from = soft, to = wanted, "raised the open files limit"),
        Err(e) => tracing::warn!(soft, error = %e, "cannot raise the open files limit"),
    }
}

/// Exports Rokt Reporting API reports into Postgres (or an embedded SQLite file) on cron schedules.
///
/// Jobs are defined in jobs.toml; credentials come from ROKT_APP_ID and ROKT_APP_SECRET (or their
/// _FILE forms, or $CREDENTIALS_DIRECTORY); DATABASE_URL and ROKT_API_BASE_URL override the file.
/// Try it without credentials or a database: `rokt-export demo`.
#[derive(Debug, Parser)]
#[command(name = "rokt-export", version, arg_required_else_help = true)]
pub(crate) struct Cli {
    /// The job definitions.
    #[arg(
        long,
        global = true,
        env = "ROKT_EXPORT_CONFIG",
        default_value = "jobs.toml",
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// Log line format (logs go to stderr; verbosity through -v or RUST_LOG).
    #[arg(long, global = true, env = "ROKT_EXPORT_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,

    /// More log lines: -v logs each window of a run on a terminal too (above its progress bars)
    /// and INFO for demo, validate, discover, status, migrate and verify; -vv adds DEBUG. RUST_LOG
    /// (LEVEL and TARGET=LEVEL directives, comma-separated) overrides both.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

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

    /// With --run-now: replace each account's rows and state (see run-now --help).
    #[arg(long, requires = "run_now")]
    pub reload: bool,

    /// With --run-now: an answer without rows empties days that hold rows (see run-now --help).
    #[arg(long, requires = "run_now")]
    pub allow_empty: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The daemon: schedule every job, serve /healthz /readyz /metrics, stop cleanly on SIGTERM.
    Run,
    /// Run one job now, then exit; exit 0 only when every window succeeded.
    RunNow(RunNowArgs),
    /// Check the config without touching the network or the database; print each job with its next three fire times (--online: also ask the API and the database).
    Validate(ValidateArgs),
    /// List the accounts the credentials read and what each report offers them, and print ready-to-paste [[jobs]] blocks.
    Discover(DiscoverArgs),
    /// Apply the database migrations and create or alter the job tables, then exit.
    Migrate,
    /// Show each job's last run, its outcome, rows, high-water mark and next fire time.
    Status,
    /// Run the whole pipeline against the built-in simulated Rokt API into a database of its own: no credentials, no setup.
    Demo(DemoArgs),
    /// Serve the simulated Rokt API alone (for trying dashboards and for tests).
    MockApi(MockApiArgs),
    /// Compare a job's table with the API's own totals, per account and day; exit 0 when every day matches, 1 when one differs.
    ///
    /// For each account and each day of the range, the sum of every additive metric of the job
    /// (counts and money, as src/catalogue.rs classes them) over the table's rows is compared
    /// with the API's total for that day, asked for as the export asks: the job's report, the
    /// account's time zone and currency, interval "day", no dimensions. Rates, ratios, averages
    /// and unique_* counts are not sums, so they are listed as not checked. Money compares at the
    /// API's precision (the table's sum rounded to the decimals the API writes), exactly, never
    /// through a float. A day the table holds no row for, while the API has numbers, is reported
    /// as not loaded.
    ///
    /// Cost: one Query API request per account and 31 days, with one row per day in its answer
    /// (plus GET /v1/query/accounts, at most once per 5 minutes, for jobs that read each account
    /// in its own zone and currency or all accounts).
    ///
    /// Every comparison is appended to the table export_checks (`status` shows the latest per
    /// job). `verify = true` on a job makes the daemon do the same after each successful run,
    /// for the days the run re-read.
    ///
    /// Generic jobs (`endpoint = ...`) cannot be verified: their fields have no catalogue saying
    /// which of them add up, and the legacy endpoints they usually read total a range in their own
    /// shape. A `totals` request for them was considered and left out; verify a Query API job that
    /// reads the same numbers instead.
    ///
    /// Exit codes: 0 every day checked matches; 1 a day differs (or is not loaded); 69 the API or
    /// the database unreachable; 78 the configuration, the credentials, or a job that cannot be
    /// verified.
    Verify(VerifyArgs),
}

/// Arguments of `run-now`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunNowArgs {
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
    /// Replace each account's rows in the job's table, and its state, by what --from..--to (or
    /// from the job's start_date) loads. For a job whose time zone or currency changed: rows
    /// outside the range are gone afterwards, so give the whole range you want. The deletions
    /// commit with each account's first window: a run that loads nothing keeps the old rows.
    #[arg(long)]
    pub reload: bool,
    /// An answer with no rows at all empties the window's days. Without it such an answer is
    /// taken for a hiccup: the stored rows are kept and a warning says so.
    #[arg(long)]
    pub allow_empty: bool,
}

/// Arguments of `verify`.
#[derive(Debug, Clone, Args)]
pub(crate) struct VerifyArgs {
    /// The job's name in jobs.toml.
    pub job: String,
    /// First day to check, inclusive (YYYY-MM-DD). Default: lookback_days before --to.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub from: Option<NaiveDate>,
    /// Last day to check, inclusive (YYYY-MM-DD); never later than yesterday. Default:
    /// yesterday in each account's report zone, or its high-water mark when that is earlier.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub to: Option<NaiveDate>,
    /// Only this account (repeatable). Default: the job's accounts.
    #[arg(long, value_name = "ID")]
    pub account: Vec<String>,
    /// How to print what was found.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
}

/// The output of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum VerifyFormat {
    /// A table of the days that differ and a last line with the counts.
    Text,
    /// One JSON object, for scripts (numbers as exact decimal strings).
    Json,
}

/// Arguments of `validate`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ValidateArgs {
    /// Also get a token, list the accounts, check every job's dimensions and metrics against
    /// each account's /help, and check that the database answers and that the role may create
    /// and alter the tables (nothing is created or changed). Exit 78 when something needs
    /// fixing, 69 when the API or the database cannot be reached.
    #[arg(long)]
    pub online: bool,
}

/// Arguments of `discover`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DiscoverArgs {
    /// Only this account (repeatable). Default: every account the credentials read.
    #[arg(long, value_name = "ID")]
    pub account: Vec<String>,
    /// Only this report: campaigns or transactions. Default: both.
    #[arg(long, value_name = "REPORT", value_parser = parse_report)]
    pub report: Option<crate::catalogue::Report>,
    /// Write the jobs to this file instead of stdout; an existing file is refused unless --force.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With --output: overwrite the file if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
}

fn parse_report(s: &str) -> Result<crate::catalogue::Report, String> {
    use crate::catalogue::Report;
    Report::parse(s).ok_or_else(|| {
        let hint = crate::config::suggest(s, Report::NAMES.iter().copied())
            .map(|r| format!(" (did you mean \"{r}\"?)"))
            .unwrap_or_default();
        format!(
            "\"{s}\" is not a Query API report{hint}; reports: {}",
            Report::NAMES.join(", ")
        )
    })
}

/// Arguments of `demo`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// How many recent days to export.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
    /// The database to write to, instead of the demo's own file rokt-export-demo.db: an empty
    /// database, or one only the demo has used (DATABASE_URL is never used by the demo).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

/// Arguments of `mock-api`.
#[derive(Debug, Clone, Args)]
pub(crate) struct MockApiArgs {
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
    let invalid = || format!("\"{s}\" is not a calendar day; write YYYY-MM-DD, e.g. 2025-01-31");
    // chrono also accepts unpadded fields ("2025-1-5"); the contract's form is exactly 10 characters.
    if s.len() != 10 {
        return Err(invalid());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| invalid())
}

/// Log line format, as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormatArg {
    /// Readable lines for a terminal or the journal.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> LogFormat {
        match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// The longest line of an error message printed on stderr, in characters.
const MAX_MESSAGE_CHARS: usize = 4_000;

/// Runs the parsed command line and returns the process exit code; a failure's message goes to
/// stderr.
async fn execute(cli: Cli, bars: Option<progress::Bars>) -> u8 {
    match dispatch(cli, bars).await {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            if let Some(message) = e.message() {
                // It may quote an API's or a database's text: one line per thing this program
                // says, no terminal escapes.
                let message = crate::telemetry::sanitize_message(message, MAX_MESSAGE_CHARS);
                eprintln!("error: {message}");
            }
            e.code()
        }
    }
}

async fn dispatch(cli: Cli, bars: Option<progress::Bars>) -> Result<(), Exit> {
    let env = Env::from_process();
    let command = match (cli.run_now.clone(), cli.command) {
        (Some(_), Some(_)) => {
            return Err(Exit::usage(
                "--run-now cannot be combined with a command; use either `rokt-export --run-now JOB` or `rokt-export run-now JOB`",
            ));
        }
        (Some(job), None) => Command::RunNow(RunNowArgs {
            job,
            from: cli.from,
            to: cli.to,
            account: cli.account.clone(),
            reload: cli.reload,
            allow_empty: cli.allow_empty,
        }),
        (None, Some(command)) => command,
        (None, None) => return Err(Exit::usage("no command given; see `rokt-export --help`")),
    };
    let path = cli.config.as_path();
    match command {
        Command::Validate(args) => validate::validate(path, &env, &args).await,
        Command::Discover(args) => discover::discover(path, &env, &args).await,
        Command::Run => run::run(path, &env).await,
        Command::RunNow(args) => run_now::run_now(path, &env, &args, bars).await,
        Command::Migrate => migrate::migrate(path, &env).await,
        Command::Status => status::status(path, &env).await,
        Command::Demo(args) => demo::demo(path, &env, &args).await,
        Command::MockApi(args) => mock_api::mock_api(&args).await,
        Command::Verify(args) => verify::verify(path, &env, &args).await,
    }
}

/// Loads and validates the config.
fn load_config(path: &Path, env: &Env) -> Result<Config, Exit> {
    Ok(Config::load(path, env)?)
}

/// Connects to the database: four attempts, 0.5 s, 1 s and 2 s apart, while it is unreachable.
async fn connect_store(config: &Config) -> Result<Store, Exit> {
    crate::tls::install_crypto_provider();
    crate::store::while_unavailable(|_| Store::connect(&config.database))
        .await
        .context(format_args!(
            "cannot use the database {}",
            config.database.url
        ))
}

/// Connects and applies the migrations.
async fn open_store(config: &Config) -> Result<Store, Exit> {
    let store = connect_store(config).await?;
    store
        .migrate()
        .await
        .context("cannot apply the database migrations")?;
    Ok(store)
}

/// `table` as a person finds it in the database: schema-qualified on Postgres.
fn qualified(config: &Config, table: &str) -> String {
    crate::store::qualified(&config.database, table)
}

//! The configuration: `jobs.toml` says *what* to export, the environment carries secrets and
//! per-deployment overrides.
//!
//! This file holds the validated domain types the rest of the program uses ([`Config`], [`Job`],
//! [`JobKind`]...) and [`Env`]. Loading them is split by concern, so that each rule of the format
//! has one home and no file mixes the format's rules with the walk's mechanics:
//!
//! - `keys.rs`: the table that defines every key once (where it may appear, its default, its
//!   range or allowed words, its doc). It drives the allowed-keys check, the scalar readers,
//!   inheritance from `[defaults]` and the README's reference, so a new key is a row there.
//! - `parse.rs`: the document and its sections, collecting every problem with its file, line and
//!   key instead of stopping at the first; `job.rs`: one job and its two kinds (most of the
//!   format's rules); `values.rs`: reading and checking one value, and a table's scalar keys
//!   resolved against their defaults; `context.rs`: the walk's context that collects the
//!   problems, a leaf so the other three extend it without importing one another.
//! - `database_url.rs`: database URLs, and the one place that knows where their secrets are.
//! - [`template`]: placeholders in generic jobs; [`credentials`]: the app credentials, read from
//!   the environment only; `api_url.rs`: the rules of `[api] base_url` (https, no userinfo);
//!   [`account_id`]: what an account id may be.
//!
//! Nothing here touches the network or a database.

pub(crate) mod account_id;
mod api_url;
mod context;
pub(crate) mod credentials;
mod database_url;
mod error;
mod job;
mod keys;
mod parse;
pub mod template;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;

pub use crate::catalogue::Report;
use crate::schedule::Schedule;
pub(crate) use api_url::check_base_url;
pub use api_url::printable as printable_url;
pub use credentials::{CredentialSource, Credentials, CredentialsError};
pub use database_url::{Backend, DatabaseUrl, redact_url};
pub use error::{ConfigError, Problem, UnknownJob};
pub use job::SYSTEM_COLUMNS;
pub(crate) use job::is_usable_slug;
pub use keys::{ReferenceRow, reference};
use template::Template;

/// Environment variable that overrides `[database] url`.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// Environment variable that overrides `[api] base_url`.
pub const ENV_API_BASE_URL: &str = "ROKT_API_BASE_URL";

/// A snapshot of the process environment. Passed explicitly so that tests never mutate the real one.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The current process environment (variables that are not valid UTF-8 are skipped).
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of the given pairs (for tests and embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Sets `name` (builder style, for tests).
    pub fn with(mut self, name: &str, value: &str) -> Env {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub api: ApiConfig,
    pub database: DatabaseConfig,
    pub server: ServerConfig,
    pub jobs: Vec<Job>,
}

/// `[api]`: where the Rokt API is and how politely to talk to it.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Without a trailing slash, e.g. `https://api.rokt.com`.
    pub base_url: String,
    /// Path of the OAuth 2.0 token endpoint, e.g. `/auth/oauth2/token`.
    pub token_path: String,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Requests in flight at once, across all jobs.
    pub max_concurrent_requests: usize,
    /// Retries per request for 401, 429, 5xx, timeouts and resets.
    pub max_retries: u32,
    /// The largest answer body taken, counted decompressed.
    pub max_body_bytes: u64,
    /// Whether `base_url` may be plain `http://` to a host that is not this machine.
    pub allow_insecure_http: bool,
}

/// `[database]`.
#[derive(Clone)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    /// Postgres schema for every table this tool owns (ignored by SQLite).
    pub schema: String,
    /// The longest any one statement may run (Postgres `statement_timeout`).
    pub statement_timeout: Duration,
}

impl DatabaseConfig {
    /// The statement timeout when `[database] statement_timeout_secs` is not set.
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

    /// `url` and `schema`, with the default statement timeout.
    pub fn new(url: DatabaseUrl, schema: impl Into<String>) -> DatabaseConfig {
        DatabaseConfig {
            url,
            schema: schema.into(),
            statement_timeout: DatabaseConfig::DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url)
            .field("schema", &self.schema)
            .finish()
    }
}

/// `[server]`: the health and metrics listener of `run`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// How long a stopping daemon lets running windows finish.
    pub shutdown_grace: Duration,
}

/// One `[[jobs]]` entry, with `[defaults]` applied.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub schedule: Schedule,
    /// The report's time zone, and the zone the cron is read in; `None`: each account's own zone
    /// (as One Platform shows it), and the cron read in UTC.
    pub timezone: Option<Tz>,
    /// The report's currency; `None`: each account's own currency.
    pub currency: Option<String>,
    /// Days re-read on every scheduled run.
    pub lookback_days: u32,
    /// At most this many days per API request.
    pub window_days: u32,
    /// The longest one window may take (requests, retries, commit) before it is rolled back.
    pub window_timeout: Duration,
    /// Where a job with no history starts; without it, a first run starts `lookback_days` ago.
    pub start_date: Option<NaiveDate>,
    pub accounts: Accounts,
    /// Destination table (a safe, unquoted-compatible SQL identifier).
    pub table: String,
    /// Run once as soon as the daemon starts, besides the schedule.
    pub run_on_start: bool,
    /// After each successful daemon run, compare the days it re-read with the API's totals and
    /// record the result in `export_checks` (Query API jobs; see `verify`).
    pub verify: bool,
    pub kind: JobKind,
}

/// Which accounts a job reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounts {
    /// Every account `GET /v1/query/accounts` returns.
    All,
    List(Vec<String>),
}

/// The two kinds of job.
#[derive(Debug, Clone)]
pub enum JobKind {
    /// A Query API report (`report = "campaigns"`).
    Query(QueryJob),
    /// Any other endpoint, described by method, path, parameters, where the rows are and their key.
    Generic(GenericJob),
}

/// A Query API job.
#[derive(Debug, Clone)]
pub struct QueryJob {
    pub report: Report,
    pub dimensions: Vec<String>,
    pub metrics: Vec<String>,
    /// The grain: the dimensions that, with `account_id` and `date`, identify a row. The job's
    /// `key`, else its dimensions but those that only describe another one it asks for
    /// (`campaign_name` beside `campaign_id`; see `catalogue`).
    pub key: Vec<String>,
}

impl QueryJob {
    /// A job of `report` with `dimensions` and `metrics`, keyed on the dimensions' grain.
    pub fn new(report: Report, dimensions: Vec<String>, metrics: Vec<String>) -> QueryJob {
        let key = report
            .grain(&dimensions)
            .into_iter()
            .map(str::to_owned)
            .collect();
        QueryJob {
            report,
            dimensions,
            metrics,
            key,
        }
    }
}

/// HTTP methods a generic job may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub const NAMES: &'static [&'static str] = &["GET", "POST"];

    /// `GET` or `POST`, in any case.
    pub fn parse(s: &str) -> Option<Method> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Some(Method::Get),
            "POST" => Some(Method::Post),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A job against any other endpoint.
#[derive(Debug, Clone)]
pub struct GenericJob {
    pub method: Method,
    pub endpoint: Template,
    /// Query parameters in the order written.
    pub query: Vec<(String, Template)>,
    /// JSON body; strings in it may hold placeholders.
    pub body: Option<BodyTemplate>,
    /// JSON pointer to the array of rows (`""` for a top-level array).
    pub records: String,
    /// Fields that, with `account_id` and the window's start day, identify a row.
    pub key: Vec<String>,
}

/// A JSON body whose strings may hold placeholders.
#[derive(Debug, Clone)]
pub enum BodyTemplate {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Template),
    Array(Vec<BodyTemplate>),
    Object(Vec<(String, BodyTemplate)>),
}

impl BodyTemplate {
    /// The JSON body with placeholders expanded.
    pub fn expand(&self, values: &template::Values<'_>) -> serde_json::Value {
        use serde_json::Value;
        match self {
            BodyTemplate::Null => Value::Null,
            BodyTemplate::Bool(b) => Value::Bool(*b),
            BodyTemplate::Number(n) => Value::Number(n.clone()),
            BodyTemplate::String(t) => Value::String(t.expand(values)),
            BodyTemplate::Array(items) => {
                Value::Array(items.iter().map(|i| i.expand(values)).collect())
            }
            BodyTemplate::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expand(values)))
                    .collect(),
            ),
        }
    }

    fn uses(&self, p: template::Placeholder) -> bool {
        match self {
            BodyTemplate::String(t) => t.uses(p),
            BodyTemplate::Array(items) => items.iter().any(|i| i.uses(p)),
            BodyTemplate::Object(fields) => fields.iter().any(|(_, v)| v.uses(p)),
            _ => false,
        }
    }
}

impl GenericJob {
    /// Whether any part of the request depends on the account.
    pub fn uses_account(&self) -> bool {
        let p = template::Placeholder::AccountId;
        self.endpoint.uses(p)
            || self.query.iter().any(|(_, t)| t.uses(p))
            || self.body.as_ref().is_some_and(|b| b.uses(p))
    }
}

impl Job {
    /// The zone the job's cron is read in: its time zone, or UTC when each account reports in
    /// its own.
    pub fn cron_zone(&self) -> Tz {
        self.timezone.unwrap_or(Tz::UTC)
    }

    /// "query" or "generic", for listings.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            JobKind::Query(_) => "query",
            JobKind::Generic(_) => "generic",
        }
    }

    /// The endpoint the job calls, with placeholders, for listings.
    pub fn endpoint_display(&self) -> String {
        match &self.kind {
            JobKind::Query(q) => format!(
                "POST /v1/query/accounts/{{account_id}}{}",
                q.report.path_suffix()
            ),
            JobKind::Generic(g) => format!("{} {}", g.method.as_str(), g.endpoint.source()),
        }
    }
}

impl Config {
    /// Reads and validates `path`, applying the overrides in `env`.
    pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Config::from_toml(path, &text, env)
    }

    /// Validates TOML text; `path` is only used in messages.
    pub fn from_toml(path: &Path, text: &str, env: &Env) -> Result<Config, ConfigError> {
        parse::parse(path, text, env)
    }

    /// Only the `[api]` section of `path` with the environment's overrides, for a command that
    /// needs no jobs (`discover`): a missing file reads as an empty one (every key at its
    /// default), and nothing outside `[api]` is checked.
    pub fn load_api(path: &Path, env: &Env) -> Result<ApiConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(ConfigError::Unreadable {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        parse::parse_api(path, &text, env)
    }

    /// The job called `name`; else which jobs there are, and the one it is a likely typo of.
    pub fn job(&self, name: &str) -> Result<&Job, UnknownJob> {
        self.jobs
            .iter()
            .find(|j| j.name == name)
            .ok_or_else(|| UnknownJob {
                name: name.to_owned(),
                path: self.path.clone(),
                suggestion: suggest(name, self.jobs.iter().map(|j| j.name.as_str()))
                    .map(str::to_owned),
                known: self.jobs.iter().map(|j| j.name.clone()).collect(),
            })
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo: at most two
/// edits (a quarter of the candidate's length for long ones), and fewer edits than the candidate
/// has characters, so that a short unrelated word is not "corrected" into it.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_metadata_columns_cannot_be_dimensions() {
        for name in ["_run_id", "_loaded_at", "_row_hash", "_extra"] {
            let text = format!(
                "[[jobs]]\nname = \"j\"\nschedule = \"0 5 * * *\"\naccounts = [\"1\"]\n\
                 report = \"campaigns\"\ndimensions = [\"{name}\"]\nmetrics = [\"impressions\"]\n"
            );
            let Err(e) = Config::from_toml(Path::new("jobs.toml"), &text, &Env::default()) else {
                panic!("a dimension named {name} was accepted");
            };
            let p = &e.problems()[0];
            assert_eq!(p.line, Some(6), "{p:?}");
            assert!(
                p.message.contains("column every job table already has"),
                "{p:?}"
            );
        }
    }

    #[test]
    fn an_unknown_job_lists_the_jobs_and_the_likely_one() {
        let text = "[[jobs]]\nname = \"campaign_daily\"\nschedule = \"0 5 * * *\"\n\
                    accounts = [\"1\"]\nreport = \"campaigns\"\nmetrics = [\"impressions\"]\n";
        let Ok(config) = Config::from_toml(Path::new("jobs.toml"), text, &Env::default()) else {
            panic!("the config is valid");
        };
        assert!(config.job("campaign_daily").is_ok());
        let Err(e) = config.job("campaign_dialy") else {
            panic!("found a job that is not there");
        };
        assert_eq!(
            e.to_string(),
            "no job named \"campaign_dialy\" in jobs.toml (did you mean \"campaign_daily\"?); \
             jobs are: campaign_daily"
        );
        let Err(e) = config.job("zzz") else {
            panic!("found a job that is not there");
        };
        assert_eq!(
            e.to_string(),
            "no job named \"zzz\" in jobs.toml; jobs are: campaign_daily"
        );
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["schedule", "accounts", "metrics"];
        assert_eq!(suggest("schedul", keys.iter().copied()), Some("schedule"));
        assert_eq!(suggest("acounts", keys.iter().copied()), Some("accounts"));
        assert_eq!(suggest("zzz", keys.iter().copied()), None);
        // Short candidates are not reached from unrelated words.
        assert_eq!(suggest("x", ["a", "ab"].into_iter()), None);
        assert_eq!(suggest("urls", ["url", "schema"].into_iter()), Some("url"));
        // Long candidates allow a quarter of their length: a swapped pair is two edits.
        let zones = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name());
        assert_eq!(suggest("America/New_Yrok", zones), Some("America/New_York"));
        assert_eq!(
            suggest(
                "Nowhere/Land",
                chrono_tz::TZ_VARIANTS.iter().map(|z| z.name())
            ),
            None
        );
    }
}

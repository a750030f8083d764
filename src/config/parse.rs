//! Turns `jobs.toml` into a [`Config`], reporting every problem with its line and key.
//!
//! We walk toml's spanned tree by hand instead of deriving `Deserialize`, because serde stops at the
//! first error and forgets where a value was; a user fixing a config wants all problems at once.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::template::Template;
use super::{
    Accounts, ApiConfig, BodyTemplate, Config, ConfigError, DatabaseConfig, DatabaseUrl,
    ENV_API_BASE_URL, ENV_DATABASE_URL, Env, GenericJob, Job, JobKind, Method, Problem, QueryJob,
    Report, ServerConfig,
};
use crate::schedule::Schedule;

const TOP_KEYS: &[&str] = &["api", "database", "server", "defaults", "jobs"];
const API_KEYS: &[&str] = &[
    "base_url",
    "token_path",
    "request_timeout_secs",
    "connect_timeout_secs",
    "max_concurrent_requests",
    "max_retries",
];
const DATABASE_KEYS: &[&str] = &["url", "schema"];
const SERVER_KEYS: &[&str] = &["listen", "shutdown_grace_secs"];
const DEFAULTS_KEYS: &[&str] = &[
    "timezone",
    "currency",
    "lookback_days",
    "window_days",
    "start_date",
];
const COMMON_JOB_KEYS: &[&str] = &[
    "name",
    "schedule",
    "accounts",
    "table",
    "run_on_start",
    "timezone",
    "currency",
    "lookback_days",
    "window_days",
    "start_date",
];
const QUERY_JOB_KEYS: &[&str] = &["report", "dimensions", "metrics"];
const GENERIC_JOB_KEYS: &[&str] = &["method", "endpoint", "query", "body", "records", "key"];

/// Every key of every section, as the README's configuration reference must list them.
pub const REFERENCE: &[(&str, &[&str])] = &[
    ("api", API_KEYS),
    ("database", DATABASE_KEYS),
    ("server", SERVER_KEYS),
    ("defaults", DEFAULTS_KEYS),
    ("jobs", COMMON_JOB_KEYS),
    ("jobs", QUERY_JOB_KEYS),
    ("jobs", GENERIC_JOB_KEYS),
];

/// Columns every job table has; a dimension, metric or key field may not take these names.
const RESERVED_COLUMNS: &[&str] = &[
    "account_id",
    "date",
    "window_start",
    "currency",
    "timezone",
    "_run_id",
    "_loaded_at",
    "_row_hash",
    "_extra",
];
/// Tables the tool owns besides the job tables.
const RESERVED_TABLES: &[&str] = &["export_runs", "export_state", "_sqlx_migrations"];

pub const DEFAULT_BASE_URL: &str = "https://api.rokt.com";
pub const DEFAULT_TOKEN_PATH: &str = "/auth/oauth2/token";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rokt-export.db";
pub const DEFAULT_SCHEMA: &str = "rokt";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

pub(super) fn parse(path: &Path, text: &str, env: &Env) -> Result<Config, ConfigError> {
    let mut cx = Cx {
        text,
        problems: Vec::new(),
    };
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let (line, column) = e
                .span()
                .map(|s| cx.position(s.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: vec![Problem {
                    line,
                    column,
                    key: String::new(),
                    message: format!("not valid TOML: {}", e.message().trim()),
                }],
            });
        }
    };
    let root = root.get_ref();
    cx.check_keys(root, "", TOP_KEYS);

    let api_table = cx.table(root, "", "api");
    let api = cx.api(api_table.as_ref(), env);
    let database_table = cx.table(root, "", "database");
    let database = cx.database(database_table.as_ref(), env);
    let server_table = cx.table(root, "", "server");
    let server = cx.server(server_table.as_ref());
    let defaults_table = cx.table(root, "", "defaults");
    let defaults = cx.defaults(defaults_table.as_ref());
    let jobs = cx.jobs(root, &defaults);

    if !cx.problems.is_empty() {
        cx.problems
            .sort_by_key(|p| (p.line.is_some(), p.line, p.column));
        return Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems: cx.problems,
        });
    }
    match (api, database, server, jobs) {
        (Some(api), Some(database), Some(server), Some(jobs)) => Ok(Config {
            path: path.to_owned(),
            api,
            database,
            server,
            jobs,
        }),
        // Every None above comes with a problem, so this is unreachable in practice; stay safe anyway.
        _ => Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems: vec![Problem {
                line: None,
                column: None,
                key: String::new(),
                message: "the configuration is incomplete".into(),
            }],
        }),
    }
}

type Item<'i> = Spanned<DeValue<'i>>;

/// A table found in the document, with its dotted path and span.
struct Tbl<'a, 'i> {
    table: &'a DeTable<'i>,
    path: String,
}

/// Values inherited from `[defaults]`.
struct Defaults {
    timezone: Tz,
    currency: String,
    lookback_days: u32,
    window_days: u32,
    start_date: Option<NaiveDate>,
}

struct Cx<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Cx<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn problem(&mut self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) {
        let (line, column) = span
            .map(|s| self.position(s.start))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        self.problems.push(Problem {
            line,
            column,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn check_keys(&mut self, table: &DeTable<'_>, path: &str, allowed: &[&str]) {
        for key in table.keys() {
            if allowed.contains(&key.get_ref().as_ref()) {
                continue;
            }
            let name = key.get_ref().as_ref();
            let hint = super::suggest(name, allowed.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            let secret = if looks_secret(name) {
                "; secrets never belong in jobs.toml: set ROKT_APP_ID and ROKT_APP_SECRET (or \
                 ROKT_APP_ID_FILE and ROKT_APP_SECRET_FILE) in the environment, and the database \
                 password in DATABASE_URL (the value is not shown)"
            } else {
                ""
            };
            let place = if path.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in `{path}`")
            };
            self.problem(
                Some(key.span()),
                &join(path, name),
                format!(
                    "unknown key {place}{hint}{secret}; valid keys are: {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn table<'a, 'i>(
        &mut self,
        parent: &'a DeTable<'i>,
        path: &str,
        key: &str,
    ) -> Option<Tbl<'a, 'i>> {
        let item = parent.get(key)?;
        let full = join(path, key);
        match item.get_ref() {
            DeValue::Table(t) => Some(Tbl {
                table: t,
                path: full,
            }),
            other => {
                self.type_error(item, &full, "a table", other);
                None
            }
        }
    }

    fn type_error(&mut self, item: &Item<'_>, key: &str, expected: &str, found: &DeValue<'_>) {
        self.problem(
            Some(item.span()),
            key,
            format!("expected {expected}, found {}", describe(found)),
        );
    }

    fn string(&mut self, t: &Tbl<'_, '_>, key: &str) -> Option<(String, Range<usize>)> {
        let item = t.table.get(key)?;
        match item.get_ref() {
            DeValue::String(s) => Some((s.to_string(), item.span())),
            other => {
                self.type_error(item, &join(&t.path, key), "a string", other);
                None
            }
        }
    }

    fn bool(&mut self, t: &Tbl<'_, '_>, key: &str) -> Option<bool> {
        let item = t.table.get(key)?;
        match item.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.type_error(item, &join(&t.path, key), "true or false", other);
                None
            }
        }
    }

    /// An integer in `range`, or `default` when absent. Returns None (with a problem) when invalid.
    fn int_in(
        &mut self,
        t: Option<&Tbl<'_, '_>>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> Option<i64> {
        let Some(t) = t else { return Some(default) };
        let Some(item) = t.table.get(key) else {
            return Some(default);
        };
        let full = join(&t.path, key);
        match item.get_ref() {
            DeValue::Integer(i) => {
                let parsed = i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok();
                match parsed {
                    Some(v) if range.contains(&v) => Some(v),
                    _ => {
                        self.problem(
                            Some(item.span()),
                            &full,
                            format!(
                                "{} is out of range: must be from {} to {}",
                                i.as_str(),
                                range.start(),
                                range.end()
                            ),
                        );
                        None
                    }
                }
            }
            other => {
                self.type_error(item, &full, "an integer", other);
                None
            }
        }
    }

    fn date(&mut self, t: &Tbl<'_, '_>, key: &str) -> Option<Option<NaiveDate>> {
        let Some(item) = t.table.get(key) else {
            return Some(None);
        };
        let full = join(&t.path, key);
        let text = match item.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Datetime(d) if d.time.is_none() && d.offset.is_none() => d.to_string(),
            other => {
                self.type_error(item, &full, "a date such as \"2025-01-01\"", other);
                return None;
            }
        };
        match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            Ok(d) if text.len() == 10 => Some(Some(d)),
            _ => {
                self.problem(
                    Some(item.span()),
                    &full,
                    format!(
                        "\"{text}\" is not a calendar date; write YYYY-MM-DD, e.g. \"2025-01-01\""
                    ),
                );
                None
            }
        }
    }

    fn timezone(&mut self, t: &Tbl<'_, '_>, key: &str) -> Option<Option<Tz>> {
        let Some((name, span)) = self.string(t, key) else {
            return Some(None).filter(|_| !t.table.contains_key(key));
        };
        match Tz::from_str(&name) {
            Ok(tz) => Some(Some(tz)),
            Err(_) => {
                let hint = super::suggest(&name, chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()))
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                self.problem(
                    Some(span),
                    &join(&t.path, key),
                    format!(
                        "\"{name}\" is not a time zone of the tz database{hint}; use an Olson name such as \"UTC\", \"America/New_York\" or \"Australia/Sydney\""
                    ),
                );
                None
            }
        }
    }

    fn currency(&mut self, t: &Tbl<'_, '_>, key: &str) -> Option<Option<String>> {
        let Some((code, span)) = self.string(t, key) else {
            return Some(None).filter(|_| !t.table.contains_key(key));
        };
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Some(Some(code))
        } else {
            self.problem(
                Some(span),
                &join(&t.path, key),
                format!("\"{code}\" is not an ISO 4217 currency code; use three capital letters such as \"USD\", \"AUD\" or \"EUR\""),
            );
            None
        }
    }

    fn api(&mut self, t: Option<&Tbl<'_, '_>>, env: &Env) -> Option<ApiConfig> {
        if let Some(t) = t {
            self.check_keys(t.table, &t.path, API_KEYS);
        }
        let mut base_url = DEFAULT_BASE_URL.to_owned();
        let mut ok = true;
        if let Some(t) = t
            && let Some((url, span)) = self.string(t, "base_url")
        {
            match check_http_url(&url) {
                Ok(u) => base_url = u,
                Err(e) => {
                    self.problem(Some(span), "api.base_url", format!("\"{url}\" {e}"));
                    ok = false;
                }
            }
        }
        if let Some(url) = env.get(ENV_API_BASE_URL) {
            match check_http_url(url) {
                Ok(u) => base_url = u,
                Err(e) => {
                    self.problem(
                        None,
                        ENV_API_BASE_URL,
                        format!("the environment variable ROKT_API_BASE_URL=\"{url}\" {e}"),
                    );
                    ok = false;
                }
            }
        }
        let mut token_path = DEFAULT_TOKEN_PATH.to_owned();
        if let Some(t) = t
            && let Some((p, span)) = self.string(t, "token_path")
        {
            if p.starts_with('/') {
                token_path = p;
            } else {
                self.problem(
                    Some(span),
                    "api.token_path",
                    format!(
                        "\"{p}\" must be a path starting with `/`, e.g. \"/auth/oauth2/token\""
                    ),
                );
                ok = false;
            }
        }
        let request_timeout = self.int_in(t, "request_timeout_secs", 1..=3600, 60);
        let connect_timeout = self.int_in(t, "connect_timeout_secs", 1..=300, 10);
        let max_concurrent = self.int_in(t, "max_concurrent_requests", 1..=64, 4);
        let max_retries = self.int_in(t, "max_retries", 0..=20, 5);
        Some(ApiConfig {
            base_url,
            token_path,
            request_timeout: Duration::from_secs(u64::try_from(request_timeout?).ok()?),
            connect_timeout: Duration::from_secs(u64::try_from(connect_timeout?).ok()?),
            max_concurrent_requests: usize::try_from(max_concurrent?).ok()?,
            max_retries: u32::try_from(max_retries?).ok()?,
        })
        .filter(|_| ok)
    }

    fn database(&mut self, t: Option<&Tbl<'_, '_>>, env: &Env) -> Option<DatabaseConfig> {
        let mut ok = true;
        let mut url = DatabaseUrl::parse(DEFAULT_DATABASE_URL).ok();
        let mut schema = DEFAULT_SCHEMA.to_owned();
        if let Some(t) = t {
            self.check_keys(t.table, &t.path, DATABASE_KEYS);
            if let Some((u, span)) = self.string(t, "url") {
                match DatabaseUrl::parse(&u) {
                    Ok(u) => url = Some(u),
                    Err(e) => {
                        // The URL may carry a password: never echo it.
                        self.problem(Some(span.clone()), "database.url", format!("the URL {e}"));
                        ok = false;
                    }
                }
                if super::database_url::holds_password(&u) {
                    self.problem(
                        Some(span),
                        "database.url",
                        "contains a password; keep secrets out of jobs.toml and set DATABASE_URL in the environment instead (the value is not shown)",
                    );
                    ok = false;
                }
            }
            if let Some((s, span)) = self.string(t, "schema") {
                if is_identifier(&s) {
                    schema = s;
                } else {
                    self.problem(
                        Some(span),
                        "database.schema",
                        format!("\"{s}\" is not a safe SQL identifier; use lower-case letters, digits and `_`, starting with a letter or `_`, at most 63 characters"),
                    );
                    ok = false;
                }
            }
        }
        if let Some(u) = env.get(ENV_DATABASE_URL) {
            match DatabaseUrl::parse(u) {
                Ok(u) => url = Some(u),
                Err(e) => {
                    self.problem(
                        None,
                        ENV_DATABASE_URL,
                        format!(
                            "the environment variable DATABASE_URL {e} (the value is not shown)"
                        ),
                    );
                    ok = false;
                }
            }
        }
        Some(DatabaseConfig { url: url?, schema }).filter(|_| ok)
    }

    fn server(&mut self, t: Option<&Tbl<'_, '_>>) -> Option<ServerConfig> {
        let mut listen: Option<SocketAddr> = DEFAULT_LISTEN.parse().ok();
        if let Some(t) = t {
            self.check_keys(t.table, &t.path, SERVER_KEYS);
            if let Some((l, span)) = self.string(t, "listen") {
                match l.parse::<SocketAddr>() {
                    Ok(a) => listen = Some(a),
                    Err(_) => {
                        self.problem(
                            Some(span),
                            "server.listen",
                            format!("\"{l}\" is not an address and port such as \"127.0.0.1:9464\" or \"0.0.0.0:9464\""),
                        );
                        listen = None;
                    }
                }
            }
        }
        let grace = self.int_in(t, "shutdown_grace_secs", 0..=3600, 30);
        Some(ServerConfig {
            listen: listen?,
            shutdown_grace: Duration::from_secs(u64::try_from(grace?).ok()?),
        })
    }

    fn defaults(&mut self, t: Option<&Tbl<'_, '_>>) -> Defaults {
        let mut d = Defaults {
            timezone: Tz::UTC,
            currency: "USD".into(),
            lookback_days: 7,
            window_days: 31,
            start_date: None,
        };
        let Some(t) = t else { return d };
        self.check_keys(t.table, &t.path, DEFAULTS_KEYS);
        if let Some(Some(tz)) = self.timezone(t, "timezone") {
            d.timezone = tz;
        }
        if let Some(Some(c)) = self.currency(t, "currency") {
            d.currency = c;
        }
        if let Some(v) = self.int_in(Some(t), "lookback_days", 0..=365, 7) {
            d.lookback_days = u32::try_from(v).unwrap_or(7);
        }
        if let Some(v) = self.int_in(Some(t), "window_days", 1..=31, 31) {
            d.window_days = u32::try_from(v).unwrap_or(31);
        }
        if let Some(Some(date)) = self.date(t, "start_date") {
            d.start_date = Some(date);
        }
        d
    }

    fn jobs(&mut self, root: &DeTable<'_>, defaults: &Defaults) -> Option<Vec<Job>> {
        let Some(item) = root.get("jobs") else {
            self.problem(
                None,
                "jobs",
                "no jobs are defined; add at least one [[jobs]] table (see the shipped jobs.toml)",
            );
            return None;
        };
        let DeValue::Array(items) = item.get_ref() else {
            self.type_error(
                item,
                "jobs",
                "an array of tables ([[jobs]])",
                item.get_ref(),
            );
            return None;
        };
        if items.is_empty() {
            self.problem(
                Some(item.span()),
                "jobs",
                "no jobs are defined; add at least one [[jobs]] table",
            );
            return None;
        }
        let mut all_ok = self.unique_names(items);
        let mut jobs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let DeValue::Table(table) = item.get_ref() else {
                self.type_error(
                    item,
                    &format!("jobs[{i}]"),
                    "a table ([[jobs]])",
                    item.get_ref(),
                );
                all_ok = false;
                continue;
            };
            match self.job(i, table, item.span(), defaults) {
                Some(job) => jobs.push(job),
                None => all_ok = false,
            }
        }
        Some(jobs).filter(|_| all_ok)
    }

    /// Job names and table names must be unique; checked on the raw entries so that a duplicate is
    /// reported even when the job has other problems.
    fn unique_names(&mut self, items: &[Item<'_>]) -> bool {
        let mut ok = true;
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut tables: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let DeValue::Table(table) = item.get_ref() else {
                continue;
            };
            let name = table
                .get("name")
                .and_then(|v| v.get_ref().as_str().map(|s| (s.to_owned(), v.span())));
            let explicit = table
                .get("table")
                .and_then(|v| v.get_ref().as_str().map(|s| (s.to_owned(), v.span())));
            if let Some((n, span)) = &name
                && let Some(first) = names.insert(n.clone(), i)
            {
                self.problem(
                    Some(span.clone()),
                    &format!("jobs[{i}].name"),
                    format!("job name \"{n}\" is already used by jobs[{first}]; job names must be unique"),
                );
                ok = false;
                continue;
            }
            if let Some((t, span)) = explicit.or(name)
                && let Some(first) = tables.insert(t.clone(), i)
            {
                self.problem(
                    Some(span),
                    &format!("jobs[{i}].table"),
                    format!("table \"{t}\" is already written by jobs[{first}]; give each job its own table (set `table`)"),
                );
                ok = false;
            }
        }
        ok
    }

    /// One job, with `[defaults]` applied.
    fn job(
        &mut self,
        i: usize,
        table: &DeTable<'_>,
        span: Range<usize>,
        defaults: &Defaults,
    ) -> Option<Job> {
        let problems_before = self.problems.len();
        let t = Tbl {
            table,
            path: format!("jobs[{i}]"),
        };
        let mut allowed: Vec<&str> = COMMON_JOB_KEYS.to_vec();
        allowed.extend(QUERY_JOB_KEYS);
        allowed.extend(GENERIC_JOB_KEYS);
        self.check_keys(table, &t.path, &allowed);

        let name = match self.string(&t, "name") {
            Some((n, s)) => {
                if is_job_name(&n) {
                    Some((n, s))
                } else {
                    self.problem(
                        Some(s),
                        &join(&t.path, "name"),
                        format!("\"{n}\" is not a valid job name; use letters, digits, `_` and `-` (at most 63 characters)"),
                    );
                    None
                }
            }
            None => {
                if !table.contains_key("name") {
                    self.problem(
                        Some(span.clone()),
                        &join(&t.path, "name"),
                        "every job needs a `name`",
                    );
                }
                None
            }
        };
        let schedule = match self.string(&t, "schedule") {
            Some((s, span)) => match Schedule::parse(&s) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.problem(
                        Some(span),
                        &join(&t.path, "schedule"),
                        format!("\"{s}\" {e}"),
                    );
                    None
                }
            },
            None => {
                if !table.contains_key("schedule") {
                    self.problem(
                        Some(span.clone()),
                        &join(&t.path, "schedule"),
                        "every job needs a `schedule` (5-field cron, e.g. \"15 5 * * *\")",
                    );
                }
                None
            }
        };
        let accounts = self.accounts(&t, span.clone());
        let timezone = self
            .timezone(&t, "timezone")
            .map(|z| z.unwrap_or(defaults.timezone));
        let currency = self
            .currency(&t, "currency")
            .map(|c| c.unwrap_or_else(|| defaults.currency.clone()));
        let lookback = self.int_in(
            Some(&t),
            "lookback_days",
            0..=365,
            i64::from(defaults.lookback_days),
        );
        let window = self.int_in(
            Some(&t),
            "window_days",
            1..=31,
            i64::from(defaults.window_days),
        );
        let start_date = self
            .date(&t, "start_date")
            .map(|d| d.or(defaults.start_date));
        let run_on_start = if table.contains_key("run_on_start") {
            self.bool(&t, "run_on_start")
        } else {
            Some(false)
        };
        let table_name = match self.string(&t, "table") {
            Some((tn, _)) if is_table_name(&tn) => Some(tn),
            Some((tn, s)) => {
                self.problem(Some(s), &join(&t.path, "table"), table_name_message(&tn));
                None
            }
            None if table.contains_key("table") => None,
            None => match &name {
                Some((n, _)) if is_table_name(n) => Some(n.clone()),
                Some((n, s)) => {
                    self.problem(
                        Some(s.clone()),
                        &join(&t.path, "table"),
                        format!("the job name \"{n}\" cannot be used as a table name; set `table` to a name of lower-case letters, digits and `_`"),
                    );
                    None
                }
                None => None,
            },
        };
        let kind = self.kind(&t, span.clone());

        if self.problems.len() != problems_before {
            return None;
        }
        let (name, _) = name?;
        Some(Job {
            name,
            schedule: schedule?,
            timezone: timezone?,
            currency: currency?,
            lookback_days: u32::try_from(lookback?).ok()?,
            window_days: u32::try_from(window?).ok()?,
            start_date: start_date?,
            accounts: accounts?,
            table: table_name?,
            run_on_start: run_on_start?,
            kind: kind?,
        })
    }

    fn accounts(&mut self, t: &Tbl<'_, '_>, job_span: Range<usize>) -> Option<Accounts> {
        let key = join(&t.path, "accounts");
        let Some(item) = t.table.get("accounts") else {
            self.problem(
                Some(job_span),
                &key,
                "every job needs `accounts`: a list of account ids such as [\"3141592\"], or \"all\"",
            );
            return None;
        };
        match item.get_ref() {
            DeValue::String(s) if s.as_ref() == "all" => Some(Accounts::All),
            DeValue::Array(list) => {
                if list.is_empty() {
                    self.problem(
                        Some(item.span()),
                        &key,
                        "is empty; list at least one account id, or write accounts = \"all\"",
                    );
                    return None;
                }
                let mut ids = Vec::new();
                let mut seen = HashSet::new();
                let mut ok = true;
                for (j, v) in list.iter().enumerate() {
                    let id = match v.get_ref() {
                        DeValue::String(s) => s.trim().to_owned(),
                        DeValue::Integer(i) if i.radix() == 10 && !i.as_str().starts_with('-') => {
                            i.as_str().replace('_', "")
                        }
                        other => {
                            self.type_error(
                                v,
                                &format!("{key}[{j}]"),
                                "an account id string",
                                other,
                            );
                            ok = false;
                            continue;
                        }
                    };
                    if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                        self.problem(
                            Some(v.span()),
                            &format!("{key}[{j}]"),
                            "an account id must be non-empty and contain no spaces",
                        );
                        ok = false;
                    } else if !seen.insert(id.clone()) {
                        self.problem(
                            Some(v.span()),
                            &format!("{key}[{j}]"),
                            format!("account \"{id}\" is listed twice"),
                        );
                        ok = false;
                    } else {
                        ids.push(id);
                    }
                }
                Some(Accounts::List(ids)).filter(|_| ok)
            }
            DeValue::String(s) => {
                self.problem(
                    Some(item.span()),
                    &key,
                    format!("\"{s}\" is not valid here; write a list such as [\"{s}\"], or \"all\" for every account the credentials can read"),
                );
                None
            }
            other => {
                self.type_error(item, &key, "a list of account ids or \"all\"", other);
                None
            }
        }
    }

    fn kind(&mut self, t: &Tbl<'_, '_>, job_span: Range<usize>) -> Option<JobKind> {
        let has = |k: &str| t.table.contains_key(k);
        if has("report") {
            for k in GENERIC_JOB_KEYS {
                if let Some((key, _)) = t.table.get_key_value(*k) {
                    self.problem(
                        Some(key.span()),
                        &join(&t.path, k),
                        format!("`{k}` cannot be combined with `report`: a job is either a Query API report (report, dimensions, metrics) or a generic endpoint (method, endpoint, query, body, records, key)"),
                    );
                }
            }
            self.query_job(t).map(JobKind::Query)
        } else if has("endpoint") {
            for k in QUERY_JOB_KEYS {
                if let Some((key, _)) = t.table.get_key_value(*k) {
                    self.problem(
                        Some(key.span()),
                        &join(&t.path, k),
                        format!("`{k}` belongs to Query API jobs (report = ...), not to a generic `endpoint` job"),
                    );
                }
            }
            self.generic_job(t, job_span).map(JobKind::Generic)
        } else {
            self.problem(
                Some(job_span),
                &t.path,
                "a job needs either `report` (a Query API report: \"campaigns\" or \"transactions\") or `endpoint` (any other API path)",
            );
            None
        }
    }

    fn query_job(&mut self, t: &Tbl<'_, '_>) -> Option<QueryJob> {
        let report = match self.string(t, "report") {
            Some((r, span)) => match Report::parse(&r) {
                Some(r) => Some(r),
                None => {
                    let hint = super::suggest(&r, Report::NAMES.iter().copied())
                        .map(|s| format!(" (did you mean \"{s}\"?)"))
                        .unwrap_or_default();
                    self.problem(
                        Some(span),
                        &join(&t.path, "report"),
                        format!(
                            "\"{r}\" is not a Query API report{hint}; valid reports are: {}",
                            Report::NAMES.join(", ")
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        let dimensions = self.slugs(t, "dimensions", false);
        let metrics = self.slugs(t, "metrics", true);
        if let (Some(d), Some(m)) = (&dimensions, &metrics) {
            let mut seen = HashSet::new();
            for s in d.iter().chain(m) {
                if !seen.insert(s) {
                    let span = t.table.get("metrics").map(|i| i.span());
                    self.problem(
                        span,
                        &join(&t.path, "metrics"),
                        format!("\"{s}\" is named twice (as a dimension and a metric, or twice in one list); each column needs one meaning"),
                    );
                    return None;
                }
            }
        }
        Some(QueryJob {
            report: report?,
            dimensions: dimensions?,
            metrics: metrics?,
        })
    }

    /// A list of dimension or metric slugs; they become column names.
    fn slugs(&mut self, t: &Tbl<'_, '_>, key: &str, required: bool) -> Option<Vec<String>> {
        let full = join(&t.path, key);
        let Some(item) = t.table.get(key) else {
            if required {
                self.problem(
                    None,
                    &full,
                    format!("a Query API job needs `{key}`, e.g. {key} = [\"impressions\", \"referrals\", \"gross_cost\"]"),
                );
                return None;
            }
            return Some(Vec::new());
        };
        let DeValue::Array(list) = item.get_ref() else {
            self.type_error(item, &full, "a list of strings", item.get_ref());
            return None;
        };
        if required && list.is_empty() {
            self.problem(
                Some(item.span()),
                &full,
                format!("is empty; name at least one {}", key.trim_end_matches('s')),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (j, v) in list.iter().enumerate() {
            match v.get_ref() {
                DeValue::String(s)
                    if is_column_name(s) && !RESERVED_COLUMNS.contains(&s.as_ref()) =>
                {
                    out.push(s.to_string());
                }
                DeValue::String(s) if RESERVED_COLUMNS.contains(&s.as_ref()) => {
                    self.problem(
                        Some(v.span()),
                        &format!("{full}[{j}]"),
                        format!("\"{s}\" is a column every job table already has ({}); it cannot be a {}", RESERVED_COLUMNS.join(", "), key.trim_end_matches('s')),
                    );
                    ok = false;
                }
                DeValue::String(s) => {
                    self.problem(
                        Some(v.span()),
                        &format!("{full}[{j}]"),
                        format!("\"{s}\" is not a Rokt slug; slugs are lower-case letters, digits and `_` such as \"campaign_id\" or \"gross_cost\""),
                    );
                    ok = false;
                }
                other => {
                    self.type_error(v, &format!("{full}[{j}]"), "a string", other);
                    ok = false;
                }
            }
        }
        Some(out).filter(|_| ok)
    }

    fn generic_job(&mut self, t: &Tbl<'_, '_>, job_span: Range<usize>) -> Option<GenericJob> {
        let method = match self.string(t, "method") {
            Some((m, span)) => match m.to_ascii_uppercase().as_str() {
                "GET" => Some(Method::Get),
                "POST" => Some(Method::Post),
                _ => {
                    self.problem(
                        Some(span),
                        &join(&t.path, "method"),
                        format!("\"{m}\" is not supported; use \"GET\" or \"POST\""),
                    );
                    None
                }
            },
            None if t.table.contains_key("method") => None,
            None => Some(Method::Get),
        };
        let endpoint = match self.string(t, "endpoint") {
            Some((e, span)) => {
                if !e.starts_with('/') {
                    self.problem(
                        Some(span),
                        &join(&t.path, "endpoint"),
                        format!("\"{e}\" must be a path starting with `/`, e.g. \"/reporting/accounts/{{account_id}}/campaigns/breakdown\"; the host comes from [api] base_url"),
                    );
                    None
                } else {
                    self.template(&e, span, &join(&t.path, "endpoint"))
                }
            }
            None => None,
        };
        let query = self.query_params(t);
        let body = match t.table.get("body") {
            Some(item) => {
                if method == Some(Method::Get) {
                    self.problem(
                        Some(item.span()),
                        &join(&t.path, "body"),
                        "a body is only sent with method = \"POST\"",
                    );
                    None
                } else {
                    self.body(item, &join(&t.path, "body")).map(Some)
                }
            }
            None => Some(None),
        };
        let records = match self.string(t, "records") {
            Some((r, span)) => {
                if r.is_empty() || r.starts_with('/') {
                    Some(r)
                } else {
                    self.problem(
                        Some(span),
                        &join(&t.path, "records"),
                        format!("\"{r}\" is not a JSON pointer; write it like \"/data/items\" (or \"\" when the answer is the array itself)"),
                    );
                    None
                }
            }
            None => {
                if !t.table.contains_key("records") {
                    self.problem(
                        Some(job_span.clone()),
                        &join(&t.path, "records"),
                        "a generic job needs `records`: the JSON pointer to the array of rows, e.g. \"/data/items\"",
                    );
                }
                None
            }
        };
        let key = match t.table.get("key") {
            Some(item) => match item.get_ref() {
                DeValue::Array(list) if !list.is_empty() => {
                    let mut out = Vec::new();
                    let mut ok = true;
                    for (j, v) in list.iter().enumerate() {
                        match v.get_ref() {
                            DeValue::String(s)
                                if !s.is_empty()
                                    && s.len() <= 63
                                    && !RESERVED_COLUMNS.contains(&s.as_ref()) =>
                            {
                                if out.contains(&s.to_string()) {
                                    self.problem(
                                        Some(v.span()),
                                        &format!("{}.key[{j}]", t.path),
                                        format!("\"{s}\" is listed twice"),
                                    );
                                    ok = false;
                                } else {
                                    out.push(s.to_string());
                                }
                            }
                            DeValue::String(s) => {
                                self.problem(
                                    Some(v.span()),
                                    &format!("{}.key[{j}]", t.path),
                                    format!("\"{s}\" cannot be a key field: it must be 1 to 63 characters and not one of {}", RESERVED_COLUMNS.join(", ")),
                                );
                                ok = false;
                            }
                            other => {
                                self.type_error(
                                    v,
                                    &format!("{}.key[{j}]", t.path),
                                    "a field name string",
                                    other,
                                );
                                ok = false;
                            }
                        }
                    }
                    Some(out).filter(|_| ok)
                }
                DeValue::Array(_) => {
                    self.problem(Some(item.span()), &join(&t.path, "key"), "is empty; name the fields that identify a row, e.g. key = [\"groupByValue\"]");
                    None
                }
                other => {
                    self.type_error(item, &join(&t.path, "key"), "a list of field names", other);
                    None
                }
            },
            None => {
                self.problem(
                    Some(job_span.clone()),
                    &join(&t.path, "key"),
                    "a generic job needs `key`: the fields that, with account_id and the window's first day, identify a row, e.g. key = [\"groupByValue\"]",
                );
                None
            }
        };
        let job = GenericJob {
            method: method?,
            endpoint: endpoint?,
            query: query?,
            body: body?,
            records: records?,
            key: key?,
        };
        if !job.uses_account() {
            self.problem(
                Some(job_span),
                &join(&t.path, "endpoint"),
                "no part of the request uses {account_id}: every account would fetch the same rows; put {account_id} in `endpoint`, `query` or `body`",
            );
            return None;
        }
        Some(job)
    }

    fn template(&mut self, text: &str, span: Range<usize>, key: &str) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(Some(span), key, e.to_string());
                None
            }
        }
    }

    fn query_params(&mut self, t: &Tbl<'_, '_>) -> Option<Vec<(String, Template)>> {
        let Some(item) = t.table.get("query") else {
            return Some(Vec::new());
        };
        let full = join(&t.path, "query");
        let DeValue::Table(params) = item.get_ref() else {
            self.type_error(
                item,
                &full,
                "a table of parameters, e.g. { currency = \"{currency}\" }",
                item.get_ref(),
            );
            return None;
        };
        let mut entries: Vec<_> = params.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut out = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            let key = join(&full, k.get_ref());
            let text = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(i) => i.as_str().to_owned(),
                DeValue::Float(f) => f.as_str().to_owned(),
                DeValue::Boolean(b) => b.to_string(),
                other => {
                    self.type_error(v, &key, "a string, number or boolean", other);
                    ok = false;
                    continue;
                }
            };
            match self.template(&text, v.span(), &key) {
                Some(tpl) => out.push((k.get_ref().to_string(), tpl)),
                None => ok = false,
            }
        }
        Some(out).filter(|_| ok)
    }

    fn body(&mut self, item: &Item<'_>, key: &str) -> Option<BodyTemplate> {
        Some(match item.get_ref() {
            DeValue::String(s) => BodyTemplate::String(self.template(s, item.span(), key)?),
            DeValue::Integer(i) => {
                let n = i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()?;
                BodyTemplate::Number(n.into())
            }
            DeValue::Float(f) => {
                let n = f.as_str().replace('_', "").parse::<f64>().ok();
                match n.and_then(serde_json::Number::from_f64) {
                    Some(n) => BodyTemplate::Number(n),
                    None => {
                        self.problem(Some(item.span()), key, "is not a finite number");
                        return None;
                    }
                }
            }
            DeValue::Boolean(b) => BodyTemplate::Bool(*b),
            DeValue::Datetime(d) => {
                BodyTemplate::String(self.template(&d.to_string(), item.span(), key)?)
            }
            DeValue::Array(list) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (j, v) in list.iter().enumerate() {
                    match self.body(v, &format!("{key}[{j}]")) {
                        Some(b) => out.push(b),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                BodyTemplate::Array(out)
            }
            DeValue::Table(table) => {
                let mut entries: Vec<_> = table.iter().collect();
                entries.sort_by_key(|(k, _)| k.span().start);
                let mut out = Vec::new();
                let mut ok = true;
                for (k, v) in entries {
                    match self.body(v, &join(key, k.get_ref())) {
                        Some(b) => out.push((k.get_ref().to_string(), b)),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                BodyTemplate::Object(out)
            }
        })
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Keys whose values must never be repeated back to the user.
fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "token",
        "credential",
        "app_id",
        "appid",
        "api_key",
        "apikey",
        "auth",
    ]
    .iter()
    .any(|s| k.contains(s))
}

fn check_http_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ']) => Ok(trimmed.to_owned()),
        _ => Err("is not an http(s) base URL such as \"https://api.rokt.com\"".into()),
    }
}

/// A lower-case SQL identifier that needs no quoting: `[a-z_][a-z0-9_]*`, at most 63 bytes.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

fn is_column_name(s: &str) -> bool {
    is_identifier(s) && !s.starts_with('_')
}

fn is_table_name(s: &str) -> bool {
    is_identifier(s) && !RESERVED_TABLES.contains(&s)
}

fn table_name_message(name: &str) -> String {
    if RESERVED_TABLES.contains(&name) {
        format!(
            "\"{name}\" is one of the tool's own tables ({}); choose another name",
            RESERVED_TABLES.join(", ")
        )
    } else {
        format!(
            "\"{name}\" is not a safe SQL identifier; use lower-case letters, digits and `_`, starting with a letter or `_`, at most 63 characters"
        )
    }
}

fn is_job_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

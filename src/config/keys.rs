//! Every key of `jobs.toml`, defined once in [`KEYS`]: its name, where it may appear, what it
//! holds (with its default and its range or allowed words) and a one-line doc.
//!
//! The table drives the allowed-keys check (and its "did you mean"), the reading of scalar keys
//! (integers, booleans, strings, time zones, currency codes, dates: see `values.rs`), the
//! inheritance of `[defaults]` into jobs, the range in "out of range" messages, and the README's
//! configuration reference ([`reference()`], which `tests/api/config.rs` compares with README.md row
//! by row, defaults and ranges included). Keys whose values are structured (a cron, a list of
//! accounts, a body template) are read by their own code in `parse.rs` and `job.rs`; the table
//! still names them, places them and documents them.
//!
//! Adding a key that jobs inherit from `[defaults]`, say `verify` (a bool), is two edits:
//!
//! 1. a row here, among the [`Place::Inherited`] rows:
//!    `Key { name: "verify", place: Place::Inherited, kind: Kind::Bool { default: false }, doc: "..." }`;
//! 2. the field in [`Job`](super::Job), `pub verify: bool`, and the line that fills it where
//!    `job.rs` builds the `Job` (`verify: self.get(&values, "verify")?`; the compiler points there).
//!
//! The README test then fails and prints the two rows (`defaults.verify`, `jobs.verify`) to paste.
//! The unit test `parse::tests::an_inheritable_key_is_one_row` adds such a row and shows that the
//! allowed-keys check, type errors, inheritance and the reference follow from it alone.

use std::fmt;

use super::{Method, Report};

/// One key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub name: &'static str,
    pub place: Place,
    pub kind: Kind,
    /// One line for the README's reference (Markdown); the range or allowed words are appended.
    pub doc: &'static str,
}

/// Where a key may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Api,
    Database,
    Server,
    /// Every job (`[[jobs]]`).
    Job,
    /// `[defaults]` and every job: a job that leaves it out takes the `[defaults]` value.
    Inherited,
    /// Query API jobs (`report = ...`).
    QueryJob,
    /// Generic jobs (`endpoint = ...`).
    GenericJob,
}

/// What a key holds. The scalar kinds carry their default, which nothing else repeats.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// An integer from `min` to `max`, both included.
    Int { min: i64, max: i64, default: i64 },
    /// `true` or `false`.
    Bool { default: bool },
    /// A string; its section checks what it must look like (a URL, a path, an address).
    Str { default: &'static str },
    /// A time zone of the tz database; unset unless given (see the doc for what that means).
    TimeZone,
    /// An ISO 4217 currency code; unset unless given (see the doc for what that means).
    Currency,
    /// A calendar date; unset unless given.
    Date,
    /// One of a few words, read by the job's code; `None`: no default (see the doc).
    OneOf {
        words: &'static [&'static str],
        default: Option<&'static str>,
    },
    /// Anything else (a name, a cron, a list, a table), read by its own code. `default` says in
    /// Markdown what happens when it is left out (`required`, `the job's name`, `[]`...).
    Custom { default: &'static str },
}

/// The tables of `jobs.toml`, in the order the README lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Api,
    Database,
    Server,
    Defaults,
    Jobs,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Section::Api,
        Section::Database,
        Section::Server,
        Section::Defaults,
        Section::Jobs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Section::Api => "api",
            Section::Database => "database",
            Section::Server => "server",
            Section::Defaults => "defaults",
            Section::Jobs => "jobs",
        }
    }
}

impl Place {
    /// Whether a key of this place may be written in `section`.
    pub fn is_in(self, section: Section) -> bool {
        matches!(
            (self, section),
            (Place::Api, Section::Api)
                | (Place::Database, Section::Database)
                | (Place::Server, Section::Server)
                | (Place::Inherited, Section::Defaults | Section::Jobs)
                | (
                    Place::Job | Place::QueryJob | Place::GenericJob,
                    Section::Jobs
                )
        )
    }
}

impl Kind {
    /// Whether the table alone reads it (see `values.rs`); the others have code of their own.
    pub fn is_scalar(self) -> bool {
        !matches!(self, Kind::OneOf { .. } | Kind::Custom { .. })
    }
}

/// Every key. Jobs' own keys come before the inherited ones so that the README lists a job's
/// identity (name, schedule, accounts, table) first.
pub(crate) const KEYS: &[Key] = &[
    Key {
        name: "base_url",
        place: Place::Api,
        kind: Kind::Str {
            default: "https://api.rokt.com",
        },
        doc: "API host: `https://`, or `http://` to this machine only (see `allow_insecure_http`); \
              no user or password in it; env `ROKT_API_BASE_URL` wins",
    },
    Key {
        name: "token_path",
        place: Place::Api,
        kind: Kind::Str {
            default: "/auth/oauth2/token",
        },
        doc: "OAuth 2.0 token endpoint path",
    },
    Key {
        name: "request_timeout_secs",
        place: Place::Api,
        kind: Kind::Int {
            min: 1,
            max: 3600,
            default: 60,
        },
        doc: "whole-request timeout",
    },
    Key {
        name: "connect_timeout_secs",
        place: Place::Api,
        kind: Kind::Int {
            min: 1,
            max: 300,
            default: 10,
        },
        doc: "TCP/TLS connect timeout",
    },
    Key {
        name: "max_concurrent_requests",
        place: Place::Api,
        kind: Kind::Int {
            min: 1,
            max: 64,
            default: 4,
        },
        doc: "requests in flight at once, across all jobs",
    },
    Key {
        name: "max_retries",
        place: Place::Api,
        kind: Kind::Int {
            min: 0,
            max: 20,
            default: 5,
        },
        doc: "retries per request for 401 (each with a fresh token), 429, 5xx, timeouts and resets",
    },
    // The default, 128 MiB, is sized from a 31-day window with room: a Query API row with four
    // dimensions and eight metrics is about 360 bytes of JSON, so the benchmark's largest window
    // (1,000 campaign x creative rows a day for 31 days) is 11 MB, and 128 MiB holds twelve times
    // that. A report body is parsed as it arrives (never held whole), so this bounds what a hostile
    // or broken server (a gzip bomb: 1 MB that inflates to 1 GiB) can make us read; a generic job's
    // body is held whole, so this also bounds its memory. An account that outgrows it should use
    // a smaller `window_days` before a larger limit.
    Key {
        name: "max_body_bytes",
        place: Place::Api,
        kind: Kind::Int {
            min: 65_536,
            max: 4_294_967_296,
            default: 134_217_728,
        },
        doc: "the largest answer taken, in bytes once decompressed (128 MiB: a 31-day window of \
              ~12,000 rows a day); a larger one fails its window, not retried",
    },
    Key {
        name: "allow_insecure_http",
        place: Place::Api,
        kind: Kind::Bool { default: false },
        doc: "accept an `http://` base URL to a host other than this machine (credentials and \
              tokens then travel in clear); `https://` and loopback `http://` need no flag",
    },
    Key {
        name: "url",
        place: Place::Database,
        kind: Kind::Str {
            default: "sqlite://rokt-export.db",
        },
        doc: "`postgres://...` or `sqlite://file`; env `DATABASE_URL` wins; a URL with a password is \
              rejected here (use the env)",
    },
    Key {
        name: "schema",
        place: Place::Database,
        kind: Kind::Str { default: "rokt" },
        doc: "Postgres schema for every table this tool owns (ignored by SQLite)",
    },
    Key {
        name: "statement_timeout_secs",
        place: Place::Database,
        kind: Kind::Int {
            min: 1,
            max: 86_400,
            default: 600,
        },
        doc: "Postgres `statement_timeout`: the longest one statement may run before it is \
              cancelled and its window rolled back",
    },
    Key {
        name: "listen",
        place: Place::Server,
        kind: Kind::Str {
            default: "127.0.0.1:9464",
        },
        doc: "address of `/healthz`, `/readyz`, `/metrics` while `run` is up",
    },
    Key {
        name: "shutdown_grace_secs",
        place: Place::Server,
        kind: Kind::Int {
            min: 0,
            max: 3600,
            default: 30,
        },
        doc: "on SIGTERM, how long running windows may take to commit",
    },
    Key {
        name: "name",
        place: Place::Job,
        kind: Kind::Custom {
            default: "required",
        },
        doc: "unique; letters, digits, `_`, `-`",
    },
    Key {
        name: "schedule",
        place: Place::Job,
        kind: Kind::Custom {
            default: "required",
        },
        doc: "5-field cron (`\"15 5 * * *\"`) in the job's time zone; 6 fields with seconds first \
              also accepted",
    },
    Key {
        name: "accounts",
        place: Place::Job,
        kind: Kind::Custom {
            default: "required",
        },
        doc: "a list of account ids, or `\"all\"` (every account `GET /v1/query/accounts` returns)",
    },
    Key {
        name: "table",
        place: Place::Job,
        kind: Kind::Custom {
            default: "the job's name",
        },
        doc: "destination table: lower-case letters, digits, `_`",
    },
    Key {
        name: "run_on_start",
        place: Place::Job,
        kind: Kind::Bool { default: false },
        doc: "the daemon also runs the job once when it starts",
    },
    Key {
        name: "timezone",
        place: Place::Inherited,
        kind: Kind::TimeZone,
        doc: "report time zone (Olson name), also the zone the cron is read in; unset: each \
              account's own zone (`accountTimezone`, as One Platform shows it) and the cron in UTC",
    },
    Key {
        name: "currency",
        place: Place::Inherited,
        kind: Kind::Currency,
        doc: "report currency (ISO 4217); unset: each account's own (`accountCurrencyCode`)",
    },
    Key {
        name: "lookback_days",
        place: Place::Inherited,
        kind: Kind::Int {
            min: 0,
            max: 365,
            default: 7,
        },
        doc: "days re-read on every run",
    },
    Key {
        name: "window_days",
        place: Place::Inherited,
        kind: Kind::Int {
            min: 1,
            max: 31,
            default: 31,
        },
        doc: "at most this many days per API request",
    },
    Key {
        name: "window_timeout_secs",
        place: Place::Inherited,
        kind: Kind::Int {
            min: 10,
            max: 86_400,
            default: 3_600,
        },
        doc: "the longest one window (its requests, retries and commit) may take; past it the \
              window is rolled back and failed, and the account's later windows wait for the next \
              run",
    },
    Key {
        name: "start_date",
        place: Place::Inherited,
        kind: Kind::Date,
        doc: "where a job with no history starts (`\"YYYY-MM-DD\"`); without it, `lookback_days` ago",
    },
    Key {
        name: "report",
        place: Place::QueryJob,
        kind: Kind::OneOf {
            words: Report::NAMES,
            default: None,
        },
        doc: "Query API job: the report, read with `POST /v1/query/accounts/{account_id}/...` and \
              `interval = \"day\"`",
    },
    Key {
        name: "dimensions",
        place: Place::QueryJob,
        kind: Kind::Custom { default: "`[]`" },
        doc: "Query API job: dimension slugs; each becomes a `text` column, and those of the grain \
              (ids and breakdowns, not names) form the key with `account_id` and `date`",
    },
    Key {
        name: "metrics",
        place: Place::QueryJob,
        kind: Kind::Custom {
            default: "required with `report`",
        },
        doc: "Query API job: metric slugs; each becomes a `numeric` column",
    },
    Key {
        name: "method",
        place: Place::GenericJob,
        kind: Kind::OneOf {
            words: Method::NAMES,
            default: Some("GET"),
        },
        doc: "generic job: the HTTP method",
    },
    Key {
        name: "endpoint",
        place: Place::GenericJob,
        kind: Kind::Custom { default: "–" },
        doc: "generic job: path with placeholders, e.g. \
              `\"/reporting/accounts/{account_id}/campaigns/breakdown\"`",
    },
    Key {
        name: "query",
        place: Place::GenericJob,
        kind: Kind::Custom { default: "`{}`" },
        doc: "generic job: query parameters; values may hold placeholders",
    },
    Key {
        name: "body",
        place: Place::GenericJob,
        kind: Kind::Custom { default: "none" },
        doc: "generic job (`POST` only): JSON body as a TOML table; strings may hold placeholders",
    },
    Key {
        name: "records",
        place: Place::GenericJob,
        kind: Kind::Custom {
            default: "required with `endpoint`",
        },
        doc: "generic job: JSON pointer to the array of rows (`\"/data/items\"`; `\"\"` for a \
              top-level array)",
    },
    Key {
        name: "key",
        place: Place::Job,
        kind: Kind::Custom {
            default: "Query API job: its grain; generic job: required",
        },
        doc: "Query API job: the dimensions that, with `account_id` and `date`, identify a row (a \
              subset of `dimensions`; by default every dimension but names and objectives beside \
              their id, see \"What lands in the database\"); generic job: the fields that, with \
              `account_id` and the window's first day, identify a row",
    },
];

/// The keys that may be written in `section`, in table order.
pub(crate) fn in_section(keys: &[Key], section: Section) -> impl Iterator<Item = &Key> {
    keys.iter().filter(move |k| k.place.is_in(section))
}

/// The names of the keys of `place`, in table order.
pub(crate) fn names_of(keys: &[Key], place: Place) -> Vec<&'static str> {
    keys.iter()
        .filter(|k| k.place == place)
        .map(|k| k.name)
        .collect()
}

/// The default word of the one-of key `name` in `section`, if it has one.
pub(crate) fn default_word(keys: &[Key], section: Section, name: &str) -> Option<&'static str> {
    in_section(keys, section).find_map(|k| match k.kind {
        Kind::OneOf { default, .. } if k.name == name => default,
        _ => None,
    })
}

/// `"a"`, `"b"` or `"c"`: allowed words as a message or the README writes them.
pub(crate) fn either(words: &[&str], quote: impl Fn(&str) -> String) -> String {
    let quoted: Vec<String> = words.iter().map(|w| quote(w)).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// One row of the README's configuration reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceRow {
    /// `section.name`, e.g. `api.max_retries`.
    pub key: String,
    /// The default column, in Markdown.
    pub default: String,
    /// The meaning column, in Markdown, with the range or the allowed words.
    pub meaning: String,
}

impl fmt::Display for ReferenceRow {
    /// The Markdown row as README.md holds it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "| `{}` | {} | {} |",
            self.key, self.default, self.meaning
        )
    }
}

/// The README's configuration reference, one row per key and section, in the README's order.
pub fn reference() -> Vec<ReferenceRow> {
    reference_of(KEYS)
}

pub(crate) fn reference_of(keys: &[Key]) -> Vec<ReferenceRow> {
    let mut rows = Vec::new();
    for section in Section::ALL {
        for key in in_section(keys, section) {
            let inherits = section == Section::Jobs && key.place == Place::Inherited;
            rows.push(ReferenceRow {
                key: format!("{}.{}", section.name(), key.name),
                default: if inherits {
                    format!("`defaults.{}`", key.name)
                } else {
                    default_text(key.kind)
                },
                meaning: if inherits {
                    "as in `[defaults]`".to_owned()
                } else {
                    meaning_text(key)
                },
            });
        }
    }
    rows
}

fn default_text(kind: Kind) -> String {
    match kind {
        Kind::Int { default, .. } => format!("`{default}`"),
        Kind::Bool { default } => format!("`{default}`"),
        Kind::Str { default } => format!("`\"{default}\"`"),
        Kind::TimeZone | Kind::Currency => "each account's own".to_owned(),
        Kind::Date => "none".to_owned(),
        Kind::OneOf {
            default: Some(word),
            ..
        } => format!("`\"{word}\"`"),
        Kind::OneOf { default: None, .. } => "–".to_owned(),
        Kind::Custom { default } => default.to_owned(),
    }
}

fn meaning_text(key: &Key) -> String {
    match key.kind {
        Kind::Int { min, max, .. } => format!("{} ({min}..{max})", key.doc),
        Kind::OneOf { words, .. } => {
            format!("{} ({})", key.doc, either(words, |w| format!("`\"{w}\"`")))
        }
        _ => key.doc.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_key_is_defined_once_per_section() {
        for section in Section::ALL {
            let mut seen = HashSet::new();
            for key in in_section(KEYS, section) {
                assert!(
                    seen.insert(key.name),
                    "{}.{} is defined twice",
                    section.name(),
                    key.name
                );
            }
        }
    }

    #[test]
    fn defaults_are_valid_values_of_their_kind() {
        for key in KEYS {
            match key.kind {
                Kind::Int { min, max, default } => {
                    assert!((min..=max).contains(&default), "{}", key.name);
                }
                Kind::OneOf {
                    words,
                    default: Some(word),
                } => assert!(words.contains(&word), "{}", key.name),
                _ => {}
            }
        }
    }

    #[test]
    fn the_reference_states_defaults_and_ranges() {
        let rows = reference();
        let row = |key: &str| {
            rows.iter()
                .find(|r| r.key == key)
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        assert_eq!(
            row("defaults.lookback_days"),
            "| `defaults.lookback_days` | `7` | days re-read on every run (0..365) |"
        );
        assert_eq!(
            row("jobs.lookback_days"),
            "| `jobs.lookback_days` | `defaults.lookback_days` | as in `[defaults]` |"
        );
        assert_eq!(
            row("jobs.method"),
            "| `jobs.method` | `\"GET\"` | generic job: the HTTP method (`\"GET\"` or `\"POST\"`) |"
        );
        assert_eq!(
            row("defaults.timezone").split(" | ").nth(1),
            Some("each account's own")
        );
        assert_eq!(rows.first().map(|r| r.key.as_str()), Some("api.base_url"));
    }

    #[test]
    fn words_are_listed_with_or() {
        let q = |w: &str| format!("\"{w}\"");
        assert_eq!(either(&["a"], q), "\"a\"");
        assert_eq!(either(&["a", "b"], q), "\"a\" or \"b\"");
        assert_eq!(either(&["a", "b", "c"], q), "\"a\", \"b\" or \"c\"");
    }
}

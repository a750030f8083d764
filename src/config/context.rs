//! The walk's context: where problems are collected (with their line and column), the key table
//! the walk consults, and the small types every reader shares: [`Invalid`] (a problem has been
//! recorded), [`Tbl`] (a table and its dotted path), spans.
//!
//! A leaf of its own so that the readers (`values.rs`, `job.rs`) and the walker (`parse.rs`) can
//! all add methods to [`Cx`] without importing one another.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Problem;
use super::keys::{self, Key, Section};

/// Byte range of a key or value in the file.
pub(super) type Span = Range<usize>;
pub(super) type Item<'i> = Spanned<DeValue<'i>>;

/// A problem has been recorded for this value; the caller goes on looking for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Invalid;

/// A table found in the document, with its dotted path (`api`, `jobs[2]`).
pub(super) struct Tbl<'a, 'i> {
    pub table: &'a DeTable<'i>,
    pub path: String,
}

/// The walk's context: the text (for line numbers), the problems found so far, and the key table.
pub(super) struct Cx<'k> {
    text: &'k str,
    pub problems: Vec<Problem>,
    pub keys: &'k [Key],
}

impl<'k> Cx<'k> {
    pub fn new(text: &'k str, keys: &'k [Key]) -> Cx<'k> {
        Cx {
            text,
            problems: Vec::new(),
            keys,
        }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// Records a problem at `span` (none: the problem has no place in the file) and returns the
    /// marker that says so.
    pub fn problem(
        &mut self,
        span: Option<Span>,
        key: &str,
        message: impl Into<String>,
    ) -> Invalid {
        let (line, column) = span
            .map(|s| self.position(s.start))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        self.problems.push(Problem {
            line,
            column,
            key: key.to_owned(),
            message: message.into(),
        });
        Invalid
    }

    /// Reports every key of `table` that is not in `allowed`, with a likely correction, and a
    /// warning (but never the value) when the key looks like a secret.
    pub fn check_keys(&mut self, table: &DeTable<'_>, path: &str, allowed: &[&str]) {
        for key in table.keys() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
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

    /// The names of the keys that may be written in `section`.
    pub fn allowed(&self, section: Section) -> Vec<&'static str> {
        keys::in_section(self.keys, section)
            .map(|k| k.name)
            .collect()
    }

    /// Reports that `item` (at `key`) is not what was `expected`.
    pub fn type_error(
        &mut self,
        item: &Item<'_>,
        key: &str,
        expected: &str,
        found: &DeValue<'_>,
    ) -> Invalid {
        self.problem(
            Some(item.span()),
            key,
            format!("expected {expected}, found {}", describe(found)),
        )
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

/// `path.key`, or `key` at the top level.
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn describe(v: &DeValue<'_>) -> &'static str {
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

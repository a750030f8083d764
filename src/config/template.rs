//! Placeholders in a generic job's `endpoint`, `query` and `body`: `{account_id}`, `{start_date}`,
//! `{end_date}`, `{last_date}`, `{timezone}`, `{currency}`.
//!
//! A template is checked once, when the config is loaded, so that a typo such as `{acount_id}` is a
//! config error with a line number rather than a request to a wrong URL at 5 a.m.

use chrono::NaiveDate;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The placeholder names a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "account_id",
    "start_date",
    "end_date",
    "last_date",
    "timezone",
    "currency",
];

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A string with `{name}` placeholders, validated against [`PLACEHOLDERS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(Placeholder),
}

/// One placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    AccountId,
    StartDate,
    EndDate,
    LastDate,
    Timezone,
    Currency,
}

/// The values placeholders expand to for one request.
#[derive(Debug, Clone)]
pub struct Values<'a> {
    pub account_id: &'a str,
    /// First day of the window, inclusive.
    pub start_date: NaiveDate,
    /// Last day of the window, inclusive.
    pub last_date: NaiveDate,
    pub timezone: &'a str,
    pub currency: &'a str,
}

/// Why a template was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder `{{{name}}}`{hint}; valid placeholders are {valid}")]
    Unknown {
        name: String,
        hint: String,
        valid: String,
    },
    #[error("unclosed `{{` at byte {0}; write placeholders as `{{name}}`")]
    Unclosed(usize),
    #[error("`}}` without a matching `{{` at byte {0}")]
    Unopened(usize),
}

impl Template {
    /// Parses `text`, rejecting unknown or malformed placeholders.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(pos) = rest.find(['{', '}']) {
            let (before, after) = rest.split_at(pos);
            literal.push_str(before);
            if after.starts_with('}') {
                return Err(TemplateError::Unopened(offset + pos));
            }
            let Some(close) = after.find('}') else {
                return Err(TemplateError::Unclosed(offset + pos));
            };
            let name = &after[1..close];
            if name.contains('{') {
                return Err(TemplateError::Unclosed(offset + pos));
            }
            let placeholder = Placeholder::from_name(name).ok_or_else(|| unknown(name))?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Placeholder(placeholder));
            offset += pos + close + 1;
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// Expands the placeholders; values are inserted as they are.
    pub fn expand(&self, values: &Values<'_>) -> String {
        self.render(values, false)
    }

    /// Expands the placeholders for a URL path: values are percent-encoded as one path segment, so an
    /// account id can never add a `/` or a `?` to the path.
    pub fn expand_path(&self, values: &Values<'_>) -> String {
        self.render(values, true)
    }

    /// Whether the template uses `placeholder`.
    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Placeholder(q) if *q == placeholder))
    }

    /// The template as written.
    pub fn source(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s.clone(),
                Part::Placeholder(p) => format!("{{{}}}", p.name()),
            })
            .collect()
    }

    fn render(&self, values: &Values<'_>, encode: bool) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Placeholder(p) => {
                    let value = p.value(values);
                    if encode {
                        out.extend(utf8_percent_encode(&value, PATH_SEGMENT));
                    } else {
                        out.push_str(&value);
                    }
                }
            }
        }
        out
    }
}

impl Placeholder {
    fn from_name(name: &str) -> Option<Placeholder> {
        Some(match name {
            "account_id" => Placeholder::AccountId,
            "start_date" => Placeholder::StartDate,
            "end_date" => Placeholder::EndDate,
            "last_date" => Placeholder::LastDate,
            "timezone" => Placeholder::Timezone,
            "currency" => Placeholder::Currency,
            _ => return None,
        })
    }

    /// The name written between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::AccountId => "account_id",
            Placeholder::StartDate => "start_date",
            Placeholder::EndDate => "end_date",
            Placeholder::LastDate => "last_date",
            Placeholder::Timezone => "timezone",
            Placeholder::Currency => "currency",
        }
    }

    fn value(self, v: &Values<'_>) -> String {
        match self {
            Placeholder::AccountId => v.account_id.to_owned(),
            Placeholder::StartDate => v.start_date.format("%Y-%m-%d").to_string(),
            Placeholder::EndDate => v
                .last_date
                .succ_opt()
                .unwrap_or(v.last_date)
                .format("%Y-%m-%d")
                .to_string(),
            Placeholder::LastDate => v.last_date.format("%Y-%m-%d").to_string(),
            Placeholder::Timezone => v.timezone.to_owned(),
            Placeholder::Currency => v.currency.to_owned(),
        }
    }
}

fn unknown(name: &str) -> TemplateError {
    let hint = super::suggest(name, PLACEHOLDERS.iter().copied())
        .map(|s| format!(" (did you mean `{{{s}}}`?)"))
        .unwrap_or_default();
    TemplateError::Unknown {
        name: name.to_owned(),
        hint,
        valid: PLACEHOLDERS
            .iter()
            .map(|p| format!("{{{p}}}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values<'static> {
        Values {
            account_id: "31/41 5?",
            start_date: NaiveDate::from_ymd_opt(2025, 12, 30).unwrap(),
            last_date: NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
            timezone: "America/Los_Angeles",
            currency: "USD",
        }
    }

    #[test]
    fn expands_every_placeholder() {
        let t = Template::parse(
            "{account_id}|{start_date}|{end_date}|{last_date}|{timezone}|{currency}",
        )
        .unwrap();
        assert_eq!(
            t.expand(&values()),
            "31/41 5?|2025-12-30|2026-01-01|2025-12-31|America/Los_Angeles|USD"
        );
    }

    #[test]
    fn path_values_are_percent_encoded_as_one_segment() {
        let t = Template::parse("/reporting/accounts/{account_id}/campaigns/breakdown").unwrap();
        assert_eq!(
            t.expand_path(&values()),
            "/reporting/accounts/31%2F41%205%3F/campaigns/breakdown"
        );
        assert!(t.uses(Placeholder::AccountId));
        assert!(!t.uses(Placeholder::Currency));
        assert_eq!(
            t.source(),
            "/reporting/accounts/{account_id}/campaigns/breakdown"
        );
    }

    #[test]
    fn end_date_is_the_day_after_the_last_day() {
        let t = Template::parse("{end_date}").unwrap();
        let mut v = values();
        v.last_date = NaiveDate::from_ymd_opt(2024, 2, 28).unwrap();
        assert_eq!(t.expand(&v), "2024-02-29");
    }

    #[test]
    fn unknown_placeholder_is_named_with_a_suggestion() {
        let err = Template::parse("/x/{acount_id}").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`{acount_id}`"), "{text}");
        assert!(text.contains("did you mean `{account_id}`"), "{text}");
        assert!(text.contains("{last_date}"), "{text}");
    }

    #[test]
    fn malformed_braces_are_rejected() {
        assert_eq!(
            Template::parse("/x/{account_id").unwrap_err(),
            TemplateError::Unclosed(3)
        );
        assert_eq!(
            Template::parse("/x/}").unwrap_err(),
            TemplateError::Unopened(3)
        );
        assert!(Template::parse("plain").unwrap().expand(&values()) == "plain");
    }
}

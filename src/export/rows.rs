//! What the two answer readers share: the error that fails a window whose answer cannot be read,
//! the `_extra` column that keeps whatever a job did not name, and [`Notes`]: what reading an
//! answer noticed besides its rows (values kept in `_extra` because their type did not fit their
//! column, rows skipped, rows that lacked a dimension).
//!
//! A leaf module: [`query`](super::query) (Query API answers, streamed) and
//! [`generic`](super::generic) (any other endpoint) both use it, and it uses neither.

use std::collections::{BTreeMap, BTreeSet};

/// Why an answer could not be turned into rows. Fails the window; nothing of it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowsError {
    #[error("the answer is not the expected JSON: {0}")]
    Shape(String),
    /// The answer holds no rows but an error (`message`, `error`, `detail` or `errors`).
    #[error("the API answered with an error and no rows: {0}")]
    Refused(String),
    #[error("row {row} (counting from 0): {message}")]
    Row { row: usize, message: String },
}

/// How deeply arrays and objects may nest in an answer. No report nests more than a few levels;
/// a deeper value is refused with this limit named, before any recursive parser sees it (serde_json
/// stops at 128 on its own, with a message that does not say why).
pub const MAX_DEPTH: usize = 64;

/// The message of an answer nested deeper than [`MAX_DEPTH`].
pub fn too_deep() -> String {
    format!("arrays and objects nested more than {MAX_DEPTH} levels deep")
}

/// Whether `json` nests arrays and objects more than [`MAX_DEPTH`] levels deep, brackets inside
/// strings not counted. One pass, no recursion; says nothing else about the text's syntax.
pub fn nests_too_deep(json: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Columns every table has besides the job's own.
pub const EXTRA_COLUMN: &str = "_extra";

/// What reading an answer noticed besides its rows; each becomes a warning in the log, the run
/// record and the run's summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    /// column name → how many values went to `_extra` instead (their type did not fit).
    pub diverted: BTreeMap<String, usize>,
    /// Rows that were empty (`{}` or `[]`), skipped.
    pub empty_rows: usize,
    /// dimension → how many rows lacked it (kept: with `''` in a key column, NULL in another).
    pub missing: BTreeMap<String, usize>,
    /// The dimensions of `missing` that are not part of the table's key (stored NULL, not `''`).
    pub missing_outside_key: BTreeSet<String>,
    /// Rows that lacked at least one dimension (kept).
    pub rows_missing_dimension: usize,
    /// column name → how many numbers were too large for Postgres' `numeric` (kept in `_extra`
    /// as text).
    pub oversized: BTreeMap<String, usize>,
}

impl Notes {
    /// One sentence per thing noticed; empty when there was nothing.
    pub fn remarks(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (column, n) in &self.diverted {
            out.push(format!(
                "{n} value(s) of `{column}` had an unexpected type and were kept in `_extra`"
            ));
        }
        if self.empty_rows > 0 {
            out.push(format!(
                "{} empty row(s) (`{{}}` or `[]`) were skipped",
                self.empty_rows
            ));
        }
        for (column, n) in &self.oversized {
            out.push(format!(
                "{n} value(s) of `{column}` were too large for a numeric column and were kept in \
                 `_extra` as text"
            ));
        }
        for (dimension, n) in &self.missing {
            let stored = if self.missing_outside_key.contains(dimension) {
                "NULL in its column"
            } else {
                "'' in its column (part of the key)"
            };
            out.push(format!(
                "{n} row(s) had no `{dimension}`; they were kept with {stored}"
            ));
        }
        out
    }
}

/// Whether the decimal text of a JSON number fits Postgres' `numeric` (at most 131,072 digits before
/// the point and 16,383 after it), so that loading it cannot fail the window.
pub(crate) fn fits_numeric(s: &str) -> bool {
    let s = s.trim();
    if s.len() < 1_000 && !s.contains(['e', 'E']) {
        return true; // the numbers APIs send
    }
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i64>().ok()),
        None => (s, Some(0)),
    };
    let Some(exponent) = exponent else {
        return false; // an exponent beyond i64 is far beyond numeric
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let int_digits = i64::try_from(int.trim_start_matches('0').len()).unwrap_or(i64::MAX);
    let frac_digits = i64::try_from(frac.trim_end_matches('0').len()).unwrap_or(i64::MAX);
    if int_digits == 0 && frac_digits == 0 {
        return true; // zero, however written
    }
    int_digits.saturating_add(exponent) <= 131_072 && frac_digits.saturating_sub(exponent) <= 16_383
}

/// A value's JSON text as `jsonb` can hold it: a number too large for `numeric` becomes a string of
/// its text, and the escape `\u0000` (which Postgres text cannot hold) becomes U+FFFD. Borrowed
/// unless a change is needed.
pub(crate) fn storable_json(raw: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let text_of = |raw: &str| Cow::Owned(serde_json::Value::String(raw.to_owned()).to_string());
    match raw.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => {
            return if fits_numeric(raw) {
                Cow::Borrowed(raw)
            } else {
                text_of(raw)
            };
        }
        Some(b'{' | b'[') if may_hold_a_large_number(raw) => {}
        _ if raw.contains("\\u0000") => {}
        _ => return Cow::Borrowed(raw),
    }
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(mut value) => {
            without_nul(&mut value);
            Cow::Owned(value.to_string())
        }
        // Numbers beyond what serde_json reads: kept whole, as text.
        Err(_) => text_of(raw),
    }
}

/// Replaces NUL characters (which Postgres text and `jsonb` cannot hold) by U+FFFD in every string
/// and key of `value`.
pub(crate) fn without_nul(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(without_nul),
        Value::Object(map) if map.keys().any(|k| k.contains('\0')) => {
            let old = std::mem::take(map);
            for (k, mut v) in old {
                without_nul(&mut v);
                map.insert(k.replace('\0', "\u{FFFD}"), v);
            }
        }
        Value::Object(map) => map.values_mut().for_each(without_nul),
        _ => {}
    }
}

/// Whether nested JSON text may hold a number `numeric` cannot take (a long run of digits or an
/// exponent): the cheap test before parsing it.
fn may_hold_a_large_number(raw: &str) -> bool {
    raw.contains("\\u0000")
        || raw
            .as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_digit() && matches!(w[1], b'e' | b'E'))
        || raw
            .as_bytes()
            .split(|b| !b.is_ascii_digit())
            .any(|run| run.len() > 300)
}

/// Whether `s` is a JSON number (a metric or numeric field sent as a quoted decimal).
pub(crate) fn is_decimal(s: &str) -> bool {
    serde_json::from_str::<serde_json::Number>(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings_and_refused_past_the_limit() {
        let at = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!nests_too_deep(at(MAX_DEPTH).as_bytes()));
        assert!(nests_too_deep(at(MAX_DEPTH + 1).as_bytes()));
        assert!(nests_too_deep(at(200_000).as_bytes()));
        // Brackets in strings, escaped quotes included, are text.
        let in_string = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(!nests_too_deep(in_string.as_bytes()));
        // Depth goes down again: many shallow values are fine.
        let wide = format!("[{}]", vec![at(10); 1000].join(","));
        assert!(!nests_too_deep(wide.as_bytes()));
    }

    #[test]
    fn numbers_fit_numeric_unless_they_are_huge() {
        for fits in [
            "0",
            "-12.5",
            "1e10",
            "1.5E-3",
            "0e99999999",
            "123456789012345678901234567890",
        ] {
            assert!(fits_numeric(fits), "{fits}");
        }
        let long = format!("1{}", "0".repeat(131_072));
        for huge in [
            "1e1000000",
            "1e131072",
            "1e-16384",
            "1e99999999999999999999",
            long.as_str(),
        ] {
            assert!(!fits_numeric(huge), "{}", &huge[..huge.len().min(30)]);
        }
    }

    #[test]
    fn extra_values_are_made_storable() {
        assert_eq!(storable_json("12.5"), "12.5");
        assert_eq!(storable_json("1e1000000"), "\"1e1000000\"");
        assert_eq!(storable_json(r#""a\u0000b""#), "\"a\u{FFFD}b\"");
        assert_eq!(
            storable_json(r#"{"k\u0000":["x\u0000"]}"#),
            "{\"k\u{FFFD}\":[\"x\u{FFFD}\"]}"
        );
        assert_eq!(
            storable_json(r#"{"n":1e1000000}"#),
            r#""{\"n\":1e1000000}""#
        );
        assert_eq!(storable_json(r#""plain""#), r#""plain""#);
        assert!(matches!(
            storable_json(r#"{"a":[1,2,3]}"#),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}

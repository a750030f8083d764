//! Reading values out of toml's spanned tree: the type and range checks with messages that say
//! what would be valid, and [`Values`], the scalar keys of one table resolved against the key
//! table's defaults and, for a job, against `[defaults]`.
//!
//! Apart from the walker (`parse.rs`) and the job kinds (`job.rs`) because every section uses
//! these, and because this is where the key table's [`Kind`]s become values: a new scalar key
//! needs nothing here, a new *kind* of scalar needs one arm in [`Cx::scalar`] and one
//! [`FromScalar`] impl.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::NaiveDate;
use chrono_tz::Tz;
use toml::de::DeValue;

use super::context::{Cx, Invalid, Item, Span, Tbl, join};
use super::keys::{self, Key, Kind, Place, Section};

/// The value of a scalar key.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Int(i64),
    Bool(bool),
    /// Strings and currency codes.
    Str(String),
    TimeZone(Tz),
    Date(NaiveDate),
}

/// Where a scalar key of one table stands after reading.
#[derive(Debug, Clone)]
enum Slot {
    /// Given (with its span) or taken from a default (no span).
    Set { value: Scalar, span: Option<Span> },
    /// Neither given nor defaulted (a date without a default).
    Unset,
    /// Given but wrong; the problem is already recorded.
    Invalid,
}

/// The scalar keys of one table (`[api]`, `[defaults]`, one job), each given, defaulted or invalid.
#[derive(Debug, Clone)]
pub(super) struct Values {
    /// Dotted path of the table, for messages.
    path: String,
    slots: BTreeMap<&'static str, Slot>,
}

impl Values {
    /// The string `name` as written in the file, with its span (not when it is a default).
    pub fn written(&self, name: &str) -> Option<(&str, Span)> {
        match self.slots.get(name) {
            Some(Slot::Set {
                value: Scalar::Str(s),
                span: Some(span),
            }) => Some((s, span.clone())),
            _ => None,
        }
    }
}

/// A Rust type a scalar turns into.
pub(super) trait FromScalar: Sized {
    /// `None` when `value` is of another kind: a bug in the key table or in the caller.
    fn from_scalar(value: Option<&Scalar>) -> Option<Self>;
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl FromScalar for $t {
            fn from_scalar(value: Option<&Scalar>) -> Option<Self> {
                match value {
                    Some(Scalar::Int(i)) => <$t>::try_from(*i).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
from_int!(i64, u32, u64, usize);

impl FromScalar for bool {
    fn from_scalar(value: Option<&Scalar>) -> Option<Self> {
        match value {
            Some(Scalar::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

impl FromScalar for String {
    fn from_scalar(value: Option<&Scalar>) -> Option<Self> {
        match value {
            Some(Scalar::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromScalar for Tz {
    fn from_scalar(value: Option<&Scalar>) -> Option<Self> {
        match value {
            Some(Scalar::TimeZone(tz)) => Some(*tz),
            _ => None,
        }
    }
}

impl FromScalar for NaiveDate {
    fn from_scalar(value: Option<&Scalar>) -> Option<Self> {
        match value {
            Some(Scalar::Date(d)) => Some(*d),
            _ => None,
        }
    }
}

/// An optional key: unset is `None`.
impl<T: FromScalar> FromScalar for Option<T> {
    fn from_scalar(value: Option<&Scalar>) -> Option<Self> {
        match value {
            None => Some(None),
            Some(_) => T::from_scalar(value).map(Some),
        }
    }
}

impl Cx<'_> {
    /// The scalar keys of `section` read from `t` (absent: no table was written). A key left out
    /// takes, in jobs, the `[defaults]` value when it is inherited (`inherited`), else its default
    /// from the key table. Problems are recorded; their keys become invalid.
    pub(super) fn values(
        &mut self,
        t: Option<&Tbl<'_, '_>>,
        section: Section,
        inherited: Option<&Values>,
    ) -> Values {
        let keys = self.keys;
        let mut slots = BTreeMap::new();
        for key in keys::in_section(keys, section).filter(|k| k.kind.is_scalar()) {
            let given = match t {
                Some(t) => self.scalar(t, key),
                None => Ok(None),
            };
            let slot = match given {
                Ok(Some((value, span))) => Slot::Set {
                    value,
                    span: Some(span),
                },
                Err(Invalid) => Slot::Invalid,
                Ok(None) => match inherited {
                    Some(d) if key.place == Place::Inherited => {
                        d.slots.get(key.name).cloned().unwrap_or(Slot::Unset)
                    }
                    _ => default_slot(key.kind),
                },
            };
            slots.insert(key.name, slot);
        }
        Values {
            path: t.map_or_else(|| section.name().to_owned(), |t| t.path.clone()),
            slots,
        }
    }

    /// The value of `name` in `values` as a `T`. `Err` when it was invalid (already reported);
    /// a name the key table does not have, or of another kind, is a bug and reported as one.
    pub(super) fn get<T: FromScalar>(&mut self, values: &Values, name: &str) -> Result<T, Invalid> {
        let value = match values.slots.get(name) {
            Some(Slot::Invalid) => return Err(Invalid),
            Some(Slot::Set { value, .. }) => Some(value),
            Some(Slot::Unset) => None,
            None => return Err(self.internal(&values.path, name)),
        };
        T::from_scalar(value).ok_or_else(|| self.internal(&values.path, name))
    }

    /// The string `name` (given, or its default) turned into `T` by `check`; a failed check is
    /// reported at the value, with `check`'s message.
    pub(super) fn check<T>(
        &mut self,
        values: &Values,
        name: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, Invalid> {
        let (text, span) = match values.slots.get(name) {
            Some(Slot::Invalid) => return Err(Invalid),
            Some(Slot::Set {
                value: Scalar::Str(s),
                span,
            }) => (s.as_str(), span.clone()),
            _ => return Err(self.internal(&values.path, name)),
        };
        check(text).map_err(|message| self.problem(span, &join(&values.path, name), message))
    }

    /// Reports a disagreement between the key table and the code that reads it (a bug).
    pub(super) fn internal(&mut self, path: &str, name: &str) -> Invalid {
        self.problem(
            None,
            &join(path, name),
            "internal error: the key table and the code that reads it disagree about this key \
             (please report this)",
        )
    }

    /// The scalar `key` as written in `t`: `Ok(None)` when it is not there.
    fn scalar(&mut self, t: &Tbl<'_, '_>, key: &Key) -> Result<Option<(Scalar, Span)>, Invalid> {
        let Some(item) = t.table.get(key.name) else {
            return Ok(None);
        };
        let full = join(&t.path, key.name);
        let value = match key.kind {
            Kind::Int { min, max, .. } => Scalar::Int(self.int(item, &full, min, max)?),
            Kind::Bool { .. } => Scalar::Bool(self.bool(item, &full)?),
            Kind::Str { .. } => Scalar::Str(self.string(item, &full)?),
            Kind::TimeZone => Scalar::TimeZone(self.timezone(item, &full)?),
            Kind::Currency => Scalar::Str(self.currency(item, &full)?),
            Kind::Date => Scalar::Date(self.date(item, &full)?),
            // Read by their own code; `values` never asks for them.
            Kind::OneOf { .. } | Kind::Custom { .. } => return Ok(None),
        };
        Ok(Some((value, item.span())))
    }

    /// `key` of `t` if it is there, as a string with its span.
    pub(super) fn string_at(
        &mut self,
        t: &Tbl<'_, '_>,
        key: &str,
    ) -> Result<Option<(String, Span)>, Invalid> {
        match t.table.get(key) {
            None => Ok(None),
            Some(item) => {
                let s = self.string(item, &join(&t.path, key))?;
                Ok(Some((s, item.span())))
            }
        }
    }

    fn string(&mut self, item: &Item<'_>, key: &str) -> Result<String, Invalid> {
        match item.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(self.type_error(item, key, "a string", other)),
        }
    }

    fn bool(&mut self, item: &Item<'_>, key: &str) -> Result<bool, Invalid> {
        match item.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.type_error(item, key, "true or false", other)),
        }
    }

    fn int(&mut self, item: &Item<'_>, key: &str, min: i64, max: i64) -> Result<i64, Invalid> {
        let DeValue::Integer(i) = item.get_ref() else {
            return Err(self.type_error(item, key, "an integer", item.get_ref()));
        };
        match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(self.problem(
                Some(item.span()),
                key,
                format!(
                    "{} is out of range: must be from {min} to {max}",
                    i.as_str()
                ),
            )),
        }
    }

    fn date(&mut self, item: &Item<'_>, key: &str) -> Result<NaiveDate, Invalid> {
        let text = match item.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Datetime(d) if d.time.is_none() && d.offset.is_none() => d.to_string(),
            other => {
                return Err(self.type_error(item, key, "a date such as \"2025-01-01\"", other));
            }
        };
        match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            Ok(d) if text.len() == 10 => Ok(d),
            _ => Err(self.problem(
                Some(item.span()),
                key,
                format!("\"{text}\" is not a calendar date; write YYYY-MM-DD, e.g. \"2025-01-01\""),
            )),
        }
    }

    fn timezone(&mut self, item: &Item<'_>, key: &str) -> Result<Tz, Invalid> {
        let name = self.string(item, key)?;
        Tz::from_str(&name).map_err(|_| {
            let hint = super::suggest(&name, chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()))
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            self.problem(
                Some(item.span()),
                key,
                format!(
                    "\"{name}\" is not a time zone of the tz database{hint}; use an Olson name \
                     such as \"UTC\", \"America/New_York\" or \"Australia/Sydney\""
                ),
            )
        })
    }

    fn currency(&mut self, item: &Item<'_>, key: &str) -> Result<String, Invalid> {
        let code = self.string(item, key)?;
        if is_currency(&code) {
            Ok(code)
        } else {
            Err(self.problem(
                Some(item.span()),
                key,
                format!(
                    "\"{code}\" is not an ISO 4217 currency code; use three capital letters such \
                     as \"USD\", \"AUD\" or \"EUR\""
                ),
            ))
        }
    }
}

fn default_slot(kind: Kind) -> Slot {
    let value = match kind {
        Kind::Int { default, .. } => Scalar::Int(default),
        Kind::Bool { default } => Scalar::Bool(default),
        Kind::Str { default } => Scalar::Str(default.to_owned()),
        Kind::TimeZone | Kind::Currency | Kind::Date | Kind::OneOf { .. } | Kind::Custom { .. } => {
            return Slot::Unset;
        }
    };
    Slot::Set { value, span: None }
}

/// Three capital letters, the shape of an ISO 4217 code.
pub(super) fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// A lower-case SQL identifier that needs no quoting: `[a-z_][a-z0-9_]*`, at most 63 bytes.
pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

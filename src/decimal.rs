//! Exact decimal numbers, for comparing a table's sums with the API's totals: parsed from the
//! text a database or the API wrote (`12.30`, `-0.5`, `1.5e3`), added, rounded and compared by
//! value, never through a float.
//!
//! A value is an integer count of `10^-scale` units in an `i128`: 38 significant digits, far more
//! than a day's total of any metric needs. An operation that would not fit returns `None` (the
//! caller says the value is too large to compare), never a wrong number.

use std::cmp::Ordering;
use std::fmt;

/// An exact decimal: `units × 10^-scale`.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    units: i128,
    scale: u32,
}

/// The most digits after the point a value may have (a float printed by SQLite has at most 17
/// significant digits; the API writes at most a few decimals).
const MAX_SCALE: u32 = 30;

impl Decimal {
    pub const ZERO: Decimal = Decimal { units: 0, scale: 0 };

    /// Parses a decimal as Postgres, SQLite or JSON write it: an optional sign, digits with an
    /// optional point, and an optional exponent (`1.5e-3`). `None` for anything else.
    pub fn parse(text: &str) -> Option<Decimal> {
        let s = text.trim();
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(at) => (&s[..at], s[at + 1..].parse::<i32>().ok()?),
            None => (s, 0),
        };
        let (negative, digits) = match mantissa.as_bytes().first()? {
            b'-' => (true, &mantissa[1..]),
            b'+' => (false, &mantissa[1..]),
            _ => (false, mantissa),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let mut units: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            if !b.is_ascii_digit() {
                return None;
            }
            units = units.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let scale = i64::try_from(frac.len()).ok()? - i64::from(exponent);
        let value = if scale < 0 {
            let up = u32::try_from(-scale).ok()?;
            Decimal {
                units: units.checked_mul(10i128.checked_pow(up)?)?,
                scale: 0,
            }
        } else {
            Decimal {
                units,
                scale: u32::try_from(scale).ok()?,
            }
        };
        // As written (`12.30` keeps its two decimals: the precision it was given in), unless that
        // is more digits after the point than are compared.
        let value = if value.scale > MAX_SCALE {
            value.trimmed()
        } else {
            value
        };
        if value.scale > MAX_SCALE {
            return None;
        }
        Some(if negative { value.negated() } else { value })
    }

    /// Digits after the point, as written (`12.30` has 2).
    pub fn scale(self) -> u32 {
        self.scale
    }

    pub fn is_zero(self) -> bool {
        self.units == 0
    }

    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let (a, b) = (self.rescaled(scale)?, other.rescaled(scale)?);
        Some(Decimal {
            units: a.units.checked_add(b.units)?,
            scale,
        })
    }

    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.checked_add(other.negated())
    }

    /// This value with `scale` digits after the point: exact when `scale` is not smaller than the
    /// value's, else rounded half away from zero (as a total printed to that precision is).
    pub fn round_to(self, scale: u32) -> Option<Decimal> {
        if scale >= self.scale {
            return self.rescaled(scale);
        }
        let divisor = 10i128.checked_pow(self.scale - scale)?;
        let (quotient, remainder) = (self.units / divisor, self.units % divisor);
        let away = remainder.unsigned_abs() * 2 >= divisor.unsigned_abs();
        let units = match (away, self.units < 0) {
            (false, _) => quotient,
            (true, false) => quotient + 1,
            (true, true) => quotient - 1,
        };
        Some(Decimal { units, scale })
    }

    fn negated(self) -> Decimal {
        Decimal {
            units: -self.units,
            scale: self.scale,
        }
    }

    /// The same value with exactly `scale` digits after the point; `None` when it would need
    /// rounding or does not fit.
    fn rescaled(self, scale: u32) -> Option<Decimal> {
        if scale < self.scale {
            return None;
        }
        Some(Decimal {
            units: self
                .units
                .checked_mul(10i128.checked_pow(scale - self.scale)?)?,
            scale,
        })
    }

    /// Without trailing zeros after the point.
    fn trimmed(mut self) -> Decimal {
        while self.scale > 0 && self.units % 10 == 0 {
            self.units /= 10;
            self.scale -= 1;
        }
        self
    }
}

impl PartialEq for Decimal {
    /// By value: `12.30 == 12.3`.
    fn eq(&self, other: &Decimal) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        let (a, b) = (self.trimmed(), other.trimmed());
        let scale = a.scale.max(b.scale);
        match (a.rescaled(scale), b.rescaled(scale)) {
            (Some(a), Some(b)) => a.units.cmp(&b.units),
            // Too large to line up: the signs and then the integer parts decide.
            _ => (a.units.signum(), a.units / 10i128.pow(a.scale))
                .cmp(&(b.units.signum(), b.units / 10i128.pow(b.scale))),
        }
    }
}

impl fmt::Display for Decimal {
    /// Plain notation with the value's own digits after the point (`-1234.50`), as Postgres
    /// writes a numeric.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let digits = self.units.unsigned_abs().to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parses_what_databases_and_json_write() {
        assert_eq!(d("12.30").to_string(), "12.30");
        assert_eq!(d("12.30").scale(), 2);
        assert_eq!(d("-0.05").to_string(), "-0.05");
        assert_eq!(d("+7").to_string(), "7");
        assert_eq!(d(".5").to_string(), "0.5");
        assert_eq!(d("5.").to_string(), "5");
        assert_eq!(d("-0").to_string(), "0");
        assert_eq!(d("1.5e3").to_string(), "1500");
        assert_eq!(d("1.0e+20").to_string(), "100000000000000000000");
        assert_eq!(d("25E-4").to_string(), "0.0025");
        assert_eq!(d("0").scale(), 0);
        for bad in [
            "", "-", ".", "1,5", "abc", "1e", "NaN", "inf", "1.2.3", "--1",
        ] {
            assert!(Decimal::parse(bad).is_none(), "{bad}");
        }
        assert!(
            Decimal::parse("1e-40").is_none(),
            "more digits than compared"
        );
        assert!(Decimal::parse("1e40").is_none(), "too large for 38 digits");
    }

    #[test]
    fn compares_by_value() {
        assert_eq!(d("12.30"), d("12.3"));
        assert_eq!(d("1500"), d("1.5e3"));
        assert!(d("0.1") < d("0.10001"));
        assert!(d("-1") < d("0"));
        assert_ne!(d("100.004"), d("100"));
    }

    #[test]
    fn adds_exactly_where_floats_do_not() {
        let mut sum = Decimal::ZERO;
        for _ in 0..10 {
            sum = sum.checked_add(d("0.1")).unwrap();
        }
        assert_eq!(sum, d("1"));
        assert_eq!(
            d("1234.56").checked_sub(d("1234.5")).unwrap().to_string(),
            "0.06"
        );
        let big = d("170141183460469231731687303715884105727"); // i128::MAX
        assert!(big.checked_add(d("1")).is_none());
    }

    #[test]
    fn rounds_half_away_from_zero_to_a_precision() {
        assert_eq!(d("100.004").round_to(2).unwrap().to_string(), "100.00");
        assert_eq!(d("100.005").round_to(2).unwrap().to_string(), "100.01");
        assert_eq!(d("-100.005").round_to(2).unwrap().to_string(), "-100.01");
        assert_eq!(d("2.5").round_to(0).unwrap().to_string(), "3");
        assert_eq!(d("7").round_to(2).unwrap().to_string(), "7.00");
    }
}

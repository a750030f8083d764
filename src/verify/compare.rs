//! The comparison itself, pure: a table's per-day sums beside the API's per-day totals, day by day
//! and metric by metric, at the API's precision.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::{DayCheck, MetricCheck};
use crate::decimal::Decimal;
use crate::export::Window;
use crate::store::DayTotal;

/// The API's totals of one account: per day, one value per checked metric (a metric the answer
/// had no number for is 0), and per metric the most digits after the point any of its values had.
#[derive(Debug, Default)]
pub(super) struct ApiTotals {
    pub days: BTreeMap<NaiveDate, Vec<Decimal>>,
    pub precision: Vec<Option<u32>>,
}

impl ApiTotals {
    pub fn new(metrics: usize) -> ApiTotals {
        ApiTotals {
            days: BTreeMap::new(),
            precision: vec![None; metrics],
        }
    }

    /// Adds one row of the answer (two rows of one day are added up). `None` when a sum does not
    /// fit (38 digits).
    pub fn add(&mut self, day: NaiveDate, values: &[Option<Decimal>]) -> Option<()> {
        let n = self.precision.len();
        let totals = self
            .days
            .entry(day)
            .or_insert_with(|| vec![Decimal::ZERO; n]);
        for (i, value) in values.iter().enumerate().take(n) {
            if let Some(v) = value {
                totals[i] = totals[i].checked_add(*v)?;
                let p = &mut self.precision[i];
                *p = Some(p.map_or(v.scale(), |p| p.max(v.scale())));
            }
        }
        Some(())
    }
}

/// Every day of `days`, compared: the table's sum of each metric (0 on a day without rows) with
/// the API's total (0 on a day the answer had no row for). A sum matches when, rounded to the
/// API's precision for that metric (the most decimals its values were written with; a JSON
/// number drops trailing zeros, so one value alone could understate it), it equals the API's
/// number exactly.
pub(super) fn compare(days: Window, table: &[DayTotal], api: &ApiTotals) -> Vec<DayCheck> {
    let n = api.precision.len();
    let zeros = vec![Decimal::ZERO; n];
    let mut out = Vec::new();
    let mut day = days.start;
    while day <= days.last {
        let stored = table.iter().find(|t| t.date == day);
        let sums = stored.map_or(&zeros, |t| &t.sums);
        let answered = api.days.get(&day);
        let totals = answered.unwrap_or(&zeros);
        let metrics = (0..n)
            .map(|i| {
                let (ours, theirs) = (sums.get(i).copied().unwrap_or(Decimal::ZERO), totals[i]);
                let precision = api.precision[i].unwrap_or(ours.scale());
                MetricCheck {
                    table: ours,
                    api: theirs,
                    matches: ours.round_to(precision) == Some(theirs),
                }
            })
            .collect();
        out.push(DayCheck {
            date: day,
            table_rows: stored.map_or(0, |t| t.rows),
            api_has_row: answered.is_some(),
            metrics,
        });
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

/// Runs of consecutive days in `checks` that differ while the table holds no row for them: days
/// that were never loaded (or lost), said as one line each rather than metric by metric.
pub(super) fn not_loaded(checks: &[DayCheck]) -> Vec<Window> {
    let mut spans: Vec<Window> = Vec::new();
    for c in checks.iter().filter(|c| c.not_loaded()) {
        match spans.last_mut() {
            Some(w) if w.last.succ_opt() == Some(c.date) => w.last = c.date,
            _ => spans.push(Window {
                start: c.date,
                last: c.date,
            }),
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    fn dec(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    fn total(d: u32, rows: u64, sums: &[&str]) -> DayTotal {
        DayTotal {
            date: day(d),
            rows,
            sums: sums.iter().map(|s| dec(s)).collect(),
        }
    }

    fn api(rows: &[(u32, &[&str])]) -> ApiTotals {
        let mut t = ApiTotals::new(2);
        for (d, values) in rows {
            let values: Vec<Option<Decimal>> = values.iter().map(|v| Decimal::parse(v)).collect();
            t.add(day(*d), &values).unwrap();
        }
        t
    }

    fn window(a: u32, b: u32) -> Window {
        Window {
            start: day(a),
            last: day(b),
        }
    }

    #[test]
    fn equal_sums_match_and_a_difference_is_named_per_metric() {
        let table = [total(1, 3, &["100", "12.50"]), total(2, 3, &["90", "7.25"])];
        let answer = api(&[(1, &["100", "12.50"]), (2, &["91", "7.25"])]);
        let checks = compare(window(1, 2), &table, &answer);
        assert!(checks[0].matches());
        assert!(!checks[1].matches());
        assert!(!checks[1].metrics[0].matches);
        assert!(checks[1].metrics[1].matches);
        assert_eq!(checks[1].metrics[0].difference().unwrap(), dec("-1"));
        assert!(not_loaded(&checks).is_empty());
    }

    #[test]
    fn money_compares_at_the_apis_precision_and_exactly() {
        // The API writes two decimals (JSON drops a trailing zero on one day: 7.5); the table's
        // rows carry more, whose sum rounds to the API's number.
        let table = [
            total(1, 2, &["1", "12.3449"]),
            total(2, 2, &["1", "7.5000"]),
        ];
        let answer = api(&[(1, &["1", "12.34"]), (2, &["1", "7.5"])]);
        assert!(
            compare(window(1, 2), &table, &answer)
                .iter()
                .all(DayCheck::matches)
        );
        // A cent is a difference; so is a hundredth of a cent once the API writes four decimals.
        let answer = api(&[(1, &["1", "12.33"])]);
        assert!(!compare(window(1, 1), &table, &answer)[0].matches());
        let answer = api(&[(1, &["1", "12.3450"])]);
        assert!(!compare(window(1, 1), &table, &answer)[0].matches());
    }

    #[test]
    fn a_day_missing_on_either_side_compares_with_zero() {
        let table = [total(2, 4, &["5", "1.00"])];
        let answer = api(&[(1, &["8", "2.00"]), (2, &["5", "1.00"])]);
        let checks = compare(window(1, 3), &table, &answer);
        assert_eq!(checks.len(), 3);
        assert!(!checks[0].matches() && checks[0].not_loaded());
        assert!(checks[1].matches());
        assert!(
            checks[2].matches() && !checks[2].api_has_row,
            "neither side has the day"
        );
        assert_eq!(not_loaded(&checks), vec![window(1, 1)]);
        let table = [total(2, 4, &["5", "1.00"])];
        let checks = compare(window(2, 2), &table, &api(&[]));
        assert!(!checks[0].matches(), "rows the API no longer has");
        assert!(!checks[0].not_loaded());
    }

    #[test]
    fn days_without_rows_run_together() {
        let answer = api(&[
            (1, &["1", "1"]),
            (2, &["1", "1"]),
            (4, &["1", "1"]),
            (5, &["1", "1"]),
        ]);
        let table = [total(3, 1, &["2", "1"])];
        let checks = compare(window(1, 6), &table, &answer);
        assert_eq!(not_loaded(&checks), vec![window(1, 2), window(4, 5)]);
    }
}

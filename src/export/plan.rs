//! Which days a run covers, and how they are cut into windows. Pure date arithmetic.

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;

/// A run of consecutive days, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: NaiveDate,
    /// The last day, inclusive (the Query API's exclusive `endDate` is the day after).
    pub last: NaiveDate,
}

impl Window {
    /// Number of days in the window.
    pub fn days(&self) -> u64 {
        u64::try_from((self.last - self.start).num_days() + 1).unwrap_or(0)
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.last {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}..{}", self.start, self.last)
        }
    }
}

/// Today's date in the job's time zone.
pub fn today_in(tz: Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// The range a scheduled run covers: `[min(high_water + 1, today - lookback_days), today]`.
///
/// Without history the run starts at `start_date`, or `lookback_days` ago when the job has none.
/// Returns `None` when there is nothing to do (a `start_date` in the future).
pub fn scheduled_range(
    today: NaiveDate,
    high_water: Option<NaiveDate>,
    lookback_days: u32,
    start_date: Option<NaiveDate>,
) -> Option<Window> {
    let lookback_start = today
        .checked_sub_days(Days::new(u64::from(lookback_days)))
        .unwrap_or(today);
    let start = match high_water {
        Some(hw) => hw
            .checked_add_days(Days::new(1))
            .unwrap_or(hw)
            .min(lookback_start),
        None => start_date.unwrap_or(lookback_start),
    };
    (start <= today).then_some(Window { start, last: today })
}

/// Cuts `range` into consecutive windows of at most `window_days` days, oldest first.
pub fn split(range: Window, window_days: u32) -> Vec<Window> {
    let size = u64::from(window_days.max(1));
    let mut out = Vec::new();
    let mut start = range.start;
    while start <= range.last {
        let last = start
            .checked_add_days(Days::new(size - 1))
            .unwrap_or(range.last)
            .min(range.last);
        out.push(Window { start, last });
        match last.checked_add_days(Days::new(1)) {
            Some(next) => start = next,
            None => break,
        }
    }
    out
}

/// The high-water mark after `window` committed, given the mark before it.
///
/// The mark is the last day *fully* loaded, so it never passes yesterday (today is still changing),
/// and it only moves over contiguous days: a window that starts after `mark + 1` leaves a gap, so the
/// mark stays where it is and the next scheduled run fills the gap.
pub fn advance_high_water(
    mark: Option<NaiveDate>,
    window: Window,
    today: NaiveDate,
) -> Option<NaiveDate> {
    let yesterday = today.pred_opt().unwrap_or(today);
    let reachable = window.last.min(yesterday);
    match mark {
        None if window.start <= reachable => Some(reachable),
        None => None,
        Some(m) => {
            let contiguous = window.start <= m.succ_opt().unwrap_or(m);
            if contiguous && reachable > m {
                Some(reachable)
            } else {
                Some(m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn w(a: &str, b: &str) -> Window {
        Window {
            start: d(a),
            last: d(b),
        }
    }

    #[test]
    fn scheduled_range_rereads_the_lookback() {
        // Up to date: the lookback decides.
        assert_eq!(
            scheduled_range(d("2026-03-10"), Some(d("2026-03-09")), 7, None),
            Some(w("2026-03-03", "2026-03-10"))
        );
        // Behind (the service was down): catch up from the mark.
        assert_eq!(
            scheduled_range(d("2026-03-10"), Some(d("2026-02-01")), 7, None),
            Some(w("2026-02-02", "2026-03-10"))
        );
        // No history: from start_date, or the lookback without one.
        assert_eq!(
            scheduled_range(d("2026-03-10"), None, 7, Some(d("2025-01-01"))),
            Some(w("2025-01-01", "2026-03-10"))
        );
        assert_eq!(
            scheduled_range(d("2026-03-10"), None, 7, None),
            Some(w("2026-03-03", "2026-03-10"))
        );
        assert_eq!(
            scheduled_range(d("2026-03-10"), None, 7, Some(d("2026-04-01"))),
            None
        );
        // lookback 0 still re-reads today.
        assert_eq!(
            scheduled_range(d("2026-03-10"), Some(d("2026-03-09")), 0, None),
            Some(w("2026-03-10", "2026-03-10"))
        );
    }

    #[test]
    fn split_covers_every_day_once() {
        let windows = split(w("2025-01-01", "2025-12-31"), 31);
        assert_eq!(windows.len(), 12);
        assert_eq!(windows[0], w("2025-01-01", "2025-01-31"));
        assert_eq!(windows[1], w("2025-02-01", "2025-03-03"));
        assert_eq!(windows.last().copied(), Some(w("2025-12-08", "2025-12-31")));
        let days: u64 = windows.iter().map(Window::days).sum();
        assert_eq!(days, 365);
        for pair in windows.windows(2) {
            assert_eq!(pair[0].last.succ_opt(), Some(pair[1].start));
        }
        assert_eq!(
            split(w("2025-01-01", "2025-01-01"), 31),
            vec![w("2025-01-01", "2025-01-01")]
        );
        assert_eq!(
            split(w("2024-02-28", "2024-03-01"), 1).len(),
            3,
            "leap day included"
        );
    }

    #[test]
    fn today_follows_the_job_time_zone() {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 3, 0, 0).unwrap();
        assert_eq!(today_in(Tz::UTC, now), d("2026-03-10"));
        assert_eq!(
            today_in(chrono_tz::America::Los_Angeles, now),
            d("2026-03-09")
        );
        assert_eq!(today_in(chrono_tz::Australia::Sydney, now), d("2026-03-10"));
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 14, 0, 0).unwrap();
        assert_eq!(
            today_in(chrono_tz::Pacific::Kiritimati, now),
            d("2026-03-11")
        );
    }

    #[test]
    fn dst_change_does_not_skip_or_repeat_a_day() {
        // US spring forward 2026-03-08, fall back 2026-11-01: windows are calendar days.
        let windows = split(w("2026-03-07", "2026-03-09"), 1);
        assert_eq!(windows.len(), 3);
        let windows = split(w("2026-10-31", "2026-11-02"), 1);
        assert_eq!(windows.len(), 3);
        let la = chrono_tz::America::Los_Angeles;
        // 07:59 UTC on the fall-back day is still 00:59 PDT of Nov 1; 08:00 UTC is 01:00 PDT.
        let before = Utc.with_ymd_and_hms(2026, 11, 1, 7, 59, 0).unwrap();
        assert_eq!(today_in(la, before), d("2026-11-01"));
        let earlier = Utc.with_ymd_and_hms(2026, 11, 1, 6, 59, 0).unwrap();
        assert_eq!(today_in(la, earlier), d("2026-10-31"));
    }

    #[test]
    fn high_water_moves_over_contiguous_days_only() {
        let today = d("2026-03-10");
        assert_eq!(
            advance_high_water(None, w("2026-03-01", "2026-03-05"), today),
            Some(d("2026-03-05"))
        );
        // Never past yesterday.
        assert_eq!(
            advance_high_water(None, w("2026-03-01", "2026-03-10"), today),
            Some(d("2026-03-09"))
        );
        // Contiguous with the mark.
        assert_eq!(
            advance_high_water(Some(d("2026-03-05")), w("2026-03-06", "2026-03-08"), today),
            Some(d("2026-03-08"))
        );
        // A gap: the mark stays.
        assert_eq!(
            advance_high_water(Some(d("2026-03-05")), w("2026-03-07", "2026-03-08"), today),
            Some(d("2026-03-05"))
        );
        // An old backfill never moves it back.
        assert_eq!(
            advance_high_water(Some(d("2026-03-05")), w("2025-01-01", "2025-01-31"), today),
            Some(d("2026-03-05"))
        );
        // A window of only today loads nothing "fully".
        assert_eq!(
            advance_high_water(None, w("2026-03-10", "2026-03-10"), today),
            None
        );
    }
}

//! Cron schedules: parsing a job's `schedule`, and the times it fires in the job's time zone.
//!
//! Users write the classic 5-field cron (`min hour dom mon dow`); 6 fields with seconds first are
//! accepted too. Everything is evaluated in the job's time zone with the tz database, so a daily
//! 02:30 job fires once on the spring-forward and once on the fall-back day.
//!
//! [`Ticker`] is the daemon's clock for one job: it computes each next fire time afresh from the
//! wall clock in the job's zone (never a fixed UTC offset taken at start-up, which would be an
//! hour off after the next DST change) and sleeps in short naps, so a wall clock that jumps (NTP,
//! a suspended VM) is noticed within [`MAX_NAP`].

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A validated cron expression.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// As the user wrote it.
    source: String,
    cron: Cron,
}

/// Why a schedule was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "has {0} fields; write 5 fields (`minute hour day-of-month month day-of-week`, e.g. \"15 5 * * *\") or 6 with seconds first"
    )]
    FieldCount(usize),
    #[error("is not a valid cron expression: {0}")]
    Invalid(String),
    #[error("never fires")]
    NeverFires,
}

impl Schedule {
    /// Parses a 5-field or 6-field (seconds first) cron expression.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let fields = text.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(ScheduleError::FieldCount(fields));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(text.trim())
            .map_err(|e| ScheduleError::Invalid(e.to_string()))?;
        let schedule = Schedule {
            source: text.trim().to_owned(),
            cron,
        };
        // A pattern such as "0 0 31 2 *" parses but never fires; say so now rather than never run.
        if schedule
            .next_after(&chrono::Utc::now().with_timezone(&Tz::UTC))
            .is_none()
        {
            return Err(ScheduleError::NeverFires);
        }
        Ok(schedule)
    }

    /// The expression as the user wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first fire time strictly after `after`, in the time zone of `after`.
    pub fn next_after<T: TimeZone>(&self, after: &DateTime<T>) -> Option<DateTime<T>> {
        self.cron.find_next_occurrence(after, false).ok()
    }

    /// The next `n` fire times after `after`.
    pub fn upcoming(&self, after: DateTime<Tz>, n: usize) -> Vec<DateTime<Tz>> {
        let mut out = Vec::with_capacity(n);
        let mut at = after;
        while out.len() < n {
            match self.next_after(&at) {
                Some(next) => {
                    at = next;
                    out.push(next);
                }
                None => break,
            }
        }
        out
    }
}

/// The longest a [`Ticker`] sleeps before it looks at the wall clock again.
pub const MAX_NAP: Duration = Duration::from_secs(60);

/// The fire times of one job: its schedule read in its time zone, as UTC instants.
#[derive(Debug, Clone)]
pub struct Ticker {
    schedule: Schedule,
    timezone: Tz,
    /// The last fire time handed out: the next one is always later, however the clock moves.
    last: Option<DateTime<Utc>>,
}

impl Ticker {
    /// A ticker for `schedule` read in `timezone`.
    pub fn new(schedule: Schedule, timezone: Tz) -> Ticker {
        Ticker {
            schedule,
            timezone,
            last: None,
        }
    }

    /// The first fire time strictly after `now` and after the last one handed out by
    /// [`Ticker::tick`]; `None` when the schedule never fires again.
    pub fn next_fire(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = self.last.map_or(now, |last| last.max(now));
        self.schedule
            .next_after(&after.with_timezone(&self.timezone))
            .map(|t| t.with_timezone(&Utc))
    }

    /// Sleeps until the next fire time and returns it; `None` when the schedule never fires again.
    ///
    /// Cancel-safe: dropping the future before it returns hands out nothing. Firings missed while
    /// the process was stopped or the machine suspended are not replayed one by one: the next
    /// fire time is the first one after *now*, and that run's incremental range catches up.
    pub async fn tick(&mut self) -> Option<DateTime<Utc>> {
        let next = self.next_fire(Utc::now())?;
        while let Some(nap) = nap(Utc::now(), next) {
            tokio::time::sleep(nap).await;
        }
        self.last = Some(next);
        Some(next)
    }
}

/// How long to sleep at `now` before looking at the clock again on the way to `next`: `None` once
/// `next` has come. Capped at [`MAX_NAP`] because `tokio::time::sleep` follows the monotonic
/// clock, while fire times are wall-clock times.
pub fn nap(now: DateTime<Utc>, next: DateTime<Utc>) -> Option<Duration> {
    let left = (next - now).to_std().ok().filter(|d| !d.is_zero())?;
    Some(left.min(MAX_NAP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn at(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Tz> {
        tz.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap()
    }

    #[test]
    fn five_and_six_fields_are_accepted() {
        let five = Schedule::parse("15 5,17 * * *").unwrap();
        let six = Schedule::parse("0 15 5,17 * * *").unwrap();
        let from = at(Tz::UTC, 2026, 1, 1, 0, 0);
        assert_eq!(five.upcoming(from, 3), six.upcoming(from, 3));
        assert_eq!(
            five.upcoming(from, 3),
            vec![
                at(Tz::UTC, 2026, 1, 1, 5, 15),
                at(Tz::UTC, 2026, 1, 1, 17, 15),
                at(Tz::UTC, 2026, 1, 2, 5, 15)
            ]
        );
    }

    #[test]
    fn wrong_field_counts_and_bad_fields_are_rejected() {
        assert_eq!(
            Schedule::parse("* * * *").unwrap_err(),
            ScheduleError::FieldCount(4)
        );
        assert_eq!(
            Schedule::parse("0 0 0 1 1 * 2030").unwrap_err(),
            ScheduleError::FieldCount(7)
        );
        assert!(matches!(
            Schedule::parse("61 * * * *"),
            Err(ScheduleError::Invalid(_))
        ));
        assert!(matches!(
            Schedule::parse("a b c d e"),
            Err(ScheduleError::Invalid(_))
        ));
        assert_eq!(
            Schedule::parse("0 0 31 2 *").unwrap_err(),
            ScheduleError::NeverFires
        );
    }

    #[test]
    fn spring_forward_day_fires_once_for_a_skipped_time() {
        // 2026-03-08 in New York: 02:00 jumps to 03:00, so 02:30 does not exist that day.
        let s = Schedule::parse("30 2 * * *").unwrap();
        let fires = s.upcoming(at(New_York, 2026, 3, 7, 12, 0), 2);
        assert_eq!(fires.len(), 2);
        assert_eq!(
            fires[0].date_naive(),
            chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
        );
        assert_eq!(
            fires[1].date_naive(),
            chrono::NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()
        );
    }

    #[test]
    fn fall_back_day_fires_once_for_a_repeated_time() {
        // 2026-11-01 in New York: 01:00-02:00 happens twice.
        let s = Schedule::parse("30 1 * * *").unwrap();
        let fires = s.upcoming(at(New_York, 2026, 10, 31, 12, 0), 3);
        let days: Vec<_> = fires.iter().map(|f| f.date_naive().to_string()).collect();
        assert_eq!(days, ["2026-11-01", "2026-11-02", "2026-11-03"]);
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32, sec: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, sec).single().unwrap()
    }

    /// Every fire time a ticker hands out from `from` until `until`, taking each as "now" in turn
    /// (as the daemon does after each firing).
    fn fires(ticker: &mut Ticker, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut now = from;
        while let Some(next) = ticker.next_fire(now) {
            if next > until {
                break;
            }
            ticker.last = Some(next);
            out.push(next);
            now = next;
        }
        out
    }

    #[test]
    fn a_daily_time_skipped_by_spring_forward_runs_once_at_the_first_valid_moment() {
        // 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist that day.
        let mut t = Ticker::new(Schedule::parse("30 2 * * *").unwrap(), New_York);
        let got = fires(&mut t, utc(2026, 3, 7, 12, 0, 0), utc(2026, 3, 10, 0, 0, 0));
        assert_eq!(
            got,
            [
                utc(2026, 3, 8, 7, 0, 0),  // 03:00 EDT, the first moment after the gap
                utc(2026, 3, 9, 6, 30, 0), // 02:30 EDT
            ]
        );
    }

    #[test]
    fn a_daily_time_repeated_by_fall_back_runs_once() {
        // 2026-11-01 in New York: 01:00-02:00 happens twice (EDT, then EST).
        let mut t = Ticker::new(Schedule::parse("30 1 * * *").unwrap(), New_York);
        let got = fires(
            &mut t,
            utc(2026, 10, 31, 12, 0, 0),
            utc(2026, 11, 3, 0, 0, 0),
        );
        assert_eq!(
            got,
            [
                utc(2026, 11, 1, 5, 30, 0), // 01:30 EDT; the 01:30 EST an hour later does not fire
                utc(2026, 11, 2, 6, 30, 0), // 01:30 EST
            ]
        );
    }

    #[test]
    fn an_hourly_job_fires_strictly_later_each_time_across_fall_back() {
        let mut t = Ticker::new(Schedule::parse("0 * * * *").unwrap(), New_York);
        let got = fires(&mut t, utc(2026, 11, 1, 3, 0, 0), utc(2026, 11, 1, 8, 0, 0));
        // 00:00 EDT, 01:00 EDT, (01:00 EST is the same wall time: not run twice), 02:00 EST, 03:00 EST.
        assert_eq!(
            got,
            [
                utc(2026, 11, 1, 4, 0, 0),
                utc(2026, 11, 1, 5, 0, 0),
                utc(2026, 11, 1, 7, 0, 0),
                utc(2026, 11, 1, 8, 0, 0),
            ]
        );
    }

    #[test]
    fn a_ticker_made_in_winter_follows_the_summer_offset() {
        // The bug of a UTC offset fixed at start-up: 06:00 in Berlin is 05:00 UTC in winter and
        // 04:00 UTC from 2026-03-29 (CEST). One ticker, created before the change, must follow it.
        let mut t = Ticker::new(
            Schedule::parse("0 6 * * *").unwrap(),
            chrono_tz::Europe::Berlin,
        );
        let got = fires(
            &mut t,
            utc(2026, 3, 27, 0, 0, 0),
            utc(2026, 3, 31, 12, 0, 0),
        );
        assert_eq!(
            got,
            [
                utc(2026, 3, 27, 5, 0, 0),
                utc(2026, 3, 28, 5, 0, 0),
                utc(2026, 3, 29, 4, 0, 0),
                utc(2026, 3, 30, 4, 0, 0),
                utc(2026, 3, 31, 4, 0, 0),
            ]
        );
        // And from a summer "now" directly.
        assert_eq!(
            t.next_fire(utc(2026, 7, 15, 3, 0, 0)),
            Some(utc(2026, 7, 15, 4, 0, 0))
        );
    }

    #[test]
    fn the_cron_is_read_in_the_jobs_time_zone() {
        let schedule = Schedule::parse("15 5 * * *").unwrap();
        // Kolkata is UTC+05:30 all year: 05:15 there is 23:45 UTC the day before.
        let kolkata = Ticker::new(schedule.clone(), chrono_tz::Asia::Kolkata);
        assert_eq!(
            kolkata.next_fire(utc(2026, 6, 1, 12, 0, 0)),
            Some(utc(2026, 6, 1, 23, 45, 0))
        );
        let utc_ticker = Ticker::new(schedule.clone(), Tz::UTC);
        assert_eq!(
            utc_ticker.next_fire(utc(2026, 6, 1, 12, 0, 0)),
            Some(utc(2026, 6, 2, 5, 15, 0))
        );
        // Sydney in January is UTC+11 (daylight time, southern summer).
        let sydney = Ticker::new(schedule, chrono_tz::Australia::Sydney);
        assert_eq!(
            sydney.next_fire(utc(2026, 1, 10, 0, 0, 0)),
            Some(utc(2026, 1, 10, 18, 15, 0))
        );
    }

    #[test]
    fn a_fire_time_is_never_handed_out_twice_even_if_the_clock_stands_still() {
        let mut t = Ticker::new(Schedule::parse("* * * * * *").unwrap(), Tz::UTC);
        let now = utc(2026, 6, 1, 12, 0, 0);
        let first = t.next_fire(now).unwrap();
        assert_eq!(first, utc(2026, 6, 1, 12, 0, 1));
        t.last = Some(first);
        // The wall clock went back a little (NTP): the next fire is still after the last one.
        assert_eq!(
            t.next_fire(now - chrono::Duration::seconds(5)),
            Some(utc(2026, 6, 1, 12, 0, 2))
        );
    }

    #[test]
    fn naps_end_at_the_fire_time_and_are_capped() {
        let now = utc(2026, 6, 1, 12, 0, 0);
        assert_eq!(nap(now, now), None);
        assert_eq!(nap(now, now - chrono::Duration::seconds(1)), None);
        assert_eq!(
            nap(now, now + chrono::Duration::milliseconds(1500)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(nap(now, now + chrono::Duration::hours(5)), Some(MAX_NAP));
    }

    #[tokio::test]
    async fn tick_returns_only_once_its_fire_time_has_come() {
        let mut t = Ticker::new(Schedule::parse("* * * * * *").unwrap(), Tz::UTC);
        let start = Utc::now();
        let first = t.tick().await.unwrap();
        assert!(first > start);
        assert!(Utc::now() >= first, "fired before its time");
        let second = t.tick().await.unwrap();
        assert!(second > first);
    }
}

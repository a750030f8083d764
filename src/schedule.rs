//! Cron schedules: parsing a job's `schedule`, and the times it fires in the job's time zone.
//!
//! Users write the classic 5-field cron (`min hour dom mon dow`); 6 fields with seconds first are
//! accepted too. Everything is evaluated in the job's time zone with the tz database, so a daily
//! 02:30 job fires once on the spring-forward and once on the fall-back day.

use chrono::{DateTime, TimeZone};
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
}

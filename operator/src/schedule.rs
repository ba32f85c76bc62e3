//! `spec.schedule`: when a scheduled scan's next run is due, with CronJob's semantics where
//! they fit — five-field cron (minute to weekday, with `@hourly`-style aliases), an optional
//! IANA `timeZone` (default UTC), no run for ticks before the scan existed, a tick later than
//! `startingDeadlineSeconds` skipped as missed.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// A parsed `spec.schedule` in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: TimeZone,
}

/// Why a schedule cannot be used (the scan then fails with reason `InvalidSchedule`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    /// Not a five-field cron expression.
    #[error("spec.schedule `{schedule}` is not a cron schedule (minute hour day-of-month month day-of-week): {reason}")]
    Cron { schedule: String, reason: String },
    /// Not a time zone of the IANA database.
    #[error("spec.timeZone `{0}` is not a time zone of the IANA database (e.g. Europe/London)")]
    TimeZone(String),
}

/// What a scheduled scan should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Start the run of this tick.
    Start(Timestamp),
    /// This tick (the latest) came longer ago than `startingDeadlineSeconds`: skip it.
    Missed(Timestamp),
    /// No tick since the last one handled.
    Idle,
}

impl Schedule {
    /// Parses `schedule` (five fields, as CronJob takes) in `time_zone` (UTC when absent).
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Self, ScheduleError> {
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser
            .parse(schedule)
            .map_err(|e| ScheduleError::Cron { schedule: schedule.into(), reason: e.to_string() })?;
        let zone = match time_zone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.into()))?,
        };
        Ok(Self { cron, zone })
    }

    /// The latest tick at or before `now`.
    pub fn latest(&self, now: Timestamp) -> Option<Timestamp> {
        self.cron.find_previous_occurrence(&now.to_zoned(self.zone.clone()), true).ok().map(|z| z.timestamp())
    }

    /// The first tick after `now`.
    pub fn next(&self, now: Timestamp) -> Option<Timestamp> {
        self.cron.find_next_occurrence(&now.to_zoned(self.zone.clone()), false).ok().map(|z| z.timestamp())
    }

    /// Whether a run is due at `now`, given the last tick handled (`lastScheduleTime`; the
    /// scan's creation before its first) and `startingDeadlineSeconds`. Only the latest tick
    /// counts: ticks missed while the operator was down are not run one by one.
    pub fn due(&self, last_handled: Timestamp, now: Timestamp, starting_deadline_seconds: Option<i64>) -> Due {
        match self.latest(now) {
            Some(tick) if tick > last_handled => {
                let late = now.duration_since(tick);
                match starting_deadline_seconds {
                    Some(deadline) if late > SignedDuration::from_secs(deadline) => Due::Missed(tick),
                    _ => Due::Start(tick),
                }
            }
            _ => Due::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn ticks_in_utc_and_in_a_time_zone() {
        let hourly = Schedule::parse("0 * * * *", None).expect("valid");
        assert_eq!(hourly.latest(at("2026-12-06T10:59:59Z")), Some(at("2026-12-06T10:00:00Z")));
        assert_eq!(hourly.latest(at("2026-12-06T11:00:00Z")), Some(at("2026-12-06T11:00:00Z")), "inclusive");
        assert_eq!(hourly.next(at("2026-12-06T11:00:00Z")), Some(at("2026-12-06T12:00:00Z")));

        // 02:30 every night in Los Angeles: 10:30 UTC in winter (PST), 09:30 in summer (PDT).
        let nightly = Schedule::parse("30 2 * * *", Some("America/Los_Angeles")).expect("valid");
        assert_eq!(nightly.next(at("2026-12-06T00:00:00Z")), Some(at("2026-12-06T10:30:00Z")));
        assert_eq!(nightly.next(at("2026-07-01T00:00:00Z")), Some(at("2026-07-01T09:30:00Z")));

        let aliased = Schedule::parse("@daily", None).expect("aliases as CronJob takes them");
        assert_eq!(aliased.next(at("2026-12-06T10:00:00Z")), Some(at("2026-12-07T00:00:00Z")));
    }

    #[test]
    fn bad_schedules_and_zones_are_refused_with_the_field() {
        let six = Schedule::parse("0 0 * * * *", None).expect_err("seconds are not CronJob's");
        assert!(six.to_string().starts_with("spec.schedule `0 0 * * * *` is not a cron schedule"), "{six}");
        assert!(Schedule::parse("every hour", None).is_err());
        assert_eq!(
            Schedule::parse("0 * * * *", Some("Mars/Olympus")).expect_err("no such zone"),
            ScheduleError::TimeZone("Mars/Olympus".into())
        );
    }

    #[test]
    fn due_starts_the_latest_tick_once_and_skips_a_late_one() {
        let hourly = Schedule::parse("0 * * * *", None).expect("valid");
        let created = at("2026-12-06T10:05:00Z");
        // No run for the tick before the scan existed.
        assert_eq!(hourly.due(created, at("2026-12-06T10:30:00Z"), None), Due::Idle);
        assert_eq!(hourly.due(created, at("2026-12-06T11:00:20Z"), None), Due::Start(at("2026-12-06T11:00:00Z")));
        // Handled: nothing more until the next tick.
        assert_eq!(hourly.due(at("2026-12-06T11:00:00Z"), at("2026-12-06T11:59:00Z"), None), Due::Idle);
        // Down for three hours: only the latest tick runs.
        assert_eq!(
            hourly.due(at("2026-12-06T11:00:00Z"), at("2026-12-06T14:10:00Z"), None),
            Due::Start(at("2026-12-06T14:00:00Z"))
        );
        // Past the starting deadline: missed.
        assert_eq!(
            hourly.due(at("2026-12-06T11:00:00Z"), at("2026-12-06T14:10:00Z"), Some(300)),
            Due::Missed(at("2026-12-06T14:00:00Z"))
        );
        assert_eq!(
            hourly.due(at("2026-12-06T11:00:00Z"), at("2026-12-06T14:04:00Z"), Some(300)),
            Due::Start(at("2026-12-06T14:00:00Z"))
        );
    }
}

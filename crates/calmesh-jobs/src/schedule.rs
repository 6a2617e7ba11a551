//! When work is due: pure functions of the time, a calendar's last sync and
//! its owner's preferences, and rules' cron schedules. The scheduler tick
//! turns their answers into (idempotent) enqueues.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A cron schedule in a time zone, e.g. `30 3 * * *` in `America/Chicago`
/// (every night at 03:30 local time, whatever the offset that night).
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
    text: String,
}

/// A schedule that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron pattern is not valid.
    #[error("cron pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// The zone is not an IANA zone name.
    #[error("unknown time zone {0:?} (expected an IANA name such as America/Chicago)")]
    Zone(String),
}

impl CronSchedule {
    /// Parses a five-field cron pattern and an IANA zone name.
    pub fn parse(pattern: &str, zone: &str) -> Result<Self, ScheduleError> {
        let cron = Cron::from_str(pattern).map_err(|e| ScheduleError::Pattern {
            pattern: pattern.to_owned(),
            message: e.to_string(),
        })?;
        let zone = Tz::from_str(zone).map_err(|_| ScheduleError::Zone(zone.to_owned()))?;
        Ok(Self {
            cron,
            zone,
            text: pattern.to_owned(),
        })
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.text
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Fire times in `(after, until]`, at most `limit` of them (a scheduler
    /// that was down for a week fires a daily rule once, not seven times:
    /// callers pass 1 and take the latest, or more to catch up).
    pub fn fires_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < limit {
            match self.next_after(cursor) {
                Some(t) if t <= until => {
                    out.push(t);
                    cursor = t;
                }
                _ => break,
            }
        }
        out
    }

    /// The latest fire time in `(after, until]`, if any: what a tick enqueues.
    pub fn latest_fire(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut latest = None;
        let mut cursor = after;
        // Bounded: a minute-level pattern over a long outage is cut short at
        // a day's worth of steps and jumps to the last window.
        let floor = until - Duration::days(1);
        if cursor < floor {
            cursor = floor;
        }
        while let Some(t) = self.next_after(cursor).filter(|t| *t <= until) {
            latest = Some(t);
            cursor = t;
        }
        latest
    }
}

/// How one calendar is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// The owner syncs automatically.
    pub auto_sync: bool,
    /// Minutes between pulls.
    pub interval: Duration,
    /// A live push channel watches the calendar.
    pub has_live_channel: bool,
    /// How often a calendar with a live channel is still polled (a safety
    /// net for lost notifications).
    pub push_safety_interval: Duration,
}

/// When a calendar's next pull is due, or None when it is never polled
/// (auto sync off). Never synced: due now.
pub fn calendar_due(
    last_sync_at: Option<DateTime<Utc>>,
    policy: &PollPolicy,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !policy.auto_sync {
        return None;
    }
    let Some(last) = last_sync_at else {
        return Some(now);
    };
    let interval = if policy.has_live_channel {
        policy.push_safety_interval.max(policy.interval)
    } else {
        policy.interval
    };
    Some(last + interval)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn nightly_0330_in_chicago_follows_the_offset() {
        let s = CronSchedule::parse("30 3 * * *", "America/Chicago").unwrap();
        // CST (UTC-6) in winter, CDT (UTC-5) in summer.
        assert_eq!(
            s.next_after(at("2026-01-10T12:00:00Z")),
            Some(at("2026-01-11T09:30:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-07-10T12:00:00Z")),
            Some(at("2026-07-11T08:30:00Z"))
        );
        // Strictly after: the fire time itself gives the next day's.
        assert_eq!(
            s.next_after(at("2026-01-11T09:30:00Z")),
            Some(at("2026-01-12T09:30:00Z"))
        );
    }

    #[test]
    fn a_long_outage_fires_once() {
        let s = CronSchedule::parse("30 3 * * *", "UTC").unwrap();
        let fires = s.fires_between(at("2026-01-01T00:00:00Z"), at("2026-01-08T00:00:00Z"), 100);
        assert_eq!(fires.len(), 7);
        assert_eq!(
            s.latest_fire(at("2026-01-01T00:00:00Z"), at("2026-01-08T00:00:00Z")),
            Some(at("2026-01-07T03:30:00Z"))
        );
        assert_eq!(
            s.latest_fire(at("2026-01-07T03:30:00Z"), at("2026-01-08T00:00:00Z")),
            None
        );
        let every_minute = CronSchedule::parse("* * * * *", "UTC").unwrap();
        assert_eq!(
            every_minute.latest_fire(at("2020-01-01T00:00:00Z"), at("2026-01-08T00:00:00Z")),
            Some(at("2026-01-08T00:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let e = CronSchedule::parse("61 * * * *", "UTC").unwrap_err();
        assert!(e.to_string().contains("61 * * * *"), "{e}");
        let e = CronSchedule::parse("0 3 * * *", "Mars/Olympus").unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
    }

    #[test]
    fn due_times() {
        let policy = PollPolicy {
            auto_sync: true,
            interval: Duration::minutes(15),
            has_live_channel: false,
            push_safety_interval: Duration::hours(6),
        };
        let now = at("2026-01-01T12:00:00Z");
        assert_eq!(
            calendar_due(None, &policy, now),
            Some(now),
            "never synced: now"
        );
        assert_eq!(
            calendar_due(Some(now), &policy, now),
            Some(at("2026-01-01T12:15:00Z"))
        );
        let pushed = PollPolicy {
            has_live_channel: true,
            ..policy
        };
        assert_eq!(
            calendar_due(Some(now), &pushed, now),
            Some(at("2026-01-01T18:00:00Z"))
        );
        let off = PollPolicy {
            auto_sync: false,
            ..policy
        };
        assert_eq!(calendar_due(None, &off, now), None);
    }
}

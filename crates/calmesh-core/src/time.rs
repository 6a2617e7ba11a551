//! Event times: dates, floating, UTC and zoned local times, and how local
//! times become instants (RFC 5545 §3.3.5).

use crate::zone::Zone;
use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    SecondsFormat, TimeZone, Utc,
};
use chrono_tz::Tz;
use std::ops::RangeInclusive;

/// The years an event time may fall in: what iCalendar and RFC 3339 write
/// (four digits). Readers refuse times outside it, and checked arithmetic
/// ([`EventTime::checked_add_exact`], [`crate::event::checked_add_duration`])
/// returns `None` for results outside it.
pub const YEARS: RangeInclusive<i32> = 0..=9999;

/// Whether a wall-clock time lies in [`YEARS`].
pub fn local_in_range(local: NaiveDateTime) -> bool {
    YEARS.contains(&local.year())
}

/// A start, end, recurrence id, `RDATE` or `EXDATE` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventTime {
    /// An all-day date (`VALUE=DATE`).
    Date(NaiveDate),
    /// A local time with no zone: the same wall-clock time wherever the reader is.
    Floating(NaiveDateTime),
    /// A UTC time (`...Z`).
    Utc(DateTime<Utc>),
    /// A local time in a zone (`TZID=...`).
    Zoned {
        /// Wall-clock time.
        local: NaiveDateTime,
        /// The zone it is read in.
        zone: Zone,
    },
}

impl EventTime {
    /// Whether this is an all-day date.
    pub fn is_date(&self) -> bool {
        matches!(self, EventTime::Date(_))
    }

    /// The wall-clock time (midnight for a date; UTC wall time for UTC).
    pub fn local(&self) -> NaiveDateTime {
        match self {
            EventTime::Date(date) => date.and_time(NaiveTime::MIN),
            EventTime::Floating(local) => *local,
            EventTime::Utc(instant) => instant.naive_utc(),
            EventTime::Zoned { local, .. } => *local,
        }
    }

    /// The zone the time is read in, if any.
    pub fn zone(&self) -> Option<&Zone> {
        match self {
            EventTime::Zoned { zone, .. } => Some(zone),
            _ => None,
        }
    }

    /// The instant this time denotes. Dates and floating times have none of
    /// their own: they are read in `floating_zone` (the viewer's zone).
    pub fn to_utc(&self, floating_zone: Tz) -> DateTime<Utc> {
        match self {
            EventTime::Date(_) | EventTime::Floating(_) => {
                resolve_local(floating_zone, self.local())
            }
            EventTime::Utc(instant) => *instant,
            EventTime::Zoned { local, zone } => resolve_local(zone.tz(), *local),
        }
    }

    /// The same time with a zoned wall-clock time that falls into a DST gap
    /// moved forward by the gap, so that the stored local time exists.
    pub fn normalized(self) -> EventTime {
        match self {
            EventTime::Zoned { local, zone } => {
                let instant = resolve_local(zone.tz(), local);
                let local = instant.with_timezone(&zone.tz()).naive_local();
                EventTime::Zoned { local, zone }
            }
            other => other,
        }
    }

    /// A time of the same kind (date, floating, UTC, same zone) at another
    /// wall-clock time.
    pub fn with_local(&self, local: NaiveDateTime) -> EventTime {
        match self {
            EventTime::Date(_) => EventTime::Date(local.date()),
            EventTime::Floating(_) => EventTime::Floating(local),
            EventTime::Utc(_) => EventTime::Utc(local.and_utc()),
            EventTime::Zoned { zone, .. } => EventTime::Zoned {
                local,
                zone: zone.clone(),
            }
            .normalized(),
        }
    }

    /// Whether the wall-clock time lies in [`YEARS`], so that it can be
    /// written as iCalendar and RFC 3339.
    pub fn in_range(&self) -> bool {
        local_in_range(self.local())
    }

    /// Adds an exact span of time. Dates move by whole days of the span. A
    /// result outside [`YEARS`] leaves the time unchanged: use
    /// [`EventTime::checked_add_exact`] to tell.
    pub fn add_exact(&self, span: Duration) -> EventTime {
        self.checked_add_exact(span).unwrap_or_else(|| self.clone())
    }

    /// Adds an exact span of time (dates by whole days of it); `None` when
    /// the result falls outside [`YEARS`].
    pub fn checked_add_exact(&self, span: Duration) -> Option<EventTime> {
        let time = match self {
            EventTime::Date(date) => {
                EventTime::Date(date.checked_add_signed(Duration::try_days(span.num_days())?)?)
            }
            EventTime::Floating(local) => EventTime::Floating(local.checked_add_signed(span)?),
            EventTime::Utc(instant) => EventTime::Utc(instant.checked_add_signed(span)?),
            EventTime::Zoned { local, zone } => {
                let instant = resolve_local(zone.tz(), *local).checked_add_signed(span)?;
                EventTime::Zoned {
                    local: instant.with_timezone(&zone.tz()).naive_local(),
                    zone: zone.clone(),
                }
            }
        };
        time.in_range().then_some(time)
    }

    /// The display form used by the CLI and the API: `YYYY-MM-DD` for dates,
    /// `YYYY-MM-DDTHH:MM:SS` for floating times, RFC 3339 with `Z` for UTC
    /// and with the zone's offset at that instant for zoned times.
    pub fn to_rfc3339(&self) -> String {
        match self {
            EventTime::Date(date) => date.format("%Y-%m-%d").to_string(),
            EventTime::Floating(local) => local.format("%Y-%m-%dT%H:%M:%S").to_string(),
            EventTime::Utc(instant) => instant.to_rfc3339_opts(SecondsFormat::Secs, true),
            EventTime::Zoned { local, zone } => resolve_local(zone.tz(), *local)
                .with_timezone(&zone.tz())
                .fixed_offset()
                .to_rfc3339_opts(SecondsFormat::Secs, false),
        }
    }

    /// Like [`EventTime::to_rfc3339`], but a zoned time is printed as
    /// `instant` in its zone: the right offset even in a repeated hour.
    pub fn to_rfc3339_at(&self, instant: DateTime<Utc>) -> String {
        match self {
            EventTime::Zoned { zone, .. } => instant
                .with_timezone(&zone.tz())
                .fixed_offset()
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            other => other.to_rfc3339(),
        }
    }
}

/// Turns a wall-clock time in `tz` into an instant, as RFC 5545 §3.3.5 says:
/// a time that occurs twice (the hour repeated when clocks go back) is the
/// first of the two; a time that does not exist (skipped when clocks go
/// forward) is read with the offset in force before the gap, which moves it
/// forward by the length of the gap.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(instant) => instant.with_timezone(&Utc),
        LocalResult::Ambiguous(first, second) => first.min(second).with_timezone(&Utc),
        LocalResult::None => {
            // Transitions are months apart, so a day earlier the offset in
            // force is the one from before the gap.
            // At the very ends of chrono's range (never a time calmesh
            // reads) the time is used as it is.
            let before = local.checked_sub_signed(Duration::days(1)).unwrap_or(local);
            let offset = tz.offset_from_utc_datetime(&before).fix();
            local
                .checked_sub_signed(Duration::seconds(i64::from(offset.local_minus_utc())))
                .unwrap_or(local)
                .and_utc()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    #[test]
    fn repeated_local_time_resolves_to_first_instant() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 2025-11-02 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
        let got = resolve_local(ny, local("2025-11-02T01:30:00"));
        assert_eq!(got.to_rfc3339(), "2025-11-02T05:30:00+00:00");
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let got = resolve_local(berlin, local("2025-10-26T02:30:00"));
        assert_eq!(got.to_rfc3339(), "2025-10-26T00:30:00+00:00");
    }

    #[test]
    fn missing_local_time_moves_forward_by_the_gap() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 2025-03-09 02:30 does not exist in New York: it is 03:30 EDT.
        let got = resolve_local(ny, local("2025-03-09T02:30:00"));
        assert_eq!(got.to_rfc3339(), "2025-03-09T07:30:00+00:00");
        let time = EventTime::Zoned {
            local: local("2025-03-09T02:30:00"),
            zone: Zone::iana(ny),
        };
        assert_eq!(time.to_rfc3339(), "2025-03-09T03:30:00-04:00");
        // Lord Howe Island moves its clocks by 30 minutes.
        let lhi: Tz = "Australia/Lord_Howe".parse().unwrap();
        let got = resolve_local(lhi, local("2025-10-05T02:15:00"));
        assert_eq!(
            got.with_timezone(&lhi).naive_local(),
            local("2025-10-05T02:45:00")
        );
    }
}

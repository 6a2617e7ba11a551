//! How long each instance lasts, and where it ends.

use crate::event::{Event, checked_add_duration};
use crate::ical::value::IcalDuration;
use crate::time::EventTime;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

/// How long each instance of an event lasts.
pub(super) enum Span {
    /// `DTEND`: the exact time between start and end (whole days for dates).
    Exact(Duration),
    /// `DURATION`: nominal days and exact seconds.
    Nominal(IcalDuration),
}

impl Span {
    pub(super) fn of(event: &Event, fz: Tz) -> Span {
        match (&event.end, &event.duration) {
            (Some(end), _) => {
                if event.start.is_date() {
                    Span::Exact(Duration::days(
                        (end.local().date() - event.start.local().date()).num_days(),
                    ))
                } else {
                    Span::Exact(end.to_utc(fz) - event.start.to_utc(fz))
                }
            }
            (None, Some(duration)) => Span::Nominal(*duration),
            (None, None) if event.start.is_date() => Span::Exact(Duration::days(1)),
            (None, None) => Span::Exact(Duration::zero()),
        }
    }

    /// The end of an instance starting at `start`; `None` when it falls
    /// outside [`YEARS`](crate::time::YEARS).
    pub(super) fn ending_from(&self, start: &EventTime, fz: Tz) -> Option<Ending> {
        Some(match (self, start) {
            (Span::Exact(span), _) => Ending::Exact(*span),
            (Span::Nominal(duration), EventTime::Date(_)) => {
                Ending::Time(checked_add_duration(start, duration)?)
            }
            (Span::Nominal(duration), _) => {
                // Nominal days move the wall clock; the exact part moves the
                // instant (which may land in the second of two equal hours).
                let local = start
                    .local()
                    .checked_add_signed(duration.checked_nominal()?)?;
                if !crate::time::local_in_range(local) {
                    return None;
                }
                let base = start.with_local(local);
                let exact = duration.checked_exact()?;
                Ending::At(
                    base.checked_add_exact(exact)?,
                    base.to_utc(fz).checked_add_signed(exact)?,
                )
            }
        })
    }
}

/// How an instance ends: at a given time, or an exact span after its start.
pub(super) enum Ending {
    Time(EventTime),
    At(EventTime, DateTime<Utc>),
    Exact(Duration),
}

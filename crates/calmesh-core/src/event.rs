//! The provider-neutral event model.
//!
//! An [`Item`] is everything stored under one UID: a single event, or a
//! recurring series' master with its overrides (as CalDAV stores it). Fields
//! calmesh reasons about are typed; every other property, parameter and
//! sub-component is kept as written, so a round trip changes nothing calmesh
//! did not mean to change.

use crate::ical::value::{IcalDuration, RecurrenceRule};
use crate::ical::{Component, Param, Property};
use crate::ids::ItemId;
use crate::time::EventTime;
use chrono::{DateTime, Utc};

/// `STATUS` of an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    /// `TENTATIVE`
    Tentative,
    /// `CONFIRMED`
    Confirmed,
    /// `CANCELLED`
    Cancelled,
    /// Anything else, as written.
    Other(String),
}

/// `TRANSP`: whether the event blocks time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transparency {
    /// `OPAQUE` (busy), the default.
    Opaque,
    /// `TRANSPARENT` (free).
    Transparent,
}

/// `CLASS`: visibility of the event to others.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Class {
    /// `PUBLIC`, the default.
    Public,
    /// `PRIVATE`
    Private,
    /// `CONFIDENTIAL`
    Confidential,
    /// Anything else, as written.
    Other(String),
}

/// `PARTSTAT` of an attendee.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PartStat {
    /// `NEEDS-ACTION`, the default.
    NeedsAction,
    /// `ACCEPTED`
    Accepted,
    /// `DECLINED`
    Declined,
    /// `TENTATIVE`
    Tentative,
    /// `DELEGATED`
    Delegated,
    /// Anything else, as written.
    Other(String),
}

/// A calendar user: organizer or attendee.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Person {
    /// The calendar address as written (usually `mailto:...`).
    pub address: String,
    /// `CN`, the display name.
    pub name: Option<String>,
    /// `PARTSTAT`; `None` for the organizer or when not written.
    pub partstat: Option<PartStat>,
    /// Every other parameter (`ROLE`, `RSVP`, `CUTYPE`, ...), as written.
    pub params: Vec<Param>,
}

impl Person {
    /// The e-mail address: `mailto:` removed, lower-cased.
    pub fn email(&self) -> String {
        let address = self.address.trim();
        let address = address
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("mailto:"))
            .map_or(address, |_| &address[7..]);
        address.to_lowercase()
    }
}

/// One value of `RDATE`: a time, or a period with its own end.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RDate {
    /// `RDATE:...` (date or date-time).
    Time(EventTime),
    /// `RDATE;VALUE=PERIOD:start/end`
    Period {
        /// Start of the extra instance.
        start: EventTime,
        /// Its end.
        end: EventTime,
    },
    /// `RDATE;VALUE=PERIOD:start/duration`
    PeriodDuration {
        /// Start of the extra instance.
        start: EventTime,
        /// Its duration.
        duration: IcalDuration,
    },
}

impl RDate {
    /// The start of the instance this value adds.
    pub fn start(&self) -> &EventTime {
        match self {
            RDate::Time(start)
            | RDate::Period { start, .. }
            | RDate::PeriodDuration { start, .. } => start,
        }
    }
}

/// `RECURRENCE-ID` of an override.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecurrenceId {
    /// The original start of the instance this override replaces.
    pub time: EventTime,
    /// `RANGE=THISANDFUTURE`: the override also applies to later instances.
    pub this_and_future: bool,
}

/// One `VEVENT`: a single event, a series master, or an override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `UID`
    pub uid: ItemId,
    /// `RECURRENCE-ID`, present on overrides only.
    pub recurrence_id: Option<RecurrenceId>,
    /// `SUMMARY`
    pub summary: Option<String>,
    /// `DESCRIPTION`
    pub description: Option<String>,
    /// `LOCATION`
    pub location: Option<String>,
    /// `DTSTART`
    pub start: EventTime,
    /// `DTEND`
    pub end: Option<EventTime>,
    /// `DURATION` (used when `DTEND` is absent)
    pub duration: Option<IcalDuration>,
    /// `STATUS`
    pub status: Option<Status>,
    /// `TRANSP`
    pub transparency: Option<Transparency>,
    /// `CLASS`
    pub class: Option<Class>,
    /// `CATEGORIES`, every value of every line, in order.
    pub categories: Vec<String>,
    /// `ORGANIZER`
    pub organizer: Option<Person>,
    /// `ATTENDEE`s, in order.
    pub attendees: Vec<Person>,
    /// `RRULE`
    pub rrule: Option<RecurrenceRule>,
    /// `RDATE` values, in order.
    pub rdates: Vec<RDate>,
    /// `EXDATE` values, in order.
    pub exdates: Vec<EventTime>,
    /// `SEQUENCE`
    pub sequence: Option<i64>,
    /// `LAST-MODIFIED`
    pub last_modified: Option<DateTime<Utc>>,
    /// `CREATED`
    pub created: Option<DateTime<Utc>>,
    /// `DTSTAMP`
    pub dtstamp: Option<DateTime<Utc>>,
    /// `VALARM` sub-components, as written.
    pub alarms: Vec<Component>,
    /// Other sub-components, as written.
    pub other_components: Vec<Component>,
    /// Every property not interpreted above (`X-`, `URL`, `GEO`, ...), in order.
    pub other_properties: Vec<Property>,
    /// Parameters of interpreted properties that the model does not
    /// interpret (`SUMMARY;LANGUAGE=de`), keyed by property name.
    pub other_params: Vec<(String, Vec<Param>)>,
}

impl Event {
    /// A minimal event: a UID and a start.
    pub fn new(uid: ItemId, start: EventTime) -> Self {
        Self {
            uid,
            recurrence_id: None,
            summary: None,
            description: None,
            location: None,
            start,
            end: None,
            duration: None,
            status: None,
            transparency: None,
            class: None,
            categories: Vec::new(),
            organizer: None,
            attendees: Vec::new(),
            rrule: None,
            rdates: Vec::new(),
            exdates: Vec::new(),
            sequence: None,
            last_modified: None,
            created: None,
            dtstamp: None,
            alarms: Vec::new(),
            other_components: Vec::new(),
            other_properties: Vec::new(),
            other_params: Vec::new(),
        }
    }

    /// Whether this event is all-day (its start is a date).
    pub fn is_all_day(&self) -> bool {
        self.start.is_date()
    }

    /// Whether this event defines a recurrence (an `RRULE` or `RDATE`s).
    pub fn is_recurring(&self) -> bool {
        self.rrule.is_some() || !self.rdates.is_empty()
    }

    /// The end the event means: `DTEND`; else `DTSTART` + `DURATION`; else
    /// the start for timed events and the next day for all-day ones
    /// (RFC 5545 §3.6.1).
    ///
    /// An end past [`YEARS`](crate::time::YEARS) (a huge `DURATION`) is the
    /// start; the readers refuse such events, and
    /// [`Event::checked_effective_end`] tells.
    pub fn effective_end(&self) -> EventTime {
        self.checked_effective_end()
            .unwrap_or_else(|| self.start.clone())
    }

    /// Like [`Event::effective_end`]; `None` when the end falls outside
    /// [`YEARS`](crate::time::YEARS).
    pub fn checked_effective_end(&self) -> Option<EventTime> {
        if let Some(end) = &self.end {
            return end.in_range().then(|| end.clone());
        }
        match (&self.duration, &self.start) {
            (Some(duration), start) => checked_add_duration(start, duration),
            (None, EventTime::Date(_)) => self.start.checked_add_exact(chrono::Duration::days(1)),
            (None, start) => start.in_range().then(|| start.clone()),
        }
    }

    /// The first value of an uninterpreted property.
    pub fn other_property(&self, name: &str) -> Option<&Property> {
        self.other_properties.iter().find(|prop| prop.name == name)
    }
}

/// Adds an iCalendar duration: nominal days on the wall clock, then exact
/// seconds. A result outside [`YEARS`](crate::time::YEARS) is the start:
/// use [`checked_add_duration`] to tell.
pub fn add_duration(start: &EventTime, duration: &IcalDuration) -> EventTime {
    checked_add_duration(start, duration).unwrap_or_else(|| start.clone())
}

/// Adds an iCalendar duration; `None` when the result falls outside
/// [`YEARS`](crate::time::YEARS).
pub fn checked_add_duration(start: &EventTime, duration: &IcalDuration) -> Option<EventTime> {
    let days = duration.checked_nominal()?;
    let shifted = match start {
        EventTime::Date(date) => {
            let time = EventTime::Date(date.checked_add_signed(days)?);
            return time.in_range().then_some(time);
        }
        other => {
            let local = other.local().checked_add_signed(days)?;
            if !crate::time::local_in_range(local) {
                return None;
            }
            other.with_local(local)
        }
    };
    shifted.checked_add_exact(duration.checked_exact()?)
}

/// Everything under one UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The UID.
    pub uid: ItemId,
    /// The single event or series master. `None` when a calendar holds only
    /// overrides of a series it does not hold (an invitation to one instance).
    pub master: Option<Event>,
    /// Overrides (`RECURRENCE-ID`), in the order read.
    pub overrides: Vec<Event>,
}

impl Item {
    /// The master if present, else the first override.
    pub fn primary(&self) -> Option<&Event> {
        self.master.as_ref().or(self.overrides.first())
    }

    /// All events of the item: master first, then overrides.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.master.iter().chain(self.overrides.iter())
    }
}

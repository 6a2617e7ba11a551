//! Recurrence expansion: the instances of an item inside a window.
//!
//! calcard computes the `RRULE` arithmetic (every `FREQ` and `BY*` part,
//! `COUNT`, `UNTIL`) on a floating copy of the series. Everything around it
//! is done here, because calcard's own expansion gets it wrong for sync:
//! it matches overrides by `SEQUENCE` as well as `RECURRENCE-ID`, resolves a
//! repeated local time to the later instant, and has no window. Here:
//!
//! - `DTSTART` is always the first instance; `RDATE`s (dates, date-times,
//!   periods) add instances, `EXDATE`s remove them;
//! - overrides are matched by `RECURRENCE-ID` alone (the UID is the item);
//!   `RANGE=THISANDFUTURE` moves and reshapes that and every later instance;
//! - local times are turned into instants by [`resolve_local`](crate::time::resolve_local): the first of
//!   a repeated time, a skipped time moved forward by the gap;
//! - only instances whose start lies in the window are returned, at most
//!   [`ExpandOptions::max_instances`] of them.

use crate::event::{Event, Item, RDate, add_duration};
use crate::ical::value::{Frequency, RecurrenceRule, Until};
use crate::time::{EventTime, resolve_local};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// A half-open span of time `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
}

/// A window that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// A bound is not `YYYY-MM-DD` or RFC 3339.
    #[error("{0:?} is not a date (YYYY-MM-DD) or an RFC 3339 date-time")]
    BadBound(String),
    /// `to` is not after `from`.
    #[error("the window is empty: {from} is not before {to}")]
    Empty {
        /// The start given.
        from: String,
        /// The end given.
        to: String,
    },
}

impl Window {
    /// A window between two instants.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, WindowError> {
        if from >= to {
            return Err(WindowError::Empty {
                from: from.to_rfc3339(),
                to: to.to_rfc3339(),
            });
        }
        Ok(Self { from, to })
    }

    /// A window from `YYYY-MM-DD` (midnight UTC) or RFC 3339 bounds.
    pub fn dates(from: &str, to: &str) -> Result<Self, WindowError> {
        Self::new(parse_bound(from)?, parse_bound(to)?)
    }
}

fn parse_bound(text: &str) -> Result<DateTime<Utc>, WindowError> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| WindowError::BadBound(text.to_string()))
}

/// Settings of an expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpandOptions {
    /// At most this many instances are returned per item; the rest are cut
    /// and [`Expansion::truncated`] is set.
    pub max_instances: usize,
    /// The zone floating times and dates are read in when they are compared
    /// with the window (the viewer's zone).
    pub floating_zone: Tz,
}

impl Default for ExpandOptions {
    fn default() -> Self {
        Self {
            max_instances: 10_000,
            floating_zone: Tz::UTC,
        }
    }
}

/// How many rule occurrences are computed at most before the window end;
/// bounds the work on rules such as `FREQ=MINUTELY` started years ago.
const MAX_OCCURRENCES: usize = 1_000_000;

/// One occurrence of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance<'a> {
    /// The original start of this occurrence; `None` for a non-recurring event.
    pub recurrence_id: Option<EventTime>,
    /// Start (moved, when an override moved it).
    pub start: EventTime,
    /// End.
    pub end: EventTime,
    /// The instant of the start (floating times read in the floating zone).
    pub start_at: DateTime<Utc>,
    /// The instant of the end. In the hour repeated when clocks go back, a
    /// zoned wall-clock time names two instants; this says which one.
    pub end_at: DateTime<Utc>,
    /// Where its details come from: the master, an override, or the
    /// `THISANDFUTURE` override in force.
    pub event: &'a Event,
}

/// The result of expanding one item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion<'a> {
    /// Instances whose start lies in the window, sorted by start.
    pub instances: Vec<Instance<'a>>,
    /// Whether instances were cut by the instance cap.
    pub truncated: bool,
}

/// A series that cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot expand the recurrence of {uid}: {reason}")]
pub struct ExpandError {
    /// The item's UID.
    pub uid: String,
    /// Why.
    pub reason: String,
}

impl Item {
    /// The instances of this item whose start lies in `window`.
    pub fn expand(
        &self,
        window: &Window,
        options: &ExpandOptions,
    ) -> Result<Expansion<'_>, ExpandError> {
        let fz = options.floating_zone;
        let mut expander = Expander::new(self, window, options);
        match &self.master {
            Some(master) if master.is_recurring() => expander.series(master)?,
            Some(master) => {
                let key = expander.key(&master.start, master);
                match expander.take_override(&key) {
                    Some(over) => expander.push(
                        Some(master.start.clone()),
                        over.start.clone(),
                        Span::of(over, fz).ending_from(&over.start, fz),
                        over,
                    ),
                    None => expander.push(
                        None,
                        master.start.clone(),
                        Span::of(master, fz).ending_from(&master.start, fz),
                        master,
                    ),
                }
            }
            None => {}
        }
        expander.orphans();
        let mut expansion = expander.done;
        expansion
            .instances
            .sort_by_key(|instance| instance.start_at);
        Ok(expansion)
    }
}

/// Where a time falls in a series: its normalized wall-clock time, or only a
/// date (an `EXDATE;VALUE=DATE` on a timed series).
type Key = NaiveDateTime;

struct Expander<'a, 'w> {
    item: &'a Item,
    window: &'w Window,
    options: &'w ExpandOptions,
    /// Overrides by the series-local key of their `RECURRENCE-ID`.
    overrides: HashMap<Key, &'a Event>,
    /// In file order, for stable output of unmatched overrides.
    override_order: Vec<Key>,
    done: Expansion<'a>,
}

impl<'a, 'w> Expander<'a, 'w> {
    fn new(item: &'a Item, window: &'w Window, options: &'w ExpandOptions) -> Self {
        let mut expander = Self {
            item,
            window,
            options,
            overrides: HashMap::new(),
            override_order: Vec::new(),
            done: Expansion::default(),
        };
        let reference = item.master.as_ref();
        for over in &item.overrides {
            if let Some(rid) = &over.recurrence_id {
                let key = expander.key(&rid.time, reference.unwrap_or(over));
                if expander.overrides.insert(key, over).is_none() {
                    expander.override_order.push(key);
                }
            }
        }
        expander
    }

    /// The wall-clock time of `time` in the frame of `series`' start:
    /// zoned series in their zone (normalized out of DST gaps), UTC series
    /// in UTC, floating and all-day series as written.
    fn key(&self, time: &EventTime, series: &Event) -> Key {
        let fz = self.options.floating_zone;
        match (&series.start, time) {
            (EventTime::Date(_), other) => other.local().date().and_time(NaiveTime::MIN),
            (_, EventTime::Floating(local)) => *local,
            (_, EventTime::Date(date)) => date.and_time(NaiveTime::MIN),
            (EventTime::Zoned { zone, .. }, other) => {
                other.to_utc(fz).with_timezone(&zone.tz()).naive_local()
            }
            (EventTime::Utc(_), other) => other.to_utc(fz).naive_utc(),
            (EventTime::Floating(_), other) => other.to_utc(fz).with_timezone(&fz).naive_local(),
        }
    }

    fn take_override(&mut self, key: &Key) -> Option<&'a Event> {
        self.overrides.remove(key)
    }

    fn push(
        &mut self,
        recurrence_id: Option<EventTime>,
        start: EventTime,
        end: Ending,
        event: &'a Event,
    ) {
        let fz = self.options.floating_zone;
        let start_at = start.to_utc(fz);
        if start_at < self.window.from || start_at >= self.window.to {
            return;
        }
        let (end, end_at) = match end {
            Ending::Time(end) => {
                let end_at = end.to_utc(fz);
                // An end written in UTC or another zone (an RDATE period) is
                // shown in the zone of the start.
                let end = match (&start, end) {
                    (
                        EventTime::Zoned { zone, .. },
                        EventTime::Utc(_) | EventTime::Zoned { .. },
                    ) => EventTime::Zoned {
                        local: end_at.with_timezone(&zone.tz()).naive_local(),
                        zone: zone.clone(),
                    },
                    (_, end) => end,
                };
                (end, end_at)
            }
            Ending::At(end, end_at) => (end, end_at),
            Ending::Exact(span) => (start.add_exact(span), start_at + span),
        };
        if self.done.instances.len() >= self.options.max_instances {
            self.done.truncated = true;
            return;
        }
        self.done.instances.push(Instance {
            recurrence_id,
            start,
            end,
            start_at,
            end_at,
            event,
        });
    }

    /// Overrides whose `RECURRENCE-ID` matched no instance still describe an
    /// occurrence the organizer sent: they are listed as they are.
    fn orphans(&mut self) {
        for key in std::mem::take(&mut self.override_order) {
            if let Some(over) = self.overrides.remove(&key) {
                let rid = over.recurrence_id.as_ref().map(|rid| rid.time.clone());
                let fz = self.options.floating_zone;
                self.push(
                    rid,
                    over.start.clone(),
                    Span::of(over, fz).ending_from(&over.start, fz),
                    over,
                );
            }
        }
    }

    fn series(&mut self, master: &'a Event) -> Result<(), ExpandError> {
        let fail = |reason: String| ExpandError {
            uid: self.item.uid.to_string(),
            reason,
        };
        let fz = self.options.floating_zone;
        let all_day = master.start.is_date();
        let first = self.key(&master.start, master);
        // THISANDFUTURE overrides, by the key of their RECURRENCE-ID.
        let mut futures: BTreeMap<Key, &'a Event> = BTreeMap::new();
        let mut earliest_shift = Duration::zero();
        for over in &self.item.overrides {
            if let Some(rid) = over
                .recurrence_id
                .as_ref()
                .filter(|rid| rid.this_and_future)
            {
                let rid_key = self.key(&rid.time, master);
                let shift = self.key(&over.start, master) - rid_key;
                earliest_shift = earliest_shift.min(shift);
                futures.insert(rid_key, over);
            }
        }
        // Occurrences after the window's end cannot start in it, unless a
        // THISANDFUTURE override moves them earlier.
        let window_end = series_wall_clock(&master.start, self.window.to, fz);
        let horizon = window_end + Duration::days(2) - earliest_shift;
        // Occurrences long before the window cannot start in it, unless a
        // THISANDFUTURE override moves them later; an override of a single
        // early occurrence is listed through `orphans` from its own start.
        let latest_shift = futures
            .iter()
            .map(|(rid_key, over)| self.key(&over.start, master) - *rid_key)
            .max()
            .unwrap_or_else(Duration::zero)
            .max(Duration::zero());
        let window_start = series_wall_clock(&master.start, self.window.from, fz);
        let early = window_start - Duration::days(2) - latest_shift;

        // Candidate occurrences: DTSTART, the rule, RDATEs. A period RDATE
        // carries its own end.
        let mut candidates: BTreeMap<Key, Option<EventTime>> = BTreeMap::new();
        candidates.insert(first, None);
        let mut truncated = false;
        if let Some(rule) = &master.rrule
            && first <= horizon
        {
            let (occurrences, cut) =
                rule_occurrences(rule, first, all_day, &master.start, early, horizon)
                    .map_err(fail)?;
            truncated = cut;
            for local in occurrences {
                // Occurrences are wall-clock times in the series' own frame
                // already; only a time in a DST gap needs moving.
                let key = match &master.start {
                    EventTime::Zoned { zone, .. } => normalize_local(zone.tz(), local),
                    _ => local,
                };
                candidates.entry(key).or_insert(None);
            }
        }
        for rdate in &master.rdates {
            let key = self.key(rdate.start(), master);
            let end = match rdate {
                RDate::Time(_) => None,
                RDate::Period { end, .. } => Some(end.clone()),
                RDate::PeriodDuration { start, duration } => Some(add_duration(start, duration)),
            };
            candidates.insert(key, end);
        }
        let mut excluded_dates: HashSet<NaiveDate> = HashSet::new();
        let mut excluded: HashSet<Key> = HashSet::new();
        for exdate in &master.exdates {
            match exdate {
                EventTime::Date(date) if !all_day => {
                    excluded_dates.insert(*date);
                }
                other => {
                    excluded.insert(self.key(other, master));
                }
            }
        }

        let span = Span::of(master, fz);
        for (key, period_end) in candidates.range(early..) {
            let (key, period_end) = (*key, period_end.clone());
            if excluded.contains(&key) || excluded_dates.contains(&key.date()) {
                continue;
            }
            let rid = master.start.with_local(key);
            if let Some(over) = self.take_override(&key) {
                self.push(
                    Some(rid),
                    over.start.clone(),
                    Span::of(over, fz).ending_from(&over.start, fz),
                    over,
                );
                continue;
            }
            let future = futures
                .range(..key)
                .next_back()
                .map(|(rid_key, over)| (*rid_key, *over));
            match (future, period_end) {
                (Some((rid_key, over)), _) => {
                    let shift = self.key(&over.start, master) - rid_key;
                    let start = master.start.with_local(key + shift);
                    self.push(
                        Some(rid),
                        start.clone(),
                        Span::of(over, fz).ending_from(&start, fz),
                        over,
                    );
                }
                (None, Some(end)) => self.push(Some(rid.clone()), rid, Ending::Time(end), master),
                (None, None) => {
                    let end = span.ending_from(&rid, fz);
                    self.push(Some(rid.clone()), rid, end, master);
                }
            }
        }
        self.done.truncated |= truncated;
        Ok(())
    }
}

/// `instant` as a wall-clock time in the frame of a series starting at
/// `start`: its zone, UTC, or the floating zone.
fn series_wall_clock(start: &EventTime, instant: DateTime<Utc>, fz: Tz) -> NaiveDateTime {
    match start {
        EventTime::Zoned { zone, .. } => instant.with_timezone(&zone.tz()).naive_local(),
        EventTime::Utc(_) => instant.naive_utc(),
        _ => instant.with_timezone(&fz).naive_local(),
    }
}

/// A wall-clock time that exists in `tz`: a time in a DST gap moves forward
/// by the gap.
fn normalize_local(tz: Tz, local: NaiveDateTime) -> NaiveDateTime {
    use chrono::{LocalResult, TimeZone};
    match tz.from_local_datetime(&local) {
        LocalResult::None => resolve_local(tz, local).with_timezone(&tz).naive_local(),
        _ => local,
    }
}

/// How long each instance of an event lasts.
enum Span {
    /// `DTEND`: the exact time between start and end (whole days for dates).
    Exact(Duration),
    /// `DURATION`: nominal days and exact seconds.
    Nominal(crate::ical::value::IcalDuration),
}

impl Span {
    fn of(event: &Event, fz: Tz) -> Span {
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

    /// The end of an instance starting at `start`.
    fn ending_from(&self, start: &EventTime, fz: Tz) -> Ending {
        match (self, start) {
            (Span::Exact(span), _) => Ending::Exact(*span),
            (Span::Nominal(duration), EventTime::Date(_)) => {
                Ending::Time(add_duration(start, duration))
            }
            (Span::Nominal(duration), _) => {
                // Nominal days move the wall clock; the exact part moves the
                // instant (which may land in the second of two equal hours).
                let days = Duration::days(duration.nominal_days());
                let base = start.with_local(start.local() + days);
                let exact = duration.exact();
                Ending::At(base.add_exact(exact), base.to_utc(fz) + exact)
            }
        }
    }
}

/// How an instance ends: at a given time, or an exact span after its start.
enum Ending {
    Time(EventTime),
    At(EventTime, DateTime<Utc>),
    Exact(Duration),
}

/// The wall-clock occurrences of `rule` starting at `first`, up to
/// `horizon`, computed by calcard on a floating copy of the series so that
/// no zone arithmetic happens inside it. Occurrences before `early` may be
/// left out. Returns whether the occurrence cap cut the result.
fn rule_occurrences(
    rule: &RecurrenceRule,
    first: NaiveDateTime,
    all_day: bool,
    start: &EventTime,
    early: NaiveDateTime,
    horizon: NaiveDateTime,
) -> Result<(Vec<NaiveDateTime>, bool), String> {
    let mut floating = rule.clone();
    // A DAILY or WEEKLY rule without COUNT yields the same occurrences from
    // a start moved forward by whole intervals (days and weeks have no
    // lengths to vary in a floating frame), so the copy starts just before
    // `early` instead of iterating years of history. The series' own first
    // occurrence is added by the caller either way.
    let period_days = match rule.freq {
        Frequency::Daily => 1,
        Frequency::Weekly => 7,
        _ => 0,
    } * i64::from(rule.interval.unwrap_or(1));
    let first = if period_days > 0 && rule.count.is_none() && early > first {
        let periods = (early - first).num_days() / period_days;
        first + Duration::days(periods * period_days)
    } else {
        first
    };
    // UNTIL in the series' own wall-clock frame; inclusive.
    let until = rule.until.map(|until| match until {
        Until::Utc(utc) => match start {
            EventTime::Zoned { zone, .. } => utc.and_utc().with_timezone(&zone.tz()).naive_local(),
            _ => utc,
        },
        Until::Floating(local) => local,
        Until::Date(date) => {
            if all_day {
                date.and_time(NaiveTime::MIN)
            } else {
                // A date UNTIL on a timed series includes that whole day.
                date.and_hms_opt(23, 59, 59)
                    .unwrap_or(date.and_time(NaiveTime::MIN))
            }
        }
    });
    let until = match (until, rule.count) {
        (Some(until), _) => Some(until.min(horizon)),
        (None, None) => Some(horizon),
        (None, Some(_)) => None,
    };
    if until.is_some_and(|until| until < first) {
        // The rule ended before the (possibly moved) start.
        return Ok((Vec::new(), false));
    }
    floating.until = until.map(Until::Floating);
    if floating.until.is_some() {
        floating.count = None;
    }
    let mut text = String::with_capacity(160);
    let _ = write!(
        text,
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:{}\r\nRRULE:{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        first.format("%Y%m%dT%H%M%S"),
        floating
    );
    let calendar = calcard::icalendar::ICalendar::parse(&text)
        .map_err(|_| format!("RRULE {floating} could not be read"))?;
    let expanded = calendar.expand_dates(calcard::common::timezone::Tz::Floating, MAX_OCCURRENCES);
    if let Some(error) = expanded.errors.first() {
        return Err(format!("RRULE {}: {}", rule, error.error));
    }
    let cut = expanded.events.len() >= MAX_OCCURRENCES;
    let mut occurrences: Vec<NaiveDateTime> = expanded
        .events
        .into_iter()
        .map(|event| event.start.naive_local())
        .filter(|local| *local <= horizon)
        .collect();
    // COUNT with a horizon: the rule itself stops; drop what lies beyond.
    if let Some(count) = rule.count.filter(|_| rule.until.is_none()) {
        occurrences.truncate(usize::try_from(count).unwrap_or(usize::MAX));
    }
    Ok((occurrences, cut))
}

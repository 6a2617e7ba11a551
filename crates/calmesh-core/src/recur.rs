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
//!   [`ExpandOptions::max_instances`] of them;
//! - the work is bounded: a rule is skipped ahead to the window where its
//!   form allows, and at most a fixed number of candidate occurrences are
//!   examined per series ([`Cut::Work`]); no more than the cap of instances
//!   is kept;
//! - an instance that would start or end past year 9999 makes the item an
//!   [`ExpandError`]: it cannot be written as RFC 3339.

mod rule;
mod span;

use crate::event::{Event, Item, RDate, checked_add_duration};
use crate::time::{EventTime, YEARS, local_in_range, resolve_local};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use span::{Ending, Span};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

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

/// Why an expansion stopped before the end of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cut {
    /// More than `max` instances start in the window.
    InstanceCap {
        /// [`ExpandOptions::max_instances`].
        max: usize,
    },
    /// The rule needs more work than calmesh spends on one series: this
    /// many candidate occurrences (or empty periods) were examined before
    /// the window's end was reached.
    Work {
        /// Candidates examined.
        examined: usize,
    },
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cut::InstanceCap { max } => write!(f, "more than {max} instances; the rest were cut"),
            Cut::Work { examined } => write!(
                f,
                "expansion cut: {examined} candidate occurrences examined before the window's end; \
                 the rest were cut"
            ),
        }
    }
}

/// The result of expanding one item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion<'a> {
    /// Instances whose start lies in the window, sorted by start.
    pub instances: Vec<Instance<'a>>,
    /// Whether instances were cut, by the instance cap or by the work
    /// bound; [`Expansion::cut`] says which.
    pub truncated: bool,
    /// Why instances were cut (the work bound wins when both apply);
    /// `Some` exactly when `truncated` is set.
    pub cut: Option<Cut>,
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
        let mut expander = Expander::new(self, window, options);
        match &self.master {
            Some(master) if master.is_recurring() => expander.series(master)?,
            Some(master) => {
                let key = expander.key(&master.start, master);
                match expander.take_override(&key) {
                    Some(over) => expander.push_event(Some(master.start.clone()), over)?,
                    None => expander.push_event(None, master)?,
                }
            }
            None => {}
        }
        expander.orphans()?;
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

/// The last wall-clock time an instance may have.
fn last_local() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(*YEARS.end(), 12, 31)
        .and_then(|date| date.and_hms_opt(23, 59, 59))
        .unwrap_or(NaiveDateTime::MAX)
}

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

    fn fail(&self, reason: String) -> ExpandError {
        ExpandError {
            uid: self.item.uid.to_string(),
            reason,
        }
    }

    fn out_of_range(&self, what: &str) -> ExpandError {
        self.fail(format!(
            "an instance would {what} after year {}; it cannot be written",
            YEARS.end()
        ))
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

    /// Pushes `event` as an instance at its own start and with its own span.
    fn push_event(
        &mut self,
        recurrence_id: Option<EventTime>,
        event: &'a Event,
    ) -> Result<(), ExpandError> {
        let fz = self.options.floating_zone;
        let end = Span::of(event, fz)
            .ending_from(&event.start, fz)
            .ok_or_else(|| self.out_of_range("end"))?;
        self.push(recurrence_id, event.start.clone(), end, event)
    }

    fn push(
        &mut self,
        recurrence_id: Option<EventTime>,
        start: EventTime,
        end: Ending,
        event: &'a Event,
    ) -> Result<(), ExpandError> {
        let fz = self.options.floating_zone;
        let start_at = start.to_utc(fz);
        if start_at < self.window.from || start_at >= self.window.to {
            return Ok(());
        }
        if !start.in_range() || !local_in_range(start_at.naive_utc()) {
            return Err(self.out_of_range("start"));
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
            Ending::Exact(span) => match (
                start.checked_add_exact(span),
                start_at.checked_add_signed(span),
            ) {
                (Some(end), Some(end_at)) => (end, end_at),
                _ => return Err(self.out_of_range("end")),
            },
        };
        if !end.in_range() || !YEARS.contains(&end_at.year()) {
            return Err(self.out_of_range("end"));
        }
        if self.done.instances.len() >= self.options.max_instances {
            self.done.truncated = true;
            self.done.cut.get_or_insert(Cut::InstanceCap {
                max: self.options.max_instances,
            });
            return Ok(());
        }
        self.done.instances.push(Instance {
            recurrence_id,
            start,
            end,
            start_at,
            end_at,
            event,
        });
        Ok(())
    }

    /// Overrides whose `RECURRENCE-ID` matched no instance still describe an
    /// occurrence the organizer sent: they are listed as they are.
    fn orphans(&mut self) -> Result<(), ExpandError> {
        for key in std::mem::take(&mut self.override_order) {
            if let Some(over) = self.overrides.remove(&key) {
                let rid = over.recurrence_id.as_ref().map(|rid| rid.time.clone());
                self.push_event(rid, over)?;
            }
        }
        Ok(())
    }

    fn series(&mut self, master: &'a Event) -> Result<(), ExpandError> {
        let fz = self.options.floating_zone;
        let all_day = master.start.is_date();
        let first = self.key(&master.start, master);
        // THISANDFUTURE overrides, by the key of their RECURRENCE-ID.
        let mut futures: BTreeMap<Key, &'a Event> = BTreeMap::new();
        let mut earliest_shift = Duration::zero();
        let mut latest_shift = Duration::zero();
        for over in &self.item.overrides {
            if let Some(rid) = over
                .recurrence_id
                .as_ref()
                .filter(|rid| rid.this_and_future)
            {
                let rid_key = self.key(&rid.time, master);
                let shift = self.key(&over.start, master) - rid_key;
                earliest_shift = earliest_shift.min(shift);
                latest_shift = latest_shift.max(shift);
                futures.insert(rid_key, over);
            }
        }
        // Occurrences after the window's end cannot start in it, unless a
        // THISANDFUTURE override moves them earlier; none is past year 9999.
        let window_end = series_wall_clock(&master.start, self.window.to, fz);
        let horizon = window_end
            .checked_add_signed(Duration::days(2))
            .and_then(|end| end.checked_sub_signed(earliest_shift))
            .map_or(last_local(), |end| end.min(last_local()));
        // Occurrences long before the window cannot start in it, unless a
        // THISANDFUTURE override moves them later; an override of a single
        // early occurrence is listed through `orphans` from its own start.
        let window_start = series_wall_clock(&master.start, self.window.from, fz);
        let early = window_start
            .checked_sub_signed(Duration::days(2))
            .and_then(|start| start.checked_sub_signed(latest_shift))
            .unwrap_or(NaiveDateTime::MIN);

        // Candidate occurrences besides the rule's: DTSTART and RDATEs. A
        // period RDATE carries its own end.
        let mut extras: BTreeMap<Key, Option<EventTime>> = BTreeMap::new();
        extras.insert(first, None);
        for rdate in &master.rdates {
            let key = self.key(rdate.start(), master);
            let end = match rdate {
                RDate::Time(_) => None,
                RDate::Period { end, .. } => Some(end.clone()),
                RDate::PeriodDuration { start, duration } => Some(
                    checked_add_duration(start, duration)
                        .ok_or_else(|| self.out_of_range("end"))?,
                ),
            };
            extras.insert(key, end);
        }
        // Occurrences are wall-clock times in the series' own frame
        // already; only a time in a DST gap needs moving.
        let zone = master.start.zone().map(|zone| zone.tz());
        let normalize = move |local| zone.map_or(local, |tz| normalize_local(tz, local));
        let mut rule = match &master.rrule {
            Some(rule) if first <= horizon => Some(rule::Keys::new(
                rule::occurrences(rule, first, all_day, &master.start, early, horizon)
                    .map_err(|reason| self.fail(reason))?,
                normalize,
            )),
            _ => None,
        };
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
        let mut extras = extras.range(early..).peekable();
        let mut next_rule = rule.as_mut().and_then(Iterator::next);
        loop {
            // Merge the rule's occurrences with the extras, in key order; an
            // RDATE's own end wins over the rule's span.
            let (key, period_end) = match (next_rule, extras.peek()) {
                (Some(from_rule), Some((extra, _))) if from_rule < **extra => {
                    next_rule = rule.as_mut().and_then(Iterator::next);
                    (from_rule, None)
                }
                (from_rule, Some(_)) => {
                    let Some((extra, end)) = extras.next() else {
                        break;
                    };
                    if from_rule == Some(*extra) {
                        next_rule = rule.as_mut().and_then(Iterator::next);
                    }
                    (*extra, end.clone())
                }
                (Some(from_rule), None) => {
                    next_rule = rule.as_mut().and_then(Iterator::next);
                    (from_rule, None)
                }
                (None, None) => break,
            };
            if key < early || excluded.contains(&key) || excluded_dates.contains(&key.date()) {
                continue;
            }
            let rid = master.start.with_local(key);
            if let Some(over) = self.take_override(&key) {
                self.push_event(Some(rid), over)?;
            } else {
                let future = futures
                    .range(..key)
                    .next_back()
                    .map(|(rid_key, over)| (*rid_key, *over));
                match (future, period_end) {
                    (Some((rid_key, over)), _) => {
                        let shift = self.key(&over.start, master) - rid_key;
                        let local = key
                            .checked_add_signed(shift)
                            .filter(|local| local_in_range(*local))
                            .ok_or_else(|| self.out_of_range("start"))?;
                        let start = master.start.with_local(local);
                        let end = Span::of(over, fz)
                            .ending_from(&start, fz)
                            .ok_or_else(|| self.out_of_range("end"))?;
                        self.push(Some(rid), start, end, over)?;
                    }
                    (None, Some(end)) => {
                        self.push(Some(rid.clone()), rid, Ending::Time(end), master)?
                    }
                    (None, None) => {
                        let end = span
                            .ending_from(&rid, fz)
                            .ok_or_else(|| self.out_of_range("end"))?;
                        self.push(Some(rid.clone()), rid, end, master)?;
                    }
                }
            }
            if self.done.truncated {
                // The cap is reached: later occurrences cannot be listed.
                break;
            }
        }
        if let Some(rule) = rule.as_ref().map(rule::Keys::occurrences)
            && rule.cut()
        {
            self.done.truncated = true;
            self.done.cut = Some(Cut::Work {
                examined: rule.work(),
            });
        }
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

//! The wall-clock occurrences of an `RRULE`, produced lazily and with
//! bounded work.
//!
//! Three ways, cheapest first:
//!
//! - **Step:** a rule with no `BY*` part and a fixed period (`SECONDLY` to
//!   `WEEKLY`) is `DTSTART + k × period`; the first `k` at or after the
//!   window is computed, `COUNT` included, and occurrences are made one at a
//!   time.
//! - **Chunks:** another rule with a fixed period and no `COUNT` yields the
//!   same occurrences from a start moved forward by whole periods (a
//!   floating frame has no days of other lengths), so calcard is run on one
//!   chunk of periods at a time, from just before the window.
//! - **Batch:** any other rule (`MONTHLY`, `YEARLY`, or with `COUNT`) is
//!   expanded by calcard from `DTSTART`, at most [`MAX_BATCH`] occurrences.
//!
//! calcard builds every occurrence of one period before it yields the first,
//! so a rule whose period can hold more than [`MAX_PER_PERIOD`] occurrences
//! (every second of a year) is refused before calcard sees it. The work of
//! one series is bounded by [`MAX_WORK`] occurrences or periods examined;
//! past that the rest is cut and [`Occurrences::cut`] says so.

use crate::ical::value::{Frequency, RecurrenceRule, Until};
use crate::time::EventTime;
use chrono::{Duration, NaiveDateTime, NaiveTime};
use std::fmt::Write as _;

/// Most occurrences one period of a rule may hold for calcard to expand it.
pub(super) const MAX_PER_PERIOD: u64 = 100_000;
/// Most occurrences one calcard run may return.
pub(super) const MAX_BATCH: usize = 250_000;
/// Most occurrences (or empty periods, for chunks) examined for one series.
pub(super) const MAX_WORK: usize = 2_000_000;
/// Occurrences a chunk is sized for.
const CHUNK_TARGET: u64 = 20_000;

/// The occurrences of a rule in `[early, horizon]`, ascending. Some before
/// `early` may be yielded too.
pub(super) struct Occurrences {
    kind: Kind,
    /// Work spent so far (occurrences yielded or computed, periods scanned).
    work: usize,
    cut: bool,
}

enum Kind {
    Step {
        next: NaiveDateTime,
        step: Duration,
        /// Index of `next` in the series (0 is `DTSTART`).
        index: u64,
        count: Option<u64>,
        /// Inclusive end: the rule's `UNTIL` or the horizon.
        last: NaiveDateTime,
    },
    Chunks {
        text: ChunkText,
        /// Start of the next chunk.
        start: NaiveDateTime,
        /// Length of a chunk (whole periods).
        span: Duration,
        periods: usize,
        last: NaiveDateTime,
        buffer: std::vec::IntoIter<NaiveDateTime>,
    },
    Batch(std::vec::IntoIter<NaiveDateTime>),
}

/// The rule of a chunk, to be printed with its own `DTSTART` and `UNTIL`.
struct ChunkText {
    rule: Box<RecurrenceRule>,
}

impl Occurrences {
    /// Whether the work bound cut the occurrences short of the horizon.
    pub(super) fn cut(&self) -> bool {
        self.cut
    }

    /// Work spent so far.
    pub(super) fn work(&self) -> usize {
        self.work
    }

    fn empty() -> Self {
        Self {
            kind: Kind::Batch(Vec::new().into_iter()),
            work: 0,
            cut: false,
        }
    }
}

impl Iterator for Occurrences {
    type Item = NaiveDateTime;

    fn next(&mut self) -> Option<NaiveDateTime> {
        if self.cut {
            return None;
        }
        loop {
            if self.work >= MAX_WORK {
                self.cut = true;
                return None;
            }
            match &mut self.kind {
                Kind::Step {
                    next,
                    step,
                    index,
                    count,
                    last,
                } => {
                    if *next > *last || count.is_some_and(|count| *index >= count) {
                        return None;
                    }
                    let current = *next;
                    self.work += 1;
                    *index += 1;
                    match current.checked_add_signed(*step) {
                        Some(later) => *next = later,
                        // Past chrono's range: nothing follows.
                        None => *count = Some(*index),
                    }
                    return Some(current);
                }
                Kind::Batch(items) => {
                    let item = items.next()?;
                    self.work += 1;
                    return Some(item);
                }
                Kind::Chunks {
                    text,
                    start,
                    span,
                    periods,
                    last,
                    buffer,
                } => {
                    if let Some(item) = buffer.next() {
                        self.work += 1;
                        return Some(item);
                    }
                    if *start > *last {
                        return None;
                    }
                    let chunk_last = start
                        .checked_add_signed(*span - Duration::seconds(1))
                        .map_or(*last, |end| end.min(*last));
                    let (items, full) = match run_calcard(&text.rule, *start, chunk_last, None) {
                        Ok(result) => result,
                        Err(_) => return None,
                    };
                    // Empty periods cost calcard work too.
                    self.work += *periods;
                    if full {
                        self.cut = true;
                    }
                    *buffer = items.into_iter();
                    match start.checked_add_signed(*span) {
                        Some(next) => *start = next,
                        None => *last = *start - Duration::seconds(1),
                    }
                }
            }
        }
    }
}

/// The unit period of a fixed-period frequency.
fn unit(freq: Frequency) -> Option<Duration> {
    Some(match freq {
        Frequency::Secondly => Duration::seconds(1),
        Frequency::Minutely => Duration::minutes(1),
        Frequency::Hourly => Duration::hours(1),
        Frequency::Daily => Duration::days(1),
        Frequency::Weekly => Duration::weeks(1),
        Frequency::Monthly | Frequency::Yearly => return None,
    })
}

fn has_by_parts(rule: &RecurrenceRule) -> bool {
    !(rule.by_second.is_empty()
        && rule.by_minute.is_empty()
        && rule.by_hour.is_empty()
        && rule.by_day.is_empty()
        && rule.by_month_day.is_empty()
        && rule.by_year_day.is_empty()
        && rule.by_week_no.is_empty()
        && rule.by_month.is_empty()
        && rule.by_set_pos.is_empty())
}

/// The most occurrences one period of `rule` can hold: the days of a period
/// times the times of a day that the `BY*` parts expand to.
pub(super) fn per_period(rule: &RecurrenceRule) -> u64 {
    let n = |values: usize| u64::try_from(values.max(1)).unwrap_or(u64::MAX);
    let (seconds, minutes, hours) = (
        n(rule.by_second.len()),
        n(rule.by_minute.len()),
        n(rule.by_hour.len()),
    );
    let (days, times) = match rule.freq {
        Frequency::Secondly => (1, 1),
        Frequency::Minutely => (1, seconds),
        Frequency::Hourly => (1, seconds * minutes),
        Frequency::Daily => (1, seconds * minutes * hours),
        Frequency::Weekly => (7, seconds * minutes * hours),
        Frequency::Monthly => (31, seconds * minutes * hours),
        Frequency::Yearly => (366, seconds * minutes * hours),
    };
    days * times
}

/// The occurrences of `rule` for a series whose first wall-clock time is
/// `first`, up to `horizon`; those before `early` may be left out.
pub(super) fn occurrences(
    rule: &RecurrenceRule,
    first: NaiveDateTime,
    all_day: bool,
    start: &EventTime,
    early: NaiveDateTime,
    horizon: NaiveDateTime,
) -> Result<Occurrences, String> {
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
    let last = until.map_or(horizon, |until| until.min(horizon));
    if last < first {
        return Ok(Occurrences::empty());
    }
    let count = rule.count.map(u64::from);
    let period = unit(rule.freq)
        .and_then(|unit| unit.checked_mul(i32::try_from(rule.interval.unwrap_or(1)).ok()?));
    // Whole periods from `first` to just before `early`.
    let skip = |period: Duration| -> i64 {
        let (gap, length) = ((early - first).num_seconds(), period.num_seconds());
        if gap > 0 && length > 0 {
            gap / length
        } else {
            0
        }
    };
    if let Some(step) = period
        && !has_by_parts(rule)
    {
        let periods = skip(step);
        let index = u64::try_from(periods).unwrap_or(0);
        let next = i32::try_from(periods)
            .ok()
            .and_then(|periods| step.checked_mul(periods))
            .and_then(|offset| first.checked_add_signed(offset));
        let Some(next) = next else {
            return Ok(Occurrences::empty());
        };
        return Ok(Occurrences {
            kind: Kind::Step {
                next,
                step,
                index,
                count,
                last,
            },
            work: 0,
            cut: false,
        });
    }
    let per_period = per_period(rule);
    if per_period > MAX_PER_PERIOD {
        return Err(format!(
            "expansion cut: RRULE {rule} can yield {per_period} occurrences in one {} period \
             (at most {MAX_PER_PERIOD} are examined)",
            rule.freq.as_str()
        ));
    }
    if let Some(period) = period
        && count.is_none()
    {
        let periods = skip(period);
        let chunk = i32::try_from((CHUNK_TARGET / per_period).max(1)).unwrap_or(1);
        let start = i32::try_from(periods)
            .ok()
            .and_then(|periods| period.checked_mul(periods))
            .and_then(|offset| first.checked_add_signed(offset));
        let (Some(start), Some(span)) = (start, period.checked_mul(chunk)) else {
            return Ok(Occurrences::empty());
        };
        // Validate the rule once, so that an error is an error, not a cut.
        run_calcard(rule, first, first, None)?;
        let mut chunk_rule = rule.clone();
        chunk_rule.count = None;
        return Ok(Occurrences {
            kind: Kind::Chunks {
                text: ChunkText {
                    rule: Box::new(chunk_rule),
                },
                start,
                span,
                periods: usize::try_from(chunk).unwrap_or(1),
                last,
                buffer: Vec::new().into_iter(),
            },
            work: 0,
            cut: false,
        });
    }
    // COUNT counts from DTSTART; with an UNTIL as well, UNTIL wins.
    let count = count.filter(|_| until.is_none());
    let (items, full) = match shift_months(rule, first, early).filter(|_| count.is_none()) {
        Some((shifted, start)) if start <= last => {
            // Validate the rule as written, so that an error is an error.
            run_calcard(rule, first, first, None)?;
            run_calcard(&shifted, start, last, None)?
        }
        _ => run_calcard(rule, first, last, count)?,
    };
    Ok(Occurrences {
        kind: Kind::Batch(items.into_iter()),
        work: 0,
        cut: full,
    })
}

/// A `MONTHLY` or `YEARLY` rule moved forward by whole periods to just
/// before `early`: the days `DTSTART` stands for (RFC 5545 §3.3.10) are
/// made explicit, and the copy starts on the first of a month, one period
/// earlier than needed so that nothing before its start time is lost.
/// `None` when there is nothing to skip or the rule's form does not allow
/// it.
fn shift_months(
    rule: &RecurrenceRule,
    first: NaiveDateTime,
    early: NaiveDateTime,
) -> Option<(RecurrenceRule, NaiveDateTime)> {
    use chrono::Datelike;
    let step = i64::from(rule.interval.unwrap_or(1))
        * match rule.freq {
            Frequency::Monthly => 1,
            Frequency::Yearly => 12,
            _ => return None,
        };
    if !rule.other.is_empty() {
        return None;
    }
    let month_index = |at: NaiveDateTime| i64::from(at.year()) * 12 + i64::from(at.month0());
    let periods = (month_index(early) - month_index(first)) / step - 1;
    if periods < 1 {
        return None;
    }
    let target = month_index(first) + periods * step;
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(target.div_euclid(12)).ok()?,
        u32::try_from(target.rem_euclid(12)).ok()? + 1,
        1,
    )?;
    let mut shifted = rule.clone();
    if rule.by_month_day.is_empty()
        && rule.by_day.is_empty()
        && rule.by_year_day.is_empty()
        && rule.by_week_no.is_empty()
    {
        shifted.by_month_day = vec![i8::try_from(first.day()).ok()?];
        if rule.freq == Frequency::Yearly && rule.by_month.is_empty() {
            shifted.by_month = vec![u8::try_from(first.month()).ok()?];
        }
    }
    Some((shifted, date.and_time(first.time())))
}

/// Runs calcard on a floating copy of `rule` from `first` to `until`
/// (inclusive), stopping after `count` occurrences if given. Returns the
/// occurrences and whether [`MAX_BATCH`] cut them.
fn run_calcard(
    rule: &RecurrenceRule,
    first: NaiveDateTime,
    until: NaiveDateTime,
    count: Option<u64>,
) -> Result<(Vec<NaiveDateTime>, bool), String> {
    let mut floating = rule.clone();
    floating.until = Some(Until::Floating(until));
    floating.count = count.map(|count| u32::try_from(count).unwrap_or(u32::MAX));
    let mut text = String::with_capacity(160);
    let _ = write!(
        text,
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:{}\r\nRRULE:{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        first.format("%Y%m%dT%H%M%S"),
        floating
    );
    let calendar = calcard::icalendar::ICalendar::parse(&text)
        .map_err(|_| format!("RRULE {floating} could not be read"))?;
    let limit = count.map_or(MAX_BATCH, |count| {
        usize::try_from(count).unwrap_or(MAX_BATCH).min(MAX_BATCH)
    });
    let expanded = calendar.expand_dates(calcard::common::timezone::Tz::Floating, limit);
    if let Some(error) = expanded.errors.first() {
        return Err(format!("RRULE {}: {}", rule, error.error));
    }
    let full = expanded.events.len() >= MAX_BATCH;
    let items = expanded
        .events
        .into_iter()
        .map(|event| event.start.naive_local())
        .filter(|local| *local <= until)
        .collect();
    Ok((items, full))
}

/// The keys of a rule's occurrences in a series' frame, ascending and
/// without repeats: occurrences of a zoned series that fall into a DST gap
/// move forward by the gap (`normalize`), which may put them after, or on,
/// later occurrences. Every key is at or after its occurrence, so a key is
/// final once an occurrence at or after it has been seen.
pub(super) struct Keys<F> {
    occurrences: Occurrences,
    normalize: F,
    pending: std::collections::BTreeSet<NaiveDateTime>,
    seen: Option<NaiveDateTime>,
    exhausted: bool,
}

impl<F: Fn(NaiveDateTime) -> NaiveDateTime> Keys<F> {
    pub(super) fn new(occurrences: Occurrences, normalize: F) -> Self {
        Self {
            occurrences,
            normalize,
            pending: std::collections::BTreeSet::new(),
            seen: None,
            exhausted: false,
        }
    }

    /// The occurrences underneath.
    pub(super) fn occurrences(&self) -> &Occurrences {
        &self.occurrences
    }
}

impl<F: Fn(NaiveDateTime) -> NaiveDateTime> Iterator for Keys<F> {
    type Item = NaiveDateTime;

    fn next(&mut self) -> Option<NaiveDateTime> {
        loop {
            if let Some(&key) = self.pending.first()
                && (self.exhausted || self.seen.is_some_and(|seen| seen >= key))
            {
                self.pending.remove(&key);
                return Some(key);
            }
            if self.exhausted {
                return None;
            }
            match self.occurrences.next() {
                Some(local) => {
                    self.seen = Some(local);
                    self.pending.insert((self.normalize)(local));
                }
                None => self.exhausted = true,
            }
        }
    }
}

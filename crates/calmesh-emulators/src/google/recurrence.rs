//! Recurring series: Google's `recurrence` lines (`RRULE`, `EXRULE`,
//! `RDATE`, `EXDATE`) read into calmesh-core items and expanded with
//! [`Item::expand`], plus the instance-id convention
//! `<masterId>_<YYYYMMDDTHHMMSSZ>` (`_<YYYYMMDD>` for all-day series).
//!
//! Exceptions are not handed to the core as overrides: they are stored
//! events of their own, and the listing code replaces an instance by its
//! exception through the instance id.

use calmesh_core::event::{Event, Item, RDate};
use calmesh_core::ical::value::{RecurrenceRule, parse_date, parse_date_time, parse_duration};
use calmesh_core::ids::ItemId;
use calmesh_core::recur::{ExpandOptions, Window};
use calmesh_core::time::EventTime;
use calmesh_core::zone::{Zone, resolve_zone_name};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

/// The earliest instant any expansion looks at; keeps date arithmetic in
/// the core far away from chrono's limits.
pub(crate) fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The latest instant any expansion looks at.
pub(crate) fn latest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A parsed recurrence: the union of its rules and dates, minus its
/// exclusions.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// One item per `RRULE` (the first also carries the `RDATE`s); every
    /// item carries the `EXDATE`s.
    rules: Vec<Item>,
    /// One item per `EXRULE`.
    exclusions: Vec<Item>,
    /// The instant of `DTSTART` (the first instance).
    first_start: DateTime<Utc>,
    /// Earliest start of any instance (an `RDATE` may come before `DTSTART`).
    earliest_start: DateTime<Utc>,
    /// Latest end of any instance, `None` when the series has no end.
    latest_end: Option<DateTime<Utc>>,
    /// Length of the first instance, used to widen windows.
    span: Duration,
}

/// One occurrence of a series.
#[derive(Debug, Clone)]
pub(crate) struct Occurrence {
    /// The original start, which names the instance.
    pub original: EventTime,
    /// Start (the same as `original`: exceptions are handled by the caller).
    pub start: EventTime,
    /// End.
    pub end: EventTime,
    /// The instant of the start.
    pub start_at: DateTime<Utc>,
    /// The instant of the end.
    pub end_at: DateTime<Utc>,
}

/// What identifies an instance in an instance id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstanceKey {
    /// `_<YYYYMMDD>` of an all-day series.
    Date(NaiveDate),
    /// `_<YYYYMMDDTHHMMSSZ>` of a timed series.
    At(DateTime<Utc>),
}

impl InstanceKey {
    /// The key of an original start.
    pub fn of(original: &EventTime) -> Self {
        match original {
            EventTime::Date(date) => InstanceKey::Date(*date),
            other => InstanceKey::At(other.to_utc(Tz::UTC)),
        }
    }

    /// The id suffix (without the underscore).
    pub fn suffix(&self) -> String {
        match self {
            InstanceKey::Date(date) => date.format("%Y%m%d").to_string(),
            InstanceKey::At(at) => at.format("%Y%m%dT%H%M%SZ").to_string(),
        }
    }
}

/// The id of the instance of `master_id` that originally starts at `original`.
pub(crate) fn instance_id(master_id: &str, original: &EventTime) -> String {
    format!("{master_id}_{}", InstanceKey::of(original).suffix())
}

/// Splits an instance id into the master id and the instance key.
pub(crate) fn parse_instance_id(id: &str) -> Option<(&str, InstanceKey)> {
    let (master, suffix) = id.rsplit_once('_')?;
    if master.is_empty() {
        return None;
    }
    if suffix.len() == 8 {
        return parse_date(suffix).map(|date| (master, InstanceKey::Date(date)));
    }
    match parse_date_time(suffix)? {
        (local, true) if suffix.len() == 16 => Some((master, InstanceKey::At(local.and_utc()))),
        _ => None,
    }
}

/// A recurrence line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecurrenceError(pub String);

impl Series {
    /// Reads `recurrence` lines for a series whose first instance runs from
    /// `start` to `end`. Returns `None` when the lines define no recurrence
    /// (no `RRULE` and no `RDATE`).
    pub fn parse(
        lines: &[String],
        start: &EventTime,
        end: &EventTime,
    ) -> Result<Option<Series>, RecurrenceError> {
        let mut rrules = Vec::new();
        let mut exrules = Vec::new();
        let mut rdates = Vec::new();
        let mut exdates = Vec::new();
        for line in lines {
            let (head, value) = line
                .split_once(':')
                .ok_or_else(|| RecurrenceError(format!("invalid recurrence line {line:?}")))?;
            let mut parts = head.split(';');
            let name = parts.next().unwrap_or_default().trim().to_ascii_uppercase();
            let mut tzid = None;
            let mut value_type = None;
            for param in parts {
                if let Some((key, param_value)) = param.split_once('=') {
                    match key.trim().to_ascii_uppercase().as_str() {
                        "TZID" => tzid = Some(param_value.trim().trim_matches('"').to_string()),
                        "VALUE" => value_type = Some(param_value.trim().to_ascii_uppercase()),
                        _ => {}
                    }
                }
            }
            let bad = |what: &str| RecurrenceError(format!("invalid {what} in {line:?}"));
            match name.as_str() {
                "RRULE" => rrules.push(RecurrenceRule::parse(value).map_err(|_| bad("RRULE"))?),
                "EXRULE" => exrules.push(RecurrenceRule::parse(value).map_err(|_| bad("EXRULE"))?),
                "RDATE" | "EXDATE" => {
                    for text in value.split(',').filter(|text| !text.trim().is_empty()) {
                        let zone = tzid.as_deref();
                        if name == "EXDATE" {
                            exdates.push(
                                time_value(text, zone, value_type.as_deref(), start)
                                    .ok_or_else(|| bad("EXDATE"))?,
                            );
                        } else if value_type.as_deref() == Some("PERIOD") {
                            rdates
                                .push(period_value(text, zone, start).ok_or_else(|| bad("RDATE"))?);
                        } else {
                            rdates.push(RDate::Time(
                                time_value(text, zone, value_type.as_deref(), start)
                                    .ok_or_else(|| bad("RDATE"))?,
                            ));
                        }
                    }
                }
                _ => {
                    return Err(RecurrenceError(format!(
                        "unsupported recurrence line {line:?}: only RRULE, EXRULE, RDATE and EXDATE are allowed"
                    )));
                }
            }
        }
        if rrules.is_empty() && rdates.is_empty() {
            return Ok(None);
        }
        let event = |rrule: Option<RecurrenceRule>| {
            let mut event = Event::new(ItemId::new("series"), start.clone());
            event.end = Some(end.clone());
            event.rrule = rrule;
            event
        };
        let item = |master: Event| Item {
            uid: ItemId::new("series"),
            master: Some(master),
            overrides: Vec::new(),
        };
        let mut rules: Vec<Item> = Vec::new();
        let finite = rrules.iter().all(RecurrenceRule::is_finite);
        let rrules: Vec<Option<RecurrenceRule>> = if rrules.is_empty() {
            vec![None]
        } else {
            rrules.into_iter().map(Some).collect()
        };
        for (idx, rrule) in rrules.into_iter().enumerate() {
            let mut master = event(rrule);
            if idx == 0 {
                master.rdates = rdates.clone();
            }
            master.exdates = exdates.clone();
            rules.push(item(master));
        }
        let exclusions = exrules
            .into_iter()
            .map(|rule| item(event(Some(rule))))
            .collect();
        let first_start = start.to_utc(Tz::UTC);
        let span = (end.to_utc(Tz::UTC) - first_start).max(Duration::zero());
        let earliest_start = rdates
            .iter()
            .map(|rdate| rdate.start().to_utc(Tz::UTC))
            .fold(first_start, DateTime::min);
        let mut series = Series {
            rules,
            exclusions,
            first_start,
            earliest_start,
            latest_end: None,
            span,
        };
        // Check that the core can expand the rules at all, and find the end
        // of a finite series once, so that listings can skip it cheaply.
        let probe_end = if finite {
            latest()
        } else {
            first_start + Duration::days(400)
        };
        let all = series.expand_starts(
            (earliest_start - Duration::days(2)).max(earliest()),
            probe_end.max(earliest_start + Duration::days(1)),
            Tz::UTC,
            100_000,
        )?;
        if finite && !all.1 {
            series.latest_end = Some(
                all.0
                    .iter()
                    .map(|occurrence| occurrence.end_at)
                    .max()
                    .unwrap_or(first_start + span)
                    + Duration::days(2),
            );
        }
        Ok(Some(series))
    }

    /// Whether some instance may overlap `[from, to)` (a cheap test on the
    /// series' overall span).
    pub fn may_overlap(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        let starts_before_end = self.earliest_start - Duration::days(1) < to;
        let ends_after_start = self.latest_end.is_none_or(|end| end > from);
        starts_before_end && ends_after_start
    }

    /// The instances that overlap `[from, to)`: end after `from`, start
    /// before `to` (a zero-length instance counts when it starts at `from`).
    /// All-day instances are read in `floating_zone`.
    pub fn occurrences(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        floating_zone: Tz,
        max_instances: usize,
    ) -> Vec<Occurrence> {
        let from = from.max(earliest());
        let to = to.min(latest());
        if from >= to || !self.may_overlap(from, to) {
            return Vec::new();
        }
        // Instances that start a little before `from` may still run into it.
        let widened = (from - self.span - Duration::days(2)).max(earliest());
        let Ok((found, _)) = self.expand_starts(widened, to, floating_zone, max_instances) else {
            return Vec::new();
        };
        found
            .into_iter()
            .filter(|occurrence| {
                occurrence.end_at > from
                    || (occurrence.end_at == occurrence.start_at && occurrence.start_at >= from)
            })
            .collect()
    }

    /// The instance named by `key`, if the series has it.
    pub fn occurrence(&self, key: InstanceKey) -> Option<Occurrence> {
        let (from, to) = match key {
            InstanceKey::At(at) => (at, at + Duration::seconds(1)),
            InstanceKey::Date(date) => {
                let midnight = date.and_hms_opt(0, 0, 0)?.and_utc();
                (midnight, midnight + Duration::days(1))
            }
        };
        let (found, _) = self.expand_starts(from, to, Tz::UTC, 10).ok()?;
        found
            .into_iter()
            .find(|occurrence| InstanceKey::of(&occurrence.original) == key)
    }

    /// Instances whose start lies in `[from, to)`, sorted, deduplicated
    /// across rules, exclusions removed; and whether the cap cut them.
    fn expand_starts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        floating_zone: Tz,
        max_instances: usize,
    ) -> Result<(Vec<Occurrence>, bool), RecurrenceError> {
        let Ok(window) = Window::new(from, to) else {
            return Ok((Vec::new(), false));
        };
        let options = ExpandOptions {
            max_instances,
            floating_zone,
        };
        let mut found: BTreeMap<DateTime<Utc>, Occurrence> = BTreeMap::new();
        let mut truncated = false;
        for item in &self.rules {
            let expansion = item
                .expand(&window, &options)
                .map_err(|error| RecurrenceError(error.reason))?;
            truncated |= expansion.truncated;
            for instance in expansion.instances {
                let original = instance.recurrence_id.unwrap_or(instance.start.clone());
                found.entry(instance.start_at).or_insert(Occurrence {
                    original,
                    start: instance.start,
                    end: instance.end,
                    start_at: instance.start_at,
                    end_at: instance.end_at,
                });
            }
        }
        for item in &self.exclusions {
            let expansion = item
                .expand(&window, &options)
                .map_err(|error| RecurrenceError(error.reason))?;
            for instance in expansion.instances {
                // The core always counts DTSTART as an occurrence; an EXRULE
                // never removes the first instance.
                if instance.start_at != self.first_start {
                    found.remove(&instance.start_at);
                }
            }
        }
        let mut occurrences: Vec<Occurrence> = found.into_values().collect();
        if occurrences.len() > max_instances {
            occurrences.truncate(max_instances);
            truncated = true;
        }
        Ok((occurrences, truncated))
    }
}

/// Reads one `RDATE`/`EXDATE` value. A date-time without `Z` or `TZID` is
/// read in the series' zone.
fn time_value(
    text: &str,
    tzid: Option<&str>,
    value_type: Option<&str>,
    series_start: &EventTime,
) -> Option<EventTime> {
    let text = text.trim();
    if value_type == Some("DATE") || text.len() == 8 {
        return parse_date(text).map(EventTime::Date);
    }
    let (local, utc) = parse_date_time(text)?;
    if utc {
        return Some(EventTime::Utc(local.and_utc()));
    }
    if let Some(tzid) = tzid {
        let tz = resolve_zone_name(tzid)?;
        return Some(EventTime::Zoned {
            local,
            zone: Zone::new(tzid.to_string(), tz),
        });
    }
    Some(series_start.with_local(local))
}

/// Reads an `RDATE;VALUE=PERIOD` value: `start/end` or `start/duration`.
fn period_value(text: &str, tzid: Option<&str>, series_start: &EventTime) -> Option<RDate> {
    let (start, rest) = text.trim().split_once('/')?;
    let start = time_value(start, tzid, None, series_start)?;
    if rest.trim_start().starts_with(['P', 'p', '+', '-']) {
        let duration = parse_duration(rest)?;
        return Some(RDate::PeriodDuration { start, duration });
    }
    let end = time_value(rest, tzid, None, series_start)?;
    Some(RDate::Period { start, end })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::NaiveDateTime;

    fn zoned(local: &str, tz: &str) -> EventTime {
        let tz: Tz = tz.parse().unwrap();
        EventTime::Zoned {
            local: NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S").unwrap(),
            zone: Zone::iana(tz),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn weekly_series_with_exdate_and_exrule() {
        let start = zoned("2025-03-03T10:00:00", "Europe/Berlin");
        let end = zoned("2025-03-03T11:00:00", "Europe/Berlin");
        let lines = vec![
            "RRULE:FREQ=WEEKLY;COUNT=5".to_string(),
            "EXDATE;TZID=Europe/Berlin:20250310T100000".to_string(),
            "EXRULE:FREQ=WEEKLY;INTERVAL=4".to_string(),
        ];
        let series = Series::parse(&lines, &start, &end).unwrap().unwrap();
        let found = series.occurrences(earliest(), latest(), Tz::UTC, 100);
        let ids: Vec<String> = found
            .iter()
            .map(|occurrence| instance_id("m", &occurrence.original))
            .collect();
        // 03-03 (first, kept), 03-10 (EXDATE), 03-17, 03-24, 03-31 (EXRULE).
        assert_eq!(
            ids,
            vec![
                "m_20250303T090000Z",
                "m_20250317T090000Z",
                "m_20250324T090000Z"
            ]
        );
        assert!(
            series
                .occurrence(InstanceKey::At(at("2025-03-17T09:00:00Z")))
                .is_some()
        );
        assert!(
            series
                .occurrence(InstanceKey::At(at("2025-03-10T09:00:00Z")))
                .is_none()
        );
        assert!(!series.may_overlap(at("2025-06-01T00:00:00Z"), at("2025-07-01T00:00:00Z")));
    }

    #[test]
    fn instance_ids_round_trip() {
        let (master, key) = parse_instance_id("abc123_20250303T090000Z").unwrap();
        assert_eq!(master, "abc123");
        assert_eq!(key, InstanceKey::At(at("2025-03-03T09:00:00Z")));
        let (_, key) = parse_instance_id("abc123_20250303").unwrap();
        assert_eq!(key.suffix(), "20250303");
        assert!(parse_instance_id("abc123").is_none());
        assert!(parse_instance_id("abc_2025").is_none());
    }

    #[test]
    fn overlap_uses_end_of_instances_started_before_window() {
        let start = zoned("2025-03-03T23:00:00", "UTC");
        let end = zoned("2025-03-04T02:00:00", "UTC");
        let lines = vec!["RRULE:FREQ=DAILY".to_string()];
        let series = Series::parse(&lines, &start, &end).unwrap().unwrap();
        let found = series.occurrences(
            at("2025-03-05T00:00:00Z"),
            at("2025-03-05T01:00:00Z"),
            Tz::UTC,
            10,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].start_at, at("2025-03-04T23:00:00Z"));
    }
}

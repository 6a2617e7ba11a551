//! From the event model to iCalendar text: CRLF line ends, lines folded at
//! 75 octets without splitting a UTF-8 character.

use super::Calendar;
use super::lex::{Component, Param, Property};
use super::value::escape_text;
use crate::event::{Class, Event, Item, PartStat, Person, RDate, Status, Transparency};
use crate::time::EventTime;
use std::fmt::Write as _;

/// Writes a whole calendar. `VERSION` and `PRODID` are added when missing.
pub fn write_calendar(calendar: &Calendar) -> String {
    let mut out = String::with_capacity(1024 + calendar.items.len() * 512);
    line(&mut out, "BEGIN", &[], "VCALENDAR");
    if !calendar
        .properties
        .iter()
        .any(|prop| prop.name == "VERSION")
    {
        line(&mut out, "VERSION", &[], "2.0");
    }
    if !calendar.properties.iter().any(|prop| prop.name == "PRODID") {
        line(&mut out, "PRODID", &[], "-//calmesh//calmesh//EN");
    }
    for prop in &calendar.properties {
        property(&mut out, prop);
    }
    for timezone in &calendar.timezones {
        component(&mut out, timezone);
    }
    for item in &calendar.items {
        write_item(&mut out, item);
    }
    for other in &calendar.other_components {
        component(&mut out, other);
    }
    line(&mut out, "END", &[], "VCALENDAR");
    out
}

/// Appends the `VEVENT`s of one item (master first, then overrides).
pub fn write_item(out: &mut String, item: &Item) {
    for event in item.events() {
        write_event(out, event);
    }
}

fn time_value(time: &EventTime) -> (Vec<Param>, String) {
    match time {
        EventTime::Date(date) => (
            vec![Param::new("VALUE", "DATE")],
            date.format("%Y%m%d").to_string(),
        ),
        EventTime::Floating(local) => (Vec::new(), local.format("%Y%m%dT%H%M%S").to_string()),
        EventTime::Utc(instant) => (Vec::new(), instant.format("%Y%m%dT%H%M%SZ").to_string()),
        EventTime::Zoned { local, zone } => (
            vec![Param::new("TZID", zone.tzid())],
            local.format("%Y%m%dT%H%M%S").to_string(),
        ),
    }
}

fn with_params(mut params: Vec<Param>, event: &Event, name: &str) -> Vec<Param> {
    if let Some((_, kept)) = event.other_params.iter().find(|(prop, _)| prop == name) {
        params.extend(kept.iter().cloned());
    }
    params
}

fn time_line(out: &mut String, event: &Event, name: &str, time: &EventTime) {
    let (params, value) = time_value(time);
    line(out, name, &with_params(params, event, name), &value);
}

fn text_line(out: &mut String, event: &Event, name: &str, text: &Option<String>) {
    if let Some(text) = text {
        line(
            out,
            name,
            &with_params(Vec::new(), event, name),
            &escape_text(text),
        );
    }
}

/// Writes times that share one kind and zone on one line per group. With
/// `period_ends`, each value becomes a period `start/end` (`VALUE=PERIOD`).
fn time_list(out: &mut String, name: &str, times: &[&EventTime], period_ends: Option<&[String]>) {
    let mut groups: Vec<(Vec<Param>, Vec<String>)> = Vec::new();
    for (idx, time) in times.iter().enumerate() {
        let (mut params, mut value) = time_value(time);
        if let Some(ends) = period_ends {
            params.retain(|param| param.name != "VALUE");
            params.push(Param::new("VALUE", "PERIOD"));
            if let Some(end) = ends.get(idx) {
                value = format!("{value}/{end}");
            }
        }
        match groups.iter_mut().find(|(group, _)| *group == params) {
            Some((_, values)) => values.push(value),
            None => groups.push((params, vec![value])),
        }
    }
    for (params, values) in groups {
        line(out, name, &params, &values.join(","));
    }
}

/// The recurrence of an event (`RRULE`, `RDATE`, `EXDATE`) as unfolded
/// content lines, the form Google's `recurrence` field takes.
pub fn recurrence_lines(event: &Event) -> Vec<String> {
    let mut out = String::new();
    write_recurrence(&mut out, event);
    out.replace("\r\n ", "")
        .split("\r\n")
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

fn write_recurrence(out: &mut String, event: &Event) {
    if let Some(rule) = &event.rrule {
        line(out, "RRULE", &[], &rule.to_string());
    }
    // RDATE: plain times and periods go on separate lines.
    let plain: Vec<&EventTime> = event
        .rdates
        .iter()
        .filter_map(|rdate| match rdate {
            RDate::Time(time) => Some(time),
            _ => None,
        })
        .collect();
    time_list(out, "RDATE", &plain, None);
    let mut period_starts = Vec::new();
    let mut period_ends = Vec::new();
    for rdate in &event.rdates {
        match rdate {
            RDate::Period { start, end } => {
                period_starts.push(start);
                period_ends.push(time_value(end).1);
            }
            RDate::PeriodDuration { start, duration } => {
                period_starts.push(start);
                period_ends.push(duration.to_string());
            }
            RDate::Time(_) => {}
        }
    }
    time_list(out, "RDATE", &period_starts, Some(&period_ends));
    let exdates: Vec<&EventTime> = event.exdates.iter().collect();
    time_list(out, "EXDATE", &exdates, None);
}

fn write_event(out: &mut String, event: &Event) {
    line(out, "BEGIN", &[], "VEVENT");
    line(out, "UID", &[], &escape_text(event.uid.as_str()));
    if let Some(dtstamp) = event.dtstamp {
        line(
            out,
            "DTSTAMP",
            &[],
            &dtstamp.format("%Y%m%dT%H%M%SZ").to_string(),
        );
    }
    if let Some(rid) = &event.recurrence_id {
        let (mut params, value) = time_value(&rid.time);
        if rid.this_and_future {
            params.push(Param::new("RANGE", "THISANDFUTURE"));
        }
        line(
            out,
            "RECURRENCE-ID",
            &with_params(params, event, "RECURRENCE-ID"),
            &value,
        );
    }
    time_line(out, event, "DTSTART", &event.start);
    if let Some(end) = &event.end {
        time_line(out, event, "DTEND", end);
    }
    if let Some(duration) = &event.duration {
        line(
            out,
            "DURATION",
            &with_params(Vec::new(), event, "DURATION"),
            &duration.to_string(),
        );
    }
    write_recurrence(out, event);
    text_line(out, event, "SUMMARY", &event.summary);
    text_line(out, event, "DESCRIPTION", &event.description);
    text_line(out, event, "LOCATION", &event.location);
    if let Some(status) = &event.status {
        let value = match status {
            Status::Tentative => "TENTATIVE",
            Status::Confirmed => "CONFIRMED",
            Status::Cancelled => "CANCELLED",
            Status::Other(other) => other,
        };
        line(
            out,
            "STATUS",
            &with_params(Vec::new(), event, "STATUS"),
            value,
        );
    }
    if let Some(transparency) = event.transparency {
        let value = match transparency {
            Transparency::Opaque => "OPAQUE",
            Transparency::Transparent => "TRANSPARENT",
        };
        line(out, "TRANSP", &[], value);
    }
    if let Some(class) = &event.class {
        let value = match class {
            Class::Public => "PUBLIC",
            Class::Private => "PRIVATE",
            Class::Confidential => "CONFIDENTIAL",
            Class::Other(other) => other,
        };
        line(
            out,
            "CLASS",
            &with_params(Vec::new(), event, "CLASS"),
            value,
        );
    }
    if !event.categories.is_empty() {
        let value: Vec<String> = event.categories.iter().map(|c| escape_text(c)).collect();
        line(
            out,
            "CATEGORIES",
            &with_params(Vec::new(), event, "CATEGORIES"),
            &value.join(","),
        );
    }
    if let Some(organizer) = &event.organizer {
        person_line(out, "ORGANIZER", organizer);
    }
    for attendee in &event.attendees {
        person_line(out, "ATTENDEE", attendee);
    }
    if let Some(sequence) = event.sequence {
        line(out, "SEQUENCE", &[], &sequence.to_string());
    }
    if let Some(created) = event.created {
        line(
            out,
            "CREATED",
            &[],
            &created.format("%Y%m%dT%H%M%SZ").to_string(),
        );
    }
    if let Some(modified) = event.last_modified {
        line(
            out,
            "LAST-MODIFIED",
            &[],
            &modified.format("%Y%m%dT%H%M%SZ").to_string(),
        );
    }
    for prop in &event.other_properties {
        property(out, prop);
    }
    for alarm in &event.alarms {
        component(out, alarm);
    }
    for other in &event.other_components {
        component(out, other);
    }
    line(out, "END", &[], "VEVENT");
}

fn person_line(out: &mut String, name: &str, person: &Person) {
    let mut params = Vec::new();
    if let Some(cn) = &person.name {
        params.push(Param::new("CN", cn.as_str()));
    }
    if let Some(partstat) = &person.partstat {
        let value = match partstat {
            PartStat::NeedsAction => "NEEDS-ACTION",
            PartStat::Accepted => "ACCEPTED",
            PartStat::Declined => "DECLINED",
            PartStat::Tentative => "TENTATIVE",
            PartStat::Delegated => "DELEGATED",
            PartStat::Other(other) => other,
        };
        params.push(Param::new("PARTSTAT", value));
    }
    params.extend(person.params.iter().cloned());
    line(out, name, &params, &person.address);
}

fn component(out: &mut String, component: &Component) {
    line(out, "BEGIN", &[], &component.name);
    for prop in &component.properties {
        property(out, prop);
    }
    for child in &component.children {
        self::component(out, child);
    }
    line(out, "END", &[], &component.name);
}

fn property(out: &mut String, prop: &Property) {
    line(out, &prop.name, &prop.params, &prop.value);
}

fn needs_quotes(value: &str) -> bool {
    value.contains([':', ';', ','])
}

/// Writes one content line, folded at 75 octets on character boundaries.
fn line(out: &mut String, name: &str, params: &[Param], value: &str) {
    let mut text = String::with_capacity(name.len() + value.len() + 16);
    text.push_str(name);
    for param in params {
        let _ = write!(text, ";{}=", param.name);
        for (idx, value) in param.values.iter().enumerate() {
            if idx > 0 {
                text.push(',');
            }
            // DQUOTE cannot appear inside a parameter value at all.
            let value = value.replace('"', "'");
            if needs_quotes(&value) {
                let _ = write!(text, "\"{value}\"");
            } else {
                text.push_str(&value);
            }
        }
    }
    text.push(':');
    text.push_str(value);
    fold(out, &text);
}

fn fold(out: &mut String, text: &str) {
    const LIMIT: usize = 75;
    if text.len() <= LIMIT {
        out.push_str(text);
        out.push_str("\r\n");
        return;
    }
    let mut width = 0;
    let mut limit = LIMIT;
    for c in text.chars() {
        let len = c.len_utf8();
        if width + len > limit {
            out.push_str("\r\n ");
            width = 0;
            // Continuation lines start with a space, which counts.
            limit = LIMIT - 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_at_75_octets_without_splitting_characters() {
        let mut out = String::new();
        let value = "é".repeat(100);
        line(&mut out, "SUMMARY", &[], &value);
        for physical in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(physical.len() <= 75, "{} octets", physical.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("SUMMARY:{value}\r\n"));
    }
}

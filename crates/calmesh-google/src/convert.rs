//! Google Calendar v3 event resources ↔ calmesh's event model.
//!
//! Read: `start`/`end` with `date` become dates; `dateTime` with a `timeZone`
//! becomes the wall time in that zone, without one the instant (UTC);
//! `recurrence` lines are read by calmesh's iCalendar reader against the
//! event's start; `originalStartTime` becomes the RECURRENCE-ID of an
//! exception. Write: the reverse; recurring events always carry a
//! `timeZone` (Google requires one).

use std::collections::BTreeMap;

use calmesh_core::event::{Class, PartStat, Person, RecurrenceId, Status, Transparency};
use calmesh_core::ical::{parse_calendar, recurrence_lines};
use calmesh_core::zone::{Zone, resolve_zone_name};
use calmesh_core::{Event, EventTime, ItemId};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

/// A Google event resource read into the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// `id`.
    pub id: String,
    /// `recurringEventId`, for an instance or exception.
    pub parent_id: Option<String>,
    /// `etag`.
    pub etag: Option<String>,
    /// `updated`.
    pub updated: Option<DateTime<Utc>>,
    /// The event; None for a deletion (a cancelled entry that is not an
    /// exception of a series).
    pub event: Option<Event>,
    /// Private extended properties whose names start with `calmesh`.
    pub tags: BTreeMap<String, String>,
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Reads an `EventDateTime`; `field` names it in errors.
fn read_time(value: Option<&Value>, field: &str) -> Result<EventTime, String> {
    let value = value.ok_or_else(|| format!("missing `{field}`"))?;
    if let Some(date) = value.get("date").and_then(Value::as_str) {
        return NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map(EventTime::Date)
            .map_err(|_| format!("`{field}.date` is not a date: {date:?}"));
    }
    let date_time = value
        .get("dateTime")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{field}` has neither `date` nor `dateTime`"))?;
    let zone_name = value.get("timeZone").and_then(Value::as_str);
    let zone = zone_name.and_then(|name| resolve_zone_name(name).map(|tz| (name, tz)));
    match (DateTime::parse_from_rfc3339(date_time), zone) {
        (Ok(at), Some((name, tz))) => Ok(EventTime::Zoned {
            local: at.with_timezone(&tz).naive_local(),
            zone: Zone::new(name, tz),
        }),
        (Ok(at), None) => Ok(EventTime::Utc(at.with_timezone(&Utc))),
        // Without an offset the time is local to `timeZone`.
        (Err(_), Some((name, tz))) => {
            chrono::NaiveDateTime::parse_from_str(date_time, "%Y-%m-%dT%H:%M:%S")
                .map(|local| EventTime::Zoned {
                    local,
                    zone: Zone::new(name, tz),
                })
                .map_err(|_| format!("`{field}.dateTime` is not RFC 3339: {date_time:?}"))
        }
        (Err(_), None) => Err(format!(
            "`{field}.dateTime` has no offset and no known `timeZone`: {date_time:?}"
        )),
    }
}

fn partstat(status: &str) -> PartStat {
    match status {
        "accepted" => PartStat::Accepted,
        "declined" => PartStat::Declined,
        "tentative" => PartStat::Tentative,
        "needsAction" => PartStat::NeedsAction,
        other => PartStat::Other(other.to_owned()),
    }
}

fn person(value: &Value) -> Option<Person> {
    let email = value.get("email").and_then(Value::as_str)?;
    Some(Person {
        address: format!("mailto:{email}"),
        name: text(value, "displayName"),
        partstat: value
            .get("responseStatus")
            .and_then(Value::as_str)
            .map(partstat),
        params: Vec::new(),
    })
}

/// Reads one event resource. A cancelled entry with no `recurringEventId` is
/// a deletion (`event: None`); Google's tombstones carry only `id` and
/// `status`, so nothing else is read from them.
pub fn read_event(value: &Value) -> Result<Read, String> {
    let id = text(value, "id").ok_or("missing `id`")?;
    let parent_id = text(value, "recurringEventId");
    let status = value.get("status").and_then(Value::as_str);
    let tags = value
        .pointer("/extendedProperties/private")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(k, _)| k.starts_with("calmesh"))
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let mut read = Read {
        id: id.clone(),
        parent_id: parent_id.clone(),
        etag: text(value, "etag"),
        updated: value
            .get("updated")
            .and_then(Value::as_str)
            .and_then(instant),
        event: None,
        tags,
    };
    if status == Some("cancelled") && parent_id.is_none() {
        return Ok(read);
    }
    let original = match value.get("originalStartTime") {
        Some(v) => Some(read_time(Some(v), "originalStartTime")?),
        None => None,
    };
    let start = match (value.get("start"), &original) {
        (Some(v), _) => read_time(Some(v), "start")?,
        // A cancelled exception may carry only its original start.
        (None, Some(o)) if status == Some("cancelled") => o.clone(),
        (None, _) => return Err("missing `start`".to_owned()),
    };
    let uid = text(value, "iCalUID").unwrap_or_else(|| id.clone());
    let mut event = Event::new(ItemId::new(uid), start);
    if let Some(end) = value.get("end") {
        event.end = Some(read_time(Some(end), "end")?);
    }
    event.recurrence_id = original.map(|time| RecurrenceId {
        time,
        this_and_future: false,
    });
    event.summary = text(value, "summary");
    event.description = text(value, "description");
    event.location = text(value, "location");
    event.status = match status {
        Some("tentative") => Some(Status::Tentative),
        Some("cancelled") => Some(Status::Cancelled),
        Some("confirmed") => Some(Status::Confirmed),
        _ => None,
    };
    event.transparency = match value.get("transparency").and_then(Value::as_str) {
        Some("transparent") => Some(Transparency::Transparent),
        Some("opaque") => Some(Transparency::Opaque),
        _ => None,
    };
    event.class = match value.get("visibility").and_then(Value::as_str) {
        Some("private") | Some("confidential") => Some(Class::Private),
        Some("public") => Some(Class::Public),
        _ => None,
    };
    event.organizer = value.get("organizer").and_then(person);
    event.attendees = value
        .get("attendees")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(person).collect())
        .unwrap_or_default();
    event.sequence = value.get("sequence").and_then(Value::as_i64);
    event.created = value
        .get("created")
        .and_then(Value::as_str)
        .and_then(instant);
    event.last_modified = read.updated;
    if let Some(lines) = value.get("recurrence").and_then(Value::as_array) {
        let lines: Vec<&str> = lines.iter().filter_map(Value::as_str).collect();
        read_recurrence(&mut event, &lines)?;
    }
    read.event = Some(event);
    Ok(read)
}

/// Reads Google's `recurrence` lines (RRULE, EXRULE, RDATE, EXDATE) with
/// calmesh's iCalendar reader, against the event's start.
fn read_recurrence(event: &mut Event, lines: &[&str]) -> Result<(), String> {
    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:r\r\n");
    let mut probe = Event::new(ItemId::new("r"), event.start.clone());
    probe.end = event.end.clone();
    // DTSTART as the writer would put it.
    let mut head = String::new();
    calmesh_core::ical::write_item(
        &mut head,
        &calmesh_core::Item {
            uid: ItemId::new("r"),
            master: Some(probe),
            overrides: Vec::new(),
        },
    );
    for line in head.replace("\r\n ", "").split("\r\n") {
        if line.starts_with("DTSTART") || line.starts_with("DTEND") {
            ics.push_str(line);
            ics.push_str("\r\n");
        }
    }
    for line in lines {
        if line.contains(['\r', '\n']) {
            return Err(format!("`recurrence` line has a line break: {line:?}"));
        }
        ics.push_str(line);
        ics.push_str("\r\n");
    }
    ics.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
    let parsed = parse_calendar(ics.as_bytes()).map_err(|e| format!("`recurrence`: {e}"))?;
    if let Some(problem) = parsed.problems.first() {
        return Err(format!("`recurrence`: {}", problem.message));
    }
    let master = parsed
        .calendar
        .items
        .into_iter()
        .next()
        .and_then(|item| item.master)
        .ok_or("`recurrence` could not be read")?;
    event.rrule = master.rrule;
    event.rdates = master.rdates;
    event.exdates = master.exdates;
    // EXRULE and anything else stays as written.
    event.other_properties.extend(
        master
            .other_properties
            .into_iter()
            .filter(|p| p.name == "EXRULE"),
    );
    Ok(())
}

fn write_time(time: &EventTime, recurring: bool, floating_zone: Tz) -> Value {
    match time {
        EventTime::Date(date) => json!({"date": date.format("%Y-%m-%d").to_string()}),
        EventTime::Utc(at) => {
            let mut v = json!({"dateTime": at.to_rfc3339_opts(SecondsFormat::Secs, true)});
            if recurring {
                v["timeZone"] = json!("UTC");
            }
            v
        }
        EventTime::Zoned { zone, .. } => json!({
            "dateTime": time.to_rfc3339(),
            "timeZone": zone.tz().name(),
        }),
        EventTime::Floating(local) => json!({
            "dateTime": local.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "timeZone": floating_zone.name(),
        }),
    }
}

/// The JSON resource for an event calmesh writes. `tags` go into private
/// extended properties; an event without alarms gets no reminders (so blocks
/// do not ring).
pub fn write_event(
    id: &str,
    event: &Event,
    tags: &BTreeMap<String, String>,
    floating_zone: Tz,
) -> Value {
    let recurring = event.is_recurring();
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    if let Some(s) = &event.summary {
        body.insert("summary".into(), json!(s));
    }
    if let Some(s) = &event.description {
        body.insert("description".into(), json!(s));
    }
    if let Some(s) = &event.location {
        body.insert("location".into(), json!(s));
    }
    body.insert(
        "start".into(),
        write_time(&event.start, recurring, floating_zone),
    );
    body.insert(
        "end".into(),
        write_time(&event.effective_end(), recurring, floating_zone),
    );
    if recurring {
        body.insert("recurrence".into(), json!(recurrence_lines(event)));
    }
    body.insert(
        "status".into(),
        json!(match event.status {
            Some(Status::Tentative) => "tentative",
            Some(Status::Cancelled) => "cancelled",
            _ => "confirmed",
        }),
    );
    body.insert(
        "transparency".into(),
        json!(match event.transparency {
            Some(Transparency::Transparent) => "transparent",
            _ => "opaque",
        }),
    );
    body.insert(
        "visibility".into(),
        json!(match event.class {
            Some(Class::Private) | Some(Class::Confidential) => "private",
            Some(Class::Public) => "public",
            _ => "default",
        }),
    );
    if event.alarms.is_empty() {
        body.insert(
            "reminders".into(),
            json!({"useDefault": false, "overrides": []}),
        );
    }
    if !tags.is_empty() {
        body.insert("extendedProperties".into(), json!({"private": tags}));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_recurring_master_with_zone_and_exdate() {
        let v = json!({
            "id": "abc123", "etag": "\"1\"", "status": "confirmed",
            "summary": "Standup", "iCalUID": "abc123@google.com",
            "start": {"dateTime": "2026-03-02T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-03-02T09:15:00+01:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO", "EXDATE;TZID=Europe/Berlin:20260309T090000"],
            "extendedProperties": {"private": {"calmeshRule": "1", "other": "x"}}
        });
        let read = read_event(&v).unwrap();
        let event = read.event.unwrap();
        assert_eq!(event.rrule.unwrap().to_string(), "FREQ=WEEKLY;BYDAY=MO");
        assert_eq!(event.exdates.len(), 1);
        assert_eq!(read.tags.len(), 1);
        match &event.start {
            EventTime::Zoned { local, zone } => {
                assert_eq!(zone.tz(), chrono_tz::Europe::Berlin);
                assert_eq!(local.to_string(), "2026-03-02 09:00:00");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tombstone_is_a_deletion_and_cancelled_exception_is_not() {
        let gone = read_event(&json!({"id": "abcde", "status": "cancelled"})).unwrap();
        assert!(gone.event.is_none());
        let exception = read_event(&json!({
            "id": "abcde_20260309T080000Z", "status": "cancelled", "recurringEventId": "abcde",
            "originalStartTime": {"dateTime": "2026-03-09T09:00:00+01:00", "timeZone": "Europe/Berlin"}
        }))
        .unwrap();
        let event = exception.event.unwrap();
        assert_eq!(event.status, Some(Status::Cancelled));
        assert!(event.recurrence_id.is_some());
        assert_eq!(exception.parent_id.as_deref(), Some("abcde"));
    }

    #[test]
    fn bad_times_name_the_field() {
        let err = read_event(&json!({"id": "abcde", "start": {"dateTime": "tomorrow"}, "end": {"date": "2026-01-01"}}))
            .unwrap_err();
        assert!(err.contains("start.dateTime"), "{err}");
        let err = read_event(
            &json!({"id": "abcde", "start": {"date": "2026-01-01"}, "end": {"date": "x"}}),
        )
        .unwrap_err();
        assert!(err.contains("end.date"), "{err}");
    }

    #[test]
    fn written_series_reads_back_the_same() {
        let v = json!({
            "id": "abc123",
            "start": {"dateTime": "2026-03-02T09:00:00-05:00", "timeZone": "America/New_York"},
            "end": {"dateTime": "2026-03-02T10:00:00-05:00", "timeZone": "America/New_York"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=5", "EXDATE;TZID=America/New_York:20260304T090000"],
        });
        let event = read_event(&v).unwrap().event.unwrap();
        let out = write_event("abc123", &event, &BTreeMap::new(), chrono_tz::UTC);
        let again = read_event(&out).unwrap().event.unwrap();
        assert_eq!(
            calmesh_core::hash::event_hash(&event),
            calmesh_core::hash::event_hash(&again)
        );
        assert_eq!(out["start"]["timeZone"], "America/New_York");
        assert_eq!(out["reminders"]["useDefault"], false);
    }
}

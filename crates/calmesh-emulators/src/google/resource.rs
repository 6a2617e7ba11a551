//! The event resource as JSON: reading times and recurrence out of it,
//! the limits on extended properties, patch semantics, the server fields
//! laid over what the client sent, and the shapes the API serves
//! (full resource, minimal tombstone, generated instance).

use super::error::ApiError;
use super::recurrence::{Occurrence, instance_id};
use super::state::{ExceptionOf, StoredEvent};
use calmesh_core::time::EventTime;
use calmesh_core::zone::{Zone, resolve_zone_name};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

/// Longest extended-property key kept; longer ones are dropped silently.
const MAX_PROPERTY_KEY_CHARS: usize = 44;
/// Longest extended-property value; longer ones are truncated silently.
const MAX_PROPERTY_VALUE_CHARS: usize = 1024;
/// Most extended properties per event, private and shared together.
const MAX_PROPERTIES: usize = 300;
/// Most bytes of extended properties (keys and values) per event.
const MAX_PROPERTY_BYTES: usize = 32 * 1024;

/// Start and end of an event, read from its `start`/`end`.
#[derive(Debug, Clone)]
pub(crate) struct Times {
    pub start: EventTime,
    pub end: EventTime,
}

impl Times {
    pub fn start_at(&self, floating_zone: Tz) -> DateTime<Utc> {
        self.start.to_utc(floating_zone)
    }

    pub fn end_at(&self, floating_zone: Tz) -> DateTime<Utc> {
        self.end.to_utc(floating_zone)
    }

    /// Whether the event overlaps `[from, to)`: it ends after `from` and
    /// starts before `to` (a zero-length event counts when it starts at `from`).
    pub fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>, floating_zone: Tz) -> bool {
        let start = self.start_at(floating_zone);
        let end = self.end_at(floating_zone);
        start < to && (end > from || (end == start && start >= from))
    }
}

/// Parses a request body that must be a JSON object.
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid("The request body must be a JSON object.")),
        Err(_) => Err(ApiError::parse_error()),
    }
}

/// Checks a client-chosen event id: base32hex characters, 5 to 1024 of them.
pub(crate) fn check_client_id(id: &str) -> Result<(), ApiError> {
    let charset_ok = id
        .bytes()
        .all(|byte| byte.is_ascii_digit() || (b'a'..=b'v').contains(&byte));
    if charset_ok && (5..=1024).contains(&id.len()) {
        Ok(())
    } else {
        Err(ApiError::invalid("Invalid resource id value."))
    }
}

/// Applies the documented limits to `extendedProperties`: keys over 44
/// characters are dropped, values over 1024 characters truncated, more
/// than 300 properties or 32 kB in total is an error.
pub(crate) fn limit_extended_properties(json: &mut Map<String, Value>) -> Result<(), ApiError> {
    let Some(properties) = json.get_mut("extendedProperties") else {
        return Ok(());
    };
    if properties.is_null() {
        json.remove("extendedProperties");
        return Ok(());
    }
    let Some(properties) = properties.as_object_mut() else {
        return Err(ApiError::invalid("extendedProperties must be an object."));
    };
    let mut count = 0usize;
    let mut bytes = 0usize;
    for kind in ["private", "shared"] {
        let Some(map) = properties.get_mut(kind) else {
            continue;
        };
        if map.is_null() {
            properties.remove(kind);
            continue;
        }
        let Some(map) = map.as_object_mut() else {
            return Err(ApiError::invalid(format!(
                "extendedProperties.{kind} must be an object."
            )));
        };
        map.retain(|key, value| key.chars().count() <= MAX_PROPERTY_KEY_CHARS && !value.is_null());
        for (key, value) in map.iter_mut() {
            let Some(text) = value.as_str() else {
                return Err(ApiError::invalid(format!(
                    "Invalid value for extendedProperties.{kind}.{key}: values must be strings."
                )));
            };
            if text.chars().count() > MAX_PROPERTY_VALUE_CHARS {
                let cut: String = text.chars().take(MAX_PROPERTY_VALUE_CHARS).collect();
                *value = Value::String(cut);
            }
            count += 1;
            bytes += key.len() + value.as_str().map_or(0, str::len);
        }
    }
    if count > MAX_PROPERTIES || bytes > MAX_PROPERTY_BYTES {
        return Err(ApiError::invalid(
            "Too many extended properties: at most 300 properties and 32 kB per event.",
        ));
    }
    Ok(())
}

/// Patch semantics: members of the patch replace members of the target,
/// objects merge recursively, `null` removes a member (RFC 7396). A
/// `start`/`end` that switches between `date` and `dateTime` drops the other.
pub(crate) fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
            continue;
        }
        match (target.get_mut(key), value) {
            (Some(Value::Object(inner)), Value::Object(inner_patch)) => {
                if matches!(key.as_str(), "start" | "end" | "originalStartTime") {
                    if inner_patch.contains_key("date") {
                        inner.remove("dateTime");
                        inner.remove("timeZone");
                    } else if inner_patch.contains_key("dateTime") {
                        inner.remove("date");
                    }
                }
                merge_patch(inner, inner_patch);
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The `recurrence` lines of an event.
pub(crate) fn recurrence_lines(json: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match json.get("recurrence") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(lines)) => lines
            .iter()
            .map(|line| {
                line.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::invalid("Invalid recurrence rule."))
            })
            .collect(),
        Some(_) => Err(ApiError::invalid("Invalid recurrence rule.")),
    }
}

/// Reads `start` and `end`. A timed recurring event needs `start.timeZone`.
pub(crate) fn parse_times(json: &Map<String, Value>, recurring: bool) -> Result<Times, ApiError> {
    let start = parse_time(json.get("start"), "start", recurring)?;
    let end = parse_time(json.get("end"), "end", false)?;
    if start.is_date() != end.is_date() {
        return Err(ApiError::invalid(
            "Start and end times must either both be date or both be dateTime.",
        ));
    }
    // An end without a zone in a recurring series is read in the start's zone.
    let end = match (&start, end) {
        (EventTime::Zoned { zone, .. }, EventTime::Utc(at)) if recurring => EventTime::Zoned {
            local: at.with_timezone(&zone.tz()).naive_local(),
            zone: zone.clone(),
        },
        (_, end) => end,
    };
    if end.to_utc(Tz::UTC) < start.to_utc(Tz::UTC) {
        return Err(ApiError::time_range_empty("end"));
    }
    Ok(Times { start, end })
}

fn parse_time(value: Option<&Value>, which: &str, needs_zone: bool) -> Result<EventTime, ApiError> {
    let Some(object) = value.and_then(Value::as_object) else {
        return Err(ApiError::required(format!("Missing {which} time.")));
    };
    let invalid = || ApiError::invalid(format!("Invalid {which} time."));
    let zone = match object.get("timeZone") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => {
            let tz = name
                .parse::<Tz>()
                .ok()
                .or_else(|| resolve_zone_name(name))
                .ok_or_else(|| {
                    ApiError::invalid(format!("Invalid time zone definition for {which} time."))
                })?;
            Some(Zone::new(name.as_str(), tz))
        }
        Some(_) => return Err(invalid()),
    };
    let date = object.get("date").filter(|value| !value.is_null());
    let date_time = object.get("dateTime").filter(|value| !value.is_null());
    match (date, date_time) {
        (Some(_), Some(_)) => Err(invalid()),
        (Some(date), None) => {
            let text = date.as_str().ok_or_else(invalid)?;
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(EventTime::Date)
                .map_err(|_| invalid())
        }
        (None, Some(date_time)) => {
            let text = date_time.as_str().ok_or_else(invalid)?;
            if let Ok(fixed) = DateTime::parse_from_rfc3339(text) {
                let at = fixed.with_timezone(&Utc);
                return match zone {
                    Some(zone) => Ok(EventTime::Zoned {
                        local: at.with_timezone(&zone.tz()).naive_local(),
                        zone,
                    }),
                    None if needs_zone => Err(missing_zone(which)),
                    None => Ok(EventTime::Utc(at)),
                };
            }
            let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .map_err(|_| invalid())?;
            match zone {
                Some(zone) => Ok(EventTime::Zoned { local, zone }.normalized()),
                None => Err(missing_zone(which)),
            }
        }
        (None, None) => Err(ApiError::required(format!("Missing {which} time."))),
    }
}

fn missing_zone(which: &str) -> ApiError {
    ApiError::required(format!("Missing time zone definition for {which} time."))
}

/// `{"date"}` or `{"dateTime", "timeZone"?}` for an instant of an event
/// whose time is `time`.
pub(crate) fn time_json(time: &EventTime, at: DateTime<Utc>) -> Value {
    match time {
        EventTime::Date(date) => json!({"date": date.format("%Y-%m-%d").to_string()}),
        EventTime::Zoned { zone, .. } => json!({
            "dateTime": at
                .with_timezone(&zone.tz())
                .fixed_offset()
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            "timeZone": zone.tzid(),
        }),
        _ => json!({"dateTime": at.to_rfc3339_opts(SecondsFormat::Secs, true)}),
    }
}

/// The minimal form of a deleted event or cancelled exception:
/// `kind`, `etag`, `id`, `status`, plus `recurringEventId` and
/// `originalStartTime` for an exception.
pub(crate) fn tombstone(id: &str, event: &StoredEvent) -> Value {
    let mut out = json!({
        "kind": "calendar#event",
        "etag": event.etag(),
        "id": id,
        "status": "cancelled",
    });
    if let (Some(exception), Some(map)) = (&event.exception, out.as_object_mut()) {
        map.insert("recurringEventId".into(), json!(exception.master_id));
        if let Some(original) = event.json.get("originalStartTime") {
            map.insert("originalStartTime".into(), original.clone());
        }
    }
    out
}

/// How an event is served: in full, or as a tombstone when deleted.
pub(crate) fn render(id: &str, event: &StoredEvent) -> Value {
    if event.deleted {
        tombstone(id, event)
    } else {
        Value::Object(event.json.clone())
    }
}

/// An instance of a series generated from its master.
pub(crate) fn render_instance(
    master_id: &str,
    master: &StoredEvent,
    occurrence: &Occurrence,
) -> Map<String, Value> {
    let mut json = master.json.clone();
    json.remove("recurrence");
    json.insert(
        "id".into(),
        json!(instance_id(master_id, &occurrence.original)),
    );
    json.insert("recurringEventId".into(), json!(master_id));
    json.insert(
        "originalStartTime".into(),
        time_json(&occurrence.original, occurrence.start_at),
    );
    json.insert(
        "start".into(),
        time_json(&occurrence.start, occurrence.start_at),
    );
    json.insert(
        "end".into(),
        end_json(&master.times.end, &occurrence.end, occurrence.end_at),
    );
    json
}

/// The minimal tombstone of an instance of a deleted series.
pub(crate) fn instance_tombstone(
    master_id: &str,
    master: &StoredEvent,
    occurrence: &Occurrence,
) -> Value {
    json!({
        "kind": "calendar#event",
        "etag": master.etag(),
        "id": instance_id(master_id, &occurrence.original),
        "status": "cancelled",
        "recurringEventId": master_id,
        "originalStartTime": time_json(&occurrence.original, occurrence.start_at),
    })
}

/// An instance's end, in the zone the master's end names.
fn end_json(master_end: &EventTime, end: &EventTime, end_at: DateTime<Utc>) -> Value {
    match master_end {
        EventTime::Zoned { .. } => time_json(master_end, end_at),
        _ => time_json(end, end_at),
    }
}

/// What the server decides about an event being written.
pub(crate) struct ServerFields<'a> {
    pub id: &'a str,
    pub calendar_id: &'a str,
    pub calendar_summary: &'a str,
    pub owner: &'a str,
    pub primary: bool,
    pub etag: String,
    pub now: DateTime<Utc>,
    /// The stored version being replaced, if any.
    pub previous: Option<&'a StoredEvent>,
    /// For an exception: its series and the original start of the instance.
    pub exception: Option<(&'a ExceptionOf, &'a StoredEvent, DateTime<Utc>)>,
}

/// Lays the server's fields over what the client sent. Fields the client
/// set are kept as sent, except the read-only ones.
pub(crate) fn overlay_server_fields(json: &mut Map<String, Value>, fields: &ServerFields<'_>) {
    let previous = fields.previous.map(|event| &event.json);
    let keep = |name: &str| previous.and_then(|previous| previous.get(name)).cloned();
    json.insert("kind".into(), json!("calendar#event"));
    json.insert("etag".into(), json!(fields.etag));
    json.insert("id".into(), json!(fields.id));
    let eid = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        format!("{} {}", fields.id, fields.calendar_id),
    );
    json.insert(
        "htmlLink".into(),
        json!(format!("https://www.google.com/calendar/event?eid={eid}")),
    );
    let now = super::state::timestamp(fields.now);
    json.insert(
        "created".into(),
        keep("created").unwrap_or_else(|| json!(now)),
    );
    json.insert("updated".into(), json!(now));
    if !json.get("status").is_some_and(Value::is_string) {
        json.insert("status".into(), json!("confirmed"));
    }
    match (&fields.exception, keep("iCalUID")) {
        (Some((_, master, _)), _) => {
            if let Some(uid) = master.json.get("iCalUID") {
                json.insert("iCalUID".into(), uid.clone());
            }
        }
        (None, Some(uid)) => {
            json.insert("iCalUID".into(), uid);
        }
        (None, None) => {
            if !json.get("iCalUID").is_some_and(Value::is_string) {
                json.insert("iCalUID".into(), json!(format!("{}@google.com", fields.id)));
            }
        }
    }
    if !json.get("sequence").is_some_and(Value::is_i64) {
        json.insert("sequence".into(), keep("sequence").unwrap_or(json!(0)));
    }
    let me = if fields.primary {
        json!({"email": fields.owner, "self": true})
    } else {
        json!({"email": fields.calendar_id, "displayName": fields.calendar_summary, "self": true})
    };
    json.insert(
        "creator".into(),
        keep("creator").unwrap_or(json!({"email": fields.owner, "self": true})),
    );
    if !json.contains_key("organizer") {
        json.insert("organizer".into(), keep("organizer").unwrap_or(me));
    }
    if !json.contains_key("reminders") {
        json.insert("reminders".into(), json!({"useDefault": true}));
    }
    if !json.contains_key("eventType") {
        json.insert("eventType".into(), json!("default"));
    }
    if let Some(Value::Array(attendees)) = json.get_mut("attendees") {
        for attendee in attendees.iter_mut().filter_map(Value::as_object_mut) {
            let is_owner = attendee
                .get("email")
                .and_then(Value::as_str)
                .is_some_and(|email| email.eq_ignore_ascii_case(fields.calendar_id));
            if is_owner {
                attendee.insert("self".into(), json!(true));
            }
            if !attendee.contains_key("responseStatus") {
                attendee.insert("responseStatus".into(), json!("needsAction"));
            }
        }
    }
    if let Some((exception, _, original_at)) = &fields.exception {
        json.remove("recurrence");
        json.insert("recurringEventId".into(), json!(exception.master_id));
        json.insert(
            "originalStartTime".into(),
            time_json(&exception.original, *original_at),
        );
    }
}

/// Whether `q` occurs in the summary, description or location (any case).
pub(crate) fn matches_text(json: &Map<String, Value>, q: &str) -> bool {
    let q = q.to_lowercase();
    ["summary", "description", "location"].iter().any(|field| {
        json.get(*field)
            .and_then(Value::as_str)
            .is_some_and(|text| text.to_lowercase().contains(&q))
    })
}

/// The value of an extended property (`kind` is `private` or `shared`).
pub(crate) fn extended_property<'a>(
    json: &'a Map<String, Value>,
    kind: &str,
    name: &str,
) -> Option<&'a str> {
    json.get("extendedProperties")?
        .get(kind)?
        .get(name)?
        .as_str()
}

/// Whether the calendar's owner declined the event.
pub(crate) fn declined_by(json: &Map<String, Value>, email: &str) -> bool {
    json.get("attendees")
        .and_then(Value::as_array)
        .is_some_and(|attendees| {
            attendees.iter().any(|attendee| {
                let is_owner = attendee.get("self").and_then(Value::as_bool) == Some(true)
                    || attendee
                        .get("email")
                        .and_then(Value::as_str)
                        .is_some_and(|address| address.eq_ignore_ascii_case(email));
                is_owner
                    && attendee.get("responseStatus").and_then(Value::as_str) == Some("declined")
            })
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn client_ids() {
        assert!(check_client_id("abcde").is_ok());
        assert!(check_client_id("0123456789abcdefghijklmnopqrstuv").is_ok());
        assert!(check_client_id("abcd").is_err());
        assert!(check_client_id("abcdw").is_err());
        assert!(check_client_id("ABCDE").is_err());
        assert!(check_client_id(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn extended_property_limits() {
        let long_key = "k".repeat(45);
        let long_value = "v".repeat(2000);
        let mut json = object(json!({"extendedProperties": {"private": {
            long_key.clone(): "x", "ok": long_value, "gone": null
        }}}));
        limit_extended_properties(&mut json).unwrap();
        let private = &json["extendedProperties"]["private"];
        assert!(private.get(&long_key).is_none());
        assert!(private.get("gone").is_none());
        assert_eq!(private["ok"].as_str().unwrap().len(), 1024);
        let many: Map<String, Value> = (0..301).map(|i| (format!("k{i}"), json!("v"))).collect();
        let mut json = object(json!({"extendedProperties": {"shared": many}}));
        assert!(limit_extended_properties(&mut json).is_err());
    }

    #[test]
    fn patch_merges_and_deletes() {
        let mut target = object(json!({
            "summary": "a",
            "start": {"dateTime": "2025-01-01T10:00:00Z", "timeZone": "UTC"},
            "extendedProperties": {"private": {"a": "1", "b": "2"}}
        }));
        let patch = object(json!({
            "start": {"date": "2025-01-02"},
            "extendedProperties": {"private": {"a": null, "c": "3"}}
        }));
        merge_patch(&mut target, &patch);
        assert_eq!(target["start"], json!({"date": "2025-01-02"}));
        assert_eq!(
            target["extendedProperties"]["private"],
            json!({"b": "2", "c": "3"})
        );
        assert_eq!(target["summary"], "a");
    }

    #[test]
    fn times_need_a_zone_when_recurring() {
        let json = object(json!({
            "start": {"dateTime": "2025-01-01T10:00:00Z"},
            "end": {"dateTime": "2025-01-01T11:00:00Z"}
        }));
        assert!(parse_times(&json, false).is_ok());
        let error = parse_times(&json, true).unwrap_err();
        assert_eq!(
            error.message,
            "Missing time zone definition for start time."
        );
        let json = object(json!({
            "start": {"dateTime": "2025-01-01T10:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2025-01-01T11:00:00", "timeZone": "Europe/Berlin"}
        }));
        let times = parse_times(&json, true).unwrap();
        assert_eq!(
            times.start_at(Tz::UTC).to_rfc3339(),
            "2025-01-01T09:00:00+00:00"
        );
    }
}

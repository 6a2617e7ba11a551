//! Event handlers: list, get, insert, update (PUT), patch, delete,
//! instances; the write rules for exceptions of recurring series.

use super::GoogleEmulator;
use super::error::ApiError;
use super::listing::{Params, list_events, list_instances};
use super::recurrence::{InstanceKey, Occurrence, Series, parse_instance_id};
use super::resource::{
    ServerFields, check_client_id, limit_extended_properties, merge_patch, overlay_server_fields,
    parse_object, parse_times, recurrence_lines, render, render_instance,
};
use super::state::{Calendar, ExceptionOf, State, StoredEvent, timestamp};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// What an event id in a path names.
enum Target {
    /// A stored event (single, master, exception; live or deleted).
    Stored(String),
    /// An instance of a live series that has no exception yet.
    Instance {
        master_id: String,
        occurrence: Occurrence,
    },
}

fn resolve(calendar: &Calendar, event_id: &str) -> Result<Target, ApiError> {
    if calendar.events.contains_key(event_id) {
        return Ok(Target::Stored(event_id.to_string()));
    }
    let (master_id, key) = parse_instance_id(event_id).ok_or_else(ApiError::not_found)?;
    let master = calendar
        .events
        .get(master_id)
        .ok_or_else(ApiError::not_found)?;
    if master.deleted {
        return Err(ApiError::deleted());
    }
    let occurrence = master
        .series
        .as_ref()
        .and_then(|series| series.occurrence(key))
        .ok_or_else(ApiError::not_found)?;
    Ok(Target::Instance {
        master_id: master_id.to_string(),
        occurrence,
    })
}

/// The calendar a request may use, after authentication.
fn authorized(
    state: &mut State,
    headers: &HeaderMap,
    calendar: &str,
) -> Result<(String, String), ApiError> {
    let email = state.authenticate(headers)?;
    let calendar_id = state.calendar_id(&email, calendar)?;
    Ok((email, calendar_id))
}

fn calendar<'a>(state: &'a State, calendar_id: &str) -> Result<&'a Calendar, ApiError> {
    state
        .calendars
        .get(calendar_id)
        .ok_or_else(ApiError::not_found)
}

/// A resource answer with its `ETag` header.
fn resource_response(body: Value) -> Response {
    let etag = body
        .get("etag")
        .and_then(Value::as_str)
        .and_then(|etag| HeaderValue::from_str(etag).ok());
    let mut response = Json(body).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn if_match(headers: &HeaderMap, current: &str) -> Result<(), ApiError> {
    match headers
        .get(header::IF_MATCH)
        .and_then(|value| value.to_str().ok())
    {
        None => Ok(()),
        Some(wanted) if wanted.trim() == "*" || wanted.trim() == current => Ok(()),
        Some(_) => Err(ApiError::condition_not_met()),
    }
}

/// `GET .../events`
pub(crate) async fn list(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path(calendar): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    emulator.with(|state| {
        let (email, calendar_id) = authorized(state, &headers, &calendar)?;
        list_events(state, &email, &calendar_id, &params).map(|body| Json(body).into_response())
    })
}

/// `GET .../events/{eventId}/instances`
pub(crate) async fn instances(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path((calendar, event_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    emulator.with(|state| {
        let (email, calendar_id) = authorized(state, &headers, &calendar)?;
        list_instances(state, &email, &calendar_id, &event_id, &params)
            .map(|body| Json(body).into_response())
    })
}

/// `GET .../events/{eventId}`
pub(crate) async fn get(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path((calendar, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    emulator.with(|state| {
        let (_, calendar_id) = authorized(state, &headers, &calendar)?;
        let calendar = self::calendar(state, &calendar_id)?;
        let body = match resolve(calendar, &event_id)? {
            Target::Stored(id) => calendar
                .events
                .get(&id)
                .map(|event| render(&id, event))
                .ok_or_else(ApiError::not_found)?,
            Target::Instance {
                master_id,
                occurrence,
            } => {
                let master = calendar
                    .events
                    .get(&master_id)
                    .ok_or_else(ApiError::not_found)?;
                Value::Object(render_instance(&master_id, master, &occurrence))
            }
        };
        let etag = body.get("etag").and_then(Value::as_str).unwrap_or_default();
        let unchanged = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|wanted| wanted.trim() == etag || wanted.trim() == "*");
        if unchanged {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        Ok(resource_response(body))
    })
}

/// `POST .../events`
pub(crate) async fn insert(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path(calendar): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_object(&body)?;
    emulator.with(|state| {
        let (email, calendar_id) = authorized(state, &headers, &calendar)?;
        let id = match body.get("id") {
            None | Some(Value::Null) => state.new_event_id(&calendar_id),
            Some(Value::String(id)) => {
                check_client_id(id)?;
                if self::calendar(state, &calendar_id)?.events.contains_key(id) {
                    return Err(ApiError::duplicate());
                }
                id.clone()
            }
            Some(_) => return Err(ApiError::invalid("Invalid resource id value.")),
        };
        let uid_taken = body
            .get("iCalUID")
            .and_then(Value::as_str)
            .is_some_and(|uid| {
                self::calendar(state, &calendar_id).is_ok_and(|calendar| calendar.uid_in_use(uid))
            });
        if uid_taken {
            return Err(ApiError::duplicate());
        }
        let event = build(state, &email, &calendar_id, &id, body, None, None)?;
        let out = store(state, &calendar_id, &id, event);
        Ok(resource_response(out))
    })
}

/// `PUT .../events/{eventId}`
pub(crate) async fn update(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path((calendar, event_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_object(&body)?;
    emulator.with(|state| write(state, &headers, &calendar, &event_id, |_| Ok(body)))
}

/// `PATCH .../events/{eventId}`
pub(crate) async fn patch(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path((calendar, event_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let patch = parse_object(&body)?;
    emulator.with(|state| {
        write(state, &headers, &calendar, &event_id, |current| {
            let mut merged = current.clone();
            merge_patch(&mut merged, &patch);
            Ok(merged)
        })
    })
}

/// Update or patch: `make` turns the current resource into the new one.
fn write(
    state: &mut State,
    headers: &HeaderMap,
    calendar: &str,
    event_id: &str,
    make: impl FnOnce(&Map<String, Value>) -> Result<Map<String, Value>, ApiError>,
) -> Result<Response, ApiError> {
    let (email, calendar_id) = authorized(state, headers, calendar)?;
    let cal = self::calendar(state, &calendar_id)?;
    let target = resolve(cal, event_id)?;
    let (current, link) = match &target {
        Target::Stored(id) => {
            let event = cal.events.get(id).ok_or_else(ApiError::not_found)?;
            (event.json.clone(), event.exception.clone())
        }
        Target::Instance {
            master_id,
            occurrence,
        } => {
            let master = cal.events.get(master_id).ok_or_else(ApiError::not_found)?;
            let json = render_instance(master_id, master, occurrence);
            let link = ExceptionOf {
                master_id: master_id.clone(),
                original: occurrence.original.clone(),
            };
            (json, Some(link))
        }
    };
    let current_etag = current
        .get("etag")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if_match(headers, &current_etag)?;
    let new_json = make(&current)?;
    let previous = match &target {
        Target::Stored(id) => cal.events.get(id).cloned(),
        Target::Instance { .. } => None,
    };
    let event = build(
        state,
        &email,
        &calendar_id,
        event_id,
        new_json,
        previous.as_ref(),
        link.as_ref(),
    )?;
    let out = store(state, &calendar_id, event_id, event);
    Ok(resource_response(out))
}

/// Builds the stored form of an event the client wrote.
fn build(
    state: &mut State,
    owner: &str,
    calendar_id: &str,
    id: &str,
    mut json: Map<String, Value>,
    previous: Option<&StoredEvent>,
    link: Option<&ExceptionOf>,
) -> Result<StoredEvent, ApiError> {
    limit_extended_properties(&mut json)?;
    match json.get("status") {
        None | Some(Value::Null) => {}
        Some(Value::String(status))
            if matches!(status.as_str(), "confirmed" | "tentative" | "cancelled") => {}
        Some(_) => return Err(ApiError::invalid("Invalid value for: status").at("field", "status")),
    }
    if link.is_some() {
        json.remove("recurrence");
    }
    let lines = recurrence_lines(&json)?;
    let times = parse_times(&json, !lines.is_empty())?;
    let series = if lines.is_empty() {
        None
    } else {
        Series::parse(&lines, &times.start, &times.end)
            .map_err(|error| ApiError::invalid(format!("Invalid recurrence rule: {}", error.0)))?
    };
    let etag = state.next_etag();
    let now = state.now();
    let cal = self::calendar(state, calendar_id)?;
    let master = match link {
        Some(link) => Some(
            cal.events
                .get(&link.master_id)
                .ok_or_else(ApiError::not_found)?,
        ),
        None => None,
    };
    let original_at = link.map(|link| link.original.to_utc(chrono_tz::Tz::UTC));
    let fields = ServerFields {
        id,
        calendar_id,
        calendar_summary: &cal.summary,
        owner,
        primary: cal.primary,
        etag,
        now,
        previous,
        exception: match (link, master, original_at) {
            (Some(link), Some(master), Some(at)) => Some((link, master, at)),
            _ => None,
        },
    };
    overlay_server_fields(&mut json, &fields);
    let deleted = json.get("status").and_then(Value::as_str) == Some("cancelled");
    Ok(StoredEvent {
        json,
        seq: 0,
        updated: now,
        deleted,
        times,
        series,
        exception: link.cloned(),
    })
}

/// Stores a written event, keeps the series' exceptions consistent,
/// notifies channels, and returns the resource as served.
fn store(state: &mut State, calendar_id: &str, id: &str, event: StoredEvent) -> Value {
    let now = event.updated;
    let may_have_exceptions = event.exception.is_none();
    let out = render(id, &event);
    if let Some(calendar) = state.calendars.get_mut(calendar_id) {
        calendar.put(id.to_string(), event, now);
    }
    if may_have_exceptions {
        reconcile_exceptions(state, calendar_id, id, now);
    }
    state.notify_change(calendar_id);
    out
}

/// After a master changed: a deleted series takes its exceptions with it;
/// otherwise exceptions whose original start is no longer an instance of
/// the series become cancelled (so incremental clients drop them), and the
/// others are kept.
fn reconcile_exceptions(state: &mut State, calendar_id: &str, master_id: &str, now: DateTime<Utc>) {
    let Some(calendar) = state.calendars.get(calendar_id) else {
        return;
    };
    let Some(master) = calendar.events.get(master_id) else {
        return;
    };
    let mut forget = Vec::new();
    let mut cancel = Vec::new();
    for exception_id in calendar.exception_ids(master_id) {
        let Some(exception) = calendar.events.get(&exception_id) else {
            continue;
        };
        if master.deleted {
            forget.push(exception_id);
            continue;
        }
        let still_instance = match (&master.series, &exception.exception) {
            (Some(series), Some(link)) => {
                series.occurrence(InstanceKey::of(&link.original)).is_some()
            }
            _ => false,
        };
        if !still_instance && !exception.deleted {
            cancel.push(exception_id);
        }
    }
    let etags: Vec<String> = cancel.iter().map(|_| state.next_etag()).collect();
    let Some(calendar) = state.calendars.get_mut(calendar_id) else {
        return;
    };
    for exception_id in forget {
        calendar.forget(&exception_id);
    }
    for (exception_id, etag) in cancel.into_iter().zip(etags) {
        let Some(mut cancelled) = calendar.events.get(&exception_id).cloned() else {
            continue;
        };
        cancelled.deleted = true;
        cancelled.updated = now;
        cancelled.json.insert("status".into(), json!("cancelled"));
        cancelled
            .json
            .insert("updated".into(), json!(timestamp(now)));
        cancelled.json.insert("etag".into(), json!(etag));
        calendar.put(exception_id, cancelled, now);
    }
}

/// `DELETE .../events/{eventId}`
pub(crate) async fn delete(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path((calendar, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    emulator.with(|state| {
        let (email, calendar_id) = authorized(state, &headers, &calendar)?;
        let cal = self::calendar(state, &calendar_id)?;
        let event = match resolve(cal, &event_id)? {
            Target::Stored(id) => {
                let event = cal.events.get(&id).ok_or_else(ApiError::not_found)?;
                if event.deleted {
                    return Err(ApiError::deleted());
                }
                if_match(&headers, event.etag())?;
                let mut event = event.clone();
                event.json.insert("status".into(), json!("cancelled"));
                event
            }
            Target::Instance {
                master_id,
                occurrence,
            } => {
                let master = cal.events.get(&master_id).ok_or_else(ApiError::not_found)?;
                if_match(&headers, master.etag())?;
                let mut json = render_instance(&master_id, master, &occurrence);
                json.insert("status".into(), json!("cancelled"));
                let link = ExceptionOf {
                    master_id,
                    original: occurrence.original.clone(),
                };
                return {
                    let event = build(
                        state,
                        &email,
                        &calendar_id,
                        &event_id,
                        json,
                        None,
                        Some(&link),
                    )?;
                    store(state, &calendar_id, &event_id, event);
                    Ok(StatusCode::NO_CONTENT.into_response())
                };
            }
        };
        let now = state.now();
        let etag = state.next_etag();
        let mut event = event;
        event.deleted = true;
        event.updated = now;
        event.json.insert("etag".into(), json!(etag));
        event.json.insert("updated".into(), json!(timestamp(now)));
        store(state, &calendar_id, &event_id, event);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

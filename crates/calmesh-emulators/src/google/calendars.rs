//! `calendarList`, `calendars.insert`/`get` and `freebusy.query`.

use super::GoogleEmulator;
use super::error::ApiError;
use super::listing::{Params, page_faults};
use super::recurrence::InstanceKey;
use super::resource::{declined_by, parse_object};
use super::state::{Calendar, State, timestamp};
use super::tokens::{PageToken, SyncToken};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

/// A calendar as `calendarList` shows it to its owner.
fn list_entry(calendar: &Calendar) -> Value {
    let mut entry = json!({
        "kind": "calendar#calendarListEntry",
        "etag": calendar.etag,
        "id": calendar.id,
        "summary": calendar.summary,
        "timeZone": calendar.time_zone,
        "colorId": "14",
        "backgroundColor": "#9fe1e7",
        "foregroundColor": "#000000",
        "selected": true,
        "accessRole": "owner",
        "defaultReminders": [],
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    });
    if let Some(map) = entry.as_object_mut() {
        if calendar.primary {
            map.insert("primary".into(), json!(true));
        }
        if let Some(description) = &calendar.description {
            map.insert("description".into(), json!(description));
        }
    }
    entry
}

/// A calendar as `calendars.get` shows it.
fn calendar_resource(calendar: &Calendar) -> Value {
    let mut resource = json!({
        "kind": "calendar#calendar",
        "etag": calendar.etag,
        "id": calendar.id,
        "summary": calendar.summary,
        "timeZone": calendar.time_zone,
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    });
    if let (Some(description), Some(map)) = (&calendar.description, resource.as_object_mut()) {
        map.insert("description".into(), json!(description));
    }
    resource
}

/// `GET /calendar/v3/users/me/calendarList`
pub(crate) async fn calendar_list(
    AxumState(emulator): AxumState<GoogleEmulator>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    emulator.with(|state| {
        let email = state.authenticate(&headers)?;
        list_calendars(state, &email, &params).map(|body| Json(body).into_response())
    })
}

fn list_calendars(state: &mut State, email: &str, params: &Params) -> Result<Value, ApiError> {
    let sync_token = params.get("syncToken");
    if sync_token.is_some() && params.has("minAccessRole") {
        return Err(ApiError::invalid_parameter(
            "minAccessRole",
            "The parameter minAccessRole cannot be used together with syncToken.",
        ));
    }
    if let Some(role) = params.get("minAccessRole")
        && !matches!(role, "freeBusyReader" | "reader" | "writer" | "owner")
    {
        return Err(ApiError::invalid_parameter(
            "minAccessRole",
            format!("Invalid value for minAccessRole: '{role}'."),
        ));
    }
    let asked = params.max_results(100, 250)?;
    let fingerprint = params.fingerprint(&format!("calendarList|{email}"));
    let page_token = match params.get("pageToken") {
        None => None,
        Some(text) => Some(
            PageToken::decode(text)
                .filter(|token| token.fingerprint == fingerprint)
                .ok_or_else(|| ApiError::invalid_parameter("pageToken", "Invalid page token."))?,
        ),
    };
    let (size, _) = page_faults(state, email, asked);
    let account = state.accounts.get(email).ok_or_else(ApiError::auth)?;
    let since = match sync_token {
        None => None,
        Some(text) => {
            let token = SyncToken::decode(text, &state.secret)
                .filter(|token| {
                    token.scope == 'l'
                        && token.owner == email
                        && token.counter <= account.list_counter
                        && token.epoch >= state.sync_epoch
                })
                .ok_or_else(ApiError::full_sync_required)?;
            Some(token.counter)
        }
    };
    let snapshot = page_token
        .as_ref()
        .map_or(account.list_counter, |token| token.snapshot);
    let mut rows: Vec<((i64, String), &Calendar)> = account
        .calendars
        .iter()
        .enumerate()
        .filter_map(|(idx, id)| state.calendars.get(id).map(|calendar| (idx, calendar)))
        .filter(|(_, calendar)| since.is_none_or(|since| calendar.list_seq > since))
        .map(|(idx, calendar)| {
            let number = i64::try_from(idx).unwrap_or(i64::MAX);
            ((number, calendar.id.clone()), calendar)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let start = match page_token.as_ref().and_then(|token| token.cursor.as_ref()) {
        Some(cursor) => rows.partition_point(|(key, _)| key <= cursor),
        None => 0,
    };
    let remaining = rows.len().saturating_sub(start);
    let page: Vec<&((i64, String), &Calendar)> = rows.iter().skip(start).take(size).collect();
    let mut out = Map::new();
    out.insert("kind".into(), json!("calendar#calendarList"));
    out.insert(
        "etag".into(),
        json!(format!("\"p{}\"", account.list_counter)),
    );
    out.insert(
        "items".into(),
        Value::Array(
            page.iter()
                .map(|(_, calendar)| list_entry(calendar))
                .collect(),
        ),
    );
    if remaining > size {
        let next = PageToken {
            fingerprint,
            snapshot,
            cursor: page.last().map(|(key, _)| key.clone()),
            after_empty: false,
        };
        out.insert("nextPageToken".into(), json!(next.encode()));
    } else {
        let token = SyncToken {
            scope: 'l',
            owner: email.to_string(),
            counter: snapshot,
            issued_at: state.now().timestamp_millis(),
            epoch: state.sync_epoch,
            window: None,
        };
        out.insert("nextSyncToken".into(), json!(token.encode(&state.secret)));
    }
    Ok(Value::Object(out))
}

/// A calendar the bearer of the request's token owns (`primary` allowed).
fn callers_calendar<'s>(
    state: &'s State,
    headers: &HeaderMap,
    calendar: &str,
) -> Result<&'s Calendar, ApiError> {
    let email = state.authenticate(headers)?;
    let calendar_id = state.calendar_id(&email, calendar)?;
    state
        .calendars
        .get(&calendar_id)
        .ok_or_else(ApiError::not_found)
}

/// `GET /calendar/v3/users/me/calendarList/{calendarId}`
pub(crate) async fn calendar_list_get(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path(calendar): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    emulator.with(|state| {
        let calendar = callers_calendar(state, &headers, &calendar)?;
        Ok(Json(list_entry(calendar)).into_response())
    })
}

/// `GET /calendar/v3/calendars/{calendarId}`
pub(crate) async fn calendar_get(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path(calendar): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    emulator.with(|state| {
        let calendar = callers_calendar(state, &headers, &calendar)?;
        Ok(Json(calendar_resource(calendar)).into_response())
    })
}

/// `POST /calendar/v3/calendars`: a secondary calendar owned by the caller.
pub(crate) async fn calendar_insert(
    AxumState(emulator): AxumState<GoogleEmulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_object(&body)?;
    emulator.with(|state| {
        let email = state.authenticate(&headers)?;
        let summary = body
            .get("summary")
            .and_then(Value::as_str)
            .filter(|summary| !summary.trim().is_empty())
            .ok_or_else(|| ApiError::required("Missing title."))?
            .to_string();
        let primary_zone = state
            .accounts
            .get(&email)
            .and_then(|account| account.calendars.first())
            .and_then(|id| state.calendars.get(id))
            .map_or_else(|| "UTC".to_string(), |calendar| calendar.time_zone.clone());
        let time_zone = body
            .get("timeZone")
            .and_then(Value::as_str)
            .map_or(primary_zone, str::to_string);
        let tz: Tz = time_zone
            .parse()
            .map_err(|_| ApiError::invalid("Invalid time zone.").at("field", "timeZone"))?;
        let description = body
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string);
        let id = format!(
            "{}@group.calendar.google.com",
            state.random_string(super::state::BASE32HEX, 26)
        );
        let calendar = state
            .add_calendar(&email, id, summary, description, &time_zone, tz, false)
            .ok_or_else(ApiError::auth)?;
        Ok(Json(calendar_resource(calendar)).into_response())
    })
}

/// `POST /calendar/v3/freeBusy`
pub(crate) async fn free_busy(
    AxumState(emulator): AxumState<GoogleEmulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_object(&body)?;
    emulator.with(|state| {
        let email = state.authenticate(&headers)?;
        query_free_busy(state, &email, &body).map(|body| Json(body).into_response())
    })
}

fn query_free_busy(
    state: &State,
    email: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let time = |name: &str| -> Result<DateTime<Utc>, ApiError> {
        let text = body.get(name).and_then(Value::as_str).ok_or_else(|| {
            ApiError::required(format!("Missing {name}.")).at("field", name.to_string())
        })?;
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::invalid(format!("Invalid value for: {name}"))
                    .at("field", name.to_string())
            })
    };
    let from = time("timeMin")?;
    let to = time("timeMax")?;
    if from >= to {
        return Err(ApiError::time_range_empty("timeMax"));
    }
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items.len() > 50 {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "calendar",
            "tooManyCalendarsRequested",
            "The number of calendars requested is too large.",
        ));
    }
    let mut calendars = Map::new();
    for item in &items {
        let Some(requested) = item.get("id").and_then(Value::as_str) else {
            continue;
        };
        let entry = match state
            .calendar_id(email, requested)
            .ok()
            .and_then(|id| state.calendars.get(&id))
        {
            Some(calendar) => {
                let busy: Vec<Value> = busy_blocks(state, calendar, from, to)
                    .into_iter()
                    .map(|(start, end)| json!({"start": utc(start), "end": utc(end)}))
                    .collect();
                json!({"busy": busy})
            }
            None => json!({
                "errors": [{"domain": "global", "reason": "notFound"}],
                "busy": [],
            }),
        };
        calendars.insert(requested.to_string(), entry);
    }
    Ok(json!({
        "kind": "calendar#freeBusy",
        "timeMin": timestamp(from),
        "timeMax": timestamp(to),
        "calendars": calendars,
    }))
}

fn utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Busy intervals of a calendar inside `[from, to)`, merged: opaque,
/// not cancelled, not declined by the owner.
fn busy_blocks(
    state: &State,
    calendar: &Calendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let fz = calendar.tz;
    let mut blocks = Vec::new();
    for (id, event) in &calendar.events {
        let transparent = event.str_field("transparency") == Some("transparent");
        if event.deleted || transparent || declined_by(&event.json, &calendar.id) {
            continue;
        }
        match &event.series {
            Some(series) => {
                for occurrence in
                    series.occurrences(from, to, fz, state.config.max_instances_per_series)
                {
                    if !calendar.has_exception(id, InstanceKey::of(&occurrence.original)) {
                        blocks.push((occurrence.start_at, occurrence.end_at));
                    }
                }
            }
            None => {
                if event.times.overlaps(from, to, fz) {
                    blocks.push((event.times.start_at(fz), event.times.end_at(fz)));
                }
            }
        }
    }
    let mut clipped: Vec<(DateTime<Utc>, DateTime<Utc>)> = blocks
        .into_iter()
        .map(|(start, end)| (start.max(from), end.min(to)))
        .filter(|(start, end)| start < end)
        .collect();
    clipped.sort();
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (start, end) in clipped {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

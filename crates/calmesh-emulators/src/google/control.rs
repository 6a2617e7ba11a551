//! The control API under `/_emulator` (no authentication): accounts,
//! revocation, fault knobs, counters, channels, and a raw view of stored
//! events as a test oracle. Documented in `docs/emulators.md`.

use super::GoogleEmulator;
use super::faults::{Stats, apply_faults};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn object(body: &Bytes) -> Option<Map<String, Value>> {
    if body.is_empty() {
        return Some(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn not_an_object() -> Response {
    error(StatusCode::BAD_REQUEST, "the body must be a JSON object")
}

/// `POST /_emulator/accounts {"email", "time_zone"?}`
pub(crate) async fn create_account(
    AxumState(emulator): AxumState<GoogleEmulator>,
    body: Bytes,
) -> Response {
    let Some(body) = object(&body) else {
        return not_an_object();
    };
    let Some(email) = body
        .get("email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|email| email.contains('@') && !email.contains(['/', ' ']))
    else {
        return error(StatusCode::BAD_REQUEST, "email must be an e-mail address");
    };
    let time_zone = body.get("time_zone").and_then(Value::as_str);
    emulator.with(|state| match state.create_account(email, time_zone) {
        Ok(refresh_token) => {
            let (access_token, _) = state.issue_access_token(email);
            Json(json!({
                "email": email,
                "refresh_token": refresh_token,
                "client_id": state.config.client_id,
                "client_secret": state.config.client_secret,
                "access_token": access_token,
                "calendar_id": email,
            }))
            .into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    })
}

/// `GET /_emulator/accounts`
pub(crate) async fn list_accounts(AxumState(emulator): AxumState<GoogleEmulator>) -> Response {
    emulator.with(|state| {
        let accounts: Vec<Value> = state
            .account_order
            .iter()
            .filter_map(|email| state.accounts.get(email))
            .map(|account| json!({"email": account.email, "calendars": account.calendars}))
            .collect();
        Json(json!({"accounts": accounts})).into_response()
    })
}

/// `POST /_emulator/accounts/{email}/revoke`
pub(crate) async fn revoke(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path(email): Path<String>,
) -> Response {
    emulator.with(|state| {
        if state.revoke(&email) {
            Json(json!({"email": email, "revoked": true})).into_response()
        } else {
            error(StatusCode::NOT_FOUND, format!("no account {email}"))
        }
    })
}

/// `GET /_emulator/faults`
pub(crate) async fn get_faults(AxumState(emulator): AxumState<GoogleEmulator>) -> Response {
    emulator.with(|state| Json(json!(state.faults)).into_response())
}

/// `POST /_emulator/faults`
pub(crate) async fn set_faults(
    AxumState(emulator): AxumState<GoogleEmulator>,
    body: Bytes,
) -> Response {
    let Some(body) = object(&body) else {
        return not_an_object();
    };
    emulator.with(|state| match apply_faults(state, &body) {
        Ok(()) => Json(json!(state.faults)).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    })
}

/// `GET /_emulator/stats`
pub(crate) async fn get_stats(AxumState(emulator): AxumState<GoogleEmulator>) -> Response {
    emulator.with(|state| Json(json!(state.stats)).into_response())
}

/// `POST /_emulator/stats/reset`
pub(crate) async fn reset_stats(AxumState(emulator): AxumState<GoogleEmulator>) -> Response {
    emulator.with(|state| {
        state.stats = Stats::default();
        Json(json!(state.stats)).into_response()
    })
}

/// `GET /_emulator/channels`
pub(crate) async fn list_channels(AxumState(emulator): AxumState<GoogleEmulator>) -> Response {
    emulator.with(|state| {
        let mut channels: Vec<Value> = state
            .channels
            .values()
            .map(|channel| channel.describe())
            .collect();
        channels.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        Json(json!({"channels": channels})).into_response()
    })
}

/// `GET /_emulator/calendars/{calendarId}/events`: every stored event,
/// tombstones included, exactly as stored.
pub(crate) async fn raw_events(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path(calendar_id): Path<String>,
) -> Response {
    emulator.with(|state| match state.calendars.get(&calendar_id) {
        Some(calendar) => {
            let items: Vec<Value> = calendar
                .events
                .values()
                .map(|event| Value::Object(event.json.clone()))
                .collect();
            Json(json!({
                "calendarId": calendar.id,
                "owner": calendar.owner,
                "changeCounter": calendar.counter,
                "items": items,
            }))
            .into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("no calendar {calendar_id}")),
    })
}

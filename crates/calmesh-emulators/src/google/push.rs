//! Push channels (providers.md A.5): `events.watch`, `channels.stop`, and
//! the delivery of `sync` and `exists` messages to the registered address.

use super::GoogleEmulator;
use super::error::ApiError;
use super::resource::parse_object;
use super::state::State;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// One watch channel on a calendar's events.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub id: String,
    pub resource_id: String,
    pub resource_uri: String,
    pub calendar_id: String,
    pub owner: String,
    pub address: String,
    pub token: Option<String>,
    pub expiration: DateTime<Utc>,
    /// The number of the last message queued.
    pub message_number: u64,
    sender: UnboundedSender<Delivery>,
}

impl Channel {
    /// Queues a message for delivery.
    pub fn send(&self, resource_state: &'static str, message_number: u64) {
        let _ = self.sender.send(Delivery {
            resource_state,
            message_number,
        });
    }

    /// The channel as the control API lists it.
    pub fn describe(&self) -> Value {
        json!({
            "id": self.id,
            "resourceId": self.resource_id,
            "resourceUri": self.resource_uri,
            "calendarId": self.calendar_id,
            "account": self.owner,
            "address": self.address,
            "token": self.token,
            "expiration": self.expiration.timestamp_millis().to_string(),
            "lastMessageNumber": self.message_number,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Delivery {
    resource_state: &'static str,
    message_number: u64,
}

/// `POST /calendar/v3/calendars/{calendarId}/events/watch`
pub(crate) async fn watch(
    AxumState(emulator): AxumState<GoogleEmulator>,
    Path(calendar): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_object(&body)?;
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let (response, channel_id, resource_id, receiver) =
        emulator.with(|state| create_channel(state, &headers, &calendar, &body, &host))?;
    tokio::spawn(deliver(
        emulator.downgrade(),
        channel_id,
        resource_id,
        receiver,
    ));
    Ok(Json(response).into_response())
}

type Created = (Value, String, String, UnboundedReceiver<Delivery>);

fn create_channel(
    state: &mut State,
    headers: &HeaderMap,
    calendar: &str,
    body: &serde_json::Map<String, Value>,
    host: &str,
) -> Result<Created, ApiError> {
    let email = state.authenticate(headers)?;
    let calendar_id = state.calendar_id(&email, calendar)?;
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
    let id = text("id").ok_or_else(|| ApiError::required("Missing channel id."))?;
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::invalid("Channel id must be 1 to 64 characters."));
    }
    match text("type").as_deref() {
        Some("web_hook" | "webhook") => {}
        Some(_) => return Err(ApiError::invalid("Unknown channel type.")),
        None => return Err(ApiError::required("Missing channel type.")),
    }
    let address = text("address").ok_or_else(|| ApiError::required("Missing address."))?;
    match url::Url::parse(&address) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => return Err(ApiError::invalid("Invalid address.")),
    }
    let token = text("token");
    if token.as_ref().is_some_and(|token| token.len() > 256) {
        return Err(ApiError::invalid(
            "Channel token must be at most 256 characters.",
        ));
    }
    let now = state.now();
    state.channels.retain(|_, channel| channel.expiration > now);
    if state.channels.contains_key(&id) {
        return Err(ApiError::invalid(format!("Channel id {id} not unique")).at("parameter", "id"));
    }
    let expiration = expiration(state, body, now)?;
    let Some(calendar) = state.calendars.get(&calendar_id) else {
        return Err(ApiError::not_found());
    };
    let resource_id = calendar.resource_id.clone();
    let resource_uri = format!(
        "http://{host}/calendar/v3/calendars/{}/events?alt=json",
        url::form_urlencoded::byte_serialize(calendar_id.as_bytes()).collect::<String>()
    );
    let (sender, receiver) = unbounded_channel();
    let channel = Channel {
        id: id.clone(),
        resource_id: resource_id.clone(),
        resource_uri: resource_uri.clone(),
        calendar_id,
        owner: email,
        address,
        token: token.clone(),
        expiration,
        message_number: 1,
        sender,
    };
    channel.send("sync", 1);
    state.channels.insert(id.clone(), channel);
    let mut response = json!({
        "kind": "api#channel",
        "id": id,
        "resourceId": resource_id,
        "resourceUri": resource_uri,
        "expiration": expiration.timestamp_millis().to_string(),
    });
    if let (Some(token), Some(map)) = (token, response.as_object_mut()) {
        map.insert("token".into(), json!(token));
    }
    Ok((response, id, resource_id, receiver))
}

/// The more restrictive of the requested expiry (`expiration` in ms,
/// `params.ttl` in seconds) and the configured cap; the default TTL when
/// none is asked for.
fn expiration(
    state: &State,
    body: &serde_json::Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    let integer = |value: &Value| -> Option<i64> {
        value
            .as_i64()
            .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
    };
    let mut requested: Option<DateTime<Utc>> = None;
    if let Some(value) = body.get("expiration").filter(|value| !value.is_null()) {
        let ms = integer(value).ok_or_else(|| ApiError::invalid("Invalid expiration."))?;
        let at = DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| ApiError::invalid("Invalid expiration."))?;
        requested = Some(at);
    }
    if let Some(value) = body.get("params").and_then(|params| params.get("ttl")) {
        let secs = integer(value).ok_or_else(|| ApiError::invalid("Invalid ttl."))?;
        let at = now + Duration::seconds(secs);
        requested = Some(requested.map_or(at, |other| other.min(at)));
    }
    let config = &state.config;
    let cap = now + Duration::from_std(config.channel_max_ttl).unwrap_or(Duration::days(7));
    let default =
        now + Duration::from_std(config.channel_default_ttl).unwrap_or(Duration::hours(1));
    let chosen = requested.unwrap_or(default).min(cap);
    if chosen <= now {
        return Err(ApiError::invalid(
            "Invalid expiration: it lies in the past.",
        ));
    }
    Ok(chosen)
}

/// `POST /calendar/v3/channels/stop`
pub(crate) async fn stop(
    AxumState(emulator): AxumState<GoogleEmulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_object(&body)?;
    emulator.with(|state| {
        let email = state.authenticate(&headers)?;
        let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
        let resource_id = body.get("resourceId").and_then(Value::as_str);
        let now = state.now();
        let found = state.channels.get(id).is_some_and(|channel| {
            channel.owner == email
                && channel.expiration > now
                && resource_id.is_none_or(|resource_id| resource_id == channel.resource_id)
        });
        if !found {
            return Err(ApiError::not_found());
        }
        state.channels.remove(id);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// What one delivery needs to know about its channel.
struct Target {
    address: String,
    token: Option<String>,
    expiration: DateTime<Utc>,
    resource_uri: String,
}

/// Delivers a channel's messages in order until the channel is gone. Holds
/// the emulator only while a message is being delivered: once the emulator
/// is dropped, the channel's sender goes with it and this task ends.
async fn deliver(
    emulator: std::sync::Weak<super::Inner>,
    channel_id: String,
    resource_id: String,
    mut receiver: UnboundedReceiver<Delivery>,
) {
    while let Some(delivery) = receiver.recv().await {
        let Some(emulator) = GoogleEmulator::upgrade(&emulator) else {
            return;
        };
        let target = emulator.with(|state| {
            let now = state.now();
            let channel = state
                .channels
                .get(&channel_id)
                .filter(|channel| channel.resource_id == resource_id && channel.expiration > now)?;
            if state
                .faults
                .drop_notification(&mut state.rng, &channel.owner)
            {
                state.stats.notifications_dropped += 1;
                return None;
            }
            Some(Target {
                address: channel.address.clone(),
                token: channel.token.clone(),
                expiration: channel.expiration,
                resource_uri: channel.resource_uri.clone(),
            })
        });
        let Some(target) = target else {
            continue;
        };
        let outcome = post(&emulator, &channel_id, &resource_id, delivery, &target).await;
        emulator.with(|state| match outcome {
            Outcome::Delivered => state.stats.notifications_sent += 1,
            Outcome::Refused => {
                state.stats.notifications_sent += 1;
                state.stats.notifications_failed += 1;
            }
            Outcome::Unreachable => state.stats.notifications_failed += 1,
        });
    }
}

enum Outcome {
    /// The receiver answered with a success code.
    Delivered,
    /// The receiver answered, but not with success (after retries).
    Refused,
    /// No answer at all.
    Unreachable,
}

/// One message: `POST` with no body and the `X-Goog-*` headers, retried
/// with doubling delays on 500/502/503/504 and on transport errors.
async fn post(
    emulator: &GoogleEmulator,
    channel_id: &str,
    resource_id: &str,
    delivery: Delivery,
    target: &Target,
) -> Outcome {
    let Some(client) = emulator.http_client() else {
        return Outcome::Unreachable;
    };
    let (retries, mut delay) = emulator.with(|state| {
        (
            state.config.notification_retries,
            state.config.notification_retry_delay,
        )
    });
    let expiration = target
        .expiration
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let mut outcome = Outcome::Unreachable;
    for attempt in 0..=retries {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        let mut request = client
            .post(&target.address)
            .header("X-Goog-Channel-ID", channel_id)
            .header("X-Goog-Message-Number", delivery.message_number.to_string())
            .header("X-Goog-Resource-ID", resource_id)
            .header("X-Goog-Resource-State", delivery.resource_state)
            .header("X-Goog-Resource-URI", &target.resource_uri)
            .header("X-Goog-Channel-Expiration", &expiration)
            .header(reqwest::header::USER_AGENT, "APIs-Google")
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .body(Vec::<u8>::new());
        if let Some(token) = &target.token {
            request = request.header("X-Goog-Channel-Token", token);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                if matches!(status, 200 | 201 | 202 | 204 | 102) {
                    return Outcome::Delivered;
                }
                outcome = Outcome::Refused;
                if !matches!(status, 500 | 502 | 503 | 504) {
                    return outcome;
                }
            }
            Err(error) => {
                tracing::debug!(%error, channel_id, "push delivery failed");
            }
        }
    }
    outcome
}

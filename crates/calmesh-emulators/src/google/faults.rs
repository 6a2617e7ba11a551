//! Fault knobs, request counters, and the middleware that applies both to
//! the API and token routes.

use super::GoogleEmulator;
use super::error::ApiError;
use super::serve::ConnectionKill;
use super::state::State;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State as AxumState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Injected 403/429 rate-limit errors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RateLimit {
    pub probability: f64,
    pub status: u16,
    pub reason: String,
    pub account: Option<String>,
    pub target: Target,
}

/// Injected 5xx errors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ServerError {
    pub probability: f64,
    pub status: u16,
    pub account: Option<String>,
    pub target: Target,
}

/// Which requests an error knob hits, and what its answer adds. Google
/// sends no `Retry-After` on Calendar errors; `retry_after_secs` stands in
/// for providers that do (Graph, Notion), to test how a client honours it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Target {
    /// Only requests whose path, query or body contains this text (one
    /// event's id, or a time only its writes carry): an item-level fault.
    pub matching: Option<String>,
    /// A `Retry-After: N` header on the answer.
    pub retry_after_secs: Option<u64>,
}

impl Target {
    fn hits(&self, request_text: Option<&str>) -> bool {
        match &self.matching {
            None => true,
            Some(text) => request_text.is_some_and(|t| t.contains(text.as_str())),
        }
    }
}

/// A fault that happens with some probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Chance {
    pub probability: f64,
    pub account: Option<String>,
}

/// Every fault knob that stays set until changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Faults {
    pub rate_limit: Option<RateLimit>,
    pub server_error: Option<ServerError>,
    pub latency_ms: Option<u64>,
    pub drop_connection: Option<Chance>,
    pub max_page_size: Option<usize>,
    pub empty_page_probability: Option<f64>,
    pub sync_token_max_age_secs: Option<u64>,
    pub drop_notifications: Option<Chance>,
    pub seed: Option<u64>,
    pub token_endpoint: bool,
    pub account: Option<String>,
}

/// Request and delivery counters.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Stats {
    pub total: u64,
    pub by_route: BTreeMap<String, u64>,
    pub by_account: BTreeMap<String, u64>,
    pub faults_injected: u64,
    pub notifications_sent: u64,
    pub notifications_dropped: u64,
    pub notifications_failed: u64,
}

/// What a fault draw decided for one request.
enum Injected {
    Nothing,
    DropConnection,
    Respond(ApiError, Option<u64>),
}

/// `true` with probability `p` (0 never, 1 always).
pub(crate) fn chance(rng: &mut StdRng, p: f64) -> bool {
    if p.is_nan() || p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        rng.random::<f64>() < p
    }
}

impl Faults {
    /// Whether a knob scoped to `knob_account` applies to `account`.
    fn applies(&self, knob_account: Option<&String>, account: Option<&str>) -> bool {
        match knob_account.or(self.account.as_ref()) {
            None => true,
            Some(only) => account == Some(only.as_str()),
        }
    }

    /// The page size cap for `account`'s listings.
    pub fn max_page_size(&self, account: &str) -> Option<usize> {
        self.max_page_size
            .filter(|_| self.applies(None, Some(account)))
    }

    /// The probability of an injected empty page for `account`.
    pub fn empty_page_probability(&self, account: &str) -> f64 {
        self.empty_page_probability
            .filter(|_| self.applies(None, Some(account)))
            .unwrap_or(0.0)
    }

    /// Whether a notification to a channel of `account` is dropped.
    pub fn drop_notification(&self, rng: &mut StdRng, account: &str) -> bool {
        match &self.drop_notifications {
            Some(knob) if self.applies(knob.account.as_ref(), Some(account)) => {
                chance(rng, knob.probability)
            }
            _ => false,
        }
    }

    /// Whether a knob looks into requests (so the body must be read).
    fn matches_text(&self) -> bool {
        self.rate_limit
            .as_ref()
            .is_some_and(|k| k.target.matching.is_some())
            || self
                .server_error
                .as_ref()
                .is_some_and(|k| k.target.matching.is_some())
    }

    fn draw(
        &self,
        rng: &mut StdRng,
        account: Option<&str>,
        request_text: Option<&str>,
    ) -> (Option<Duration>, Injected) {
        let latency = self
            .latency_ms
            .filter(|ms| *ms > 0 && self.applies(None, account))
            .map(Duration::from_millis);
        if let Some(knob) = &self.drop_connection
            && self.applies(knob.account.as_ref(), account)
            && chance(rng, knob.probability)
        {
            return (latency, Injected::DropConnection);
        }
        if let Some(knob) = &self.rate_limit
            && self.applies(knob.account.as_ref(), account)
            && knob.target.hits(request_text)
            && chance(rng, knob.probability)
        {
            let status = StatusCode::from_u16(knob.status).unwrap_or(StatusCode::FORBIDDEN);
            let (reason, message) = match knob.reason.as_str() {
                "userRateLimitExceeded" => ("userRateLimitExceeded", "User Rate Limit Exceeded"),
                "quotaExceeded" => ("quotaExceeded", "Calendar usage limits exceeded."),
                _ => ("rateLimitExceeded", "Rate Limit Exceeded"),
            };
            let error = ApiError::new(status, "usageLimits", reason, message);
            return (
                latency,
                Injected::Respond(error, knob.target.retry_after_secs),
            );
        }
        if let Some(knob) = &self.server_error
            && self.applies(knob.account.as_ref(), account)
            && knob.target.hits(request_text)
            && chance(rng, knob.probability)
        {
            let status =
                StatusCode::from_u16(knob.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (
                latency,
                Injected::Respond(ApiError::backend(status), knob.target.retry_after_secs),
            );
        }
        (latency, Injected::Nothing)
    }
}

/// Applies a `POST /_emulator/faults` body: each knob given replaces the
/// current one (`null` clears it), `reset` clears all first, the one-shot
/// knobs act at once.
pub(crate) fn apply_faults(state: &mut State, body: &Map<String, Value>) -> Result<(), String> {
    if body.get("reset").and_then(Value::as_bool) == Some(true) {
        state.faults = Faults::default();
    }
    let mut faults = state.faults.clone();
    let mut expire_access = false;
    let mut expire_sync = false;
    for (key, value) in body {
        match key.as_str() {
            "reset" => {}
            "rate_limit" => faults.rate_limit = nullable(value, rate_limit)?,
            "server_error" => faults.server_error = nullable(value, server_error)?,
            "latency_ms" => faults.latency_ms = nullable(value, |v| number(v, "latency_ms"))?,
            "drop_connection" => {
                faults.drop_connection = nullable(value, |v| chance_knob(v, "drop_connection"))?;
            }
            "max_page_size" => {
                faults.max_page_size = nullable(value, |v| {
                    let size = number(v, "max_page_size")?;
                    if size == 0 {
                        return Err("max_page_size must be at least 1".to_string());
                    }
                    usize::try_from(size).map_err(|_| "max_page_size is too large".to_string())
                })?;
            }
            "empty_page_probability" => {
                faults.empty_page_probability =
                    nullable(value, |v| probability(v, "empty_page_probability"))?;
            }
            "sync_token_max_age_secs" => {
                faults.sync_token_max_age_secs =
                    nullable(value, |v| number(v, "sync_token_max_age_secs"))?;
            }
            "drop_notifications" => {
                faults.drop_notifications =
                    nullable(value, |v| chance_knob(v, "drop_notifications"))?;
            }
            "seed" => faults.seed = nullable(value, |v| number(v, "seed"))?,
            "token_endpoint" => {
                faults.token_endpoint = value
                    .as_bool()
                    .or(value.is_null().then_some(false))
                    .ok_or("token_endpoint must be a boolean")?;
            }
            "account" => faults.account = nullable(value, |v| text(v, "account"))?,
            "expire_access_tokens_now" => expire_access = value.as_bool() == Some(true),
            "expire_sync_tokens_now" => expire_sync = value.as_bool() == Some(true),
            other => return Err(format!("unknown fault knob {other:?}")),
        }
    }
    if let Some(seed) = body.get("seed").and_then(Value::as_u64) {
        state.rng = StdRng::seed_from_u64(seed);
    }
    state.faults = faults;
    if expire_access {
        state.access_tokens.clear();
    }
    if expire_sync {
        state.sync_epoch += 1;
    }
    Ok(())
}

fn nullable<T>(
    value: &Value,
    parse: impl Fn(&Value) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if value.is_null() {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

fn number(value: &Value, name: &str) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("{name} must be a non-negative integer"))
}

fn text(value: &Value, name: &str) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{name} must be a string"))
}

fn probability(value: &Value, name: &str) -> Result<f64, String> {
    value
        .as_f64()
        .filter(|p| (0.0..=1.0).contains(p))
        .ok_or_else(|| format!("{name} must be a number between 0 and 1"))
}

fn field<'a>(value: &'a Value, knob: &str, name: &str) -> Result<Option<&'a Value>, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("{knob} must be an object"))?;
    Ok(object.get(name).filter(|value| !value.is_null()))
}

fn knob_probability(value: &Value, knob: &str) -> Result<f64, String> {
    match field(value, knob, "probability")? {
        Some(p) => probability(p, &format!("{knob}.probability")),
        None => Ok(1.0),
    }
}

fn knob_account(value: &Value, knob: &str) -> Result<Option<String>, String> {
    field(value, knob, "account")?
        .map(|account| text(account, &format!("{knob}.account")))
        .transpose()
}

fn target(value: &Value, knob: &str) -> Result<Target, String> {
    let matching = field(value, knob, "matching")?
        .map(|m| text(m, &format!("{knob}.matching")))
        .transpose()?;
    if matching.as_deref() == Some("") {
        return Err(format!("{knob}.matching must not be empty"));
    }
    let retry_after_secs = field(value, knob, "retry_after_secs")?
        .map(|n| number(n, &format!("{knob}.retry_after_secs")))
        .transpose()?;
    Ok(Target {
        matching,
        retry_after_secs,
    })
}

fn chance_knob(value: &Value, knob: &str) -> Result<Chance, String> {
    Ok(Chance {
        probability: knob_probability(value, knob)?,
        account: knob_account(value, knob)?,
    })
}

fn rate_limit(value: &Value) -> Result<RateLimit, String> {
    let status = match field(value, "rate_limit", "status")? {
        Some(status) => number(status, "rate_limit.status")?,
        None => 403,
    };
    if status != 403 && status != 429 {
        return Err("rate_limit.status must be 403 or 429".to_string());
    }
    let reason = match field(value, "rate_limit", "reason")? {
        Some(reason) => text(reason, "rate_limit.reason")?,
        None => "rateLimitExceeded".to_string(),
    };
    if !matches!(
        reason.as_str(),
        "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded"
    ) {
        return Err(
            "rate_limit.reason must be rateLimitExceeded, userRateLimitExceeded or quotaExceeded"
                .to_string(),
        );
    }
    Ok(RateLimit {
        probability: knob_probability(value, "rate_limit")?,
        status: u16::try_from(status).unwrap_or(403),
        reason,
        account: knob_account(value, "rate_limit")?,
        target: target(value, "rate_limit")?,
    })
}

fn server_error(value: &Value) -> Result<ServerError, String> {
    let status = match field(value, "server_error", "status")? {
        Some(status) => number(status, "server_error.status")?,
        None => 500,
    };
    if !matches!(status, 500 | 502 | 503 | 504) {
        return Err("server_error.status must be 500, 502, 503 or 504".to_string());
    }
    Ok(ServerError {
        probability: knob_probability(value, "server_error")?,
        status: u16::try_from(status).unwrap_or(500),
        account: knob_account(value, "server_error")?,
        target: target(value, "server_error")?,
    })
}

/// Counts every API and token request and applies the fault knobs.
pub(crate) async fn observe(
    AxumState(emulator): AxumState<GoogleEmulator>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let route = format!(
        "{} {}",
        request.method(),
        matched.as_ref().map_or(path.as_str(), MatchedPath::as_str)
    );
    let is_api = path.starts_with("/calendar/v3/");
    let (request, account) = if is_api {
        let account = emulator.with(|state| state.bearer_owner(request.headers()));
        (request, account)
    } else {
        token_request_account(&emulator, request).await
    };
    // A knob that looks into requests gets the path, query and body.
    let (request, request_text) = if emulator.with(|state| state.faults.matches_text()) {
        request_text(request).await
    } else {
        (request, None)
    };
    let (latency, injected) = emulator.with(|state| {
        state.stats.total += 1;
        *state.stats.by_route.entry(route).or_default() += 1;
        if let Some(account) = &account {
            *state.stats.by_account.entry(account.clone()).or_default() += 1;
        }
        if !is_api && !state.faults.token_endpoint {
            return (None, Injected::Nothing);
        }
        let faults = state.faults.clone();
        let (latency, injected) =
            faults.draw(&mut state.rng, account.as_deref(), request_text.as_deref());
        if !matches!(injected, Injected::Nothing) {
            state.stats.faults_injected += 1;
        }
        (latency, injected)
    });
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    match injected {
        Injected::Nothing => next.run(request).await,
        Injected::Respond(error, retry_after) => {
            let mut response = error.into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, secs.into());
            }
            response
        }
        Injected::DropConnection => {
            drop_connection(request.extensions().get::<ConnectionKill>().cloned()).await
        }
    }
}

/// Closes the connection without answering. Served by
/// [`GoogleEmulator::serve`], the connection task is told to drop the
/// socket and this future never completes. Mounted elsewhere, the answer
/// is a body that fails at once, which makes hyper abort the connection.
async fn drop_connection(kill: Option<ConnectionKill>) -> Response {
    if let Some(kill) = kill {
        kill.0.notify_one();
        std::future::pending::<()>().await;
    }
    Response::new(Body::new(super::serve::FailingBody))
}

/// The request's path, query and body as text, for `matching` knobs; the
/// request goes on with the same body.
async fn request_text(request: Request) -> (Request, Option<String>) {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return (Request::from_parts(parts, Body::empty()), None);
    };
    let text = format!(
        "{}?{} {}",
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        String::from_utf8_lossy(&bytes)
    );
    (Request::from_parts(parts, Body::from(bytes)), Some(text))
}

/// Reads the account behind a token-endpoint request (its refresh token
/// or authorization code) without consuming the body.
async fn token_request_account(
    emulator: &GoogleEmulator,
    request: Request,
) -> (Request, Option<String>) {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return (Request::from_parts(parts, Body::empty()), None);
    };
    let mut account = None;
    for (key, value) in url::form_urlencoded::parse(&bytes) {
        let found = emulator.with(|state| match key.as_ref() {
            "refresh_token" => state
                .refresh_tokens
                .get(value.as_ref())
                .map(|grant| grant.email.clone()),
            "code" => state
                .auth_codes
                .get(value.as_ref())
                .map(|code| code.email.clone()),
            "login_hint" => Some(value.to_string()),
            _ => None,
        });
        account = account.or(found);
    }
    if let Some(query) = parts.uri.query() {
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if key == "login_hint" {
                account = account.or(Some(value.to_string()));
            }
        }
    }
    (Request::from_parts(parts, Body::from(bytes)), account)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::google::EmulatorConfig;
    use serde_json::json;

    fn apply(state: &mut State, body: Value) -> Result<(), String> {
        apply_faults(state, body.as_object().unwrap())
    }

    #[test]
    fn knobs_merge_validate_and_reset() {
        let mut state = State::new(EmulatorConfig::default());
        apply(
            &mut state,
            json!({"rate_limit": {"probability": 0.5, "status": 429}}),
        )
        .unwrap();
        apply(&mut state, json!({"latency_ms": 5})).unwrap();
        assert_eq!(state.faults.latency_ms, Some(5));
        assert_eq!(state.faults.rate_limit.as_ref().unwrap().status, 429);
        assert!(apply(&mut state, json!({"rate_limit": {"status": 500}})).is_err());
        assert!(apply(&mut state, json!({"server_error": {"probability": 2}})).is_err());
        assert!(apply(&mut state, json!({"typo": 1})).is_err());
        apply(&mut state, json!({"latency_ms": null})).unwrap();
        assert_eq!(state.faults.latency_ms, None);
        apply(&mut state, json!({"reset": true})).unwrap();
        assert_eq!(state.faults, Faults::default());
    }

    #[test]
    fn account_scoping() {
        let faults = Faults {
            rate_limit: Some(RateLimit {
                probability: 1.0,
                status: 429,
                reason: "rateLimitExceeded".into(),
                account: None,
                target: Target::default(),
            }),
            account: Some("a@example.com".into()),
            ..Faults::default()
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert!(matches!(
            faults.draw(&mut rng, Some("a@example.com"), None).1,
            Injected::Respond(_, None)
        ));
        assert!(matches!(
            faults.draw(&mut rng, Some("b@example.com"), None).1,
            Injected::Nothing
        ));
    }

    #[test]
    fn matching_hits_only_requests_that_contain_the_text() {
        let mut state = State::new(EmulatorConfig::default());
        apply(
            &mut state,
            json!({"server_error": {"status": 503, "matching": "ev1", "retry_after_secs": 30}}),
        )
        .unwrap();
        let faults = state.faults.clone();
        let mut rng = StdRng::seed_from_u64(1);
        assert!(matches!(
            faults
                .draw(&mut rng, None, Some("/calendars/x/events/ev1? "))
                .1,
            Injected::Respond(_, Some(30))
        ));
        assert!(matches!(
            faults
                .draw(&mut rng, None, Some("/calendars/x/events/ev2? "))
                .1,
            Injected::Nothing
        ));
        assert!(matches!(
            faults.draw(&mut rng, None, None).1,
            Injected::Nothing
        ));
        assert!(apply(&mut state, json!({"server_error": {"matching": ""}})).is_err());
        assert!(apply(&mut state, json!({"rate_limit": {"retry_after_secs": -1}})).is_err());
    }
}

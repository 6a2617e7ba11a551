//! Google Calendar v3 behind calmesh's [`Provider`] trait.
//!
//! - Pull: `events.list` with `singleEvents=false` (masters and exceptions,
//!   never hundreds of instances), 2,500 per page, following `nextPageToken`
//!   until a page carries `nextSyncToken`; with a cursor, the same query with
//!   `syncToken`. A 410 `fullSyncRequired` restarts as a full listing, which
//!   the caller diffs against its cache (never a wipe).
//! - Writes: client-chosen ids (`events.insert` with `id`, 409 → already
//!   exists), `If-Match` on update and delete (412 → precondition failed),
//!   calmesh's tags in private extended properties.
//! - Errors: 403 `rateLimitExceeded`/`userRateLimitExceeded` and 429 back
//!   off and retry, as do 5xx and dropped connections; 403 `quotaExceeded` is
//!   not cleared by a short backoff: it fails at once as an account-level
//!   rate limit, so the run stops using the account; 401 refreshes the
//!   access token once.

mod convert;

use std::sync::Arc;

use async_trait::async_trait;
use calmesh_provider::http::{RateLimiter, Response, Verdict, build_reqwest};
use calmesh_provider::{
    Change, Channel, ChannelRequest, EntryProblem, HttpClient, OAuthClient, PageTokens, Provider,
    ProviderError, PullResult, RemoteCalendar, RemoteEntry, RetryPolicy, UrlPolicy, WriteRequest,
    Written,
};
use chrono_tz::Tz;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub use convert::{Read, read_event, write_event};

/// Google's API host; the Calendar API lives under `/calendar/v3`.
pub const DEFAULT_API_BASE: &str = "https://www.googleapis.com";
/// Google's OAuth token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's OAuth consent page.
pub const DEFAULT_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// The scope calmesh asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/calendar";

/// Page size for listings (Google's maximum).
const PAGE_SIZE: &str = "2500";

/// How to reach one Google account.
#[derive(Clone)]
pub struct GoogleAccount {
    /// API host (default [`DEFAULT_API_BASE`]; an emulator's base URL in tests).
    pub api_base: String,
    /// Token endpoint (default [`DEFAULT_TOKEN_URL`]).
    pub token_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Refresh token.
    pub refresh_token: String,
    /// Retries.
    pub policy: RetryPolicy,
    /// Calls per second allowed to this account (Google: 600 per minute per
    /// user).
    pub per_second: f64,
    /// Which API and token URLs are allowed (https, or http to this machine).
    pub url_policy: UrlPolicy,
}

impl std::fmt::Debug for GoogleAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleAccount")
            .field("api_base", &self.api_base)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// One Google account.
#[derive(Debug)]
pub struct GoogleProvider {
    http: HttpClient,
    base: String,
    floating_zone: Tz,
}

/// Reads Google's error envelope: (reason, message).
fn envelope(body: &[u8]) -> (String, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let reason = value
        .pointer("/error/errors/0/reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let message = value
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    (reason, message)
}

/// What a failed Google response means (providers.md §A.7).
pub fn classify(status: u16, _headers: &HeaderMap, body: &[u8]) -> Verdict {
    let (reason, message) = envelope(body);
    match (status, reason.as_str()) {
        (403, "rateLimitExceeded" | "userRateLimitExceeded") | (429, _) => {
            Verdict::RateLimited(message)
        }
        // Google's abuse limit: short backoff does not clear it, and every
        // further call spends quota. Stop using the account for this run.
        (403, "quotaExceeded") => Verdict::Fail(ProviderError::RateLimited {
            attempts: 1,
            message,
            retry_after: None,
        }),
        (500..=599, _) => Verdict::Transient(format!("{status}: {message}")),
        (401, _) => Verdict::Unauthorized(message),
        (404, _) | (410, "deleted") => Verdict::Fail(ProviderError::NotFound),
        (409, "duplicate") => Verdict::Fail(ProviderError::AlreadyExists),
        (410, _) => Verdict::Fail(ProviderError::CursorExpired),
        (412, _) => Verdict::Fail(ProviderError::PreconditionFailed),
        _ => Verdict::Fail(ProviderError::Rejected {
            status,
            reason,
            message,
        }),
    }
}

/// Percent-encodes one path segment (calendar ids hold `@` and `#`).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn json(response: &Response) -> Result<Value, ProviderError> {
    serde_json::from_slice(&response.body)
        .map_err(|e| ProviderError::Decode(format!("Google's response is not JSON: {e}")))
}

/// The `items` of a listing page.
fn items(page: &Value) -> impl Iterator<Item = &Value> {
    page.get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn entry(read: Read) -> Option<RemoteEntry> {
    Some(RemoteEntry {
        remote_id: read.id,
        parent_id: read.parent_id,
        etag: read.etag,
        updated: read.updated,
        event: read.event?,
        tags: read.tags,
    })
}

impl GoogleProvider {
    /// A provider for one account.
    pub fn new(account: GoogleAccount) -> Result<Self, ProviderError> {
        account
            .url_policy
            .check("the API base", &account.api_base)?;
        account
            .url_policy
            .check("the token URL", &account.token_url)?;
        let client = build_reqwest()?;
        let tokens = OAuthClient::new(
            client.clone(),
            account.token_url,
            account.client_id,
            account.client_secret,
            account.refresh_token,
            account.policy,
        );
        let limiter = Arc::new(RateLimiter::new(account.per_second, 20));
        let http = HttpClient::new(
            "google",
            client,
            account.policy,
            limiter,
            Some(Arc::new(tokens)),
            classify,
        );
        Ok(Self {
            http,
            base: format!("{}/calendar/v3", account.api_base.trim_end_matches('/')),
            floating_zone: chrono_tz::UTC,
        })
    }

    /// Meters calls with `limiter` instead of a limiter of its own (to share
    /// one account's rate among several handles).
    pub fn with_rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.http = self.http.with_limiter(limiter);
        self
    }

    /// Sets the zone floating times are written in (the calendar's zone).
    pub fn with_floating_zone(mut self, zone: Tz) -> Self {
        self.floating_zone = zone;
        self
    }

    fn events_url(&self, calendar: &str) -> String {
        format!("{}/calendars/{}/events", self.base, segment(calendar))
    }

    fn event_url(&self, calendar: &str, id: &str) -> String {
        format!("{}/{}", self.events_url(calendar), segment(id))
    }

    /// One listing: all pages, from no cursor (full) or from `cursor`.
    async fn list(
        &self,
        calendar: &str,
        cursor: Option<&str>,
        progress: &(dyn Fn(usize) + Send + Sync),
        result: &mut PullResult,
    ) -> Result<(), ProviderError> {
        let url = self.events_url(calendar);
        let mut page_token: Option<String> = None;
        let mut tokens = PageTokens::new();
        let mut seen = 0usize;
        loop {
            let mut query = vec![("maxResults", PAGE_SIZE), ("singleEvents", "false")];
            if let Some(cursor) = cursor {
                query.push(("syncToken", cursor));
            }
            let page = self.page(&url, &query, page_token.as_deref()).await?;
            for item in items(&page) {
                seen += 1;
                match read_event(item) {
                    Ok(read) if read.event.is_none() => {
                        result.changes.push(Change::Removed(read.id))
                    }
                    Ok(read) => result
                        .changes
                        .extend(entry(read).map(|e| Change::Upsert(Box::new(e)))),
                    Err(message) => result.problems.push(EntryProblem {
                        remote_id: item
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("(no id)")
                            .to_owned(),
                        message,
                    }),
                }
            }
            progress(seen);
            if let Some(token) = page.get("nextSyncToken").and_then(Value::as_str) {
                result.cursor = Some(token.to_owned());
                return Ok(());
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(next) => page_token = Some(tokens.next(next)?),
                None => {
                    return Err(ProviderError::Decode(
                        "a listing page had neither nextPageToken nor nextSyncToken".to_owned(),
                    ));
                }
            }
        }
    }

    /// One page of a listing: `query` plus the page token, read as JSON.
    async fn page(
        &self,
        url: &str,
        query: &[(&str, &str)],
        page_token: Option<&str>,
    ) -> Result<Value, ProviderError> {
        let response = self
            .http
            .send(|c| {
                let request = c.get(url).query(query);
                match page_token {
                    Some(page) => request.query(&[("pageToken", page)]),
                    None => request,
                }
            })
            .await?;
        json(&response)
    }

    fn written(&self, response: &Response) -> Result<Written, ProviderError> {
        let value = json(response)?;
        let read = read_event(&value).map_err(ProviderError::Decode)?;
        entry(read)
            .map(|entry| Written { entry })
            .ok_or_else(|| ProviderError::Decode("the written event came back cancelled".into()))
    }
}

#[async_trait]
impl Provider for GoogleProvider {
    fn kind(&self) -> &'static str {
        "google"
    }

    async fn calendars(&self) -> Result<Vec<RemoteCalendar>, ProviderError> {
        let url = format!("{}/users/me/calendarList", self.base);
        let mut out = Vec::new();
        let mut page_token: Option<String> = None;
        let mut tokens = PageTokens::new();
        loop {
            let page = self
                .page(&url, &[("maxResults", "250")], page_token.as_deref())
                .await?;
            for item in items(&page) {
                let Some(id) = item.get("id").and_then(Value::as_str) else {
                    continue;
                };
                let role = item.get("accessRole").and_then(Value::as_str).unwrap_or("");
                out.push(RemoteCalendar {
                    remote_id: id.to_owned(),
                    name: item
                        .get("summaryOverride")
                        .or_else(|| item.get("summary"))
                        .and_then(Value::as_str)
                        .unwrap_or(id)
                        .to_owned(),
                    time_zone: item
                        .get("timeZone")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    primary: item
                        .get("primary")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    writable: matches!(role, "owner" | "writer"),
                });
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(next) => page_token = Some(tokens.next(next)?),
                None => return Ok(out),
            }
        }
    }

    async fn pull(
        &self,
        calendar: &str,
        cursor: Option<&str>,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<PullResult, ProviderError> {
        let mut result = PullResult {
            full: cursor.is_none(),
            ..PullResult::default()
        };
        match self.list(calendar, cursor, progress, &mut result).await {
            Err(ProviderError::CursorExpired) if cursor.is_some() => {
                tracing::info!(calendar, "sync token expired: full listing");
                result = PullResult {
                    full: true,
                    cursor_expired: true,
                    ..PullResult::default()
                };
                self.list(calendar, None, progress, &mut result).await?;
            }
            other => other?,
        }
        Ok(result)
    }

    async fn get(&self, calendar: &str, id: &str) -> Result<Option<RemoteEntry>, ProviderError> {
        let url = self.event_url(calendar, id);
        match self.http.send(|c| c.get(&url)).await {
            Ok(response) => {
                let read = read_event(&json(&response)?).map_err(ProviderError::Decode)?;
                Ok(entry(read)
                    .filter(|e| e.event.status != Some(calmesh_core::event::Status::Cancelled)))
            }
            Err(ProviderError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create(&self, calendar: &str, write: &WriteRequest) -> Result<Written, ProviderError> {
        let url = self.events_url(calendar);
        let body = write_event(&write.id, &write.event, &write.tags, self.floating_zone);
        let response = self.http.send(|c| c.post(&url).json(&body)).await?;
        self.written(&response)
    }

    async fn update(
        &self,
        calendar: &str,
        if_match: Option<&str>,
        write: &WriteRequest,
    ) -> Result<Written, ProviderError> {
        let url = self.event_url(calendar, &write.id);
        let body = write_event(&write.id, &write.event, &write.tags, self.floating_zone);
        let response = self
            .http
            .send(|c| {
                let request = c.put(&url).json(&body);
                match if_match {
                    Some(etag) => request.header(reqwest::header::IF_MATCH, etag),
                    None => request,
                }
            })
            .await?;
        self.written(&response)
    }

    async fn delete(
        &self,
        calendar: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ProviderError> {
        let url = self.event_url(calendar, id);
        self.http
            .send(|c| {
                let request = c.delete(&url);
                match if_match {
                    Some(etag) => request.header(reqwest::header::IF_MATCH, etag),
                    None => request,
                }
            })
            .await?;
        Ok(())
    }

    async fn watch(
        &self,
        calendar: &str,
        request: &ChannelRequest,
    ) -> Result<Channel, ProviderError> {
        let url = format!("{}/watch", self.events_url(calendar));
        let mut body = serde_json::json!({
            "id": request.id,
            "type": "web_hook",
            "address": request.address,
            "token": request.token,
        });
        if let Some(ttl) = request.ttl {
            body["params"] = serde_json::json!({"ttl": ttl.as_secs().to_string()});
        }
        let response = self.http.send(|c| c.post(&url).json(&body)).await?;
        let value = json(&response)?;
        let resource_id = value
            .get("resourceId")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::Decode("watch response without resourceId".into()))?;
        // `expiration` is Unix milliseconds, as a string.
        let expiration = value
            .get("expiration")
            .and_then(|v| {
                v.as_str()
                    .and_then(|s| s.parse::<i64>().ok())
                    .or(v.as_i64())
            })
            .and_then(chrono::DateTime::from_timestamp_millis);
        Ok(Channel {
            id: request.id.clone(),
            resource_id: resource_id.to_owned(),
            expiration,
        })
    }

    async fn stop_channel(&self, channel: &Channel) -> Result<(), ProviderError> {
        let url = format!("{}/channels/stop", self.base);
        let body = serde_json::json!({"id": channel.id, "resourceId": channel.resource_id});
        self.http.send(|c| c.post(&url).json(&body)).await?;
        Ok(())
    }

    fn api_calls(&self) -> u64 {
        self.http.calls()
    }
}

//! The Google Calendar v3 emulator over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::extract::State;
use axum::http::HeaderMap;
use calmesh_emulators::google::{self, EmulatorConfig, GoogleEmulator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;

struct Emulator {
    base: String,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

struct Account {
    email: String,
    refresh_token: String,
    client_id: String,
    client_secret: String,
    token: String,
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl Emulator {
    async fn start() -> Self {
        let (base, server) = google::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
        Self {
            base,
            http: client(),
            _server: server,
        }
    }

    async fn with_config(config: EmulatorConfig) -> Self {
        let emulator = GoogleEmulator::new(config);
        let (base, server) = google::spawn_emulator(emulator, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Self {
            base,
            http: client(),
            _server: server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn faults(&self, body: Value) -> Value {
        self.control(Method::POST, "/_emulator/faults", Some(body))
            .await
    }

    /// Creates an account and gets an access token through `/token`.
    async fn account(&self, email: &str) -> Account {
        let created = self
            .control(
                Method::POST,
                "/_emulator/accounts",
                Some(json!({"email": email})),
            )
            .await;
        let refresh_token = created["refresh_token"].as_str().unwrap().to_string();
        let client_id = created["client_id"].as_str().unwrap().to_string();
        let client_secret = created["client_secret"].as_str().unwrap().to_string();
        let (status, body) = self
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("client_id", &client_id),
                ("client_secret", &client_secret),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        Account {
            email: email.to_string(),
            refresh_token,
            client_id,
            client_secret,
            token: body["access_token"].as_str().unwrap().to_string(),
        }
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// An API call; returns status, headers and JSON body (Null when empty).
    async fn call(
        &self,
        account: &Account,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&account.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, headers, body)
    }

    async fn get(&self, account: &Account, path: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.call(account, Method::GET, path, None, &[]).await;
        (status, body)
    }

    async fn insert(&self, account: &Account, calendar: &str, event: Value) -> Value {
        let (status, _, body) = self
            .call(
                account,
                Method::POST,
                &events_path(calendar),
                Some(event),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Follows `nextPageToken` to the end; returns the items and the sync token.
    async fn list_all(
        &self,
        account: &Account,
        calendar: &str,
        query: &str,
    ) -> (Vec<Value>, String) {
        let mut items = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..1000 {
            let mut path = format!("{}?{query}", events_path(calendar));
            if let Some(token) = &page_token {
                path.push_str(&format!("&pageToken={}", encode(token)));
            }
            let (status, body) = self.get(account, &path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            items.extend(body["items"].as_array().unwrap().iter().cloned());
            match body.get("nextPageToken").and_then(Value::as_str) {
                Some(token) => {
                    assert!(body.get("nextSyncToken").is_none());
                    page_token = Some(token.to_string());
                }
                None => return (items, body["nextSyncToken"].as_str().unwrap().to_string()),
            }
        }
        panic!("paging did not end");
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn events_path(calendar: &str) -> String {
    format!("/calendar/v3/calendars/{}/events", encode(calendar))
}

fn event_path(calendar: &str, id: &str) -> String {
    format!("{}/{}", events_path(calendar), id)
}

fn timed(summary: &str, start: &str, end: &str) -> Value {
    json!({"summary": summary, "start": {"dateTime": start}, "end": {"dateTime": end}})
}

fn reason(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn token_grant_invalid_client_and_revocation() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    assert!(ann.token.starts_with("ya29."));
    let (status, body) = emulator
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &ann.refresh_token),
            ("client_id", &ann.client_id),
            ("client_secret", &ann.client_secret),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["scope"].as_str().unwrap().contains("calendar"));
    assert!(body.get("refresh_token").is_none());

    let (status, body) = emulator
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &ann.refresh_token),
            ("client_id", &ann.client_id),
            ("client_secret", "wrong"),
        ])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    emulator
        .control(
            Method::POST,
            "/_emulator/accounts/ann@example.com/revoke",
            None,
        )
        .await;
    let (status, body) = emulator
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &ann.refresh_token),
            ("client_id", &ann.client_id),
            ("client_secret", &ann.client_secret),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );
    let (status, body) = emulator
        .get(&ann, "/calendar/v3/users/me/calendarList")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&body), "authError");

    let (status, body) = emulator
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "1//unknown"),
            ("client_id", &ann.client_id),
            ("client_secret", &ann.client_secret),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn api_needs_a_live_token_and_owner() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let bob = emulator.account("bob@example.com").await;

    let response = emulator
        .http
        .get(emulator.url("/calendar/v3/users/me/calendarList"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"errors": [{"domain": "global", "reason": "authError", "message": "Invalid Credentials", "locationType": "header", "location": "Authorization"}], "code": 401, "message": "Invalid Credentials"}})
    );

    let (status, body) = emulator
        .get(&ann, "/calendar/v3/users/me/calendarList")
        .await;
    assert_eq!(status, StatusCode::OK);
    let entries = body["items"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], "ann@example.com");
    assert_eq!(entries[0]["accessRole"], "owner");
    assert_eq!(entries[0]["primary"], true);
    assert_eq!(entries[0]["timeZone"], "UTC");
    assert!(body.get("nextSyncToken").is_some());

    // Bob cannot see Ann's calendar.
    let (status, body) = emulator.get(&bob, &events_path("ann@example.com")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(reason(&body), "notFound");
    // `primary` is the caller's own.
    let (status, _) = emulator.get(&bob, &events_path("primary")).await;
    assert_eq!(status, StatusCode::OK);

    emulator
        .faults(json!({"expire_access_tokens_now": true}))
        .await;
    let (status, body) = emulator.get(&ann, &events_path("primary")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&body), "authError");
    // One-shot: the knob is not kept.
    let faults = emulator
        .control(Method::GET, "/_emulator/faults", None)
        .await;
    assert!(faults.get("expire_access_tokens_now").is_none());
}

#[tokio::test]
async fn insert_with_client_ids() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    let mut event = timed("a", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z");

    for bad in ["abcd", "abcdw", "ABCDE", "abc_de", &"a".repeat(1025)] {
        event["id"] = json!(bad);
        let (status, _, body) = emulator
            .call(
                &ann,
                Method::POST,
                &events_path(cal),
                Some(event.clone()),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reason(&body), "invalid");
        assert_eq!(body["error"]["message"], "Invalid resource id value.");
    }

    event["id"] = json!("calmesh0001");
    let created = emulator.insert(&ann, cal, event.clone()).await;
    assert_eq!(created["id"], "calmesh0001");
    assert_eq!(created["iCalUID"], "calmesh0001@google.com");
    assert_eq!(created["status"], "confirmed");
    assert_eq!(created["sequence"], 0);
    assert!(
        created["etag"]
            .as_str()
            .unwrap()
            .trim_matches('"')
            .chars()
            .all(|c| c.is_ascii_digit())
    );
    assert!(created["created"].as_str().unwrap().ends_with('Z'));

    let (status, _, body) = emulator
        .call(
            &ann,
            Method::POST,
            &events_path(cal),
            Some(event.clone()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(reason(&body), "duplicate");
    assert_eq!(
        body["error"]["message"],
        "The requested identifier already exists."
    );

    let (status, _, _) = emulator
        .call(
            &ann,
            Method::DELETE,
            &event_path(cal, "calmesh0001"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = emulator
        .call(&ann, Method::POST, &events_path(cal), Some(event), &[])
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "reusing a deleted id");
    assert_eq!(reason(&body), "duplicate");

    // Server-chosen ids are base32hex, 26 characters.
    let created = emulator
        .insert(
            &ann,
            cal,
            timed("b", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z"),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 26);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
    );
}

#[tokio::test]
async fn etags_and_conditional_requests() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    let mut event = timed("a", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z");
    event["id"] = json!("cond00001");
    let created = emulator.insert(&ann, cal, event).await;
    let etag = created["etag"].as_str().unwrap().to_string();
    let path = event_path(cal, "cond00001");

    let (status, headers, body) = emulator.call(&ann, Method::GET, &path, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, created);
    assert_eq!(headers["etag"].to_str().unwrap(), etag);
    let (status, _, _) = emulator
        .call(&ann, Method::GET, &path, None, &[("If-None-Match", &etag)])
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    let mut changed = created.clone();
    changed["summary"] = json!("b");
    let (status, _, body) = emulator
        .call(
            &ann,
            Method::PUT,
            &path,
            Some(changed.clone()),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(reason(&body), "conditionNotMet");
    assert_eq!(body["error"]["errors"][0]["location"], "If-Match");

    let (status, _, updated) = emulator
        .call(
            &ann,
            Method::PUT,
            &path,
            Some(changed),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["summary"], "b");
    let etag2 = updated["etag"].as_str().unwrap().to_string();
    assert_ne!(etag2, etag);
    assert_eq!(updated["created"], created["created"]);

    let (status, _, patched) = emulator
        .call(
            &ann,
            Method::PATCH,
            &path,
            Some(json!({"location": "Room 1"})),
            &[("If-Match", &etag2)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["summary"], "b");
    assert_eq!(patched["location"], "Room 1");
    let etag3 = patched["etag"].as_str().unwrap().to_string();
    assert_ne!(etag3, etag2);
    let (status, _, _) = emulator
        .call(
            &ann,
            Method::PATCH,
            &path,
            Some(json!({"summary": "c"})),
            &[("If-Match", &etag2)],
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);

    let (status, _, _) = emulator
        .call(&ann, Method::DELETE, &path, None, &[("If-Match", &etag2)])
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (status, _, _) = emulator
        .call(&ann, Method::DELETE, &path, None, &[("If-Match", &etag3)])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = emulator.call(&ann, Method::DELETE, &path, None, &[]).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(reason(&body), "deleted");
    let (status, body) = emulator.get(&ann, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "cancelled");

    let (status, _, body) = emulator
        .call(
            &ann,
            Method::DELETE,
            &event_path(cal, "nosuchevent"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(reason(&body), "notFound");
}

#[tokio::test]
async fn paging_with_short_and_empty_pages() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    for day in 1..=7 {
        let start = format!("2025-03-{day:02}T10:00:00Z");
        let end = format!("2025-03-{day:02}T11:00:00Z");
        emulator
            .insert(&ann, cal, timed(&format!("e{day}"), &start, &end))
            .await;
    }

    let mut sizes = Vec::new();
    let mut page_token: Option<String> = None;
    let mut seen = HashSet::new();
    loop {
        let mut path = format!("{}?maxResults=3", events_path(cal));
        if let Some(token) = &page_token {
            path.push_str(&format!("&pageToken={}", encode(token)));
        }
        let (_, body) = emulator.get(&ann, &path).await;
        let items = body["items"].as_array().unwrap();
        sizes.push(items.len());
        seen.extend(ids(items));
        match body["nextPageToken"].as_str() {
            Some(token) => {
                assert!(
                    body.get("nextSyncToken").is_none(),
                    "sync token only on the last page"
                );
                page_token = Some(token.to_string());
            }
            None => {
                assert!(body["nextSyncToken"].is_string());
                break;
            }
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(seen.len(), 7);

    emulator.faults(json!({"max_page_size": 2})).await;
    let (_, body) = emulator
        .get(&ann, &format!("{}?maxResults=5", events_path(cal)))
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    let (items, _) = emulator.list_all(&ann, cal, "maxResults=5").await;
    assert_eq!(items.len(), 7);

    emulator
        .faults(json!({"max_page_size": null, "empty_page_probability": 1.0}))
        .await;
    let (_, body) = emulator.get(&ann, &events_path(cal)).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 0);
    assert!(
        body["nextPageToken"].is_string(),
        "an empty page still has a next page"
    );
    let (items, _) = emulator.list_all(&ann, cal, "maxResults=3").await;
    assert_eq!(ids(&items).into_iter().collect::<HashSet<_>>(), seen);

    let (status, body) = emulator
        .get(&ann, &format!("{}?maxResults=0", events_path(cal)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reason(&body), "invalid");
}

#[tokio::test]
async fn incremental_sync_and_token_errors() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    let kept = emulator
        .insert(
            &ann,
            cal,
            timed("kept", "2025-03-01T10:00:00Z", "2025-03-01T11:00:00Z"),
        )
        .await;
    let changed = emulator
        .insert(
            &ann,
            cal,
            timed("changed", "2025-03-02T10:00:00Z", "2025-03-02T11:00:00Z"),
        )
        .await;
    let gone = emulator
        .insert(
            &ann,
            cal,
            timed("gone", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z"),
        )
        .await;
    let (items, token) = emulator.list_all(&ann, cal, "maxResults=2").await;
    assert_eq!(items.len(), 3);

    let created = emulator
        .insert(
            &ann,
            cal,
            timed("new", "2025-03-04T10:00:00Z", "2025-03-04T11:00:00Z"),
        )
        .await;
    let changed_id = changed["id"].as_str().unwrap();
    emulator
        .call(
            &ann,
            Method::PATCH,
            &event_path(cal, changed_id),
            Some(json!({"summary": "changed!"})),
            &[],
        )
        .await;
    let gone_id = gone["id"].as_str().unwrap();
    emulator
        .call(&ann, Method::DELETE, &event_path(cal, gone_id), None, &[])
        .await;

    let (items, token2) = emulator
        .list_all(
            &ann,
            cal,
            &format!("syncToken={}&maxResults=1", encode(&token)),
        )
        .await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(!ids(&items).contains(&kept["id"].as_str().unwrap().to_string()));
    let by_id = |id: &str| items.iter().find(|item| item["id"] == id).unwrap().clone();
    assert_eq!(by_id(created["id"].as_str().unwrap())["summary"], "new");
    assert_eq!(by_id(changed_id)["summary"], "changed!");
    let tombstone = by_id(gone_id);
    let keys: HashSet<&str> = tombstone
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, HashSet::from(["kind", "etag", "id", "status"]));
    assert_eq!(tombstone["status"], "cancelled");

    let (items, token3) = emulator
        .list_all(&ann, cal, &format!("syncToken={}", encode(&token2)))
        .await;
    assert!(items.is_empty());
    assert!(!token3.is_empty());

    for forbidden in [
        "timeMin=2025-01-01T00:00:00Z",
        "q=x",
        "orderBy=updated",
        "iCalUID=x",
        "privateExtendedProperty=a%3Db",
        "updatedMin=2025-01-01T00:00:00Z",
    ] {
        let (status, body) = emulator
            .get(
                &ann,
                &format!(
                    "{}?syncToken={}&{forbidden}",
                    events_path(cal),
                    encode(&token3)
                ),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{forbidden}");
        assert_eq!(body["error"]["code"], 400);
        assert_eq!(reason(&body), "invalid");
    }

    let (status, body) = emulator
        .get(
            &ann,
            &format!(
                "{}?syncToken=CPDAlvWDx70CEPDAlvWDx70CGAU%3D",
                events_path(cal)
            ),
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(reason(&body), "fullSyncRequired");

    emulator
        .faults(json!({"expire_sync_tokens_now": true}))
        .await;
    let (status, body) = emulator
        .get(
            &ann,
            &format!("{}?syncToken={}", events_path(cal), encode(&token3)),
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(reason(&body), "fullSyncRequired");
    assert_eq!(
        body["error"]["message"],
        "Sync token is no longer valid, a full sync is required."
    );
    // A fresh full sync gives a token that works again.
    let (_, token4) = emulator.list_all(&ann, cal, "").await;
    let (status, _) = emulator
        .get(
            &ann,
            &format!("{}?syncToken={}", events_path(cal), encode(&token4)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // timeMin/timeMax semantics.
    let (status, body) = emulator
        .get(
            &ann,
            &format!(
                "{}?timeMin=2025-03-02T00:00:00Z&timeMax=2025-03-02T00:00:00Z",
                events_path(cal)
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reason(&body), "timeRangeEmpty");
    // Exclusive: an event ending at timeMin and one starting at timeMax are out.
    let (items, _) = emulator
        .list_all(
            &ann,
            cal,
            "timeMin=2025-03-01T11:00:00Z&timeMax=2025-03-04T10:00:00Z",
        )
        .await;
    let summaries: HashSet<String> = items
        .iter()
        .map(|item| item["summary"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(summaries, HashSet::from(["changed!".to_string()]));
}

#[tokio::test]
async fn recurring_series_instances_and_exceptions() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    let (_, token) = emulator.list_all(&ann, cal, "").await;

    let mut series = json!({
        "id": "series0001",
        "summary": "Standup",
        "start": {"dateTime": "2025-03-03T10:00:00+01:00"},
        "end": {"dateTime": "2025-03-03T10:30:00+01:00"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
    });
    let (status, _, body) = emulator
        .call(
            &ann,
            Method::POST,
            &events_path(cal),
            Some(series.clone()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["message"],
        "Missing time zone definition for start time."
    );
    series["start"]["timeZone"] = json!("Europe/Berlin");
    series["end"]["timeZone"] = json!("Europe/Berlin");
    let master = emulator.insert(&ann, cal, series).await;
    assert_eq!(master["recurrence"], json!(["RRULE:FREQ=WEEKLY;COUNT=4"]));

    let (items, _) = emulator
        .list_all(&ann, cal, "singleEvents=true&orderBy=startTime")
        .await;
    assert_eq!(
        ids(&items),
        vec![
            "series0001_20250303T090000Z",
            "series0001_20250310T090000Z",
            "series0001_20250317T090000Z",
            "series0001_20250324T090000Z"
        ]
    );
    assert_eq!(items[1]["recurringEventId"], "series0001");
    assert_eq!(
        items[1]["originalStartTime"],
        json!({"dateTime": "2025-03-10T10:00:00+01:00", "timeZone": "Europe/Berlin"})
    );
    assert_eq!(items[1]["start"]["dateTime"], "2025-03-10T10:00:00+01:00");
    assert!(items[1].get("recurrence").is_none());
    let (items, _) = emulator.list_all(&ann, cal, "").await;
    assert_eq!(ids(&items), vec!["series0001"]);
    let (status, body) = emulator
        .get(&ann, &format!("{}?orderBy=startTime", events_path(cal)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reason(&body), "invalid");

    let (status, body) = emulator
        .get(
            &ann,
            &format!("{}/instances?maxResults=3", event_path(cal, "series0001")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
    assert!(body["nextPageToken"].is_string());

    // Patch the second instance: an exception.
    let (status, _, exception) = emulator
        .call(
            &ann,
            Method::PATCH,
            &event_path(cal, "series0001_20250310T090000Z"),
            Some(json!({"summary": "Moved standup", "start": {"dateTime": "2025-03-10T11:00:00+01:00"}, "end": {"dateTime": "2025-03-10T11:30:00+01:00"}})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{exception}");
    assert_eq!(exception["id"], "series0001_20250310T090000Z");
    assert_eq!(exception["recurringEventId"], "series0001");
    assert_eq!(
        exception["originalStartTime"]["dateTime"],
        "2025-03-10T10:00:00+01:00"
    );
    assert_eq!(exception["iCalUID"], master["iCalUID"]);
    // Delete the third: a cancelled exception.
    let (status, _, _) = emulator
        .call(
            &ann,
            Method::DELETE,
            &event_path(cal, "series0001_20250317T090000Z"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = emulator
        .call(
            &ann,
            Method::DELETE,
            &event_path(cal, "series0001_20250317T090000Z"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    let (status, _, _) = emulator
        .call(
            &ann,
            Method::DELETE,
            &event_path(cal, "series0001_20250318T090000Z"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not an instance");

    let (items, _) = emulator
        .list_all(&ann, cal, "singleEvents=true&orderBy=startTime")
        .await;
    assert_eq!(
        ids(&items),
        vec![
            "series0001_20250303T090000Z",
            "series0001_20250310T090000Z",
            "series0001_20250324T090000Z"
        ]
    );
    assert_eq!(items[1]["summary"], "Moved standup");
    let (items, _) = emulator
        .list_all(&ann, cal, "singleEvents=true&showDeleted=true")
        .await;
    assert_eq!(items.len(), 4);

    // Without singleEvents: master, exception and the cancelled exception.
    let (items, _) = emulator.list_all(&ann, cal, "").await;
    assert_eq!(items.len(), 3);
    let cancelled = items
        .iter()
        .find(|item| item["id"] == "series0001_20250317T090000Z")
        .unwrap();
    let keys: HashSet<&str> = cancelled
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from([
            "kind",
            "etag",
            "id",
            "status",
            "recurringEventId",
            "originalStartTime"
        ])
    );

    let (status, body) = emulator
        .get(
            &ann,
            &format!(
                "{}/instances?showDeleted=true",
                event_path(cal, "series0001")
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 4);
    let (_, body) = emulator
        .get(
            &ann,
            &format!(
                "{}/instances?originalStart={}",
                event_path(cal, "series0001"),
                encode("2025-03-10T10:00:00+01:00")
            ),
        )
        .await;
    assert_eq!(
        ids(body["items"].as_array().unwrap()),
        vec!["series0001_20250310T090000Z"]
    );

    // Incremental sync shows the master, the exception and the cancellation.
    let (items, _) = emulator
        .list_all(&ann, cal, &format!("syncToken={}", encode(&token)))
        .await;
    let mut got = ids(&items);
    got.sort();
    assert_eq!(
        got,
        vec![
            "series0001",
            "series0001_20250310T090000Z",
            "series0001_20250317T090000Z"
        ]
    );
    let (_, token) = emulator.list_all(&ann, cal, "").await;

    // Moving the series drops the exceptions that no longer match an instance.
    emulator
        .call(
            &ann,
            Method::PATCH,
            &event_path(cal, "series0001"),
            Some(json!({"start": {"dateTime": "2025-03-03T12:00:00+01:00"}, "end": {"dateTime": "2025-03-03T12:30:00+01:00"}})),
            &[],
        )
        .await;
    let (items, _) = emulator
        .list_all(&ann, cal, &format!("syncToken={}", encode(&token)))
        .await;
    let exception = items
        .iter()
        .find(|item| item["id"] == "series0001_20250310T090000Z")
        .expect("the dropped exception is reported");
    assert_eq!(exception["status"], "cancelled");
    let (items, _) = emulator.list_all(&ann, cal, "singleEvents=true").await;
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|item| item["summary"] == "Standup"));

    // Deleting the master takes its exceptions with it.
    emulator
        .call(
            &ann,
            Method::DELETE,
            &event_path(cal, "series0001"),
            None,
            &[],
        )
        .await;
    let raw = emulator
        .control(
            Method::GET,
            &format!("/_emulator/calendars/{cal}/events"),
            None,
        )
        .await;
    assert_eq!(ids(raw["items"].as_array().unwrap()), vec!["series0001"]);

    // All-day series get date suffixes.
    let day = emulator
        .insert(
            &ann,
            cal,
            json!({"id": "dates0001", "summary": "Holiday", "start": {"date": "2025-04-01"}, "end": {"date": "2025-04-02"}, "recurrence": ["RRULE:FREQ=DAILY;COUNT=2"]}),
        )
        .await;
    assert_eq!(day["id"], "dates0001");
    let (items, _) = emulator.list_all(&ann, cal, "singleEvents=true").await;
    assert_eq!(
        ids(&items),
        vec!["dates0001_20250401", "dates0001_20250402"]
    );
    assert_eq!(items[1]["originalStartTime"], json!({"date": "2025-04-02"}));
}

#[tokio::test]
async fn extended_properties_limits_and_filters() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    let long_key = "k".repeat(45);
    let mut event = timed("tagged", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z");
    event["id"] = json!("tagged001");
    event["extendedProperties"] = json!({
        "private": {"calmesh": "rule1", long_key.clone(): "x", "long": "v".repeat(1500)},
        "shared": {"s": "1"}
    });
    let created = emulator.insert(&ann, cal, event).await;
    let private = &created["extendedProperties"]["private"];
    assert!(private.get(&long_key).is_none());
    assert_eq!(private["long"].as_str().unwrap().len(), 1024);
    assert_eq!(private["calmesh"], "rule1");
    emulator
        .insert(
            &ann,
            cal,
            timed("plain", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z"),
        )
        .await;
    let mut other = timed("other", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z");
    other["extendedProperties"] = json!({"private": {"calmesh": "rule2"}});
    emulator.insert(&ann, cal, other).await;

    let (items, _) = emulator
        .list_all(
            &ann,
            cal,
            &format!("privateExtendedProperty={}", encode("calmesh=rule1")),
        )
        .await;
    assert_eq!(ids(&items), vec!["tagged001"]);
    // The guide's reading: repeated constraints of one kind are OR'ed.
    let (items, _) = emulator
        .list_all(
            &ann,
            cal,
            &format!(
                "privateExtendedProperty={}&privateExtendedProperty={}",
                encode("calmesh=rule1"),
                encode("calmesh=rule2")
            ),
        )
        .await;
    assert_eq!(items.len(), 2);
    // Private and shared constraints are AND'ed.
    let (items, _) = emulator
        .list_all(
            &ann,
            cal,
            &format!(
                "privateExtendedProperty={}&sharedExtendedProperty={}",
                encode("calmesh=rule2"),
                encode("s=1")
            ),
        )
        .await;
    assert!(items.is_empty());

    // PATCH with null deletes a key and keeps the others.
    let path = event_path(cal, "tagged001");
    let (_, _, patched) = emulator
        .call(
            &ann,
            Method::PATCH,
            &path,
            Some(json!({"extendedProperties": {"private": {"long": null, "added": "y"}}})),
            &[],
        )
        .await;
    assert_eq!(
        patched["extendedProperties"],
        json!({"private": {"calmesh": "rule1", "added": "y"}, "shared": {"s": "1"}})
    );
    // PUT replaces the whole set.
    let mut put = patched.clone();
    put["extendedProperties"] = json!({"private": {"only": "z"}});
    let (_, _, updated) = emulator
        .call(&ann, Method::PUT, &path, Some(put), &[])
        .await;
    assert_eq!(
        updated["extendedProperties"],
        json!({"private": {"only": "z"}})
    );

    let many: serde_json::Map<String, Value> =
        (0..301).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (status, _, body) = emulator
        .call(
            &ann,
            Method::PATCH,
            &path,
            Some(json!({"extendedProperties": {"shared": many}})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 400);
}

#[tokio::test]
async fn stored_events_round_trip_unchanged() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    let sent = json!({
        "summary": "Dentist",
        "description": "Bring the form",
        "location": "Main St 1",
        "start": {"dateTime": "2025-03-03T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2025-03-03T11:00:00+01:00", "timeZone": "Europe/Berlin"},
        "colorId": "5",
        "transparency": "transparent",
        "visibility": "private",
        "source": {"title": "app", "url": "https://example.com"},
        "attendees": [{"email": "ann@example.com", "responseStatus": "accepted", "self": true}],
        "reminders": {"useDefault": false, "overrides": [{"method": "popup", "minutes": 10}]},
        "extendedProperties": {"private": {"a": "1"}},
        "guestsCanModify": true,
    });
    let created = emulator.insert(&ann, cal, sent.clone()).await;
    let raw = emulator
        .control(
            Method::GET,
            &format!("/_emulator/calendars/{cal}/events"),
            None,
        )
        .await;
    let stored = &raw["items"][0];
    for (key, value) in sent.as_object().unwrap() {
        assert_eq!(&created[key], value, "{key}");
        assert_eq!(&stored[key], value, "{key}");
    }
    assert_eq!(stored, &created);
}

#[tokio::test]
async fn free_busy() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    emulator
        .insert(
            &ann,
            cal,
            timed("busy", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z"),
        )
        .await;
    emulator
        .insert(
            &ann,
            cal,
            timed("adjacent", "2025-03-03T11:00:00Z", "2025-03-03T11:30:00Z"),
        )
        .await;
    let mut free = timed("free", "2025-03-03T13:00:00Z", "2025-03-03T14:00:00Z");
    free["transparency"] = json!("transparent");
    emulator.insert(&ann, cal, free).await;
    let gone = emulator
        .insert(
            &ann,
            cal,
            timed("gone", "2025-03-03T15:00:00Z", "2025-03-03T16:00:00Z"),
        )
        .await;
    emulator
        .call(
            &ann,
            Method::DELETE,
            &event_path(cal, gone["id"].as_str().unwrap()),
            None,
            &[],
        )
        .await;
    emulator
        .insert(
            &ann,
            cal,
            json!({"summary": "daily", "start": {"dateTime": "2025-03-01T08:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2025-03-01T08:15:00", "timeZone": "UTC"}, "recurrence": ["RRULE:FREQ=DAILY"]}),
        )
        .await;

    let (status, _, body) = emulator
        .call(
            &ann,
            Method::POST,
            "/calendar/v3/freeBusy",
            Some(json!({
                "timeMin": "2025-03-03T00:00:00Z",
                "timeMax": "2025-03-04T00:00:00Z",
                "items": [{"id": "ann@example.com"}, {"id": "nobody@example.com"}]
            })),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "calendar#freeBusy");
    assert_eq!(
        body["calendars"]["ann@example.com"]["busy"],
        json!([
            {"start": "2025-03-03T08:00:00Z", "end": "2025-03-03T08:15:00Z"},
            {"start": "2025-03-03T10:00:00Z", "end": "2025-03-03T11:30:00Z"},
        ])
    );
    assert_eq!(
        body["calendars"]["nobody@example.com"]["errors"],
        json!([{"domain": "global", "reason": "notFound"}])
    );
}

#[tokio::test]
async fn rate_limit_faults_and_stats() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let bob = emulator.account("bob@example.com").await;
    let cal = "ann@example.com";
    emulator
        .control(Method::POST, "/_emulator/stats/reset", None)
        .await;

    emulator
        .faults(json!({"rate_limit": {"probability": 1.0, "status": 429}}))
        .await;
    let (status, headers, body) = emulator
        .call(&ann, Method::GET, &events_path(cal), None, &[])
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.get("retry-after").is_none());
    assert_eq!(
        body,
        json!({"error": {"errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded"}], "code": 429, "message": "Rate Limit Exceeded"}})
    );
    // The token endpoint is not affected unless asked.
    let (status, _) = emulator
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &ann.refresh_token),
            ("client_id", &ann.client_id),
            ("client_secret", &ann.client_secret),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);

    emulator
        .faults(json!({"rate_limit": {"probability": 1.0, "status": 403, "reason": "userRateLimitExceeded", "account": "bob@example.com"}}))
        .await;
    let (status, _) = emulator.get(&ann, &events_path(cal)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = emulator.get(&bob, &events_path("primary")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(reason(&body), "userRateLimitExceeded");
    assert_eq!(body["error"]["message"], "User Rate Limit Exceeded");

    emulator
        .faults(json!({"reset": true, "server_error": {"probability": 1.0, "status": 503}}))
        .await;
    let (status, body) = emulator.get(&ann, &events_path(cal)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reason(&body), "backendError");
    emulator.faults(json!({"reset": true})).await;
    emulator
        .insert(
            &ann,
            cal,
            timed("a", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z"),
        )
        .await;

    let stats = emulator
        .control(Method::GET, "/_emulator/stats", None)
        .await;
    let routes = &stats["by_route"];
    assert_eq!(routes["GET /calendar/v3/calendars/{calendarId}/events"], 4);
    assert_eq!(routes["POST /calendar/v3/calendars/{calendarId}/events"], 1);
    assert_eq!(routes["POST /token"], 1);
    assert_eq!(stats["total"], 6);
    assert_eq!(stats["faults_injected"], 3);
    assert_eq!(stats["by_account"]["ann@example.com"], 5);
    assert_eq!(stats["by_account"]["bob@example.com"], 1);
    let stats = emulator
        .control(Method::POST, "/_emulator/stats/reset", None)
        .await;
    assert_eq!(stats["total"], 0);
}

#[tokio::test]
async fn drop_connection_closes_without_answer() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    emulator
        .faults(json!({"drop_connection": {"probability": 1.0}}))
        .await;
    let result = emulator
        .http
        .get(emulator.url(&events_path("primary")))
        .bearer_auth(&ann.token)
        .send()
        .await;
    assert!(result.is_err(), "{result:?}");
    emulator.faults(json!({"reset": true})).await;
    let (status, _) = emulator.get(&ann, &events_path("primary")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn secondary_calendars() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let (status, _, calendar) = emulator
        .call(
            &ann,
            Method::POST,
            "/calendar/v3/calendars",
            Some(json!({"summary": "Busy blocks", "timeZone": "Europe/Berlin"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{calendar}");
    let id = calendar["id"].as_str().unwrap();
    assert!(id.ends_with("@group.calendar.google.com"));
    assert_eq!(id.split('@').next().unwrap().len(), 26);
    let (_, body) = emulator
        .get(&ann, "/calendar/v3/users/me/calendarList?maxResults=1")
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    let (_, list) = emulator
        .get(&ann, "/calendar/v3/users/me/calendarList")
        .await;
    let entries = list["items"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["id"], id);
    assert_eq!(entries[1]["timeZone"], "Europe/Berlin");
    assert!(entries[1].get("primary").is_none());
    let created = emulator
        .insert(
            &ann,
            id,
            timed("block", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z"),
        )
        .await;
    assert_eq!(created["organizer"]["email"], id);
    let (_, body) = emulator.get(&ann, &events_path(id)).await;
    assert_eq!(body["timeZone"], "Europe/Berlin");
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
}

#[derive(Debug)]
struct Delivery {
    headers: HeaderMap,
    body_len: usize,
}

/// A local webhook receiver; every delivery goes into the channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (sender, deliveries) = mpsc::unbounded_channel();
    async fn hook(
        State(sender): State<mpsc::UnboundedSender<Delivery>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::http::StatusCode {
        let _ = sender.send(Delivery {
            headers,
            body_len: body.len(),
        });
        axum::http::StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, deliveries)
}

fn header<'a>(delivery: &'a Delivery, name: &str) -> &'a str {
    delivery
        .headers
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

async fn next_delivery(deliveries: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), deliveries.recv())
        .await
        .expect("a delivery")
        .unwrap()
}

#[tokio::test]
async fn watch_delivers_sync_then_exists_until_stopped() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    let (address, mut deliveries) = receiver().await;

    let (status, _, channel) = emulator
        .call(
            &ann,
            Method::POST,
            &format!("{}/watch", events_path(cal)),
            Some(json!({"id": "chan-1", "type": "web_hook", "address": address, "token": "secret-token"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{channel}");
    assert_eq!(channel["kind"], "api#channel");
    assert_eq!(channel["id"], "chan-1");
    assert_eq!(channel["token"], "secret-token");
    let resource_id = channel["resourceId"].as_str().unwrap().to_string();
    let expiration: i64 = channel["expiration"].as_str().unwrap().parse().unwrap();
    let now = calmesh_clock::now().timestamp_millis();
    assert!(
        (expiration - now - 3_600_000).abs() < 60_000,
        "default TTL of one hour"
    );

    let sync = next_delivery(&mut deliveries).await;
    assert_eq!(header(&sync, "x-goog-resource-state"), "sync");
    assert_eq!(header(&sync, "x-goog-message-number"), "1");
    assert_eq!(header(&sync, "x-goog-channel-id"), "chan-1");
    assert_eq!(header(&sync, "x-goog-resource-id"), resource_id);
    assert_eq!(header(&sync, "x-goog-channel-token"), "secret-token");
    assert_eq!(header(&sync, "user-agent"), "APIs-Google");
    assert_eq!(header(&sync, "content-length"), "0");
    assert!(header(&sync, "x-goog-channel-expiration").ends_with(" GMT"));
    assert!(header(&sync, "x-goog-resource-uri").contains("/calendar/v3/calendars/"));
    assert_eq!(sync.body_len, 0);

    emulator
        .insert(
            &ann,
            cal,
            timed("a", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z"),
        )
        .await;
    let exists = next_delivery(&mut deliveries).await;
    assert_eq!(header(&exists, "x-goog-resource-state"), "exists");
    let first: u64 = header(&exists, "x-goog-message-number").parse().unwrap();
    assert!(first > 1);
    emulator
        .insert(
            &ann,
            cal,
            timed("b", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z"),
        )
        .await;
    let second: u64 = header(
        &next_delivery(&mut deliveries).await,
        "x-goog-message-number",
    )
    .parse()
    .unwrap();
    assert!(second > first);

    // A duplicate channel id is refused.
    let (status, _, _) = emulator
        .call(
            &ann,
            Method::POST,
            &format!("{}/watch", events_path(cal)),
            Some(json!({"id": "chan-1", "type": "web_hook", "address": address})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _, _) = emulator
        .call(
            &ann,
            Method::POST,
            "/calendar/v3/channels/stop",
            Some(json!({"id": "chan-1", "resourceId": resource_id})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    emulator
        .insert(
            &ann,
            cal,
            timed("c", "2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z"),
        )
        .await;
    let late = tokio::time::timeout(Duration::from_millis(300), deliveries.recv()).await;
    assert!(late.is_err(), "no delivery after stop: {late:?}");
    let (status, _, body) = emulator
        .call(
            &ann,
            Method::POST,
            "/calendar/v3/channels/stop",
            Some(json!({"id": "chan-1", "resourceId": resource_id})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(reason(&body), "notFound");
    let stats = emulator
        .control(Method::GET, "/_emulator/stats", None)
        .await;
    assert_eq!(stats["notifications_sent"], 3);
}

#[tokio::test]
async fn dropped_notifications_and_channel_cap() {
    let config = EmulatorConfig {
        channel_max_ttl: Duration::from_secs(600),
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::with_config(config).await;
    let ann = emulator.account("ann@example.com").await;
    let (address, mut deliveries) = receiver().await;
    emulator
        .faults(json!({"drop_notifications": {"probability": 1.0}}))
        .await;
    let (_, _, channel) = emulator
        .call(
            &ann,
            Method::POST,
            &format!("{}/watch", events_path("primary")),
            Some(json!({"id": "chan-2", "type": "web_hook", "address": address, "params": {"ttl": "86400"}})),
            &[],
        )
        .await;
    let expiration: i64 = channel["expiration"].as_str().unwrap().parse().unwrap();
    let now = calmesh_clock::now().timestamp_millis();
    assert!(
        (expiration - now - 600_000).abs() < 60_000,
        "capped at the configured maximum"
    );
    let late = tokio::time::timeout(Duration::from_millis(200), deliveries.recv()).await;
    assert!(late.is_err(), "dropped");
    let stats = emulator
        .control(Method::GET, "/_emulator/stats", None)
        .await;
    assert_eq!(stats["notifications_dropped"], 1);
}

#[tokio::test]
async fn authorization_code_with_pkce() {
    use base64::Engine;
    use sha2::Digest;
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    emulator.account("bob@example.com").await;
    let verifier = "a-verifier-of-enough-length-0123456789-abcdefghij";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let redirect = "http://127.0.0.1:9/callback";

    let authorize = |hint: &str| {
        format!(
            "{}/o/oauth2/auth?client_id={}&redirect_uri={}&response_type=code&code_challenge={}&code_challenge_method=S256&state=xyz&login_hint={}&scope={}",
            emulator.base,
            encode(&ann.client_id),
            encode(redirect),
            challenge,
            encode(hint),
            encode("https://www.googleapis.com/auth/calendar")
        )
    };
    let code = |location: &str| -> String {
        let url = url::Url::parse(location).unwrap();
        let pairs: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        assert_eq!(pairs["state"], "xyz");
        pairs["code"].clone()
    };

    let response = emulator
        .http
        .get(authorize("bob@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(redirect));
    let wrong_code = code(&location);
    let (status, body) = emulator
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &wrong_code),
            ("redirect_uri", redirect),
            ("client_id", &ann.client_id),
            ("client_secret", &ann.client_secret),
            ("code_verifier", "not-the-verifier"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let response = emulator
        .http
        .get(authorize("bob@example.com"))
        .send()
        .await
        .unwrap();
    let good_code = code(response.headers()["location"].to_str().unwrap());
    let (status, body) = emulator
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &good_code),
            ("redirect_uri", redirect),
            ("client_id", &ann.client_id),
            ("client_secret", &ann.client_secret),
            ("code_verifier", verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let bob = Account {
        email: "bob@example.com".into(),
        refresh_token: refresh.clone(),
        client_id: ann.client_id.clone(),
        client_secret: ann.client_secret.clone(),
        token: body["access_token"].as_str().unwrap().to_string(),
    };
    let (status, list) = emulator
        .get(&bob, "/calendar/v3/users/me/calendarList")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["id"], bob.email);
    // The code is single-use; the refresh token works.
    let (status, _) = emulator
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &good_code),
            ("redirect_uri", redirect),
            ("client_id", &ann.client_id),
            ("client_secret", &ann.client_secret),
            ("code_verifier", verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = emulator
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &bob.refresh_token),
            ("client_id", &bob.client_id),
            ("client_secret", &bob.client_secret),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn push_retries_server_errors() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let (sender, mut deliveries) = mpsc::unbounded_channel::<String>();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let sender = sender.clone();
            let calls = calls.clone();
            async move {
                let number = headers["x-goog-message-number"]
                    .to_str()
                    .unwrap()
                    .to_string();
                let _ = sender.send(number);
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (status, _, _) = emulator
        .call(
            &ann,
            Method::POST,
            &format!("{}/watch", events_path("primary")),
            Some(json!({"id": "chan-r", "type": "web_hook", "address": address})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut numbers = Vec::new();
    for _ in 0..3 {
        let number = tokio::time::timeout(Duration::from_secs(5), deliveries.recv())
            .await
            .unwrap()
            .unwrap();
        numbers.push(number);
    }
    assert_eq!(numbers, vec!["1", "1", "1"], "the same message, retried");
    let stats = emulator
        .control(Method::GET, "/_emulator/stats", None)
        .await;
    assert_eq!(stats["notifications_sent"], 1);
}

#[tokio::test]
async fn list_filters() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    let mut first = timed("Team lunch", "2025-03-03T12:00:00Z", "2025-03-03T13:00:00Z");
    first["iCalUID"] = json!("lunch@example.com");
    first["location"] = json!("Canteen");
    let first = emulator.insert(&ann, cal, first).await;
    let mut duplicate = timed("again", "2025-03-03T12:00:00Z", "2025-03-03T13:00:00Z");
    duplicate["iCalUID"] = json!("lunch@example.com");
    let (status, _, _) = emulator
        .call(&ann, Method::POST, &events_path(cal), Some(duplicate), &[])
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a live iCalUID is taken");
    let second = emulator
        .insert(
            &ann,
            cal,
            timed("Review", "2025-03-04T12:00:00Z", "2025-03-04T13:00:00Z"),
        )
        .await;

    let (items, _) = emulator.list_all(&ann, cal, "q=canteen").await;
    assert_eq!(ids(&items), ids(std::slice::from_ref(&first)));
    let (items, _) = emulator
        .list_all(&ann, cal, "iCalUID=lunch%40example.com")
        .await;
    assert_eq!(ids(&items), ids(std::slice::from_ref(&first)));

    let before = calmesh_clock::now() - chrono::Duration::seconds(1);
    emulator
        .call(
            &ann,
            Method::DELETE,
            &event_path(cal, second["id"].as_str().unwrap()),
            None,
            &[],
        )
        .await;
    let (items, _) = emulator.list_all(&ann, cal, "").await;
    assert_eq!(items.len(), 1, "deleted events are hidden");
    let (items, _) = emulator.list_all(&ann, cal, "showDeleted=true").await;
    assert_eq!(items.len(), 2);
    let updated_min = encode(&before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let (items, _) = emulator
        .list_all(&ann, cal, &format!("updatedMin={updated_min}"))
        .await;
    assert!(
        items.iter().any(|item| item["status"] == "cancelled"),
        "updatedMin includes deletions"
    );

    let (_, body) = emulator
        .get(
            &ann,
            &format!("{}?timeZone=Asia%2FTokyo&orderBy=updated", events_path(cal)),
        )
        .await;
    assert_eq!(body["timeZone"], "Asia/Tokyo");
    assert_eq!(body["kind"], "calendar#events");
    assert_eq!(body["accessRole"], "owner");
}

#[tokio::test]
async fn sync_token_age_limit() {
    let emulator = Emulator::start().await;
    let ann = emulator.account("ann@example.com").await;
    let (_, token) = emulator.list_all(&ann, "primary", "").await;
    emulator.faults(json!({"sync_token_max_age_secs": 0})).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, body) = emulator
        .get(
            &ann,
            &format!("{}?syncToken={}", events_path("primary"), encode(&token)),
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(reason(&body), "fullSyncRequired");
    emulator
        .faults(json!({"sync_token_max_age_secs": 3600}))
        .await;
    let (status, _) = emulator
        .get(
            &ann,
            &format!("{}?syncToken={}", events_path("primary"), encode(&token)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn incremental_results_clipped_to_first_window() {
    let config = EmulatorConfig {
        clip_incremental_to_first_window: true,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::with_config(config).await;
    let ann = emulator.account("ann@example.com").await;
    let cal = "ann@example.com";
    let outside = emulator
        .insert(
            &ann,
            cal,
            timed("old", "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"),
        )
        .await;
    let (_, token) = emulator
        .list_all(
            &ann,
            cal,
            "timeMin=2025-01-01T00:00:00Z&timeMax=2026-01-01T00:00:00Z",
        )
        .await;
    let inside = emulator
        .insert(
            &ann,
            cal,
            timed("new", "2025-06-01T10:00:00Z", "2025-06-01T11:00:00Z"),
        )
        .await;
    emulator
        .insert(
            &ann,
            cal,
            timed("later", "2027-01-01T10:00:00Z", "2027-01-01T11:00:00Z"),
        )
        .await;
    emulator
        .call(
            &ann,
            Method::DELETE,
            &event_path(cal, outside["id"].as_str().unwrap()),
            None,
            &[],
        )
        .await;
    let (items, _) = emulator
        .list_all(&ann, cal, &format!("syncToken={}", encode(&token)))
        .await;
    let mut got = ids(&items);
    got.sort();
    let mut want = vec![
        inside["id"].as_str().unwrap().to_string(),
        outside["id"].as_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(got, want, "the window's events and every deletion");
}

#[tokio::test]
async fn accounts_from_rust() {
    let emulator = GoogleEmulator::new(EmulatorConfig::default());
    let credentials = emulator
        .add_account("cy@example.com", Some("Europe/Paris"))
        .unwrap();
    assert!(emulator.add_account("not an email", None).is_err());
    assert!(
        emulator
            .add_account("dee@example.com", Some("Mars/Base"))
            .is_err()
    );
    let (base, _server) = google::spawn_emulator(emulator, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = client();
    let response = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", credentials.refresh_token.as_str()),
            ("client_id", credentials.client_id.as_str()),
            ("client_secret", credentials.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token: Value = response.json().await.unwrap();
    let list: Value = http
        .get(format!("{base}/calendar/v3/users/me/calendarList"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["timeZone"], "Europe/Paris");
}

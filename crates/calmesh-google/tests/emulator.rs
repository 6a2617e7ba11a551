//! The Google adapter against the emulator over real HTTP: paging, sync
//! tokens, 410 fallback, conditional writes, client ids, and the failure
//! modes of providers.md §A (rate limits, 5xx, dropped connections, expired
//! access tokens, revoked grants).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use calmesh_core::event::Class;
use calmesh_core::{Event, EventTime, ItemId};
use calmesh_google::{GoogleAccount, GoogleProvider};
use calmesh_provider::{Change, Provider, ProviderError, RetryPolicy, WriteRequest};
use chrono::DurationRound;
use serde_json::{Value, json};

struct Setup {
    base: String,
    provider: GoogleProvider,
    http: reqwest::Client,
    creds: Value,
    _server: tokio::task::JoinHandle<()>,
}

const EMAIL: &str = "ann@example.com";

async fn setup() -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (base, server) = calmesh_emulators::google::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let creds: Value = http
        .post(format!("{base}/_emulator/accounts"))
        .json(&json!({"email": EMAIL}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let provider = provider(&base, &creds);
    Setup {
        base,
        provider,
        http,
        creds,
        _server: server,
    }
}

fn provider(base: &str, creds: &Value) -> GoogleProvider {
    GoogleProvider::new(GoogleAccount {
        api_base: base.to_owned(),
        token_url: format!("{base}/token"),
        client_id: creds["client_id"].as_str().unwrap().to_owned(),
        client_secret: creds["client_secret"].as_str().unwrap().to_owned(),
        refresh_token: creds["refresh_token"].as_str().unwrap().to_owned(),
        policy: RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(2),
            cap: Duration::from_millis(20),
        },
        per_second: 100_000.0,
        url_policy: calmesh_provider::UrlPolicy::default(),
    })
    .unwrap()
}

impl Setup {
    async fn faults(&self, faults: Value) {
        let r = self
            .http
            .post(format!("{}/_emulator/faults", self.base))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_emulator/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn block(id: &str, hour: u32) -> WriteRequest {
    // Tomorrow at `hour` UTC, by the clock the emulator reads too.
    let today = calmesh_clock::now()
        .duration_trunc(chrono::Duration::days(1))
        .unwrap();
    let start = today + chrono::Duration::days(1) + chrono::Duration::hours(i64::from(hour));
    let mut event = Event::new(ItemId::new(id), EventTime::Utc(start));
    event.end = Some(EventTime::Utc(start + chrono::Duration::hours(1)));
    event.summary = Some("Busy".into());
    event.class = Some(Class::Private);
    WriteRequest {
        id: id.to_owned(),
        event,
        tags: BTreeMap::from([("calmeshRule".to_owned(), "1".to_owned())]),
    }
}

fn ids(changes: &[Change]) -> Vec<String> {
    let mut out: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Upsert(e) => e.remote_id.clone(),
            Change::Removed(id) => format!("-{id}"),
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn full_then_incremental_pull_over_short_and_empty_pages() {
    let s = setup().await;
    for i in 0..25 {
        s.provider
            .create(EMAIL, &block(&format!("blk{i:03}"), i % 20))
            .await
            .unwrap();
    }
    s.faults(json!({"max_page_size": 4, "empty_page_probability": 0.3, "seed": 3}))
        .await;
    let full = s.provider.pull(EMAIL, None, &|_| {}).await.unwrap();
    assert!(full.full && !full.cursor_expired);
    assert_eq!(full.changes.len(), 25);
    assert!(full.problems.is_empty());
    let Change::Upsert(first) = &full.changes[0] else {
        panic!()
    };
    assert_eq!(first.tags.get("calmeshRule").map(String::as_str), Some("1"));
    let cursor = full.cursor.unwrap();

    let none = s
        .provider
        .pull(EMAIL, Some(&cursor), &|_| {})
        .await
        .unwrap();
    assert!(!none.full && none.changes.is_empty());
    let cursor = none.cursor.unwrap();

    s.provider.delete(EMAIL, "blk000", None).await.unwrap();
    let mut moved = block("blk001", 22);
    moved.event.summary = Some("Busy".into());
    s.provider.update(EMAIL, None, &moved).await.unwrap();
    let inc = s
        .provider
        .pull(EMAIL, Some(&cursor), &|_| {})
        .await
        .unwrap();
    assert_eq!(ids(&inc.changes), ["-blk000", "blk001"]);

    // An expired token falls back to a full listing (the caller diffs it).
    s.faults(json!({"expire_sync_tokens_now": true})).await;
    let again = s
        .provider
        .pull(EMAIL, inc.cursor.as_deref(), &|_| {})
        .await
        .unwrap();
    assert!(again.full && again.cursor_expired);
    assert_eq!(again.changes.len(), 24);
}

#[tokio::test]
async fn client_ids_and_etags() {
    let s = setup().await;
    let written = s
        .provider
        .create(EMAIL, &block("clientid1", 9))
        .await
        .unwrap();
    assert_eq!(written.entry.remote_id, "clientid1");
    assert_eq!(
        s.provider.create(EMAIL, &block("clientid1", 9)).await,
        Err(ProviderError::AlreadyExists)
    );
    let etag = written.entry.etag.clone().unwrap();
    let updated = s
        .provider
        .update(EMAIL, Some(&etag), &block("clientid1", 10))
        .await
        .unwrap();
    assert_ne!(updated.entry.etag.as_deref(), Some(etag.as_str()));
    // A stale etag is refused.
    assert_eq!(
        s.provider
            .update(EMAIL, Some(&etag), &block("clientid1", 11))
            .await,
        Err(ProviderError::PreconditionFailed)
    );
    assert_eq!(
        s.provider.delete(EMAIL, "clientid1", Some(&etag)).await,
        Err(ProviderError::PreconditionFailed)
    );
    s.provider
        .delete(EMAIL, "clientid1", updated.entry.etag.as_deref())
        .await
        .unwrap();
    assert_eq!(s.provider.get(EMAIL, "clientid1").await, Ok(None));
    // Deleted ids stay taken; deleting twice is "not found".
    assert_eq!(
        s.provider.create(EMAIL, &block("clientid1", 9)).await,
        Err(ProviderError::AlreadyExists)
    );
    assert_eq!(
        s.provider.delete(EMAIL, "clientid1", None).await,
        Err(ProviderError::NotFound)
    );
}

#[tokio::test]
async fn rate_limits_server_errors_and_dropped_connections_are_retried() {
    let s = setup().await;
    for (n, faults) in [
        json!({"rate_limit": {"probability": 0.3, "status": 403, "reason": "userRateLimitExceeded"}, "seed": 1}),
        json!({"rate_limit": {"probability": 0.3, "status": 429}, "seed": 2}),
        json!({"server_error": {"probability": 0.3, "status": 503}, "seed": 3}),
        json!({"drop_connection": {"probability": 0.3}, "seed": 4}),
    ]
    .into_iter()
    .enumerate()
    {
        s.faults(json!({"reset": true})).await;
        s.faults(faults.clone()).await;
        for i in 0..8 {
            s.provider
                .create(EMAIL, &block(&format!("rr{n}a{i}0"), i))
                .await
                .unwrap_or_else(|e| panic!("{faults}: {e}"));
        }
    }
    let stats = s.stats().await;
    assert!(stats["faults_injected"].as_u64().unwrap() >= 8, "{stats}");
    // Always failing: the error says so after the attempts run out.
    s.faults(json!({"reset": true})).await;
    s.faults(json!({"rate_limit": {"probability": 1.0, "status": 429}}))
        .await;
    match s.provider.create(EMAIL, &block("never", 1)).await {
        Err(ProviderError::RateLimited { attempts: 6, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn expired_access_token_is_refreshed_once_and_a_revoked_grant_is_final() {
    let s = setup().await;
    s.provider.pull(EMAIL, None, &|_| {}).await.unwrap();
    s.faults(json!({"expire_access_tokens_now": true})).await;
    s.provider.pull(EMAIL, None, &|_| {}).await.unwrap();
    let stats = s.stats().await;
    assert_eq!(stats["by_route"]["POST /token"], 2, "{stats}");

    s.http
        .post(format!("{}/_emulator/accounts/{EMAIL}/revoke", s.base))
        .send()
        .await
        .unwrap();
    let fresh = provider(&s.base, &s.creds);
    match fresh.pull(EMAIL, None, &|_| {}).await {
        Err(ProviderError::ReauthRequired(message)) => {
            assert!(message.contains("invalid_grant"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let stats = s.stats().await;
    assert_eq!(
        stats["by_route"]["POST /token"], 3,
        "one refused refresh, no retry loop"
    );
}

#[tokio::test]
async fn watch_delivers_sync_then_exists_and_stop_ends_it() {
    use axum::http::HeaderMap;
    use calmesh_provider::ChannelRequest;
    let s = setup().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<HeaderMap>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(headers);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let channel = s
        .provider
        .watch(
            EMAIL,
            &ChannelRequest {
                id: "chan-1".into(),
                address: hook,
                token: "secret-token".into(),
                ttl: Some(Duration::from_secs(600)),
            },
        )
        .await
        .unwrap();
    assert_eq!(channel.id, "chan-1");
    assert!(!channel.resource_id.is_empty());
    let expires = channel.expiration.unwrap();
    assert!(
        expires > calmesh_clock::now()
            && expires <= calmesh_clock::now() + chrono::Duration::seconds(601)
    );

    let wait = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<HeaderMap>| {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
    };
    let sync = wait(&mut rx).await;
    let h = |m: &HeaderMap, k: &str| m.get(k).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h(&sync, "x-goog-resource-state"), "sync");
    assert_eq!(h(&sync, "x-goog-message-number"), "1");
    assert_eq!(h(&sync, "x-goog-channel-id"), "chan-1");
    assert_eq!(h(&sync, "x-goog-channel-token"), "secret-token");
    assert_eq!(h(&sync, "x-goog-resource-id"), channel.resource_id);

    s.provider
        .create(EMAIL, &block("pushed1", 9))
        .await
        .unwrap();
    let exists = wait(&mut rx).await;
    assert_eq!(h(&exists, "x-goog-resource-state"), "exists");
    assert!(h(&exists, "x-goog-message-number").parse::<u64>().unwrap() > 1);

    s.provider.stop_channel(&channel).await.unwrap();
    assert_eq!(
        s.provider.stop_channel(&channel).await,
        Err(ProviderError::NotFound)
    );
    s.provider
        .create(EMAIL, &block("pushed2", 10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err(), "no delivery after stop");
}

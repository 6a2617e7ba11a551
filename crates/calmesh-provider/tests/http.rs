//! The shared HTTP client against a small local server: Retry-After is
//! honoured, a refused refresh is final, a 401 refreshes once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use calmesh_provider::http::{RateLimiter, Verdict};
use calmesh_provider::{HttpClient, OAuthClient, ProviderError, RetryPolicy};

fn classify(status: u16, _: &reqwest::header::HeaderMap, _: &[u8]) -> Verdict {
    match status {
        429 => Verdict::RateLimited("slow down".into()),
        401 => Verdict::Unauthorized("expired".into()),
        503 => Verdict::Transient("down".into()),
        s => Verdict::Fail(ProviderError::Rejected {
            status: s,
            reason: String::new(),
            message: String::new(),
        }),
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(4),
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/x",
        get(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response()
                } else {
                    (StatusCode::OK, "ok").into_response()
                }
            }
        }),
    );
    let base = serve(app).await;
    let client = HttpClient::new(
        "test",
        calmesh_provider::http::build_reqwest().unwrap(),
        policy(),
        Arc::new(RateLimiter::new(1000.0, 10)),
        None,
        classify,
    );
    let started = Instant::now();
    let response = client.send(|c| c.get(format!("{base}/x"))).await.unwrap();
    assert_eq!(response.body, b"ok");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(client.calls(), 2);
    // The backoff alone is at most 4 ms; the server asked for a second.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_grant_is_final_and_a_401_refreshes_once() {
    let token_hits = Arc::new(AtomicU32::new(0));
    let api_hits = Arc::new(AtomicU32::new(0));
    let (t, a) = (token_hits.clone(), api_hits.clone());
    let app = Router::new()
        .route(
            "/token",
            post(move |body: String| {
                let t = t.clone();
                async move {
                    t.fetch_add(1, Ordering::SeqCst);
                    if body.contains("refresh_token=dead") {
                        (StatusCode::BAD_REQUEST, r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#).into_response()
                    } else {
                        (StatusCode::OK, r#"{"access_token":"tok","expires_in":3600,"token_type":"Bearer"}"#).into_response()
                    }
                }
            }),
        )
        .route(
            "/api",
            get(move || {
                let a = a.clone();
                async move {
                    // The first call's token is "expired".
                    if a.fetch_add(1, Ordering::SeqCst) == 0 {
                        (StatusCode::UNAUTHORIZED, "").into_response()
                    } else {
                        (StatusCode::OK, "fine").into_response()
                    }
                }
            }),
        );
    let base = serve(app).await;
    let client = |refresh: &str| {
        let reqwest = calmesh_provider::http::build_reqwest().unwrap();
        let tokens = OAuthClient::new(
            reqwest.clone(),
            format!("{base}/token"),
            "id",
            "secret",
            refresh,
            policy(),
        );
        HttpClient::new(
            "test",
            reqwest,
            policy(),
            Arc::new(RateLimiter::new(1000.0, 10)),
            Some(Arc::new(tokens)),
            classify,
        )
    };
    let live = client("good");
    assert_eq!(
        live.send(|c| c.get(format!("{base}/api")))
            .await
            .unwrap()
            .body,
        b"fine"
    );
    assert_eq!(
        token_hits.load(Ordering::SeqCst),
        2,
        "one token, one refresh after the 401"
    );
    assert_eq!(api_hits.load(Ordering::SeqCst), 2);

    let dead = client("dead");
    match dead.send(|c| c.get(format!("{base}/api"))).await {
        Err(ProviderError::ReauthRequired(m)) => assert!(m.starts_with("invalid_grant"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        token_hits.load(Ordering::SeqCst),
        3,
        "no retry of a refused grant"
    );
    assert_eq!(
        api_hits.load(Ordering::SeqCst),
        2,
        "no API call without a token"
    );
}

#[tokio::test]
async fn the_rate_limiter_spaces_calls() {
    let limiter = RateLimiter::new(50.0, 1);
    let started = Instant::now();
    for _ in 0..6 {
        limiter.acquire().await;
    }
    // Five waits of 20 ms after the first (burst 1).
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn clients_of_one_account_share_its_rate() {
    use calmesh_provider::RateLimits;
    let limits = RateLimits::new(50.0, 1);
    let a = limits.for_account("7");
    assert!(Arc::ptr_eq(&a, &limits.for_account("7")));
    assert!(!Arc::ptr_eq(&a, &limits.for_account("8")));
    // Two clients (two workers) of account 7 make six calls in all: the
    // account's rate spaces all six, not three per client.
    let app = Router::new().route("/x", get(|| async { "ok" }));
    let base = serve(app).await;
    let client = || {
        HttpClient::new(
            "test",
            calmesh_provider::http::build_reqwest().unwrap(),
            policy(),
            Arc::new(RateLimiter::new(1000.0, 1000)),
            None,
            classify,
        )
        .with_limiter(limits.for_account("7"))
    };
    let (one, two) = (client(), client());
    let url = format!("{base}/x");
    let started = Instant::now();
    async fn three(c: &HttpClient, url: &str) {
        for _ in 0..3 {
            c.send(|http| http.get(url)).await.unwrap();
        }
    }
    tokio::join!(three(&one, &url), three(&two, &url));
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "{:?}",
        started.elapsed()
    );
}

/// A server answering every call with `status` and `Retry-After: wait`,
/// counting the calls.
async fn always(status: StatusCode, wait: &'static str) -> (String, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/x",
        get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                (status, [("retry-after", wait)], "").into_response()
            }
        }),
    );
    (serve(app).await, hits)
}

fn plain_client() -> HttpClient {
    HttpClient::new(
        "test",
        calmesh_provider::http::build_reqwest().unwrap(),
        policy(),
        Arc::new(RateLimiter::new(1000.0, 10)),
        None,
        classify,
    )
}

// Issue 16, fault 3: a 5xx with `Retry-After: 86400` was slept on, per
// attempt, while the job's heartbeat kept its lease.
#[tokio::test]
async fn a_long_retry_after_is_handed_to_the_caller_not_slept() {
    let (base, hits) = always(StatusCode::SERVICE_UNAVAILABLE, "86400").await;
    match plain_client().send(|c| c.get(format!("{base}/x"))).await {
        Err(e @ ProviderError::Unavailable { attempts: 1, .. }) => {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(86400)));
            assert!(e.is_transient() && !e.is_account_level(), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "no second attempt");

    let (base, hits) = always(StatusCode::TOO_MANY_REQUESTS, "120").await;
    match plain_client().send(|c| c.get(format!("{base}/x"))).await {
        Err(e @ ProviderError::RateLimited { attempts: 1, .. }) => {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_short_retry_after_on_a_5xx_is_waited_and_counted() {
    let (base, hits) = always(StatusCode::SERVICE_UNAVAILABLE, "0").await;
    match plain_client().send(|c| c.get(format!("{base}/x"))).await {
        Err(e @ ProviderError::Unavailable { attempts: 4, .. }) => {
            assert_eq!(e.retry_after(), Some(Duration::ZERO));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 4, "every attempt made");
}

// Issue 16, fault 1: an enormous `expires_in` overflowed `Instant +`.
#[tokio::test]
async fn an_absurd_token_lifetime_does_not_panic() {
    let app = Router::new()
        .route(
            "/token",
            post(|| async {
                r#"{"access_token":"tok","expires_in":18446744073709551615,"token_type":"Bearer"}"#
            }),
        )
        .route("/api", get(|| async { "fine" }));
    let base = serve(app).await;
    let reqwest = calmesh_provider::http::build_reqwest().unwrap();
    let tokens = OAuthClient::new(
        reqwest.clone(),
        format!("{base}/token"),
        "id",
        "secret",
        "good",
        policy(),
    );
    let client = HttpClient::new(
        "test",
        reqwest,
        policy(),
        Arc::new(RateLimiter::new(1000.0, 10)),
        Some(Arc::new(tokens)),
        classify,
    );
    for _ in 0..2 {
        let response = client.send(|c| c.get(format!("{base}/api"))).await.unwrap();
        assert_eq!(response.body, b"fine");
    }
}

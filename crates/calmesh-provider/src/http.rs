//! The HTTP client every adapter uses: bearer tokens with one refresh on 401,
//! a per-account rate limit, truncated exponential backoff with jitter on
//! rate limits, 5xx and dropped connections, `Retry-After` honoured, and a
//! count of every call made.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use reqwest::header::HeaderMap;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::ProviderError;
use crate::oauth::TokenSource;

/// How failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it.
    pub base: Duration,
    /// No backoff is longer than this (truncation).
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts, 500 ms doubling up to 32 s: about a minute in all, as
    /// Google's retry-strategy page suggests.
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(32),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first retry): half of
    /// `min(cap, base * 2^retry)` plus a random share of the other half, so
    /// clients that failed together do not retry together.
    pub fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .min(self.cap);
        let half = exp / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rng.random_range(0..=jitter_ms))
    }
}

/// The longest `Retry-After` waited out inside one call.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One [`RateLimiter`] per account, shared by everything in a process that
/// calls for that account (every worker's provider handles), so an
/// account's rate is its own however many jobs run at once.
#[derive(Debug)]
pub struct RateLimits {
    per_second: f64,
    burst: u32,
    limiters: std::sync::Mutex<std::collections::HashMap<String, Arc<RateLimiter>>>,
}

impl RateLimits {
    /// `per_second` calls per account on average, bursts up to `burst`.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst,
            limiters: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The limiter of `account` (any stable key), made on first use.
    pub fn for_account(&self, account: &str) -> Arc<RateLimiter> {
        // A poisoned lock only means a panic elsewhere mid-insert; the map
        // is still a valid map.
        let mut map = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(account.to_owned())
            .or_insert_with(|| Arc::new(RateLimiter::new(self.per_second, self.burst)))
            .clone()
    }
}

/// A token bucket: `per_second` calls on average, bursts up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limiter that starts full.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: per_second.max(0.001),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits until a call may be made, then takes its token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let elapsed = now.duration_since(state.1).as_secs_f64();
                state.0 = (state.0 + elapsed * self.per_second).min(self.burst);
                state.1 = now;
                if state.0 >= 1.0 {
                    state.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - state.0) / self.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// What an adapter makes of a response that is not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Rate limited: back off and retry.
    RateLimited(String),
    /// A transient server failure: back off and retry.
    Transient(String),
    /// The access token was refused: refresh once and retry.
    Unauthorized(String),
    /// Give up with this error.
    Fail(ProviderError),
}

/// The adapter's reading of a failed response: (status, headers, body) →
/// what to do.
pub type Classify = fn(u16, &HeaderMap, &[u8]) -> Verdict;

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

/// Counter: provider HTTP requests by `provider` and `status` (the HTTP
/// status code, or `error` when no response came). Every attempt counts,
/// retries included; token refreshes are not counted here.
pub const PROVIDER_REQUESTS_TOTAL: &str = "calmesh_provider_requests_total";

/// One account's HTTP client.
pub struct HttpClient {
    provider: &'static str,
    client: reqwest::Client,
    policy: RetryPolicy,
    limiter: Arc<RateLimiter>,
    calls: Arc<AtomicU64>,
    tokens: Option<Arc<dyn TokenSource>>,
    classify: Classify,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("policy", &self.policy)
            .field("calls", &self.calls.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The reqwest client all adapters share: rustls on ring, keep-alive, gzip
/// off (the emulators and JSON APIs answer small), timeouts so a stuck
/// connection becomes a retry. One per process (clones share its
/// connection pool): building one loads the system's root certificates,
/// tens of milliseconds, which every provider handle paid before.
pub fn build_reqwest() -> Result<reqwest::Client, ProviderError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = new_reqwest()?;
    // Two threads may build one each the first time; both work.
    Ok(CLIENT.get_or_init(|| client).clone())
}

fn new_reqwest() -> Result<reqwest::Client, ProviderError> {
    // Installing twice is harmless: the second call returns Err, ignored.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("calmesh/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::Request(format!("cannot build the HTTP client: {e}")))
}

impl HttpClient {
    /// A client for one account of `provider` (`google`, ...: the label of
    /// [`PROVIDER_REQUESTS_TOTAL`]).
    pub fn new(
        provider: &'static str,
        client: reqwest::Client,
        policy: RetryPolicy,
        limiter: Arc<RateLimiter>,
        tokens: Option<Arc<dyn TokenSource>>,
        classify: Classify,
    ) -> Self {
        Self {
            provider,
            client,
            policy,
            limiter,
            calls: Arc::new(AtomicU64::new(0)),
            tokens,
            classify,
        }
    }

    /// The same client, metered by `limiter` (one shared with the account's
    /// other clients, see [`RateLimits`]).
    pub fn with_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// The underlying reqwest client, to build requests with.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    /// Calls made so far, retries included (token refreshes are counted by
    /// the token source).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed) + self.tokens.as_ref().map_or(0, |t| t.calls())
    }

    /// Sends the request `make` builds (called again for each attempt) and
    /// returns a 2xx or 304 response; anything else goes through the
    /// adapter's [`Classify`] and the retry policy.
    pub async fn send(
        &self,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Response, ProviderError> {
        let mut refreshed = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.limiter.acquire().await;
            let mut request = make(&self.client);
            if let Some(tokens) = &self.tokens {
                let token = tokens.access_token().await?;
                request = request.bearer_auth(token);
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            let sent = request.send().await;
            let status_label = match &sent {
                Ok(response) => response.status().as_str().to_owned(),
                Err(_) => "error".to_owned(),
            };
            metrics::counter!(PROVIDER_REQUESTS_TOTAL, "provider" => self.provider, "status" => status_label)
                .increment(1);
            let (verdict, retry_after) = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let body = match response.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) => {
                            let v = Verdict::Transient(format!("reading the response: {e}"));
                            self.wait_or_give_up(attempt, &v, None).await?;
                            continue;
                        }
                    };
                    if (200..300).contains(&status) || status == 304 {
                        return Ok(Response {
                            status,
                            headers,
                            body,
                        });
                    }
                    let retry_after = retry_after(&headers);
                    ((self.classify)(status, &headers, &body), retry_after)
                }
                Err(e) if e.is_builder() => {
                    return Err(ProviderError::Request(e.to_string()));
                }
                Err(e) => (Verdict::Transient(format!("connection: {e}")), None),
            };
            match verdict {
                Verdict::Fail(error) => return Err(error),
                Verdict::Unauthorized(message) => {
                    let Some(tokens) = self.tokens.as_ref().filter(|_| !refreshed) else {
                        return Err(ProviderError::Unauthorized(message));
                    };
                    refreshed = true;
                    tokens.invalidate().await;
                    // A refresh is not a failure: it does not use up an attempt.
                    attempt -= 1;
                }
                v => self.wait_or_give_up(attempt, &v, retry_after).await?,
            }
        }
    }

    async fn wait_or_give_up(
        &self,
        attempt: u32,
        verdict: &Verdict,
        retry_after: Option<Duration>,
    ) -> Result<(), ProviderError> {
        // Out of attempts, or asked to wait longer than one call may (which
        // would stall the run and hold a job's lease): give up, and let the
        // caller schedule the retry (the error carries the wait).
        if attempt >= self.policy.max_attempts || retry_after.is_some_and(|w| w > MAX_RETRY_AFTER) {
            return Err(give_up(attempt, verdict, retry_after));
        }
        let backoff = self.policy.backoff(attempt - 1, &mut rand::rng());
        // Never longer than MAX_RETRY_AFTER in one wait.
        let wait = retry_after
            .map_or(backoff, |ra| ra.max(backoff))
            .min(MAX_RETRY_AFTER);
        tracing::debug!(attempt, ?wait, ?verdict, "retrying");
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// The error a call ends with after `attempts` attempts.
fn give_up(attempts: u32, verdict: &Verdict, retry_after: Option<Duration>) -> ProviderError {
    match verdict {
        Verdict::RateLimited(message) => ProviderError::RateLimited {
            attempts,
            message: message.clone(),
            retry_after,
        },
        Verdict::Transient(message) | Verdict::Unauthorized(message) => {
            ProviderError::Unavailable {
                attempts,
                message: message.clone(),
                retry_after,
            }
        }
        Verdict::Fail(e) => e.clone(),
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and read
/// as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_truncated() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        let mut rng = rand::rng();
        for _ in 0..200 {
            let d0 = policy.backoff(0, &mut rng);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
            let d2 = policy.backoff(2, &mut rng);
            assert!(d2 >= Duration::from_millis(200) && d2 <= Duration::from_millis(400));
            let d9 = policy.backoff(9, &mut rng);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000));
            let huge = policy.backoff(200, &mut rng);
            assert!(huge <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}

//! OAuth 2 access tokens from a refresh token (RFC 6749 §6), cached until
//! shortly before they expire. A refused grant (`invalid_grant`) means the
//! person must connect the account again: it is reported as
//! [`ProviderError::ReauthRequired`] and never retried.
//!
//! Written by hand rather than with the `oauth2` crate: the refresh grant is
//! one form POST, and oauth2 5 pins reqwest 0.12 (DESIGN.md, pitfalls).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::ProviderError;
use crate::http::RetryPolicy;

/// Where bearer tokens come from.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A live access token, refreshed when needed.
    async fn access_token(&self) -> Result<String, ProviderError>;
    /// Forgets the cached token (the provider refused it).
    async fn invalidate(&self);
    /// Token requests made so far.
    fn calls(&self) -> u64;
}

/// A refresh-token grant against a token endpoint.
pub struct OAuthClient {
    client: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: String,
    refresh_token: String,
    policy: RetryPolicy,
    cached: Mutex<Option<(String, Instant)>>,
    calls: AtomicU64,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A token is refreshed this long before the provider says it expires.
const EARLY: Duration = Duration::from_secs(60);

/// The longest access-token lifetime believed (Google's is an hour).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl OAuthClient {
    /// A token source for one account.
    pub fn new(
        client: reqwest::Client,
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            client,
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_token: refresh_token.into(),
            policy,
            cached: Mutex::new(None),
            calls: AtomicU64::new(0),
        }
    }

    async fn refresh(&self) -> Result<(String, Instant), ProviderError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.as_str()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
        ];
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let failure = match self.client.post(&self.token_url).form(&form).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.bytes().await.map_err(|e| {
                        ProviderError::Decode(format!("token endpoint response: {e}"))
                    })?;
                    if status == 200 {
                        let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                            ProviderError::Decode(format!("token endpoint response: {e}"))
                        })?;
                        // A lifetime is trusted up to a day: an absurd
                        // `expires_in` must neither overflow the instant nor
                        // keep a token Google would refuse long before.
                        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600))
                            .min(MAX_TOKEN_LIFETIME);
                        let expires = Instant::now() + lifetime.saturating_sub(EARLY);
                        return Ok((token.access_token, expires));
                    }
                    if (400..500).contains(&status) && status != 429 {
                        let error = serde_json::from_slice::<TokenError>(&body).ok();
                        let text = error.as_ref().map_or_else(
                            || format!("token endpoint answered {status}"),
                            |e| {
                                format!(
                                    "{}{}",
                                    e.error,
                                    e.error_description
                                        .as_deref()
                                        .map(|d| format!(": {d}"))
                                        .unwrap_or_default()
                                )
                            },
                        );
                        // invalid_grant (revoked, expired) and invalid_client
                        // or unauthorized_client (wrong client) need a person
                        // to connect again; anything else (a wrong token URL
                        // answering 404, say) is not the grant's fault.
                        let code = error.as_ref().map(|e| e.error.as_str());
                        return Err(match code {
                            Some("invalid_grant" | "invalid_client" | "unauthorized_client") => {
                                ProviderError::ReauthRequired(text)
                            }
                            _ => ProviderError::Request(format!("token endpoint: {text}")),
                        });
                    }
                    format!("token endpoint answered {status}")
                }
                Err(e) => format!("token endpoint: {e}"),
            };
            if attempt >= self.policy.max_attempts {
                return Err(ProviderError::Unavailable {
                    attempts: attempt,
                    message: failure,
                    retry_after: None,
                });
            }
            let wait = self.policy.backoff(attempt - 1, &mut rand::rng());
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl TokenSource for OAuthClient {
    async fn access_token(&self) -> Result<String, ProviderError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() < *expires
        {
            return Ok(token.clone());
        }
        let (token, expires) = self.refresh().await?;
        *cached = Some((token.clone(), expires));
        Ok(token)
    }

    async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

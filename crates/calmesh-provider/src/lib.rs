//! The `Provider` trait every calendar adapter implements, the errors they
//! share, and the HTTP client they all use: retries with truncated exponential
//! backoff and jitter, a per-account rate limit, OAuth refresh, and a count of
//! the API calls made (the cost that matters to users).
//!
//! Provider quirks do not live here: adapters classify their own error bodies
//! (see [`http::Classify`]).

pub mod error;
pub mod http;
pub mod oauth;
pub mod paging;
pub mod types;
pub mod url_policy;

pub use error::ProviderError;
pub use http::{HttpClient, PROVIDER_REQUESTS_TOTAL, RateLimiter, RateLimits, RetryPolicy};
pub use oauth::{OAuthClient, TokenSource};
pub use paging::PageTokens;
pub use types::*;
pub use url_policy::{ALLOW_INSECURE_HTTP_ENV, UrlPolicy};

use async_trait::async_trait;

/// One connected account at a provider, seen the same way whatever the
/// provider is.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's name (`google`).
    fn kind(&self) -> &'static str;

    /// The account's calendars.
    async fn calendars(&self) -> Result<Vec<RemoteCalendar>, ProviderError>;

    /// Changes since `cursor`, or a full listing without one (or when the
    /// cursor expired: then `full` is set on the result and the caller diffs
    /// it against its cache). `progress` is called with the number of
    /// entries received so far.
    async fn pull(
        &self,
        calendar: &str,
        cursor: Option<&str>,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<PullResult, ProviderError>;

    /// One entry, or None when it does not exist (or was deleted).
    async fn get(&self, calendar: &str, id: &str) -> Result<Option<RemoteEntry>, ProviderError>;

    /// Creates an entry under the client-chosen id `write.id`. An id already
    /// taken gives [`ProviderError::AlreadyExists`].
    async fn create(&self, calendar: &str, write: &WriteRequest) -> Result<Written, ProviderError>;

    /// Replaces an entry; with `if_match`, only if its etag still matches
    /// ([`ProviderError::PreconditionFailed`] otherwise).
    async fn update(
        &self,
        calendar: &str,
        if_match: Option<&str>,
        write: &WriteRequest,
    ) -> Result<Written, ProviderError>;

    /// Deletes an entry; with `if_match`, only if its etag still matches.
    /// A missing or already deleted entry gives [`ProviderError::NotFound`].
    async fn delete(
        &self,
        calendar: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ProviderError>;

    /// Asks for push notifications about changes in `calendar`. Providers
    /// without push answer [`ProviderError::Unsupported`].
    async fn watch(
        &self,
        calendar: &str,
        request: &ChannelRequest,
    ) -> Result<Channel, ProviderError> {
        let _ = (calendar, request);
        Err(ProviderError::Unsupported("push notifications"))
    }

    /// Stops a channel. An unknown or expired channel is
    /// [`ProviderError::NotFound`].
    async fn stop_channel(&self, channel: &Channel) -> Result<(), ProviderError> {
        let _ = channel;
        Err(ProviderError::Unsupported("push notifications"))
    }

    /// API calls made through this handle so far (retries count).
    fn api_calls(&self) -> u64;
}

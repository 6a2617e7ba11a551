//! Errors every adapter reports in the same terms.

use std::time::Duration;

/// What went wrong talking to a provider.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// Still rate limited after every retry.
    #[error("rate limited by the provider after {attempts} attempts: {message}")]
    RateLimited {
        /// Attempts made.
        attempts: u32,
        /// The provider's message.
        message: String,
        /// Retry-After, when the provider sent one.
        retry_after: Option<Duration>,
    },
    /// The provider kept failing (5xx or dropped connections) after every retry.
    #[error("provider unavailable after {attempts} attempts: {message}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        message: String,
        /// Retry-After, when the provider sent one.
        retry_after: Option<Duration>,
    },
    /// The provider refused the refresh token for good: a person must connect
    /// the account again. Never retried.
    #[error("the account must be connected again: {0}")]
    ReauthRequired(String),
    /// Credentials were refused even after a refresh.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The entry changed since the etag given.
    #[error("precondition failed: the entry changed since it was read")]
    PreconditionFailed,
    /// No such entry (or calendar).
    #[error("not found")]
    NotFound,
    /// The id is taken (possibly by a deleted entry).
    #[error("an entry with this id already exists")]
    AlreadyExists,
    /// The change cursor is no longer valid; a full listing is needed.
    #[error("the change cursor expired")]
    CursorExpired,
    /// The provider refused this item (a 4xx other than the above).
    #[error("the provider refused the request ({status} {reason}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The provider's reason code.
        reason: String,
        /// The provider's message.
        message: String,
    },
    /// The provider's answer could not be read.
    #[error("unreadable response: {0}")]
    Decode(String),
    /// The provider cannot do this.
    #[error("this provider does not support {0}")]
    Unsupported(&'static str),
    /// A request could not be built or sent for a reason retries cannot fix.
    #[error("request failed: {0}")]
    Request(String),
}

impl ProviderError {
    /// Whether the error concerns the whole account (stop using it this
    /// run) rather than one item: the grant or the credentials were refused,
    /// or the account's quota or rate limit is spent. A provider that keeps
    /// failing one write (`Unavailable`) is that item's error.
    pub fn is_account_level(&self) -> bool {
        matches!(
            self,
            Self::ReauthRequired(_) | Self::Unauthorized(_) | Self::RateLimited { .. }
        )
    }

    /// Whether the same request may succeed later unchanged (rate limits,
    /// 5xx and dropped connections after every retry), so the work is worth
    /// scheduling again.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. })
    }

    /// How long the provider asked to wait before the next try, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Unavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

//! Push webhooks: a provider says a watched calendar changed, calmesh
//! enqueues a pull of it.
//!
//! # Google (`POST /webhooks/google`)
//!
//! Google sends an empty `POST` per notification with `X-Goog-Channel-ID`,
//! `X-Goog-Channel-Token` (the secret calmesh chose when it made the
//! channel), `X-Goog-Resource-ID`, `X-Goog-Resource-State` and
//! `X-Goog-Message-Number` (1 for the first, `sync`, message, then
//! increasing but not consecutive). The handler answers from the store and
//! the queue only, never the provider:
//!
//! | delivery | status | enqueued | `outcome` label |
//! |---|---|---|---|
//! | no channel id | 400 | nothing | `bad_request` |
//! | unknown channel id (never made, deleted, gone with its calendar) | 404 | nothing | `unknown_channel` |
//! | token missing or wrong | 403 | nothing | `forbidden` |
//! | resource id missing or not the channel's | 403 | nothing | `forbidden` |
//! | state `sync` (the channel works) | 200 | nothing | `sync` |
//! | a change (`exists`, `not_exists`, or any other state) whose message number is not above the highest one seen | 200 | nothing | `replayed` |
//! | a change otherwise | 200 | a `pull_calendar` job | `accepted` |
//! | no resource state | 400 | nothing | `bad_request` |
//! | the store or queue failed | 503 | nothing | `error` |
//!
//! The job has key `pull:<calendar id>` and payload
//! `{"calendar": "<calendar id>", "reason": "push"}`, due now; pending jobs
//! coalesce by key, so a burst of notifications for one calendar makes one
//! pull (plus one more if a pull of it is running).
//!
//! A message number at or below the highest seen is a retry of a delivery
//! already acted on, or an older message overtaken by a newer one: the pull
//! the newer one enqueued starts after it arrived, so it covers the older
//! change too. The highest number is recorded only after the enqueue
//! succeeded, so a delivery that failed with 503 (Google retries 5xx with
//! backoff) still enqueues when it comes again. A change without a readable
//! message number is enqueued (a pull too many is cheap; a lost one costs
//! time until the next scheduled pull).
//!
//! Deliveries are counted in `calmesh_webhook_deliveries_total{provider,
//! outcome}`. Tokens are never logged.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use calmesh_jobs::JobKind;
use calmesh_store::ChannelCheck;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::AppState;
use crate::metrics::WEBHOOK_DELIVERIES_TOTAL;

/// `X-Goog-Channel-ID`.
pub const CHANNEL_ID: &str = "x-goog-channel-id";
/// `X-Goog-Channel-Token`.
pub const CHANNEL_TOKEN: &str = "x-goog-channel-token";
/// `X-Goog-Resource-State`.
pub const RESOURCE_STATE: &str = "x-goog-resource-state";
/// `X-Goog-Message-Number`.
pub const MESSAGE_NUMBER: &str = "x-goog-message-number";
/// `X-Goog-Resource-ID`.
pub const RESOURCE_ID: &str = "x-goog-resource-id";

/// What became of a delivery: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    BadRequest,
    UnknownChannel,
    Forbidden,
    Sync,
    Replayed,
    Accepted,
    Error,
    /// More deliveries in flight than [`MAX_IN_FLIGHT`].
    Busy,
    /// The delivery took longer than [`TIMEOUT`].
    Timeout,
    /// A body over [`MAX_BODY`].
    TooLarge,
}

/// Deliveries handled at once; more answer 503 at once (Google retries
/// them with backoff), so a flood cannot queue without bound.
pub const MAX_IN_FLIGHT: usize = 256;

/// How long one delivery may take (it reads one channel and enqueues one
/// job); past it the answer is 503.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Request bodies accepted on webhook routes. Google's deliveries have
/// none; anything larger is refused before it is read.
pub const MAX_BODY: usize = 16 * 1024;

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::BadRequest => "bad_request",
            Outcome::UnknownChannel => "unknown_channel",
            Outcome::Forbidden => "forbidden",
            Outcome::Sync => "sync",
            Outcome::Replayed => "replayed",
            Outcome::Accepted => "accepted",
            Outcome::Error => "error",
            Outcome::Busy => "busy",
            Outcome::Timeout => "timeout",
            Outcome::TooLarge => "too_large",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Outcome::BadRequest => StatusCode::BAD_REQUEST,
            Outcome::UnknownChannel => StatusCode::NOT_FOUND,
            Outcome::Forbidden => StatusCode::FORBIDDEN,
            Outcome::Sync | Outcome::Replayed | Outcome::Accepted => StatusCode::OK,
            Outcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::Error | Outcome::Busy | Outcome::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A header's value as text, or None when absent, empty or not visible
/// ASCII.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// `POST /webhooks/google`: see the [module](self) for what it answers.
pub async fn google(State(state): State<AppState>, headers: HeaderMap) -> StatusCode {
    google_within(&state.webhook_slots, &state, &headers).await
}

/// [`google`] within `slots` (at most that many at once) and [`TIMEOUT`].
pub async fn google_within(slots: &Semaphore, state: &AppState, headers: &HeaderMap) -> StatusCode {
    // The handler never reads a body; one announced over the limit is
    // refused all the same (a chunked one is never read).
    let too_large = header(headers, "content-length")
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64);
    let outcome = match slots.try_acquire() {
        _ if too_large => Outcome::TooLarge,
        Err(_) => Outcome::Busy,
        Ok(_permit) => tokio::time::timeout(TIMEOUT, google_delivery(state, headers))
            .await
            .unwrap_or(Outcome::Timeout),
    };
    metrics::counter!(
        WEBHOOK_DELIVERIES_TOTAL,
        "provider" => "google",
        "outcome" => outcome.label(),
    )
    .increment(1);
    outcome.status()
}

async fn google_delivery(state: &AppState, headers: &HeaderMap) -> Outcome {
    let Some(channel_id) = header(headers, CHANNEL_ID) else {
        return Outcome::BadRequest;
    };
    let token = header(headers, CHANNEL_TOKEN).unwrap_or("");
    let channel = match state.store.check_channel(channel_id, token).await {
        Ok(ChannelCheck::Valid(channel)) => channel,
        Ok(ChannelCheck::Unknown) => {
            tracing::debug!(channel = channel_id, "push for an unknown channel");
            return Outcome::UnknownChannel;
        }
        Ok(ChannelCheck::WrongToken) => {
            tracing::warn!(channel = channel_id, "push with a wrong or missing token");
            return Outcome::Forbidden;
        }
        Err(e) => {
            tracing::error!(
                channel = channel_id,
                "push: checking the channel failed: {e}"
            );
            return Outcome::Error;
        }
    };
    if header(headers, RESOURCE_ID) != Some(channel.resource_id.as_str()) {
        tracing::warn!(
            channel = channel_id,
            "push for another resource than the channel's"
        );
        return Outcome::Forbidden;
    }
    let Some(resource_state) = header(headers, RESOURCE_STATE) else {
        return Outcome::BadRequest;
    };
    let number = header(headers, MESSAGE_NUMBER).and_then(|n| n.parse::<i64>().ok());
    if resource_state == "sync" {
        if let Some(number) = number {
            // Best effort: only later changes are compared with it.
            if let Err(e) = state.store.note_channel_message(channel_id, number).await {
                tracing::warn!(
                    channel = channel_id,
                    "push: recording the sync message: {e}"
                );
            }
        }
        return Outcome::Sync;
    }
    if number
        .zip(channel.last_message)
        .is_some_and(|(number, last)| number <= last)
    {
        return Outcome::Replayed;
    }
    let calendar = channel.calendar.to_string();
    let enqueued = state
        .queue
        .enqueue(
            JobKind::PullCalendar,
            &format!("pull:{calendar}"),
            &json!({ "calendar": calendar, "reason": "push" }),
            None,
        )
        .await;
    if let Err(e) = enqueued {
        tracing::error!(
            channel = channel_id,
            "push: enqueueing the pull failed: {e}"
        );
        return Outcome::Error;
    }
    if let Some(number) = number {
        // After the enqueue: a delivery that failed above is enqueued when
        // Google retries it. Failing here only lets a replay enqueue again,
        // and coalescing absorbs that.
        if let Err(e) = state.store.note_channel_message(channel_id, number).await {
            tracing::warn!(
                channel = channel_id,
                "push: recording message {number}: {e}"
            );
        }
    }
    Outcome::Accepted
}

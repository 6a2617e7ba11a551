//! Liveness and readiness probes.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

/// How long `/readyz` waits for the database before it answers 503.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /healthz`: `200 ok` while the process serves requests. It reads no
/// database, so a database outage does not get the process restarted.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: `200 {"status":"ready"}` when the store answers with every
/// migration of this build applied ([`Store::ready`](calmesh_store::Store::ready)),
/// the job queue answers a count and every worker this process started is
/// running; otherwise, or after [`READY_TIMEOUT`],
/// `503 {"status":"unavailable","reason":"..."}` naming which part failed.
/// The reason never carries the error's text (a database address, a
/// driver message): that goes to the log only.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let check = async {
        if let Err(e) = state.store.ready().await {
            tracing::warn!("not ready: store: {e}");
            return Err("store unavailable".to_owned());
        }
        if let Err(e) = state.queue.counts().await {
            tracing::warn!("not ready: job queue: {e}");
            return Err("job queue unavailable".to_owned());
        }
        Ok::<(), String>(())
    };
    let reason = match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => match &state.workers {
            Some(workers) if workers.running() < workers.started() => format!(
                "{} of {} workers not running",
                workers.started() - workers.running(),
                workers.started()
            ),
            _ => return (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response(),
        },
        Ok(Err(reason)) => reason,
        Err(_) => format!("no answer from the database within {READY_TIMEOUT:?}"),
    };
    tracing::warn!(%reason, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "unavailable", "reason": reason })),
    )
        .into_response()
}

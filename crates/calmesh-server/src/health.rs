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
/// migration of this build applied ([`Store::ready`](calmesh_store::Store::ready))
/// and the job queue answers a count; otherwise, or after
/// [`READY_TIMEOUT`], `503 {"status":"unavailable","reason":"..."}` naming
/// which failed.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let check = async {
        state
            .store
            .ready()
            .await
            .map_err(|e| format!("store: {e}"))?;
        state
            .queue
            .counts()
            .await
            .map_err(|e| format!("job queue: {e}"))?;
        Ok::<(), String>(())
    };
    let reason = match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => return (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response(),
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

//! calmesh's HTTP server: what an operator's probes and Prometheus read, and
//! the push webhooks providers call.
//!
//! [`router`] serves:
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok`: the process is alive (touches no database) |
//! | `GET /readyz` | `200 {"status":"ready"}` when the store is reachable with every migration applied, the job queue answers and every worker of the process runs; else `503 {"status":"unavailable","reason":...}` naming the part (details only in the log) |
//! | `GET /metrics` | Prometheus text (see [`metrics`]) |
//! | `POST /webhooks/google` | a Google Calendar push delivery (see [`webhooks`]) |
//!
//! Handlers never call a provider: a webhook checks the channel in the
//! store and enqueues a coalesced pull, and answers in milliseconds.
//! [`serve`] runs the router on a listener until a shutdown future
//! completes, finishing the requests in flight.

pub mod health;
pub mod metrics;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use calmesh_jobs::JobQueue;
use calmesh_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

pub use crate::metrics::install_metrics;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store (channels, readiness).
    pub store: Arc<dyn Store>,
    /// The job queue webhooks enqueue into (and whose state `/metrics`
    /// shows).
    pub queue: Arc<dyn JobQueue>,
    /// Renders what was recorded through the `metrics` facade; usually
    /// [`install_metrics`]'s.
    pub metrics: PrometheusHandle,
    /// The process's workers, when it runs any: `/readyz` fails while one
    /// of them is not running.
    pub workers: Option<Arc<calmesh_sync::worker::WorkerHealth>>,
    /// Webhook deliveries in flight (at most [`webhooks::MAX_IN_FLIGHT`]).
    pub webhook_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// The state of a server over `store` and `queue`.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn JobQueue>,
        metrics: PrometheusHandle,
        workers: Option<Arc<calmesh_sync::worker::WorkerHealth>>,
    ) -> Self {
        Self {
            store,
            queue,
            metrics,
            workers,
            webhook_slots: Arc::new(tokio::sync::Semaphore::new(webhooks::MAX_IN_FLIGHT)),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The server's routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/webhooks/google",
            post(webhooks::google).layer(DefaultBodyLimit::max(webhooks::MAX_BODY)),
        )
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes, then stops
/// accepting connections and returns once the requests in flight are
/// answered.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

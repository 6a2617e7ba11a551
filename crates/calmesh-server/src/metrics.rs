//! Prometheus metrics.
//!
//! [`install_metrics`] installs the process-wide recorder of the `metrics`
//! facade once; every crate then records through `metrics::counter!`,
//! `histogram!` and `gauge!`, and `GET /metrics` renders it all, plus the
//! queue gauges, read from the queue at scrape time.
//!
//! | metric | type | labels | emitted by |
//! |---|---|---|---|
//! | `calmesh_jobs` | gauge | `state` (`pending`, `running`, `done`, `dead`), `kind` (`pull_calendar`, ...) | this crate, at scrape time, from [`JobQueue::counts`]; every pair of a known kind and state is present (0 when none) |
//! | `calmesh_jobs_oldest_pending_seconds` | gauge | - | this crate, at scrape time: how long the longest-waiting due pending job has been due (0 when none) |
//! | `calmesh_webhook_deliveries_total` | counter | `provider` (`google`), `outcome` (see [`crate::webhooks`]) | this crate, per push delivery |
//! | `calmesh_job_duration_seconds` | histogram (buckets 5 ms .. 10 min) | `kind`, `outcome` (`ok`, `retry`, `dead`, `released`) | the workers, per job attempt |
//! | `calmesh_provider_requests_total` | counter | `provider`, `status` (HTTP status code, or `error` when no response came) | the provider HTTP client, per request |
//! | `calmesh_runs_total` | counter | `kind` (`pull`, `sync`, `reset`), `outcome` (a run report's status: `ok`, `partial`, `failed`, `needs_confirmation`) | the executor, per finished run |
//!
//! Labels hold no ids (calendar, account, user): one series per id would
//! not scale to thousands of users.

use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use calmesh_jobs::{JobKind, JobQueue, JobState};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// Gauge: jobs by `state` and `kind`, read from the queue at scrape time.
pub const JOBS: &str = "calmesh_jobs";
/// Gauge: seconds the longest-waiting due pending job has been due.
pub const JOBS_OLDEST_PENDING_SECONDS: &str = "calmesh_jobs_oldest_pending_seconds";
/// Counter: push deliveries by `provider` and `outcome`.
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "calmesh_webhook_deliveries_total";
pub use calmesh_provider::PROVIDER_REQUESTS_TOTAL;
pub use calmesh_sync::metrics::{JOB_DURATION_SECONDS, RUNS_TOTAL};

/// The buckets of [`JOB_DURATION_SECONDS`]: a pull with nothing new takes
/// milliseconds, a first sync of a large calendar minutes.
const JOB_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Installs the process-wide recorder of the `metrics` facade, once, and
/// returns the handle that renders it. Later calls return the same handle
/// (tests call it many times).
///
/// If another recorder was installed before (by something other than this
/// function), that one keeps receiving the facade's metrics and the handle
/// renders none of them; `/metrics` then still shows the queue gauges. A
/// warning is logged.
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets_for_metric(
                Matcher::Full(JOB_DURATION_SECONDS.to_owned()),
                JOB_DURATION_BUCKETS,
            ) {
                Ok(builder) => builder,
                // Only empty buckets are refused; ours are not.
                Err(_) => PrometheusBuilder::new(),
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(
                    "another metrics recorder is installed; /metrics shows only the queue \
                     gauges: {e}"
                );
            }
            describe();
            handle
        })
        .clone()
}

/// The `# HELP` texts of the metrics recorded through the facade.
fn describe() {
    metrics::describe_counter!(
        WEBHOOK_DELIVERIES_TOTAL,
        "Push deliveries received, by provider and outcome."
    );
    metrics::describe_histogram!(
        JOB_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time per job attempt, by kind and outcome."
    );
    metrics::describe_counter!(
        PROVIDER_REQUESTS_TOTAL,
        "Provider HTTP requests, by provider and status."
    );
    metrics::describe_counter!(RUNS_TOTAL, "Finished runs, by kind and outcome.");
}

/// `GET /metrics`: the recorder's output and the queue gauges, in the
/// Prometheus text format. A queue that does not answer leaves its gauges
/// out (and logs why) rather than failing the scrape.
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.run_upkeep();
    let mut body = state.metrics.render();
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    match queue_gauges(state.queue.as_ref()).await {
        Ok(gauges) => body.push_str(&gauges),
        Err(e) => tracing::warn!("metrics: the job queue did not answer: {e}"),
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The queue gauges as Prometheus text: one `calmesh_jobs` sample per known
/// kind and state, and the oldest pending job's wait.
async fn queue_gauges(queue: &dyn JobQueue) -> Result<String, calmesh_jobs::JobError> {
    let counts = queue.counts().await?;
    let oldest = queue
        .oldest_pending_age(queue.now())
        .await?
        .unwrap_or_default();
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {JOBS} Jobs in the queue, by state and kind.");
    let _ = writeln!(out, "# TYPE {JOBS} gauge");
    for kind in JobKind::ALL {
        for state in JobState::ALL {
            let _ = writeln!(
                out,
                "{JOBS}{{state=\"{state}\",kind=\"{kind}\"}} {}",
                counts.get(*kind, *state)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP {JOBS_OLDEST_PENDING_SECONDS} How long the longest-waiting due pending job \
         has been due."
    );
    let _ = writeln!(out, "# TYPE {JOBS_OLDEST_PENDING_SECONDS} gauge");
    let _ = writeln!(
        out,
        "{JOBS_OLDEST_PENDING_SECONDS} {}",
        oldest.as_secs_f64()
    );
    Ok(out)
}

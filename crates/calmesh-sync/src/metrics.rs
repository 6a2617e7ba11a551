//! The metrics the executor and the workers record through the `metrics`
//! facade (the server installs the Prometheus recorder and renders them at
//! `GET /metrics`; without a recorder they cost next to nothing).

/// Histogram: seconds per job attempt, by `kind` (`pull_calendar`, ...) and
/// `outcome` (`ok`, `retry`, `dead`, `released`).
pub const JOB_DURATION_SECONDS: &str = "calmesh_job_duration_seconds";

/// Counter: finished runs by `kind` (`pull`, `sync`, `reset`) and `outcome`
/// (the run's status: `ok`, `partial`, `failed`, `needs_confirmation`).
pub const RUNS_TOTAL: &str = "calmesh_runs_total";

/// Gauge: workers of this process that are running (a worker whose task
/// died no longer counts).
pub const WORKERS_RUNNING: &str = "calmesh_workers_running";

/// Sets the running-workers gauge.
pub(crate) fn workers_running(n: usize) {
    metrics::gauge!(WORKERS_RUNNING).set(n as f64);
}

/// Counts one finished run.
pub(crate) fn run_finished(kind: &'static str, outcome: &str) {
    metrics::counter!(RUNS_TOTAL, "kind" => kind, "outcome" => outcome.to_owned()).increment(1);
}

/// Records how long one job attempt took and how it ended.
pub(crate) fn job_finished(kind: &'static str, outcome: &'static str, seconds: f64) {
    metrics::histogram!(JOB_DURATION_SECONDS, "kind" => kind, "outcome" => outcome).record(seconds);
}

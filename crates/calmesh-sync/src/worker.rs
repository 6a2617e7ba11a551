//! The worker: claims jobs from the durable queue and runs them with an
//! [`Engine`], renewing the lease while a job runs, and on shutdown stops
//! claiming and finishes (or releases) the job in hand.
//!
//! - `pull_calendar {"calendar": ID}`: pull one calendar into the cache; when
//!   the pull changed something (or was the first), enqueue a coalesced
//!   `reconcile_rule` for every rule that includes the calendar. A calendar
//!   no rule uses is not pulled, and its channels are stopped; a calendar
//!   or rule removed since the job was queued ends the job at once.
//! - `reconcile_rule {"rule": ID, "pull": bool}`: plan and apply one rule on
//!   the cached state (pulling its calendars first only when `pull` is set:
//!   cron-scheduled runs).
//!   Before each pull, the calendar gets a push channel when calmesh has a
//!   public URL and the calendar has none that lives on (watch, then pull:
//!   no change falls between the two).
//! - `cleanup`: delete finished jobs older than a week, runs older than 30
//!   days and expired channels.
//! - `renew_channels`: replace channels expiring within 12 hours (new
//!   channel first, then the old one is stopped).
//!
//! A provider error that concerns one run (rate limits, 5xx after retries)
//! fails the job, which the queue retries with backoff (honouring the
//! provider's `Retry-After`, which the error carries). A rule run that ends
//! `partial` with failures that may pass later (rate limits, 5xx, the
//! database) fails too, so the failed writes are retried; one whose only
//! failures are refusals (a 4xx for that item) is complete, its item errors
//! in the run report.
//!
//! A job that panics fails as a job (the panic's message is its error; the
//! queue retries it with backoff and marks it dead after the last attempt)
//! and the worker goes on with the next. [`WorkerHealth`] counts the workers
//! that are running, for `/readyz` and the `calmesh_workers_running` gauge.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;

use calmesh_core::{CalendarId, RuleId};
use calmesh_jobs::{Failed, Job, JobError, JobKind, JobQueue};
use calmesh_store::StoreError;
use serde_json::json;
use tokio::sync::watch;

use crate::{ChannelSettings, Engine, ProviderSettings, SyncRequest};

/// How long a claim holds a job by default: the worker renews it every
/// third of that while the job runs, and a job whose worker died is taken
/// over after at most this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// How a worker claims and holds jobs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique among all workers of all processes (`host:pid:n`).
    pub id: String,
    /// How long a claim holds a job before another worker may take it over.
    pub lease: Duration,
    /// How long to wait before claiming again when the queue is empty.
    pub idle_wait: Duration,
    /// How long a job in hand may run on after shutdown is asked before it
    /// is released for another worker.
    pub shutdown_grace: Duration,
    /// Push channels.
    pub channels: ChannelSettings,
}

impl WorkerConfig {
    /// Defaults for worker `n` of this process.
    pub fn numbered(n: usize) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
        Self {
            id: format!("{host}:{}:{n}", std::process::id()),
            lease: DEFAULT_LEASE,
            idle_wait: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(20),
            channels: ChannelSettings::default(),
        }
    }
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
enum JobFailure {
    #[error("bad payload: {0}")]
    Payload(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] JobError),
    #[error("{message}")]
    Provider {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error(transparent)]
    Sync(#[from] crate::SyncError),
    #[error("the job panicked: {0}")]
    Panic(String),
}

/// How many of a process's workers were started and how many still run.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    started: AtomicUsize,
    running: AtomicUsize,
}

impl WorkerHealth {
    /// Workers started in this process.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// Workers that are running (started and not yet returned, whether
    /// they stopped on shutdown or died).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Counts one more worker, running until the returned guard drops (when
    /// the worker returns, or when its task unwinds).
    pub fn enter(self: &Arc<Self>) -> RunningWorker {
        self.started.fetch_add(1, Ordering::Relaxed);
        let now = self.running.fetch_add(1, Ordering::Relaxed) + 1;
        crate::metrics::workers_running(now);
        RunningWorker(self.clone())
    }
}

/// Counts one worker as running until it is dropped: when the worker
/// returns, or when its task unwinds.
#[derive(Debug)]
pub struct RunningWorker(Arc<WorkerHealth>);

impl Drop for RunningWorker {
    fn drop(&mut self) {
        let now = self
            .0
            .running
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        crate::metrics::workers_running(now);
    }
}

/// The text of a caught panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Runs one worker until `shutdown` turns true, counted in `health` while
/// it runs.
pub async fn run_worker(
    engine: Arc<Engine>,
    queue: Arc<dyn JobQueue>,
    config: WorkerConfig,
    health: Arc<WorkerHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _running = health.enter();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let job = match queue.claim(&config.id, None, config.lease).await {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(worker = %config.id, "claim failed: {e}");
                None
            }
        };
        let Some(job) = job else {
            tokio::select! {
                _ = tokio::time::sleep(config.idle_wait) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        };
        run_claimed(&engine, queue.as_ref(), &config, job, &mut shutdown).await;
    }
}

/// Runs one claimed job to its end: complete, fail (retried later), or
/// release on shutdown.
async fn run_claimed(
    engine: &Engine,
    queue: &dyn JobQueue,
    config: &WorkerConfig,
    job: Job,
    shutdown: &mut watch::Receiver<bool>,
) {
    let work = run_job(engine, queue, &config.channels, &job);
    finish(queue, config, &job, work, shutdown).await;
}

/// Drives `work` (the claimed `job`'s run) to its end while renewing the
/// lease, and records the end in the queue: complete, fail (a panic in
/// `work` included), or release on shutdown.
async fn finish(
    queue: &dyn JobQueue,
    config: &WorkerConfig,
    job: &Job,
    work: impl Future<Output = Result<(), JobFailure>>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let started = std::time::Instant::now();
    // A panic is one job's failure, not the worker's end. The engine's
    // shared maps stay usable after one (their locks ignore poisoning).
    let work = AssertUnwindSafe(work).catch_unwind().map(|result| {
        result.unwrap_or_else(|panic| Err(JobFailure::Panic(panic_message(&*panic))))
    });
    tokio::pin!(work);
    let mut beat = tokio::time::interval(config.lease / 3);
    beat.tick().await;
    let mut deadline: Option<tokio::time::Instant> = None;
    let outcome = loop {
        let grace = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = &mut work => break Some(result),
            _ = beat.tick() => {
                if let Err(e) = queue.heartbeat(job.id, &config.id, config.lease).await {
                    // Another worker took the job over: stop, write nothing more.
                    tracing::warn!(job = %job.id, "lost the lease: {e}");
                    return;
                }
            }
            _ = shutdown.changed(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + config.shutdown_grace);
            }
            _ = grace => break None,
        }
    };
    let kind = job.kind.name();
    let elapsed = started.elapsed();
    let recorded = match outcome {
        None => {
            tracing::info!(job = %job.id, kind, "shutting down: job released");
            queue.release(job.id, &config.id).await.map(|()| "released")
        }
        Some(Ok(())) => {
            tracing::debug!(job = %job.id, kind, ?elapsed, "done");
            queue.complete(job.id, &config.id).await.map(|()| "ok")
        }
        Some(Err(failure)) => {
            let retry_after = match &failure {
                JobFailure::Provider { retry_after, .. } => *retry_after,
                _ => None,
            };
            tracing::warn!(job = %job.id, kind, "failed: {failure}");
            queue
                .fail(job.id, &config.id, &failure.to_string(), retry_after)
                .await
                .map(|failed| match failed {
                    Failed::Retry { .. } => "retry",
                    Failed::Dead => "dead",
                })
        }
    };
    match recorded {
        Ok(outcome) => crate::metrics::job_finished(kind, outcome, elapsed.as_secs_f64()),
        // The lease lapsed and another worker has the job: its attempt is
        // the one that counts.
        Err(e) => tracing::warn!(job = %job.id, kind, "recording the job's end failed: {e}"),
    }
}

fn payload_id(job: &Job, field: &str) -> Result<String, JobFailure> {
    match job.payload.get(field) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        _ => Err(JobFailure::Payload(format!(
            "{} job {} has no {field:?}",
            job.kind.name(),
            job.id
        ))),
    }
}

async fn run_job(
    engine: &Engine,
    queue: &dyn JobQueue,
    channels: &ChannelSettings,
    job: &Job,
) -> Result<(), JobFailure> {
    engine.new_run();
    let store = engine.store().clone();
    match job.kind {
        JobKind::PullCalendar => {
            let id = CalendarId::new(payload_id(job, "calendar")?);
            let before = match store.calendar(&id).await {
                Ok(c) => c,
                Err(StoreError::NotFound { .. }) => {
                    tracing::debug!(calendar = %id, "pull of a removed calendar: nothing to do");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            let account = store.account(&before.account).await?;
            let rules: Vec<_> = store
                .rules(&account.user)
                .await?
                .into_iter()
                .filter(|r| r.calendars().iter().any(|c| c == id.as_str()))
                .collect();
            if rules.is_empty() {
                // No rule uses the calendar (any more): no pull, and no
                // channel left to push for it.
                let stopped = engine.stop_channels(&before).await?;
                for error in stopped.errors {
                    tracing::warn!(calendar = %id, "{error}");
                }
                return Ok(());
            }
            // Watch first, then pull: a change made before the channel was
            // recorded is in the pull's listing, one made after it comes by
            // push, so none waits for the safety poll. Failures are logged;
            // polling goes on.
            let made = engine
                .ensure_channel(&before, channels, queue.now())
                .await?;
            for error in made.errors {
                tracing::warn!(calendar = %id, "push channel: {error}");
            }
            let report = engine.pull(&before).await;
            // A pull that committed nothing failed: the queue retries it.
            // Errors of single entries in a committed pull are the run's,
            // not the job's.
            if let Some(error) = report.error
                && !report.committed
            {
                return Err(JobFailure::Provider {
                    message: format!("pull of {}: {error}", report.calendar),
                    retry_after: report.retry_after,
                });
            }
            let changed =
                report.added + report.changed + report.removed > 0 || before.cursor.is_none();
            if changed {
                for rule in rules {
                    queue
                        .enqueue(
                            JobKind::ReconcileRule,
                            &format!("rule:{}", rule.id),
                            &json!({"rule": rule.id.to_string()}),
                            None,
                        )
                        .await?;
                }
            }
            Ok(())
        }
        JobKind::ReconcileRule => {
            let id = RuleId::new(payload_id(job, "rule")?);
            let rule = match store.rule(&id).await {
                Ok(rule) => rule,
                Err(StoreError::NotFound { .. }) => {
                    tracing::debug!(rule = %id, "run of a removed rule: nothing to do");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            let pull = job.payload.get("pull").and_then(serde_json::Value::as_bool) == Some(true);
            let request = SyncRequest {
                skip_pull: !pull,
                ..SyncRequest::default()
            };
            let report = engine.run_rule(&rule.user, &rule, &request).await?;
            if report.status == "failed" {
                return Err(JobFailure::Provider {
                    message: report
                        .message
                        .unwrap_or_else(|| format!("rule {} failed", rule.name)),
                    retry_after: report.retry_after,
                });
            }
            if report.status == "partial" && report.retryable > 0 {
                // Writes that may succeed later are retried with backoff
                // rather than left for the next change at the source. Those
                // the provider refused for good stay in the run report.
                return Err(JobFailure::Provider {
                    message: format!(
                        "rule {}: {} of {} failures may pass on a retry; first: {}",
                        rule.name,
                        report.retryable,
                        report.failed.max(report.retryable),
                        report
                            .errors
                            .first()
                            .map_or("a pull", |e| e.message.as_str())
                    ),
                    retry_after: report.retry_after,
                });
            }
            Ok(())
        }
        JobKind::Cleanup => {
            let now = queue.now();
            queue.cleanup(now - chrono::Duration::days(7)).await?;
            store
                .delete_runs_before(now - chrono::Duration::days(30))
                .await?;
            store.delete_expired_channels(now).await?;
            Ok(())
        }
        JobKind::RenewChannels => {
            let report = engine.renew_channels(channels, queue.now()).await?;
            for error in &report.errors {
                tracing::warn!("channel renewal: {error}");
            }
            Ok(())
        }
        other => Err(JobFailure::Payload(format!(
            "this build cannot run {} jobs",
            other.name()
        ))),
    }
}

/// Starts `n` workers sharing one engine (provider handles and access
/// tokens are shared; each job starts a fresh run), each configured as
/// `template` under its own id. Returns their handles.
pub fn spawn_workers(
    store: Arc<dyn calmesh_store::Store>,
    queue: Arc<dyn JobQueue>,
    settings: ProviderSettings,
    template: &WorkerConfig,
    n: usize,
    health: &Arc<WorkerHealth>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    // One rate limiter per account for the whole process.
    let limits = Engine::rate_limits(settings);
    (0..n)
        .map(|i| {
            // One engine per worker: an engine's run state is per job.
            let engine =
                Arc::new(Engine::new(store.clone(), settings).with_rate_limits(limits.clone()));
            let config = WorkerConfig {
                id: WorkerConfig::numbered(i).id,
                ..template.clone()
            };
            tokio::spawn(run_worker(
                engine,
                queue.clone(),
                config,
                health.clone(),
                shutdown.clone(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests;

//! `calmesh worker`, `calmesh jobs` and `calmesh status`: the store and the
//! job queue opened together (one database), workers, the scheduler loop
//! and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use calmesh_jobs::scheduler::{SchedulerConfig, tick};
use calmesh_jobs::{JobId, JobQueue, JobState, PgQueue, QueueConfig, SqliteQueue, SystemClock};
use calmesh_store::{PgStore, SqliteStore, Store};
use calmesh_sync::worker::WorkerHealth;
use tokio::sync::watch;

use crate::sync_cmd;

/// The store and the queue over one database.
pub struct Backend {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The job queue in the same database.
    pub queue: Arc<dyn JobQueue>,
}

/// Opens the store and the queue named by `--database`.
pub async fn open(database: &str, key_file: Option<&std::path::Path>) -> Result<Backend> {
    let key = sync_cmd::load_key(database, key_file)?;
    let clock = Arc::new(SystemClock);
    let scheme = database
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match scheme.as_str() {
        "sqlite" => {
            let store = SqliteStore::open(database, key)
                .await
                .with_context(|| format!("opening the database {database}"))?;
            let queue = SqliteQueue::open(store.pool().clone(), clock, QueueConfig::default())
                .await
                .context("opening the job queue")?;
            Ok(Backend {
                store: Arc::new(store),
                queue: Arc::new(queue),
            })
        }
        "postgres" | "postgresql" => {
            let store = PgStore::open(database, key)
                .await
                .context("opening the PostgreSQL database")?;
            let queue = PgQueue::open(store.pool().clone(), clock, QueueConfig::default())
                .await
                .context("opening the job queue")?;
            Ok(Backend {
                store: Arc::new(store),
                queue: Arc::new(queue),
            })
        }
        other => bail!("unsupported database scheme {other:?} (use sqlite:// or postgres://)"),
    }
}

/// How `serve` and `worker` run: workers and the scheduler.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Workers in this process (0: none).
    pub workers: usize,
    /// Time between scheduler ticks.
    pub tick_every: Duration,
    /// The scheduler's settings.
    pub scheduler: SchedulerConfig,
    /// How long a worker's claim holds a job (renewed while it runs).
    pub lease: Duration,
}

/// Workers to run by default: one per core, at least two (jobs mostly wait
/// on providers).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// A watch that turns true on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: no new jobs are claimed");
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Runs the scheduler tick every `every` until shutdown.
pub async fn scheduler_loop(
    store: Arc<dyn Store>,
    queue: Arc<dyn JobQueue>,
    every: Duration,
    config: SchedulerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match tick(store.as_ref(), queue.as_ref(), &config, queue.now()).await {
            Ok(report) => {
                for (rule, why) in &report.bad_schedules {
                    tracing::warn!(rule, "schedule ignored: {why}");
                }
                tracing::debug!(?report, "scheduler tick");
            }
            Err(e) => tracing::warn!("scheduler tick failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Runs `workers` workers and the scheduler loop until `shutdown`, and
/// waits for them to stop (each worker finishes or releases its job).
async fn run_until_shutdown(
    backend: &Backend,
    channels: calmesh_sync::ChannelSettings,
    options: &RunOptions,
    health: &Arc<WorkerHealth>,
    shutdown: watch::Receiver<bool>,
) {
    let handles = calmesh_sync::worker::spawn_workers(
        backend.store.clone(),
        backend.queue.clone(),
        sync_cmd::provider_settings(),
        &calmesh_sync::worker::WorkerConfig {
            channels,
            lease: options.lease,
            ..calmesh_sync::worker::WorkerConfig::numbered(0)
        },
        options.workers,
        health,
        shutdown.clone(),
    );
    let scheduler = tokio::spawn(scheduler_loop(
        backend.store.clone(),
        backend.queue.clone(),
        options.tick_every,
        options.scheduler,
        shutdown,
    ));
    for handle in handles {
        if let Err(e) = handle.await {
            tracing::error!("a worker died: {e}");
        }
    }
    let _ = scheduler.await;
}

/// `calmesh worker`: workers and the scheduler until SIGTERM.
pub async fn worker(
    database: &str,
    key_file: Option<&std::path::Path>,
    options: &RunOptions,
) -> Result<()> {
    let backend = open(database, key_file).await?;
    let shutdown = shutdown_signal()?;
    eprintln!(
        "calmesh worker: {} workers and the scheduler on {}",
        options.workers,
        redact(database)
    );
    let health = Arc::new(WorkerHealth::default());
    run_until_shutdown(&backend, channel_settings(), options, &health, shutdown).await;
    eprintln!("calmesh worker: stopped");
    Ok(())
}

/// Push channel settings: `CALMESH_PUBLIC_URL` is where providers reach
/// calmesh's webhooks (unset: no push, polling only).
pub fn channel_settings() -> calmesh_sync::ChannelSettings {
    calmesh_sync::ChannelSettings {
        public_url: std::env::var("CALMESH_PUBLIC_URL")
            .ok()
            .filter(|u| !u.trim().is_empty()),
        ..calmesh_sync::ChannelSettings::default()
    }
}

/// A database URL without its password.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `calmesh jobs list`.
pub async fn jobs_list(
    backend: &Backend,
    state: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let state = match state {
        None => None,
        Some(s) => Some(s.parse::<JobState>()?),
    };
    let jobs = backend.queue.list(state, limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(());
    }
    if jobs.is_empty() {
        println!("no jobs");
    }
    for job in jobs {
        println!(
            "{:>6} {:<15} {:<8} {:<28} attempts {} run_at {}{}",
            job.id.to_string(),
            job.kind.name(),
            job.state.name(),
            job.key,
            job.attempts,
            job.run_at.to_rfc3339(),
            job.last_error
                .map(|e| format!("  last error: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `calmesh jobs retry ID`.
pub async fn jobs_retry(backend: &Backend, id: &str) -> Result<()> {
    let id: JobId = id.parse()?;
    backend.queue.retry(id).await?;
    println!("job {id} is pending again");
    Ok(())
}

/// `calmesh jobs purge --dead`.
pub async fn jobs_purge_dead(backend: &Backend) -> Result<()> {
    let n = backend.queue.purge_dead().await?;
    println!("purged {n} dead jobs");
    Ok(())
}

/// `calmesh status`.
pub async fn status(
    backend: &Backend,
    json: bool,
    push_safety_interval: chrono::Duration,
) -> Result<()> {
    let store = backend.store.as_ref();
    let now = backend.queue.now();
    let polls = store.calendar_polls().await?;
    let user = sync_cmd::default_user(store).await?;
    let mut accounts = Vec::new();
    for account in store.accounts(&user).await? {
        let mut calendars = Vec::new();
        for calendar in store.calendars(&account.id).await? {
            let poll = polls.iter().find(|p| p.calendar == calendar.id);
            let next_due = poll.and_then(|p| {
                calmesh_jobs::schedule::calendar_due(
                    p.last_sync_at,
                    &calmesh_jobs::schedule::PollPolicy {
                        auto_sync: p.auto_sync,
                        interval: chrono::Duration::minutes(i64::from(p.interval_minutes.max(1))),
                        has_live_channel: p.channel_expires.is_some_and(|e| e > now),
                        push_safety_interval,
                    },
                    now,
                )
            });
            calendars.push(serde_json::json!({
                "calendar": calendar.remote_id,
                "last_sync_at": calendar.last_sync_at,
                "next_due": next_due,
                "last_error": calendar.last_error,
                "channel_expires": poll.and_then(|p| p.channel_expires),
            }));
        }
        accounts.push(serde_json::json!({
            "email": account.email,
            "provider": account.provider,
            "status": account.status.as_str(),
            "last_error": account.last_error,
            "calendars": calendars,
        }));
    }
    let counts = backend.queue.counts().await?;
    let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
    for states in counts.by_kind.values() {
        for (state, n) in states {
            *by_state.entry(state.name()).or_default() += n;
        }
    }
    let oldest = backend.queue.oldest_pending_age(now).await?;
    let value = serde_json::json!({
        "accounts": accounts,
        "queue": {"by_state": by_state, "by_kind": counts, "oldest_pending_seconds": oldest.map(|d| d.as_secs())},
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for account in &accounts {
        println!(
            "{} ({}) {}{}",
            account["email"].as_str().unwrap_or(""),
            account["provider"].as_str().unwrap_or(""),
            account["status"].as_str().unwrap_or(""),
            account["last_error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        for c in account["calendars"].as_array().into_iter().flatten() {
            println!(
                "  {}  last sync {}  next due {}{}{}",
                c["calendar"].as_str().unwrap_or(""),
                c["last_sync_at"].as_str().unwrap_or("never"),
                c["next_due"].as_str().unwrap_or("never (auto sync off)"),
                c["channel_expires"]
                    .as_str()
                    .map(|e| format!("  channel until {e}"))
                    .unwrap_or_default(),
                c["last_error"]
                    .as_str()
                    .map(|e| format!("  error: {e}"))
                    .unwrap_or_default(),
            );
        }
    }
    let states: Vec<String> = by_state.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "queue: {}{}",
        if states.is_empty() {
            "empty".to_owned()
        } else {
            states.join(", ")
        },
        oldest
            .map(|d| format!("; oldest pending {} s", d.as_secs()))
            .unwrap_or_default()
    );
    Ok(())
}

/// `calmesh serve`: the HTTP server (health, readiness, metrics, webhooks),
/// the scheduler and, unless `workers` is 0, workers; until SIGTERM.
pub async fn serve(
    database: &str,
    key_file: Option<&std::path::Path>,
    listen: std::net::SocketAddr,
    options: &RunOptions,
) -> Result<()> {
    let backend = open(database, key_file).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let bound = listener.local_addr()?;
    println!("http://{bound}");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    serve_backend(backend, listener, options, shutdown_signal()?).await?;
    eprintln!("calmesh serve: stopped");
    Ok(())
}

/// [`serve`] on an open backend and a bound listener, until `shutdown`.
pub async fn serve_backend(
    backend: Backend,
    listener: tokio::net::TcpListener,
    options: &RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let bound = listener.local_addr()?;
    // Where providers deliver push notifications: CALMESH_PUBLIC_URL, else
    // this server's own address (right for the emulator and for a provider
    // on the same host; behind a proxy, set CALMESH_PUBLIC_URL).
    let mut channels = channel_settings();
    if channels.public_url.is_none() {
        channels.public_url = Some(format!("http://{bound}"));
    }
    let health = Arc::new(WorkerHealth::default());
    let state = calmesh_server::AppState::new(
        backend.store.clone(),
        backend.queue.clone(),
        calmesh_server::install_metrics(),
        (options.workers > 0).then(|| health.clone()),
    );
    let mut stop = shutdown.clone();
    let server = tokio::spawn(calmesh_server::serve(listener, state, async move {
        let _ = stop.wait_for(|down| *down).await;
    }));
    eprintln!(
        "calmesh serve: http://{bound} ({} workers, scheduler on; webhooks at {}/webhooks/google)",
        options.workers,
        channels.public_url.as_deref().unwrap_or("")
    );
    run_until_shutdown(&backend, channels, options, &health, shutdown).await;
    match server.await {
        Ok(result) => result.context("the HTTP server failed")?,
        Err(e) => bail!("the HTTP server task failed: {e}"),
    }
    Ok(())
}

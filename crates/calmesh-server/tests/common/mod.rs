//! A running server for one test (or the intake example): the router over
//! real HTTP on 127.0.0.1, on a real store and queue in one database: a
//! SQLite file, or a PostgreSQL schema of its own (`PgTestSchema`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use calmesh_jobs::{JobKind, JobQueue, JobState, PgQueue, QueueConfig, SqliteQueue, SystemClock};
use calmesh_server::{AppState, install_metrics, serve};
use calmesh_store::testing::PgTestSchema;
use calmesh_store::{
    Calendar, ChannelRecord, Credentials, NewAccount, NewCalendar, PgStore, SecretKey, SqliteStore,
    Store,
};
use calmesh_sync::worker::WorkerHealth;
use chrono::TimeDelta;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the server's database lives.
enum Db {
    Sqlite(SqliteStore, TempDir),
    Postgres(PgStore, PgTestSchema),
}

/// A server on 127.0.0.1 and what it runs on.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn JobQueue>,
    /// What `/readyz` reads about workers (none run in these tests).
    pub workers: Arc<WorkerHealth>,
    /// The webhook's in-flight slots.
    pub webhook_slots: Arc<tokio::sync::Semaphore>,
    db: Db,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

fn key() -> SecretKey {
    SecretKey::from_bytes([9; 32])
}

/// A client for the test's requests (plain HTTP, but reqwest builds its TLS
/// configuration anyway and needs a crypto provider).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

impl Server {
    /// A server on a fresh SQLite file.
    pub async fn sqlite() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("calmesh.db").display());
        let store = SqliteStore::open(&url, key()).await.unwrap();
        let queue = SqliteQueue::open(
            store.pool().clone(),
            Arc::new(SystemClock),
            QueueConfig::default(),
        )
        .await
        .unwrap();
        let store_dyn: Arc<dyn Store> = Arc::new(store.clone());
        Self::start(store_dyn, Arc::new(queue), Db::Sqlite(store, dir)).await
    }

    /// A server on a fresh schema of `CALMESH_TEST_POSTGRES_URL`, or None
    /// (the test is skipped, and says so) when it is not set.
    pub async fn postgres() -> Option<Server> {
        let schema = PgTestSchema::from_env().await.unwrap()?;
        let store = PgStore::open(schema.url(), key()).await.unwrap();
        let queue = PgQueue::open(
            store.pool().clone(),
            Arc::new(SystemClock),
            QueueConfig::default(),
        )
        .await
        .unwrap();
        let store_dyn: Arc<dyn Store> = Arc::new(store.clone());
        Some(Self::start(store_dyn, Arc::new(queue), Db::Postgres(store, schema)).await)
    }

    async fn start(store: Arc<dyn Store>, queue: Arc<dyn JobQueue>, db: Db) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let workers = Arc::new(WorkerHealth::default());
        let state = AppState::new(
            store.clone(),
            queue.clone(),
            install_metrics(),
            Some(workers.clone()),
        );
        let webhook_slots = state.webhook_slots.clone();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async {
            let _ = stop.await;
        }));
        Server {
            base,
            client: client(),
            store,
            queue,
            workers,
            webhook_slots,
            db,
            shutdown,
            task,
        }
    }

    /// The backend's name, for printed figures.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(..) => "SQLite (file, WAL)",
            Db::Postgres(..) => "PostgreSQL",
        }
    }

    /// Closes the database pool under the running server.
    pub async fn close_pool(&self) {
        match &self.db {
            Db::Sqlite(store, _) => store.close().await,
            Db::Postgres(store, _) => store.close().await,
        }
    }

    /// `GET` a path; status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Posts a Google push delivery; the status.
    pub async fn deliver(&self, delivery: &Delivery<'_>) -> u16 {
        deliver(&self.client, &self.base, delivery).await
    }

    /// Pending pull jobs.
    pub async fn pending_pulls(&self) -> u64 {
        self.queue
            .counts()
            .await
            .unwrap()
            .get(JobKind::PullCalendar, JobState::Pending)
    }

    /// Every job, of any state.
    pub async fn all_jobs(&self) -> u64 {
        self.queue.counts().await.unwrap().total()
    }

    /// Stops the server (waiting for it to finish), closes the pool and
    /// drops the test schema.
    pub async fn finish(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the server stops after the shutdown signal")
            .unwrap()
            .unwrap();
        drop(self.store);
        drop(self.queue);
        match self.db {
            Db::Sqlite(store, _dir) => store.close().await,
            Db::Postgres(store, schema) => {
                store.close().await;
                schema.drop_now().await.unwrap();
            }
        }
    }
}

/// One Google push delivery's headers; None leaves a header out.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub channel: Option<&'a str>,
    pub token: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub state: Option<&'a str>,
    pub number: Option<i64>,
}

impl<'a> Delivery<'a> {
    /// A change notification (`exists`) on a watched calendar.
    pub fn change(watch: &'a Watch, number: i64) -> Self {
        Delivery {
            channel: Some(&watch.channel.id),
            token: Some(&watch.token),
            resource: Some(&watch.channel.resource_id),
            state: Some("exists"),
            number: Some(number),
        }
    }
}

/// Posts a delivery as Google does: no body, the `X-Goog-*` headers.
pub async fn deliver(client: &reqwest::Client, base: &str, d: &Delivery<'_>) -> u16 {
    let mut request = client
        .post(format!("{base}/webhooks/google"))
        .header("content-length", "0")
        .header("user-agent", "APIs-Google")
        .header(
            "x-goog-resource-uri",
            "https://www.googleapis.com/calendar/v3/calendars/primary/events",
        );
    let headers = [
        ("x-goog-channel-id", d.channel.map(str::to_owned)),
        ("x-goog-channel-token", d.token.map(str::to_owned)),
        ("x-goog-resource-id", d.resource.map(str::to_owned)),
        ("x-goog-resource-state", d.state.map(str::to_owned)),
        ("x-goog-message-number", d.number.map(|n| n.to_string())),
    ];
    for (name, value) in headers {
        if let Some(value) = value {
            request = request.header(name, value);
        }
    }
    request.send().await.unwrap().status().as_u16()
}

/// A calendar watched by a channel, and the channel's token.
pub struct Watch {
    pub calendar: Calendar,
    pub channel: ChannelRecord,
    pub token: String,
}

/// A user with an account and a calendar watched by a channel.
pub async fn watched_calendar(store: &dyn Store, name: &str) -> Watch {
    let user = store.ensure_user(name).await.unwrap();
    let account = store
        .upsert_account(&NewAccount {
            user,
            provider: "google".to_owned(),
            email: format!("{name}@example.com"),
            client_id: "client".to_owned(),
            api_base: None,
            token_url: None,
            credentials: Credentials {
                refresh_token: "refresh".to_owned(),
                client_secret: "secret".to_owned(),
            },
        })
        .await
        .unwrap();
    let calendar = store
        .upsert_calendar(&NewCalendar {
            account: account.id,
            remote_id: format!("{name}@example.com"),
            name: name.to_owned(),
            time_zone: None,
        })
        .await
        .unwrap();
    let channel = ChannelRecord {
        id: format!("calmesh-{name}"),
        calendar: calendar.id.clone(),
        provider: "google".to_owned(),
        resource_id: format!("resource-{name}"),
        expiration: calmesh_clock::now() + TimeDelta::days(7),
        created_at: calmesh_clock::now(),
        last_message: None,
    };
    let token = format!("token-{name}-0123456789abcdef");
    store.put_channel(&channel, &token).await.unwrap();
    Watch {
        calendar,
        channel,
        token,
    }
}

/// What a burst measured.
#[derive(Debug)]
pub struct Burst {
    pub notifications: usize,
    pub elapsed: Duration,
    /// Sorted latencies of the deliveries.
    pub latencies: Vec<Duration>,
    /// Deliveries that did not answer 200.
    pub failed: usize,
}

impl Burst {
    pub fn per_second(&self) -> f64 {
        self.notifications as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0..=1).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i]
    }

    pub fn summary(&self, backend: &str) -> String {
        format!(
            "webhook intake on {backend}: {} notifications in {:.2?} = {:.0}/s; latency p50 {:.2?}, \
             p99 {:.2?}, max {:.2?}",
            self.notifications,
            self.elapsed,
            self.per_second(),
            self.quantile(0.5),
            self.quantile(0.99),
            self.latencies.last().copied().unwrap_or_default(),
        )
    }
}

/// Sends `total` change notifications spread over the watched calendars
/// (notification i goes to calendar i mod n, with message number i / n + 2,
/// so each channel's numbers rise), `in_flight` at a time.
pub async fn burst(
    client: &reqwest::Client,
    base: &str,
    watches: &[Watch],
    total: usize,
    in_flight: usize,
) -> Burst {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Every delivery borrows from `watches`: hand the tasks owned copies.
    let targets: Arc<Vec<(String, String, String)>> = Arc::new(
        watches
            .iter()
            .map(|w| {
                (
                    w.channel.id.clone(),
                    w.token.clone(),
                    w.channel.resource_id.clone(),
                )
            })
            .collect(),
    );
    for _ in 0..in_flight {
        let (client, base, next, targets) = (
            client.clone(),
            base.to_owned(),
            next.clone(),
            targets.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let (channel, token, resource) = &targets[i % targets.len()];
                let delivery = Delivery {
                    channel: Some(channel),
                    token: Some(token),
                    resource: Some(resource),
                    state: Some("exists"),
                    number: Some((i / targets.len()) as i64 + 2),
                };
                let t = Instant::now();
                let status = deliver(&client, &base, &delivery).await;
                latencies.push(t.elapsed());
                if status != 200 {
                    failed += 1;
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut failed = 0;
    for task in tasks {
        let (l, f) = task.await.unwrap();
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Burst {
        notifications: total,
        elapsed,
        latencies,
        failed,
    }
}

/// Sends `total` change notifications one at a time (each waits for the
/// previous answer) to the first watched calendar, with message numbers
/// from `first_number` up: the latency of one delivery on an idle server.
pub async fn one_at_a_time(
    client: &reqwest::Client,
    base: &str,
    watch: &Watch,
    total: usize,
    first_number: i64,
) -> Burst {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(total);
    let mut failed = 0;
    for i in 0..total {
        let delivery = Delivery::change(watch, first_number + i as i64);
        let t = Instant::now();
        if deliver(client, base, &delivery).await != 200 {
            failed += 1;
        }
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Burst {
        notifications: total,
        elapsed,
        latencies,
        failed,
    }
}

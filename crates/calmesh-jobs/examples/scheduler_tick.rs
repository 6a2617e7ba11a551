//! Scheduler tick figures: one [`tick`] over 100k calendars, on a SQLite
//! file and on PostgreSQL. Each repetition empties the queue, times a cold
//! tick (every due calendar's fire time is new: one enqueue each) and a
//! second tick at the same instant (every fire time is already recorded:
//! nothing is enqueued, but each due calendar still costs one
//! `enqueue_fire` transaction that finds its fire and rolls back).
//!
//! ```sh
//! cargo run --release -p calmesh-jobs --example scheduler_tick -- \
//!     [--calendars 100000] [--per-user 10] [--reps 3] [--backend both|sqlite|postgres]
//! ```
//!
//! PostgreSQL runs when `CALMESH_TEST_POSTGRES_URL` names a server, in a
//! schema of its own that is dropped after. `bench/scheduler_tick.sh` runs it
//! in a release build. Figures are printed, never checked.
//!
//! The same program seeds a database for other benchmarks
//! (`bench/serve_rss.sh`), so there is one seeding code path:
//!
//! ```sh
//! scheduler_tick --seed-only --database sqlite:///tmp/x.db --calendars 10000 --mix idle
//! ```
//!
//! With `--seed-only` the secret key is read as `calmesh` reads it
//! (`CALMESH_SECRET_KEY`, else the key file next to the database), so the
//! seeded credentials open with the key `calmesh serve` uses.
//!
//! # The seeded data
//!
//! The store has no bulk insert for users, accounts or calendars, so the
//! rows are written with a few `INSERT … SELECT` statements over a
//! recursive counter, run directly on the store's pool (one SQL text for
//! both databases but for the timestamp literals), and the rules with
//! batched `VALUES`. The credentials are sealed once, through
//! [`Store::upsert_account`] on a throwaway account, and that ciphertext is
//! copied into every account. Ids are explicit (1, 2, …), so the database
//! must be empty; the rules' high-water mark is set after them, and on
//! PostgreSQL the identity sequences are moved past them and the tables
//! analyzed.
//!
//! Users (one Google account each, `--per-user` calendars each):
//!
//! - 5% have auto sync off, 30% a 30-minute interval, the rest no
//!   preferences row (auto sync every 15 minutes);
//! - 2% of the accounts need re-authorization (never pulled);
//! - nine in ten have a busy rule over all their calendars (the tick polls
//!   only calendars a rule uses); with `--mix tick`, the rules of one user
//!   in a hundred have a `*/5 * * * *` schedule (a reconcile each cold
//!   tick).
//!
//! Calendars, by id modulo 10, with `--mix tick` (as of the seed time, which
//! is also the `now` every tick is given):
//!
//! | slot | last pull | push channel | due |
//! |---|---|---|---|
//! | 0 | never | | yes |
//! | 1–3 | 2 h ago | | yes (overdue: fire time on the interval's grid) |
//! | 4 | 20 min ago | | with a 15-minute interval |
//! | 5–7 | 1 min ago | | no |
//! | 8 | 1 h ago | live, 3 days left | no (safety poll every 6 h) |
//! | 9 | 7 h ago | live, 3 days left | yes (safety poll) |
//!
//! Channels are seeded only on calendars a rule uses. With `--mix idle`
//! every calendar was pulled at the seed time, slots 8 and 9 have live
//! channels and no rule has a schedule: nothing is due for the next 15
//! minutes, and no channel needs renewing for days.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use calmesh_jobs::scheduler::{SchedulerConfig, TickReport, tick};
use calmesh_jobs::{JobKind, JobQueue, JobState, PgQueue, QueueConfig, SqliteQueue, SystemClock};
use calmesh_store::testing::PgTestSchema;
use calmesh_store::{Credentials, KeySource, NewAccount, PgStore, SecretKey, SqliteStore, Store};
use chrono::{DateTime, Duration, SecondsFormat, Utc};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// The seeded calendars' sync state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Some never pulled, some due, some fresh, some with live channels.
    Tick,
    /// Everything pulled just now: nothing due.
    Idle,
}

/// Options from the command line.
struct Options {
    calendars: u64,
    per_user: u64,
    reps: usize,
    sqlite: bool,
    postgres: bool,
    seed_only: bool,
    database: Option<String>,
    mix: Mix,
    api_base: String,
}

const USAGE: &str = "usage: scheduler_tick [--calendars N] [--per-user N] [--reps N] \
    [--backend both|sqlite|postgres]\n       \
    scheduler_tick --seed-only --database URL [--calendars N] [--per-user N] \
    [--mix tick|idle] [--api-base URL]";

fn usage(why: &str) -> ! {
    eprintln!("{why}\n{USAGE}");
    std::process::exit(2);
}

fn options() -> Options {
    let mut options = Options {
        calendars: 100_000,
        per_user: 10,
        reps: 3,
        sqlite: true,
        postgres: true,
        seed_only: false,
        database: None,
        mix: Mix::Tick,
        // The discard port: a job that did run would fail at once instead
        // of calling Google.
        api_base: "http://127.0.0.1:9".to_owned(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    let number = |value: Option<&String>| -> u64 {
        value
            .and_then(|v| v.replace('_', "").parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or_else(|| usage("expected a positive number"))
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--calendars" => options.calendars = number(args.next()),
            "--per-user" => options.per_user = number(args.next()),
            "--reps" => options.reps = number(args.next()) as usize,
            "--backend" => match args.next().map(String::as_str) {
                Some("both") => (options.sqlite, options.postgres) = (true, true),
                Some("sqlite") => (options.sqlite, options.postgres) = (true, false),
                Some("postgres") => (options.sqlite, options.postgres) = (false, true),
                _ => usage("--backend takes both, sqlite or postgres"),
            },
            "--seed-only" => options.seed_only = true,
            "--database" => {
                options.database = Some(
                    args.next()
                        .cloned()
                        .unwrap_or_else(|| usage("--database takes a URL")),
                )
            }
            "--mix" => {
                options.mix = match args.next().map(String::as_str) {
                    Some("tick") => Mix::Tick,
                    Some("idle") => Mix::Idle,
                    _ => usage("--mix takes tick or idle"),
                }
            }
            "--api-base" => {
                options.api_base = args
                    .next()
                    .cloned()
                    .unwrap_or_else(|| usage("--api-base takes a URL"))
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => usage(&format!("unknown option {other}")),
        }
    }
    if options.seed_only != options.database.is_some() {
        usage("--seed-only and --database go together");
    }
    options
}

/// A store and its queue on one database.
enum Db {
    Sqlite(SqliteStore, SqliteQueue),
    Postgres(PgStore, PgQueue),
}

impl Db {
    async fn open(url: &str, key: SecretKey) -> Result<Db> {
        let clock = Arc::new(SystemClock);
        if url.to_ascii_lowercase().starts_with("sqlite:") {
            let store = SqliteStore::open(url, key).await?;
            let queue =
                SqliteQueue::open(store.pool().clone(), clock, QueueConfig::default()).await?;
            Ok(Db::Sqlite(store, queue))
        } else {
            let store = PgStore::open(url, key).await?;
            let queue = PgQueue::open(store.pool().clone(), clock, QueueConfig::default()).await?;
            Ok(Db::Postgres(store, queue))
        }
    }

    fn store(&self) -> &dyn Store {
        match self {
            Db::Sqlite(store, _) => store,
            Db::Postgres(store, _) => store,
        }
    }

    fn queue(&self) -> &dyn JobQueue {
        match self {
            Db::Sqlite(_, queue) => queue,
            Db::Postgres(_, queue) => queue,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Db::Sqlite(..) => "SQLite (file, WAL, synchronous=NORMAL)",
            Db::Postgres(..) => "PostgreSQL",
        }
    }

    /// A timestamp literal as the database keeps it.
    fn time(&self, t: DateTime<Utc>) -> String {
        match self {
            Db::Sqlite(..) => format!("'{}'", t.to_rfc3339_opts(SecondsFormat::Nanos, true)),
            Db::Postgres(..) => {
                format!(
                    "TIMESTAMPTZ '{}'",
                    t.to_rfc3339_opts(SecondsFormat::Micros, true)
                )
            }
        }
    }

    /// Runs one statement built here (no outside input but quoted text).
    async fn execute(&self, sql: String) -> Result<u64> {
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(match self {
            Db::Sqlite(store, _) => sqlx::query(sql)
                .execute(store.pool())
                .await?
                .rows_affected(),
            Db::Postgres(store, _) => sqlx::query(sql)
                .execute(store.pool())
                .await?
                .rows_affected(),
        })
    }

    async fn count(&self, sql: &'static str) -> Result<i64> {
        Ok(match self {
            Db::Sqlite(store, _) => sqlx::query_scalar(sql).fetch_one(store.pool()).await?,
            Db::Postgres(store, _) => sqlx::query_scalar(sql).fetch_one(store.pool()).await?,
        })
    }

    async fn sealed(&self, account: &str) -> Result<(String, String)> {
        const SQL: &str = "SELECT secret, key_id FROM accounts WHERE id = $1";
        let id: i64 = account.parse()?;
        Ok(match self {
            Db::Sqlite(store, _) => sqlx::query_as(SQL).bind(id).fetch_one(store.pool()).await?,
            Db::Postgres(store, _) => sqlx::query_as(SQL).bind(id).fetch_one(store.pool()).await?,
        })
    }

    /// Empties the queue and the record of fire times.
    async fn reset_queue(&self) -> Result<()> {
        match self {
            Db::Sqlite(..) => {
                self.execute("DELETE FROM jobs".to_owned()).await?;
                self.execute("DELETE FROM job_fires".to_owned()).await?;
            }
            Db::Postgres(..) => {
                self.execute("TRUNCATE jobs, job_fires".to_owned()).await?;
            }
        }
        Ok(())
    }

    async fn close(&self) {
        match self {
            Db::Sqlite(store, _) => store.close().await,
            Db::Postgres(store, _) => store.close().await,
        }
    }
}

/// SQL text literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What was seeded.
struct Seeded {
    users: u64,
    calendars: u64,
    channels: u64,
    rules: u64,
    /// Rules with a cron schedule.
    cron: u64,
    /// The seed time: the `now` of every tick.
    at: DateTime<Utc>,
    took: StdDuration,
}

/// Seeds an empty database (see the module documentation).
async fn seed(db: &Db, options: &Options) -> Result<Seeded> {
    let started = Instant::now();
    let store = db.store();
    if db.count("SELECT COUNT(*) FROM users").await? != 0 {
        return Err("the database is not empty (seeding needs a fresh one)".into());
    }
    let now = Utc::now();
    let n = options.calendars;
    let per = options.per_user;
    let users = n.div_ceil(per);
    let api_base = options.api_base.trim_end_matches('/');

    // One sealed copy of the credentials, made by the store with its key.
    let template = store.ensure_user("bench-template").await?;
    let account = store
        .upsert_account(&NewAccount {
            user: template.clone(),
            provider: "google".to_owned(),
            email: "bench-template@example.com".to_owned(),
            client_id: "bench-client".to_owned(),
            api_base: Some(api_base.to_owned()),
            token_url: Some(format!("{api_base}/token")),
            credentials: Credentials {
                refresh_token: "bench-refresh-token".to_owned(),
                client_secret: "bench-client-secret".to_owned(),
            },
        })
        .await?;
    let (secret, key_id) = db.sealed(account.id.as_str()).await?;
    db.execute("DELETE FROM users WHERE name = 'bench-template'".to_owned())
        .await?;

    let t = |t: DateTime<Utc>| db.time(t);
    let at = t(now);
    db.execute(format!(
        "INSERT INTO users (id, name, created_at) \
         WITH RECURSIVE n(u) AS (SELECT 0 UNION ALL SELECT u + 1 FROM n WHERE u + 1 < {users}) \
         SELECT u + 1, 'bench-user-' || u, {at} FROM n"
    ))
    .await?;
    db.execute(
        "INSERT INTO preferences (user_id, auto_sync, interval_minutes) \
         SELECT id, (id - 1) % 20 <> 19, CASE WHEN (id - 1) % 20 < 6 THEN 30 ELSE 15 END \
         FROM users WHERE (id - 1) % 20 = 19 OR (id - 1) % 20 < 6"
            .to_owned(),
    )
    .await?;
    db.execute(format!(
        "INSERT INTO accounts (id, user_id, provider, email, client_id, api_base, token_url, \
         status, secret, key_id, created_at) \
         SELECT id, id, 'google', 'bench-user-' || (id - 1) || '@example.com', 'bench-client', \
         {}, {}, CASE WHEN (id - 1) % 50 = 25 THEN 'needs_reauth' ELSE 'ok' END, {}, {}, {at} \
         FROM users",
        quote(api_base),
        quote(&format!("{api_base}/token")),
        quote(&secret),
        quote(&key_id),
    ))
    .await?;

    // Last pull by slot (calendar id - 1, modulo 10).
    let ago = |minutes: i64| Some(now - Duration::minutes(minutes));
    let slots: [Option<DateTime<Utc>>; 10] = match options.mix {
        Mix::Tick => [
            None,
            ago(120),
            ago(120),
            ago(120),
            ago(20),
            ago(1),
            ago(1),
            ago(1),
            ago(60),
            ago(7 * 60),
        ],
        Mix::Idle => [Some(now); 10],
    };
    let last_sync = slots
        .iter()
        .enumerate()
        .map(|(slot, time)| {
            format!(
                " WHEN {slot} THEN {}",
                time.map_or_else(|| "NULL".to_owned(), t)
            )
        })
        .collect::<String>();
    let calendars = db
        .execute(format!(
            "INSERT INTO calendars (id, account_id, remote_id, name, time_zone, cursor, \
             last_sync_at) \
             WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k + 1 < {per}) \
             SELECT i + 1, id, 'bench-' || i || '@group.calendar.google.com', \
             'Calendar ' || k, 'Europe/Berlin', \
             CASE WHEN i % 10 = 0 AND {never} THEN NULL ELSE 'bench-sync-token-' || i END, \
             CASE i % 10{last_sync} END \
             FROM (SELECT (a.id - 1) * {per} + n.k AS i, a.id, n.k \
                   FROM accounts a CROSS JOIN n) c \
             WHERE i < {n}",
            never = if slots[0].is_none() { "1 = 1" } else { "1 = 0" },
        ))
        .await?;
    let channels = db
        .execute(format!(
            "INSERT INTO channels (id, calendar_id, provider, resource_id, token_sha256, \
             expiration, created_at) \
             SELECT 'bench-channel-' || id, id, 'google', 'bench-resource-' || id, {}, {}, {at} \
             FROM calendars WHERE (id - 1) % 10 IN (8, 9) AND (account_id - 1) % 10 <> 9",
            quote(&"0".repeat(64)),
            t(now + Duration::days(3)),
        ))
        .await?;

    // One busy rule per user over all the user's calendars, but for one
    // user in ten (accounts connected, nothing set up: never polled); a
    // cron schedule on one rule in a hundred with `--mix tick`.
    let mut rules = 0u64;
    let mut cron = 0u64;
    let mut values = Vec::new();
    for u in 0..users {
        if u % 10 == 9 {
            continue;
        }
        let ids: Vec<String> = (u * per..((u + 1) * per).min(n))
            .map(|i| (i + 1).to_string())
            .collect();
        let mut config = serde_json::json!({ "calendars": ids });
        if options.mix == Mix::Tick && u % 100 == 3 {
            config["schedule"] =
                serde_json::json!({"cron": "*/5 * * * *", "time_zone": "Europe/Berlin"});
            cron += 1;
        }
        rules += 1;
        values.push(format!(
            "({rules}, {}, 'bench-busy', 'busy', {}, 'active', {at})",
            u + 1,
            quote(&config.to_string())
        ));
    }
    for chunk in values.chunks(1_000) {
        db.execute(format!(
            "INSERT INTO rules (id, user_id, name, kind, config, state, created_at) VALUES {}",
            chunk.join(", ")
        ))
        .await?;
    }
    // Rule ids come from the high-water mark (migration 0003).
    db.execute(
        "UPDATE id_high_water SET last = (SELECT COALESCE(MAX(id), 0) FROM rules) \
         WHERE name = 'rules'"
            .to_owned(),
    )
    .await?;

    if let Db::Postgres(..) = db {
        for table in ["users", "accounts", "calendars"] {
            db.execute(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 (SELECT MAX(id) FROM {table}))"
            ))
            .await?;
        }
        db.execute("ANALYZE users, accounts, calendars, preferences, channels, rules".to_owned())
            .await?;
    }
    Ok(Seeded {
        users,
        calendars,
        channels,
        rules,
        cron,
        at: now,
        took: started.elapsed(),
    })
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn secs(d: StdDuration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn rate(n: u64, d: StdDuration) -> String {
    thousands((n as f64 / d.as_secs_f64().max(1e-9)).round() as u64)
}

fn median(times: &mut [StdDuration]) -> StdDuration {
    times.sort();
    times[times.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            let fields: Vec<&str> = text.split_whitespace().take(3).collect();
            (fields.len() == 3).then(|| fields.join(" "))
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// Jobs a tick enqueued.
fn enqueued(report: &TickReport) -> u64 {
    report.pulls + report.rules + u64::from(report.renewal) + u64::from(report.cleanup)
}

async fn bench(db: &Db, options: &Options) -> Result<()> {
    println!("== {}", db.label());
    println!("load average at start: {}", load_average());
    let seeded = seed(db, options).await?;
    println!(
        "seeded {} calendars ({} users x {}, {} busy rules of which {} on cron, {} live \
         channels) in {} (bulk SQL on the pool)",
        thousands(seeded.calendars),
        thousands(seeded.users),
        options.per_user,
        thousands(seeded.rules),
        seeded.cron,
        thousands(seeded.channels),
        secs(seeded.took),
    );
    let store = db.store();
    let queue = db.queue();
    let now = seeded.at;
    let config = SchedulerConfig::default();

    // The tick's two reads, alone: the best of three each.
    let mut polls = StdDuration::MAX;
    let mut scan = StdDuration::MAX;
    let (mut rows, mut rules) = (0, 0);
    for _ in 0..3 {
        let t = Instant::now();
        rows = store.calendar_polls().await?.len();
        polls = polls.min(t.elapsed());
        let t = Instant::now();
        rules = store.all_rules().await?.len();
        scan = scan.min(t.elapsed());
    }
    println!(
        "reads inside a tick (best of 3): calendar_polls() {} ({} rows); all_rules() {} ({} rules)",
        secs(polls),
        thousands(rows as u64),
        secs(scan),
        thousands(rules as u64),
    );

    println!(
        "{:>3}  {:>10}  {:>7}  {:>5}  {:>10}  {:>12}  {:>10}  {:>8}  {:>9}",
        "rep",
        "cold tick",
        "pulls",
        "rules",
        "enqueues/s",
        "second tick",
        "enqueued",
        "due",
        "checks/s"
    );
    let mut colds = Vec::new();
    let mut warms = Vec::new();
    let mut last = (TickReport::default(), TickReport::default());
    for rep in 1..=options.reps {
        db.reset_queue().await?;
        let t = Instant::now();
        let cold = tick(store, queue, &config, now).await?;
        let cold_time = t.elapsed();
        let pending = queue
            .counts()
            .await?
            .get(JobKind::PullCalendar, JobState::Pending);
        if pending != cold.pulls {
            return Err(format!(
                "{} pulls reported but {pending} pending pull jobs",
                cold.pulls
            )
            .into());
        }
        let t = Instant::now();
        let warm = tick(store, queue, &config, now).await?;
        let warm_time = t.elapsed();
        // Every due calendar asks again; every rule with a fire in the last
        // hour too, and the renewal and cleanup.
        let checks = cold.pulls + cold.rules + 2;
        println!(
            "{rep:>3}  {:>10}  {:>7}  {:>5}  {:>10}  {:>12}  {:>10}  {:>8}  {:>9}",
            secs(cold_time),
            thousands(cold.pulls),
            cold.rules,
            rate(enqueued(&cold), cold_time),
            secs(warm_time),
            enqueued(&warm),
            thousands(checks),
            rate(checks, warm_time),
        );
        colds.push(cold_time);
        warms.push(warm_time);
        last = (cold, warm);
    }
    let (cold, warm) = last;
    let cold_median = median(&mut colds);
    let warm_median = median(&mut warms);
    println!(
        "median of {}: cold tick {} ({} enqueues/s: {} pulls, {} rules, renewal, cleanup; \
         about {} of it outside the two reads), second tick {} ({} enqueued)",
        options.reps,
        secs(cold_median),
        rate(enqueued(&cold), cold_median),
        thousands(cold.pulls),
        cold.rules,
        secs(cold_median.saturating_sub(polls + scan)),
        secs(warm_median),
        enqueued(&warm),
    );
    println!(
        "per due calendar: cold {:.1} us, second tick {:.1} us",
        cold_median.as_secs_f64() * 1e6 / cold.pulls.max(1) as f64,
        warm_median.as_secs_f64() * 1e6 / cold.pulls.max(1) as f64,
    );
    println!("load average at end: {}", load_average());
    println!();
    Ok(())
}

/// `--seed-only`: seeds the database at `url` with the key `calmesh` would
/// use for it.
async fn seed_only(url: &str, options: &Options) -> Result<()> {
    let source = match std::env::var(calmesh_store::SECRET_KEY_ENV) {
        Ok(value) if !value.trim().is_empty() => KeySource::Env(value),
        _ => KeySource::File(calmesh_store::default_key_file(url)),
    };
    let (key, message) = SecretKey::load(&source)?;
    if let Some(message) = message {
        eprintln!("{message}");
    }
    let db = Db::open(url, key).await?;
    let seeded = seed(&db, options).await?;
    db.close().await;
    println!(
        "seeded {} calendars ({} users x {}, {} busy rules of which {} on cron, {} live \
         channels, mix {:?}) in {}",
        thousands(seeded.calendars),
        thousands(seeded.users),
        options.per_user,
        thousands(seeded.rules),
        seeded.cron,
        thousands(seeded.channels),
        options.mix,
        secs(seeded.took),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = options();
    if let Some(url) = &options.database {
        return seed_only(url, &options).await;
    }
    let key = SecretKey::generate();
    if options.sqlite {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("calmesh.db").display());
        let db = Db::open(&url, key.clone()).await?;
        let result = bench(&db, &options).await;
        db.close().await;
        result?;
    }
    if options.postgres {
        match PgTestSchema::from_env().await? {
            Some(schema) => {
                let db = Db::open(schema.url(), key).await?;
                let result = bench(&db, &options).await;
                db.close().await;
                schema.drop_now().await?;
                result?;
            }
            None => println!("PostgreSQL: skipped (CALMESH_TEST_POSTGRES_URL not set)"),
        }
    }
    Ok(())
}

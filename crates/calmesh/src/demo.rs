//! `calmesh demo`: calmesh at work with no credentials. A Google Calendar
//! emulator in this process holds three people's calendars with a few weeks
//! of sample events; their accounts go into a fresh SQLite database in one
//! busy group; `serve` runs on it (HTTP server, scheduler, workers, push
//! channels to itself). Every few seconds one person's calendar changes
//! through the Google API, the emulator pushes a notification, and the demo
//! prints the change and when the other two calendars show it as Busy.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use calmesh_emulators::google::{EmulatorConfig, GoogleEmulator};
use calmesh_store::Store;
use chrono::{DateTime, Datelike, DurationRound, Utc};
use rand::Rng as _;
use rand::seq::IndexedRandom as _;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::service::{self, RunOptions};
use crate::sync_cmd;

/// The three sample people, their zones and their first weeks.
const PEOPLE: [(&str, &str); 3] = [
    ("ann@example.com", "Europe/Berlin"),
    ("bob@example.com", "America/New_York"),
    ("cat@example.com", "UTC"),
];

/// Titles for the events the demo adds as it runs.
const TITLES: [&str; 10] = [
    "Coffee with Lee",
    "Dentist",
    "1:1 with manager",
    "Interview",
    "Gym",
    "Vendor call",
    "School pickup",
    "Planning",
    "Lunch",
    "Code review",
];

/// What `calmesh demo` was asked.
#[derive(Debug)]
pub struct DemoOptions {
    /// Where calmesh listens.
    pub listen: SocketAddr,
    /// Directory for the database (None: a new temporary one, kept).
    pub dir: Option<PathBuf>,
    /// Seconds between sample changes (0: none).
    pub edit_every: u64,
    /// Workers, scheduler.
    pub run: RunOptions,
}

/// One emulated person: the API as them.
struct Person {
    email: &'static str,
    token: String,
}

/// The Google API of the emulator, as its people.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        person: &Person,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/calendar/v3/{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&person.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| url.clone())?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{url}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn insert(&self, person: &Person, event: Value) -> Result<Value> {
        let path = format!("calendars/{}/events", person.email);
        self.call(person, reqwest::Method::POST, &path, Some(event))
            .await
    }

    /// The person's own busy events and calmesh's blocks in their calendar
    /// starting at `start`.
    async fn events_at(&self, person: &Person, start: DateTime<Utc>) -> Result<(usize, usize)> {
        let path = format!(
            "calendars/{}/events?singleEvents=true&timeMin={}&timeMax={}",
            person.email,
            urlencode(&start.to_rfc3339()),
            urlencode(&(start + chrono::Duration::minutes(1)).to_rfc3339()),
        );
        let listed = self.call(person, reqwest::Method::GET, &path, None).await?;
        let at_start: Vec<&Value> = listed["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| start_of(e) == Some(start) && e["transparency"] != "transparent")
            .collect();
        let blocks = at_start.iter().filter(|e| is_block(e)).count();
        Ok((at_start.len() - blocks, blocks))
    }
}

fn is_block(event: &Value) -> bool {
    event
        .pointer("/extendedProperties/private/calmeshRule")
        .is_some()
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

fn start_of(event: &Value) -> Option<DateTime<Utc>> {
    let text = event["start"]["dateTime"].as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Midnight UTC `days` from today, plus `hour` hours.
fn at(days: i64, hour: i64, minute: i64) -> DateTime<Utc> {
    let now = calmesh_clock::now();
    let today = now.duration_trunc(chrono::Duration::days(1)).unwrap_or(now);
    today
        + chrono::Duration::days(days)
        + chrono::Duration::hours(hour)
        + chrono::Duration::minutes(minute)
}

fn timed(summary: &str, start: DateTime<Utc>, minutes: i64) -> Value {
    json!({
        "summary": summary,
        "start": {"dateTime": start.to_rfc3339()},
        "end": {"dateTime": (start + chrono::Duration::minutes(minutes)).to_rfc3339()},
    })
}

/// A few weeks of sample events: meetings, a weekly series with a moved
/// occurrence, a free event and an all-day event (no blocks for those two).
async fn seed(api: &Api, people: &[Person]) -> Result<usize> {
    let mut rng = rand::rng();
    let mut n = 0;
    for (i, person) in people.iter().enumerate() {
        for day in 0..21 {
            let weekday = at(day, 0, 0).weekday().num_days_from_monday();
            if weekday >= 5 || rng.random_bool(0.4) {
                continue;
            }
            let hour = rng.random_range(8..17);
            let minute = *[0, 30].choose(&mut rng).unwrap_or(&0);
            let title = TITLES.choose(&mut rng).copied().unwrap_or("Meeting");
            api.insert(person, timed(title, at(day, hour, minute), 60))
                .await?;
            n += 1;
        }
        // A weekly series of six, in the person's zone.
        let series = api
            .insert(
                person,
                json!({
                    "summary": "Team sync",
                    "start": {"dateTime": at(1, 7 + i as i64, 0).to_rfc3339(), "timeZone": PEOPLE[i].1},
                    "end": {"dateTime": at(1, 7 + i as i64, 30).to_rfc3339(), "timeZone": PEOPLE[i].1},
                    "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=6"],
                }),
            )
            .await?;
        n += 1;
        // Its second occurrence moves an hour later (an exception).
        if let Some(id) = series["id"].as_str() {
            let path = format!(
                "calendars/{}/events/{id}/instances?maxResults=2",
                person.email
            );
            let instances = api.call(person, reqwest::Method::GET, &path, None).await?;
            if let Some(second) = instances["items"].as_array().and_then(|a| a.get(1))
                && let (Some(iid), Some(start)) = (second["id"].as_str(), start_of(second))
            {
                let path = format!("calendars/{}/events/{iid}", person.email);
                let moved = timed("Team sync (moved)", start + chrono::Duration::hours(1), 30);
                api.call(person, reqwest::Method::PATCH, &path, Some(moved))
                    .await?;
            }
        }
        let mut free = timed("Focus time (free)", at(2, 13, 0), 120);
        free["transparency"] = json!("transparent");
        api.insert(person, free).await?;
        let day = at(5 + i as i64, 0, 0).date_naive();
        api.insert(
            person,
            json!({"summary": "Conference (all day)", "start": {"date": day.to_string()},
                   "end": {"date": day.succ_opt().unwrap_or(day).to_string()}}),
        )
        .await?;
        n += 2;
    }
    Ok(n)
}

/// Creates the people at the emulator and returns them with access tokens.
async fn people(emulator: &GoogleEmulator, api: &Api) -> Result<Vec<(Person, [String; 3])>> {
    let mut out = Vec::new();
    for (email, zone) in PEOPLE {
        let creds = emulator.add_account(email, Some(zone))?;
        let token: Value = api
            .http
            .post(format!("{}/token", api.base))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", creds.refresh_token.as_str()),
                ("client_id", creds.client_id.as_str()),
                ("client_secret", creds.client_secret.as_str()),
            ])
            .send()
            .await?
            .json()
            .await?;
        let access = token["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("the emulator gave no access token: {token}"))?;
        out.push((
            Person {
                email,
                token: access.to_owned(),
            },
            [creds.refresh_token, creds.client_id, creds.client_secret],
        ));
    }
    Ok(out)
}

/// `calmesh demo`.
pub async fn run(options: DemoOptions, key_file: Option<&Path>) -> Result<()> {
    let dir = match &options.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => tempfile::Builder::new()
            .prefix("calmesh-demo-")
            .tempdir()?
            .keep(),
    };
    let db_path = dir.join("calmesh.db");
    if db_path.exists() {
        bail!(
            "{} exists: the demo starts from a fresh database (choose another --dir)",
            db_path.display()
        );
    }
    let database = format!("sqlite://{}", db_path.display());

    let emulator = GoogleEmulator::new(EmulatorConfig::default());
    let (base, _emulator_task) =
        calmesh_emulators::google::spawn_emulator(emulator.clone(), "127.0.0.1:0".parse()?)
            .await
            .context("starting the Google Calendar emulator")?;
    let api = Api {
        base: base.clone(),
        http: calmesh_provider::http::build_reqwest()?,
    };
    let (persons, secrets): (Vec<Person>, Vec<[String; 3]>) =
        people(&emulator, &api).await?.into_iter().unzip();
    let seeded = seed(&api, &persons).await?;

    let backend = service::open(&database, key_file).await?;
    let store: Arc<dyn Store> = backend.store.clone();
    let user = sync_cmd::default_user(store.as_ref()).await?;
    for (person, [refresh_token, client_id, client_secret]) in persons.iter().zip(&secrets) {
        let account = sync_cmd::google_account(
            user.clone(),
            person.email.to_owned(),
            client_id.clone(),
            client_secret.clone(),
            refresh_token.clone(),
            Some(base.clone()),
            Some(format!("{base}/token")),
        );
        store.upsert_account(&account).await?;
    }
    let specs: Vec<String> = PEOPLE.iter().map(|(e, _)| format!("{e}:primary")).collect();
    let config = serde_json::from_value(json!({"calendars": []}))?;
    sync_cmd::add_busy_rule(store.clone(), "demo", &specs, config).await?;

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listening on {}", options.listen))?;
    let bound = listener.local_addr()?;
    let me = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "calmesh".to_owned());
    println!(
        "\ncalmesh demo\n\
         \n  Google Calendar emulator  {base}  (three accounts: {}, {}, {})\
         \n  sample events             {seeded} (a weekly series with a moved occurrence, a free event and an all-day event each)\
         \n  busy rule                 \"demo\": each calendar gets a private \"Busy\" block for the others' events\
         \n  database                  {database}\
         \n  calmesh serve             http://{bound}  (push notifications from the emulator arrive at /webhooks/google)\
         \n\nLook:\
         \n  curl -s http://{bound}/metrics | grep calmesh_\
         \n  curl -s '{base}/_emulator/calendars/ann@example.com/events' | python3 -m json.tool\
         \n  {me} --database {database} status\
         \n  {me} --database {database} jobs list\
         \n\nEvery {} seconds one calendar changes; Ctrl-C stops the demo (the directory is kept).\n",
        PEOPLE[0].0, PEOPLE[1].0, PEOPLE[2].0, options.edit_every,
    );
    std::io::stdout().flush()?;

    let shutdown = service::shutdown_signal()?;
    let editor = tokio::spawn(edit_loop(
        api,
        persons,
        Duration::from_secs(options.edit_every),
        shutdown.clone(),
    ));
    let served = service::serve_backend(backend, listener, &options.run, shutdown).await;
    editor.abort();
    served?;
    println!("demo stopped; its database is in {}", dir.display());
    Ok(())
}

/// Changes one calendar every `every` and reports when the others show it.
async fn edit_loop(
    api: Api,
    people: Vec<Person>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    if every.is_zero() {
        return;
    }
    // The first sync of everything, before the first change.
    wait_for_first_blocks(&api, &people, &mut shutdown).await;
    let mut added: Vec<(usize, String, DateTime<Utc>, &'static str)> = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = edit_once(&api, &people, &mut added).await {
            println!("demo: a sample change failed: {e:#}");
        }
    }
}

async fn wait_for_first_blocks(api: &Api, people: &[Person], shutdown: &mut watch::Receiver<bool>) {
    let started = Instant::now();
    loop {
        let mut total = 0;
        for person in people {
            let path = format!("calendars/{}/events?maxResults=2500", person.email);
            if let Ok(listed) = api.call(person, reqwest::Method::GET, &path, None).await {
                total += listed["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| is_block(e))
                    .count();
            }
        }
        if total > 0 {
            // Let the first run finish its writes.
            tokio::time::sleep(Duration::from_secs(2)).await;
            println!(
                "{} first sync done after {:.1} s: the calendars hold Busy blocks for each other",
                clock(),
                started.elapsed().as_secs_f64()
            );
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// One sample change: add an event, or move or delete one the demo added.
async fn edit_once(
    api: &Api,
    people: &[Person],
    added: &mut Vec<(usize, String, DateTime<Utc>, &'static str)>,
) -> Result<()> {
    enum Change {
        Add(usize, &'static str, DateTime<Utc>),
        Move(usize, DateTime<Utc>),
        Delete(usize),
    }
    let change = {
        // The thread's generator is not Send: done with it before awaiting.
        let mut rng = rand::rng();
        let roll: f64 = rng.random();
        if added.is_empty() || roll < 0.5 {
            Change::Add(
                rng.random_range(0..people.len()),
                TITLES.choose(&mut rng).copied().unwrap_or("Meeting"),
                at(rng.random_range(1..14), rng.random_range(8..18), 0),
            )
        } else if roll < 0.8 {
            let i = rng.random_range(0..added.len());
            Change::Move(
                i,
                added[i].2 + chrono::Duration::hours(rng.random_range(1..3)),
            )
        } else {
            Change::Delete(rng.random_range(0..added.len()))
        }
    };
    let (who, action, start, gone) = match change {
        Change::Add(who, title, start) => {
            let event = api.insert(&people[who], timed(title, start, 60)).await?;
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            added.push((who, id, start, title));
            (who, format!("added \"{title}\""), start, None)
        }
        Change::Move(i, start) => {
            let (who, id, old, title) = added[i].clone();
            let path = format!("calendars/{}/events/{id}", people[who].email);
            let moved = json!({
                "start": {"dateTime": start.to_rfc3339()},
                "end": {"dateTime": (start + chrono::Duration::hours(1)).to_rfc3339()},
            });
            api.call(&people[who], reqwest::Method::PATCH, &path, Some(moved))
                .await?;
            added[i].2 = start;
            (who, format!("moved \"{title}\""), start, Some(old))
        }
        Change::Delete(i) => {
            let (who, id, old, title) = added.remove(i);
            let path = format!("calendars/{}/events/{id}", people[who].email);
            api.call(&people[who], reqwest::Method::DELETE, &path, None)
                .await?;
            (who, format!("deleted \"{title}\""), old, None)
        }
    };
    println!(
        "{} {}: {action} at {} UTC",
        clock(),
        people[who].email,
        start.format("%a %d %b %H:%M")
    );
    // Wait until every other calendar has exactly one block per busy event
    // of the others at the slots that changed.
    let slots: Vec<DateTime<Utc>> = std::iter::once(start).chain(gone).collect();
    let started = Instant::now();
    loop {
        let mut done = true;
        for slot in &slots {
            let mut own = Vec::new();
            for person in people {
                own.push(api.events_at(person, *slot).await?);
            }
            for i in 0..people.len() {
                let want: usize = own
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, n)| n.0)
                    .sum();
                if own[i].1 != want {
                    done = false;
                }
            }
        }
        if done {
            println!(
                "{}   the other calendars match after {:.1} s",
                clock(),
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            println!(
                "{}   not visible yet after 60 s (see `calmesh status`)",
                clock()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

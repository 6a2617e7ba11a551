//! Harness for end-to-end tests: a Google emulator in this process (driven
//! only through its Google API and control API) and the real `calmesh`
//! binary, with its own database, run as a child process.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Command, Output};

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};

pub struct Emu {
    pub base: String,
    http: reqwest::Client,
    tokens: BTreeMap<String, String>,
    pub accounts: BTreeMap<String, Value>,
    _server: tokio::task::JoinHandle<()>,
}

impl Emu {
    pub async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (base, server) = calmesh_emulators::google::spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Self {
            base,
            http: reqwest::Client::new(),
            tokens: BTreeMap::new(),
            accounts: BTreeMap::new(),
            _server: server,
        }
    }

    pub async fn control(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/_emulator/{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).json(&body),
        };
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn add_account(&mut self, email: &str) -> Value {
        let creds = self
            .control("POST", "accounts", json!({"email": email}))
            .await;
        let token: Value = self
            .http
            .post(format!("{}/token", self.base))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", creds["refresh_token"].as_str().unwrap()),
                ("client_id", creds["client_id"].as_str().unwrap()),
                ("client_secret", creds["client_secret"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.tokens
            .insert(email.into(), token["access_token"].as_str().unwrap().into());
        self.accounts.insert(email.into(), creds.clone());
        creds
    }

    /// A Google API call as the person who owns `email`.
    pub async fn api(
        &self,
        email: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}/calendar/v3/{path}", self.base);
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(&self.tokens[email]);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn insert(&self, email: &str, event: Value) -> Value {
        let (status, body) = self
            .api(
                email,
                reqwest::Method::POST,
                &format!("calendars/{email}/events"),
                Some(event),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn patch(&self, email: &str, id: &str, patch: Value) -> Value {
        let (status, body) = self
            .api(
                email,
                reqwest::Method::PATCH,
                &format!("calendars/{email}/events/{id}"),
                Some(patch),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn delete(&self, email: &str, id: &str) {
        let (status, body) = self
            .api(
                email,
                reqwest::Method::DELETE,
                &format!("calendars/{email}/events/{id}"),
                None,
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }

    /// The instances of a series in the window.
    pub async fn series_instances(&self, email: &str, id: &str) -> Vec<Value> {
        let (status, body) = self
            .api(
                email,
                reqwest::Method::GET,
                &format!("calendars/{email}/events/{id}/instances?maxResults=2500"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    }

    /// Every instance in the rule's window, expanded by the emulator.
    pub async fn instances(&self, email: &str) -> Vec<Value> {
        let (from, to) = window();
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut path = format!(
                "calendars/{email}/events?singleEvents=true&maxResults=2500&timeMin={}&timeMax={}",
                from.to_rfc3339().replace('+', "%2B"),
                to.to_rfc3339().replace('+', "%2B")
            );
            if let Some(p) = &page {
                path.push_str(&format!("&pageToken={p}"));
            }
            let (status, body) = self.api(email, reqwest::Method::GET, &path, None).await;
            assert_eq!(status, 200, "{body}");
            out.extend(body["items"].as_array().unwrap().iter().cloned());
            match body["nextPageToken"].as_str() {
                Some(p) => page = Some(p.to_owned()),
                None => return out,
            }
        }
    }

    /// Every stored event of a calendar, raw, tombstones included.
    pub async fn raw(&self, calendar: &str) -> Vec<Value> {
        self.control("GET", &format!("calendars/{calendar}/events"), Value::Null)
            .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The person's own events (no calmesh tag), raw, keyed by id.
    pub async fn own(&self, calendar: &str) -> BTreeMap<String, Value> {
        self.raw(calendar)
            .await
            .into_iter()
            .filter(|e| !is_block(e))
            .map(|e| (e["id"].as_str().unwrap().to_owned(), e))
            .collect()
    }

    pub async fn stats(&self) -> Value {
        self.control("GET", "stats", Value::Null).await
    }

    pub async fn reset_stats(&self) {
        self.control("POST", "stats/reset", json!({})).await;
    }

    pub async fn faults(&self, faults: Value) {
        self.control("POST", "faults", faults).await;
    }
}

pub fn is_block(event: &Value) -> bool {
    event
        .pointer("/extendedProperties/private/calmeshRule")
        .is_some()
}

/// The part of the rule's default window the tests check (inside it by a
/// margin, so nothing sits on an edge).
pub fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    let now = calmesh_clock::now();
    (now - Duration::hours(20), now + Duration::days(170))
}

/// A whole hour `days` days from now, as RFC 3339.
pub fn at(days: i64, hour: i64) -> String {
    let base = calmesh_clock::now()
        .duration_trunc(Duration::days(1))
        .unwrap();
    (base + Duration::days(days) + Duration::hours(hour)).to_rfc3339()
}

pub fn date(days: i64) -> String {
    (calmesh_clock::now() + Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

fn instant(time: &Value) -> String {
    if let Some(d) = time["date"].as_str() {
        return d.to_owned();
    }
    let text = time["dateTime"].as_str().unwrap();
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t.with_timezone(&Utc).to_rfc3339(),
        Err(_) => {
            // Local time in `timeZone` (as the client sent it).
            let tz: chrono_tz::Tz = time["timeZone"].as_str().unwrap().parse().unwrap();
            let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap();
            local
                .and_local_timezone(tz)
                .earliest()
                .unwrap()
                .with_timezone(&Utc)
                .to_rfc3339()
        }
    }
}

fn busy(event: &Value, email: &str) -> bool {
    event["status"] != "cancelled"
        && event["transparency"] != "transparent"
        && event["start"]["date"].is_null()
        && !event["attendees"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["email"] == email && a["responseStatus"] == "declined")
}

/// Checks the busy invariant over `emails`' primary calendars: each holds
/// exactly one private "Busy" block per busy instance of the others, at the
/// same times; returns the number of blocks per calendar.
pub async fn assert_converged(emu: &Emu, emails: &[&str]) -> BTreeMap<String, usize> {
    let mut all = BTreeMap::new();
    for email in emails {
        all.insert(*email, emu.instances(email).await);
    }
    let mut counts = BTreeMap::new();
    for target in emails {
        let mut expected: Vec<(String, String)> = Vec::new();
        for source in emails.iter().filter(|s| *s != target) {
            for e in all[source]
                .iter()
                .filter(|e| !is_block(e) && busy(e, source))
            {
                expected.push((instant(&e["start"]), instant(&e["end"])));
            }
        }
        let blocks: Vec<&Value> = all[target].iter().filter(|e| is_block(e)).collect();
        for b in &blocks {
            assert_eq!(b["summary"], "Busy", "{b}");
            assert_eq!(b["visibility"], "private", "{b}");
            assert!(
                b.get("description").is_none()
                    && b.get("location").is_none()
                    && b.get("attendees").is_none(),
                "{b}"
            );
        }
        let mut actual: Vec<(String, String)> = blocks
            .iter()
            .map(|e| (instant(&e["start"]), instant(&e["end"])))
            .collect();
        expected.sort();
        actual.sort();
        assert_eq!(actual, expected, "blocks in {target}");
        counts.insert(target.to_string(), actual.len());
    }
    counts
}

/// The `calmesh` binary with its own database.
pub struct Calmesh {
    pub dir: tempfile::TempDir,
    pub envs: Vec<(String, String)>,
}

impl Calmesh {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/calmesh.db", dir.path().display());
        Self {
            envs: vec![
                ("CALMESH_DATABASE_URL".into(), db),
                ("CALMESH_SECRET_KEY".into(), "11".repeat(32)),
                ("CALMESH_RETRY_BASE_MS".into(), "5".into()),
                ("CALMESH_RATE_PER_SECOND".into(), "10000".into()),
            ],
            dir,
        }
    }

    /// The same, on a PostgreSQL schema of its own (None when
    /// `CALMESH_TEST_POSTGRES_URL` is not set). Keep the schema alive for
    /// the test's length.
    pub async fn postgres() -> Option<(Self, calmesh_store::testing::PgTestSchema)> {
        let schema = calmesh_store::testing::PgTestSchema::from_env()
            .await
            .unwrap()?;
        let mut cm = Self::new();
        cm.envs[0].1 = schema.url().to_owned();
        Some((cm, schema))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_calmesh"));
        command.args(args);
        for (k, v) in &self.envs {
            command.env(k, v);
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "calmesh {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `calmesh sync --json`, which must succeed; returns the report.
    #[track_caller]
    pub fn sync(&self) -> Value {
        let text = self.ok(&["sync", "--json"]);
        serde_json::from_str(&text).unwrap()
    }

    pub fn add_accounts(&self, emu: &Emu, emails: &[&str]) {
        for email in emails {
            let c = &emu.accounts[*email];
            self.ok(&[
                "accounts",
                "add",
                "google",
                "--email",
                email,
                "--refresh-token",
                c["refresh_token"].as_str().unwrap(),
                "--client-id",
                c["client_id"].as_str().unwrap(),
                "--client-secret",
                c["client_secret"].as_str().unwrap(),
                "--api-base",
                &emu.base,
                "--token-url",
                &format!("{}/token", emu.base),
            ]);
        }
    }

    pub fn add_busy_rule(&self, name: &str, emails: &[&str]) {
        let mut args = vec!["rules".to_owned(), "add".into(), "busy".into(), name.into()];
        for e in emails {
            args.push("--calendar".into());
            args.push(format!("{e}:primary"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&args);
    }
}

/// Sum of a rule report's writes.
pub fn writes(report: &Value) -> u64 {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["created"].as_u64().unwrap()
                + r["updated"].as_u64().unwrap()
                + r["deleted"].as_u64().unwrap()
        })
        .sum()
}

/// Write calls seen by the emulator.
pub fn write_calls(stats: &Value) -> u64 {
    stats["by_route"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(route, _)| !route.starts_with("GET") && !route.contains("/token"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

/// [`assert_converged`] that reports instead of panicking, for polling:
/// Ok(blocks per calendar) when every calendar of `emails` holds exactly one
/// private "Busy" block per busy instance of the others (compared as
/// multisets of times, so a duplicated block is a mismatch), else Err(why).
pub async fn converged(emu: &Emu, emails: &[&str]) -> Result<BTreeMap<String, usize>, String> {
    let mut all = BTreeMap::new();
    for email in emails {
        all.insert(*email, emu.instances(email).await);
    }
    let mut counts = BTreeMap::new();
    for target in emails {
        let mut expected: Vec<(String, String)> = Vec::new();
        for source in emails.iter().filter(|s| *s != target) {
            for e in all[source]
                .iter()
                .filter(|e| !is_block(e) && busy(e, source))
            {
                expected.push((instant(&e["start"]), instant(&e["end"])));
            }
        }
        let blocks: Vec<&Value> = all[target].iter().filter(|e| is_block(e)).collect();
        for b in &blocks {
            if b["summary"] != "Busy"
                || b["visibility"] != "private"
                || b.get("description").is_some()
                || b.get("location").is_some()
                || b.get("attendees").is_some()
            {
                return Err(format!("{target}: not a private Busy block: {b}"));
            }
        }
        let mut actual: Vec<(String, String)> = blocks
            .iter()
            .map(|e| (instant(&e["start"]), instant(&e["end"])))
            .collect();
        expected.sort();
        actual.sort();
        if actual != expected {
            return Err(format!(
                "{target}: {} blocks, want {}: blocks {actual:?}, busy elsewhere {expected:?}",
                actual.len(),
                expected.len()
            ));
        }
        counts.insert(target.to_string(), actual.len());
    }
    Ok(counts)
}

/// The live blocks of a calendar (raw, as stored) that share their
/// (`calmeshRule`, `calmeshSource`) tags with another live block: one source
/// event must have at most one block per target calendar.
pub async fn duplicate_blocks(emu: &Emu, calendar: &str) -> Vec<Value> {
    let mut by_tag: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for e in emu.raw(calendar).await {
        if !is_block(&e) || e["status"] == "cancelled" {
            continue;
        }
        let tag = |k: &str| {
            e.pointer(&format!("/extendedProperties/private/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let key = (tag("calmeshRule"), tag("calmeshSource"));
        by_tag.entry(key).or_default().push(e);
    }
    by_tag
        .into_values()
        .filter(|v| v.len() > 1)
        .flatten()
        .collect()
}

impl Calmesh {
    /// A log file in the test's directory, for a child's stderr.
    pub fn log_file(&self, name: &str) -> (std::path::PathBuf, std::fs::File) {
        let path = self.dir.path().join(name);
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }

    /// `calmesh serve ARGS` with stderr to `log` and `envs` added; returns
    /// the child and the URL it prints first. The rest of stdout is drained.
    pub fn spawn_serve(
        &self,
        args: &[&str],
        envs: &[(&str, &str)],
        log: &str,
    ) -> (Running, String) {
        use std::io::{BufRead, BufReader};
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        let (_, file) = self.log_file(log);
        let mut command = self.command(&all);
        command
            .envs(envs.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(file);
        let mut child = Running(command.spawn().unwrap());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = lines.next().unwrap().unwrap();
        assert!(base.starts_with("http://"), "{base}");
        std::thread::spawn(move || for _ in lines {});
        (child, base)
    }

    /// `calmesh jobs list --json` (all of them, or those in `state`).
    #[track_caller]
    pub fn jobs(&self, state: Option<&str>) -> Vec<Value> {
        let mut args = vec!["jobs", "list", "--json", "--limit", "1000000"];
        if let Some(state) = state {
            args.extend_from_slice(&["--state", state]);
        }
        let text = self.ok(&args);
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Sets the default user's sync interval through the store (the CLI has
    /// no command for preferences yet).
    pub async fn set_sync_interval(&self, minutes: u32) {
        let url = &self.envs[0].1;
        let key = calmesh_store::KeySource::Env(self.envs[1].1.clone());
        let (key, _) = calmesh_store::SecretKey::load(&key).unwrap();
        let store = calmesh_store::open_store(url, key).await.unwrap();
        let users = store.users().await.unwrap();
        assert_eq!(users.len(), 1, "{users:?}");
        store
            .set_preferences(
                &users[0].0,
                &calmesh_store::Preferences {
                    auto_sync: true,
                    interval_minutes: minutes,
                },
            )
            .await
            .unwrap();
    }
}

/// Sends SIGTERM to `child` and waits up to `within` for it to exit.
pub async fn terminate(
    child: &mut std::process::Child,
    within: std::time::Duration,
) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {} did not stop within {within:?} of SIGTERM",
            child.id()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Requests per route between two emulator stats snapshots.
pub fn calls_between(before: &Value, after: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (route, n) in after["by_route"].as_object().unwrap() {
        let was = before["by_route"][route].as_u64().unwrap_or(0);
        let diff = n.as_u64().unwrap() - was;
        if diff > 0 {
            out.insert(route.clone(), diff);
        }
    }
    out
}

/// On a panic (a failing test), prints the end of every `*.log` file in a
/// directory (children's stderr, see [`Calmesh::log_file`]) before the
/// directory goes away. Declare it after the [`Calmesh`], so it drops first.
pub struct LogsOnPanic(pub std::path::PathBuf);

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!(
                    "---- {} (last {} of {} lines)\n{}",
                    path.display(),
                    tail.len(),
                    lines.len(),
                    tail.join("\n")
                );
            }
        }
    }
}

/// A child process that is SIGKILLed when dropped still running (a failing
/// test must not leave `calmesh serve` or `worker` behind).
pub struct Running(pub std::process::Child);

impl std::ops::Deref for Running {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

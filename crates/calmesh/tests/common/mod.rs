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
    let now = Utc::now();
    (now - Duration::hours(20), now + Duration::days(170))
}

/// A whole hour `days` days from now, as RFC 3339.
pub fn at(days: i64, hour: i64) -> String {
    let base = Utc::now().duration_trunc(Duration::days(1)).unwrap();
    (base + Duration::days(days) + Duration::hours(hour)).to_rfc3339()
}

pub fn date(days: i64) -> String {
    (Utc::now() + Duration::days(days))
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

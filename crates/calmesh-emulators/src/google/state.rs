//! The emulator's whole state: accounts, tokens, calendars with their
//! events, channels, fault knobs and counters. One `Mutex` guards it; no
//! lock is held across an `.await`.

use super::config::EmulatorConfig;
use super::error::ApiError;
use super::faults::{Faults, Stats};
use super::push::Channel;
use super::recurrence::{InstanceKey, Series};
use super::resource::Times;
use axum::http::HeaderMap;
use calmesh_core::time::EventTime;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// The base32hex alphabet of Google event ids (RFC 2938 §3.1.2).
pub(crate) const BASE32HEX: &[u8] = b"0123456789abcdefghijklmnopqrstuv";

/// A person with a Google account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub email: String,
    /// Calendar ids, primary first, in creation order.
    pub calendars: Vec<String>,
    /// Counter of calendar-list changes (drives calendarList sync tokens).
    pub list_counter: u64,
}

/// A refresh token and whom it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub email: String,
    pub scope: String,
    pub revoked: bool,
}

/// A live access token.
#[derive(Debug, Clone)]
pub(crate) struct AccessGrant {
    pub email: String,
    pub expires_at: DateTime<Utc>,
}

/// An authorization code waiting to be exchanged.
#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub email: String,
    pub redirect_uri: String,
    pub challenge: Option<(String, String)>,
    pub scope: String,
    pub expires_at: DateTime<Utc>,
}

/// An exception's link to its series.
#[derive(Debug, Clone)]
pub(crate) struct ExceptionOf {
    pub master_id: String,
    /// The original start of the instance it replaces.
    pub original: EventTime,
}

/// One stored event: a single event, a series master or an exception.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    /// The whole resource as served (client fields with server fields
    /// laid over them), including details of deleted events.
    pub json: Map<String, Value>,
    /// The calendar's change counter at the last modification.
    pub seq: u64,
    pub updated: DateTime<Utc>,
    /// `status` is `cancelled`.
    pub deleted: bool,
    pub times: Times,
    pub series: Option<Series>,
    pub exception: Option<ExceptionOf>,
}

impl StoredEvent {
    pub fn etag(&self) -> &str {
        self.json.get("etag").and_then(Value::as_str).unwrap_or("")
    }

    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.json.get(name).and_then(Value::as_str)
    }

    /// The `iCalUID` this event holds against new inserts: live events
    /// that are not exceptions.
    fn live_uid(&self) -> Option<&str> {
        if self.deleted || self.exception.is_some() {
            None
        } else {
            self.str_field("iCalUID")
        }
    }
}

fn release_uid(uids: &mut HashMap<String, usize>, uid: &str) {
    if let Some(count) = uids.get_mut(uid) {
        *count -= 1;
        if *count == 0 {
            uids.remove(uid);
        }
    }
}

/// One calendar and its events.
#[derive(Debug, Clone)]
pub(crate) struct Calendar {
    pub id: String,
    pub owner: String,
    pub summary: String,
    pub description: Option<String>,
    pub time_zone: String,
    pub tz: Tz,
    pub primary: bool,
    pub etag: String,
    /// Stable id of the events collection, for push channels.
    pub resource_id: String,
    /// Incremented on every change of an event; drives sync tokens.
    pub counter: u64,
    /// The account's `list_counter` when this calendar last changed.
    pub list_seq: u64,
    pub updated: DateTime<Utc>,
    /// Events by id (exceptions `<master>_<suffix>` sort right after their master).
    pub events: BTreeMap<String, StoredEvent>,
    /// Event id by its `seq`.
    pub by_seq: BTreeMap<u64, String>,
    /// How many live events (not exceptions) use each `iCalUID`.
    pub live_uids: HashMap<String, usize>,
}

impl Calendar {
    /// Stores `event` under `id` as the calendar's newest change.
    pub fn put(&mut self, id: String, mut event: StoredEvent, now: DateTime<Utc>) {
        self.counter += 1;
        if let Some(old) = self.events.get(&id) {
            self.by_seq.remove(&old.seq);
            if let Some(uid) = old.live_uid() {
                release_uid(&mut self.live_uids, uid);
            }
        }
        if let Some(uid) = event.live_uid() {
            *self.live_uids.entry(uid.to_string()).or_default() += 1;
        }
        event.seq = self.counter;
        self.by_seq.insert(self.counter, id.clone());
        self.events.insert(id, event);
        self.updated = now;
    }

    /// Forgets an event altogether (exceptions of a deleted series).
    pub fn forget(&mut self, id: &str) {
        if let Some(old) = self.events.remove(id) {
            self.by_seq.remove(&old.seq);
            if let Some(uid) = old.live_uid() {
                release_uid(&mut self.live_uids, uid);
            }
        }
    }

    /// Whether a live event (not an exception) uses `uid`.
    pub fn uid_in_use(&self, uid: &str) -> bool {
        self.live_uids.contains_key(uid)
    }

    /// Ids of the stored exceptions of `master_id`.
    pub fn exception_ids(&self, master_id: &str) -> Vec<String> {
        let from = format!("{master_id}_");
        let to = format!("{master_id}`");
        self.events
            .range(from..to)
            .filter(|(_, event)| event.exception.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether the instance of `master_id` named `key` has a stored exception.
    pub fn has_exception(&self, master_id: &str, key: InstanceKey) -> bool {
        self.events
            .contains_key(&format!("{master_id}_{}", key.suffix()))
    }
}

/// Everything the emulator knows.
pub(crate) struct State {
    pub config: EmulatorConfig,
    /// Signs sync tokens so that a made-up token is recognised as unknown.
    pub secret: [u8; 16],
    pub rng: StdRng,
    etag_counter: u64,
    pub accounts: BTreeMap<String, Account>,
    /// Account emails in creation order (the authorize endpoint's default).
    pub account_order: Vec<String>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    pub access_tokens: HashMap<String, AccessGrant>,
    pub auth_codes: HashMap<String, AuthCode>,
    pub calendars: HashMap<String, Calendar>,
    pub channels: HashMap<String, Channel>,
    pub faults: Faults,
    pub stats: Stats,
    /// Sync tokens issued before the current epoch answer 410.
    pub sync_epoch: u64,
}

impl State {
    /// The emulator's "now".
    pub fn now(&self) -> DateTime<Utc> {
        self.config.clock.now()
    }

    pub fn new(config: EmulatorConfig) -> Self {
        let mut rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let secret: [u8; 16] = rng.random();
        let etag_counter = u64::try_from(config.clock.now().timestamp_micros()).unwrap_or(1) * 10;
        Self {
            config,
            secret,
            rng,
            etag_counter,
            accounts: BTreeMap::new(),
            account_order: Vec::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            auth_codes: HashMap::new(),
            calendars: HashMap::new(),
            channels: HashMap::new(),
            faults: Faults::default(),
            stats: Stats::default(),
            sync_epoch: 0,
        }
    }

    /// A fresh etag: `"<digits>"`, never repeated.
    pub fn next_etag(&mut self) -> String {
        self.etag_counter += 1 + self.rng.random_range(0..7u64);
        format!("\"{}\"", self.etag_counter)
    }

    /// `len` random characters of `alphabet`.
    pub fn random_string(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| {
                let idx = self.rng.random_range(0..alphabet.len());
                char::from(alphabet.get(idx).copied().unwrap_or(b'0'))
            })
            .collect()
    }

    /// A random token of URL-safe characters.
    pub fn random_token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        self.random_string(ALPHABET, len)
    }

    /// Creates the account and its primary calendar (idempotent), and
    /// issues a new refresh token for it.
    pub fn create_account(
        &mut self,
        email: &str,
        time_zone: Option<&str>,
    ) -> Result<String, String> {
        let tz_name = time_zone.unwrap_or("UTC");
        let tz: Tz = tz_name
            .parse()
            .map_err(|_| format!("unknown time zone {tz_name:?}"))?;
        if !self.accounts.contains_key(email) {
            self.accounts.insert(
                email.to_string(),
                Account {
                    email: email.to_string(),
                    calendars: Vec::new(),
                    list_counter: 0,
                },
            );
            self.account_order.push(email.to_string());
            self.add_calendar(
                email,
                email.to_string(),
                email.to_string(),
                None,
                tz_name,
                tz,
                true,
            );
        }
        let refresh = format!("1//{}", self.random_token(60));
        let scope = self.config.scope.clone();
        self.refresh_tokens.insert(
            refresh.clone(),
            RefreshGrant {
                email: email.to_string(),
                scope,
                revoked: false,
            },
        );
        Ok(refresh)
    }

    /// Adds a calendar owned by `owner`.
    #[allow(clippy::too_many_arguments)]
    pub fn add_calendar(
        &mut self,
        owner: &str,
        id: String,
        summary: String,
        description: Option<String>,
        time_zone: &str,
        tz: Tz,
        primary: bool,
    ) -> Option<&Calendar> {
        let etag = self.next_etag();
        let resource_id = self.random_token(27);
        let account = self.accounts.get_mut(owner)?;
        account.list_counter += 1;
        account.calendars.push(id.clone());
        let calendar = Calendar {
            id: id.clone(),
            owner: owner.to_string(),
            summary,
            description,
            time_zone: time_zone.to_string(),
            tz,
            primary,
            etag,
            resource_id,
            counter: 0,
            list_seq: account.list_counter,
            updated: self.now(),
            events: BTreeMap::new(),
            by_seq: BTreeMap::new(),
            live_uids: HashMap::new(),
        };
        self.calendars.insert(id.clone(), calendar);
        self.calendars.get(&id)
    }

    /// Issues an access token for `email`.
    pub fn issue_access_token(&mut self, email: &str) -> (String, u64) {
        let token = format!("ya29.{}", self.random_token(80));
        let lifetime = self.config.access_token_lifetime;
        let expires_at =
            self.now() + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(1));
        self.access_tokens.insert(
            token.clone(),
            AccessGrant {
                email: email.to_string(),
                expires_at,
            },
        );
        (token, lifetime.as_secs())
    }

    /// Revokes every grant of `email`.
    pub fn revoke(&mut self, email: &str) -> bool {
        if !self.accounts.contains_key(email) {
            return false;
        }
        for grant in self.refresh_tokens.values_mut() {
            if grant.email == email {
                grant.revoked = true;
            }
        }
        self.access_tokens.retain(|_, grant| grant.email != email);
        true
    }

    /// The email behind a bearer token, whether or not the token is live
    /// (for counters and fault scoping).
    pub fn bearer_owner(&self, headers: &HeaderMap) -> Option<String> {
        let token = bearer(headers)?;
        self.access_tokens
            .get(token)
            .map(|grant| grant.email.clone())
    }

    /// The account of a request with a live bearer token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let token = bearer(headers).ok_or_else(ApiError::auth)?;
        let grant = self.access_tokens.get(token).ok_or_else(ApiError::auth)?;
        if grant.expires_at <= self.now() || !self.accounts.contains_key(&grant.email) {
            return Err(ApiError::auth());
        }
        Ok(grant.email.clone())
    }

    /// The id of a calendar `email` may use (`primary` is their primary).
    pub fn calendar_id(&self, email: &str, calendar_id: &str) -> Result<String, ApiError> {
        if calendar_id == "primary" {
            return self
                .accounts
                .get(email)
                .and_then(|account| account.calendars.first().cloned())
                .ok_or_else(ApiError::not_found);
        }
        match self.calendars.get(calendar_id) {
            Some(calendar) if calendar.owner == email => Ok(calendar.id.clone()),
            _ => Err(ApiError::not_found()),
        }
    }

    /// A fresh event id, unique in the calendar.
    pub fn new_event_id(&mut self, calendar_id: &str) -> String {
        loop {
            let id = self.random_string(BASE32HEX, 26);
            let taken = self
                .calendars
                .get(calendar_id)
                .is_some_and(|calendar| calendar.events.contains_key(&id));
            if !taken {
                return id;
            }
        }
    }

    /// Tells every live channel on the calendar that something changed.
    pub fn notify_change(&mut self, calendar_id: &str) {
        let now = self.now();
        self.channels.retain(|_, channel| channel.expiration > now);
        for channel in self.channels.values_mut() {
            if channel.calendar_id == calendar_id {
                channel.message_number += self.rng.random_range(2..=6u64);
                channel.send("exists", channel.message_number);
            }
        }
    }
}

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|token| !token.is_empty())
}

/// RFC 3339 with milliseconds and `Z`, as Google writes `created`/`updated`.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

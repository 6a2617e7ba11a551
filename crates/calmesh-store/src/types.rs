//! The records the store holds.

use std::collections::BTreeMap;

use calmesh_core::{AccountId, CalendarId, RuleId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// Serializes an id (calmesh_core's ids carry no serde) as its text.
fn as_text<S: Serializer, T: std::fmt::Display>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Serializes an optional id as its text or null.
fn as_opt_text<S: Serializer, T: std::fmt::Display>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => s.collect_str(value),
        None => s.serialize_none(),
    }
}

/// An account's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Syncing normally.
    Ok,
    /// The provider refused the credentials for good (`invalid_grant`): a
    /// person must connect the account again. Nothing retries until then.
    NeedsReauth,
    /// The last attempt failed for another reason; retried on the next run.
    Error,
}

impl AccountStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NeedsReauth => "needs_reauth",
            Self::Error => "error",
        }
    }
}

/// Secret parts of an account, encrypted at rest and never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// OAuth refresh token.
    pub refresh_token: String,
    /// OAuth client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { .. }")
    }
}

/// An account to add.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Owner.
    pub user: UserId,
    /// Provider kind: `google`.
    pub provider: String,
    /// The account's email (its primary calendar's id at Google).
    pub email: String,
    /// OAuth client id.
    pub client_id: String,
    /// API base URL; None means the provider's real endpoint.
    pub api_base: Option<String>,
    /// OAuth token URL; None means the provider's real endpoint.
    pub token_url: Option<String>,
    /// Secrets, encrypted before they are written.
    pub credentials: Credentials,
}

/// A stored account (without its secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Id.
    #[serde(serialize_with = "as_text")]
    pub id: AccountId,
    /// Owner.
    #[serde(serialize_with = "as_text")]
    pub user: UserId,
    /// Provider kind.
    pub provider: String,
    /// Email.
    pub email: String,
    /// OAuth client id.
    pub client_id: String,
    /// API base URL override.
    pub api_base: Option<String>,
    /// Token URL override.
    pub token_url: Option<String>,
    /// State.
    pub status: AccountStatus,
    /// Last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// A calendar to add or refresh.
#[derive(Debug, Clone)]
pub struct NewCalendar {
    /// Account.
    pub account: AccountId,
    /// The provider's id of the calendar.
    pub remote_id: String,
    /// Display name.
    pub name: String,
    /// The calendar's zone (IANA), when the provider says.
    pub time_zone: Option<String>,
}

/// A stored calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Calendar {
    /// Id (the store's, not the provider's).
    #[serde(serialize_with = "as_text")]
    pub id: CalendarId,
    /// Account.
    #[serde(serialize_with = "as_text")]
    pub account: AccountId,
    /// The provider's id of the calendar.
    pub remote_id: String,
    /// Display name.
    pub name: String,
    /// Zone.
    pub time_zone: Option<String>,
    /// Change cursor (Google sync token); None before the first full pull.
    pub cursor: Option<String>,
    /// When the last pull committed.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Why the last pull failed.
    pub last_error: Option<String>,
}

/// One provider resource in the item cache: a single event, a series master,
/// or one exception of a series (`parent_id` = the master's remote id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedEntry {
    /// The provider's id of the resource.
    pub remote_id: String,
    /// For an exception: the master's remote id.
    pub parent_id: Option<String>,
    /// The provider's etag.
    pub etag: Option<String>,
    /// The provider's last-modified time.
    pub updated: Option<DateTime<Utc>>,
    /// The event as one VCALENDAR with one VEVENT (iCalendar text).
    pub ics: String,
    /// calmesh's tags on the resource (Google private extended properties
    /// whose names start with `calmesh`); empty for the person's own events.
    pub tags: BTreeMap<String, String>,
}

/// What one pull brought.
#[derive(Debug, Clone, Default)]
pub struct PullBatch {
    /// A full listing: everything not in `upserts` is gone.
    pub full: bool,
    /// New and changed entries.
    pub upserts: Vec<CachedEntry>,
    /// Remote ids deleted at the provider.
    pub removals: Vec<String>,
    /// The new cursor.
    pub cursor: Option<String>,
    /// When the pull happened.
    pub synced_at: DateTime<Utc>,
}

/// What a committed pull changed in the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PullSummary {
    /// Entries not cached before.
    pub added: u64,
    /// Entries whose content or etag changed.
    pub changed: u64,
    /// Entries removed.
    pub removed: u64,
    /// Entries that arrived unchanged.
    pub unchanged: u64,
}

/// A rule's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleState {
    /// Runs normally.
    Active,
    /// Paused by the mass-deletion guard until a person confirms.
    NeedsConfirmation,
    /// Paused by a person.
    Paused,
}

impl RuleState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsConfirmation => "needs_confirmation",
            Self::Paused => "paused",
        }
    }
}

/// A rule to add.
#[derive(Debug, Clone)]
pub struct NewRule {
    /// Owner.
    pub user: UserId,
    /// Unique per user.
    pub name: String,
    /// `busy` (others later).
    pub kind: String,
    /// Kind-specific settings (calendars, options) as JSON.
    pub config: serde_json::Value,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Id.
    #[serde(serialize_with = "as_text")]
    pub id: RuleId,
    /// Owner.
    #[serde(serialize_with = "as_text")]
    pub user: UserId,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Settings.
    pub config: serde_json::Value,
    /// State.
    pub state: RuleState,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl Rule {
    /// The store ids of the calendars the rule reads and writes (its
    /// config's `calendars`).
    pub fn calendars(&self) -> Vec<String> {
        self.config
            .get("calendars")
            .and_then(serde_json::Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Identifies a link: one source resource paired with one target calendar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LinkKey {
    /// Rule.
    #[serde(serialize_with = "as_text")]
    pub rule: RuleId,
    /// Source calendar.
    #[serde(serialize_with = "as_text")]
    pub source_calendar: CalendarId,
    /// Source resource id (a single event, a master, or an exception).
    pub source_id: String,
    /// Target calendar.
    #[serde(serialize_with = "as_text")]
    pub target_calendar: CalendarId,
}

/// A rule's memory of one thing it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Key.
    pub key: LinkKey,
    /// The target resource's id.
    pub target_id: String,
    /// Bumped when the target had to be recreated under a new id.
    pub generation: i64,
    /// Hash of what was written (hex).
    pub hash: String,
    /// The target's etag after the write.
    pub etag: Option<String>,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
}

/// A run's id.
pub type RunId = i64;

/// A run to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Owner.
    pub user: UserId,
    /// Rule, for a reconcile; None for a pull or a reset of no rule.
    pub rule: Option<RuleId>,
    /// `sync`, `reset`, `pull`.
    pub kind: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
}

/// A run's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// `ok`, `partial` (some items failed), `failed`, `needs_confirmation`.
    pub status: String,
    /// End time.
    pub finished_at: DateTime<Utc>,
    /// Counts and per-item errors, as the executor reports them (JSON).
    pub report: serde_json::Value,
    /// Provider API calls made.
    pub api_calls: u64,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Id.
    pub id: RunId,
    /// Rule.
    #[serde(serialize_with = "as_opt_text")]
    pub rule: Option<RuleId>,
    /// Kind.
    pub kind: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Outcome, None while running (or when the process died).
    pub outcome: Option<RunReport>,
}

/// A user's sync preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// Whether the scheduler pulls the user's calendars on its own.
    pub auto_sync: bool,
    /// Minutes between scheduled pulls of each calendar (at least 1).
    pub interval_minutes: u32,
}

impl Default for Preferences {
    /// Auto sync on, every 15 minutes: what a user who never chose has.
    fn default() -> Self {
        Self {
            auto_sync: true,
            interval_minutes: 15,
        }
    }
}

/// One calendar as the scheduler sees it: everything it needs to decide
/// whether a pull is due and whether a push channel needs renewing, from
/// [`Store::calendar_polls`](crate::Store::calendar_polls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CalendarPoll {
    /// The calendar.
    #[serde(serialize_with = "as_text")]
    pub calendar: CalendarId,
    /// Its account.
    #[serde(serialize_with = "as_text")]
    pub account: AccountId,
    /// The account's owner.
    #[serde(serialize_with = "as_text")]
    pub user: UserId,
    /// The account's state (`needs_reauth` accounts are not pulled).
    pub account_status: AccountStatus,
    /// When the calendar's last pull committed.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The owner's preference (the default when never set).
    pub auto_sync: bool,
    /// The owner's preference (the default when never set).
    pub interval_minutes: u32,
    /// The latest expiration among the calendar's push channels; None when
    /// it has none.
    pub channel_expires: Option<DateTime<Utc>>,
}

/// A push channel: a Google watch channel on one calendar.
///
/// The token that deliveries carry (`X-Goog-Channel-Token`) is not part of
/// the record: the store keeps only its SHA-256 and checks deliveries with
/// [`Store::check_channel`](crate::Store::check_channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelRecord {
    /// The channel id calmesh chose (unique; at most 64 characters at
    /// Google), sent back as `X-Goog-Channel-ID`.
    pub id: String,
    /// The calendar it watches.
    #[serde(serialize_with = "as_text")]
    pub calendar: CalendarId,
    /// Provider kind: `google`.
    pub provider: String,
    /// The provider's id of the watched resource (`resourceId`, sent back as
    /// `X-Goog-Resource-ID`); stopping the channel needs it.
    pub resource_id: String,
    /// When the provider stops delivering.
    pub expiration: DateTime<Utc>,
    /// When the channel was created.
    pub created_at: DateTime<Utc>,
    /// The highest message number delivered so far (`X-Goog-Message-Number`:
    /// increasing, not consecutive); None before the first.
    pub last_message: Option<i64>,
}

/// What [`Store::check_channel`](crate::Store::check_channel) found for a
/// delivery's channel id and token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelCheck {
    /// No channel has this id (never made, deleted, or gone with its
    /// calendar).
    Unknown,
    /// The channel exists but the token does not match (or is empty).
    WrongToken,
    /// The channel exists and the token matches.
    Valid(ChannelRecord),
}

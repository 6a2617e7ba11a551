//! What the SQLite and PostgreSQL stores share: [`SqlStore`], which implements
//! [`Store`] once over a sealed [`Backend`] (one per sqlx database), the row
//! decoders, the diff of a pull, and the errors the callers act on.
//!
//! A backend supplies only what differs between the databases: how arguments
//! are bound (timestamps are RFC 3339 text in SQLite and `TIMESTAMPTZ` in
//! PostgreSQL; JSON is text or `JSONB`; a list of ids is a JSON array or a
//! `TEXT[]`), how such columns are read back, how a pull's entries are
//! written in bulk, and the statements that start a write transaction, lock a
//! calendar for a pull and match a list of ids. Statements use `$1`, `$2`,
//! ... placeholders, which both databases accept, so the rest is one text.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use async_trait::async_trait;
use calmesh_core::{AccountId, CalendarId, RuleId, UserId};
use chrono::{DateTime, Utc};
use sqlx::{Database, Pool};

use crate::secrets::{SecretKey, constant_time_eq, token_sha256};
use crate::{
    Account, AccountStatus, CachedEntry, Calendar, CalendarPoll, ChannelCheck, ChannelRecord,
    Credentials, Link, LinkKey, NewAccount, NewCalendar, NewRule, NewRun, Preferences, PullBatch,
    PullSummary, Rule, RuleState, Run, RunId, RunReport, Store, StoreError,
};

/// [`MIGRATIONS_TABLE`], for `concat!`.
macro_rules! migrations_table {
    () => {
        "_calmesh_migrations"
    };
}

/// The name of the table that records applied migrations (not sqlx's default,
/// which other libraries such as apalis share). Both databases use it.
pub const MIGRATIONS_TABLE: &str = migrations_table!();

/// The [`Store`] on an SQL database: [`SqliteStore`](crate::SqliteStore) is
/// `SqlStore<Sqlite>`, [`PgStore`](crate::PgStore) is `SqlStore<Postgres>`.
/// Each opens with its own `open` and keeps its own migrations; everything
/// else is this one implementation.
pub struct SqlStore<DB: Backend> {
    pool: Pool<DB>,
    key: SecretKey,
}

impl<DB: Backend> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            key: self.key.clone(),
        }
    }
}

impl<DB: Backend> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(DB::STORE_NAME)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<DB: Backend> SqlStore<DB> {
    /// A store over a pool whose schema is up to date.
    pub(crate) fn new(pool: Pool<DB>, key: SecretKey) -> Self {
        Self { pool, key }
    }

    /// The connection pool, for crates that keep their own tables in the same
    /// database (the job queue).
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The id of the key credentials are sealed with.
    pub fn key_id(&self) -> String {
        self.key.id()
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn execute(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        DB::execute(&mut conn, sql, args).await
    }

    async fn fetch_optional(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<DB::Row>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        DB::fetch_optional(&mut conn, sql, args).await
    }

    async fn fetch_one(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<DB::Row, sqlx::Error> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// The rows a query lists for the parent `n`; when there are none, whether
    /// the parent exists decides between an empty list and
    /// [`StoreError::NotFound`] (naming it as `id`).
    async fn children(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
        parent: Parent,
        n: i64,
        id: &(dyn std::fmt::Display + Sync),
    ) -> Result<Vec<DB::Row>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = DB::fetch_all(&mut conn, sql, args).await?;
        if rows.is_empty() && !exists::<DB>(&mut conn, parent, n).await? {
            return Err(StoreError::not_found(parent.what, id));
        }
        Ok(rows)
    }
}

/// Whether the parent record `n` exists.
async fn exists<DB: Backend>(
    conn: &mut DB::Connection,
    parent: Parent,
    n: i64,
) -> Result<bool, sqlx::Error> {
    Ok(DB::fetch_optional(conn, parent.exists, &[n.into()])
        .await?
        .is_some())
}

// ---------------------------------------------------------------------------
// What a backend supplies

pub(crate) mod sealed {
    /// Only this crate implements [`Backend`](super::Backend).
    pub trait Sealed {}
}

/// A database the store runs on: implemented for `sqlx::Sqlite` and
/// `sqlx::Postgres` only (sealed).
pub trait Backend: Database<Row: Columns> + sealed::Sealed + Sync {
    /// The store's name in `Debug` output.
    const STORE_NAME: &'static str;
    /// Starts a transaction that reads, then writes.
    const BEGIN_WRITE: &'static str;
    /// Selects the calendar `$1` and keeps other pulls of it waiting until the
    /// transaction ends; no row when the calendar does not exist.
    const LOCK_CALENDAR: &'static str;
    /// Selects the [`entry_columns!`] of the entries of calendar `$1` whose
    /// remote id is one of `$2` (an [`Arg::Texts`]).
    const ENTRIES_BY_ID: &'static str;
    /// Deletes the entries of calendar `$1` whose remote id or parent id is
    /// one of `$2` (an [`Arg::Texts`]).
    const REMOVE_ENTRIES: &'static str;

    /// The scheduler's view of every calendar, in one query: with
    /// [`POLLS_AS_JSON`](Backend::POLLS_AS_JSON), one row whose column
    /// `polls` is a JSON array holding one array per calendar (the
    /// [`poll_columns!`] then `channel_expires`); otherwise one row per
    /// calendar with those columns. `$1` and `$2` are the default
    /// preferences; `channel_expires` is the latest expiry of the calendar's
    /// channels. Any order.
    const CALENDAR_POLLS: &'static str;
    /// Whether [`CALENDAR_POLLS`](Backend::CALENDAR_POLLS) answers in JSON.
    const POLLS_AS_JSON: bool;

    /// The store's migrations for this database, recorded in
    /// [`MIGRATIONS_TABLE`].
    fn migrator() -> sqlx::migrate::Migrator;

    /// The instant the database keeps for `t` (PostgreSQL keeps
    /// microseconds), so a pull compares what it brings with what was kept.
    fn stored_time(t: DateTime<Utc>) -> DateTime<Utc>;

    /// Runs a statement; returns the number of rows it changed.
    fn execute(
        conn: &mut Self::Connection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Runs a query for at most one row.
    fn fetch_optional(
        conn: &mut Self::Connection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send;

    /// Runs a query for all its rows.
    fn fetch_all(
        conn: &mut Self::Connection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send;

    /// Inserts or replaces entries in bulk. The remote ids are distinct.
    fn write_entries(
        conn: &mut Self::Connection,
        calendar: i64,
        entries: &[&CachedEntry],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub(crate) use crate::sql_backend_queries as backend_queries;

/// One statement argument. Backends bind each kind as their columns hold it.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// An integer (ids, counts) or NULL.
    Int(Option<i64>),
    /// A boolean (SQLite keeps 0 or 1).
    Bool(bool),
    /// Text or NULL.
    Text(Option<&'a str>),
    /// An instant.
    Time(DateTime<Utc>),
    /// A JSON document.
    Json(&'a serde_json::Value),
    /// A list of strings, for `ENTRIES_BY_ID` and `REMOVE_ENTRIES`.
    Texts(&'a [&'a str]),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Self::Text(value)
    }
}

impl From<DateTime<Utc>> for Arg<'_> {
    fn from(value: DateTime<Utc>) -> Self {
        Self::Time(value)
    }
}

impl<'a> From<&'a serde_json::Value> for Arg<'a> {
    fn from(value: &'a serde_json::Value) -> Self {
        Self::Json(value)
    }
}

/// Reads the columns of a row. `what` names the record in errors.
pub trait Columns {
    /// An integer column.
    fn int(&self, what: &'static str, name: &str) -> Result<i64, StoreError>;
    /// A boolean column.
    fn bool(&self, what: &'static str, name: &str) -> Result<bool, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, what: &'static str, name: &str) -> Result<Option<i64>, StoreError>;
    /// A text column.
    fn text(&self, what: &'static str, name: &str) -> Result<String, StoreError>;
    /// A nullable text column.
    fn opt_text(&self, what: &'static str, name: &str) -> Result<Option<String>, StoreError>;
    /// A nullable timestamp column.
    fn opt_time(&self, what: &'static str, name: &str)
    -> Result<Option<DateTime<Utc>>, StoreError>;
    /// A nullable JSON column.
    fn opt_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        name: &str,
    ) -> Result<Option<T>, StoreError>;

    /// A timestamp column.
    fn time(&self, what: &'static str, name: &str) -> Result<DateTime<Utc>, StoreError> {
        self.opt_time(what, name)?
            .ok_or_else(|| StoreError::corrupt(what, format!("column {name} is NULL")))
    }

    /// A JSON column.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        name: &str,
    ) -> Result<T, StoreError> {
        self.opt_json(what, name)?
            .ok_or_else(|| StoreError::corrupt(what, format!("column {name} is NULL")))
    }
}

/// The [`Columns`] methods that read a plain type the same way on every
/// backend (a row type's impl adds `opt_time` and `opt_json`).
macro_rules! plain_columns {
    () => {
        fn int(&self, what: &'static str, name: &str) -> Result<i64, StoreError> {
            $crate::sql::get(self, what, name)
        }
        fn bool(&self, what: &'static str, name: &str) -> Result<bool, StoreError> {
            $crate::sql::get(self, what, name)
        }
        fn opt_int(&self, what: &'static str, name: &str) -> Result<Option<i64>, StoreError> {
            $crate::sql::get(self, what, name)
        }
        fn text(&self, what: &'static str, name: &str) -> Result<String, StoreError> {
            $crate::sql::get(self, what, name)
        }
        fn opt_text(&self, what: &'static str, name: &str) -> Result<Option<String>, StoreError> {
            $crate::sql::get(self, what, name)
        }
    };
}
pub(crate) use plain_columns;

/// One column, decoded; a column that does not decode is a corrupt record.
pub(crate) fn get<'r, R, T>(row: &'r R, what: &'static str, name: &str) -> Result<T, StoreError>
where
    R: sqlx::Row,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'n> &'n str: sqlx::ColumnIndex<R>,
{
    row.try_get(name)
        .map_err(|e| StoreError::corrupt(what, format!("column {name}: {e}")))
}

// ---------------------------------------------------------------------------
// Decoding

/// A store id from its string form; an id that is not one of ours names
/// nothing.
fn id_of(what: &'static str, id: &str) -> Result<i64, StoreError> {
    id.parse::<i64>()
        .map_err(|_| StoreError::not_found(what, id))
}

fn account_status(text: &str) -> Result<AccountStatus, StoreError> {
    match text {
        "ok" => Ok(AccountStatus::Ok),
        "needs_reauth" => Ok(AccountStatus::NeedsReauth),
        "error" => Ok(AccountStatus::Error),
        other => Err(StoreError::corrupt(
            "account",
            format!("unknown status {other:?}"),
        )),
    }
}

fn rule_state(text: &str) -> Result<RuleState, StoreError> {
    match text {
        "active" => Ok(RuleState::Active),
        "needs_confirmation" => Ok(RuleState::NeedsConfirmation),
        "paused" => Ok(RuleState::Paused),
        other => Err(StoreError::corrupt(
            "rule",
            format!("unknown state {other:?}"),
        )),
    }
}

/// Maps a constraint failure to the error the caller can act on.
fn constraint(
    e: sqlx::Error,
    unique: impl FnOnce() -> StoreError,
    missing: impl FnOnce() -> StoreError,
) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => unique(),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => missing(),
        _ => StoreError::Database(e),
    }
}

fn is_foreign_key_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation())
}

/// A parent record: how to tell whether it exists, and its name in errors.
#[derive(Clone, Copy)]
struct Parent {
    exists: &'static str,
    what: &'static str,
}

const USER: Parent = Parent {
    exists: "SELECT 1 FROM users WHERE id = $1",
    what: "user",
};
const ACCOUNT: Parent = Parent {
    exists: "SELECT 1 FROM accounts WHERE id = $1",
    what: "account",
};
const CALENDAR: Parent = Parent {
    exists: "SELECT 1 FROM calendars WHERE id = $1",
    what: "calendar",
};
const RULE: Parent = Parent {
    exists: "SELECT 1 FROM rules WHERE id = $1",
    what: "rule",
};

/// The columns of an account row, in `SELECT` order.
macro_rules! account_columns {
    () => {
        "id, user_id, provider, email, client_id, api_base, token_url, \
         status, last_error, created_at"
    };
}

fn account_row(row: &impl Columns) -> Result<Account, StoreError> {
    const W: &str = "account";
    Ok(Account {
        id: AccountId::new(row.int(W, "id")?.to_string()),
        user: UserId::new(row.int(W, "user_id")?.to_string()),
        provider: row.text(W, "provider")?,
        email: row.text(W, "email")?,
        client_id: row.text(W, "client_id")?,
        api_base: row.opt_text(W, "api_base")?,
        token_url: row.opt_text(W, "token_url")?,
        status: account_status(&row.text(W, "status")?)?,
        last_error: row.opt_text(W, "last_error")?,
        created_at: row.time(W, "created_at")?,
    })
}

/// The columns of a calendar row, in `SELECT` order.
macro_rules! calendar_columns {
    () => {
        "id, account_id, remote_id, name, time_zone, cursor, last_sync_at, last_error"
    };
}

fn calendar_row(row: &impl Columns) -> Result<Calendar, StoreError> {
    const W: &str = "calendar";
    Ok(Calendar {
        id: CalendarId::new(row.int(W, "id")?.to_string()),
        account: AccountId::new(row.int(W, "account_id")?.to_string()),
        remote_id: row.text(W, "remote_id")?,
        name: row.text(W, "name")?,
        time_zone: row.opt_text(W, "time_zone")?,
        cursor: row.opt_text(W, "cursor")?,
        last_sync_at: row.opt_time(W, "last_sync_at")?,
        last_error: row.opt_text(W, "last_error")?,
    })
}

/// The columns of an entry row, in `SELECT` order.
macro_rules! entry_columns {
    () => {
        "remote_id, parent_id, etag, updated, ics, tags"
    };
}
pub(crate) use entry_columns;

/// The statement that inserts or replaces the entries a `SELECT` yields as
/// (calendar id, then [`entry_columns!`]).
macro_rules! upsert_entries {
    ($select:expr) => {
        concat!(
            "INSERT INTO entries (calendar_id, remote_id, parent_id, etag, updated, ics, tags) ",
            $select,
            " ON CONFLICT (calendar_id, remote_id) DO UPDATE SET \
             parent_id = excluded.parent_id, etag = excluded.etag, \
             updated = excluded.updated, ics = excluded.ics, tags = excluded.tags"
        )
    };
}
pub(crate) use upsert_entries;

fn entry_row(row: &impl Columns) -> Result<CachedEntry, StoreError> {
    const W: &str = "entry";
    Ok(CachedEntry {
        remote_id: row.text(W, "remote_id")?,
        parent_id: row.opt_text(W, "parent_id")?,
        etag: row.opt_text(W, "etag")?,
        updated: row.opt_time(W, "updated")?,
        ics: row.text(W, "ics")?,
        tags: row.json(W, "tags")?,
    })
}

/// The columns of a rule row, in `SELECT` order.
macro_rules! rule_columns {
    () => {
        "id, user_id, name, kind, config, state, created_at"
    };
}

fn rule_row(row: &impl Columns) -> Result<Rule, StoreError> {
    const W: &str = "rule";
    Ok(Rule {
        id: RuleId::new(row.int(W, "id")?.to_string()),
        user: UserId::new(row.int(W, "user_id")?.to_string()),
        name: row.text(W, "name")?,
        kind: row.text(W, "kind")?,
        config: row.json(W, "config")?,
        state: rule_state(&row.text(W, "state")?)?,
        created_at: row.time(W, "created_at")?,
    })
}

/// The columns of a link row, in `SELECT` order.
macro_rules! link_columns {
    () => {
        "rule_id, source_calendar_id, source_id, target_calendar_id, \
         target_id, generation, hash, etag, updated_at"
    };
}

fn link_row(row: &impl Columns) -> Result<Link, StoreError> {
    const W: &str = "link";
    Ok(Link {
        key: LinkKey {
            rule: RuleId::new(row.int(W, "rule_id")?.to_string()),
            source_calendar: CalendarId::new(row.int(W, "source_calendar_id")?.to_string()),
            source_id: row.text(W, "source_id")?,
            target_calendar: CalendarId::new(row.int(W, "target_calendar_id")?.to_string()),
        },
        target_id: row.text(W, "target_id")?,
        generation: row.int(W, "generation")?,
        hash: row.text(W, "hash")?,
        etag: row.opt_text(W, "etag")?,
        updated_at: row.time(W, "updated_at")?,
    })
}

/// The columns of a run row, in `SELECT` order.
macro_rules! run_columns {
    () => {
        "id, rule_id, kind, started_at, finished_at, status, report, api_calls"
    };
}

fn run_row(row: &impl Columns) -> Result<Run, StoreError> {
    const W: &str = "run";
    let outcome = match row.opt_time(W, "finished_at")? {
        None => None,
        Some(finished_at) => Some(RunReport {
            status: row.opt_text(W, "status")?.unwrap_or_default(),
            finished_at,
            report: row
                .opt_json(W, "report")?
                .unwrap_or(serde_json::Value::Null),
            api_calls: u64::try_from(row.opt_int(W, "api_calls")?.unwrap_or(0))
                .map_err(|_| StoreError::corrupt(W, "negative api_calls"))?,
        }),
    };
    Ok(Run {
        id: row.int(W, "id")?,
        rule: row
            .opt_int(W, "rule_id")?
            .map(|id| RuleId::new(id.to_string())),
        kind: row.text(W, "kind")?,
        started_at: row.time(W, "started_at")?,
        outcome,
    })
}

/// The columns of a channel row, in `SELECT` order (never the token hash).
macro_rules! channel_columns {
    () => {
        "id, calendar_id, provider, resource_id, expiration, created_at, last_message"
    };
}

fn channel_row(row: &impl Columns) -> Result<ChannelRecord, StoreError> {
    const W: &str = "channel";
    Ok(ChannelRecord {
        id: row.text(W, "id")?,
        calendar: CalendarId::new(row.int(W, "calendar_id")?.to_string()),
        provider: row.text(W, "provider")?,
        resource_id: row.text(W, "resource_id")?,
        expiration: row.time(W, "expiration")?,
        created_at: row.time(W, "created_at")?,
        last_message: row.opt_int(W, "last_message")?,
    })
}

/// An interval as stored.
fn interval_of(what: &'static str, minutes: i64) -> Result<u32, StoreError> {
    u32::try_from(minutes)
        .map_err(|_| StoreError::corrupt(what, format!("interval_minutes {minutes}")))
}

/// The columns of a row of [`Backend::CALENDAR_POLLS`], in `SELECT` order
/// (and in the order of each JSON array when the backend answers in JSON).
macro_rules! poll_columns {
    () => {
        "c.id AS calendar_id, c.account_id, a.user_id, a.status, c.last_sync_at, \
         COALESCE(p.auto_sync, $1) AS auto_sync, \
         COALESCE(p.interval_minutes, $2) AS interval_minutes"
    };
}
pub(crate) use poll_columns;

/// The tables of [`Backend::CALENDAR_POLLS`]: every calendar with its account
/// and its owner's preferences, if set.
macro_rules! poll_tables {
    () => {
        "calendars c JOIN accounts a ON a.id = c.account_id \
         LEFT JOIN preferences p ON p.user_id = a.user_id"
    };
}
pub(crate) use poll_tables;

fn calendar_poll_row(row: &impl Columns) -> Result<(i64, CalendarPoll), StoreError> {
    const W: &str = "calendar poll";
    let id = row.int(W, "calendar_id")?;
    Ok((
        id,
        CalendarPoll {
            calendar: CalendarId::new(id.to_string()),
            account: AccountId::new(row.int(W, "account_id")?.to_string()),
            user: UserId::new(row.int(W, "user_id")?.to_string()),
            account_status: account_status(&row.text(W, "status")?)?,
            last_sync_at: row.opt_time(W, "last_sync_at")?,
            auto_sync: row.bool(W, "auto_sync")?,
            interval_minutes: interval_of(W, row.int(W, "interval_minutes")?)?,
            channel_expires: row.opt_time(W, "channel_expires")?,
        },
    ))
}

/// One calendar poll as a JSON array of the [`poll_columns!`] and
/// `channel_expires`.
#[derive(serde::Deserialize)]
struct JsonPoll(
    i64,
    i64,
    i64,
    String,
    Option<DateTime<Utc>>,
    #[serde(deserialize_with = "json_bool")] bool,
    i64,
    Option<DateTime<Utc>>,
);

/// A JSON boolean, or an integer as SQLite writes booleans (0 is false).
fn json_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Int(n) => n != 0,
    })
}

impl JsonPoll {
    fn into_poll(self) -> Result<(i64, CalendarPoll), StoreError> {
        const W: &str = "calendar poll";
        let JsonPoll(id, account, user, status, last_sync_at, auto_sync, minutes, expires) = self;
        Ok((
            id,
            CalendarPoll {
                calendar: CalendarId::new(id.to_string()),
                account: AccountId::new(account.to_string()),
                user: UserId::new(user.to_string()),
                account_status: account_status(&status)?,
                last_sync_at,
                auto_sync,
                interval_minutes: interval_of(W, minutes)?,
                channel_expires: expires,
            },
        ))
    }
}

// ---------------------------------------------------------------------------
// Pulls

/// The cached entries of a calendar: all of them, or those with these remote
/// ids.
async fn cached_entries<DB: Backend>(
    conn: &mut DB::Connection,
    calendar: i64,
    remote_ids: Option<&[&str]>,
) -> Result<HashMap<String, CachedEntry>, StoreError> {
    let rows = match remote_ids {
        None => {
            let sql = concat!(
                "SELECT ",
                entry_columns!(),
                " FROM entries WHERE calendar_id = $1"
            );
            DB::fetch_all(conn, sql, &[calendar.into()]).await?
        }
        Some(ids) => {
            let args = [calendar.into(), Arg::Texts(ids)];
            DB::fetch_all(conn, DB::ENTRIES_BY_ID, &args).await?
        }
    };
    rows.iter()
        .map(|row| entry_row(row).map(|entry| (entry.remote_id.clone(), entry)))
        .collect()
}

/// Removes entries by remote id, with the entries whose parent is one of
/// them; returns how many rows went.
async fn remove_entries<DB: Backend>(
    conn: &mut DB::Connection,
    calendar: i64,
    remote_ids: &[&str],
) -> Result<u64, StoreError> {
    if remote_ids.is_empty() {
        return Ok(0);
    }
    let args = [calendar.into(), Arg::Texts(remote_ids)];
    Ok(DB::execute(conn, DB::REMOVE_ENTRIES, &args).await?)
}

/// What a pull writes and removes, decided against the cached entries.
struct PullPlan<'b> {
    /// Counts, but `removed` (the database says how many rows went).
    summary: PullSummary,
    /// New and changed entries, one per remote id (the batch's last).
    writes: Vec<&'b CachedEntry>,
    /// Remote ids to remove, distinct.
    gone: Vec<&'b str>,
}

/// The remote ids a batch upserts, each with the index of its last
/// occurrence (the one that wins).
fn last_occurrences(batch: &PullBatch) -> HashMap<&str, usize> {
    let mut last = HashMap::with_capacity(batch.upserts.len());
    for (i, entry) in batch.upserts.iter().enumerate() {
        last.insert(entry.remote_id.as_str(), i);
    }
    last
}

/// Diffs a batch against the cache: `existing` holds every cached entry of
/// the calendar for a full listing, else at least those the batch upserts.
/// `stored_time` is what the database keeps of an instant.
fn plan_pull<'b>(
    batch: &'b PullBatch,
    last: &HashMap<&str, usize>,
    existing: &'b HashMap<String, CachedEntry>,
    stored_time: fn(DateTime<Utc>) -> DateTime<Utc>,
) -> PullPlan<'b> {
    let mut summary = PullSummary::default();
    let mut writes = Vec::new();
    for (i, entry) in batch.upserts.iter().enumerate() {
        if last.get(entry.remote_id.as_str()) != Some(&i) {
            continue;
        }
        match existing.get(&entry.remote_id) {
            Some(old) if same_entry(old, entry, stored_time) => {
                summary.unchanged += 1;
                continue;
            }
            Some(_) => summary.changed += 1,
            None => summary.added += 1,
        }
        writes.push(entry);
    }
    let mut gone: HashSet<&str> = batch.removals.iter().map(String::as_str).collect();
    if batch.full {
        gone.extend(
            existing
                .keys()
                .map(String::as_str)
                .filter(|id| !last.contains_key(id)),
        );
    }
    PullPlan {
        summary,
        writes,
        gone: gone.into_iter().collect(),
    }
}

/// Whether the cache already says what `new` says.
fn same_entry(
    old: &CachedEntry,
    new: &CachedEntry,
    stored_time: fn(DateTime<Utc>) -> DateTime<Utc>,
) -> bool {
    old.parent_id == new.parent_id
        && old.etag == new.etag
        && old.updated == new.updated.map(stored_time)
        && old.ics == new.ics
        && old.tags == new.tags
}

// ---------------------------------------------------------------------------

#[async_trait]
impl<DB: Backend> Store for SqlStore<DB> {
    async fn ensure_user(&self, name: &str) -> Result<UserId, StoreError> {
        const FIND: &str = "SELECT id FROM users WHERE name = $1";
        const W: &str = "user";
        if let Some(row) = self.fetch_optional(FIND, &[name.into()]).await? {
            return Ok(UserId::new(row.int(W, "id")?.to_string()));
        }
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let inserted = DB::fetch_optional(
            &mut tx,
            "INSERT INTO users (name, created_at) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
            &[name.into(), self.now().into()],
        )
        .await?;
        let row = match inserted {
            Some(row) => row,
            None => DB::fetch_optional(&mut tx, FIND, &[name.into()])
                .await?
                .ok_or(sqlx::Error::RowNotFound)?,
        };
        tx.commit().await?;
        Ok(UserId::new(row.int(W, "id")?.to_string()))
    }

    async fn upsert_account(&self, account: &NewAccount) -> Result<Account, StoreError> {
        let user = id_of("user", account.user.as_str())?;
        let binding = crate::secrets::account_binding(
            &user.to_string(),
            account.provider.as_str(),
            &account.email,
        );
        let (secret, key_id) = self.key.seal_credentials(&binding, &account.credentials)?;
        let sql = concat!(
            "INSERT INTO accounts (user_id, provider, email, client_id, api_base, token_url, \
             status, last_error, secret, key_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'ok', NULL, $7, $8, $9) \
             ON CONFLICT (user_id, provider, email) DO UPDATE SET \
             client_id = excluded.client_id, api_base = excluded.api_base, \
             token_url = excluded.token_url, status = 'ok', last_error = NULL, \
             secret = excluded.secret, key_id = excluded.key_id \
             RETURNING ",
            account_columns!()
        );
        let args = [
            user.into(),
            account.provider.as_str().into(),
            account.email.as_str().into(),
            account.client_id.as_str().into(),
            account.api_base.as_deref().into(),
            account.token_url.as_deref().into(),
            secret.as_str().into(),
            key_id.as_str().into(),
            self.now().into(),
        ];
        let row = self.fetch_one(sql, &args).await.map_err(|e| {
            constraint(
                e,
                || {
                    StoreError::Conflict(format!(
                        "an account {} at {} already exists",
                        account.email, account.provider
                    ))
                },
                || StoreError::not_found("user", &account.user),
            )
        })?;
        account_row(&row)
    }

    async fn account(&self, id: &AccountId) -> Result<Account, StoreError> {
        let n = id_of("account", id.as_str())?;
        let sql = concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE id = $1"
        );
        let row = self
            .fetch_optional(sql, &[n.into()])
            .await?
            .ok_or_else(|| StoreError::not_found("account", id))?;
        account_row(&row)
    }

    async fn account_by_email(
        &self,
        user: &UserId,
        provider: &str,
        email: &str,
    ) -> Result<Option<Account>, StoreError> {
        let Ok(user) = user.as_str().parse::<i64>() else {
            return Ok(None);
        };
        let sql = concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts \
             WHERE user_id = $1 AND provider = $2 AND email = $3"
        );
        self.fetch_optional(sql, &[user.into(), provider.into(), email.into()])
            .await?
            .as_ref()
            .map(account_row)
            .transpose()
    }

    async fn accounts(&self, user: &UserId) -> Result<Vec<Account>, StoreError> {
        let n = id_of("user", user.as_str())?;
        let sql = concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE user_id = $1 ORDER BY id"
        );
        let rows = self.children(sql, &[n.into()], USER, n, user).await?;
        rows.iter().map(account_row).collect()
    }

    async fn credentials(&self, id: &AccountId) -> Result<Credentials, StoreError> {
        const W: &str = "account";
        let n = id_of("account", id.as_str())?;
        let row = self
            .fetch_optional(
                "SELECT secret, key_id, user_id, provider, email FROM accounts WHERE id = $1",
                &[n.into()],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("account", id))?;
        let secret = row.text(W, "secret")?;
        let key_id = row.text(W, "key_id")?;
        let binding = crate::secrets::account_binding(
            &row.int(W, "user_id")?.to_string(),
            &row.text(W, "provider")?,
            &row.text(W, "email")?,
        );
        self.key
            .open_credentials(id.as_str(), &binding, &secret, &key_id)
    }

    async fn set_account_status(
        &self,
        id: &AccountId,
        status: AccountStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = id_of("account", id.as_str())?;
        let done = self
            .execute(
                "UPDATE accounts SET status = $1, last_error = $2 WHERE id = $3",
                &[status.as_str().into(), error.into(), n.into()],
            )
            .await?;
        if done == 0 {
            return Err(StoreError::not_found("account", id));
        }
        Ok(())
    }

    async fn upsert_calendar(&self, calendar: &NewCalendar) -> Result<Calendar, StoreError> {
        let account = id_of("account", calendar.account.as_str())?;
        let sql = concat!(
            "INSERT INTO calendars (account_id, remote_id, name, time_zone) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, remote_id) DO UPDATE SET \
             name = excluded.name, time_zone = excluded.time_zone \
             RETURNING ",
            calendar_columns!()
        );
        let args = [
            account.into(),
            calendar.remote_id.as_str().into(),
            calendar.name.as_str().into(),
            calendar.time_zone.as_deref().into(),
        ];
        let row = self.fetch_one(sql, &args).await.map_err(|e| {
            constraint(
                e,
                || {
                    StoreError::Conflict(format!(
                        "calendar {} already exists in account {}",
                        calendar.remote_id, calendar.account
                    ))
                },
                || StoreError::not_found("account", &calendar.account),
            )
        })?;
        calendar_row(&row)
    }

    async fn calendar(&self, id: &CalendarId) -> Result<Calendar, StoreError> {
        let n = id_of("calendar", id.as_str())?;
        let sql = concat!(
            "SELECT ",
            calendar_columns!(),
            " FROM calendars WHERE id = $1"
        );
        let row = self
            .fetch_optional(sql, &[n.into()])
            .await?
            .ok_or_else(|| StoreError::not_found("calendar", id))?;
        calendar_row(&row)
    }

    async fn calendar_by_remote(
        &self,
        account: &AccountId,
        remote_id: &str,
    ) -> Result<Option<Calendar>, StoreError> {
        let Ok(account) = account.as_str().parse::<i64>() else {
            return Ok(None);
        };
        let sql = concat!(
            "SELECT ",
            calendar_columns!(),
            " FROM calendars WHERE account_id = $1 AND remote_id = $2"
        );
        self.fetch_optional(sql, &[account.into(), remote_id.into()])
            .await?
            .as_ref()
            .map(calendar_row)
            .transpose()
    }

    async fn calendars(&self, account: &AccountId) -> Result<Vec<Calendar>, StoreError> {
        let n = id_of("account", account.as_str())?;
        let sql = concat!(
            "SELECT ",
            calendar_columns!(),
            " FROM calendars WHERE account_id = $1 ORDER BY id"
        );
        let rows = self.children(sql, &[n.into()], ACCOUNT, n, account).await?;
        rows.iter().map(calendar_row).collect()
    }

    async fn set_calendar_error(
        &self,
        id: &CalendarId,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = id_of("calendar", id.as_str())?;
        let done = self
            .execute(
                "UPDATE calendars SET last_error = $1 WHERE id = $2",
                &[error.into(), n.into()],
            )
            .await?;
        if done == 0 {
            return Err(StoreError::not_found("calendar", id));
        }
        Ok(())
    }

    async fn apply_pull(
        &self,
        calendar: &CalendarId,
        batch: &PullBatch,
    ) -> Result<PullSummary, StoreError> {
        let cal = id_of("calendar", calendar.as_str())?;
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if DB::fetch_optional(&mut tx, DB::LOCK_CALENDAR, &[cal.into()])
            .await?
            .is_none()
        {
            // End it now: a dropped transaction is rolled back only when its
            // connection is next used, holding SQLite's write lock till then.
            tx.rollback().await?;
            return Err(StoreError::not_found("calendar", calendar));
        }

        // What the cache holds now: all of it for a full listing (to find
        // what is gone), else just the entries the batch touches.
        let last = last_occurrences(batch);
        let existing = if batch.full {
            cached_entries::<DB>(&mut tx, cal, None).await?
        } else if batch.upserts.is_empty() {
            HashMap::new()
        } else {
            let ids: Vec<&str> = last.keys().copied().collect();
            cached_entries::<DB>(&mut tx, cal, Some(&ids)).await?
        };

        let plan = plan_pull(batch, &last, &existing, DB::stored_time);
        DB::write_entries(&mut tx, cal, &plan.writes).await?;
        let mut summary = plan.summary;
        summary.removed = remove_entries::<DB>(&mut tx, cal, &plan.gone).await?;
        DB::execute(
            &mut tx,
            "UPDATE calendars SET cursor = $1, last_sync_at = $2, last_error = NULL WHERE id = $3",
            &[
                batch.cursor.as_deref().into(),
                batch.synced_at.into(),
                cal.into(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(summary)
    }

    async fn entries(&self, calendar: &CalendarId) -> Result<Vec<CachedEntry>, StoreError> {
        let n = id_of("calendar", calendar.as_str())?;
        let sql = concat!(
            "SELECT ",
            entry_columns!(),
            " FROM entries WHERE calendar_id = $1 ORDER BY remote_id"
        );
        let rows = self
            .children(sql, &[n.into()], CALENDAR, n, calendar)
            .await?;
        rows.iter().map(entry_row).collect()
    }

    async fn put_entry(
        &self,
        calendar: &CalendarId,
        entry: &CachedEntry,
    ) -> Result<(), StoreError> {
        let n = id_of("calendar", calendar.as_str())?;
        let mut conn = self.pool.acquire().await?;
        match DB::write_entries(&mut conn, n, &[entry]).await {
            Err(e) if is_foreign_key_violation(&e) => {
                Err(StoreError::not_found("calendar", calendar))
            }
            other => other,
        }
    }

    async fn remove_entry(&self, calendar: &CalendarId, remote_id: &str) -> Result<(), StoreError> {
        let Ok(n) = calendar.as_str().parse::<i64>() else {
            return Ok(());
        };
        let mut conn = self.pool.acquire().await?;
        remove_entries::<DB>(&mut conn, n, &[remote_id]).await?;
        Ok(())
    }

    async fn add_rule(&self, rule: &NewRule) -> Result<Rule, StoreError> {
        let user = id_of("user", rule.user.as_str())?;
        // Ids are never reused (migration 0003): the next one comes from
        // the high-water mark, bumped in the same transaction.
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let next = DB::fetch_optional(
            &mut tx,
            "UPDATE id_high_water SET last = last + 1 WHERE name = 'rules' RETURNING last",
            &[],
        )
        .await?
        .ok_or_else(|| StoreError::corrupt("id_high_water", "no row for rules"))?
        .int("id_high_water", "last")?;
        let sql = concat!(
            "INSERT INTO rules (id, user_id, name, kind, config, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'active', $6) RETURNING ",
            rule_columns!()
        );
        let args = [
            next.into(),
            user.into(),
            rule.name.as_str().into(),
            rule.kind.as_str().into(),
            (&rule.config).into(),
            self.now().into(),
        ];
        let row = match DB::fetch_optional(&mut tx, sql, &args).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                tx.rollback().await?;
                return Err(StoreError::corrupt("rule", "the insert returned no row"));
            }
            Err(e) => {
                tx.rollback().await?;
                return Err(constraint(
                    e,
                    || StoreError::Conflict(format!("a rule named {:?} already exists", rule.name)),
                    || StoreError::not_found("user", &rule.user),
                ));
            }
        };
        let added = rule_row(&row)?;
        tx.commit().await?;
        Ok(added)
    }

    async fn rule(&self, id: &RuleId) -> Result<Rule, StoreError> {
        let n = id_of("rule", id.as_str())?;
        let sql = concat!("SELECT ", rule_columns!(), " FROM rules WHERE id = $1");
        let row = self
            .fetch_optional(sql, &[n.into()])
            .await?
            .ok_or_else(|| StoreError::not_found("rule", id))?;
        rule_row(&row)
    }

    async fn rule_by_name(&self, user: &UserId, name: &str) -> Result<Option<Rule>, StoreError> {
        let Ok(user) = user.as_str().parse::<i64>() else {
            return Ok(None);
        };
        let sql = concat!(
            "SELECT ",
            rule_columns!(),
            " FROM rules WHERE user_id = $1 AND name = $2"
        );
        self.fetch_optional(sql, &[user.into(), name.into()])
            .await?
            .as_ref()
            .map(rule_row)
            .transpose()
    }

    async fn rules(&self, user: &UserId) -> Result<Vec<Rule>, StoreError> {
        let n = id_of("user", user.as_str())?;
        let sql = concat!(
            "SELECT ",
            rule_columns!(),
            " FROM rules WHERE user_id = $1 ORDER BY id"
        );
        let rows = self.children(sql, &[n.into()], USER, n, user).await?;
        rows.iter().map(rule_row).collect()
    }

    async fn delete_account(&self, id: &AccountId) -> Result<(), StoreError> {
        let n = id_of("account", id.as_str())?;
        let done = self
            .execute("DELETE FROM accounts WHERE id = $1", &[n.into()])
            .await
            .map_err(|e| {
                constraint(
                    e,
                    || StoreError::Conflict(format!("account {id} is still in use")),
                    || {
                        StoreError::Conflict(format!(
                            "a rule's links still point at a calendar of account {id}; \
                             remove the rule first"
                        ))
                    },
                )
            })?;
        if done == 0 {
            return Err(StoreError::not_found("account", id));
        }
        Ok(())
    }

    async fn all_rules(&self) -> Result<Vec<Rule>, StoreError> {
        let sql = concat!("SELECT ", rule_columns!(), " FROM rules ORDER BY id");
        let mut conn = self.pool.acquire().await?;
        let rows = DB::fetch_all(&mut conn, sql, &[]).await?;
        rows.iter().map(rule_row).collect()
    }

    async fn set_rule_state(&self, id: &RuleId, state: RuleState) -> Result<(), StoreError> {
        let n = id_of("rule", id.as_str())?;
        let done = self
            .execute(
                "UPDATE rules SET state = $1 WHERE id = $2",
                &[state.as_str().into(), n.into()],
            )
            .await?;
        if done == 0 {
            return Err(StoreError::not_found("rule", id));
        }
        Ok(())
    }

    async fn delete_rule(&self, id: &RuleId) -> Result<(), StoreError> {
        let n = id_of("rule", id.as_str())?;
        let done = self
            .execute("DELETE FROM rules WHERE id = $1", &[n.into()])
            .await?;
        if done == 0 {
            return Err(StoreError::not_found("rule", id));
        }
        Ok(())
    }

    async fn links(&self, rule: &RuleId) -> Result<Vec<Link>, StoreError> {
        let n = id_of("rule", rule.as_str())?;
        let sql = concat!(
            "SELECT ",
            link_columns!(),
            " FROM links WHERE rule_id = $1 \
             ORDER BY source_calendar_id, source_id, target_calendar_id"
        );
        let rows = self.children(sql, &[n.into()], RULE, n, rule).await?;
        rows.iter().map(link_row).collect()
    }

    async fn links_to(&self, calendar: &CalendarId) -> Result<Vec<Link>, StoreError> {
        let n = id_of("calendar", calendar.as_str())?;
        let sql = concat!(
            "SELECT ",
            link_columns!(),
            " FROM links WHERE target_calendar_id = $1 \
             ORDER BY rule_id, source_calendar_id, source_id"
        );
        let rows = self
            .children(sql, &[n.into()], CALENDAR, n, calendar)
            .await?;
        rows.iter().map(link_row).collect()
    }

    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let key = &link.key;
        let rule = id_of("rule", key.rule.as_str())?;
        let source = id_of("calendar", key.source_calendar.as_str())?;
        let target = id_of("calendar", key.target_calendar.as_str())?;
        let mut conn = self.pool.acquire().await?;
        let result = DB::execute(
            &mut conn,
            "INSERT INTO links (rule_id, source_calendar_id, source_id, target_calendar_id, \
             target_id, generation, hash, etag, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (rule_id, source_calendar_id, source_id, target_calendar_id) \
             DO UPDATE SET target_id = excluded.target_id, generation = excluded.generation, \
             hash = excluded.hash, etag = excluded.etag, updated_at = excluded.updated_at",
            &[
                rule.into(),
                source.into(),
                key.source_id.as_str().into(),
                target.into(),
                link.target_id.as_str().into(),
                link.generation.into(),
                link.hash.as_str().into(),
                link.etag.as_deref().into(),
                link.updated_at.into(),
            ],
        )
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                // Say which parent is missing.
                if !exists::<DB>(&mut conn, RULE, rule).await? {
                    Err(StoreError::not_found("rule", &key.rule))
                } else if !exists::<DB>(&mut conn, CALENDAR, source).await? {
                    Err(StoreError::not_found("calendar", &key.source_calendar))
                } else {
                    Err(StoreError::not_found("calendar", &key.target_calendar))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_link(&self, key: &LinkKey) -> Result<(), StoreError> {
        let (Ok(rule), Ok(source), Ok(target)) = (
            key.rule.as_str().parse::<i64>(),
            key.source_calendar.as_str().parse::<i64>(),
            key.target_calendar.as_str().parse::<i64>(),
        ) else {
            return Ok(());
        };
        self.execute(
            "DELETE FROM links WHERE rule_id = $1 AND source_calendar_id = $2 \
             AND source_id = $3 AND target_calendar_id = $4",
            &[
                rule.into(),
                source.into(),
                key.source_id.as_str().into(),
                target.into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn start_run(&self, run: &NewRun) -> Result<RunId, StoreError> {
        let user = id_of("user", run.user.as_str())?;
        let rule = run
            .rule
            .as_ref()
            .map(|rule| id_of("rule", rule.as_str()))
            .transpose()?;
        let row = self
            .fetch_one(
                "INSERT INTO runs (user_id, rule_id, kind, started_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[
                    user.into(),
                    rule.into(),
                    run.kind.as_str().into(),
                    run.started_at.into(),
                ],
            )
            .await
            .map_err(|e| {
                constraint(
                    e,
                    || StoreError::Conflict("run already exists".to_owned()),
                    || match &run.rule {
                        Some(rule) => StoreError::NotFound {
                            what: "user or rule",
                            id: format!("{} / {rule}", run.user),
                        },
                        None => StoreError::not_found("user", &run.user),
                    },
                )
            })?;
        row.int("run", "id")
    }

    async fn finish_run(&self, id: RunId, report: &RunReport) -> Result<(), StoreError> {
        let done = self
            .execute(
                "UPDATE runs SET finished_at = $1, status = $2, report = $3, api_calls = $4 \
                 WHERE id = $5",
                &[
                    report.finished_at.into(),
                    report.status.as_str().into(),
                    (&report.report).into(),
                    i64::try_from(report.api_calls).unwrap_or(i64::MAX).into(),
                    id.into(),
                ],
            )
            .await?;
        if done == 0 {
            return Err(StoreError::not_found("run", id));
        }
        Ok(())
    }

    async fn runs(&self, user: &UserId, limit: u32) -> Result<Vec<Run>, StoreError> {
        let n = id_of("user", user.as_str())?;
        let sql = concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE user_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        );
        let rows = self
            .children(sql, &[n.into(), i64::from(limit).into()], USER, n, user)
            .await?;
        rows.iter().map(run_row).collect()
    }

    async fn delete_runs_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self
            .execute("DELETE FROM runs WHERE started_at < $1", &[before.into()])
            .await?)
    }

    async fn users(&self) -> Result<Vec<(UserId, String)>, StoreError> {
        const W: &str = "user";
        let mut conn = self.pool.acquire().await?;
        let rows = DB::fetch_all(&mut conn, "SELECT id, name FROM users ORDER BY id", &[]).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    UserId::new(row.int(W, "id")?.to_string()),
                    row.text(W, "name")?,
                ))
            })
            .collect()
    }

    async fn preferences(&self, user: &UserId) -> Result<Preferences, StoreError> {
        const W: &str = "preferences";
        let n = id_of("user", user.as_str())?;
        let row = self
            .fetch_optional(
                "SELECT p.auto_sync, p.interval_minutes FROM users u \
                 LEFT JOIN preferences p ON p.user_id = u.id WHERE u.id = $1",
                &[n.into()],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("user", user))?;
        match row.opt_int(W, "interval_minutes")? {
            None => Ok(Preferences::default()),
            Some(minutes) => Ok(Preferences {
                auto_sync: row.bool(W, "auto_sync")?,
                interval_minutes: interval_of(W, minutes)?,
            }),
        }
    }

    async fn set_preferences(&self, user: &UserId, prefs: &Preferences) -> Result<(), StoreError> {
        let n = id_of("user", user.as_str())?;
        if prefs.interval_minutes == 0 {
            return Err(StoreError::Invalid(
                "the sync interval must be at least 1 minute".to_owned(),
            ));
        }
        self.execute(
            "INSERT INTO preferences (user_id, auto_sync, interval_minutes) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET auto_sync = excluded.auto_sync, \
             interval_minutes = excluded.interval_minutes",
            &[
                n.into(),
                prefs.auto_sync.into(),
                i64::from(prefs.interval_minutes).into(),
            ],
        )
        .await
        .map_err(|e| {
            constraint(
                e,
                || StoreError::Conflict("preferences already exist".to_owned()),
                || StoreError::not_found("user", user),
            )
        })?;
        Ok(())
    }

    async fn calendar_polls(&self) -> Result<Vec<CalendarPoll>, StoreError> {
        let defaults = Preferences::default();
        let args = [
            defaults.auto_sync.into(),
            i64::from(defaults.interval_minutes).into(),
        ];
        let mut conn = self.pool.acquire().await?;
        let mut polls = if DB::POLLS_AS_JSON {
            let row = DB::fetch_optional(&mut conn, DB::CALENDAR_POLLS, &args)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            let json = row.text("calendar polls", "polls")?;
            let polls: Vec<JsonPoll> = serde_json::from_str(&json)
                .map_err(|e| StoreError::corrupt("calendar polls", e))?;
            polls
                .into_iter()
                .map(JsonPoll::into_poll)
                .collect::<Result<Vec<_>, _>>()?
        } else {
            let rows = DB::fetch_all(&mut conn, DB::CALENDAR_POLLS, &args).await?;
            rows.iter()
                .map(calendar_poll_row)
                .collect::<Result<Vec<_>, _>>()?
        };
        drop(conn);
        polls.sort_unstable_by_key(|(id, _)| *id);
        Ok(polls.into_iter().map(|(_, poll)| poll).collect())
    }

    async fn put_channel(&self, channel: &ChannelRecord, token: &str) -> Result<(), StoreError> {
        let calendar = id_of("calendar", channel.calendar.as_str())?;
        if token.is_empty() {
            return Err(StoreError::Invalid(format!(
                "channel {} has an empty token",
                channel.id
            )));
        }
        self.execute(
            "INSERT INTO channels (id, calendar_id, provider, resource_id, token_sha256, \
             expiration, created_at, last_message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                channel.id.as_str().into(),
                calendar.into(),
                channel.provider.as_str().into(),
                channel.resource_id.as_str().into(),
                token_sha256(token).as_str().into(),
                channel.expiration.into(),
                channel.created_at.into(),
                channel.last_message.into(),
            ],
        )
        .await
        .map_err(|e| {
            constraint(
                e,
                || StoreError::Conflict(format!("channel id {:?} is already in use", channel.id)),
                || StoreError::not_found("calendar", &channel.calendar),
            )
        })?;
        Ok(())
    }

    async fn channel(&self, id: &str) -> Result<Option<ChannelRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            channel_columns!(),
            " FROM channels WHERE id = $1"
        );
        self.fetch_optional(sql, &[id.into()])
            .await?
            .as_ref()
            .map(channel_row)
            .transpose()
    }

    async fn check_channel(&self, id: &str, token: &str) -> Result<ChannelCheck, StoreError> {
        let sql = concat!(
            "SELECT ",
            channel_columns!(),
            ", token_sha256 FROM channels WHERE id = $1"
        );
        let Some(row) = self.fetch_optional(sql, &[id.into()]).await? else {
            return Ok(ChannelCheck::Unknown);
        };
        let stored = row.text("channel", "token_sha256")?;
        // Hash even an empty token, so every answer for a known id costs the
        // same.
        let matches = constant_time_eq(&token_sha256(token), &stored);
        if !matches || token.is_empty() {
            return Ok(ChannelCheck::WrongToken);
        }
        Ok(ChannelCheck::Valid(channel_row(&row)?))
    }

    async fn note_channel_message(&self, id: &str, number: i64) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let done = DB::execute(
            &mut conn,
            "UPDATE channels SET last_message = $2 \
             WHERE id = $1 AND (last_message IS NULL OR last_message < $2)",
            &[id.into(), number.into()],
        )
        .await?;
        if done > 0 {
            return Ok(true);
        }
        let exists = DB::fetch_optional(
            &mut conn,
            "SELECT 1 FROM channels WHERE id = $1",
            &[id.into()],
        )
        .await?;
        match exists {
            Some(_) => Ok(false),
            None => Err(StoreError::not_found("channel", id)),
        }
    }

    async fn channels_of(&self, calendar: &CalendarId) -> Result<Vec<ChannelRecord>, StoreError> {
        let n = id_of("calendar", calendar.as_str())?;
        let sql = concat!(
            "SELECT ",
            channel_columns!(),
            " FROM channels WHERE calendar_id = $1 ORDER BY expiration DESC, id"
        );
        let rows = self
            .children(sql, &[n.into()], CALENDAR, n, calendar)
            .await?;
        rows.iter().map(channel_row).collect()
    }

    async fn channels_expiring(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<ChannelRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            channel_columns!(),
            " FROM channels WHERE expiration < $1 ORDER BY expiration, id"
        );
        let mut conn = self.pool.acquire().await?;
        let rows = DB::fetch_all(&mut conn, sql, &[before.into()]).await?;
        rows.iter().map(channel_row).collect()
    }

    async fn delete_channel(&self, id: &str) -> Result<(), StoreError> {
        self.execute("DELETE FROM channels WHERE id = $1", &[id.into()])
            .await?;
        Ok(())
    }

    async fn delete_expired_channels(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self
            .execute(
                "DELETE FROM channels WHERE expiration < $1",
                &[before.into()],
            )
            .await?)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let sql = concat!(
            "SELECT version FROM ",
            migrations_table!(),
            " WHERE success"
        );
        let rows = DB::fetch_all(&mut conn, sql, &[]).await?;
        let applied = rows
            .iter()
            .map(|row| row.int("migration", "version"))
            .collect::<Result<HashSet<i64>, _>>()?;
        let missing: Vec<String> = DB::migrator()
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .map(|m| format!("{:04} {}", m.version, m.description))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StoreError::NotReady(format!(
                "migrations not applied: {}",
                missing.join(", ")
            )))
        }
    }
}

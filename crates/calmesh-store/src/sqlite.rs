//! The SQLite store: one file in WAL mode (or one in-memory database).
//!
//! Queries are checked at run time. Placeholders are written `$1`, `$2`, ...
//! (which SQLite and sqlx accept as numbered parameters) so the PostgreSQL
//! implementation can share most statements.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use calmesh_core::{AccountId, CalendarId, RuleId, UserId};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection};

use crate::secrets::{SecretKey, is_memory_url};
use crate::{
    Account, AccountStatus, CachedEntry, Calendar, Credentials, Link, LinkKey, NewAccount,
    NewCalendar, NewRule, NewRun, PullBatch, PullSummary, Rule, RuleState, Run, RunId, RunReport,
    Store, StoreError,
};

/// The name of the table that records applied migrations (not sqlx's default,
/// which other libraries such as apalis share).
pub const MIGRATIONS_TABLE: &str = "_calmesh_migrations";

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool of a file database (WAL: many readers, one writer).
const POOL_SIZE: u32 = 4;

/// Starts a write transaction that takes the write lock at once, so a
/// read-then-write transaction never fails on a snapshot another writer made
/// stale (it waits for the busy timeout instead).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The [`Store`] on SQLite.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    key: SecretKey,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `url` and brings its
    /// schema up to date.
    ///
    /// `url` is `sqlite://calmesh.db` (relative), `sqlite:///abs/path.db` or
    /// `sqlite::memory:`. Files get WAL journaling, `synchronous=NORMAL`,
    /// foreign keys and a 5 s busy timeout, and a pool of a few connections;
    /// an in-memory database gets exactly one connection, kept open for the
    /// life of the store, so every query sees the same database.
    pub async fn open(url: &str, key: SecretKey) -> Result<SqliteStore, StoreError> {
        let memory = is_memory_url(url);
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let dir = options
            .get_filename()
            .parent()
            .map(std::path::Path::to_path_buf);
        if let Some(dir) = dir.filter(|dir| !memory && !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(&dir).map_err(|e| {
                StoreError::Database(sqlx::Error::Configuration(
                    format!(
                        "cannot create the database directory {}: {e}",
                        dir.display()
                    )
                    .into(),
                ))
            })?;
        }
        let pool_options = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(POOL_SIZE)
        };
        let pool = pool_options.connect_with(options).await?;
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator.run(&pool).await?;
        Ok(SqliteStore { pool, key })
    }

    /// The connection pool, for crates that keep their own tables in the same
    /// database (the job queue).
    pub fn pool(&self) -> &SqlitePool {
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
}

// ---------------------------------------------------------------------------
// Encoding helpers

/// A timestamp as stored: RFC 3339, UTC, nine fractional digits (fixed width,
/// so text order is time order; exact through chrono).
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_ts(what: &'static str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::corrupt(what, format!("timestamp {text:?}: {e}")))
}

fn parse_opt_ts(
    what: &'static str,
    text: Option<String>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(|t| parse_ts(what, &t)).transpose()
}

/// A store id from its string form; an id that is not one of ours names
/// nothing.
fn id_of(what: &'static str, id: &str) -> Result<i64, StoreError> {
    id.parse::<i64>()
        .map_err(|_| StoreError::not_found(what, id))
}

fn col<'r, T>(row: &'r SqliteRow, what: &'static str, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(name)
        .map_err(|e| StoreError::corrupt(what, format!("column {name}: {e}")))
}

fn json_text(what: &'static str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt(what, e))
}

fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(what, format!("JSON: {e}")))
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

/// Whether a row with this id exists in `table` (a constant of ours).
async fn exists(
    conn: &mut SqliteConnection,
    sql: &'static str,
    id: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar::<_, i64>(sql)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .is_some())
}

const USER_EXISTS: &str = "SELECT 1 FROM users WHERE id = $1";
const ACCOUNT_EXISTS: &str = "SELECT 1 FROM accounts WHERE id = $1";
const CALENDAR_EXISTS: &str = "SELECT 1 FROM calendars WHERE id = $1";
const RULE_EXISTS: &str = "SELECT 1 FROM rules WHERE id = $1";

// ---------------------------------------------------------------------------
// Rows

/// The columns of an account row, in `SELECT` order.
macro_rules! account_columns {
    () => {
        "id, user_id, provider, email, client_id, api_base, token_url, \
                               status, last_error, created_at"
    };
}

fn account_row(row: &SqliteRow) -> Result<Account, StoreError> {
    const W: &str = "account";
    let status: String = col(row, W, "status")?;
    let created_at: String = col(row, W, "created_at")?;
    Ok(Account {
        id: AccountId::new(col::<i64>(row, W, "id")?.to_string()),
        user: UserId::new(col::<i64>(row, W, "user_id")?.to_string()),
        provider: col(row, W, "provider")?,
        email: col(row, W, "email")?,
        client_id: col(row, W, "client_id")?,
        api_base: col(row, W, "api_base")?,
        token_url: col(row, W, "token_url")?,
        status: account_status(&status)?,
        last_error: col(row, W, "last_error")?,
        created_at: parse_ts(W, &created_at)?,
    })
}

/// The columns of a calendar row, in `SELECT` order.
macro_rules! calendar_columns {
    () => {
        "id, account_id, remote_id, name, time_zone, cursor, last_sync_at, last_error"
    };
}

fn calendar_row(row: &SqliteRow) -> Result<Calendar, StoreError> {
    const W: &str = "calendar";
    Ok(Calendar {
        id: CalendarId::new(col::<i64>(row, W, "id")?.to_string()),
        account: AccountId::new(col::<i64>(row, W, "account_id")?.to_string()),
        remote_id: col(row, W, "remote_id")?,
        name: col(row, W, "name")?,
        time_zone: col(row, W, "time_zone")?,
        cursor: col(row, W, "cursor")?,
        last_sync_at: parse_opt_ts(W, col(row, W, "last_sync_at")?)?,
        last_error: col(row, W, "last_error")?,
    })
}

/// The columns of an entry row, in `SELECT` order.
macro_rules! entry_columns {
    () => {
        "remote_id, parent_id, etag, updated, ics, tags"
    };
}

/// An entry as its columns hold it (timestamps and tags as text).
#[derive(Debug, PartialEq, Eq)]
struct StoredEntry {
    parent_id: Option<String>,
    etag: Option<String>,
    updated: Option<String>,
    ics: String,
    tags: String,
}

/// An entry's columns as they are written, borrowing from the entry.
#[derive(Debug, serde::Serialize)]
struct EntryColumns<'a>(
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<String>,
    &'a str,
    String,
);

impl<'a> EntryColumns<'a> {
    fn of(entry: &'a CachedEntry) -> Result<Self, StoreError> {
        Ok(Self(
            &entry.remote_id,
            entry.parent_id.as_deref(),
            entry.etag.as_deref(),
            entry.updated.map(ts),
            &entry.ics,
            json_text("entry tags", &entry.tags)?,
        ))
    }
}

impl StoredEntry {
    fn from_row(row: &SqliteRow) -> Result<(String, Self), StoreError> {
        const W: &str = "entry";
        Ok((
            col(row, W, "remote_id")?,
            Self {
                parent_id: col(row, W, "parent_id")?,
                etag: col(row, W, "etag")?,
                updated: col(row, W, "updated")?,
                ics: col(row, W, "ics")?,
                tags: col(row, W, "tags")?,
            },
        ))
    }

    /// Whether the row says the same as `new` (tags compared as maps when
    /// their text differs, so formatting does not count).
    fn same_as(&self, new: &EntryColumns<'_>, entry: &CachedEntry) -> bool {
        self.parent_id.as_deref() == new.1
            && self.etag.as_deref() == new.2
            && self.updated == new.3
            && self.ics == new.4
            && (self.tags == new.5
                || serde_json::from_str::<BTreeMap<String, String>>(&self.tags)
                    .is_ok_and(|tags| tags == entry.tags))
    }

    fn into_entry(self, remote_id: String) -> Result<CachedEntry, StoreError> {
        Ok(CachedEntry {
            remote_id,
            parent_id: self.parent_id,
            etag: self.etag,
            updated: parse_opt_ts("entry", self.updated)?,
            ics: self.ics,
            tags: parse_json("entry tags", &self.tags)?,
        })
    }
}

/// Rows per bulk write: one statement carries this many entries as a JSON
/// array (one round trip to SQLite's thread instead of one per entry).
const WRITE_CHUNK: usize = 500;

/// Inserts or replaces entries, a chunk per statement.
async fn write_entries(
    conn: &mut SqliteConnection,
    calendar: i64,
    rows: &[EntryColumns<'_>],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(WRITE_CHUNK) {
        sqlx::query(
            "INSERT INTO entries (calendar_id, remote_id, parent_id, etag, updated, ics, tags) \
             SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
             json_extract(value, '$[2]'), json_extract(value, '$[3]'), \
             json_extract(value, '$[4]'), json_extract(value, '$[5]') \
             FROM json_each($2) WHERE true \
             ON CONFLICT (calendar_id, remote_id) DO UPDATE SET \
             parent_id = excluded.parent_id, etag = excluded.etag, updated = excluded.updated, \
             ics = excluded.ics, tags = excluded.tags",
        )
        .bind(calendar)
        .bind(json_text("entries", &chunk)?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Removes entries by remote id, with the entries whose parent is one of
/// them; returns how many rows went.
async fn remove_entries(
    conn: &mut SqliteConnection,
    calendar: i64,
    remote_ids: &[&str],
) -> Result<u64, StoreError> {
    if remote_ids.is_empty() {
        return Ok(0);
    }
    let ids = json_text("entry ids", &remote_ids)?;
    let done = sqlx::query(
        "DELETE FROM entries WHERE calendar_id = $1 \
         AND (remote_id IN (SELECT value FROM json_each($2)) \
              OR parent_id IN (SELECT value FROM json_each($2)))",
    )
    .bind(calendar)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The columns of a rule row, in `SELECT` order.
macro_rules! rule_columns {
    () => {
        "id, user_id, name, kind, config, state, created_at"
    };
}

fn rule_row(row: &SqliteRow) -> Result<Rule, StoreError> {
    const W: &str = "rule";
    let config: String = col(row, W, "config")?;
    let state: String = col(row, W, "state")?;
    let created_at: String = col(row, W, "created_at")?;
    Ok(Rule {
        id: RuleId::new(col::<i64>(row, W, "id")?.to_string()),
        user: UserId::new(col::<i64>(row, W, "user_id")?.to_string()),
        name: col(row, W, "name")?,
        kind: col(row, W, "kind")?,
        config: parse_json("rule config", &config)?,
        state: rule_state(&state)?,
        created_at: parse_ts(W, &created_at)?,
    })
}

/// The columns of a link row, in `SELECT` order.
macro_rules! link_columns {
    () => {
        "rule_id, source_calendar_id, source_id, target_calendar_id, \
                            target_id, generation, hash, etag, updated_at"
    };
}

fn link_row(row: &SqliteRow) -> Result<Link, StoreError> {
    const W: &str = "link";
    let updated_at: String = col(row, W, "updated_at")?;
    Ok(Link {
        key: LinkKey {
            rule: RuleId::new(col::<i64>(row, W, "rule_id")?.to_string()),
            source_calendar: CalendarId::new(col::<i64>(row, W, "source_calendar_id")?.to_string()),
            source_id: col(row, W, "source_id")?,
            target_calendar: CalendarId::new(col::<i64>(row, W, "target_calendar_id")?.to_string()),
        },
        target_id: col(row, W, "target_id")?,
        generation: col(row, W, "generation")?,
        hash: col(row, W, "hash")?,
        etag: col(row, W, "etag")?,
        updated_at: parse_ts(W, &updated_at)?,
    })
}

/// The columns of a run row, in `SELECT` order.
macro_rules! run_columns {
    () => {
        "id, rule_id, kind, started_at, finished_at, status, report, api_calls"
    };
}

fn run_row(row: &SqliteRow) -> Result<Run, StoreError> {
    const W: &str = "run";
    let started_at: String = col(row, W, "started_at")?;
    let finished_at: Option<String> = col(row, W, "finished_at")?;
    let outcome = match finished_at {
        None => None,
        Some(finished_at) => {
            let report: Option<String> = col(row, W, "report")?;
            let api_calls: Option<i64> = col(row, W, "api_calls")?;
            Some(RunReport {
                status: col::<Option<String>>(row, W, "status")?.unwrap_or_default(),
                finished_at: parse_ts(W, &finished_at)?,
                report: match report {
                    Some(text) => parse_json("run report", &text)?,
                    None => serde_json::Value::Null,
                },
                api_calls: u64::try_from(api_calls.unwrap_or(0))
                    .map_err(|_| StoreError::corrupt(W, "negative api_calls"))?,
            })
        }
    };
    Ok(Run {
        id: col(row, W, "id")?,
        rule: col::<Option<i64>>(row, W, "rule_id")?.map(|id| RuleId::new(id.to_string())),
        kind: col(row, W, "kind")?,
        started_at: parse_ts(W, &started_at)?,
        outcome,
    })
}

// ---------------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_user(&self, name: &str) -> Result<UserId, StoreError> {
        const FIND: &str = "SELECT id FROM users WHERE name = $1";
        if let Some(id) = sqlx::query_scalar::<_, i64>(FIND)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok(UserId::new(id.to_string()));
        }
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (name, created_at) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(ts(self.now()))
        .fetch_optional(&mut *tx)
        .await?;
        let id = match inserted {
            Some(id) => id,
            None => {
                sqlx::query_scalar::<_, i64>(FIND)
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        tx.commit().await?;
        Ok(UserId::new(id.to_string()))
    }

    async fn upsert_account(&self, account: &NewAccount) -> Result<Account, StoreError> {
        let user = id_of("user", account.user.as_str())?;
        let (secret, key_id) = self.key.seal_credentials(&account.credentials)?;
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
        let row = sqlx::query(sql)
            .bind(user)
            .bind(account.provider.as_str())
            .bind(account.email.as_str())
            .bind(account.client_id.as_str())
            .bind(account.api_base.as_deref())
            .bind(account.token_url.as_deref())
            .bind(secret)
            .bind(key_id)
            .bind(ts(self.now()))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
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
        let row = sqlx::query(sql)
            .bind(n)
            .fetch_optional(&self.pool)
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
        sqlx::query(sql)
            .bind(user)
            .bind(provider)
            .bind(email)
            .fetch_optional(&self.pool)
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
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sql).bind(n).fetch_all(&mut *conn).await?;
        if rows.is_empty() && !exists(&mut conn, USER_EXISTS, n).await? {
            return Err(StoreError::not_found("user", user));
        }
        rows.iter().map(account_row).collect()
    }

    async fn credentials(&self, id: &AccountId) -> Result<Credentials, StoreError> {
        let n = id_of("account", id.as_str())?;
        let (secret, key_id) = sqlx::query_as::<_, (String, String)>(
            "SELECT secret, key_id FROM accounts WHERE id = $1",
        )
        .bind(n)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("account", id))?;
        self.key.open_credentials(id.as_str(), &secret, &key_id)
    }

    async fn set_account_status(
        &self,
        id: &AccountId,
        status: AccountStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = id_of("account", id.as_str())?;
        let done = sqlx::query("UPDATE accounts SET status = $1, last_error = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(error)
            .bind(n)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
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
        let row = sqlx::query(sql)
            .bind(account)
            .bind(calendar.remote_id.as_str())
            .bind(calendar.name.as_str())
            .bind(calendar.time_zone.as_deref())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
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
        let row = sqlx::query(sql)
            .bind(n)
            .fetch_optional(&self.pool)
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
        sqlx::query(sql)
            .bind(account)
            .bind(remote_id)
            .fetch_optional(&self.pool)
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
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sql).bind(n).fetch_all(&mut *conn).await?;
        if rows.is_empty() && !exists(&mut conn, ACCOUNT_EXISTS, n).await? {
            return Err(StoreError::not_found("account", account));
        }
        rows.iter().map(calendar_row).collect()
    }

    async fn set_calendar_error(
        &self,
        id: &CalendarId,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = id_of("calendar", id.as_str())?;
        let done = sqlx::query("UPDATE calendars SET last_error = $1 WHERE id = $2")
            .bind(error)
            .bind(n)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        if !exists(&mut tx, CALENDAR_EXISTS, cal).await? {
            return Err(StoreError::not_found("calendar", calendar));
        }

        // The last occurrence of an id in the batch wins.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(batch.upserts.len());
        for (i, entry) in batch.upserts.iter().enumerate() {
            last.insert(entry.remote_id.as_str(), i);
        }

        // What the cache holds now: all of it for a full listing (to find
        // what is gone), else just the entries the batch touches.
        let existing: HashMap<String, StoredEntry> = if batch.full {
            let sql = concat!(
                "SELECT ",
                entry_columns!(),
                " FROM entries WHERE calendar_id = $1"
            );
            sqlx::query(sql)
                .bind(cal)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(StoredEntry::from_row)
                .collect::<Result<_, _>>()?
        } else if batch.upserts.is_empty() {
            HashMap::new()
        } else {
            let ids: Vec<&str> = last.keys().copied().collect();
            let sql = concat!(
                "SELECT ",
                entry_columns!(),
                " FROM entries WHERE calendar_id = $1 \
                 AND remote_id IN (SELECT value FROM json_each($2))"
            );
            sqlx::query(sql)
                .bind(cal)
                .bind(json_text("entry ids", &ids)?)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(StoredEntry::from_row)
                .collect::<Result<_, _>>()?
        };

        let mut summary = PullSummary::default();
        let mut writes = Vec::new();
        for (i, entry) in batch.upserts.iter().enumerate() {
            if last.get(entry.remote_id.as_str()) != Some(&i) {
                continue;
            }
            let new = EntryColumns::of(entry)?;
            match existing.get(&entry.remote_id) {
                Some(old) if old.same_as(&new, entry) => {
                    summary.unchanged += 1;
                    continue;
                }
                Some(_) => summary.changed += 1,
                None => summary.added += 1,
            }
            writes.push(new);
        }
        write_entries(&mut tx, cal, &writes).await?;

        let mut gone: Vec<&str> = batch.removals.iter().map(String::as_str).collect();
        if batch.full {
            gone.extend(
                existing
                    .keys()
                    .map(String::as_str)
                    .filter(|id| !last.contains_key(id)),
            );
        }
        let unique: HashSet<&str> = gone.drain(..).collect();
        gone.extend(unique);
        summary.removed = remove_entries(&mut tx, cal, &gone).await?;

        sqlx::query(
            "UPDATE calendars SET cursor = $1, last_sync_at = $2, last_error = NULL WHERE id = $3",
        )
        .bind(batch.cursor.as_deref())
        .bind(ts(batch.synced_at))
        .bind(cal)
        .execute(&mut *tx)
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
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sql).bind(n).fetch_all(&mut *conn).await?;
        if rows.is_empty() && !exists(&mut conn, CALENDAR_EXISTS, n).await? {
            return Err(StoreError::not_found("calendar", calendar));
        }
        rows.iter()
            .map(|row| {
                let (remote_id, stored) = StoredEntry::from_row(row)?;
                stored.into_entry(remote_id)
            })
            .collect()
    }

    async fn put_entry(
        &self,
        calendar: &CalendarId,
        entry: &CachedEntry,
    ) -> Result<(), StoreError> {
        let n = id_of("calendar", calendar.as_str())?;
        let row = EntryColumns::of(entry)?;
        let mut conn = self.pool.acquire().await?;
        match write_entries(&mut conn, n, &[row]).await {
            Err(StoreError::Database(sqlx::Error::Database(db)))
                if db.is_foreign_key_violation() =>
            {
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
        remove_entries(&mut conn, n, &[remote_id]).await?;
        Ok(())
    }

    async fn add_rule(&self, rule: &NewRule) -> Result<Rule, StoreError> {
        let user = id_of("user", rule.user.as_str())?;
        let sql = concat!(
            "INSERT INTO rules (user_id, name, kind, config, state, created_at) \
             VALUES ($1, $2, $3, $4, 'active', $5) RETURNING ",
            rule_columns!()
        );
        let row = sqlx::query(sql)
            .bind(user)
            .bind(rule.name.as_str())
            .bind(rule.kind.as_str())
            .bind(json_text("rule config", &rule.config)?)
            .bind(ts(self.now()))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                constraint(
                    e,
                    || StoreError::Conflict(format!("a rule named {:?} already exists", rule.name)),
                    || StoreError::not_found("user", &rule.user),
                )
            })?;
        rule_row(&row)
    }

    async fn rule(&self, id: &RuleId) -> Result<Rule, StoreError> {
        let n = id_of("rule", id.as_str())?;
        let sql = concat!("SELECT ", rule_columns!(), " FROM rules WHERE id = $1");
        let row = sqlx::query(sql)
            .bind(n)
            .fetch_optional(&self.pool)
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
        sqlx::query(sql)
            .bind(user)
            .bind(name)
            .fetch_optional(&self.pool)
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
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sql).bind(n).fetch_all(&mut *conn).await?;
        if rows.is_empty() && !exists(&mut conn, USER_EXISTS, n).await? {
            return Err(StoreError::not_found("user", user));
        }
        rows.iter().map(rule_row).collect()
    }

    async fn set_rule_state(&self, id: &RuleId, state: RuleState) -> Result<(), StoreError> {
        let n = id_of("rule", id.as_str())?;
        let done = sqlx::query("UPDATE rules SET state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(n)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("rule", id));
        }
        Ok(())
    }

    async fn delete_rule(&self, id: &RuleId) -> Result<(), StoreError> {
        let n = id_of("rule", id.as_str())?;
        let done = sqlx::query("DELETE FROM rules WHERE id = $1")
            .bind(n)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
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
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sql).bind(n).fetch_all(&mut *conn).await?;
        if rows.is_empty() && !exists(&mut conn, RULE_EXISTS, n).await? {
            return Err(StoreError::not_found("rule", rule));
        }
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
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sql).bind(n).fetch_all(&mut *conn).await?;
        if rows.is_empty() && !exists(&mut conn, CALENDAR_EXISTS, n).await? {
            return Err(StoreError::not_found("calendar", calendar));
        }
        rows.iter().map(link_row).collect()
    }

    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let key = &link.key;
        let rule = id_of("rule", key.rule.as_str())?;
        let source = id_of("calendar", key.source_calendar.as_str())?;
        let target = id_of("calendar", key.target_calendar.as_str())?;
        let mut conn = self.pool.acquire().await?;
        let result = sqlx::query(
            "INSERT INTO links (rule_id, source_calendar_id, source_id, target_calendar_id, \
             target_id, generation, hash, etag, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (rule_id, source_calendar_id, source_id, target_calendar_id) \
             DO UPDATE SET target_id = excluded.target_id, generation = excluded.generation, \
             hash = excluded.hash, etag = excluded.etag, updated_at = excluded.updated_at",
        )
        .bind(rule)
        .bind(source)
        .bind(key.source_id.as_str())
        .bind(target)
        .bind(link.target_id.as_str())
        .bind(link.generation)
        .bind(link.hash.as_str())
        .bind(link.etag.as_deref())
        .bind(ts(link.updated_at))
        .execute(&mut *conn)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                // Say which parent is missing.
                if !exists(&mut conn, RULE_EXISTS, rule).await? {
                    Err(StoreError::not_found("rule", &key.rule))
                } else if !exists(&mut conn, CALENDAR_EXISTS, source).await? {
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
        sqlx::query(
            "DELETE FROM links WHERE rule_id = $1 AND source_calendar_id = $2 \
             AND source_id = $3 AND target_calendar_id = $4",
        )
        .bind(rule)
        .bind(source)
        .bind(key.source_id.as_str())
        .bind(target)
        .execute(&self.pool)
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
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO runs (user_id, rule_id, kind, started_at) VALUES ($1, $2, $3, $4) \
             RETURNING id",
        )
        .bind(user)
        .bind(rule)
        .bind(run.kind.as_str())
        .bind(ts(run.started_at))
        .fetch_one(&self.pool)
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
        })
    }

    async fn finish_run(&self, id: RunId, report: &RunReport) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET finished_at = $1, status = $2, report = $3, api_calls = $4 \
             WHERE id = $5",
        )
        .bind(ts(report.finished_at))
        .bind(report.status.as_str())
        .bind(json_text("run report", &report.report)?)
        .bind(i64::try_from(report.api_calls).unwrap_or(i64::MAX))
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
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
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sql)
            .bind(n)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
        if rows.is_empty() && !exists(&mut conn, USER_EXISTS, n).await? {
            return Err(StoreError::not_found("user", user));
        }
        rows.iter().map(run_row).collect()
    }
}

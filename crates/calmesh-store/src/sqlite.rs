//! The SQLite store: one file in WAL mode (or one in-memory database).
//!
//! The [`Store`](crate::Store) implementation is shared with PostgreSQL (see
//! [`SqlStore`]); this module opens the database and says how SQLite holds
//! what differs: timestamps are RFC 3339 text, JSON is text, and bulk entry
//! writes carry their rows as one JSON array per statement.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Sqlite, SqliteConnection};

use crate::secrets::{SecretKey, is_memory_url};
use crate::sql::{
    Arg, Backend, Columns, MIGRATIONS_TABLE, SqlStore, backend_queries, entry_columns,
    plain_columns, poll_columns, poll_tables, sealed, upsert_entries,
};
use crate::{CachedEntry, StoreError};

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool of a file database (WAL: many readers, one writer).
const POOL_SIZE: u32 = 4;

/// The [`Store`](crate::Store) on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
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
        if !memory {
            create_private(options.get_filename())?;
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
        <Sqlite as Backend>::migrator().run(&pool).await?;
        Ok(SqlStore::new(pool, key))
    }
}

/// Creates the database file, empty and readable by its owner only (0600),
/// when it does not exist: it holds calendars and sealed credentials.
/// SQLite gives the `-wal` and `-shm` files it makes the mode of the
/// database file. An existing file is left as it is.
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Configuration(
            format!("cannot create the database {}: {e}", path.display()).into(),
        ))),
    }
}

// ---------------------------------------------------------------------------
// Encoding

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

fn json_text(what: &'static str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt(what, e))
}

type Query = sqlx::query::Query<'static, Sqlite, SqliteArguments>;

/// Binds arguments as SQLite holds them: timestamps as [`ts`] text, JSON as
/// text, lists as JSON arrays (which `json_each` reads).
fn bind(mut query: Query, args: &[Arg<'_>]) -> Query {
    for arg in args {
        query = match *arg {
            Arg::Int(value) => query.bind(value),
            Arg::Bool(value) => query.bind(value),
            Arg::Text(value) => query.bind(value),
            Arg::Time(value) => query.bind(ts(value)),
            Arg::Json(value) => query.bind(Json(value)),
            Arg::Texts(values) => query.bind(Json(values)),
        };
    }
    query
}

impl Columns for SqliteRow {
    plain_columns!();

    fn opt_time(
        &self,
        what: &'static str,
        name: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt_text(what, name)?
            .map(|text| parse_ts(what, &text))
            .transpose()
    }

    fn opt_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        self.opt_text(what, name)?
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::corrupt(what, format!("column {name}: JSON: {e}")))
            })
            .transpose()
    }
}

/// An entry's columns as they are written, borrowing from the entry (one
/// element of the JSON array a bulk write carries).
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

/// Rows per bulk write: one statement carries this many entries as a JSON
/// array (one round trip to SQLite's thread instead of one per entry).
const WRITE_CHUNK: usize = 500;

impl sealed::Sealed for Sqlite {}

impl Backend for Sqlite {
    const STORE_NAME: &'static str = "SqliteStore";
    /// Takes the write lock at once, so a read-then-write transaction never
    /// fails on a snapshot another writer made stale (it waits for the busy
    /// timeout instead).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// `BEGIN IMMEDIATE` already holds every other writer off.
    const LOCK_CALENDAR: &'static str = "SELECT 1 FROM calendars WHERE id = $1";
    const ENTRIES_BY_ID: &'static str = concat!(
        "SELECT ",
        entry_columns!(),
        " FROM entries WHERE calendar_id = $1 \
         AND remote_id IN (SELECT value FROM json_each($2))"
    );
    const REMOVE_ENTRIES: &'static str = "DELETE FROM entries WHERE calendar_id = $1 \
         AND (remote_id IN (SELECT value FROM json_each($2)) \
              OR parent_id IN (SELECT value FROM json_each($2)))";

    /// One JSON text: sqlx hands SQLite's rows one at a time across the
    /// connection's worker thread, which at 100k rows costs several times
    /// the query; SQLite builds the array in about the time of the scan.
    /// The latest channel expiry is a correlated `MAX`, read from the last
    /// entry of `channels_by_calendar` for each calendar.
    const CALENDAR_POLLS: &'static str = concat!(
        "SELECT json_group_array(json_array(calendar_id, account_id, user_id, status, \
         last_sync_at, auto_sync, interval_minutes, channel_expires)) AS polls \
         FROM (SELECT ",
        poll_columns!(),
        ", (SELECT MAX(ch.expiration) FROM channels ch WHERE ch.calendar_id = c.id) \
         AS channel_expires FROM ",
        poll_tables!(),
        ")"
    );
    const POLLS_AS_JSON: bool = true;

    fn stored_time(t: DateTime<Utc>) -> DateTime<Utc> {
        t
    }

    fn migrator() -> sqlx::migrate::Migrator {
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator
    }

    backend_queries!();

    async fn write_entries(
        conn: &mut SqliteConnection,
        calendar: i64,
        entries: &[&CachedEntry],
    ) -> Result<(), StoreError> {
        for chunk in entries.chunks(WRITE_CHUNK) {
            let rows = chunk
                .iter()
                .map(|entry| EntryColumns::of(entry))
                .collect::<Result<Vec<_>, _>>()?;
            sqlx::query(upsert_entries!(
                "SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
                 json_extract(value, '$[2]'), json_extract(value, '$[3]'), \
                 json_extract(value, '$[4]'), json_extract(value, '$[5]') \
                 FROM json_each($2) WHERE true"
            ))
            .bind(calendar)
            .bind(json_text("entries", &rows)?)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

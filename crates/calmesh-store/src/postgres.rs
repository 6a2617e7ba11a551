//! The PostgreSQL store, for running several calmesh processes on one
//! database.
//!
//! The [`Store`](crate::Store) implementation is shared with SQLite (see
//! [`SqlStore`]); this module opens the database and says how PostgreSQL
//! holds what differs: timestamps are `TIMESTAMPTZ` (microseconds), JSON is
//! `JSONB`, bulk entry writes pass one array per column through `UNNEST`, and
//! a pull locks its calendar's row so pulls of one calendar take turns.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres};

use crate::secrets::SecretKey;
use crate::sql::{
    Arg, Backend, Columns, MIGRATIONS_TABLE, SqlStore, backend_queries, entry_columns,
    plain_columns, poll_columns, poll_tables, sealed, upsert_entries,
};
use crate::{CachedEntry, StoreError};

/// Connections in the pool of one process.
const POOL_SIZE: u32 = 8;

/// How long a query waits for a free connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The [`Store`](crate::Store) on PostgreSQL.
pub type PgStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to the database at `url` and brings its schema up to date.
    ///
    /// `url` is `postgres://user:password@host:port/database` (or
    /// `postgresql://`), with the parameters libpq takes (`sslmode`,
    /// `options[search_path]=schema`, ...). The database must exist; the
    /// tables go into the first schema of the search path. The pool holds up
    /// to 8 connections. Migrations (from `migrations/postgres`, recorded in
    /// `_calmesh_migrations`) take an advisory lock, so processes that start
    /// together apply them once.
    pub async fn open(url: &str, key: SecretKey) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        <Postgres as Backend>::migrator().run(&pool).await?;
        Ok(SqlStore::new(pool, key))
    }
}

type Query = sqlx::query::Query<'static, Postgres, PgArguments>;

/// Binds arguments as PostgreSQL holds them: timestamps as `TIMESTAMPTZ`,
/// JSON as `JSONB`, lists as `TEXT[]`.
fn bind(mut query: Query, args: &[Arg<'_>]) -> Query {
    for arg in args {
        query = match *arg {
            Arg::Int(value) => query.bind(value),
            Arg::Bool(value) => query.bind(value),
            Arg::Text(value) => query.bind(value),
            Arg::Time(value) => query.bind(value),
            Arg::Json(value) => query.bind(Json(value)),
            Arg::Texts(values) => query.bind(values),
        };
    }
    query
}

impl Columns for PgRow {
    plain_columns!();

    fn opt_time(
        &self,
        what: &'static str,
        name: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        crate::sql::get(self, what, name)
    }

    fn opt_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let value: Option<Json<T>> = crate::sql::get(self, what, name)?;
        Ok(value.map(|Json(value)| value))
    }
}

/// Rows per bulk write: each statement carries this many entries, one array
/// per column.
const WRITE_CHUNK: usize = 5_000;

impl sealed::Sealed for Postgres {}

impl Backend for Postgres {
    const STORE_NAME: &'static str = "PgStore";
    /// Read committed: each statement sees what committed before it; the
    /// calendar's row lock orders pulls.
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// `NO KEY UPDATE` holds off other pulls of the calendar (and is the lock
    /// the pull's `UPDATE calendars` takes anyway) without blocking writers of
    /// single entries, whose foreign key checks take `KEY SHARE`.
    const LOCK_CALENDAR: &'static str = "SELECT 1 FROM calendars WHERE id = $1 FOR NO KEY UPDATE";
    const ENTRIES_BY_ID: &'static str = concat!(
        "SELECT ",
        entry_columns!(),
        " FROM entries WHERE calendar_id = $1 AND remote_id = ANY($2)"
    );
    const REMOVE_ENTRIES: &'static str = "DELETE FROM entries WHERE calendar_id = $1 \
         AND (remote_id = ANY($2) OR parent_id = ANY($2))";

    /// Rows (PostgreSQL streams them cheaply; building JSON costs more). The
    /// latest channel expiry per calendar is one grouped scan, hash-joined:
    /// a correlated `MAX` per calendar takes about three times as long at
    /// 100k calendars.
    const CALENDAR_POLLS: &'static str = concat!(
        "SELECT ",
        poll_columns!(),
        ", ch.expires AS channel_expires FROM ",
        poll_tables!(),
        " LEFT JOIN (SELECT calendar_id, MAX(expiration) AS expires FROM channels \
         GROUP BY calendar_id) ch ON ch.calendar_id = c.id"
    );
    const POLLS_AS_JSON: bool = false;

    /// What a `TIMESTAMPTZ` keeps: whole microseconds since 2000-01-01,
    /// truncated toward that epoch as sqlx encodes them.
    fn stored_time(t: DateTime<Utc>) -> DateTime<Utc> {
        let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        match epoch {
            Some(epoch) => match (t - epoch).num_microseconds() {
                Some(micros) => epoch + TimeDelta::microseconds(micros),
                None => t,
            },
            None => t,
        }
    }

    fn migrator() -> sqlx::migrate::Migrator {
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator
    }

    backend_queries!();

    async fn write_entries(
        conn: &mut PgConnection,
        calendar: i64,
        entries: &[&CachedEntry],
    ) -> Result<(), StoreError> {
        for chunk in entries.chunks(WRITE_CHUNK) {
            let mut remote_ids = Vec::with_capacity(chunk.len());
            let mut parent_ids = Vec::with_capacity(chunk.len());
            let mut etags = Vec::with_capacity(chunk.len());
            let mut updated = Vec::with_capacity(chunk.len());
            let mut ics = Vec::with_capacity(chunk.len());
            let mut tags = Vec::with_capacity(chunk.len());
            for entry in chunk {
                remote_ids.push(entry.remote_id.as_str());
                parent_ids.push(entry.parent_id.as_deref());
                etags.push(entry.etag.as_deref());
                updated.push(entry.updated);
                ics.push(entry.ics.as_str());
                tags.push(
                    serde_json::to_string(&entry.tags)
                        .map_err(|e| StoreError::corrupt("entry tags", e))?,
                );
            }
            sqlx::query(upsert_entries!(
                "SELECT $1, remote_id, parent_id, etag, updated, ics, tags::jsonb \
                 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::timestamptz[], \
                             $6::text[], $7::text[]) \
                      AS e (remote_id, parent_id, etag, updated, ics, tags)"
            ))
            .bind(calendar)
            .bind(remote_ids)
            .bind(parent_ids)
            .bind(etags)
            .bind(updated)
            .bind(ics)
            .bind(tags)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

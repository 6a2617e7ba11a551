//! calmesh's store: users and their preferences, accounts (credentials
//! encrypted at rest), calendars with their change cursors, item cache and
//! push channels (tokens kept as SHA-256 hashes), rules, links and runs.
//!
//! [`Store`] is the one interface the rest of calmesh uses. [`SqliteStore`] is
//! the embedded default (one file); [`PgStore`] runs on PostgreSQL, for
//! several processes sharing one database. Both are [`SqlStore`]: one
//! implementation of the trait, over what each database does differently.
//! [`open_store`] picks one by the URL's scheme. The test suite in
//! `tests/suite` is written against the trait and runs on both
//! (`tests/store.rs`, `tests/postgres.rs`; see [`testing`]).
//!
//! Queries are checked at run time (no `query!` macros), so a clean clone
//! builds without a database at hand.

mod error;
mod postgres;
mod secrets;
mod sql;
mod sqlite;
pub mod testing;
mod types;

pub use error::StoreError;
pub use postgres::PgStore;
pub use secrets::{KeySource, SECRET_KEY_ENV, SecretKey, default_key_file};
pub use sql::{MIGRATIONS_TABLE, SqlStore};
pub use sqlite::SqliteStore;
pub use types::*;

use std::sync::Arc;

use async_trait::async_trait;
use calmesh_core::{AccountId, CalendarId, RuleId, UserId};
use chrono::{DateTime, Utc};

/// Opens the store a database URL names, by its scheme (in any case):
/// `sqlite:` opens a [`SqliteStore`], `postgres:` or `postgresql:` a
/// [`PgStore`]. Either brings its schema up to date. Any other scheme is an
/// error that names the scheme (never the rest of the URL, which may hold a
/// password).
pub async fn open_store(url: &str, key: SecretKey) -> Result<Arc<dyn Store>, StoreError> {
    let parts = url.split_once(':').filter(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    // sqlx reads only lowercase schemes.
    let (scheme, url) = match parts {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            let url = format!("{scheme}:{rest}");
            (Some(scheme), url)
        }
        None => (None, url.to_owned()),
    };
    match scheme.as_deref() {
        Some("sqlite") => Ok(Arc::new(SqliteStore::open(&url, key).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(PgStore::open(&url, key).await?)),
        other => Err(StoreError::Database(sqlx::Error::Configuration(
            format!(
                "unsupported database URL{}: expected sqlite://..., postgres://... or \
                 postgresql://...",
                match other {
                    Some(scheme) => format!(" scheme {scheme:?}"),
                    None => " (no scheme)".to_owned(),
                }
            )
            .into(),
        ))),
    }
}

/// Everything calmesh keeps. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync {
    /// Returns the user with this name, creating it on first use.
    async fn ensure_user(&self, name: &str) -> Result<UserId, StoreError>;

    /// Adds an account; its credentials are encrypted before they are written.
    /// Adding the same (user, provider, email) again replaces the credentials
    /// and endpoints and sets the status back to `ok`.
    async fn upsert_account(&self, account: &NewAccount) -> Result<Account, StoreError>;
    /// One account.
    async fn account(&self, id: &AccountId) -> Result<Account, StoreError>;
    /// The user's account for this provider and email.
    async fn account_by_email(
        &self,
        user: &UserId,
        provider: &str,
        email: &str,
    ) -> Result<Option<Account>, StoreError>;
    /// All of the user's accounts, oldest first.
    async fn accounts(&self, user: &UserId) -> Result<Vec<Account>, StoreError>;
    /// The decrypted credentials of an account.
    async fn credentials(&self, id: &AccountId) -> Result<Credentials, StoreError>;
    /// Removes an account with its calendars, their cached entries and
    /// channels. Fails with [`StoreError::Conflict`] while a rule's links
    /// still point at one of its calendars (remove the rule first).
    async fn delete_account(&self, id: &AccountId) -> Result<(), StoreError>;
    /// Sets an account's status and last error (None clears it).
    async fn set_account_status(
        &self,
        id: &AccountId,
        status: AccountStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Adds a calendar of an account or updates its name and zone; keeps the
    /// cursor and cache.
    async fn upsert_calendar(&self, calendar: &NewCalendar) -> Result<Calendar, StoreError>;
    /// One calendar.
    async fn calendar(&self, id: &CalendarId) -> Result<Calendar, StoreError>;
    /// The calendar with this provider id in an account.
    async fn calendar_by_remote(
        &self,
        account: &AccountId,
        remote_id: &str,
    ) -> Result<Option<Calendar>, StoreError>;
    /// An account's calendars.
    async fn calendars(&self, account: &AccountId) -> Result<Vec<Calendar>, StoreError>;
    /// Records the outcome of a pull that failed (the cache is untouched).
    async fn set_calendar_error(
        &self,
        id: &CalendarId,
        error: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Commits one pull: the cache changes and the new cursor together, in one
    /// transaction. With `batch.full`, entries absent from `batch.upserts` are
    /// removed (a full listing diffed against the cache); otherwise only
    /// `batch.removals` are. Removing a master removes entries whose
    /// `parent_id` is that master. Sets `last_sync_at` and clears `last_error`.
    async fn apply_pull(
        &self,
        calendar: &CalendarId,
        batch: &PullBatch,
    ) -> Result<PullSummary, StoreError>;
    /// The cached entries of a calendar, ordered by remote id.
    async fn entries(&self, calendar: &CalendarId) -> Result<Vec<CachedEntry>, StoreError>;
    /// Inserts or replaces one cached entry (after calmesh wrote it).
    async fn put_entry(&self, calendar: &CalendarId, entry: &CachedEntry)
    -> Result<(), StoreError>;
    /// Removes one cached entry and its children (after calmesh deleted it).
    async fn remove_entry(&self, calendar: &CalendarId, remote_id: &str) -> Result<(), StoreError>;

    /// Adds a rule. Names are unique per user.
    async fn add_rule(&self, rule: &NewRule) -> Result<Rule, StoreError>;
    /// One rule.
    async fn rule(&self, id: &RuleId) -> Result<Rule, StoreError>;
    /// The user's rule with this name.
    async fn rule_by_name(&self, user: &UserId, name: &str) -> Result<Option<Rule>, StoreError>;
    /// The user's rules, oldest first.
    async fn rules(&self, user: &UserId) -> Result<Vec<Rule>, StoreError>;
    /// Every user's rules, by id (the scheduler reads them all at once).
    async fn all_rules(&self) -> Result<Vec<Rule>, StoreError>;
    /// Sets a rule's state.
    async fn set_rule_state(&self, id: &RuleId, state: RuleState) -> Result<(), StoreError>;
    /// Removes a rule with its links.
    async fn delete_rule(&self, id: &RuleId) -> Result<(), StoreError>;

    /// A rule's links.
    async fn links(&self, rule: &RuleId) -> Result<Vec<Link>, StoreError>;
    /// Links whose target is this calendar, of every rule.
    async fn links_to(&self, calendar: &CalendarId) -> Result<Vec<Link>, StoreError>;
    /// Inserts or replaces the link with this key.
    async fn put_link(&self, link: &Link) -> Result<(), StoreError>;
    /// Removes the link with this key (no error when absent).
    async fn delete_link(&self, key: &LinkKey) -> Result<(), StoreError>;

    /// Starts a run and returns its id.
    async fn start_run(&self, run: &NewRun) -> Result<RunId, StoreError>;
    /// Finishes a run with its report.
    async fn finish_run(&self, id: RunId, report: &RunReport) -> Result<(), StoreError>;
    /// The most recent runs, newest first.
    async fn runs(&self, user: &UserId, limit: u32) -> Result<Vec<Run>, StoreError>;

    /// Deletes the runs that started before `before` (finished or not: a
    /// run that never finished is one whose process died); returns how many.
    async fn delete_runs_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Every user, as (id, name), oldest first.
    async fn users(&self) -> Result<Vec<(UserId, String)>, StoreError>;
    /// The user's preferences; [`Preferences::default`] when never set.
    /// [`StoreError::NotFound`] for an unknown user.
    async fn preferences(&self, user: &UserId) -> Result<Preferences, StoreError>;
    /// Sets the user's preferences. An interval of 0 minutes is
    /// [`StoreError::Invalid`].
    async fn set_preferences(&self, user: &UserId, prefs: &Preferences) -> Result<(), StoreError>;

    /// One row per calendar of every user, ordered by calendar id, with its
    /// account's status, its owner's preferences (defaults when never set)
    /// and the latest expiry of its channels: what the scheduler reads on
    /// each tick, in one query.
    async fn calendar_polls(&self) -> Result<Vec<CalendarPoll>, StoreError>;

    /// Records a push channel and the token its deliveries carry. Only the
    /// token's SHA-256 is stored. A channel id already in use is
    /// [`StoreError::Conflict`]; an empty token is [`StoreError::Invalid`];
    /// an unknown calendar is [`StoreError::NotFound`]. A channel is deleted
    /// with its calendar.
    async fn put_channel(&self, channel: &ChannelRecord, token: &str) -> Result<(), StoreError>;
    /// One channel, or None.
    async fn channel(&self, id: &str) -> Result<Option<ChannelRecord>, StoreError>;
    /// Checks a delivery's channel id and token: [`ChannelCheck::Unknown`]
    /// when no channel has the id, [`ChannelCheck::WrongToken`] when the
    /// token's hash differs from the stored one (compared in constant time;
    /// an empty token never matches), else [`ChannelCheck::Valid`] with the
    /// channel.
    async fn check_channel(&self, id: &str, token: &str) -> Result<ChannelCheck, StoreError>;
    /// Records that message `number` of the channel arrived, keeping the
    /// highest number seen. Returns true when `number` is higher than every
    /// number seen before (a new message), false for a replay or an older
    /// message arriving late. [`StoreError::NotFound`] for an unknown
    /// channel.
    async fn note_channel_message(&self, id: &str, number: i64) -> Result<bool, StoreError>;
    /// A calendar's channels, latest expiry first.
    async fn channels_of(&self, calendar: &CalendarId) -> Result<Vec<ChannelRecord>, StoreError>;
    /// Channels that expire before `before`, soonest first (to renew).
    async fn channels_expiring(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<ChannelRecord>, StoreError>;
    /// Deletes a channel (no error when absent).
    async fn delete_channel(&self, id: &str) -> Result<(), StoreError>;
    /// Deletes the channels that expired before `before`; returns how many.
    async fn delete_expired_channels(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Ok when the database answers and every migration this build knows
    /// is applied (a newer build's extra migrations are fine): what a
    /// readiness probe asks.
    async fn ready(&self) -> Result<(), StoreError>;

    /// The current time as the store sees it (tests may pin it).
    fn now(&self) -> DateTime<Utc> {
        calmesh_clock::now()
    }
}

/// `execute`, `fetch_optional` and `fetch_all` of a SQL backend impl, over
/// the `bind(query, args)` and `Arg` in scope where it is expanded. Shared by
/// the store's backends and calmesh-jobs' (not an API).
#[doc(hidden)]
#[macro_export]
macro_rules! sql_backend_queries {
    () => {
        async fn execute(
            conn: &mut Self::Connection,
            sql: &'static str,
            args: &[Arg<'_>],
        ) -> Result<u64, sqlx::Error> {
            Ok(bind(sqlx::query(sql), args)
                .execute(conn)
                .await?
                .rows_affected())
        }

        async fn fetch_optional(
            conn: &mut Self::Connection,
            sql: &'static str,
            args: &[Arg<'_>],
        ) -> Result<Option<Self::Row>, sqlx::Error> {
            bind(sqlx::query(sql), args).fetch_optional(conn).await
        }

        async fn fetch_all(
            conn: &mut Self::Connection,
            sql: &'static str,
            args: &[Arg<'_>],
        ) -> Result<Vec<Self::Row>, sqlx::Error> {
            bind(sqlx::query(sql), args).fetch_all(conn).await
        }
    };
}

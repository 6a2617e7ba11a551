//! What adapters hand to the executor and take from it.

use std::collections::BTreeMap;

use calmesh_core::Event;
use chrono::{DateTime, Utc};

/// A calendar in an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCalendar {
    /// The provider's id.
    pub remote_id: String,
    /// Display name.
    pub name: String,
    /// IANA zone, when the provider says.
    pub time_zone: Option<String>,
    /// The account's main calendar.
    pub primary: bool,
    /// Whether the account may write to it.
    pub writable: bool,
}

/// One provider resource: a single event, a series master, or one exception
/// of a series (then `parent_id` names the master and `event.recurrence_id`
/// the instance it replaces).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEntry {
    /// The provider's id.
    pub remote_id: String,
    /// The master's id, for an exception.
    pub parent_id: Option<String>,
    /// The provider's etag.
    pub etag: Option<String>,
    /// Last modification at the provider.
    pub updated: Option<DateTime<Utc>>,
    /// The event.
    pub event: Event,
    /// calmesh's tags found on the resource; empty on the person's own events.
    pub tags: BTreeMap<String, String>,
}

/// One change in a pull.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// New or changed.
    Upsert(Box<RemoteEntry>),
    /// Deleted at the provider (remote id).
    Removed(String),
}

/// An entry the adapter could not read: recorded against the item, the pull
/// goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryProblem {
    /// The provider's id of the entry.
    pub remote_id: String,
    /// What is wrong, naming the field.
    pub message: String,
}

/// The result of a pull.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PullResult {
    /// A full listing: everything the cache holds that is not in `changes`
    /// is gone.
    pub full: bool,
    /// Whether a full listing happened because the cursor had expired.
    pub cursor_expired: bool,
    /// The changes.
    pub changes: Vec<Change>,
    /// The new cursor.
    pub cursor: Option<String>,
    /// Entries that could not be read.
    pub problems: Vec<EntryProblem>,
}

/// Something calmesh writes.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRequest {
    /// The id to create it under, or of the entry to replace.
    pub id: String,
    /// The content (a single event or a series master).
    pub event: Event,
    /// calmesh's tags to put on it.
    pub tags: BTreeMap<String, String>,
}

/// What the provider holds after a write.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The entry as the provider returned it.
    pub entry: RemoteEntry,
}

/// A push channel to ask for (Google watch channel, Graph subscription).
/// `Debug` leaves the token out.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelRequest {
    /// Our id for the channel (unique per channel, never reused).
    pub id: String,
    /// Where the provider delivers notifications (HTTPS in production).
    pub address: String,
    /// A secret the provider echoes on every delivery.
    pub token: String,
    /// The lifetime asked for; the provider may grant less.
    pub ttl: Option<std::time::Duration>,
}

impl std::fmt::Debug for ChannelRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRequest")
            .field("id", &self.id)
            .field("address", &self.address)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A push channel the provider granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Our id for it.
    pub id: String,
    /// The provider's id of the watched resource (needed to stop it).
    pub resource_id: String,
    /// When the provider stops delivering.
    pub expiration: Option<DateTime<Utc>>,
}

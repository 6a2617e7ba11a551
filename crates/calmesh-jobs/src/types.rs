//! The queue's records: kinds, states, jobs, counts.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::JobError;

/// A job's id, minted by the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(pub(crate) i64);

impl JobId {
    /// The id as the database holds it.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = JobError;

    /// Parses an id as `Display` writes it (the CLI takes ids this way).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.trim()
            .parse::<i64>()
            .map(JobId)
            .map_err(|_| JobError::InvalidId(text.to_owned()))
    }
}

/// What a job does. Stored by [`JobKind::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobKind {
    /// Pull one calendar's changes into the item cache.
    PullCalendar,
    /// Plan and apply one rule.
    ReconcileRule,
    /// Renew push channels that are about to expire.
    RenewChannels,
    /// Delete old history (runs, finished jobs).
    Cleanup,
}

impl JobKind {
    /// Every kind this build knows. A worker that claims "any kind" claims
    /// only these, so jobs of a kind added by a newer build wait for a worker
    /// that knows it.
    pub const ALL: &'static [JobKind] = &[
        JobKind::PullCalendar,
        JobKind::ReconcileRule,
        JobKind::RenewChannels,
        JobKind::Cleanup,
    ];

    /// The kind's name, as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            JobKind::PullCalendar => "pull_calendar",
            JobKind::ReconcileRule => "reconcile_rule",
            JobKind::RenewChannels => "renew_channels",
            JobKind::Cleanup => "cleanup",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for JobKind {
    type Err = JobError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| JobError::UnknownKind(name.to_owned()))
    }
}

/// Where a job is in its life.
///
/// `pending` -> (claim) -> `running` -> (complete) -> `done`; a failure goes
/// back to `pending` with a backoff, or to `dead` after the last attempt; a
/// release goes back to `pending`; `retry` takes a `dead` job back to
/// `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its `run_at` and a worker.
    Pending,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Finished successfully (history, until cleaned up).
    Done,
    /// Failed its last attempt; waits for a person to retry or purge it.
    Dead,
}

impl JobState {
    /// Every state.
    pub const ALL: &'static [JobState] = &[
        JobState::Pending,
        JobState::Running,
        JobState::Done,
        JobState::Dead,
    ];

    /// The state's name, as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for JobState {
    type Err = JobError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .iter()
            .copied()
            .find(|state| state.name() == name)
            .ok_or_else(|| JobError::UnknownState(name.to_owned()))
    }
}

/// One job as the queue holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// What it works on; pending jobs coalesce by (kind, key).
    pub key: String,
    /// The arguments, as the first enqueue gave them.
    pub payload: serde_json::Value,
    /// Where it is in its life.
    pub state: JobState,
    /// When it is due (pending), or was due when last claimed.
    pub run_at: DateTime<Utc>,
    /// How many times it has been claimed and not released, counting a claim
    /// whose worker died.
    pub attempts: u32,
    /// How many enqueues this job stands for (1 plus those coalesced into it).
    pub triggers: u64,
    /// The worker holding the lease (running jobs only).
    pub worker: Option<String>,
    /// When the lease ends unless renewed (running jobs only).
    pub leased_until: Option<DateTime<Utc>>,
    /// The last failure, or the note that a lease expired.
    pub last_error: Option<String>,
    /// When the job was created.
    pub created_at: DateTime<Utc>,
    /// When it was last claimed.
    pub started_at: Option<DateTime<Utc>>,
    /// When it became done or dead.
    pub finished_at: Option<DateTime<Utc>>,
}

/// What [`enqueue`](crate::JobQueue::enqueue) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The pending job that now stands for this trigger.
    pub id: JobId,
    /// True when a pending job with the same kind and key already existed and
    /// absorbed this trigger (its `run_at` moved earlier if this one was).
    pub coalesced: bool,
}

/// One fire of a schedule, for [`enqueue_fires`](crate::JobQueue::enqueue_fires).
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    /// The job's kind.
    pub kind: JobKind,
    /// The job's coalescing key.
    pub key: String,
    /// The job's payload.
    pub payload: serde_json::Value,
    /// The schedule (`poll:<calendar>`, `cron:<rule>:...`).
    pub schedule: String,
    /// The fire time.
    pub fire_at: DateTime<Utc>,
}

/// What [`fail`](crate::JobQueue::fail) did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failed {
    /// Back to pending, due at this time.
    Retry {
        /// When it is due again.
        run_at: DateTime<Utc>,
    },
    /// Out of attempts: the job is dead.
    Dead,
}

/// How many jobs are in each state, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Counts {
    /// Jobs per kind and state; pairs with no job are absent. Kinds this
    /// build does not know are left out.
    pub by_kind: BTreeMap<JobKind, BTreeMap<JobState, u64>>,
}

impl Counts {
    /// Jobs of this kind in this state.
    pub fn get(&self, kind: JobKind, state: JobState) -> u64 {
        self.by_kind
            .get(&kind)
            .and_then(|states| states.get(&state))
            .copied()
            .unwrap_or(0)
    }

    /// Jobs in this state, of every kind.
    pub fn state(&self, state: JobState) -> u64 {
        self.by_kind
            .values()
            .filter_map(|states| states.get(&state))
            .sum()
    }

    /// Jobs of every kind and state.
    pub fn total(&self) -> u64 {
        self.by_kind
            .values()
            .flat_map(|states| states.values())
            .sum()
    }
}

//! The queue's error type.

use crate::{JobId, JobState};

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// No job has this id (it was never there, or it was cleaned up, purged,
    /// or merged into an older job with the same key).
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The worker does not hold the job's lease: the job is not running, or
    /// another worker took it over after the lease expired. The worker must
    /// stop working on it and must not record its result.
    #[error("job {id} is not held by worker {worker}")]
    LeaseLost {
        /// The job.
        id: JobId,
        /// The worker that asked.
        worker: String,
    },
    /// The job is not in the state the operation needs (`retry` takes only
    /// dead jobs).
    #[error("job {id} is {state}, not {expected}")]
    WrongState {
        /// The job.
        id: JobId,
        /// Its state.
        state: JobState,
        /// The state the operation needs.
        expected: JobState,
    },
    /// A job id that is not a number.
    #[error("invalid job id {0:?}")]
    InvalidId(String),
    /// A kind name this build does not know.
    #[error("unknown job kind {0:?}")]
    UnknownKind(String),
    /// A state name that is not one of pending, running, done, dead.
    #[error("unknown job state {0:?}")]
    UnknownState(String),
    /// A lease, wait or time so far ahead that it cannot be stored.
    #[error("time out of range: {0}")]
    TimeOutOfRange(String),
    /// The database refused or failed.
    #[error("job queue database error")]
    Database(#[source] sqlx::Error),
    /// The queue's tables could not be brought up to date.
    #[error("migrating the job queue tables")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A stored row does not decode (written by something else, or damaged).
    #[error("corrupt job row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for JobError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        JobError::Migrate(e)
    }
}

//! The store's error type.

/// Why a store operation failed.
///
/// Messages never contain secrets: credentials, keys and ciphertexts stay out
/// of them (the account id and key ids are enough to act on).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (or the id is not one the store issued).
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked for: `user`, `account`, `calendar`, `rule`, `run`.
        what: &'static str,
        /// The id or name asked for.
        id: String,
    },
    /// A uniqueness rule was broken, e.g. a second rule with the same name.
    #[error("{0}")]
    Conflict(String),
    /// The input cannot be stored as given (an empty channel token, an
    /// interval of zero minutes).
    #[error("{0}")]
    Invalid(String),
    /// The database answers but is not ready for this build: some of its
    /// migrations are not applied.
    #[error("not ready: {0}")]
    NotReady(String),
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The secret key is missing, malformed or not the one the credentials
    /// were encrypted with, or a ciphertext does not decrypt.
    #[error("{0}")]
    Secret(String),
    /// A stored row does not decode (written by something else, or damaged).
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which record or column.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl StoreError {
    /// Shorthand for [`StoreError::NotFound`].
    pub(crate) fn not_found(what: &'static str, id: impl std::fmt::Display) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// Shorthand for [`StoreError::Corrupt`].
    pub(crate) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}

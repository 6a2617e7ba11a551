//! What a sync or reset reports: per rule, counts, API calls, duration and
//! per-item errors; per calendar pulled, what the pull changed.

use std::time::Duration;

use serde::Serialize;

/// The report of one `sync`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// One entry per rule run.
    pub rules: Vec<RuleReport>,
}

impl SyncReport {
    /// Whether any rule failed (some item or the whole rule).
    pub fn failed(&self) -> bool {
        self.rules.iter().any(|r| r.status != "ok")
    }
}

/// One rule's run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleReport {
    /// Rule name.
    pub rule: String,
    /// `ok`, `partial` (some items failed), `failed`, `needs_confirmation`,
    /// `paused`.
    pub status: String,
    /// Why the rule failed or was held back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The run applied deletions the mass-deletion guard had held back
    /// (`--confirm-deletes` on a rule in `needs_confirmation`; other rules
    /// keep their guard).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub confirmed_deletes: bool,
    /// Blocks created.
    pub created: u64,
    /// Blocks updated.
    pub updated: u64,
    /// Blocks deleted.
    pub deleted: u64,
    /// Source entries without a block (free, declined, all-day, outside the
    /// window, calmesh's own blocks).
    pub skipped: u64,
    /// Writes that failed.
    pub failed: u64,
    /// Provider API calls made, pulls included.
    pub api_calls: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Pulls made for this rule.
    pub pulls: Vec<PullReport>,
    /// Per-item errors.
    pub errors: Vec<ItemError>,
    /// Failures that may succeed on a later try (rate limits, 5xx,
    /// dropped connections, the database): the rule is worth running again.
    #[serde(skip_serializing_if = "is_zero")]
    pub retryable: u64,
    /// The longest wait a provider asked for (`Retry-After`), if any.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// The planned writes (with `--dry-run` or `--verbose`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PlannedOp>,
    /// Skip reasons with their counts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_reasons: Vec<(String, u64)>,
}

/// One calendar's pull.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullReport {
    /// `email:calendar`.
    pub calendar: String,
    /// A full listing.
    pub full: bool,
    /// The full listing happened because the sync token expired.
    pub cursor_expired: bool,
    /// Entries new to the cache.
    pub added: u64,
    /// Entries changed.
    pub changed: u64,
    /// Entries removed.
    pub removed: u64,
    /// Entries that arrived unchanged.
    pub unchanged: u64,
    /// The pull's changes and cursor were committed to the store (a pull
    /// can commit and still report an error about single entries).
    pub committed: bool,
    /// API calls the pull made.
    pub api_calls: u64,
    /// Why the pull failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The wait the provider asked for (`Retry-After`) when it failed.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

/// An error recorded against one item; the run goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// `email:calendar`.
    pub calendar: String,
    /// The entry's id.
    pub item: String,
    /// What went wrong.
    pub message: String,
}

/// One planned write, for people to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedOp {
    /// create, update, delete, forget.
    pub op: String,
    /// Target `email:calendar`.
    pub calendar: String,
    /// The block's id.
    pub target_id: String,
    /// The source entry, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The block's start (and recurrence), for creates and updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

//! calmesh's one source of "now".
//!
//! Every part of calmesh that reads the wall clock (the engine's sync window,
//! the job queue's leases and backoffs, the store's timestamps, the provider
//! emulators' tokens and sync tokens) reads it through [`Clock`], and the
//! system clock through [`SystemClock`] only. That gives tests two handles:
//!
//! - [`ManualClock`], a clock that stands still until a test moves it, for
//!   code that takes a `Clock` (leases, backoffs, schedules);
//! - the **test clock offset**: in a build with debug assertions (what
//!   `cargo test` and `cargo nextest` build), [`SystemClock`] adds
//!   `CALMESH_TEST_CLOCK_OFFSET_SECONDS` (a signed whole number of seconds)
//!   to the system time. Every process of a test run inherits the variable,
//!   so the test, the emulators it starts and the `calmesh` binaries it runs
//!   agree on one shifted "now". `scripts/test` runs the end-to-end suites a
//!   second time with "now" months ahead, at a month's end, across a DST
//!   change and just before midnight UTC, so a test that only works on the
//!   day it was written fails in CI. Release builds ignore the variable.
//!
//! ```
//! use calmesh_clock::{Clock, ManualClock};
//! use chrono::{TimeZone, Utc};
//!
//! let start = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
//! let clock = ManualClock::new(start);
//! clock.advance(std::time::Duration::from_secs(60));
//! assert_eq!(clock.now(), start + chrono::Duration::minutes(1));
//! ```

use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The variable that shifts [`SystemClock`] in builds with debug assertions.
pub const OFFSET_VAR: &str = "CALMESH_TEST_CLOCK_OFFSET_SECONDS";

/// The source of "now".
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock, plus the test clock offset in builds with debug
/// assertions (see the crate docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        now()
    }
}

/// The system clock's time: what [`SystemClock::now`] returns.
pub fn now() -> DateTime<Utc> {
    let real = Utc::now();
    match test_offset() {
        Some(offset) => real.checked_add_signed(offset).unwrap_or(real),
        None => real,
    }
}

/// The offset this process adds to the system time, if any: read once from
/// [`OFFSET_VAR`] in builds with debug assertions, never in release builds.
pub fn test_offset() -> Option<TimeDelta> {
    static OFFSET: OnceLock<Option<TimeDelta>> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        if !cfg!(debug_assertions) {
            return None;
        }
        std::env::var(OFFSET_VAR)
            .ok()
            .and_then(|text| parse_offset(&text))
    })
}

/// Whether [`OFFSET_VAR`] is set in a build that ignores it (a release
/// build), so the binary can say so instead of silently running unshifted.
pub fn offset_ignored() -> bool {
    !cfg!(debug_assertions) && std::env::var_os(OFFSET_VAR).is_some()
}

/// A signed whole number of seconds; `None` for anything else (including
/// zero, and offsets past ±100 years, which no test needs).
fn parse_offset(text: &str) -> Option<TimeDelta> {
    let seconds: i64 = text.trim().parse().ok()?;
    const CENTURY: i64 = 100 * 366 * 86_400;
    if seconds == 0 || seconds.abs() > CENTURY {
        return None;
    }
    TimeDelta::try_seconds(seconds)
}

/// A clock that stands still until it is told to move.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.lock() = now;
    }

    /// Moves the time forward by `by` (saturating at the largest time).
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        let delta = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        *now = now
            .checked_add_signed(delta)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // The guarded value is a plain time: a panic elsewhere cannot leave
        // it half-written, so a poisoned lock is still good.
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_whole_signed_seconds_within_a_century() {
        assert_eq!(parse_offset("86400"), TimeDelta::try_seconds(86_400));
        assert_eq!(parse_offset(" -3600 "), TimeDelta::try_seconds(-3600));
        assert_eq!(parse_offset("0"), None);
        assert_eq!(parse_offset("1.5"), None);
        assert_eq!(parse_offset("1d"), None);
        assert_eq!(parse_offset(""), None);
        assert_eq!(parse_offset("99999999999"), None);
    }

    /// In scripts/test's shifted pass this checks that the variable reached
    /// the test process and moves the clock; unshifted, that it does not.
    #[test]
    fn the_system_clock_follows_the_variable() {
        let want = std::env::var(OFFSET_VAR)
            .ok()
            .and_then(|text| parse_offset(&text))
            .unwrap_or_default();
        let got = now() - Utc::now();
        assert!(
            (got - want).abs() < TimeDelta::seconds(5),
            "offset {got} where {want} was asked"
        );
    }
}

//! The scheduler tick: turns what is due into jobs. Every process may run it
//! (every `serve` and `worker`): each enqueue goes through
//! [`JobQueue::enqueue_fire`], so a fire time is enqueued once however many
//! ticks see it.
//!
//! - Each calendar whose owner syncs automatically is pulled when its
//!   interval has passed since its last pull (never pulled: at once); a
//!   calendar with a live push channel only every `push_safety_interval`.
//!   Accounts that need re-authorization are not pulled, nor calendars no
//!   rule uses.
//! - A rule with `"schedule": {"cron": "30 3 * * *", "time_zone":
//!   "America/Chicago"}` in its config is reconciled (with a fresh pull) at
//!   each fire time.
//! - Channel renewal runs hourly, cleanup daily.

use std::collections::HashSet;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;

use calmesh_store::{AccountStatus, Rule, Store, StoreError};

use crate::schedule::{CronSchedule, PollPolicy, calendar_due};
use crate::{Fire, JobError, JobKind, JobQueue};

/// The scheduler's settings.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// How often a calendar with a live push channel is still polled.
    pub push_safety_interval: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            push_safety_interval: Duration::hours(6),
        }
    }
}

/// What one tick enqueued.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    /// Calendars looked at.
    pub calendars: u64,
    /// Pulls enqueued (fire times new to the queue).
    pub pulls: u64,
    /// Rule runs enqueued by their cron schedule.
    pub rules: u64,
    /// Channel renewal enqueued this tick.
    pub renewal: bool,
    /// Cleanup enqueued this tick.
    pub cleanup: bool,
    /// Rules whose schedule cannot be read (rule name and why).
    pub bad_schedules: Vec<(String, String)>,
}

/// Why a tick failed.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] JobError),
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::minutes(1)).unwrap_or(t)
}

/// Enqueues everything due at `now`.
pub async fn tick(
    store: &dyn Store,
    queue: &dyn JobQueue,
    config: &SchedulerConfig,
    now: DateTime<Utc>,
) -> Result<TickReport, SchedulerError> {
    let mut report = TickReport::default();
    let rules = store.all_rules().await?;
    // Only calendars a rule reads or writes are polled (and so watched): an
    // account's other calendars are known but cost no API calls.
    let used: HashSet<String> = rules.iter().flat_map(Rule::calendars).collect();
    let mut fires = Vec::new();
    for poll in store.calendar_polls().await? {
        report.calendars += 1;
        if poll.account_status == AccountStatus::NeedsReauth
            || !used.contains(poll.calendar.as_str())
        {
            continue;
        }
        let interval = Duration::minutes(i64::from(poll.interval_minutes.max(1)));
        let policy = PollPolicy {
            auto_sync: poll.auto_sync,
            interval,
            has_live_channel: poll.channel_expires.is_some_and(|e| e > now),
            push_safety_interval: config.push_safety_interval,
        };
        let Some(due) = calendar_due(poll.last_sync_at, &policy, now) else {
            continue;
        };
        if due > now {
            continue;
        }
        // The fire time is the due time, so each due time is enqueued once;
        // a calendar overdue by more than an interval (its pull keeps
        // failing, or nothing ran) gets a new fire time each interval.
        let fire = if now - due > interval {
            let step = interval.num_seconds().max(60);
            let grid = now.timestamp() - now.timestamp().rem_euclid(step);
            DateTime::from_timestamp(grid, 0).unwrap_or(now)
        } else {
            minute(due)
        };
        let calendar = poll.calendar.to_string();
        fires.push(Fire {
            kind: JobKind::PullCalendar,
            key: format!("pull:{calendar}"),
            payload: json!({"calendar": calendar, "reason": "schedule"}),
            schedule: format!("poll:{calendar}"),
            fire_at: fire,
        });
    }
    report.pulls = queue.enqueue_fires(&fires).await?;
    for rule in &rules {
        let Some(schedule) = rule.config.get("schedule") else {
            continue;
        };
        let cron = schedule.get("cron").and_then(|v| v.as_str()).unwrap_or("");
        let zone = schedule
            .get("time_zone")
            .and_then(|v| v.as_str())
            .unwrap_or("UTC");
        let parsed = match CronSchedule::parse(cron, zone) {
            Ok(p) => p,
            Err(e) => {
                report
                    .bad_schedules
                    .push((rule.name.clone(), e.to_string()));
                continue;
            }
        };
        // Any fire in the last hour not enqueued yet (a tick was missed).
        if let Some(fire) = parsed.latest_fire(now - Duration::hours(1), now) {
            let id = rule.id.to_string();
            let enqueued = queue
                .enqueue_fire(
                    JobKind::ReconcileRule,
                    &format!("rule:{id}"),
                    &json!({"rule": id, "pull": true, "reason": "cron"}),
                    &format!("cron:{id}:{}", parsed.pattern()),
                    fire,
                )
                .await?;
            if enqueued.is_some() {
                report.rules += 1;
            }
        }
    }
    let hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    report.renewal = queue
        .enqueue_fire(
            JobKind::RenewChannels,
            "renew_channels",
            &json!({}),
            "renew_channels",
            hour,
        )
        .await?
        .is_some();
    let day = now.duration_trunc(Duration::days(1)).unwrap_or(now);
    report.cleanup = queue
        .enqueue_fire(JobKind::Cleanup, "cleanup", &json!({}), "cleanup", day)
        .await?
        .is_some();
    Ok(report)
}

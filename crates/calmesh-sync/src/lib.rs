//! The executor: pull every calendar a rule reads, plan with the pure planner
//! in `calmesh-core`, apply the writes one at a time (recording each link as
//! soon as its write succeeds, so a crash resumes where it stopped), and
//! record a run report.

mod channels;
mod entry;
pub mod metrics;
mod removal;
mod report;
pub mod worker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use calmesh_clock::{Clock, SystemClock};
use calmesh_core::busy::{
    self, BusyCalendar, BusyOptions, MassDeleteGuard, Op, PlanLink, PlanLinkKey,
};
use calmesh_core::{AccountId, CalendarId, UserId};
use calmesh_google::{GoogleAccount, GoogleProvider};
use calmesh_provider::{
    Change, Provider, ProviderError, RateLimiter, RateLimits, RetryPolicy, UrlPolicy, WriteRequest,
};
use calmesh_store::{
    Account, AccountStatus, Calendar, Credentials, Link, LinkKey, NewCalendar, NewRun, PullBatch,
    Rule, RuleState, RunReport, Store, StoreError,
};
use chrono::Duration;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use channels::{ChannelReport, ChannelSettings};
pub use entry::{event_ics, to_cached, to_plan};
pub use removal::{AccountInUse, RemovalReport};
pub use report::{ItemError, PlannedOp, PullReport, RuleReport, SyncReport};

/// Errors that stop a whole command (item and rule failures are reported,
/// not raised).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No rule by that name.
    #[error("no rule named {0:?}")]
    UnknownRule(String),
    /// A rule's settings cannot be read.
    #[error("rule {rule:?}: {message}")]
    BadConfig {
        /// Rule name.
        rule: String,
        /// What is wrong.
        message: String,
    },
    /// An account cannot be removed while rules use its calendars.
    #[error(transparent)]
    AccountInUse(#[from] AccountInUse),
    /// A provider failed where no item could take the error (discovery).
    #[error("{account}: {error}")]
    Provider {
        /// Account email.
        account: String,
        /// The error.
        error: ProviderError,
    },
}

/// A busy rule's settings as stored (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusyConfig {
    /// Store ids of the calendars in the group.
    pub calendars: Vec<String>,
    /// Title of the blocks.
    #[serde(default = "default_title")]
    pub title: String,
    /// Whether all-day events get blocks.
    #[serde(default)]
    pub include_all_day: bool,
    /// Whether tentative events get blocks.
    #[serde(default = "yes")]
    pub include_tentative: bool,
    /// Days before now covered.
    #[serde(default = "one")]
    pub window_past_days: i64,
    /// Days after now covered.
    #[serde(default = "one_eighty")]
    pub window_future_days: i64,
    /// Also run at these times (besides after every change the pulls see).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<RuleSchedule>,
}

/// A rule's cron schedule, read by the scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSchedule {
    /// Five-field cron pattern, e.g. `30 3 * * *`.
    pub cron: String,
    /// IANA zone the pattern is read in.
    #[serde(default = "utc")]
    pub time_zone: String,
}

fn utc() -> String {
    "UTC".to_owned()
}

fn default_title() -> String {
    "Busy".to_owned()
}
fn yes() -> bool {
    true
}
fn one() -> i64 {
    1
}
fn one_eighty() -> i64 {
    180
}

impl BusyConfig {
    /// A group of calendars with the defaults.
    pub fn new(calendars: Vec<String>) -> Self {
        Self {
            calendars,
            title: default_title(),
            include_all_day: false,
            include_tentative: true,
            window_past_days: 1,
            window_future_days: 180,
            schedule: None,
        }
    }

    /// The planner's options.
    pub fn options(&self) -> BusyOptions {
        BusyOptions {
            title: self.title.clone(),
            include_all_day: self.include_all_day,
            include_tentative: self.include_tentative,
            window_past: Duration::days(self.window_past_days),
            window_future: Duration::days(self.window_future_days),
            guard: MassDeleteGuard::default(),
        }
    }
}

/// How provider handles are made.
#[derive(Debug, Clone, Copy)]
pub struct ProviderSettings {
    /// Retries.
    pub policy: RetryPolicy,
    /// Calls per second per account.
    pub per_second: f64,
    /// Which provider URLs tokens may be sent to.
    pub url_policy: UrlPolicy,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            policy: RetryPolicy::default(),
            per_second: 10.0,
            url_policy: UrlPolicy::default(),
        }
    }
}

/// Makes a provider handle for an account, metered by `limiter`.
pub fn provider_for(
    account: &Account,
    credentials: Credentials,
    settings: ProviderSettings,
    limiter: Arc<RateLimiter>,
) -> Result<Arc<dyn Provider>, ProviderError> {
    match account.provider.as_str() {
        "google" => Ok(Arc::new(
            GoogleProvider::new(GoogleAccount {
                api_base: account
                    .api_base
                    .clone()
                    .unwrap_or_else(|| calmesh_google::DEFAULT_API_BASE.to_owned()),
                token_url: account
                    .token_url
                    .clone()
                    .unwrap_or_else(|| calmesh_google::DEFAULT_TOKEN_URL.to_owned()),
                client_id: account.client_id.clone(),
                client_secret: credentials.client_secret,
                refresh_token: credentials.refresh_token,
                policy: settings.policy,
                per_second: settings.per_second,
                url_policy: settings.url_policy,
            })?
            .with_rate_limiter(limiter),
        )),
        other => Err(ProviderError::Request(format!(
            "provider {other:?} is not supported yet"
        ))),
    }
}

/// A provider handle and the [`account_fingerprint`] it was made from.
type Handle = (u64, Arc<dyn Provider>);

/// Bursts an account's rate limiter allows.
const BURST: u32 = 20;

/// What an account's provider handle is made from (settings and secrets),
/// hashed: a changed account needs a new handle.
fn account_fingerprint(account: &Account, credentials: &Credentials) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &account.provider,
        &account.api_base,
        &account.token_url,
        &account.client_id,
        &credentials.refresh_token,
        &credentials.client_secret,
    )
        .hash(&mut h);
    h.finish()
}

/// What `sync` does.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// Only this rule.
    pub rule: Option<String>,
    /// Plan only: pull, print the plan, write nothing to any calendar.
    pub dry_run: bool,
    /// Apply a plan the mass-deletion guard held back, and reactivate the rule.
    pub confirm_deletes: bool,
    /// Put the plan in the report.
    pub verbose: bool,
    /// Plan on the cached state without pulling first (the worker's rule
    /// jobs: pull jobs keep the caches current).
    pub skip_pull: bool,
    /// Only rules that include this calendar.
    pub calendar: Option<CalendarId>,
}

/// Progress of long work, for a terminal to show.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Entries received so far by a pull.
    Pulling {
        /// `email:calendar`.
        calendar: String,
        /// Entries so far.
        entries: usize,
    },
    /// Writes applied so far.
    Applying {
        /// Rule name.
        rule: String,
        /// Done.
        done: usize,
        /// Planned.
        total: usize,
    },
}

/// One command's worth of work against one store.
pub struct Engine {
    store: Arc<dyn Store>,
    /// Where "now" comes from: the sync window, run and link times.
    clock: Arc<dyn Clock>,
    settings: ProviderSettings,
    /// Per-account rate limiters, shared with the process's other engines.
    limits: Arc<RateLimits>,
    /// Provider handles, with the fingerprint of the account settings and
    /// credentials they were made from.
    providers: Mutex<HashMap<AccountId, Handle>>,
    /// Accounts whose handle was checked against the store this run.
    checked: Mutex<HashSet<AccountId>>,
    /// Accounts that cannot be used this run, and why.
    unavailable: Mutex<HashMap<AccountId, String>>,
    /// Calendars pulled this run (each once), with their report.
    pulled: Mutex<HashMap<CalendarId, PullReport>>,
    accounts: Mutex<HashMap<AccountId, Account>>,
    progress: Box<dyn Fn(Progress) + Send + Sync>,
}

/// Per-target-calendar outcome of applying writes.
#[derive(Default)]
struct Applied {
    created: u64,
    updated: u64,
    deleted: u64,
    failed: u64,
    /// Failures worth another try (see [`ApplyError::is_transient`]).
    retryable: u64,
    /// The longest `Retry-After` among them.
    retry_after: Option<std::time::Duration>,
    errors: Vec<ItemError>,
}

impl Applied {
    fn fail(&mut self, calendar: &str, item: &str, message: String, transient: bool) {
        self.failed += 1;
        self.retryable += u64::from(transient);
        self.errors.push(ItemError {
            calendar: calendar.to_owned(),
            item: item.to_owned(),
            message,
        });
    }
}

/// Writes to one account that fail as `Unavailable` one after another
/// before the account is left alone for the rest of the run: one bad item
/// is that item's error, a provider that is down for every write is the
/// account's.
const UNAVAILABLE_STREAK: u32 = 3;

impl Engine {
    /// An engine over `store`.
    pub fn new(store: Arc<dyn Store>, settings: ProviderSettings) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
            settings,
            limits: Arc::new(RateLimits::new(settings.per_second, BURST)),
            providers: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashSet::new()),
            unavailable: Mutex::new(HashMap::new()),
            pulled: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            progress: Box::new(|_| {}),
        }
    }

    /// Shares per-account rate limits with other engines (a process's
    /// workers): made with [`Engine::rate_limits`] of the settings.
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> Self {
        self.limits = limits;
        self
    }

    /// A rate-limit registry for engines that share one process.
    pub fn rate_limits(settings: ProviderSettings) -> Arc<RateLimits> {
        Arc::new(RateLimits::new(settings.per_second, BURST))
    }

    /// Reads "now" from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reports progress to `progress`.
    pub fn with_progress(mut self, progress: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Box::new(progress);
        self
    }

    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        // A poisoned lock only means another task panicked mid-update of a
        // cache map; the maps stay usable.
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn account(&self, id: &AccountId) -> Result<Account, StoreError> {
        if let Some(a) = Self::lock(&self.accounts).get(id) {
            return Ok(a.clone());
        }
        let account = self.store.account(id).await?;
        Self::lock(&self.accounts).insert(id.clone(), account.clone());
        Ok(account)
    }

    /// `email:calendar` for reports.
    async fn label(&self, calendar: &Calendar) -> String {
        match self.account(&calendar.account).await {
            Ok(a) if a.email == calendar.remote_id => format!("{}:primary", a.email),
            Ok(a) => format!("{}:{}", a.email, calendar.remote_id),
            Err(_) => calendar.remote_id.clone(),
        }
    }

    /// The provider handle of an account, or why it cannot be used.
    async fn provider(&self, id: &AccountId) -> Result<Arc<dyn Provider>, String> {
        if let Some(why) = Self::lock(&self.unavailable).get(id) {
            return Err(why.clone());
        }
        if Self::lock(&self.checked).contains(id)
            && let Some((_, p)) = Self::lock(&self.providers).get(id)
        {
            return Ok(p.clone());
        }
        let account = self.account(id).await.map_err(|e| e.to_string())?;
        if account.status == AccountStatus::NeedsReauth {
            let why = format!(
                "account {} needs to be connected again{}",
                account.email,
                account
                    .last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
            Self::lock(&self.unavailable).insert(id.clone(), why.clone());
            return Err(why);
        }
        let credentials = self
            .store
            .credentials(id)
            .await
            .map_err(|e| e.to_string())?;
        // A handle made earlier is kept (with its access token) while the
        // account's settings and credentials are the same; an account added
        // again with new credentials gets a new one.
        let fingerprint = account_fingerprint(&account, &credentials);
        Self::lock(&self.checked).insert(id.clone());
        if let Some((made_from, p)) = Self::lock(&self.providers).get(id)
            && *made_from == fingerprint
        {
            return Ok(p.clone());
        }
        let limiter = self.limits.for_account(id.as_str());
        let provider = provider_for(&account, credentials, self.settings, limiter)
            .map_err(|e| e.to_string())?;
        Self::lock(&self.providers).insert(id.clone(), (fingerprint, provider.clone()));
        Ok(provider)
    }

    /// Records an account-level failure: `needs_reauth` for a refused grant,
    /// `error` otherwise; the account is not used again this run.
    async fn account_failed(&self, id: &AccountId, error: &ProviderError) {
        let status = match error {
            ProviderError::ReauthRequired(_) => AccountStatus::NeedsReauth,
            _ => AccountStatus::Error,
        };
        let text = error.to_string();
        if let Err(e) = self.store.set_account_status(id, status, Some(&text)).await {
            tracing::warn!(account = %id, "cannot record the account's status: {e}");
        }
        Self::lock(&self.unavailable).insert(id.clone(), text);
    }

    /// Lists an account's calendars at the provider and stores them.
    pub async fn discover(&self, account: &Account) -> Result<Vec<Calendar>, SyncError> {
        let provider = self
            .provider(&account.id)
            .await
            .map_err(|e| SyncError::Provider {
                account: account.email.clone(),
                error: ProviderError::Request(e),
            })?;
        let remote = match provider.calendars().await {
            Ok(r) => r,
            Err(error) => {
                if error.is_account_level() {
                    self.account_failed(&account.id, &error).await;
                }
                return Err(SyncError::Provider {
                    account: account.email.clone(),
                    error,
                });
            }
        };
        let mut out = Vec::new();
        for cal in remote {
            out.push(
                self.store
                    .upsert_calendar(&NewCalendar {
                        account: account.id.clone(),
                        remote_id: cal.remote_id,
                        name: cal.name,
                        time_zone: cal.time_zone,
                    })
                    .await?,
            );
        }
        if account.status != AccountStatus::Ok {
            self.store
                .set_account_status(&account.id, AccountStatus::Ok, None)
                .await?;
        }
        Ok(out)
    }

    /// Pulls one calendar into the cache (once per engine), and reports it.
    pub async fn pull(&self, calendar: &Calendar) -> PullReport {
        if let Some(done) = Self::lock(&self.pulled).get(&calendar.id) {
            let mut again = done.clone();
            again.api_calls = 0;
            return again;
        }
        let label = self.label(calendar).await;
        let mut report = PullReport {
            calendar: label.clone(),
            ..PullReport::default()
        };
        match self.provider(&calendar.account).await {
            Err(why) => report.error = Some(why),
            Ok(provider) => {
                let before = provider.api_calls();
                let progress = &self.progress;
                let result = provider
                    .pull(&calendar.remote_id, calendar.cursor.as_deref(), &|n| {
                        progress(Progress::Pulling {
                            calendar: label.clone(),
                            entries: n,
                        })
                    })
                    .await;
                report.api_calls = provider.api_calls() - before;
                match result {
                    Ok(pull) => {
                        if let Ok(account) = self.account(&calendar.account).await
                            && account.status == AccountStatus::Error
                        {
                            // The provider answered: whatever failed before is over.
                            if let Err(e) = self
                                .store
                                .set_account_status(&account.id, AccountStatus::Ok, None)
                                .await
                            {
                                tracing::warn!(account = %account.email, "cannot record the account's status: {e}");
                            }
                        }
                        report.full = pull.full;
                        report.cursor_expired = pull.cursor_expired;
                        let mut batch = PullBatch {
                            full: pull.full,
                            cursor: pull.cursor,
                            synced_at: self.clock.now(),
                            ..PullBatch::default()
                        };
                        for change in &pull.changes {
                            match change {
                                Change::Upsert(e) => batch.upserts.push(to_cached(e)),
                                Change::Removed(id) => batch.removals.push(id.clone()),
                            }
                        }
                        if !pull.problems.is_empty() {
                            // Entries the adapter could not read are not
                            // committed as missing: keep what the cache had.
                            for problem in &pull.problems {
                                tracing::warn!(calendar = %label, item = %problem.remote_id, "{}", problem.message);
                            }
                            if pull.full {
                                match self.store.entries(&calendar.id).await {
                                    Ok(cached) => {
                                        batch.upserts.extend(cached.into_iter().filter(|c| {
                                            pull.problems.iter().any(|p| p.remote_id == c.remote_id)
                                        }))
                                    }
                                    Err(e) => {
                                        // Committing now would drop the
                                        // unreadable entries from the cache
                                        // (and delete their blocks): commit
                                        // nothing, so the pull is retried.
                                        report.error = Some(format!(
                                            "{} entries could not be read and the cache that \
                                             holds them could not be read either ({e}): \
                                             nothing committed",
                                            pull.problems.len()
                                        ));
                                        return self.pull_finished(calendar, report);
                                    }
                                }
                            }
                        }
                        match self.store.apply_pull(&calendar.id, &batch).await {
                            Ok(summary) => {
                                report.committed = true;
                                report.added = summary.added;
                                report.changed = summary.changed;
                                report.removed = summary.removed;
                                report.unchanged = summary.unchanged;
                            }
                            Err(e) => report.error = Some(format!("cannot commit the pull: {e}")),
                        }
                        if let Some(problem) = pull.problems.first() {
                            report.error.get_or_insert_with(|| {
                                format!(
                                    "{} entries could not be read, first {}: {}",
                                    pull.problems.len(),
                                    problem.remote_id,
                                    problem.message
                                )
                            });
                        }
                    }
                    Err(error) => {
                        if error.is_account_level() {
                            self.account_failed(&calendar.account, &error).await;
                        }
                        report.retry_after = error.retry_after();
                        let mut text = error.to_string();
                        if let Err(e) = self
                            .store
                            .set_calendar_error(&calendar.id, Some(&text))
                            .await
                        {
                            text.push_str(&format!(" (and recording this error failed: {e})"));
                        }
                        report.error = Some(text);
                    }
                }
            }
        }
        self.pull_finished(calendar, report)
    }

    /// Counts a pull's end and remembers its report for the run.
    fn pull_finished(&self, calendar: &Calendar, report: PullReport) -> PullReport {
        metrics::run_finished(
            "pull",
            match (report.committed, &report.error) {
                (true, None) => "ok",
                (true, Some(_)) => "partial",
                (false, _) => "failed",
            },
        );
        Self::lock(&self.pulled).insert(calendar.id.clone(), report.clone());
        report
    }

    /// Runs the user's rules (or the one named).
    pub async fn sync(
        &self,
        user: &UserId,
        request: &SyncRequest,
    ) -> Result<SyncReport, SyncError> {
        let rules = match &request.rule {
            Some(name) => vec![
                self.store
                    .rule_by_name(user, name)
                    .await?
                    .ok_or_else(|| SyncError::UnknownRule(name.clone()))?,
            ],
            None => self.store.rules(user).await?,
        };
        let mut report = SyncReport::default();
        for rule in rules {
            if let Some(calendar) = &request.calendar
                && !rule.calendars().iter().any(|c| c == calendar.as_str())
            {
                continue;
            }
            report
                .rules
                .push(self.run_rule(user, &rule, request).await?);
        }
        Ok(report)
    }

    /// Runs one rule and records the run (not for a dry run).
    pub async fn run_rule(
        &self,
        user: &UserId,
        rule: &Rule,
        request: &SyncRequest,
    ) -> Result<RuleReport, SyncError> {
        let started = self.clock.now();
        let run = if request.dry_run {
            None
        } else {
            Some(
                self.store
                    .start_run(&NewRun {
                        user: user.clone(),
                        rule: Some(rule.id.clone()),
                        kind: "sync".to_owned(),
                        started_at: started,
                    })
                    .await?,
            )
        };
        let rule_report = match self.run_busy(rule, request).await {
            Ok(report) => report,
            Err(error) => RuleReport {
                rule: rule.name.clone(),
                status: "failed".to_owned(),
                message: Some(error.to_string()),
                ..RuleReport::default()
            },
        };
        if let Some(run) = run {
            self.finish_run(
                run,
                "sync",
                &rule_report.status,
                serde_json::to_value(&rule_report).unwrap_or_default(),
                rule_report.api_calls,
            )
            .await?;
        }
        Ok(rule_report)
    }

    /// Records the end of a run and counts it in [`metrics::RUNS_TOTAL`].
    async fn finish_run(
        &self,
        run: calmesh_store::RunId,
        kind: &'static str,
        status: &str,
        report: serde_json::Value,
        api_calls: u64,
    ) -> Result<(), StoreError> {
        metrics::run_finished(kind, status);
        self.store
            .finish_run(
                run,
                &RunReport {
                    status: status.to_owned(),
                    finished_at: self.clock.now(),
                    report,
                    api_calls,
                },
            )
            .await
    }

    /// Forgets what this engine learned in earlier runs (calendars pulled,
    /// accounts read, accounts found unusable), keeping provider handles and
    /// their access tokens: a long-lived worker calls it before each job.
    pub fn new_run(&self) {
        Self::lock(&self.pulled).clear();
        Self::lock(&self.accounts).clear();
        Self::lock(&self.unavailable).clear();
        Self::lock(&self.checked).clear();
    }

    /// The store this engine works on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn calendars_of(
        &self,
        rule: &Rule,
        config: &BusyConfig,
    ) -> Result<Vec<Calendar>, SyncError> {
        let mut out = Vec::new();
        for id in &config.calendars {
            out.push(
                self.store
                    .calendar(&CalendarId::new(id.clone()))
                    .await
                    .map_err(|e| SyncError::BadConfig {
                        rule: rule.name.clone(),
                        message: format!("calendar {id}: {e}"),
                    })?,
            );
        }
        Ok(out)
    }

    async fn busy_calendar(
        &self,
        calendar: &Calendar,
        errors: &mut Vec<ItemError>,
    ) -> Result<BusyCalendar, SyncError> {
        let account = self.account(&calendar.account).await?;
        let label = self.label(calendar).await;
        let mut entries = Vec::new();
        for cached in self.store.entries(&calendar.id).await? {
            match to_plan(&cached) {
                Ok(e) => entries.push(e),
                Err(message) => errors.push(ItemError {
                    calendar: label.clone(),
                    item: cached.remote_id.clone(),
                    message: format!("cached entry unreadable: {message}"),
                }),
            }
        }
        let mut owner_emails = vec![account.email.clone()];
        if calendar.remote_id.contains('@') && calendar.remote_id != account.email {
            owner_emails.push(calendar.remote_id.clone());
        }
        Ok(BusyCalendar {
            id: calendar.id.clone(),
            stable_key: format!(
                "{}|{}|{}",
                account.provider, account.email, calendar.remote_id
            ),
            owner_emails,
            floating_zone: calendar
                .time_zone
                .as_deref()
                .and_then(calmesh_core::zone::resolve_zone_name)
                .unwrap_or(Tz::UTC),
            entries,
        })
    }

    fn calls_so_far(&self) -> u64 {
        Self::lock(&self.providers)
            .values()
            .map(|(_, p)| p.api_calls())
            .sum()
    }

    async fn run_busy(&self, rule: &Rule, request: &SyncRequest) -> Result<RuleReport, SyncError> {
        let clock = Instant::now();
        let calls_before = self.calls_so_far();
        let mut report = RuleReport {
            rule: rule.name.clone(),
            status: "ok".to_owned(),
            ..RuleReport::default()
        };
        if rule.kind != "busy" {
            report.status = "failed".to_owned();
            report.message = Some(format!("rule kind {:?} is not supported yet", rule.kind));
            return Ok(report);
        }
        match rule.state {
            RuleState::Paused => {
                report.status = "paused".to_owned();
                report.message = Some("the rule is paused".to_owned());
                return Ok(report);
            }
            RuleState::NeedsConfirmation if !request.confirm_deletes && !request.dry_run => {
                report.status = "needs_confirmation".to_owned();
                report.message = Some(
                    "the rule is held by the mass-deletion guard; run `calmesh sync --rule NAME \
                     --confirm-deletes` after checking the plan with --dry-run"
                        .to_owned(),
                );
                return Ok(report);
            }
            _ => {}
        }
        let config: BusyConfig =
            serde_json::from_value(rule.config.clone()).map_err(|e| SyncError::BadConfig {
                rule: rule.name.clone(),
                message: e.to_string(),
            })?;
        let calendars = self.calendars_of(rule, &config).await?;
        if !request.skip_pull {
            for calendar in &calendars {
                report.pulls.push(self.pull(calendar).await);
            }
        }
        // Reload: the pulls moved cursors.
        let calendars = self.calendars_of(rule, &config).await?;
        if let Some(never) = calendars.iter().find(|c| c.cursor.is_none()) {
            report.status = "failed".to_owned();
            let label = self.label(never).await;
            let why = report
                .pulls
                .iter()
                .find(|p| p.calendar == label)
                .and_then(|p| p.error.clone())
                .unwrap_or_default();
            report.message = Some(format!(
                "calendar {label} has never been pulled, so its blocks cannot be checked: {why}"
            ));
            report.api_calls = self.calls_so_far() - calls_before;
            report.duration_ms = elapsed_ms(clock);
            return Ok(report);
        }
        let mut group = Vec::new();
        for calendar in &calendars {
            group.push(self.busy_calendar(calendar, &mut report.errors).await?);
        }
        let links: Vec<PlanLink> = self
            .store
            .links(&rule.id)
            .await?
            .into_iter()
            .map(plan_link)
            .collect();
        // A confirmation lifts the guard only of a rule it tripped: a rule
        // that never asked keeps its guard, whatever `--confirm-deletes` says.
        let confirmed = request.confirm_deletes && rule.state == RuleState::NeedsConfirmation;
        report.confirmed_deletes = confirmed && !request.dry_run;
        let plan = busy::plan(
            &rule.id,
            &config.options(),
            self.clock.now(),
            &group,
            &links,
            confirmed,
        );
        let by_id: HashMap<&CalendarId, &Calendar> = calendars.iter().map(|c| (&c.id, c)).collect();
        report.skipped = plan
            .skipped
            .iter()
            .filter(|s| s.reason != busy::SkipReason::CalmeshBlock)
            .count() as u64;
        let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &plan.skipped {
            *reasons.entry(s.reason.as_str()).or_default() += 1;
        }
        report.skip_reasons = reasons
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        for refusal in &plan.refused {
            let label = match by_id.get(&refusal.calendar) {
                Some(c) => self.label(c).await,
                None => refusal.calendar.to_string(),
            };
            report.errors.push(ItemError {
                calendar: label,
                item: refusal.remote_id.clone(),
                message: refusal.message.clone(),
            });
        }
        if request.dry_run || request.verbose {
            for op in &plan.ops {
                let label = match by_id.get(op.target_calendar()) {
                    Some(c) => self.label(c).await,
                    None => op.target_calendar().to_string(),
                };
                report.plan.push(planned(op, label));
            }
        }
        if let Some(trip) = plan.guard {
            report.status = "needs_confirmation".to_owned();
            report.message = Some(format!(
                "the plan deletes {} of the rule's {} blocks; nothing was written and the rule \
                 is held until confirmed (`calmesh sync --rule {} --confirm-deletes`)",
                trip.deletes, trip.links, rule.name
            ));
            if !request.dry_run {
                self.store
                    .set_rule_state(&rule.id, RuleState::NeedsConfirmation)
                    .await?;
            }
        } else if !request.dry_run {
            let applied = self.apply(rule, &plan.ops, &by_id).await;
            report.created = applied.created;
            report.updated = applied.updated;
            report.deleted = applied.deleted;
            report.failed = applied.failed;
            report.retryable = applied.retryable;
            report.retry_after = applied.retry_after;
            report.errors.extend(applied.errors);
            if rule.state == RuleState::NeedsConfirmation {
                self.store
                    .set_rule_state(&rule.id, RuleState::Active)
                    .await?;
            }
        }
        for pull in report.pulls.iter().filter(|p| !p.committed) {
            // A pull that committed nothing is worth another try.
            report.retryable += 1;
            report.retry_after = report.retry_after.max(pull.retry_after);
        }
        if report.status == "ok"
            && (report.failed > 0
                || !report.errors.is_empty()
                || report.pulls.iter().any(|p| p.error.is_some()))
        {
            report.status = "partial".to_owned();
        }
        report.api_calls = self.calls_so_far() - calls_before;
        report.duration_ms = elapsed_ms(clock);
        Ok(report)
    }

    /// Applies ops: each target calendar's writes in order, calendars side by
    /// side.
    async fn apply(
        &self,
        rule: &Rule,
        ops: &[Op],
        calendars: &HashMap<&CalendarId, &Calendar>,
    ) -> Applied {
        let mut queues: BTreeMap<&CalendarId, Vec<&Op>> = BTreeMap::new();
        for op in ops {
            queues.entry(op.target_calendar()).or_default().push(op);
        }
        let total = ops.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let futures = queues.into_iter().map(|(cal_id, ops)| {
            let done = &done;
            async move {
                let mut applied = Applied::default();
                let Some(calendar) = calendars.get(cal_id) else {
                    return applied;
                };
                let label = self.label(calendar).await;
                let provider = match self.provider(&calendar.account).await {
                    Ok(p) => p,
                    Err(why) => {
                        for op in ops.iter().filter(|op| !matches!(op, Op::Forget { .. })) {
                            applied.fail(&label, op_target(op), why.clone(), false);
                        }
                        return applied;
                    }
                };
                let mut unavailable_in_a_row = 0;
                for op in ops {
                    let unavailable = Self::lock(&self.unavailable)
                        .get(&calendar.account)
                        .cloned()
                        .filter(|_| !matches!(op, Op::Forget { .. }));
                    if let Some(why) = unavailable {
                        applied.fail(&label, op_target(op), why, true);
                        continue;
                    }
                    match self.apply_one(rule, calendar, provider.as_ref(), op).await {
                        Ok(()) => {
                            unavailable_in_a_row = 0;
                            match op {
                                Op::Create { .. } => applied.created += 1,
                                Op::Update { .. } => applied.updated += 1,
                                Op::Delete { .. } => applied.deleted += 1,
                                Op::Forget { .. } => {}
                            }
                        }
                        Err(error) => {
                            if let ApplyError::Provider(e) = &error {
                                if e.is_account_level() {
                                    self.account_failed(&calendar.account, e).await;
                                }
                                if matches!(e, ProviderError::Unavailable { .. }) {
                                    unavailable_in_a_row += 1;
                                    if unavailable_in_a_row >= UNAVAILABLE_STREAK {
                                        Self::lock(&self.unavailable).insert(
                                            calendar.account.clone(),
                                            format!(
                                                "not tried: the provider failed \
                                                 {unavailable_in_a_row} writes in a row ({e})"
                                            ),
                                        );
                                    }
                                } else {
                                    unavailable_in_a_row = 0;
                                }
                                applied.retry_after = applied.retry_after.max(e.retry_after());
                            }
                            applied.fail(
                                &label,
                                op_target(op),
                                error.to_string(),
                                error.is_transient(),
                            );
                        }
                    }
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    (self.progress)(Progress::Applying {
                        rule: rule.name.clone(),
                        done: n,
                        total,
                    });
                }
                applied
            }
        });
        let mut all = Applied::default();
        for part in futures_util::future::join_all(futures).await {
            all.created += part.created;
            all.updated += part.updated;
            all.deleted += part.deleted;
            all.failed += part.failed;
            all.retryable += part.retryable;
            all.retry_after = all.retry_after.max(part.retry_after);
            all.errors.extend(part.errors);
        }
        all
    }

    async fn apply_one(
        &self,
        rule: &Rule,
        calendar: &Calendar,
        provider: &dyn Provider,
        op: &Op,
    ) -> Result<(), ApplyError> {
        match op {
            Op::Create {
                key,
                seed,
                target_id,
                generation,
                block,
                tags,
                hash,
            } => {
                let mut write = WriteRequest {
                    id: target_id.clone(),
                    event: block.clone(),
                    tags: tags.clone(),
                };
                let mut generation = *generation;
                for _ in 0..MAX_GENERATION_STEPS {
                    match provider.create(&calendar.remote_id, &write).await {
                        Ok(written) => {
                            return self
                                .record(rule, calendar, key, generation, hash, written.entry)
                                .await;
                        }
                        Err(ProviderError::AlreadyExists) => {
                            // Either this block was written before and its
                            // link lost (a crash), or the id belongs to a
                            // deleted block. Look.
                            match provider.get(&calendar.remote_id, &write.id).await? {
                                Some(found)
                                    if found.tags.get(busy::TAG_RULE)
                                        == Some(&rule.id.to_string()) =>
                                {
                                    let written = provider
                                        .update(&calendar.remote_id, found.etag.as_deref(), &write)
                                        .await?;
                                    return self
                                        .record(
                                            rule,
                                            calendar,
                                            key,
                                            generation,
                                            hash,
                                            written.entry,
                                        )
                                        .await;
                                }
                                Some(_) => {
                                    return Err(ApplyError::Refused(format!(
                                        "id {} is taken by an entry calmesh did not make",
                                        write.id
                                    )));
                                }
                                None => {
                                    generation += 1;
                                    write.id = busy::target_id(seed, generation);
                                    write.event.uid = calmesh_core::ItemId::new(write.id.clone());
                                }
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(ApplyError::Refused(format!(
                    "no free id for the block after {MAX_GENERATION_STEPS} generations"
                )))
            }
            Op::Update {
                key,
                target_id,
                generation,
                etag,
                block,
                tags,
                hash,
            } => {
                let write = WriteRequest {
                    id: target_id.clone(),
                    event: block.clone(),
                    tags: tags.clone(),
                };
                let written = match provider
                    .update(&calendar.remote_id, etag.as_deref(), &write)
                    .await
                {
                    Ok(w) => w,
                    Err(ProviderError::PreconditionFailed) => {
                        // Someone touched our block since we read it: it is
                        // still ours (tagged), so write over it.
                        match provider.get(&calendar.remote_id, target_id).await? {
                            Some(found)
                                if found.tags.get(busy::TAG_RULE) == Some(&rule.id.to_string()) =>
                            {
                                provider
                                    .update(&calendar.remote_id, found.etag.as_deref(), &write)
                                    .await?
                            }
                            Some(_) => {
                                return Err(ApplyError::Refused(format!(
                                    "{target_id} lost its calmesh tag; left alone"
                                )));
                            }
                            None => return Err(ApplyError::Provider(ProviderError::NotFound)),
                        }
                    }
                    Err(e) => return Err(e.into()),
                };
                self.record(rule, calendar, key, *generation, hash, written.entry)
                    .await
            }
            Op::Delete {
                key,
                target_calendar: _,
                target_id,
                etag,
            } => {
                let result = match provider
                    .delete(&calendar.remote_id, target_id, etag.as_deref())
                    .await
                {
                    Err(ProviderError::PreconditionFailed) => {
                        match provider.get(&calendar.remote_id, target_id).await? {
                            Some(found)
                                if found.tags.get(busy::TAG_RULE) == Some(&rule.id.to_string()) =>
                            {
                                provider
                                    .delete(&calendar.remote_id, target_id, found.etag.as_deref())
                                    .await
                            }
                            Some(_) => {
                                return Err(ApplyError::Refused(format!(
                                    "{target_id} lost its calmesh tag; left alone"
                                )));
                            }
                            None => Ok(()),
                        }
                    }
                    other => other,
                };
                match result {
                    Ok(()) | Err(ProviderError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
                self.store.remove_entry(&calendar.id, target_id).await?;
                if let Some(key) = key {
                    self.store.delete_link(&link_key(rule, key)).await?;
                }
                Ok(())
            }
            Op::Forget { key } => {
                self.store.delete_link(&link_key(rule, key)).await?;
                Ok(())
            }
        }
    }

    async fn record(
        &self,
        rule: &Rule,
        calendar: &Calendar,
        key: &PlanLinkKey,
        generation: i64,
        hash: &str,
        written: calmesh_provider::RemoteEntry,
    ) -> Result<(), ApplyError> {
        self.store
            .put_entry(&calendar.id, &to_cached(&written))
            .await?;
        self.store
            .put_link(&Link {
                key: link_key(rule, key),
                target_id: written.remote_id.clone(),
                generation,
                hash: hash.to_owned(),
                etag: written.etag.clone(),
                updated_at: self.clock.now(),
            })
            .await?;
        Ok(())
    }

    /// Removes every block `rule` (or any rule) made in `calendar`, after a
    /// fresh pull. Only entries carrying calmesh's tag are touched.
    pub async fn reset(
        &self,
        user: &UserId,
        calendar: &Calendar,
        rule: Option<&Rule>,
        dry_run: bool,
    ) -> Result<RuleReport, SyncError> {
        let clock = Instant::now();
        let calls_before = self.calls_so_far();
        let mut report = RuleReport {
            rule: rule.map_or_else(|| "(all rules)".to_owned(), |r| r.name.clone()),
            status: "ok".to_owned(),
            ..RuleReport::default()
        };
        report.pulls.push(self.pull(calendar).await);
        let calendar = self.store.calendar(&calendar.id).await?;
        if calendar.cursor.is_none() {
            report.status = "failed".to_owned();
            report.message =
                Some("the calendar could not be pulled, so its blocks cannot be found".to_owned());
            return Ok(report);
        }
        let target = self.busy_calendar(&calendar, &mut report.errors).await?;
        let rules = match rule {
            Some(r) => vec![r.clone()],
            None => self.store.rules(user).await?,
        };
        let plan = busy::plan_reset(rule.map(|r| &r.id), &target);
        let label = self.label(&calendar).await;
        for op in &plan.ops {
            report.plan.push(planned(op, label.clone()));
        }
        if !dry_run {
            let run = self
                .store
                .start_run(&NewRun {
                    user: user.clone(),
                    rule: rule.map(|r| r.id.clone()),
                    kind: "reset".to_owned(),
                    started_at: self.clock.now(),
                })
                .await?;
            // Deletes are applied under the rule that made each block (its
            // tag): the executor checks that tag again before each write.
            let by_id: HashMap<&CalendarId, &Calendar> = HashMap::from([(&calendar.id, &calendar)]);
            for r in &rules {
                let ops: Vec<Op> = plan
                    .ops
                    .iter()
                    .filter(|op| owner_rule(op, &target) == Some(r.id.as_str()))
                    .cloned()
                    .collect();
                let applied = self.apply(r, &ops, &by_id).await;
                report.deleted += applied.deleted;
                report.failed += applied.failed;
                report.errors.extend(applied.errors);
            }
            if rule.is_none() {
                // Blocks of rules that no longer exist: delete them too.
                let known: HashSet<&str> = rules.iter().map(|r| r.id.as_str()).collect();
                let orphans: Vec<Op> = plan
                    .ops
                    .iter()
                    .filter(|op| owner_rule(op, &target).is_some_and(|o| !known.contains(o)))
                    .cloned()
                    .collect();
                if !orphans.is_empty() {
                    let provider = self.provider(&calendar.account).await;
                    for op in orphans {
                        // The plan of a reset holds only deletes.
                        let Op::Delete {
                            target_id, etag, ..
                        } = &op
                        else {
                            continue;
                        };
                        let result = match &provider {
                            Ok(p) => match p
                                .delete(&calendar.remote_id, target_id, etag.as_deref())
                                .await
                            {
                                Ok(()) | Err(ProviderError::NotFound) => Ok(()),
                                Err(e) => Err(e.to_string()),
                            },
                            // An account that cannot be opened leaves its
                            // orphans in place: each is a failure, not a skip.
                            Err(why) => Err(why.clone()),
                        };
                        match result {
                            Ok(()) => {
                                self.store.remove_entry(&calendar.id, target_id).await?;
                                report.deleted += 1;
                            }
                            Err(message) => {
                                report.failed += 1;
                                report.errors.push(ItemError {
                                    calendar: label.clone(),
                                    item: target_id.clone(),
                                    message,
                                });
                            }
                        }
                    }
                }
            }
            if report.failed > 0 {
                report.status = "partial".to_owned();
            }
            report.api_calls = self.calls_so_far() - calls_before;
            report.duration_ms = elapsed_ms(clock);
            self.finish_run(
                run,
                "reset",
                &report.status,
                serde_json::to_value(&report).unwrap_or_default(),
                report.api_calls,
            )
            .await?;
        }
        report.api_calls = self.calls_so_far() - calls_before;
        report.duration_ms = elapsed_ms(clock);
        Ok(report)
    }
}

/// The rule that owns the block an op touches, by its tag.
fn owner_rule<'a>(op: &Op, target: &'a BusyCalendar) -> Option<&'a str> {
    let id = op_target(op);
    target
        .entries
        .iter()
        .find(|e| e.remote_id == id)
        .and_then(|entry| entry.tags.get(busy::TAG_RULE).map(String::as_str))
}

fn op_target(op: &Op) -> &str {
    match op {
        Op::Create { target_id, .. }
        | Op::Update { target_id, .. }
        | Op::Delete { target_id, .. } => target_id,
        Op::Forget { key } => &key.source_id,
    }
}

fn planned(op: &Op, calendar: String) -> PlannedOp {
    let (source, when) = match op {
        Op::Create { key, block, .. } | Op::Update { key, block, .. } => (
            Some(key.source_id.clone()),
            Some(match &block.rrule {
                Some(rule) => format!("{} {}", block.start.to_rfc3339(), rule),
                None => block.start.to_rfc3339(),
            }),
        ),
        Op::Delete { key, .. } => (key.as_ref().map(|k| k.source_id.clone()), None),
        Op::Forget { key } => (Some(key.source_id.clone()), None),
    };
    PlannedOp {
        op: op.verb().to_owned(),
        calendar,
        target_id: op_target(op).to_owned(),
        source,
        when,
    }
}

fn plan_link(link: Link) -> PlanLink {
    PlanLink {
        key: PlanLinkKey {
            source_calendar: link.key.source_calendar,
            source_id: link.key.source_id,
            target_calendar: link.key.target_calendar,
        },
        target_id: link.target_id,
        generation: link.generation,
        hash: link.hash,
        etag: link.etag,
    }
}

fn link_key(rule: &Rule, key: &PlanLinkKey) -> LinkKey {
    LinkKey {
        rule: rule.id.clone(),
        source_calendar: key.source_calendar.clone(),
        source_id: key.source_id.clone(),
        target_calendar: key.target_calendar.clone(),
    }
}

fn elapsed_ms(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// How many deleted ids a create steps over before it gives up. Links keep
/// the generation they reached, so this bounds one run's work, not the
/// number of times a block can be recreated.
const MAX_GENERATION_STEPS: usize = 16;

/// Why one write failed.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("could not record the write: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Refused(String),
}

impl ApplyError {
    /// Whether the same write may succeed later: a provider's transient
    /// failure, or the database.
    fn is_transient(&self) -> bool {
        match self {
            Self::Provider(e) => e.is_transient(),
            Self::Store(_) => true,
            Self::Refused(_) => false,
        }
    }
}

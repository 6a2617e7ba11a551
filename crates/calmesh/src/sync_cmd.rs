//! `calmesh accounts|rules|sync|reset`: the commands over the store.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use calmesh_core::UserId;
use calmesh_provider::RetryPolicy;
use calmesh_store::{
    Account, Calendar, Credentials, KeySource, NewAccount, NewRule, SecretKey, Store,
};
use calmesh_sync::{
    BusyConfig, Engine, Progress, ProviderSettings, RuleReport, SyncReport, SyncRequest,
};

/// The user the CLI acts for until multi-user arrives with the server.
pub const DEFAULT_USER: &str = "default";

/// The secret key: `CALMESH_SECRET_KEY`, else the key file (generated on
/// first use, with a message).
pub fn load_key(database: &str, key_file: Option<&std::path::Path>) -> Result<SecretKey> {
    let source = match std::env::var("CALMESH_SECRET_KEY") {
        Ok(value) if !value.trim().is_empty() => KeySource::Env(value),
        _ => KeySource::File(
            key_file
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| calmesh_store::default_key_file(database)),
        ),
    };
    let (key, message) = SecretKey::load(&source).context("loading the secret key")?;
    if let Some(message) = message {
        eprintln!("calmesh: {message}");
    }
    Ok(key)
}

/// Opens the store named by `--database`, with the secret key from
/// `CALMESH_SECRET_KEY` or the key file.
pub async fn open_store(
    database: &str,
    key_file: Option<&std::path::Path>,
) -> Result<Arc<dyn Store>> {
    let key = load_key(database, key_file)?;
    calmesh_store::open_store(database, key)
        .await
        .with_context(|| format!("opening the database {database}"))
}

/// Provider settings, with two knobs from the environment for tests and
/// operators: `CALMESH_RETRY_BASE_MS` (first backoff) and
/// `CALMESH_RATE_PER_SECOND` (calls per second per account).
pub fn provider_settings() -> ProviderSettings {
    let mut settings = ProviderSettings::default();
    if let Some(ms) = env_number("CALMESH_RETRY_BASE_MS") {
        settings.policy = RetryPolicy {
            base: Duration::from_millis(ms as u64),
            cap: Duration::from_millis((ms as u64).saturating_mul(64)),
            ..settings.policy
        };
    }
    if let Some(rate) = env_number("CALMESH_RATE_PER_SECOND") {
        settings.per_second = rate;
    }
    settings.url_policy = url_policy();
    settings
}

/// Refuses an account's API or token URL that tokens must not go to (see
/// [`calmesh_provider::UrlPolicy`]), before anything is stored or sent.
pub fn check_urls(api_base: Option<&str>, token_url: Option<&str>) -> Result<()> {
    let policy = url_policy();
    if let Some(url) = api_base {
        policy.check("the API base (--api-base)", url)?;
    }
    if let Some(url) = token_url {
        policy.check("the token URL (--token-url)", url)?;
    }
    Ok(())
}

/// The URL policy `CALMESH_ALLOW_INSECURE_HTTP` asks for.
pub fn url_policy() -> calmesh_provider::UrlPolicy {
    let value = std::env::var(calmesh_provider::ALLOW_INSECURE_HTTP_ENV).ok();
    calmesh_provider::UrlPolicy::from_env_value(value.as_deref())
}

fn env_number(name: &str) -> Option<f64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn engine(store: Arc<dyn Store>) -> Engine {
    let interactive = std::io::stderr().is_terminal();
    Engine::new(store, provider_settings()).with_progress(move |p| {
        if !interactive {
            return;
        }
        match p {
            Progress::Pulling { calendar, entries } => {
                eprint!("\rpulling {calendar}: {entries} entries   ");
            }
            Progress::Applying { rule, done, total } => {
                eprint!("\r{rule}: {done}/{total} writes   ");
                if done == total {
                    eprintln!();
                }
            }
        }
    })
}

async fn user(store: &dyn Store) -> Result<UserId> {
    Ok(store.ensure_user(DEFAULT_USER).await?)
}

/// Stores a Google account and lists its calendars.
pub async fn add_google(store: Arc<dyn Store>, account: NewAccount, json: bool) -> Result<bool> {
    check_urls(account.api_base.as_deref(), account.token_url.as_deref())?;
    let stored = store.upsert_account(&account).await?;
    let engine = engine(store.clone());
    match engine.discover(&stored).await {
        Ok(calendars) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"account": stored, "calendars": calendars})
                    )?
                );
            } else {
                println!("added {} ({} calendars)", stored.email, calendars.len());
                for c in &calendars {
                    println!(
                        "  {}:{}  {}",
                        stored.email,
                        short_calendar(&stored, c),
                        c.name
                    );
                }
            }
            Ok(true)
        }
        Err(e) => {
            eprintln!(
                "added {}, but its calendars could not be listed: {e}",
                stored.email
            );
            Ok(false)
        }
    }
}

fn short_calendar(account: &Account, calendar: &Calendar) -> String {
    if calendar.remote_id == account.email {
        "primary".to_owned()
    } else {
        calendar.remote_id.clone()
    }
}

/// `calmesh accounts list`.
pub async fn list_accounts(store: Arc<dyn Store>, json: bool) -> Result<()> {
    let user = user(store.as_ref()).await?;
    let accounts = store.accounts(&user).await?;
    let mut rows = Vec::new();
    for account in accounts {
        let calendars = store.calendars(&account.id).await?;
        rows.push((account, calendars));
    }
    if json {
        let value: Vec<_> = rows
            .iter()
            .map(|(a, c)| serde_json::json!({"account": a, "calendars": c}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no accounts; add one with `calmesh accounts add google ...`");
    }
    for (account, calendars) in rows {
        println!(
            "{} ({}) {}{}",
            account.email,
            account.provider,
            account.status.as_str(),
            account
                .last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        for c in calendars {
            let synced = c.last_sync_at.map_or_else(
                || "never synced".to_owned(),
                |t| format!("synced {}", t.to_rfc3339()),
            );
            println!(
                "  {}:{}  {}  ({synced})",
                account.email,
                short_calendar(&account, &c),
                c.name
            );
        }
    }
    Ok(())
}

/// Finds `EMAIL:CALID` (`primary` allowed) in the store, listing the
/// account's calendars at the provider when it is not known yet.
pub async fn resolve_calendar(store: Arc<dyn Store>, spec: &str) -> Result<Calendar> {
    let (email, cal) = spec.split_once(':').ok_or_else(|| {
        anyhow!("calendar {spec:?}: expected EMAIL:CALENDAR_ID (e.g. me@example.com:primary)")
    })?;
    let user = user(store.as_ref()).await?;
    let account = store
        .account_by_email(&user, "google", email)
        .await?
        .ok_or_else(|| {
            anyhow!("calendar {spec:?}: no account {email}; add it with `calmesh accounts add`")
        })?;
    let remote = if cal == "primary" { email } else { cal };
    if let Some(found) = store.calendar_by_remote(&account.id, remote).await? {
        return Ok(found);
    }
    engine(store.clone()).discover(&account).await?;
    store
        .calendar_by_remote(&account.id, remote)
        .await?
        .ok_or_else(|| anyhow!("calendar {spec:?}: account {email} has no calendar {remote}"))
}

/// `calmesh rules add busy`.
pub async fn add_busy_rule(
    store: Arc<dyn Store>,
    name: &str,
    specs: &[String],
    config: BusyConfig,
) -> Result<()> {
    if specs.len() < 2 {
        bail!("a busy group needs at least two --calendar");
    }
    let mut ids = Vec::new();
    for spec in specs {
        let calendar = resolve_calendar(store.clone(), spec).await?;
        if ids.contains(&calendar.id.to_string()) {
            bail!("calendar {spec} is listed twice");
        }
        ids.push(calendar.id.to_string());
    }
    let user = user(store.as_ref()).await?;
    let config = BusyConfig {
        calendars: ids,
        ..config
    };
    let rule = store
        .add_rule(&NewRule {
            user,
            name: name.to_owned(),
            kind: "busy".to_owned(),
            config: serde_json::to_value(&config)?,
        })
        .await?;
    println!(
        "added busy rule {} over {} calendars",
        rule.name,
        specs.len()
    );
    Ok(())
}

/// `calmesh rules list`.
pub async fn list_rules(store: Arc<dyn Store>, json: bool) -> Result<()> {
    let user = user(store.as_ref()).await?;
    let rules = store.rules(&user).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rules)?);
        return Ok(());
    }
    if rules.is_empty() {
        println!(
            "no rules; add one with `calmesh rules add busy NAME --calendar ... --calendar ...`"
        );
    }
    for rule in rules {
        let calendars = rule
            .config
            .get("calendars")
            .and_then(|c| c.as_array())
            .map_or(0, Vec::len);
        println!(
            "{} ({}, {} calendars) {}",
            rule.name,
            rule.kind,
            calendars,
            rule.state.as_str()
        );
    }
    Ok(())
}

/// `calmesh rules remove`: the rule's blocks (unless `keep_blocks`), the
/// rule, and channels no rule needs any more; returns whether it is gone.
pub async fn remove_rule(
    store: Arc<dyn Store>,
    name: &str,
    keep_blocks: bool,
    json: bool,
) -> Result<bool> {
    let user = user(store.as_ref()).await?;
    let rule = store
        .rule_by_name(&user, name)
        .await?
        .ok_or_else(|| anyhow!("no rule named {name:?}"))?;
    let report = engine(store).remove_rule(&user, &rule, keep_blocks).await?;
    print_removal(&report, json, "rule")?;
    Ok(report.done)
}

/// `calmesh accounts remove`; returns whether it is gone.
pub async fn remove_account(store: Arc<dyn Store>, email: &str, json: bool) -> Result<bool> {
    let user = user(store.as_ref()).await?;
    let account = store
        .account_by_email(&user, "google", email)
        .await?
        .ok_or_else(|| anyhow!("no Google account {email:?}"))?;
    let report = engine(store).remove_account(&account).await?;
    print_removal(&report, json, "account")?;
    Ok(report.done)
}

fn print_removal(report: &calmesh_sync::RemovalReport, json: bool, what: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for reset in &report.resets {
        for pull in &reset.pulls {
            println!("{}: {} blocks deleted", pull.calendar, reset.deleted);
        }
    }
    if report.channels_stopped > 0 {
        println!("{} push channels stopped", report.channels_stopped);
    }
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    if report.done {
        println!("{what} {} removed", report.removed);
    } else {
        eprintln!(
            "{what} {} kept: the errors above must be fixed first; run the command again",
            report.removed
        );
    }
    Ok(())
}

/// `calmesh preferences`: changes what is given, prints the result.
pub async fn preferences(
    store: Arc<dyn Store>,
    auto_sync: Option<bool>,
    interval_minutes: Option<u32>,
    json: bool,
) -> Result<()> {
    let user = user(store.as_ref()).await?;
    let mut prefs = store.preferences(&user).await?;
    if auto_sync.is_some() || interval_minutes.is_some() {
        if let Some(on) = auto_sync {
            prefs.auto_sync = on;
        }
        if let Some(minutes) = interval_minutes {
            prefs.interval_minutes = minutes;
        }
        store.set_preferences(&user, &prefs).await?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&prefs)?);
    } else {
        println!(
            "auto sync {}, every {} minutes",
            if prefs.auto_sync { "on" } else { "off" },
            prefs.interval_minutes
        );
    }
    Ok(())
}

/// `calmesh sync`; returns whether every rule succeeded.
pub async fn sync(
    store: Arc<dyn Store>,
    user_name: &str,
    request: SyncRequest,
    json: bool,
) -> Result<bool> {
    let user = if user_name == DEFAULT_USER {
        user(store.as_ref()).await?
    } else {
        store
            .users()
            .await?
            .into_iter()
            .find(|(_, name)| name == user_name)
            .map(|(id, _)| id)
            .ok_or_else(|| anyhow!("no user named {user_name:?}"))?
    };
    let report = engine(store).sync(&user, &request).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, request.dry_run);
    }
    if request.confirm_deletes && !request.dry_run {
        // Say which rules the confirmation applied to: only those the guard
        // held; every other rule kept its guard.
        let confirmed: Vec<&str> = report
            .rules
            .iter()
            .filter(|r| r.confirmed_deletes)
            .map(|r| r.rule.as_str())
            .collect();
        if confirmed.is_empty() {
            eprintln!(
                "--confirm-deletes: no rule was held by the mass-deletion guard; nothing confirmed"
            );
        } else {
            eprintln!(
                "--confirm-deletes: confirmed the deletions of {}",
                confirmed.join(", ")
            );
        }
    }
    Ok(!report.failed())
}

fn print_rule(rule: &RuleReport, dry_run: bool) {
    println!(
        "rule {}: {}{}",
        rule.rule,
        rule.status,
        rule.message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    for pull in &rule.pulls {
        match &pull.error {
            Some(e) => println!("  pull {}: failed: {e}", pull.calendar),
            None => println!(
                "  pull {}: {}{} +{} ~{} -{} ({} api calls)",
                pull.calendar,
                if pull.full { "full" } else { "incremental" },
                if pull.cursor_expired {
                    " (sync token expired)"
                } else {
                    ""
                },
                pull.added,
                pull.changed,
                pull.removed,
                pull.api_calls
            ),
        }
    }
    if dry_run {
        println!("  plan ({} writes, nothing written):", rule.plan.len());
    } else {
        println!(
            "  created {}, updated {}, deleted {}, skipped {}, failed {}, api_calls {}, duration {} ms",
            rule.created,
            rule.updated,
            rule.deleted,
            rule.skipped,
            rule.failed,
            rule.api_calls,
            rule.duration_ms
        );
    }
    for op in &rule.plan {
        println!(
            "    {} {} {}{}{}",
            op.op,
            op.calendar,
            op.target_id,
            op.source
                .as_deref()
                .map(|s| format!(" for {s}"))
                .unwrap_or_default(),
            op.when
                .as_deref()
                .map(|w| format!(" at {w}"))
                .unwrap_or_default()
        );
    }
    for e in &rule.errors {
        println!("  error {} {}: {}", e.calendar, e.item, e.message);
    }
}

fn print_report(report: &SyncReport, dry_run: bool) {
    if report.rules.is_empty() {
        println!("no rules to run");
    }
    for rule in &report.rules {
        print_rule(rule, dry_run);
    }
}

/// `calmesh reset`; returns whether it succeeded.
pub async fn reset(
    store: Arc<dyn Store>,
    spec: &str,
    rule: Option<&str>,
    dry_run: bool,
    json: bool,
) -> Result<bool> {
    let calendar = resolve_calendar(store.clone(), spec).await?;
    let user = user(store.as_ref()).await?;
    let rule = match rule {
        Some(name) => Some(
            store
                .rule_by_name(&user, name)
                .await?
                .ok_or_else(|| anyhow!("no rule named {name:?}"))?,
        ),
        None => None,
    };
    let report = engine(store)
        .reset(&user, &calendar, rule.as_ref(), dry_run)
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_rule(&report, dry_run);
    }
    Ok(report.status == "ok")
}

/// Credentials for `accounts add`.
pub fn google_account(
    user: UserId,
    email: String,
    client_id: String,
    client_secret: String,
    refresh_token: String,
    api_base: Option<String>,
    token_url: Option<String>,
) -> NewAccount {
    NewAccount {
        user,
        provider: "google".to_owned(),
        email,
        client_id,
        api_base,
        token_url,
        credentials: Credentials {
            refresh_token,
            client_secret,
        },
    }
}

/// The default user, for callers that build accounts.
pub async fn default_user(store: &dyn Store) -> Result<UserId> {
    user(store).await
}

//! Removing rules and accounts without leaving anything behind: a rule's
//! blocks are deleted first (only what it made, by its tag), then the rule
//! and its links; channels of calendars no rule uses any more are stopped
//! at the provider. An account goes only when no rule uses its calendars.

use std::collections::HashSet;

use calmesh_core::{CalendarId, UserId};
use calmesh_store::{Account, Rule, StoreError};
use serde::Serialize;

use crate::{Engine, RuleReport, SyncError};

/// What removing a rule or an account did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemovalReport {
    /// The rule's name or the account's email.
    pub removed: String,
    /// Whether it was removed (false: something below failed and it was
    /// kept, so that removing again finishes the job).
    pub done: bool,
    /// Blocks deleted, per calendar (a rule's resets).
    pub resets: Vec<RuleReport>,
    /// Push channels stopped.
    pub channels_stopped: u64,
    /// What failed.
    pub errors: Vec<String>,
}

/// Why an account cannot be removed.
#[derive(Debug, thiserror::Error)]
#[error("account {account} is used by rule(s) {}: remove them first", rules.join(", "))]
pub struct AccountInUse {
    /// The account's email.
    pub account: String,
    /// Names of the rules that use its calendars.
    pub rules: Vec<String>,
}

impl Engine {
    /// Removes `rule`: deletes its blocks in each of its calendars (unless
    /// `keep_blocks`), then the rule with its links, then stops the
    /// channels of calendars no remaining rule uses. When a block cannot be
    /// deleted the rule is kept (`done` false) and nothing else changes.
    pub async fn remove_rule(
        &self,
        user: &UserId,
        rule: &Rule,
        keep_blocks: bool,
    ) -> Result<RemovalReport, SyncError> {
        let mut report = RemovalReport {
            removed: rule.name.clone(),
            ..RemovalReport::default()
        };
        // The rule's calendars still stored (one that went with its account
        // has no blocks to find and no channel to stop).
        let mut calendars = Vec::new();
        for id in rule.calendars() {
            match self.store().calendar(&CalendarId::new(id)).await {
                Ok(c) => calendars.push(c),
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !keep_blocks {
            for calendar in &calendars {
                let reset = self.reset(user, calendar, Some(rule), false).await?;
                if reset.status != "ok" {
                    report.errors.push(format!(
                        "{}: {}",
                        self.label(calendar).await,
                        reset
                            .message
                            .clone()
                            .or_else(|| reset.errors.first().map(|e| e.message.clone()))
                            .unwrap_or_else(|| format!("reset ended {}", reset.status))
                    ));
                }
                report.resets.push(reset);
            }
            if !report.errors.is_empty() {
                return Ok(report);
            }
        }
        self.store().delete_rule(&rule.id).await?;
        report.done = true;
        let still_used: HashSet<String> = self
            .store()
            .all_rules()
            .await?
            .iter()
            .flat_map(Rule::calendars)
            .collect();
        for calendar in calendars
            .iter()
            .filter(|c| !still_used.contains(c.id.as_str()))
        {
            let stopped = self.stop_channels(calendar).await?;
            report.channels_stopped += stopped.stopped;
            report.errors.extend(stopped.errors);
        }
        Ok(report)
    }

    /// Removes `account` with its calendars and cached entries after
    /// stopping their push channels. Refused while a rule uses one of its
    /// calendars: the rule's blocks must go first (`remove_rule`).
    pub async fn remove_account(&self, account: &Account) -> Result<RemovalReport, SyncError> {
        let calendars = self.store().calendars(&account.id).await?;
        let ids: HashSet<String> = calendars.iter().map(|c| c.id.to_string()).collect();
        let users: Vec<String> = self
            .store()
            .all_rules()
            .await?
            .into_iter()
            .filter(|r| r.calendars().iter().any(|c| ids.contains(c)))
            .map(|r| r.name)
            .collect();
        if !users.is_empty() {
            return Err(SyncError::AccountInUse(AccountInUse {
                account: account.email.clone(),
                rules: users,
            }));
        }
        let mut report = RemovalReport {
            removed: account.email.clone(),
            ..RemovalReport::default()
        };
        for calendar in &calendars {
            let stopped = self.stop_channels(calendar).await?;
            report.channels_stopped += stopped.stopped;
            report.errors.extend(stopped.errors);
        }
        self.store().delete_account(&account.id).await?;
        report.done = true;
        Ok(report)
    }
}

//! Push channels: after a calendar's pull, watch it when calmesh has a
//! public URL and the calendar has no live channel; renew channels before
//! they expire (a new channel first, then stop the old one, so no change
//! falls between); stop a calendar's channels when they are no longer
//! wanted. Deliveries arrive at `PUBLIC_URL/webhooks/google` (calmesh-server).

use std::time::Duration;

use calmesh_provider::{Channel, ChannelRequest, ProviderError};
use calmesh_store::{Calendar, ChannelRecord, StoreError};
use chrono::{DateTime, Utc};
use rand::RngCore;

use crate::Engine;

/// Where providers deliver, and for how long channels are asked.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// calmesh's public base URL (`CALMESH_PUBLIC_URL`); None: no push.
    pub public_url: Option<String>,
    /// Lifetime asked for (the provider may grant less).
    pub ttl: Duration,
    /// Channels expiring within this are renewed.
    pub renew_within: chrono::Duration,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            ttl: Duration::from_secs(7 * 24 * 3600),
            renew_within: chrono::Duration::hours(12),
        }
    }
}

/// What a channel operation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelReport {
    /// Channels created.
    pub created: u64,
    /// Channels stopped.
    pub stopped: u64,
    /// Failures (calendar and why).
    pub errors: Vec<String>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Engine {
    /// Makes sure `calendar` has a live channel (creating one when it has
    /// none that outlives `now + renew_within`). No-op without a public URL.
    pub async fn ensure_channel(
        &self,
        calendar: &Calendar,
        settings: &ChannelSettings,
        now: DateTime<Utc>,
    ) -> Result<ChannelReport, StoreError> {
        let mut report = ChannelReport::default();
        let Some(base) = &settings.public_url else {
            return Ok(report);
        };
        let channels = self.store().channels_of(&calendar.id).await?;
        if channels
            .iter()
            .any(|c| c.expiration > now + settings.renew_within)
        {
            return Ok(report);
        }
        match self.create_channel(calendar, base, settings, now).await {
            Ok(()) => report.created += 1,
            Err(e) => report.errors.push(e),
        }
        // Older channels of this calendar are replaced: stop them.
        for old in channels {
            self.stop(calendar, &old, &mut report).await?;
        }
        Ok(report)
    }

    async fn create_channel(
        &self,
        calendar: &Calendar,
        base: &str,
        settings: &ChannelSettings,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let provider = self.provider(&calendar.account).await?;
        let request = ChannelRequest {
            id: format!("calmesh-{}", random_hex(16)),
            address: format!("{}/webhooks/google", base.trim_end_matches('/')),
            token: random_hex(32),
            ttl: Some(settings.ttl),
        };
        let channel = provider
            .watch(&calendar.remote_id, &request)
            .await
            .map_err(|e| format!("watch {}: {e}", calendar.remote_id))?;
        let record = ChannelRecord {
            id: channel.id.clone(),
            calendar: calendar.id.clone(),
            provider: provider.kind().to_owned(),
            resource_id: channel.resource_id.clone(),
            expiration: channel
                .expiration
                .unwrap_or(now + chrono::Duration::seconds(3600)),
            created_at: now,
            last_message: None,
        };
        if let Err(e) = self.store().put_channel(&record, &request.token).await {
            // Not recorded: deliveries would be refused. Stop it at once.
            let _ = provider.stop_channel(&channel).await;
            return Err(format!("recording channel for {}: {e}", calendar.remote_id));
        }
        Ok(())
    }

    async fn stop(
        &self,
        calendar: &Calendar,
        record: &ChannelRecord,
        report: &mut ChannelReport,
    ) -> Result<(), StoreError> {
        if let Ok(provider) = self.provider(&calendar.account).await {
            let channel = Channel {
                id: record.id.clone(),
                resource_id: record.resource_id.clone(),
                expiration: Some(record.expiration),
            };
            match provider.stop_channel(&channel).await {
                Ok(()) | Err(ProviderError::NotFound) => report.stopped += 1,
                Err(e) => report
                    .errors
                    .push(format!("stop channel {}: {e}", record.id)),
            }
        }
        // Forgotten either way: a channel the provider still runs delivers
        // to an id we no longer know, which the webhook refuses.
        self.store().delete_channel(&record.id).await
    }

    /// Renews every channel expiring within `renew_within`: a new channel
    /// first, then the old one is stopped.
    pub async fn renew_channels(
        &self,
        settings: &ChannelSettings,
        now: DateTime<Utc>,
    ) -> Result<ChannelReport, StoreError> {
        let mut report = ChannelReport::default();
        if settings.public_url.is_none() {
            return Ok(report);
        }
        let expiring = self
            .store()
            .channels_expiring(now + settings.renew_within)
            .await?;
        let mut calendars = std::collections::BTreeSet::new();
        for channel in expiring {
            calendars.insert(channel.calendar.clone());
        }
        for id in calendars {
            let calendar = match self.store().calendar(&id).await {
                Ok(c) => c,
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let part = self.ensure_channel(&calendar, settings, now).await?;
            report.created += part.created;
            report.stopped += part.stopped;
            report.errors.extend(part.errors);
        }
        self.store().delete_expired_channels(now).await?;
        Ok(report)
    }

    /// Stops every channel of a calendar (its account or rule went away).
    pub async fn stop_channels(&self, calendar: &Calendar) -> Result<ChannelReport, StoreError> {
        let mut report = ChannelReport::default();
        for record in self.store().channels_of(&calendar.id).await? {
            self.stop(calendar, &record, &mut report).await?;
        }
        Ok(report)
    }
}

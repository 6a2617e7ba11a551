//! Settings of one emulator instance.

use std::sync::Arc;
use std::time::Duration;

use calmesh_clock::{Clock, SystemClock};

/// How repeated `privateExtendedProperty` / `sharedExtendedProperty`
/// constraints combine (providers.md A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExtendedPropertyFilter {
    /// The extended-properties guide: constraints of the same kind are
    /// OR'ed, private and shared constraints are AND'ed.
    #[default]
    Guide,
    /// The API reference: every constraint must match.
    Reference,
}

/// Settings of a [`GoogleEmulator`](super::GoogleEmulator). Every field has
/// a default (see [`EmulatorConfig::default`]); change the ones a test needs.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The OAuth client id every account's refresh token belongs to.
    pub client_id: String,
    /// The OAuth client secret that goes with `client_id`.
    pub client_secret: String,
    /// The scope reported by the token endpoint.
    pub scope: String,
    /// Lifetime of an access token (`expires_in`). Default 3600 s.
    pub access_token_lifetime: Duration,
    /// Channel lifetime when the watch request asks for none. Default 3600 s.
    pub channel_default_ttl: Duration,
    /// Longest channel lifetime granted, whatever the request asks. Default 7 days.
    pub channel_max_ttl: Duration,
    /// Sync tokens older than this answer 410 `fullSyncRequired`. Default: no limit.
    pub sync_token_max_age: Option<Duration>,
    /// `updatedMin` further back than this answers 410 `updatedMinTooLongAgo`.
    /// Default: no limit.
    pub updated_min_max_age: Option<Duration>,
    /// How repeated extended-property filters combine. Default: the guide's reading.
    pub extended_property_filter: ExtendedPropertyFilter,
    /// Whether incremental results are clipped to the `timeMin`/`timeMax`
    /// window of the full sync that produced the first token (deletions are
    /// always reported). Default `false`.
    pub clip_incremental_to_first_window: bool,
    /// How far after "now" a series without end is expanded when a request
    /// gives no `timeMax`. Default 365 days.
    pub expansion_horizon: Duration,
    /// At most this many instances of one series are produced per request.
    /// Default 5000.
    pub max_instances_per_series: usize,
    /// Retries of a push delivery answered with 500/502/503/504. Default 3.
    pub notification_retries: u32,
    /// First retry delay of a push delivery; doubles on every retry. Default 50 ms.
    pub notification_retry_delay: Duration,
    /// Seed of the random number generator behind ids and fault draws.
    /// Default: from the operating system.
    pub seed: Option<u64>,
    /// Where "now" comes from (token and channel expiry, sync-token age,
    /// `updated` times, the expansion horizon). Default: the system clock,
    /// which test builds shift by `CALMESH_TEST_CLOCK_OFFSET_SECONDS`.
    pub clock: Arc<dyn Clock>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            client_id: "calmesh-emulator.apps.googleusercontent.com".to_string(),
            client_secret: "calmesh-emulator-secret".to_string(),
            scope: "https://www.googleapis.com/auth/calendar".to_string(),
            access_token_lifetime: Duration::from_secs(3600),
            channel_default_ttl: Duration::from_secs(3600),
            channel_max_ttl: Duration::from_secs(7 * 24 * 3600),
            sync_token_max_age: None,
            updated_min_max_age: None,
            extended_property_filter: ExtendedPropertyFilter::Guide,
            clip_incremental_to_first_window: false,
            expansion_horizon: Duration::from_secs(365 * 24 * 3600),
            max_instances_per_series: 5000,
            notification_retries: 3,
            notification_retry_delay: Duration::from_millis(50),
            seed: None,
            clock: Arc::new(SystemClock),
        }
    }
}

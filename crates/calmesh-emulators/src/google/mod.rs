//! A stateful emulator of Google Calendar API v3 (providers.md A).
//!
//! Routes, all at Google's paths under one base URL:
//!
//! - `POST /token`, `GET /o/oauth2/auth`: OAuth (refresh-token grant,
//!   authorization code with PKCE);
//! - `/calendar/v3/...`: `calendarList`, `calendars.insert`/`get`,
//!   `events.list|get|insert|update|patch|delete|instances|watch`,
//!   `channels.stop`, `freeBusy`; every request needs a live bearer token;
//! - `/_emulator/...`: the control API (accounts, faults, stats, a raw view
//!   of stored events), without authentication.
//!
//! Every error of the Calendar API comes in Google's envelope. State lives
//! in memory, in one mutex; memory grows with the events stored (tombstones
//! are kept, never purged). See `docs/emulators.md` for every route, knob
//! and the choices made where Google's behaviour is undocumented.

mod calendars;
mod config;
mod control;
mod error;
mod events;
mod faults;
mod listing;
mod oauth;
mod push;
mod recurrence;
mod resource;
mod serve;
mod state;
mod tokens;

pub use config::{EmulatorConfig, ExtendedPropertyFilter};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use state::State;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::net::TcpListener;

/// A handle on one emulator instance: cheap to clone, all clones share the
/// same state.
#[derive(Clone)]
pub struct GoogleEmulator {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// The HTTP client for push deliveries, built on first use.
    http: OnceLock<Option<reqwest::Client>>,
}

impl std::fmt::Debug for GoogleEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleEmulator").finish_non_exhaustive()
    }
}

impl GoogleEmulator {
    /// A new emulator with no accounts.
    pub fn new(config: EmulatorConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(config)),
                http: OnceLock::new(),
            }),
        }
    }

    /// The whole application: the Calendar API, the OAuth endpoints and the
    /// `/_emulator` control API.
    ///
    /// Mounted with [`GoogleEmulator::serve`], the `drop_connection` fault
    /// closes the socket without a response; mounted by other means (for
    /// example `axum::serve`), it answers with a body that fails at once.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route(
                "/calendar/v3/users/me/calendarList",
                get(calendars::calendar_list),
            )
            .route(
                "/calendar/v3/users/me/calendarList/{calendarId}",
                get(calendars::calendar_list_get),
            )
            .route("/calendar/v3/calendars", post(calendars::calendar_insert))
            .route(
                "/calendar/v3/calendars/{calendarId}",
                get(calendars::calendar_get),
            )
            .route(
                "/calendar/v3/calendars/{calendarId}/events",
                get(events::list).post(events::insert),
            )
            .route(
                "/calendar/v3/calendars/{calendarId}/events/watch",
                post(push::watch),
            )
            .route(
                "/calendar/v3/calendars/{calendarId}/events/{eventId}",
                get(events::get)
                    .put(events::update)
                    .patch(events::patch)
                    .delete(events::delete),
            )
            .route(
                "/calendar/v3/calendars/{calendarId}/events/{eventId}/instances",
                get(events::instances),
            )
            .route("/calendar/v3/freeBusy", post(calendars::free_busy))
            .route("/calendar/v3/channels/stop", post(push::stop))
            .route("/token", post(oauth::token))
            .route("/o/oauth2/auth", get(oauth::authorize))
            .route("/o/oauth2/v2/auth", get(oauth::authorize))
            .route_layer(from_fn_with_state(self.clone(), faults::observe));
        let control = Router::new()
            .route(
                "/_emulator/accounts",
                get(control::list_accounts).post(control::create_account),
            )
            .route("/_emulator/accounts/{email}/revoke", post(control::revoke))
            .route(
                "/_emulator/faults",
                get(control::get_faults).post(control::set_faults),
            )
            .route("/_emulator/stats", get(control::get_stats))
            .route("/_emulator/stats/reset", post(control::reset_stats))
            .route("/_emulator/channels", get(control::list_channels))
            .route(
                "/_emulator/calendars/{calendarId}/events",
                get(control::raw_events),
            );
        api.merge(control)
            .fallback(|| async { error::ApiError::not_found().into_response() })
            .with_state(self.clone())
    }

    /// Serves [`GoogleEmulator::router`] on `listener` until the future is
    /// dropped (which also closes every open connection).
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        serve::serve(self.router(), listener).await
    }

    /// Creates an account and its primary calendar (id = `email`, zone
    /// `time_zone` or UTC), as `POST /_emulator/accounts` does, and returns
    /// a new refresh token with the client credentials.
    pub fn add_account(
        &self,
        email: &str,
        time_zone: Option<&str>,
    ) -> Result<AccountCredentials, AccountError> {
        if !email.contains('@') || email.contains(['/', ' ']) {
            return Err(AccountError(format!("{email:?} is not an e-mail address")));
        }
        self.with(|state| {
            let refresh_token = state
                .create_account(email, time_zone)
                .map_err(AccountError)?;
            Ok(AccountCredentials {
                email: email.to_string(),
                refresh_token,
                client_id: state.config.client_id.clone(),
                client_secret: state.config.client_secret.clone(),
            })
        })
    }

    /// Runs `f` with the state locked. A poisoned lock is taken over: the
    /// state is plain data and every handler leaves it consistent before
    /// anything can panic.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// A reference that does not keep the emulator alive (for background
    /// tasks, which must end when the emulator is dropped).
    fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// The emulator behind a [`GoogleEmulator::downgrade`] reference, if
    /// it still exists.
    fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
    }

    /// The client push deliveries use; `None` if it cannot be built.
    fn http_client(&self) -> Option<reqwest::Client> {
        self.inner
            .http
            .get_or_init(|| {
                // reqwest is built without a crypto provider; deliveries go
                // to plain-http receivers, but the client still wants one.
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .no_proxy()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .ok()
            })
            .clone()
    }
}

/// What a client needs to act as an emulated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountCredentials {
    /// The account's email, also the id of its primary calendar.
    pub email: String,
    /// A refresh token for `POST /token`.
    pub refresh_token: String,
    /// The emulator's OAuth client id.
    pub client_id: String,
    /// The emulator's OAuth client secret.
    pub client_secret: String,
}

/// An account that cannot be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot create the account: {0}")]
pub struct AccountError(String);

/// Binds `addr`, serves a new emulator with the default configuration in
/// the background, and returns its base URL (`http://127.0.0.1:PORT`) and
/// the task serving it (abort it to stop the emulator).
pub async fn spawn(addr: SocketAddr) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    spawn_emulator(GoogleEmulator::new(EmulatorConfig::default()), addr).await
}

/// Like [`spawn`], for an emulator built by the caller (for example with a
/// custom [`EmulatorConfig`]); keep a clone of it to look at its state.
pub async fn spawn_emulator(
    emulator: GoogleEmulator,
    addr: SocketAddr,
) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        if let Err(error) = emulator.serve(listener).await {
            tracing::error!(%error, "google emulator stopped");
        }
    });
    Ok((format!("http://{local}"), handle))
}

//! Stateful emulators of calendar providers, with fault knobs, for tests,
//! benchmarks and the demo.
//!
//! [`google`] emulates Google Calendar API v3 over real HTTP: OAuth token
//! endpoint, calendar list, events (list, get, insert, update, patch,
//! delete, instances) with sync tokens, recurrence expansion, free/busy and
//! push channels that deliver real webhook requests. A control API under
//! `/_emulator` creates accounts, injects faults and exposes counters; it is
//! documented in `docs/emulators.md`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let (base, _server) = calmesh_emulators::google::spawn("127.0.0.1:0".parse().unwrap()).await?;
//! // POST {base}/_emulator/accounts {"email": "ann@example.com"} gives a
//! // refresh token; POST {base}/token exchanges it for an access token.
//! println!("emulator at {base}");
//! # Ok(())
//! # }
//! ```
//!
//! The emulators never reach the network beyond the webhook addresses that
//! clients register, and never read the clock for anything but token
//! lifetimes and timestamps.

pub mod google;

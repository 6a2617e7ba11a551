//! Cross-module tests of calmesh-core, in one test binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod busy;
mod expand;
mod hardening;
mod hash;
mod oracle;
mod roundtrip;
mod util;

//! Cross-module tests of calmesh-core, in one test binary.

mod expand;
mod hash;
mod oracle;
mod roundtrip;
mod util;

//! The `calmesh` binary: command line, configuration and glue.

mod cli;
mod connect;
mod demo;
mod emulate;
mod ical_cmd;
mod service;
mod sync_cmd;

use std::process::ExitCode;

// Parsing allocates a few small strings per content line; mimalloc is
// markedly faster than glibc's allocator at that (see the issue note).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Logs go to stderr; RUST_LOG chooses what (default: warnings).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    if calmesh_clock::offset_ignored() {
        tracing::warn!(
            "{} is set but ignored: only test builds shift the clock",
            calmesh_clock::OFFSET_VAR
        );
    } else if let Some(offset) = calmesh_clock::test_offset() {
        tracing::info!("test clock: now is shifted by {}s", offset.num_seconds());
    }
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

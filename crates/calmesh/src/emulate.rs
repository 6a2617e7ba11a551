//! `calmesh emulate google`: runs the Google Calendar v3 emulator in the
//! foreground. The first line on stdout is its base URL.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, Result};

/// Serves until interrupted (Ctrl-C or SIGTERM).
pub async fn google(listen: SocketAddr) -> Result<()> {
    let (base, server) = calmesh_emulators::google::spawn(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    println!("{base}");
    // Whoever started us reads the first line at once.
    std::io::stdout().flush()?;
    eprintln!(
        "Google Calendar emulator at {base} (control API: {base}/_emulator, docs/emulators.md)"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = server => {}
    }
    Ok(())
}

//! Command-line definition and dispatch.

use crate::ical_cmd;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// calmesh keeps a mesh of calendars in sync.
#[derive(Debug, Parser)]
#[command(name = "calmesh", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read iCalendar files: inspect items, expand recurrences.
    #[command(subcommand)]
    Ical(IcalCommand),
}

#[derive(Debug, Subcommand)]
pub enum IcalCommand {
    /// One entry per item (UID): times, recurrence, overrides, hash; and the problems found.
    Inspect {
        /// The file to read; `-` reads standard input.
        file: PathBuf,
        /// Print JSON (shape documented in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Every instance whose start lies in [FROM, TO), sorted by start then UID.
    Expand {
        /// The file to read; `-` reads standard input.
        file: PathBuf,
        /// Window start: YYYY-MM-DD (midnight in --tz) or RFC 3339.
        #[arg(long)]
        from: String,
        /// Window end (exclusive): YYYY-MM-DD (midnight in --tz) or RFC 3339.
        #[arg(long)]
        to: String,
        /// Zone in which date bounds, floating times and all-day events are read.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// At most this many instances per item.
        #[arg(long, default_value_t = 10_000)]
        max_instances: usize,
        /// Print JSON (shape documented in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
}

/// Parses arguments and runs the command.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ical(command) => ical_cmd::run(command),
    }
}

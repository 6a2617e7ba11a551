//! Command-line definition and dispatch.

use crate::{connect, ical_cmd, sync_cmd};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

// No type here derives `Debug`: the arguments hold refresh tokens and
// client secrets, and nothing may print them.

/// calmesh keeps a mesh of calendars in sync.
#[derive(Parser)]
#[command(name = "calmesh", version, about)]
pub struct Cli {
    /// The database: `sqlite://FILE` (created when missing) or
    /// `postgres://USER@HOST/DB`.
    #[arg(
        long,
        global = true,
        env = "CALMESH_DATABASE_URL",
        default_value = "sqlite://calmesh.db"
    )]
    database: String,
    /// File holding the key that encrypts stored credentials (generated on
    /// first use; default: next to the database as `FILE.key`). The
    /// `CALMESH_SECRET_KEY` variable (64 hex digits, or base64 of 32 bytes)
    /// takes precedence.
    #[arg(long, global = true, env = "CALMESH_SECRET_KEY_FILE")]
    key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read iCalendar files: inspect items, expand recurrences.
    #[command(subcommand)]
    Ical(IcalCommand),
    /// Connected calendar accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Sync rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Pull every calendar the rules read and reconcile their blocks.
    Sync {
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only rules that include this calendar (EMAIL:CALENDAR_ID).
        #[arg(long)]
        calendar: Option<String>,
        /// Act for this user (default: `default`, the CLI's user).
        #[arg(long, default_value = sync_cmd::DEFAULT_USER)]
        user: String,
        /// Pull and print the plan; write nothing to any calendar.
        #[arg(long)]
        dry_run: bool,
        /// Print every planned write.
        #[arg(long)]
        verbose: bool,
        /// Apply a plan the mass-deletion guard held back (check it with
        /// --dry-run first) and reactivate the rule.
        #[arg(long)]
        confirm_deletes: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove exactly the blocks calmesh created in a calendar.
    Reset {
        /// EMAIL:CALENDAR_ID (`primary` allowed).
        #[arg(long)]
        calendar: String,
        /// Only the blocks of this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Print what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the HTTP server (health, readiness, metrics, push webhooks), the
    /// scheduler and workers until SIGTERM. The first line on stdout is the
    /// server's URL.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Run no workers here (API and webhook nodes; `calmesh worker`
        /// processes do the work).
        #[arg(long, conflicts_with = "workers")]
        no_workers: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run workers and the scheduler until SIGTERM: pulls calendars as they
    /// fall due, reconciles rules, runs cron schedules.
    Worker {
        #[command(flatten)]
        run: RunArgs,
    },
    /// The job queue.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Accounts and calendars with their last sync, next due time, last
    /// error and channel expiry; the queue's counts by state and its oldest
    /// pending job.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The safety-poll interval `serve` and `worker` run with, for the
        /// next due times of watched calendars.
        #[arg(long, env = "CALMESH_PUSH_SAFETY_MINUTES", default_value_t = 360)]
        push_safety_minutes: u32,
    },
    /// Show or change when the scheduler pulls the user's calendars.
    Preferences {
        /// Pull calendars on a schedule (`on`), or only by push and by hand
        /// (`off`).
        #[arg(long, value_parser = ["on", "off"])]
        auto_sync: Option<String>,
        /// Minutes between scheduled pulls of each calendar (at least 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        interval_minutes: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// See calmesh work with no credentials: `serve` on a fresh SQLite
    /// database with a Google Calendar emulator holding three people in a
    /// busy group, and their calendars changing every few seconds.
    Demo {
        /// Address calmesh listens on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Directory for the demo's database (default: a new temporary
        /// directory, kept when the demo stops). Must not hold one already.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Seconds between sample changes (0: none).
        #[arg(long, default_value_t = 15)]
        edit_seconds: u64,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run a provider emulator (for tests, benchmarks and trying calmesh).
    #[command(subcommand)]
    Emulate(EmulateCommand),
}

/// What `serve` and `worker` share: workers and the scheduler.
#[derive(clap::Args)]
struct RunArgs {
    /// Workers in this process (default: one per core, at least two).
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds between scheduler ticks.
    #[arg(long, default_value_t = 30)]
    tick_seconds: u64,
    /// Minutes between safety polls of a calendar whose push channel is
    /// live (notifications can be lost).
    #[arg(long, env = "CALMESH_PUSH_SAFETY_MINUTES", default_value_t = 360)]
    push_safety_minutes: u32,
    /// Seconds a worker's claim holds a job; renewed every third of it while
    /// the job runs. A job whose worker died is taken over after this long.
    #[arg(long, env = "CALMESH_JOB_LEASE_SECONDS", default_value_t = 60)]
    lease_seconds: u64,
}

impl RunArgs {
    fn options(&self, no_workers: bool) -> crate::service::RunOptions {
        crate::service::RunOptions {
            workers: if no_workers {
                0
            } else {
                self.workers.unwrap_or_else(crate::service::default_workers)
            },
            tick_every: std::time::Duration::from_secs(self.tick_seconds.max(1)),
            scheduler: calmesh_jobs::scheduler::SchedulerConfig {
                push_safety_interval: chrono::Duration::minutes(i64::from(
                    self.push_safety_minutes.max(1),
                )),
            },
            lease: std::time::Duration::from_secs(self.lease_seconds.max(3)),
        }
    }
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Recent jobs, newest first.
    List {
        /// Only jobs in this state: pending, running, done, dead.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a dead job back in the queue.
    Retry {
        /// Job id.
        id: String,
    },
    /// Delete dead jobs.
    Purge {
        /// Required: only dead jobs are purged.
        #[arg(long, required = true)]
        dead: bool,
    },
}

#[derive(Subcommand)]
enum EmulateCommand {
    /// Google Calendar v3 at BASE/calendar/v3, its token endpoint at BASE/token,
    /// the control API at BASE/_emulator (docs/emulators.md). Prints BASE first.
    Google {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Add an account from credentials you already hold.
    #[command(subcommand)]
    Add(AddAccount),
    /// Connect an account in the browser (OAuth with PKCE, loopback redirect).
    #[command(subcommand)]
    Connect(ConnectAccount),
    /// List accounts and their calendars.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an account: stop its push channels, forget its calendars and
    /// credentials. Refused while a rule uses one of its calendars.
    Remove {
        /// The account's email.
        email: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct GoogleEndpoints {
    /// API host (default: Google's); an emulator's base URL in tests.
    #[arg(long)]
    api_base: Option<String>,
    /// OAuth token endpoint (default: Google's).
    #[arg(long)]
    token_url: Option<String>,
}

#[derive(Subcommand)]
enum AddAccount {
    /// A Google account.
    Google {
        /// The account's email (its primary calendar's id).
        #[arg(long)]
        email: String,
        /// OAuth refresh token.
        #[arg(long, env = "CALMESH_GOOGLE_REFRESH_TOKEN", hide_env_values = true)]
        refresh_token: String,
        /// OAuth client id.
        #[arg(long, env = "CALMESH_GOOGLE_CLIENT_ID")]
        client_id: String,
        /// OAuth client secret.
        #[arg(long, env = "CALMESH_GOOGLE_CLIENT_SECRET", hide_env_values = true)]
        client_secret: String,
        #[command(flatten)]
        endpoints: GoogleEndpoints,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConnectAccount {
    /// A Google account.
    Google {
        /// OAuth client id (a "Desktop app" client).
        #[arg(long, env = "CALMESH_GOOGLE_CLIENT_ID")]
        client_id: String,
        /// OAuth client secret.
        #[arg(long, env = "CALMESH_GOOGLE_CLIENT_SECRET", hide_env_values = true)]
        client_secret: String,
        /// Suggest this account on the consent page; also skips looking the
        /// email up.
        #[arg(long)]
        email: Option<String>,
        /// Consent page (default: Google's).
        #[arg(long)]
        auth_url: Option<String>,
        #[command(flatten)]
        endpoints: GoogleEndpoints,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Add a rule.
    #[command(subcommand)]
    Add(AddRule),
    /// List rules.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule: delete the blocks it made (only those), then the
    /// rule; stop push channels no other rule needs.
    Remove {
        /// Rule name.
        name: String,
        /// Leave its blocks in the calendars (`calmesh reset` removes them
        /// later: they keep the rule's tag, and rule ids are never reused).
        #[arg(long)]
        keep_blocks: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AddRule {
    /// Every calendar gets a private block for each busy event of the others.
    Busy {
        /// Rule name (unique).
        name: String,
        /// EMAIL:CALENDAR_ID (`primary` allowed); two or more.
        #[arg(long = "calendar", required = true)]
        calendars: Vec<String>,
        /// Title of the blocks.
        #[arg(long, default_value = "Busy")]
        title: String,
        /// Block all-day events too.
        #[arg(long)]
        include_all_day: bool,
        /// Do not block tentative events.
        #[arg(long)]
        skip_tentative: bool,
        /// Days back from now to cover.
        #[arg(long, default_value_t = 1)]
        window_past_days: i64,
        /// Days ahead of now to cover.
        #[arg(long, default_value_t = 180)]
        window_future_days: i64,
        /// Also reconcile on this cron schedule (with `calmesh worker` or
        /// `serve`), e.g. "30 3 * * *".
        #[arg(long)]
        cron: Option<String>,
        /// The zone the cron pattern is read in (IANA name).
        #[arg(long, default_value = "UTC", requires = "cron")]
        cron_time_zone: String,
    },
}

#[derive(Subcommand)]
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
        command => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(run_async(cli.database, cli.key_file, command))
        }
    }
}

fn status(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn run_async(
    database: String,
    key_file: Option<PathBuf>,
    command: Command,
) -> anyhow::Result<ExitCode> {
    if let Command::Emulate(EmulateCommand::Google { listen }) = command {
        return crate::emulate::google(listen)
            .await
            .map(|()| ExitCode::SUCCESS);
    }
    match command {
        Command::Serve {
            listen,
            no_workers,
            run,
        } => {
            crate::service::serve(
                &database,
                key_file.as_deref(),
                listen,
                &run.options(no_workers),
            )
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Demo {
            listen,
            dir,
            edit_seconds,
            run,
        } => {
            crate::demo::run(
                crate::demo::DemoOptions {
                    listen,
                    dir,
                    edit_every: edit_seconds,
                    run: run.options(false),
                },
                key_file.as_deref(),
            )
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Worker { run } => {
            crate::service::worker(&database, key_file.as_deref(), &run.options(false)).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Jobs(jobs) => {
            let backend = crate::service::open(&database, key_file.as_deref()).await?;
            match jobs {
                JobsCommand::List { state, limit, json } => {
                    crate::service::jobs_list(&backend, state.as_deref(), limit, json).await?
                }
                JobsCommand::Retry { id } => crate::service::jobs_retry(&backend, &id).await?,
                JobsCommand::Purge { .. } => crate::service::jobs_purge_dead(&backend).await?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Status {
            json,
            push_safety_minutes,
        } => {
            let backend = crate::service::open(&database, key_file.as_deref()).await?;
            let safety = chrono::Duration::minutes(i64::from(push_safety_minutes.max(1)));
            crate::service::status(&backend, json, safety).await?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let store = sync_cmd::open_store(&database, key_file.as_deref()).await?;
    match command {
        Command::Ical(_)
        | Command::Emulate(_)
        | Command::Worker { .. }
        | Command::Demo { .. }
        | Command::Serve { .. }
        | Command::Jobs(_)
        | Command::Status { .. } => Ok(ExitCode::SUCCESS),
        Command::Preferences {
            auto_sync,
            interval_minutes,
            json,
        } => sync_cmd::preferences(store, auto_sync.map(|a| a == "on"), interval_minutes, json)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Accounts(AccountsCommand::Add(AddAccount::Google {
            email,
            refresh_token,
            client_id,
            client_secret,
            endpoints,
            json,
        })) => {
            let user = sync_cmd::default_user(store.as_ref()).await?;
            let account = sync_cmd::google_account(
                user,
                email,
                client_id,
                client_secret,
                refresh_token,
                endpoints.api_base,
                endpoints.token_url,
            );
            sync_cmd::add_google(store, account, json).await.map(status)
        }
        Command::Accounts(AccountsCommand::Connect(ConnectAccount::Google {
            client_id,
            client_secret,
            email,
            auth_url,
            endpoints,
        })) => {
            sync_cmd::check_urls(
                endpoints.api_base.as_deref(),
                endpoints.token_url.as_deref(),
            )?;
            let auth_url = auth_url.unwrap_or_else(|| calmesh_google::DEFAULT_AUTH_URL.to_owned());
            let token_url = endpoints
                .token_url
                .clone()
                .unwrap_or_else(|| calmesh_google::DEFAULT_TOKEN_URL.to_owned());
            let granted = connect::loopback_flow(
                &auth_url,
                &token_url,
                &client_id,
                &client_secret,
                calmesh_google::SCOPE,
                email.as_deref(),
                |url| {
                    println!("Open this URL in a browser and allow calmesh access:\n{url}");
                },
            )
            .await?;
            let api_base = endpoints
                .api_base
                .clone()
                .unwrap_or_else(|| calmesh_google::DEFAULT_API_BASE.to_owned());
            let email = match email {
                Some(e) => e,
                None => connect::primary_email(&api_base, &granted.access_token).await?,
            };
            let user = sync_cmd::default_user(store.as_ref()).await?;
            let account = sync_cmd::google_account(
                user,
                email,
                client_id,
                client_secret,
                granted.refresh_token,
                endpoints.api_base,
                endpoints.token_url,
            );
            sync_cmd::add_google(store, account, false)
                .await
                .map(status)
        }
        Command::Accounts(AccountsCommand::List { json }) => sync_cmd::list_accounts(store, json)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Rules(RulesCommand::Add(AddRule::Busy {
            name,
            calendars,
            title,
            include_all_day,
            skip_tentative,
            window_past_days,
            window_future_days,
            cron,
            cron_time_zone,
        })) => {
            if let Some(pattern) = &cron {
                calmesh_jobs::schedule::CronSchedule::parse(pattern, &cron_time_zone)?;
            }
            let config = calmesh_sync::BusyConfig {
                title,
                include_all_day,
                include_tentative: !skip_tentative,
                window_past_days,
                window_future_days,
                schedule: cron.map(|cron| calmesh_sync::RuleSchedule {
                    cron,
                    time_zone: cron_time_zone,
                }),
                ..calmesh_sync::BusyConfig::new(Vec::new())
            };
            sync_cmd::add_busy_rule(store, &name, &calendars, config)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Rules(RulesCommand::List { json }) => sync_cmd::list_rules(store, json)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Rules(RulesCommand::Remove {
            name,
            keep_blocks,
            json,
        }) => sync_cmd::remove_rule(store, &name, keep_blocks, json)
            .await
            .map(status),
        Command::Accounts(AccountsCommand::Remove { email, json }) => {
            sync_cmd::remove_account(store, &email, json)
                .await
                .map(status)
        }
        Command::Sync {
            rule,
            calendar,
            user,
            dry_run,
            verbose,
            confirm_deletes,
            json,
        } => {
            let calendar = match calendar {
                Some(spec) => Some(sync_cmd::resolve_calendar(store.clone(), &spec).await?.id),
                None => None,
            };
            let request = calmesh_sync::SyncRequest {
                rule,
                dry_run,
                confirm_deletes,
                verbose,
                calendar,
                ..calmesh_sync::SyncRequest::default()
            };
            sync_cmd::sync(store, &user, request, json)
                .await
                .map(status)
        }
        Command::Reset {
            calendar,
            rule,
            dry_run,
            json,
        } => sync_cmd::reset(store, &calendar, rule.as_deref(), dry_run, json)
            .await
            .map(status),
    }
}

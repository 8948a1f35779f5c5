//! The `dropship` command: parses the CLI and hands over to the library.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage, 3 the
//! journal needs a person (damaged, or deleted under the running daemon); the
//! systemd unit does not restart on 2 or 3. `push` exits 1 when a file was not
//! delivered and 130 when interrupted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use dropship::config::{self, Config, ConfigError};
use dropship::journal::{Journal, JournalError, RetrySelector};
use dropship::{daemon, status};

#[derive(Parser)]
#[command(
    name = "dropship",
    version,
    about = "Resumable background upload daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ConfigArg {
    /// Config file [default: ./dropship.toml, then /etc/dropship/dropship.toml]
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Run(ConfigArg),
    /// Show what the journal holds (works while the daemon runs).
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Finished files to list in the table.
        #[arg(long, default_value_t = 20)]
        recent: usize,
    },
    /// Check a config file and exit.
    CheckConfig(ConfigArg),
    /// Re-queue failed files.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        /// The file's id (see `status`).
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        id: Option<i64>,
        /// Every failed file.
        #[arg(long)]
        all_failed: bool,
    },
    /// Upload files once through the journal; exit 0 only when all are verified.
    Push {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        args: dropship::push::PushArgs,
    },
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure { code: 1, error }
    }
}

fn config_failure(e: ConfigError) -> Failure {
    Failure {
        code: 2,
        error: e.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("dropship: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn load(arg: &ConfigArg) -> Result<Config, Failure> {
    let path = config::locate(arg.config.as_deref()).map_err(config_failure)?;
    config::load(&path).map_err(config_failure)
}

fn dispatch(cmd: Command) -> Result<(), Failure> {
    match cmd {
        Command::Run(arg) => run(load(&arg)?),
        Command::Status {
            config,
            json,
            recent,
        } => show_status(&load(&config)?, json, recent),
        Command::CheckConfig(arg) => check_config(&load(&arg)?),
        Command::Retry {
            config,
            id,
            all_failed,
        } => retry(&load(&config)?, id, all_failed),
        Command::Push { config, args } => push(load(&config)?, args),
    }
}

/// `dropship push`: 0 only when every file is delivered, 1 otherwise, 130 when
/// interrupted (see `dropship::push`). Logs only with DROPSHIP_LOG: on a terminal
/// they would tear the progress bars.
fn push(cfg: Config, args: dropship::push::PushArgs) -> Result<(), Failure> {
    if std::env::var_os("DROPSHIP_LOG").is_some() {
        init_logging("")?;
    }
    let report = dropship::push::run_blocking(cfg, args).map_err(|e| Failure {
        code: e.exit_code(),
        error: e.into(),
    })?;
    match report.exit_code() {
        0 => Ok(()),
        code => Err(Failure {
            code,
            error: anyhow::anyhow!(report.summary()),
        }),
    }
}

fn check_config(cfg: &Config) -> Result<(), Failure> {
    println!("{}: ok", cfg.source.display());
    println!("  watch     {}", cfg.watch.path.display());
    println!("  journal   {}", cfg.journal.path.display());
    println!("  backend   {}", cfg.backend.kind());
    // Problems of this machine, not of the file: `run` refuses to start on them.
    for p in cfg.check_environment() {
        println!("  warning: {}:{p}", cfg.source.display());
    }
    Ok(())
}

fn init_logging(filter: &str) -> Result<(), Failure> {
    use tracing_subscriber::prelude::*;
    let spec = std::env::var("DROPSHIP_LOG").unwrap_or_else(|_| filter.to_string());
    let targets: tracing_subscriber::filter::Targets = spec
        .parse()
        .with_context(|| format!("bad log filter {spec:?} (daemon.log or DROPSHIP_LOG)"))
        .map_err(|error| Failure { code: 2, error })?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colours only for a person at a terminal, not for journald.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .with(targets)
        .init();
    Ok(())
}

fn run(cfg: Config) -> Result<(), Failure> {
    let problems = cfg.check_environment();
    if !problems.is_empty() {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("{}:{p}", cfg.source.display()))
            .collect();
        return Err(Failure {
            code: 2,
            error: anyhow::anyhow!(lines.join("\n")),
        });
    }
    init_logging(&cfg.daemon.log)?;
    let stop = daemon::termination_signal().context("installing signal handlers")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Small devices: two runtime threads are plenty; blocking work (SQLite,
        // hashing, file I/O) has its own pool.
        .worker_threads(2)
        .thread_name("dropship")
        .build()
        .context("starting the runtime")?;
    if let Err(e) = rt.block_on(daemon::run(cfg, stop)) {
        return Err(Failure {
            code: if e.needs_a_person() { 3 } else { 1 },
            error: anyhow::Error::from(e).context("the daemon stopped"),
        });
    }
    // Do not wait for blocking tasks (a part write cut off by the deadline).
    rt.shutdown_background();
    Ok(())
}

fn open_read_only(path: &Path) -> Result<Option<Journal>, Failure> {
    if !path.exists() {
        return Ok(None);
    }
    match Journal::open_read_only(path) {
        Ok(j) => Ok(Some(j)),
        // Created a moment ago by a daemon that is still applying the schema.
        Err(JournalError::NeedsUpgrade { found: 0, .. }) => Ok(None),
        Err(e @ (JournalError::TooNew { .. } | JournalError::NeedsUpgrade { .. })) => {
            Err(Failure {
                code: 1,
                error: e.into(),
            })
        }
        Err(e) => Err(anyhow::Error::from(e).into()),
    }
}

fn show_status(cfg: &Config, json: bool, recent: usize) -> Result<(), Failure> {
    let running = daemon::is_running(cfg);
    let report = match open_read_only(&cfg.journal.path)? {
        Some(j) => j.status().context("reading the journal")?,
        None => dropship::journal::StatusReport::empty(),
    };
    let disk = status::JournalDisk::of(&cfg.journal.path);
    if json {
        let out = status::StatusJson {
            daemon_running: running,
            journal: cfg.journal.path.display().to_string(),
            journal_disk: disk,
            report: &report,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("encoding JSON")?
        );
    } else {
        print!("{}", status::table(&report, running, disk, recent));
    }
    Ok(())
}

fn retry(cfg: &Config, id: Option<i64>, all_failed: bool) -> Result<(), Failure> {
    let which = match (id, all_failed) {
        (Some(id), false) => RetrySelector::One(id),
        _ => RetrySelector::AllFailed,
    };
    let mut j = Journal::open(&cfg.journal.path).context("opening the journal")?;
    let ids = j.retry(which).context("re-queueing")?;
    match ids.len() {
        0 => println!("nothing to retry"),
        n => println!(
            "re-queued {n} file(s): {}",
            ids.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    Ok(())
}

//! The `dropship` command: parses the CLI and hands over to the library.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage, 3 the
//! journal needs a person (damaged, or deleted under the running daemon); the
//! systemd unit does not restart on 2 or 3. `push` exits 1 when a file was not
//! delivered and 130 when interrupted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand};

use dropship::config::{self, Config, ConfigError, LogFormat};
use dropship::journal::{Journal, JournalError, RetrySelector, StatusQuery};
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
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Log lines for people (text) or one JSON object per line (json)
        /// [default: daemon.log_format, else text]
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// Show what the journal holds (works while the daemon runs).
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Machine-readable output (with --watch: one compact document per line).
        #[arg(long)]
        json: bool,
        /// The most recent finished files to list.
        #[arg(long, default_value_t = 20)]
        recent: usize,
        /// Unfinished and failed files to list, oldest first.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// List every file of the journal (slow on big journals).
        #[arg(long, conflicts_with_all = ["recent", "limit"])]
        all: bool,
        /// Refresh every INTERVAL (default 2s) until interrupted.
        #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s")]
        watch: Option<String>,
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
    /// Remove finished files (done, failed, superseded) from the journal. A
    /// forgotten file still in the outbox is recorded and sent again, as new, at
    /// the next scan (delete it first to drop it for good).
    Forget {
        #[command(flatten)]
        config: ConfigArg,
        /// The files' ids (see `status`).
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        ids: Vec<i64>,
        /// Every failed file.
        #[arg(long)]
        all_failed: bool,
    },
    /// Print shell completions to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man {
        /// Write dropship.1 and one dropship-<verb>.1 per verb into DIR instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Upload files once through the journal; exit 0 only when all are verified.
    Push {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        args: dropship::push::PushArgs,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
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
    two_malloc_arenas();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("dropship: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// glibc gives each thread that allocates its own heap (up to 8 per core), and a
/// heap keeps what was freed in it. The daemon's blocking threads (reads, hashing,
/// journal, post-actions) come and go: with a 4 GiB file and 1,000 small ones
/// queued, the peak was 61.6 MiB with the default and 55.3 MiB with two heaps
/// (`cargo bench --bench perf -- memory`). What sharing two heaps costs in CPU was
/// not measured apart; part buffers, the big allocations, are pooled anyway
/// (`engine/buffers.rs`).
fn two_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn load(arg: &ConfigArg) -> Result<Config, Failure> {
    let path = config::locate(arg.config.as_deref()).map_err(config_failure)?;
    config::load(&path).map_err(config_failure)
}

fn dispatch(cmd: Command) -> Result<(), Failure> {
    match cmd {
        Command::Run { config, log_format } => {
            let mut cfg = load(&config)?;
            match log_format {
                Some(LogFormatArg::Text) => cfg.daemon.log_format = LogFormat::Text,
                Some(LogFormatArg::Json) => cfg.daemon.log_format = LogFormat::Json,
                None => {}
            }
            run(cfg)
        }
        Command::Status {
            config,
            json,
            recent,
            limit,
            all,
            watch,
        } => {
            let query = StatusQuery {
                all,
                limit,
                recent_done: recent,
            };
            let cfg = load(&config)?;
            match watch {
                None => show_status(&cfg, json, &query),
                Some(every) => watch_status(&cfg, json, &query, &every),
            }
        }
        Command::CheckConfig(arg) => check_config(&load(&arg)?),
        Command::Retry {
            config,
            id,
            all_failed,
        } => retry(&load(&config)?, id, all_failed),
        Command::Forget {
            config,
            ids,
            all_failed,
        } => forget(&load(&config)?, ids, all_failed),
        Command::Completions { shell } => docs(Some(shell), None),
        Command::Man { out_dir } => docs(None, out_dir.as_deref()),
        Command::Push { config, args } => push(load(&config)?, args),
    }
}

/// `dropship push`: 0 only when every file is delivered, 1 otherwise, 130 when
/// interrupted (see `dropship::push`). Logs only with DROPSHIP_LOG: on a terminal
/// they would tear the progress bars.
fn push(cfg: Config, args: dropship::push::PushArgs) -> Result<(), Failure> {
    if std::env::var_os("DROPSHIP_LOG").is_some() {
        init_logging("", LogFormat::Text)?;
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

/// Completions (`shell`) or man pages, generated from the definitions above, so a
/// new verb or flag is documented without more work (tests/packaging.rs checks).
/// dropship.1 also gets the text of `MAN_PAGE`; `help` gets no page.
fn docs(shell: Option<clap_complete::Shell>, out_dir: Option<&Path>) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = Vec::new();
    if let Some(shell) = shell {
        clap_complete::generate(shell, &mut Cli::command(), "dropship", &mut out);
    } else {
        let (about, extra) = MAN_PAGE.split_once(".SH").expect("MAN_PAGE has sections");
        let cmd = Cli::command().disable_help_subcommand(true);
        let top = clap_mangen::Man::new(cmd.clone().long_about(about.trim()));
        top.render(&mut out).context("rendering")?;
        out.extend_from_slice(format!(".SH{extra}").as_bytes());
        if let Some(dir) = out_dir {
            std::fs::create_dir_all(dir).context("creating the folder")?;
            clap_mangen::generate_to(cmd, dir).context("writing the pages")?;
            std::fs::write(dir.join("dropship.1"), std::mem::take(&mut out))
                .context("writing dropship.1")?;
        }
    }
    // Written in one go, so a closed pipe (`| head`) is an error, not a panic.
    Ok(std::io::stdout()
        .write_all(&out)
        .context("writing to stdout")?)
}

/// The description of dropship.1 (up to the first `.SH`), then roff sections
/// appended after the generated ones.
const MAN_PAGE: &str = r#"
dropship watches a folder and uploads every finished file to the configured backend
in parts, recording each part in a SQLite journal, so that an upload resumes after a
crash, a power cut or a lost link without sending again what the service holds.
A file counts as delivered only once the stored copy is verified; only then is it
deleted or moved, if the configuration says so. Run it with systemd (dropship.service).
.SH FILES
.TP
/etc/dropship/dropship.toml
The configuration, read when \fB\-\-config\fR is not given and ./dropship.toml does not exist.
.TP
/var/spool/dropship/outbox
The watched folder of the default configuration (group dropship may write).
.TP
/var/lib/dropship/journal.db
The journal of the default configuration.
.SH "EXIT STATUS"
0 success, 1 runtime failure, 2 bad configuration or usage, 3 the journal needs a
person (damaged, or deleted under the running daemon). The systemd unit does not
restart on 2 or 3.
.SH "SEE ALSO"
systemctl(1), journalctl(1), /usr/share/doc/dropship/README.md
"#;

fn check_config(cfg: &Config) -> Result<(), Failure> {
    println!("{}: ok", cfg.source.display());
    println!("  watch     {}", cfg.watch.path.display());
    println!("  journal   {}", cfg.journal.path.display());
    println!("  backend   {}", cfg.backend.kind());
    // Problems of this machine, not of the file: `run` refuses to start on them.
    for p in cfg.check_environment().into_iter().chain(cfg.warnings()) {
        println!("  warning: {}:{p}", cfg.source.display());
    }
    Ok(())
}

fn init_logging(filter: &str, format: LogFormat) -> Result<(), Failure> {
    dropship::logging::init(filter, format).map_err(|e| Failure {
        code: 2,
        error: anyhow::anyhow!(e),
    })
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
    init_logging(&cfg.daemon.log, cfg.daemon.log_format)?;
    let stop = daemon::termination_signal().context("installing signal handlers")?;
    let reloads = daemon::reload_signal().context("installing signal handlers")?;
    let rt = daemon::runtime(&cfg, "dropship").context("starting the runtime")?;
    if let Err(e) = rt.block_on(daemon::run(cfg, stop, reloads)) {
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

fn show_status(cfg: &Config, json: bool, query: &StatusQuery) -> Result<(), Failure> {
    print!("{}", render_status(cfg, json, query, true)?);
    Ok(())
}

/// `status --watch`: the table redrawn in place at a terminal, or one document
/// after another (JSON: one per line) for a pipe, until interrupted.
fn watch_status(cfg: &Config, json: bool, query: &StatusQuery, every: &str) -> Result<(), Failure> {
    let every = dropship::units::parse_duration(every)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Failure {
            code: 2,
            error: anyhow::anyhow!("--watch: {every:?} is not a duration such as 2s or 500ms"),
        })?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let text = render_status(cfg, json, query, !json)?;
        if terminal && !json {
            // Home and clear: the table replaces the last one.
            print!("\x1b[H\x1b[2J");
        }
        print!("{text}");
        std::io::Write::flush(&mut std::io::stdout()).context("writing to stdout")?;
        std::thread::sleep(every);
    }
}

fn render_status(
    cfg: &Config,
    json: bool,
    query: &StatusQuery,
    pretty: bool,
) -> Result<String, Failure> {
    let running = daemon::is_running(cfg);
    let report = match open_read_only(&cfg.journal.path)? {
        Some(j) => j.status_with(query).context("reading the journal")?,
        None => dropship::journal::StatusReport::empty(),
    };
    let disk = status::JournalDisk::of(&cfg.journal.path);
    if !json {
        return Ok(status::table(&report, running, disk));
    }
    let out = status::StatusJson {
        daemon_running: running,
        journal: cfg.journal.path.display().to_string(),
        journal_disk: disk,
        report: &report,
    };
    let text = if pretty {
        serde_json::to_string_pretty(&out)
    } else {
        serde_json::to_string(&out)
    };
    Ok(text.context("encoding JSON")? + "\n")
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

fn forget(cfg: &Config, ids: Vec<i64>, all_failed: bool) -> Result<(), Failure> {
    use dropship::journal::Forgot;
    if !cfg.journal.path.exists() {
        return Err(anyhow::anyhow!("no journal at {}", cfg.journal.path.display()).into());
    }
    let mut j = Journal::open(&cfg.journal.path).context("opening the journal")?;
    let ids = if all_failed {
        j.failed_ids().context("reading the journal")?
    } else {
        ids
    };
    let outcome = j.forget(&ids).context("forgetting")?;
    let mut refused = 0;
    for o in &outcome {
        match o {
            Forgot::Removed(id) => println!("forgot {id}"),
            Forgot::Unknown(id) => {
                refused += 1;
                eprintln!("dropship: no file {id} in the journal");
            }
            Forgot::Refused { id, state } => {
                refused += 1;
                eprintln!("dropship: file {id} is {state}: only finished files can be forgotten");
            }
        }
    }
    if outcome.is_empty() {
        println!("nothing to forget");
    }
    if refused > 0 {
        return Err(anyhow::anyhow!("{refused} file(s) not forgotten").into());
    }
    Ok(())
}

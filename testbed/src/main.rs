//! The `dropship-testbed` binary: parses flags, starts the server, prints the
//! address, runs until Ctrl-C / SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dropship_testbed::{DEFAULT_SECRET, Options, S3Upstream, Settings, SettingsPatch, Testbed};

/// Loopback emulators of dropship's vendor upload APIs (Box at /box, Insights Hub at
/// /insights-hub, Exosite at /exosite, Edgio at /edgio), with fault injection, and a
/// fault-injecting proxy to a real S3 server at /s3.
/// Control endpoints: /_testbed/{stats,faults,secret,objects}.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Address to listen on (loopback only); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8900")]
    listen: SocketAddr,
    /// Store directory; default: a new temp dir, kept after exit.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Credential the emulators accept (Box, Insights Hub: bearer token; Exosite: the
    /// device token).
    #[arg(long, default_value = DEFAULT_SECRET)]
    secret: String,
    /// The S3 server (`http://127.0.0.1:PORT`, loopback only) behind the fault
    /// proxy at /s3: clients sign for `http://ADDR/s3` with --s3-access-key and the
    /// testbed's secret; the proxy signs again for the upstream.
    #[arg(long, value_name = "URL")]
    s3_upstream: Option<String>,
    /// The access key id of the upstream, which clients of /s3 present too.
    #[arg(long, default_value = "testbed")]
    s3_access_key: String,
    /// The upstream's secret key (the proxy signs with it).
    #[arg(long, default_value = DEFAULT_SECRET)]
    s3_upstream_secret: String,
    #[command(flatten)]
    faults: SettingsPatch,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let mut settings = Settings::default();
    if let Err(e) = settings.apply(&cli.faults) {
        eprintln!("dropship-testbed: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dropship-testbed: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dropship-testbed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, settings: Settings) -> std::io::Result<()> {
    let store = match cli.store {
        Some(dir) => dir,
        None => tempfile::Builder::new()
            .prefix("dropship-testbed-")
            .tempdir()?
            .keep(),
    };
    let testbed = Testbed::start(Options {
        listen: cli.listen,
        store,
        secret: cli.secret,
        settings,
        s3_upstream: cli.s3_upstream.map(|url| S3Upstream {
            url,
            access_key: cli.s3_access_key,
            secret_key: cli.s3_upstream_secret,
        }),
    })
    .await?;
    // Scripts read this first line to learn the port: keep its shape exactly.
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{}", testbed.addr())?;
    out.flush()?;
    drop(out);
    wait_for_signal().await;
    tracing::info!("stopping");
    testbed.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

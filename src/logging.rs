//! The daemon's log: stderr (journald adds the time and the unit), as text or one
//! JSON object per line, filtered by `DROPSHIP_LOG`, else `RUST_LOG`, else
//! `daemon.log`. The filter can be changed while running (a reload), unless an
//! environment variable set it: the variable is the operator's explicit choice.

use std::sync::OnceLock;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{Registry, reload};

use crate::config::LogFormat;

/// What set the filter: an environment variable wins over the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSource {
    Env(&'static str),
    Config,
}

static FILTER: OnceLock<(reload::Handle<Targets, Registry>, FilterSource)> = OnceLock::new();

/// The filter spec in force and where it came from.
fn chosen(config_filter: &str) -> (String, FilterSource) {
    for var in ["DROPSHIP_LOG", "RUST_LOG"] {
        if let Ok(s) = std::env::var(var) {
            return (s, FilterSource::Env(var));
        }
    }
    (config_filter.to_string(), FilterSource::Config)
}

fn parse(spec: &str, source: FilterSource) -> Result<Targets, String> {
    spec.parse().map_err(|e| {
        let from = match source {
            FilterSource::Env(var) => var,
            FilterSource::Config => "daemon.log",
        };
        format!("bad log filter {spec:?} ({from}): {e}")
    })
}

/// Installs the process's subscriber. An error names the filter and where it
/// came from.
pub fn init(config_filter: &str, format: LogFormat) -> Result<(), String> {
    let (spec, source) = chosen(config_filter);
    let targets = parse(&spec, source)?;
    let (filter, handle) = reload::Layer::new(targets);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let layer = match format {
        // Colours only for a person at a terminal, not for journald.
        LogFormat::Text => layer
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        // One object per line, with the file's span (`id`, `key`) as fields.
        LogFormat::Json => layer.json().with_current_span(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    let _ = FILTER.set((handle, source));
    Ok(())
}

/// What a reload did with `daemon.log`.
#[derive(Debug, PartialEq, Eq)]
pub enum FilterChange {
    Applied,
    /// An environment variable set the filter; the config's is not used.
    KeptFromEnv(&'static str),
}

/// Applies a new `daemon.log` (a reload). A bad filter is refused before anything
/// changes.
pub fn set_config_filter(spec: &str) -> Result<FilterChange, String> {
    let Some((handle, source)) = FILTER.get() else {
        return Ok(FilterChange::Applied);
    };
    if let FilterSource::Env(var) = source {
        return Ok(FilterChange::KeptFromEnv(var));
    }
    let targets = parse(spec, FilterSource::Config)?;
    handle
        .reload(targets)
        .map(|()| FilterChange::Applied)
        .map_err(|e| format!("cannot change the log filter: {e}"))
}

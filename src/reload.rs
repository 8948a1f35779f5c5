//! SIGHUP: the config file and every credential source read again, while running.
//!
//! What can change live does: `upload.bandwidth_limit`, `upload.workers`,
//! `watch.ignore` and `daemon.log` (the filter). Every other change is reported as
//! needing a restart and is not applied: the running daemon keeps the value it
//! started with, so that what it does always matches one consistent config. A new
//! file that does not load (a syntax error, a bad value, a folder that does not
//! exist) is refused whole, with the same message `check-config` gives, and the
//! running config stays.

use std::sync::Arc;

use tracing::{error, info, warn};

use crate::config::{self, Config};

/// One setting as the reload compares it: its key, whether it applies live, and
/// its value as text (compared, never logged: a value may be a path a person
/// would rather not see in a log, and only the key matters to them).
fn settings(c: &Config) -> Vec<(&'static str, bool, String)> {
    let d = |v: &dyn std::fmt::Debug| format!("{v:?}");
    let u = &c.upload;
    vec![
        ("upload.bandwidth_limit", true, d(&u.bandwidth_limit)),
        ("upload.workers", true, d(&u.workers)),
        (
            "watch.ignore",
            true,
            d(&c.watch
                .ignore
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()),
        ),
        ("daemon.log", true, d(&c.daemon.log)),
        ("watch.path", false, d(&c.watch.path)),
        ("watch.settle", false, d(&c.watch.settle)),
        ("watch.rescan", false, d(&c.watch.rescan)),
        ("journal.path", false, d(&c.journal.path)),
        ("journal.keep_done", false, d(&c.journal.keep_done)),
        ("upload.parts_in_flight", false, d(&u.parts_in_flight)),
        ("upload.part_size", false, d(&u.part_size)),
        ("upload.after", false, d(&u.after)),
        ("upload.retry_base", false, d(&u.retry_base)),
        ("upload.retry_max", false, d(&u.retry_max)),
        ("upload.verify_attempts", false, d(&u.verify_attempts)),
        ("upload.stall_timeout", false, d(&u.timeouts.stall)),
        ("upload.answer_timeout", false, d(&u.timeouts.answer)),
        ("upload.verify", false, d(&u.verify)),
        ("upload.verify_samples", false, d(&u.verify_samples)),
        ("upload.keep_for", false, d(&u.keep_for)),
        ("upload.outbox_max", false, d(&u.outbox_max)),
        ("upload.on_exists", false, d(&u.on_exists)),
        ("upload.key", false, d(&u.key.source())),
        ("upload.compress", false, d(&u.compress)),
        ("upload.spool", false, d(&u.spool)),
        ("upload.spool_max", false, d(&u.spool_max)),
        ("upload.content_type", false, d(&u.content_type)),
        ("rule", false, d(&c.rules)),
        (
            "daemon.shutdown_timeout",
            false,
            d(&c.daemon.shutdown_timeout),
        ),
        ("daemon.log_format", false, d(&c.daemon.log_format)),
        ("daemon.stuck_after", false, d(&c.daemon.stuck_after)),
        ("metrics", false, d(&c.metrics)),
        ("backend", false, d(&c.backend)),
    ]
}

/// What differs between the running config and a new one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub live: Vec<&'static str>,
    pub need_restart: Vec<&'static str>,
}

pub fn changes(running: &Config, new: &Config) -> Changes {
    let mut out = Changes::default();
    for ((key, live, old), (_, _, new)) in settings(running).into_iter().zip(settings(new)) {
        if old != new {
            if live {
                out.live.push(key);
            } else {
                out.need_restart.push(key);
            }
        }
    }
    out
}

/// The running config with the live settings of `new`: what the daemon runs by
/// after the reload, and what the next reload compares against.
fn merged(running: &Config, new: &Config) -> Config {
    let mut m = running.clone();
    m.upload.bandwidth_limit = new.upload.bandwidth_limit;
    m.upload.workers = new.upload.workers;
    m.watch.ignore = new.watch.ignore.clone();
    m.daemon.log = new.daemon.log.clone();
    m
}

/// Where a reload's live settings go.
pub struct Targets {
    pub engine: crate::engine::EngineControl,
    /// The watcher's config (it reads `watch.ignore` from it).
    pub watcher: tokio::sync::watch::Sender<Arc<Config>>,
    pub backend: Arc<dyn crate::backend::Backend>,
}

/// Reads the file `running` came from again and applies what can be applied.
/// Returns the config now in force.
pub async fn reload(running: Arc<Config>, to: &Targets) -> Arc<Config> {
    let path = running.source.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let new = config::load(&path).map_err(|e| e.to_string())?;
        let problems = new.check_environment();
        if problems.is_empty() {
            Ok(new)
        } else {
            Err(problems
                .iter()
                .map(|p| format!("{}:{p}", new.source.display()))
                .collect::<Vec<_>>()
                .join("; "))
        }
    })
    .await
    .unwrap_or_else(|e| Err(format!("reading the config failed: {e}")));
    let new = match loaded {
        Ok(new) => new,
        Err(why) => {
            error!(error = %why, "reload refused: the new config does not load; the running one stays");
            return running;
        }
    };
    // The log filter first: a bad one refuses the reload before anything changed.
    let filter = if new.daemon.log != running.daemon.log {
        match crate::logging::set_config_filter(&new.daemon.log) {
            Ok(f) => Some(f),
            Err(why) => {
                error!(error = %why, "reload refused; the running config stays");
                return running;
            }
        }
    } else {
        None
    };
    let change = changes(&running, &new);
    to.engine.set_bandwidth_limit(new.upload.bandwidth_limit);
    to.engine.set_workers(new.upload.workers);
    let now = Arc::new(merged(&running, &new));
    if change.live.contains(&"watch.ignore") {
        let _ = to.watcher.send(now.clone());
    }
    if let Some(crate::logging::FilterChange::KeptFromEnv(var)) = filter {
        warn!(
            variable = var,
            "daemon.log changed, but {var} sets the log filter; it stays"
        );
    }
    // Credentials are re-read whatever the file says: a rotated token. A source
    // that cannot be read keeps the credential in use.
    let fresh = match to.backend.reread_credentials().await {
        Ok(fresh) => fresh,
        Err(e) => {
            warn!(error = %e, "reload: the credentials could not be read again; the ones in use stay");
            false
        }
    };
    if !change.need_restart.is_empty() {
        warn!(
            keys = change.need_restart.join(", "),
            "reload: these settings changed but apply only after a restart"
        );
    }
    info!(
        applied = change.live.join(", "),
        needs_restart = change.need_restart.join(", "),
        new_credentials = fresh,
        "configuration reloaded"
    );
    now
}

//! dropship: a resumable background upload daemon for edge devices.
//!
//! A file's way through the daemon, one module each:
//!
//! - [`watch`] notices finished files in the watched folder (inotify events plus
//!   scans) and records each content once in the [`journal`].
//! - [`journal`] is the SQLite record of every file and every part: the only code
//!   that speaks SQL, and the reason a crash at any moment loses nothing.
//! - [`engine`] claims files, reads each byte once ([`digest`]), sends the parts the
//!   server lacks through a [`backend`], completes, verifies the stored object
//!   ([`verify`]: size, the service's digest, or ranges read back), then runs the
//!   post-action.
//! - [`backend`] is the seam to a storage service: one trait, capabilities as data.
//! - [`daemon`] wires these together and shuts them down on SIGTERM.
//! - [`push`] uploads given files once (`dropship push`), through the same journal
//!   and engine.
//! - [`config`] turns the TOML file into a validated [`config::Config`].
//! - [`metrics`] counts what the engine does and serves it, with the journal's
//!   gauges, to Prometheus (`[metrics] listen`).

pub mod backend;
pub mod compress;
pub mod config;
pub mod confine;
pub mod daemon;
pub mod digest;
pub mod disk;
pub mod engine;
pub mod housekeeping;
pub mod identity;
pub mod journal;
pub mod keys;
pub mod liveness;
pub mod logging;
pub mod metrics;
pub mod push;
pub mod reload;
pub mod retention;
pub mod secret;
pub mod status;
pub mod throttle;
pub mod units;
pub mod verify;
pub mod watch;
pub mod writers;

#[cfg(test)]
mod props;

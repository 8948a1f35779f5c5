//! dropship-testbed: loopback emulators of dropship's vendor upload APIs, with fault
//! injection, for tests and benchmarks. Listens on 127.0.0.1 only.
//!
//! Components, top down:
//! - [`Testbed`] (this file): starts the server in-process and exposes its counters,
//!   settings, secret and stored objects to tests.
//! - `server`: the accept loop; one hyper connection per task, each with the switches
//!   used by the reset fault (drop the connection) and the stall fault (drop the
//!   request, hold the socket open unread).
//! - `app`: the state shared by every emulator and the router that mounts each
//!   emulator under `/<name>` and the control endpoints under `/_testbed`.
//! - `faults`: the knobs ([`Settings`]) and the layer that applies the generic faults
//!   (503, 429, latency, throttle, reset, stall) in front of every emulator.
//! - `stats`: request, byte and fault counters ([`Stats`]).
//! - `store`: objects and session parts on disk, hashed while streaming
//!   ([`ObjectInfo`]).
//! - `box_api`: the Box upload-session emulator (protocols/box.md), mounted at `/box`.
//! - `insights_hub`: the Insights Hub IoT File Service v3 emulator
//!   (protocols/insights-hub.md), mounted at `/insights-hub`: single and multi-part
//!   upload with integer etags and `If-Match`, `fileslist`, search, ranged download,
//!   the gateway's 502 timeout and the expiry of unfinished parts. Its unconfirmed rules
//!   are switchable (`ih_*` knobs in [`Settings`]).
//! - `exosite`: the Exosite device content-upload emulator (protocols/exosite.md),
//!   mounted at `/exosite`: the seed's upload in parts (`POST /onep:v1/content/`, then
//!   in-order `PATCH` ranges with `Content-Range` and a base64 `MD5` header), the single
//!   upload, and list, info and ranged download in both the `/onep:v1/content` and the
//!   older `/provision/download` shapes; 502/504 bursts. Most of its rules are assumed,
//!   and each assumed rule is switchable (`exosite_*` knobs in [`Settings`]).
//! - `edgio`: the Edgio (Limelight) Origin Storage emulator (protocols/edgio.md), mounted
//!   at `/edgio`: HTTP and JSON-RPC login with expiring tokens, `/post/raw`,
//!   `/post/file`, `/post/directory`, multipart create/piece/complete with an
//!   asynchronous join (JOIN → SUCCESS or FAILED), listings with cookie paging, the
//!   garbage collector, a per-account rate limit, and the delivery host's `HEAD`/`GET`
//!   with the SHA-256 checksum (`edgio_*` knobs in [`Settings`]).
//! - `s3`: a fault-injecting proxy in front of a real S3 server (`--s3-upstream`,
//!   s3s-fs in the suite), mounted at `/s3`: it checks each presigned SigV4
//!   signature against the testbed's secret, signs the request again for the
//!   upstream, and answers ListMultipartUploads and expires unfinished uploads where
//!   s3s-fs cannot.
//! - `byte_range`: the `Range` header of downloads, shared by the emulators.
//!
//! Every emulator accepts one credential, the testbed's secret (Box and Insights Hub:
//! `Authorization: Bearer <secret>`; Exosite: the device token, as `X-Exosite-CIK`,
//! `Authorization: token` or `Basic`; Edgio: the password of its one user, `testbed`);
//! changing it at run time models a token expiry or, for Exosite, a revoked device
//! (Edgio: a password change; the tokens issued before it end).

mod admin;
mod app;
mod box_api;
mod byte_range;
mod clock;
mod edgio;
mod emulator;
mod exosite;
mod faults;
mod hex;
mod insights_hub;
mod s3;
mod server;
mod stats;
mod store;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use faults::{
    ExositeRangeRule, ExositeReinitiate, ExositeResend, Settings, SettingsError, SettingsPatch,
};
pub use stats::{EmulatorStats, FaultCounts, Stats};
pub use store::ObjectInfo;

use app::Shared;
use emulator::Emulator;

/// The bearer token (and generic credential) accepted when none is configured.
pub const DEFAULT_SECRET: &str = "testbed-secret";

/// How to start a [`Testbed`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 picks a free port. Loopback only.
    pub listen: SocketAddr,
    /// Directory for objects, session parts and staging files; created if missing.
    pub store: PathBuf,
    /// The credential every emulator accepts at start (Box, Insights Hub: the bearer
    /// token; Exosite: the device token);
    /// [`Testbed::set_secret`] changes it at run time.
    pub secret: String,
    /// Fault knobs and server-dictated limits at start.
    pub settings: Settings,
    /// The S3 server the `/s3` proxy forwards to; `None`: `/s3` answers 502.
    pub s3_upstream: Option<S3Upstream>,
}

/// The S3 server behind the `/s3` proxy, and its key pair. Clients of the proxy
/// present `access_key` with the testbed's secret; the proxy signs what it forwards
/// with `secret_key`.
#[derive(Debug, Clone)]
pub struct S3Upstream {
    /// `http://127.0.0.1:PORT`. Loopback only.
    pub url: String,
    pub access_key: String,
    pub secret_key: String,
}

impl Options {
    /// 127.0.0.1 on a free port, default secret and settings, storing under `store`.
    pub fn loopback(store: impl Into<PathBuf>) -> Options {
        Options {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            store: store.into(),
            secret: DEFAULT_SECRET.to_string(),
            settings: Settings::default(),
            s3_upstream: None,
        }
    }

    /// The same options with the `/s3` proxy forwarding to `upstream`.
    pub fn with_s3_upstream(mut self, upstream: S3Upstream) -> Options {
        self.s3_upstream = Some(upstream);
        self
    }

    /// The same options with other settings.
    pub fn with_settings(mut self, settings: Settings) -> Options {
        self.settings = settings;
        self
    }
}

/// A running testbed server. Dropping it stops the server too; `shutdown` also waits
/// for every connection task to end.
pub struct Testbed {
    /// The bound address (the real port when 0 was asked).
    addr: SocketAddr,
    /// Settings, counters and store, shared with every request.
    shared: Arc<Shared>,
    /// Mounted emulators, for stats (`sessions_open`).
    emulators: Vec<Arc<dyn Emulator>>,
    /// Cancelled on shutdown or drop: stops the accept loop and drops connections.
    stop: CancellationToken,
    /// The accept loop and every connection task.
    tasks: TaskTracker,
}

impl Testbed {
    /// Binds, opens the store and starts serving on the current tokio runtime.
    /// Refuses a non-loopback address and invalid settings (`InvalidInput`).
    pub async fn start(opts: Options) -> io::Result<Testbed> {
        if !opts.listen.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to listen on {}: loopback only", opts.listen),
            ));
        }
        opts.settings
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if let Some(up) = &opts.s3_upstream {
            check_loopback_url(&up.url)?;
        }
        let store = store::Store::open(&opts.store)?;
        let listener = TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(
            opts.settings,
            store,
            opts.secret,
            format!("http://{addr}"),
        ));
        let emulators = app::emulators(&shared, opts.s3_upstream);
        let router = app::router(&shared, &emulators);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(server::serve(listener, router, stop.clone(), tasks.clone()));
        tracing::info!(%addr, store = %shared.store.root().display(), "testbed listening");
        Ok(Testbed {
            addr,
            shared,
            emulators,
            stop,
            tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash. Box's API base is `url() + "/box"`.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Base URL of one emulator, e.g. `http://127.0.0.1:PORT/box` for "box": Box's
    /// API and upload base (the client appends `/2.0/...`); for "insights-hub" the
    /// gateway URL (the client appends `/api/iotfile/v3/...`); for "exosite" the
    /// device API host (the client appends `/onep:v1/content/...`); for "edgio" the
    /// upload host (the client appends `/jsonrpc2`, `/post/raw`, ...; the delivery host
    /// is `/origin/<account>/<path>` under it).
    pub fn emulator_url(&self, emulator: &str) -> String {
        format!("{}/{emulator}", self.shared.base_url)
    }

    /// The store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.shared.store.root().to_path_buf()
    }

    /// The same as `GET /_testbed/stats`.
    pub fn stats(&self) -> Stats {
        app::stats(&self.shared, &self.emulators)
    }

    pub fn settings(&self) -> Settings {
        self.shared.settings()
    }

    /// The same as `PUT /_testbed/faults`, except that out-of-range values are
    /// clamped (rates into 0..=1, part size to at least 1) instead of refused.
    pub fn update_settings(&self, patch: SettingsPatch) {
        self.shared.update_clamped(&patch);
    }

    /// Like `PUT /_testbed/faults`: refuses the whole patch if a value is invalid.
    pub fn try_update_settings(&self, patch: SettingsPatch) -> Result<Settings, SettingsError> {
        self.shared.try_update(&patch)
    }

    /// The same as `PUT /_testbed/secret`: requests arriving from now on are checked
    /// against `secret` (surrounding whitespace trimmed); the old one gets 401. For
    /// tests of a client whose credential stops working for a while.
    ///
    /// # Panics
    ///
    /// If `secret` is empty after trimming or holds a character an HTTP header cannot
    /// carry (the endpoint answers 400 then). That is a bug in the calling test, and a
    /// secret no client can present would only make it fail later and less clearly.
    pub fn set_secret(&self, secret: &str) {
        match app::parse_secret(secret) {
            Ok(s) => self.shared.set_secret(s.to_string()),
            Err(e) => panic!("Testbed::set_secret: {e}"),
        }
    }

    /// The same as `GET /_testbed/objects`.
    pub fn objects(&self) -> Vec<ObjectInfo> {
        self.shared.store.list()
    }

    /// The stored bytes of the object at `path` (see [`ObjectInfo::path`]) of
    /// `emulator` ("box", "insights-hub": `<entityId>/<filepath>`, "exosite": the
    /// content id, "edgio": the path from the account root without the leading slash);
    /// `NotFound` if there is none.
    pub fn object_bytes(&self, emulator: &str, path: &str) -> io::Result<Vec<u8>> {
        let blob = self
            .shared
            .store
            .blob_by_path(emulator, path)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no {emulator} object at {path}"),
                )
            })?;
        blob.read()
    }

    /// Stops accepting, drops every connection and waits for their tasks.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Refuses an upstream that is not `http://` on a loopback address.
fn check_loopback_url(url: &str) -> io::Result<()> {
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing --s3-upstream {url}: {why}"),
        )
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// is proxied"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(invalid("loopback only"))
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

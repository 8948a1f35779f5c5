//! A trial's world: the backend under test (with its emulator where it has one), a
//! temp folder with an outbox and a config, and the real daemon.

use std::sync::OnceLock;
use std::time::Duration;

use dropship::backend::{Capabilities, PartSizeRule};
use dropship_testbed::{
    ExositeRangeRule, ExositeReinitiate, ExositeResend, Options, Settings, SettingsPatch, Stats,
    Testbed,
};

use crate::common::s3s_fs::{self, S3sFs};
use crate::common::{Daemon, Env, with_defaults};

/// The backends the suite runs against. A new backend joins by adding a variant here
/// and its arms below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Local,
    Box,
    InsightsHub,
    /// Exosite under the emulator's first reading of every assumed rule (ranges
    /// exactly 5 MiB, a re-sent last range refused, a re-initiate resets, no
    /// progress in the content info).
    Exosite,
    /// Exosite under the other reading of each (ranges at least 5 MiB, a re-sent
    /// last range accepted, a re-initiate refused while an upload is in progress,
    /// progress reported); uploads expire after 10 s here, so that a refused
    /// re-initiate clears within a case.
    ExositeAlt,
    /// Edgio Agile Storage: `/post/raw` up to `EDGIO_MULTIPART_ABOVE`, multipart
    /// uploads with the asynchronous join above it, verified on the delivery host.
    Edgio,
    /// S3: a real s3s-fs server behind the testbed's `/s3` fault proxy, which
    /// checks the daemon's signatures against the testbed's secret and signs again
    /// for s3s-fs; PutObject up to `S3_MULTIPART_ABOVE`.
    S3,
}

/// The asset the Insights Hub emulator knows by default.
pub const IH_ENTITY: &str = "00189ab4c65243bb9d77f17332dd570a";
/// The remote folder the suite's Insights Hub daemon writes into.
const IH_DIRECTORY: &str = "uploads";
/// Exosite's single-request limit in the suite: small, so that multi-part cases
/// need a few ranges, not twenty.
const EXOSITE_SINGLE_MAX: u64 = 10 << 20;
/// Edgio: files above this go as multipart uploads (small, for the same reason).
const EDGIO_MULTIPART_ABOVE: u64 = 2 << 20;
/// The remote folder the suite's Edgio daemon writes into.
const EDGIO_DIRECTORY: &str = "uploads";
/// S3: the bucket, the key prefix, and the largest PutObject (the 5 MiB part
/// floor, so that multipart cases need few parts).
const S3_BUCKET: &str = "dropship";
const S3_PREFIX: &str = "site-7";
const S3_MULTIPART_ABOVE: u64 = 5 << 20;
/// Next to the config: the access key id the daemon presents (not a secret).
const S3_ACCESS_KEY_FILE: &str = "s3-access-key-id";

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Local,
        Kind::Box,
        Kind::InsightsHub,
        Kind::Exosite,
        Kind::ExositeAlt,
        Kind::Edgio,
        Kind::S3,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Local => "local",
            Kind::Box => "box",
            Kind::InsightsHub => "insights-hub",
            Kind::Exosite => "exosite",
            Kind::ExositeAlt => "exosite-alt",
            Kind::Edgio => "edgio",
            Kind::S3 => "s3",
        }
    }

    /// The emulator that serves this kind (its prefix and stats key).
    pub fn emulator(self) -> &'static str {
        match self {
            Kind::ExositeAlt => "exosite",
            other => other.name(),
        }
    }

    /// The capabilities the real backend declares (built once, offline, from a config).
    pub fn capabilities(self) -> Capabilities {
        static CAPS: OnceLock<Vec<(Kind, Capabilities)>> = OnceLock::new();
        let all = CAPS.get_or_init(|| {
            Kind::ALL
                .iter()
                .map(|k| (*k, k.build_capabilities()))
                .collect()
        });
        all.iter()
            .find(|(k, _)| *k == self)
            .map(|(_, c)| *c)
            .expect("every kind is in Kind::ALL")
    }

    fn build_capabilities(self) -> Capabilities {
        let dir = tempfile::tempdir().expect("tempdir");
        let credential = dir.path().join("credential");
        std::fs::write(&credential, "x").expect("credential");
        std::fs::write(dir.path().join(S3_ACCESS_KEY_FILE), s3s_fs::ACCESS_KEY)
            .expect("access key");
        let cfg = self
            .backend_config("http://127.0.0.1:9", &credential.display().to_string())
            .unwrap_or_else(|| format!("type = \"local\"\npath = \"{}\"", dir.path().display()));
        let backend: dropship::backend::BackendConfig =
            toml::from_str(&cfg).expect("backend config");
        backend
            .build(dropship::backend::BuildOptions {
                part_size: self.chosen_part(),
                ..Default::default()
            })
            .expect("backend")
            .capabilities()
    }

    /// The file, next to the config, that holds the credential this kind presents.
    fn credential_file(self) -> &'static str {
        match self {
            Kind::InsightsHub => "ih-token",
            Kind::Exosite | Kind::ExositeAlt => "exosite-token",
            Kind::Edgio => "edgio-password",
            Kind::S3 => "s3-secret",
            Kind::Local | Kind::Box => "box-token",
        }
    }

    /// The `[backend]` table against a testbed at `base`, the credential read from
    /// the file `credential`; `None` for the local backend, which has no service.
    fn backend_config(self, base: &str, credential: &str) -> Option<String> {
        Some(match self {
            Kind::Local => return None,
            Kind::Box => format!(
                "type = \"box\"\napi_url = \"{base}/box\"\nupload_url = \"{base}/box\"\ntoken_file = \"{credential}\"\nfolder_id = \"0\""
            ),
            Kind::InsightsHub => format!(
                "type = \"insights-hub\"\ngateway_url = \"{base}/insights-hub\"\nentity_id = \"{IH_ENTITY}\"\ntoken_file = \"{credential}\"\ndirectory = \"{IH_DIRECTORY}\""
            ),
            Kind::Exosite | Kind::ExositeAlt => format!(
                "type = \"exosite\"\nurl = \"{base}/exosite\"\ntoken_file = \"{credential}\"\nsingle_request_max = \"{EXOSITE_SINGLE_MAX}\""
            ),
            Kind::Edgio => format!(
                "type = \"edgio\"\nupload_url = \"{base}/edgio\"\norigin_url = \"{base}/edgio/origin/testbed\"\nusername = \"testbed\"\npassword_file = \"{credential}\"\ndirectory = \"{EDGIO_DIRECTORY}\"\nmultipart_above = \"{EDGIO_MULTIPART_ABOVE}\""
            ),
            // The access key id file sits beside the secret's.
            Kind::S3 => format!(
                "type = \"s3\"\nendpoint = \"{base}/s3\"\nregion = \"us-east-1\"\nbucket = \"{S3_BUCKET}\"\nprefix = \"{S3_PREFIX}\"\npath_style = true\naccess_key_id_file = \"{}\"\nsecret_access_key_file = \"{credential}\"\nmultipart_above = \"{S3_MULTIPART_ABOVE}\"",
                std::path::Path::new(credential)
                    .with_file_name(S3_ACCESS_KEY_FILE)
                    .display()
            ),
        })
    }

    /// The part size the daemon will use with default settings: configured where the
    /// client chooses, the emulator's default where the server dictates.
    pub fn part_size(self) -> u64 {
        match self.capabilities().part_size {
            PartSizeRule::SetByServer => Settings::default().box_part_size,
            PartSizeRule::Chosen { min, max } => self.chosen_part().clamp(min, max),
        }
    }

    /// The part size the suite configures for this kind. Edgio's pieces have no
    /// minimum; 4 MiB ones are more than socket buffers hold, so a fault switched
    /// on after the first piece still meets pieces on the wire.
    pub fn chosen_part(self) -> u64 {
        match self {
            Kind::Edgio => 4 << 20,
            // S3's floor (all but the last part).
            Kind::S3 => dropship::backend::s3::MIN_PART,
            _ => CHOSEN_PART,
        }
    }

    /// A size of about `parts` parts, and big enough for a session.
    pub fn multipart_size(self, parts: u64) -> usize {
        multipart_size(&self.capabilities(), self.part_size(), parts)
    }

    /// Whether the backend has an emulator whose faults and counters a case can use.
    pub fn emulated(self) -> bool {
        self != Kind::Local
    }

    /// Whether what the backend needs to run here is at hand: s3s-fs for S3.
    pub fn available(self) -> bool {
        self != Kind::S3 || s3s_fs::binary().is_some()
    }

    /// [`Kind::available`], saying on stdout why `test` skips it when it is not.
    pub fn runs_here(self, test: &str) -> bool {
        let ok = self.available();
        if !ok {
            println!("{test}: {} not run: {}", self.name(), s3s_fs::MISSING);
        }
        ok
    }
}

/// What a case needs of a backend; a backend without it shows the case as ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Nothing,
    /// Parts of one file in flight together.
    ParallelParts,
    /// A service that can fail: fault injection, byte counters, expiring sessions.
    Emulator,
    /// A service that checks credentials.
    Credentials,
    /// A service that keeps a MIME type with each object (not Box, not a folder).
    StoredType,
    /// A store that can be made to flip the bytes it keeps, where verification
    /// sees it. Not S3 behind the proxy: s3s-fs answers HeadObject with the ETag
    /// it computed on arrival (s3.rs:432-435), as AWS does, so bytes flipped at rest
    /// never show, and bytes flipped in flight are refused by the part's ETag check
    /// or BadDigest and sent again, never stored (see `tests/s3_backend.rs`).
    CorruptingStore,
}

impl Need {
    pub fn met_by(self, kind: Kind, caps: &Capabilities) -> bool {
        match self {
            Need::Nothing => true,
            Need::ParallelParts => caps.parallel_parts,
            Need::Emulator | Need::Credentials => kind.emulated(),
            Need::CorruptingStore => kind.emulated() && kind != Kind::S3,
            Need::StoredType => !matches!(kind, Kind::Local | Kind::Box),
        }
    }
}

/// One runtime for every in-process testbed of the run.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("testbed runtime")
    })
}

pub struct World {
    pub kind: Kind,
    pub env: Env,
    pub testbed: Option<Testbed>,
    pub daemon: Option<Daemon>,
    /// The part size the daemon will use (configured, or dictated by the server).
    pub part_size: u64,
    /// The store of a stopped service, for its restart.
    service_store: Option<std::path::PathBuf>,
    /// S3: the real server behind the testbed's proxy.
    s3: Option<S3sFs>,
}

/// Options a case sets on its world.
pub struct Setup<'a> {
    /// Extra lines for `[upload]`.
    pub upload: &'a str,
    /// The emulator's settings at start.
    pub settings: Settings,
    /// The token the daemon presents (the emulator accepts `testbed-secret`).
    pub token: &'a str,
    pub settle: &'a str,
    /// Config after `[backend]` (`[[rule]]` tables).
    pub extra: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            upload: "",
            settings: Settings::default(),
            token: dropship_testbed::DEFAULT_SECRET,
            settle: "300ms",
            extra: "",
        }
    }
}

/// The part size the suite configures where the client chooses (see
/// [`Kind::chosen_part`]): small, so that multi-part cases stay fast.
const CHOSEN_PART: u64 = 1 << 20;

impl World {
    pub fn new(kind: Kind, setup: Setup<'_>) -> World {
        let upload = with_defaults(
            &format!(
                "part_size = \"{}\"\nparts_in_flight = 4\nverify_attempts = 2",
                kind.chosen_part()
            ),
            setup.upload,
        );
        if kind == Kind::Local {
            return World {
                kind,
                env: Env::local(setup.settle, &upload, setup.extra),
                testbed: None,
                daemon: None,
                part_size: kind.chosen_part(),
                service_store: None,
                s3: None,
            };
        }
        let mut settings = setup.settings;
        if kind == Kind::ExositeAlt {
            settings.exosite_range_rule = ExositeRangeRule::AtLeast;
            settings.exosite_resend_last = ExositeResend::Accept;
            settings.exosite_reinitiate = ExositeReinitiate::Conflict;
            settings.exosite_info_progress = true;
            settings.exosite_upload_ttl_s = 10;
        }
        // Box dictates its part size: the one these settings give.
        let part_size = match kind {
            Kind::Box => settings.box_part_size,
            _ => kind.part_size(),
        };
        let store = tempfile::tempdir().expect("store").keep();
        let s3 = (kind == Kind::S3).then(|| {
            S3sFs::start(&[S3_BUCKET], S3_UPSTREAM_SECRET)
                .expect("s3s-fs (the case is ignored without it)")
        });
        let mut opts = Options::loopback(store).with_settings(settings);
        if let Some(s3) = &s3 {
            opts = opts.with_s3_upstream(s3_upstream(s3));
        }
        let tb = runtime()
            .block_on(Testbed::start(opts))
            .expect("start testbed");
        let backend = kind
            .backend_config(&tb.url(), kind.credential_file())
            .expect("an emulated kind");
        let env = Env::new(setup.settle, &upload, &backend, setup.extra);
        // Next to the config; written before the daemon starts.
        std::fs::write(env.dir.path().join(kind.credential_file()), setup.token)
            .expect("credential");
        std::fs::write(env.dir.path().join(S3_ACCESS_KEY_FILE), s3s_fs::ACCESS_KEY)
            .expect("access key");
        World {
            kind,
            env,
            testbed: Some(tb),
            daemon: None,
            part_size,
            service_store: None,
            s3,
        }
    }

    pub fn start(&mut self) {
        self.daemon = Some(self.env.spawn_ready());
    }

    pub fn kill9(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.kill9();
        }
    }

    /// A multi-part size: `parts` parts of this world's part size, and big enough
    /// for a session.
    pub fn multipart_size(&self, parts: u64) -> usize {
        multipart_size(&self.kind.capabilities(), self.part_size, parts)
    }

    /// The running daemon.
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon was started")
    }

    /// The file the daemon reads its token from (where the backend has one).
    pub fn token_file(&self) -> std::path::PathBuf {
        self.env.dir.path().join(self.kind.credential_file())
    }

    /// The credential the service accepts from now on (the daemon's stays). S3:
    /// the secret key the proxy checks signatures with.
    pub fn set_service_secret(&self, secret: &str) {
        if let Some(tb) = &self.testbed {
            tb.set_secret(secret);
        }
    }

    /// The stored content at `key`, as the service holds it.
    pub fn stored(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(s3) = &self.s3 {
            return std::fs::read(s3.bucket_dir(S3_BUCKET).join(self.service_path(key))).ok();
        }
        match &self.testbed {
            Some(tb) => tb
                .object_bytes(self.kind.emulator(), &self.service_path(key))
                .ok(),
            None => std::fs::read(self.env.remote().join(key)).ok(),
        }
    }

    /// Where the emulator keeps the object of `key` (`GET /_testbed/objects`).
    pub fn service_path(&self, key: &str) -> String {
        match self.kind {
            Kind::InsightsHub => format!("{IH_ENTITY}/{IH_DIRECTORY}/{key}"),
            Kind::Exosite | Kind::ExositeAlt => dropship::backend::exosite::content_id(key),
            Kind::Edgio => format!("{EDGIO_DIRECTORY}/{key}"),
            Kind::S3 => format!("{S3_PREFIX}/{key}"),
            Kind::Local | Kind::Box => key.to_string(),
        }
    }

    /// The MIME type the service keeps with the object of `key`: from the testbed's
    /// listing, or s3s-fs's attribute file; `None` where none is kept or there is no
    /// such object.
    pub fn stored_type(&self, key: &str) -> Option<String> {
        use base64::Engine as _;
        let path = self.service_path(key);
        if let Some(s3) = &self.s3 {
            let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            let root = s3.bucket_dir(S3_BUCKET).parent()?.to_path_buf();
            let file = root.join(format!(
                ".bucket-{}.object-{}.metadata.json",
                b64(S3_BUCKET),
                b64(&path)
            ));
            let attrs: serde_json::Value =
                serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
            return attrs["content_type"].as_str().map(str::to_string);
        }
        self.testbed
            .as_ref()?
            .objects()
            .into_iter()
            .find(|o| o.emulator == self.kind.emulator() && o.path == path)?
            .content_type
    }

    /// Every object the service holds, by [`World::service_path`].
    pub fn service_objects(&self) -> Result<Vec<String>, String> {
        let root = match (&self.s3, &self.testbed) {
            (Some(s3), _) => s3.bucket_dir(S3_BUCKET),
            (None, Some(tb)) => {
                return Ok(tb
                    .objects()
                    .into_iter()
                    .filter(|o| o.emulator == self.kind.emulator())
                    .map(|o| o.path)
                    .collect());
            }
            (None, None) => self.env.remote(),
        };
        let mut found = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).map_err(|e| e.to_string())?.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    found.push(p.strip_prefix(&root).unwrap_or(&p).display().to_string());
                }
            }
        }
        Ok(found)
    }

    /// S3: the multipart uploads s3s-fs holds open (its `.upload-<id>.json` files),
    /// whatever the proxy saw; `None` for other kinds.
    pub fn s3_uploads_open(&self) -> Option<usize> {
        let s3 = self.s3.as_ref()?;
        let root = s3.dir.path().join("root");
        let n = std::fs::read_dir(root)
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.starts_with(".upload-") && name.ends_with(".json")
                    })
                    .count()
            })
            .unwrap_or(0);
        Some(n)
    }

    /// Stops the service (its emulator); requests then meet a refused connection.
    /// Returns the address to bring it back on.
    pub fn stop_service(&mut self) -> Option<std::net::SocketAddr> {
        let tb = self.testbed.take()?;
        let addr = tb.addr();
        self.service_store = Some(tb.store_dir());
        runtime().block_on(tb.shutdown());
        Some(addr)
    }

    /// Starts the service again at `addr`, with fresh state (it lost its sessions).
    pub fn start_service_at(&mut self, addr: std::net::SocketAddr) {
        let store = self.service_store.take().expect("stopped before");
        let mut opts = Options::loopback(store);
        opts.listen = addr;
        if let Some(s3) = &self.s3 {
            opts = opts.with_s3_upstream(s3_upstream(s3));
        }
        self.testbed = Some(
            runtime()
                .block_on(Testbed::start(opts))
                .expect("restart testbed"),
        );
    }

    pub fn stats(&self) -> Option<Stats> {
        self.testbed.as_ref().map(Testbed::stats)
    }

    /// Every upload session the service holds expires now (`true`), or lives as
    /// long as this world's service keeps them (`false`).
    pub fn expire_sessions(&self, now: bool) {
        let d = Settings::default();
        let exosite_ttl = if self.kind == Kind::ExositeAlt {
            10
        } else {
            d.exosite_upload_ttl_s
        };
        self.faults(if now {
            SettingsPatch {
                session_ttl_s: Some(1),
                ih_part_ttl_s: Some(0),
                exosite_upload_ttl_s: Some(0),
                edgio_upload_ttl_s: Some(0),
                ..Default::default()
            }
        } else {
            SettingsPatch {
                session_ttl_s: Some(d.session_ttl_s),
                ih_part_ttl_s: Some(d.ih_part_ttl_s),
                exosite_upload_ttl_s: Some(exosite_ttl),
                edgio_upload_ttl_s: Some(d.edgio_upload_ttl_s),
                ..Default::default()
            }
        });
    }

    pub fn faults(&self, patch: SettingsPatch) {
        if let Some(tb) = &self.testbed {
            tb.update_settings(patch);
        }
    }

    /// Asserts the service holds exactly `data` at `key`.
    pub fn assert_stored(&self, key: &str, data: &[u8]) -> Result<(), String> {
        match self.stored(key) {
            Some(s) if s == data => Ok(()),
            Some(s) => Err(format!(
                "{key}: stored {} bytes differ from the {} sent",
                s.len(),
                data.len()
            )),
            None => Err(format!("{key}: nothing stored")),
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.daemon.take();
        self.stop_service();
        if let Some(store) = self.service_store.take() {
            let _ = std::fs::remove_dir_all(store);
        }
    }
}

/// s3s-fs's own secret key: only the proxy knows it, and signs with it.
const S3_UPSTREAM_SECRET: &str = "upstream-only-secret";

fn s3_upstream(s3: &S3sFs) -> dropship_testbed::S3Upstream {
    dropship_testbed::S3Upstream {
        url: s3.endpoint.clone(),
        access_key: s3s_fs::ACCESS_KEY.to_string(),
        secret_key: S3_UPSTREAM_SECRET.to_string(),
    }
}

/// `parts` parts of `part_size`, at least one more than a single request takes.
fn multipart_size(caps: &Capabilities, part_size: u64, parts: u64) -> usize {
    let min_parts = caps.single_request_below.div_ceil(part_size) + 1;
    (parts.max(min_parts) * part_size - part_size / 3) as usize
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

//! Shared fixtures for the end-to-end tests: a temp folder with an outbox, a config
//! file, and the real `dropship` binary run as a child process.
#![allow(dead_code)] // each test binary uses its own subset

pub mod bench;
pub mod s3s_fs;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_dropship");

/// A test's world: outbox, journal, config and log under one temp folder.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub outbox: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Env {
    /// `upload` is the body of the `[upload]` table, `backend` of `[backend]`,
    /// `extra` anything appended (e.g. a `[daemon]` table).
    pub fn new(settle: &str, upload: &str, backend: &str, extra: &str) -> Env {
        Env::with_watch(settle, "", upload, backend, extra)
    }

    /// Like [`Env::new`], with more lines for the `[watch]` table.
    pub fn with_watch(settle: &str, watch: &str, upload: &str, backend: &str, extra: &str) -> Env {
        let mut dir = tempfile::tempdir().expect("tempdir");
        // For post-mortems: DROPSHIP_KEEP_TEST_DIRS=1 leaves every test folder behind.
        if std::env::var_os("DROPSHIP_KEEP_TEST_DIRS").is_some() {
            dir.disable_cleanup(true);
            eprintln!("test folder kept: {}", dir.path().display());
        }
        let outbox = dir.path().join("outbox");
        std::fs::create_dir_all(&outbox).expect("outbox");
        let config = dir.path().join("dropship.toml");
        let upload = with_defaults("retry_base = \"100ms\"\nretry_max = \"2s\"", upload);
        let text = format!(
            "[watch]\npath = \"outbox\"\nsettle = \"{settle}\"\n{watch}\n\n\
             [journal]\npath = \"state/journal.db\"\n\n\
             [upload]\n{upload}\n\n\
             [backend]\n{backend}\n\n{extra}\n"
        );
        std::fs::write(&config, text).expect("config");
        let log = dir.path().join("daemon.log");
        Env {
            dir,
            outbox,
            config,
            log,
        }
    }

    /// The local backend, storing under `<tmp>/remote`.
    pub fn local(settle: &str, upload: &str, extra: &str) -> Env {
        Env::new(settle, upload, "type = \"local\"\npath = \"remote\"", extra)
    }

    pub fn remote(&self) -> PathBuf {
        self.dir.path().join("remote")
    }

    /// Starts `dropship run`, its stderr appended to `self.log`.
    pub fn spawn(&self) -> Daemon {
        self.spawn_with(|_| {})
    }

    /// Starts `dropship run` as user `uid` (the test runs as root).
    pub fn spawn_as(&self, uid: u32) -> Daemon {
        use std::os::unix::process::CommandExt;
        self.spawn_with(|c| {
            c.uid(uid).gid(uid);
        })
    }

    pub fn spawn_with(&self, adjust: impl FnOnce(&mut Command)) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"])
            .arg(&self.config)
            .env("DROPSHIP_LOG", "info,dropship=debug")
            .stdout(Stdio::null())
            .stderr(log);
        adjust(&mut cmd);
        let child = cmd.spawn().expect("spawn dropship");
        Daemon { child }
    }

    /// Starts the daemon and waits until its startup scan is recorded.
    pub fn spawn_ready(&self) -> Daemon {
        let runs = self.log_text().matches("dropship is running").count();
        let d = self.spawn();
        wait_for(Duration::from_secs(30), "the daemon to start", || {
            (self.log_text().matches("dropship is running").count() > runs).then_some(())
        });
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many lines of the daemon's log contain all of `needles` (a level such
    /// as "ERROR" and a message, say): what is "said once" is counted with this.
    pub fn log_lines(&self, needles: &[&str]) -> usize {
        self.log_text()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Waits until the daemon's log contains `needle`; on timeout the panic shows
    /// the log's last lines, which say what the daemon did instead.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = self.log_text();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "timed out after {}s waiting for {needle:?} in the log; its last lines:\n{}",
            timeout.as_secs(),
            tail.join("\n")
        );
    }

    /// `dropship status --json`.
    pub fn status(&self) -> Value {
        let out = Command::new(BIN)
            .args(["status", "--json", "--all", "--config"])
            .arg(&self.config)
            .output()
            .expect("run status");
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// The status rows of the file at `rel` (relative to the outbox), oldest first.
    pub fn rows(&self, rel: &str) -> Vec<Value> {
        let path = self.outbox.join(rel).display().to_string();
        self.status()["files"]
            .as_array()
            .expect("files")
            .iter()
            .filter(|f| f["path"] == path.as_str())
            .cloned()
            .collect()
    }

    /// Waits until the newest row for `rel` is in `state`; returns that row.
    pub fn wait_state(&self, rel: &str, state: &str, timeout: Duration) -> Value {
        wait_for(timeout, &format!("{rel} to be {state}"), || {
            self.rows(rel).pop().filter(|r| r["state"] == state)
        })
    }

    /// Waits until `n` files are done in all.
    pub fn wait_done(&self, n: u64, timeout: Duration) -> Value {
        let timeout = timeout.min(Duration::from_secs(
            std::env::var("DROPSHIP_TEST_TIMEOUT")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX),
        ));
        let t0 = Instant::now();
        loop {
            let st = self.status();
            if st["counts"]["done"].as_u64() == Some(n) {
                return st;
            }
            if t0.elapsed() > timeout {
                let stuck: Vec<&Value> = st["files"]
                    .as_array()
                    .map(|f| f.iter().filter(|r| r["state"] != "done").take(5).collect())
                    .unwrap_or_default();
                let log = self.log_text();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "timed out after {timeout:?} waiting for {n} files done: counts {}\nnot done: {stuck:#?}\nlog tail:\n{}",
                    st["counts"],
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes `data` to `<outbox>/<rel>` through a hidden temp name and a rename, as
    /// a careful producer does (the rename makes it count at once).
    pub fn drop_file(&self, rel: &str, data: &[u8]) -> PathBuf {
        let dest = self.outbox.join(rel);
        let parent = dest.parent().expect("parent");
        std::fs::create_dir_all(parent).expect("mkdir");
        let tmp = parent.join(format!(
            ".{}.tmp",
            dest.file_name().expect("name").to_string_lossy()
        ));
        std::fs::write(&tmp, data).expect("write");
        std::fs::rename(&tmp, &dest).expect("rename");
        dest
    }

    /// Runs `dropship <args> --config <config>`.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run dropship")
    }
}

/// The lines of a TOML table body: `defaults`, minus the keys `given` sets, then
/// `given` (a key twice is an error in TOML).
pub fn with_defaults(defaults: &str, given: &str) -> String {
    let key = |line: &str| line.split('=').next().map(|k| k.trim().to_string());
    let set: Vec<String> = given.lines().filter_map(key).collect();
    let mut out: Vec<&str> = defaults
        .lines()
        .filter(|l| key(l).is_none_or(|k| !set.contains(&k)))
        .collect();
    out.extend(given.lines());
    out.join("\n")
}

/// The daemon as a child process; killed if the test ends without stopping it.
pub struct Daemon {
    pub child: Child,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether the process still runs (not exited, not a zombie waiting for us).
    pub fn is_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .ok()
            .and_then(|s| {
                let state = s.rsplit_once(") ")?.1.chars().next()?;
                Some(state != 'Z' && state != 'X')
            })
            .unwrap_or(false)
    }

    pub fn sigterm(&self) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        assert_eq!(rc, 0, "kill SIGTERM");
    }

    /// A `kB` figure of `/proc/<pid>/status` (`VmRSS`, `VmHWM`...), in bytes.
    pub fn status_bytes(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status");
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("no {field} in /proc/<pid>/status"))
    }

    /// Bytes the process has read through `read(2)` and friends (`rchar` of
    /// `/proc/<pid>/io`): files, the journal and sockets alike.
    pub fn rchar(&self) -> u64 {
        let text =
            std::fs::read_to_string(format!("/proc/{}/io", self.pid())).expect("/proc/<pid>/io");
        text.lines()
            .find_map(|l| l.strip_prefix("rchar:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("rchar")
    }

    /// SIGKILL, and reap it.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deterministic pseudo-random bytes (incompressible enough, reproducible by seed).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Appends to a file (and closes it).
pub fn append(path: &Path, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(data).expect("append");
}

/// A runtime for a test's in-process testbed.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The testbed on loopback, storing under `store`, with `settings`.
pub fn start_testbed(
    rt: &tokio::runtime::Runtime,
    store: &Path,
    settings: dropship_testbed::Settings,
) -> dropship_testbed::Testbed {
    rt.block_on(dropship_testbed::Testbed::start(
        dropship_testbed::Options::loopback(store).with_settings(settings),
    ))
    .expect("testbed")
}

/// A number from the environment (a test's or bench's size knob), else `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) a live process has used so far (benchmarks).
pub fn cpu_of(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) close with ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / hz.max(1) as f64)
}

/// A live process's peak resident set (VmHWM), in KiB (benchmarks).
pub fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

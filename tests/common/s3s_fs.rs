//! A real S3 server for the tests: s3s-fs 0.14.1 (a third-party Rust S3 server) on
//! 127.0.0.1, started with a fresh root folder and its own key pair, killed on drop.
//!
//! The binary is `$DROPSHIP_S3S_FS` (`.ci/run` installs it and sets this), else
//! `target/s3s-fs-0.14.1/bin/s3s-fs` (where `.ci/run` caches it). Tests that find
//! neither say so and do not run.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The access key id every test server accepts (not a secret; the secret key is).
pub const ACCESS_KEY: &str = "AKIDDROPSHIPTEST";

/// The s3s-fs binary, if one is at hand: `$DROPSHIP_S3S_FS`, else where `.ci/run`
/// caches it under the target folder.
pub fn binary() -> Option<PathBuf> {
    let env = std::env::var_os("DROPSHIP_S3S_FS").map(PathBuf::from);
    // Set but wrong is a broken CI, not a reason to skip quietly.
    if let Some(p) = env.as_ref().filter(|p| !p.is_file()) {
        panic!("DROPSHIP_S3S_FS={} is not a file", p.display());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let cached = target.join("s3s-fs-0.14.1/bin/s3s-fs");
    env.into_iter().chain([cached]).find(|p| p.is_file())
}

/// Why a test that needs s3s-fs did not run.
pub const MISSING: &str = "no s3s-fs (set DROPSHIP_S3S_FS, or install it: \
     cargo install s3s-fs --version 0.14.1 --features binary --locked --root target/s3s-fs-0.14.1)";

pub struct S3sFs {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// `root/` (the buckets' folders) and the key files.
    pub dir: tempfile::TempDir,
}

impl S3sFs {
    /// A server holding an empty folder for each of `buckets`, accepting
    /// [`ACCESS_KEY`] with `secret`; `None` without a binary.
    pub fn start(buckets: &[&str], secret: &str) -> Option<S3sFs> {
        let bin = binary()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        for b in buckets {
            std::fs::create_dir_all(root.join(b)).expect("bucket folder");
        }
        std::fs::write(dir.path().join("access_key_id"), ACCESS_KEY).expect("key file");
        std::fs::write(dir.path().join("secret_access_key"), secret).expect("secret file");
        let (child, endpoint) = spawn(&bin, &root, secret);
        Some(S3sFs {
            child,
            endpoint,
            dir,
        })
    }

    /// The server's process id (for its CPU time in benchmarks).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The folder of bucket `bucket`.
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.dir.path().join("root").join(bucket)
    }

    /// The file holding [`ACCESS_KEY`].
    pub fn access_key_file(&self) -> PathBuf {
        self.dir.path().join("access_key_id")
    }
}

/// Starts s3s-fs and waits for the address it reports.
fn spawn(bin: &std::path::Path, root: &std::path::Path, secret: &str) -> (Child, String) {
    // Never RUST_LOG=debug: it logs presigned query strings. Even at info, an
    // UploadPart whose body breaks off (client killed) is logged as an ERROR span
    // trace holding the whole presigned URI, signature included: the output is
    // drained here and never printed.
    let mut child = Command::new(bin)
        // Port 0: s3s-fs reports the port it got at info level.
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(["--access-key", ACCESS_KEY, "--secret-key", secret])
        .arg(root)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start s3s-fs");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        const READY: &str = "server is running at ";
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(at) = line.find(READY) {
                let _ = tx.send(line[at + READY.len()..].trim().to_string());
                sent = true;
            }
            // Keep draining, so that the server never blocks on a full pipe.
        }
    });
    let endpoint = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("s3s-fs reports its address");
    (child, endpoint)
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

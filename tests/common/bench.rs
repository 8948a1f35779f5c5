//! What the benchmarks share: big source files, `rclone` runs timed by
//! `/usr/bin/time`, medians.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// `size` random bytes written to `path` in 8 MiB chunks (never held whole).
pub fn write_random(path: &Path, size: u64) {
    let mut f = std::fs::File::create(path).expect("source file");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 8 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).expect("write");
        left -= n as u64;
    }
    f.sync_all().expect("sync");
}

/// A command's figures as `/usr/bin/time` reports them.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub secs: f64,
    /// User + system CPU seconds of the command (and its children).
    pub cpu: f64,
    pub peak_rss_mib: f64,
}

/// Runs `cmd` under `/usr/bin/time`; panics with its stderr if it fails.
pub fn timed(cmd: &mut Command) -> Timed {
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped.args(["-f", "%U %S %M"]).arg(program).args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    let t0 = Instant::now();
    let out = wrapped.output().expect("run under /usr/bin/time");
    let secs = t0.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{:?} failed: {err}",
        cmd.get_program()
    );
    let f: Vec<f64> = err
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    Timed {
        secs,
        cpu: f.first().copied().unwrap_or(0.0) + f.get(1).copied().unwrap_or(0.0),
        peak_rss_mib: f.get(2).copied().unwrap_or(0.0) / 1024.0,
    }
}

/// `rclone copyto <source> s3s:<bucket>/<key>` against an S3 endpoint, with
/// rclone's defaults. `AWS_CA_BUNDLE` is removed: rclone refuses to start with the
/// one set here.
pub fn rclone_s3(
    endpoint: &str,
    access_key: &str,
    secret: &str,
    source: &Path,
    bucket_key: &str,
) -> Timed {
    let p = |k: &str| format!("RCLONE_CONFIG_S3S_{k}");
    timed(
        Command::new("rclone")
            .arg("copyto")
            .arg(source)
            .arg(format!("s3s:{bucket_key}"))
            .env_remove("AWS_CA_BUNDLE")
            .env(p("TYPE"), "s3")
            .env(p("PROVIDER"), "Other")
            .env(p("ENDPOINT"), endpoint)
            .env(p("REGION"), "us-east-1")
            .env(p("ACCESS_KEY_ID"), access_key)
            .env(p("SECRET_ACCESS_KEY"), secret)
            .env(p("FORCE_PATH_STYLE"), "true"),
    )
}

/// Whether `rclone` runs here.
pub fn rclone_present() -> bool {
    Command::new("rclone")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The middle value (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The `q` quantile (0..=1) by nearest rank.
pub fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

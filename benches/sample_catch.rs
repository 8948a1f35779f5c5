//! How often `verify = "sample"` catches a single flipped byte in a 100 MiB object,
//! and what it costs. A probability, so it is measured, not asserted:
//!
//!     cargo bench --bench sample_catch [-- UPLOADS TRIALS]
//!
//! The Insights Hub emulator stores the file with one byte flipped at a random
//! offset (`corrupt_rate = 1`), `UPLOADS` times (default 40, each an update of the
//! same object); after each upload the real backend's sampled verification
//! (`dropship::verify`, the code the daemon runs, over HTTP on loopback) runs
//! `TRIALS` times (default 500), each with freshly drawn ranges. Printed: the
//! catch rate with a 95 % interval, the rate expected from the geometry
//! ((n + 2) × 64 KiB / size, plus the edges), and the bytes one verification reads
//! back.

use std::time::{Duration, Instant};

use dropship::backend::{BackendConfig, BuildOptions, RemoteObject};
use dropship::identity::Identity;
use dropship::verify::{self, SAMPLE, VerifyError};
use dropship_testbed::{DEFAULT_SECRET, Options, Settings, Testbed};

const MIB: usize = 1 << 20;
const ENTITY: &str = "00189ab4c65243bb9d77f17332dd570a";
/// Random ranges per verification: the default of `upload.verify_samples`.
const SAMPLES: u32 = 4;

fn main() {
    // `cargo bench` passes `--bench`; the numbers are the first two plain arguments.
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let uploads = args.first().copied().unwrap_or(40);
    let trials = args.get(1).copied().unwrap_or(500);
    let size = 100 * MIB;

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = tempfile::tempdir().expect("store");
    let tb = rt
        .block_on(Testbed::start(
            Options::loopback(store.path()).with_settings(Settings {
                corrupt_rate: 1.0,
                ..Settings::default()
            }),
        ))
        .expect("testbed");
    let work = tempfile::tempdir().expect("work");
    std::fs::write(work.path().join("token"), DEFAULT_SECRET).expect("token");
    let cfg: BackendConfig = toml::from_str(&format!(
        "type = \"insights-hub\"\ngateway_url = \"{}\"\nentity_id = \"{ENTITY}\"\ntoken_file = \"{}\"",
        tb.emulator_url("insights-hub"),
        work.path().join("token").display()
    ))
    .expect("config");
    let backend = cfg.build(BuildOptions::default()).expect("backend");
    let path = work.path().join("file.bin");
    let data = random(size, 5);
    std::fs::write(&path, &data).expect("file");
    let identity = Identity::of(&std::fs::symlink_metadata(&path).expect("stat"));
    let remote = RemoteObject::at("sample.bin");
    let url = format!(
        "{}/api/iotfile/v3/files/{ENTITY}/sample.bin",
        tb.emulator_url("insights-hub")
    );
    let http = dropship::backend::http::client(Default::default()).expect("client");

    let mut rng = fastrand::Rng::with_seed(42);
    let (mut caught, mut total, mut read_back) = (0u64, 0u64, 0u64);
    let mut expected = 0.0;
    let started = Instant::now();
    for upload in 0..uploads {
        // A fresh flip: the store corrupts every object it stores.
        let mut put = http
            .put(&url)
            .bearer_auth(DEFAULT_SECRET)
            .timeout(Duration::from_secs(120))
            .body(data.clone());
        if upload > 0 {
            put = put.header("if-match", (upload - 1).to_string());
        }
        let status = rt
            .block_on(async { put.send().await })
            .expect("upload")
            .status();
        assert!(status.is_success(), "upload {upload}: HTTP {status}");
        let stored = tb
            .object_bytes("insights-hub", &format!("{ENTITY}/sample.bin"))
            .expect("stored");
        let flipped = stored
            .iter()
            .zip(&data)
            .position(|(a, b)| a != b)
            .expect("the store flips a byte") as u64;
        expected += coverage(size as u64, flipped);
        for _ in 0..trials {
            let ranges = verify::sample_ranges(size as u64, SAMPLES, &mut rng);
            read_back += ranges.iter().map(|r| r.1).sum::<u64>();
            match rt.block_on(verify::sample(&*backend, &remote, &path, identity, &ranges)) {
                Ok(_) => {}
                Err(VerifyError::Mismatch(_)) => caught += 1,
                Err(e) => panic!("verification failed to run: {e}"),
            }
            total += 1;
        }
    }
    let p = caught as f64 / total as f64;
    let half = 1.96 * (p * (1.0 - p) / total as f64).sqrt();
    println!(
        "sample ({SAMPLES} random + first + last, 64 KiB each) on a 100 MiB object with one flipped byte:"
    );
    println!(
        "  caught {caught} of {total} verifications ({uploads} flips × {trials} draws) = {:.3} % ± {:.3} % (95 %)",
        100.0 * p,
        100.0 * half
    );
    println!(
        "  expected from the geometry for these flips: {:.3} %",
        100.0 * expected / uploads as f64
    );
    println!(
        "  read back per verification: {:.0} KiB ({:.4} % of the object); {:.1} s in all",
        read_back as f64 / total as f64 / 1024.0,
        100.0 * read_back as f64 / total as f64 / size as f64,
        started.elapsed().as_secs_f64()
    );
}

/// The chance that one draw of ranges covers byte `at`: always at the edges,
/// else that any of the random ranges does.
fn coverage(size: u64, at: u64) -> f64 {
    if at < SAMPLE || at >= size - SAMPLE {
        return 1.0;
    }
    // A random range starts uniformly in [0, size - SAMPLE]; it covers `at` when it
    // starts in (at - SAMPLE, at].
    let starts = (size - SAMPLE + 1) as f64;
    let one = SAMPLE as f64 / starts;
    1.0 - (1.0 - one).powi(SAMPLES as i32)
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

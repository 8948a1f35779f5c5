//! The binary: first stdout line, flags.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::TestResult;

#[tokio::test]
async fn binary_prints_its_address_first_and_takes_fault_flags() -> TestResult {
    let store = tempfile::tempdir()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dropship-testbed"))
        .args(["--listen", "127.0.0.1:0", "--store"])
        .arg(store.path())
        .args([
            "--fail-rate",
            "0.25",
            "--box-part-size",
            "1000",
            "--box-commit-202",
            "2",
            "--stall-rate",
            "0.5",
            "--secret",
            "s3",
            "--corrupt-offset",
            "-5",
            "--ih-require-if-match",
            "false",
            "--ih-min-part-size",
            "1024",
            "--ih-assets",
            "0123456789abcdef0123456789abcdef",
            "--exosite-product",
            "p1234",
            "--exosite-check-host",
            "true",
            "--exosite-part-size",
            "2048",
            "--exosite-range-rule",
            "at_least",
            "--exosite-resend-last",
            "accept",
            "--exosite-reinitiate",
            "conflict",
            "--exosite-upload-ttl-s",
            "60",
            "--exosite-gateway-error-rate",
            "0.5",
            "--edgio-account",
            "acme",
            "--edgio-token-ttl-s",
            "0",
            "--edgio-join-delay-ms",
            "250",
            "--edgio-rate-limit-rps",
            "7",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let result = async {
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .trim_end()
            .strip_prefix("listening on http://")
            .ok_or_else(|| format!("unexpected first line {line:?}"))?;
        let addr: std::net::SocketAddr = url.parse()?;
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let settings: Value = reqwest::get(format!("http://{addr}/_testbed/faults"))
            .await?
            .json()
            .await?;
        assert_eq!(settings["fail_rate"], 0.25);
        assert_eq!(settings["box_part_size"], 1000);
        assert_eq!(settings["box_commit_202"], 2);
        assert_eq!(settings["stall_rate"], 0.5);
        assert_eq!(settings["corrupt_offset"], -5);
        assert_eq!(settings["ih_require_if_match"], false);
        assert_eq!(settings["ih_min_part_size"], 1024);
        assert_eq!(settings["ih_assets"], "0123456789abcdef0123456789abcdef");
        assert_eq!(settings["exosite_product"], "p1234");
        assert_eq!(settings["exosite_check_host"], true);
        assert_eq!(settings["exosite_part_size"], 2048);
        assert_eq!(settings["exosite_range_rule"], "at_least");
        assert_eq!(settings["edgio_account"], "acme");
        assert_eq!(settings["edgio_token_ttl_s"], 0);
        assert_eq!(settings["edgio_join_delay_ms"], 250);
        assert_eq!(settings["edgio_rate_limit_rps"], 7);
        assert_eq!(settings["edgio_upload_ttl_s"], 86400);
        assert_eq!(settings["exosite_resend_last"], "accept");
        assert_eq!(settings["exosite_reinitiate"], "conflict");
        assert_eq!(settings["exosite_upload_ttl_s"], 60);
        assert_eq!(settings["exosite_gateway_error_rate"], 0.5);
        assert_eq!(settings["exosite_single_max"], 104_857_600, "a default");
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    child.kill()?;
    child.wait()?;
    result
}

#[test]
fn binary_refuses_out_of_range_flags() -> TestResult {
    for bad in [
        ["--reset-rate", "2"],
        ["--exosite-range-rule", "at-least"],
        ["--exosite-part-size", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_dropship-testbed"))
            .args(["--listen", "127.0.0.1:0"])
            .args(bad)
            .output()?;
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(out.stdout.is_empty());
    }
    Ok(())
}

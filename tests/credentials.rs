//! Where credentials come from and how they are renewed (issue 11): systemd's
//! `LoadCredential=` (`$CREDENTIALS_DIRECTORY`), a secret file others may read (a
//! warning, never a refusal), and reading the credential again on demand (what the
//! daemon's SIGHUP does) so that the next request carries the new one without first
//! meeting a refusal. The real binary, or the real backend, against the testbed on
//! loopback.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dropship::backend::{Backend, BackendConfig, FileDigests, FileSpec, Meter, PartBody};
use dropship::digest::digest_of;
use dropship_testbed::{DEFAULT_SECRET, Settings, Testbed};

use common::{Env, runtime, start_testbed};

fn box_backend(tb: &Testbed, secret_line: &str) -> String {
    let base = tb.emulator_url("box");
    format!("type = \"box\"\napi_url = \"{base}\"\nupload_url = \"{base}\"\n{secret_line}")
}

/// Sends `data` as `key` in one request; the testbed's request count it took.
fn upload(
    rt: &tokio::runtime::Runtime,
    tb: &Testbed,
    backend: &Arc<dyn Backend>,
    key: &str,
    data: &[u8],
) -> u64 {
    let caps = backend.capabilities();
    let data = Bytes::copy_from_slice(data);
    let digests = FileDigests {
        object: caps.object_digest.map(|k| digest_of(k, &data)),
        part: caps.part_digest.map(|k| digest_of(k, &data)),
    };
    let spec = FileSpec {
        key: key.into(),
        size: data.len() as u64,
        mtime: 0,
        content_type: None,
    };
    let before = tb.stats().requests;
    rt.block_on(backend.put_single(&spec, PartBody::new(data, Meter::new(None)), &digests))
        .unwrap_or_else(|e| panic!("{} upload of {key}: {e}", backend.name()));
    tb.stats().requests - before
}

/// One backend: an upload; the service's secret and the file change; `reread`
/// reports the change and the next upload takes as many requests as the first (no
/// refusal, no second try). Without it, the same change costs refusals.
fn rereads_on_demand(name: &str, config: impl Fn(&Testbed, &Path) -> String) {
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start_testbed(&rt, store.path(), Settings::default());
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, DEFAULT_SECRET).expect("secret");
    let cfg: BackendConfig = toml::from_str(&config(&tb, &secret)).expect("config");
    let backend = cfg.build(Default::default()).expect("backend");

    let first = upload(&rt, &tb, &backend, "one.txt", b"first");
    assert!(
        !rt.block_on(backend.reread_credentials()).expect("reread"),
        "{name}: nothing changed yet"
    );
    tb.set_secret("rotated-credential-2");
    std::fs::write(&secret, "rotated-credential-2").expect("secret");
    assert!(
        rt.block_on(backend.reread_credentials()).expect("reread"),
        "{name}: the change is seen"
    );
    let second = upload(&rt, &tb, &backend, "two.txt", b"second");
    assert_eq!(second, first, "{name}: requests after the reread");

    // A source that cannot be read: an error naming it, the credential in use kept.
    std::fs::remove_file(&secret).expect("rm");
    let e = rt
        .block_on(backend.reread_credentials())
        .expect_err("no file")
        .to_string();
    assert!(e.contains(&secret.display().to_string()), "{name}: {e}");
    assert!(!e.contains("rotated-credential-2"), "{name}: {e}");
    let third = upload(&rt, &tb, &backend, "three.txt", b"third");
    // (Edgio's first two uploads each began with a login; this one reuses it.)
    assert!(
        third <= first,
        "{name}: the credential in use stays ({third} requests)"
    );

    // The same change without the reread: the service refuses first.
    tb.set_secret("rotated-credential-3");
    std::fs::write(&secret, "rotated-credential-3").expect("secret");
    let unprompted = upload(&rt, &tb, &backend, "four.txt", b"fourth");
    assert!(unprompted > second, "{name}: {unprompted} vs {second}");
    println!(
        "figure: {name}: an upload after a credential change took {second} request(s) with the reread, {unprompted} without"
    );
}

#[test]
fn rereading_credentials_on_demand_spares_the_refusal() {
    rereads_on_demand("box", |tb, secret| {
        box_backend(tb, &format!("token_file = \"{}\"", secret.display()))
    });
    rereads_on_demand("edgio", |tb, secret| {
        format!(
            "type = \"edgio\"\nupload_url = \"{}\"\nusername = \"testbed\"\npassword_file = \"{}\"",
            tb.emulator_url("edgio"),
            secret.display()
        )
    });
}

#[test]
fn a_systemd_credential_is_read_from_the_credentials_directory() {
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start_testbed(&rt, store.path(), Settings::default());
    let env = Env::new(
        "300ms",
        "",
        &box_backend(&tb, "token_credential = \"box-token\""),
        "",
    );
    // What systemd makes of LoadCredential=box-token:/etc/dropship/box-token.
    let creds = env.dir.path().join("credentials");
    std::fs::create_dir_all(&creds).expect("mkdir");
    std::fs::write(creds.join("box-token"), DEFAULT_SECRET).expect("credential");

    // Outside such a unit: check-config warns, naming the key and the unit line;
    // run refuses with the same words.
    let out = env.cli(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("warning:")
            && text.contains("backend.token_credential")
            && text.contains("LoadCredential=box-token:"),
        "{text}"
    );
    let out = env.cli(&["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("LoadCredential=box-token:"), "{err}");

    let _d = env.spawn_with(|c| {
        c.env("CREDENTIALS_DIRECTORY", &creds);
    });
    env.drop_file("via-credential.txt", b"sent with a systemd credential");
    env.wait_state("via-credential.txt", "done", Duration::from_secs(30));
    assert!(!env.log_text().contains(DEFAULT_SECRET));
}

#[test]
fn a_secret_file_others_can_read_is_warned_about_not_refused() {
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start_testbed(&rt, store.path(), Settings::default());
    let env = Env::new(
        "300ms",
        "",
        &box_backend(&tb, "token_file = \"box-token\""),
        "",
    );
    let token = env.dir.path().join("box-token");
    std::fs::write(&token, DEFAULT_SECRET).expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let _d = env.spawn_ready();
    env.drop_file("sent.txt", b"sent all the same");
    env.wait_state("sent.txt", "done", Duration::from_secs(30));
    let log = env.log_text();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("readable by every user"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(
        warned[0].contains("backend.token_file")
            && warned[0].contains(&token.display().to_string())
            && warned[0].contains("0644"),
        "{}",
        warned[0]
    );
    assert!(!log.contains(DEFAULT_SECRET), "{log}");
    // check-config says so too, and the file still passes.
    let out = env.cli(&["check-config"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.lines().any(|l| l.contains("warning:")
            && l.contains("backend.token_file")
            && l.contains("readable by every user")),
        "{said}"
    );
    assert!(!said.contains(DEFAULT_SECRET), "{said}");
    // 0600: nothing to say.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = env.cli(&["check-config"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("readable by"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

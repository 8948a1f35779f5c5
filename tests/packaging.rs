//! The Debian package's inputs, checked without building it (`scripts/package-deb`
//! takes minutes; CI runs this file in a second).
//!
//! - Completions and man pages come from the clap definitions: every verb that
//!   `dropship --help` lists must appear in each of them, so a new verb is documented
//!   or this fails.
//! - Cargo.toml's `[package.metadata.deb]` assets: a source in the repository must
//!   exist; a generated one (under `target/assets/`) must be a file that
//!   `scripts/package-deb` writes, and every file it writes must be packaged.
//! - The default config the package installs points at the folders its postinst makes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_dropship");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Where `scripts/package-deb` puts what it generates, as Cargo.toml names it.
const GENERATED: &str = "target/assets/";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("start the command");
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn dropship(args: &[&str]) -> String {
    String::from_utf8(run(Command::new(BIN).args(args)).stdout).expect("UTF-8 output")
}

/// The verbs, as `dropship --help` lists them under "Commands:" (`help` aside).
fn verbs() -> Vec<String> {
    let help = dropship(&["--help"]);
    let verbs: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .map(str::to_string)
        .collect();
    for expected in [
        "run",
        "status",
        "check-config",
        "retry",
        "completions",
        "man",
    ] {
        assert!(
            verbs.iter().any(|v| v == expected),
            "{expected} not found in --help:\n{help}"
        );
    }
    verbs
}

#[test]
fn completions_offer_every_verb() {
    let verbs = verbs();
    for shell in ["bash", "zsh", "fish"] {
        let script = dropship(&["completions", shell]);
        for verb in &verbs {
            assert!(
                script.contains(verb.as_str()),
                "the {shell} completions do not offer `{verb}`"
            );
        }
    }
    // The function bash-completion loads by the command's name.
    assert!(dropship(&["completions", "bash"]).contains("complete -F _dropship"));
}

#[test]
fn man_pages_cover_every_verb() {
    let verbs = verbs();
    let page = dropship(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH dropship 1"),
        "{page}"
    );
    for section in [
        ".SH NAME",
        ".SH SUBCOMMANDS",
        ".SH FILES",
        ".SH \"EXIT STATUS\"",
    ] {
        assert!(page.contains(section), "dropship.1 lacks {section}");
    }
    for verb in &verbs {
        // roff escapes the hyphens of `dropship-check-config(1)`.
        let reference = format!("dropship-{verb}(1)").replace('-', "\\-");
        assert!(page.contains(&reference), "dropship.1 does not list {verb}");
    }

    // --out-dir: the same dropship.1, and one page per verb with its options.
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("man");
    dropship(&["man", "--out-dir", out_dir.to_str().expect("UTF-8 path")]);
    let top = std::fs::read_to_string(out_dir.join("dropship.1")).expect("dropship.1");
    assert_eq!(top, page, "dropship.1 differs from `dropship man`");
    let mut expected: BTreeSet<String> = verbs.iter().map(|v| format!("dropship-{v}.1")).collect();
    expected.insert("dropship.1".into());
    assert_eq!(files_below(&out_dir), expected);
    let status = std::fs::read_to_string(out_dir.join("dropship-status.1")).expect("page");
    assert!(
        status.contains("\\-\\-json"),
        "dropship-status.1 lacks --json"
    );
}

/// File names below `dir`, relative to it, with `/` separators.
fn files_below(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("below dir");
                found.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found
}

/// Cargo.toml's `[package.metadata.deb]` table.
fn deb_metadata() -> toml::Table {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Table = text.parse().expect("Cargo.toml parses");
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

/// `(source, dest)` of every asset, array or table form.
fn deb_assets() -> Vec<(String, String)> {
    let meta = deb_metadata();
    let assets = meta["assets"].as_array().expect("assets is an array");
    assets
        .iter()
        .map(|a| {
            let field = |i: usize, key: &str| {
                let v = match a {
                    toml::Value::Array(items) => items.get(i),
                    toml::Value::Table(t) => t.get(key),
                    other => panic!("asset {other} is neither an array nor a table"),
                };
                v.and_then(toml::Value::as_str)
                    .unwrap_or_else(|| panic!("asset {a} lacks its {key}"))
                    .to_string()
            };
            (field(0, "source"), field(1, "dest"))
        })
        .collect()
}

#[test]
fn deb_assets_exist_or_are_generated_by_the_script() {
    let assets = deb_assets();
    let dests: Vec<&str> = assets.iter().map(|(_, d)| d.as_str()).collect();
    for needed in [
        "usr/bin/",
        "etc/dropship/dropship.toml",
        "usr/share/bash-completion/completions/dropship",
        "usr/share/zsh/vendor-completions/_dropship",
        "usr/share/fish/vendor_completions.d/dropship.fish",
        "usr/share/man/man1/",
    ] {
        assert!(dests.contains(&needed), "no asset installs {needed}");
    }

    // What the script writes, from this binary.
    let dir = tempfile::tempdir().expect("tempdir");
    run(Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/package-deb"))
        .args(["--assets-only", BIN])
        .arg(dir.path()));
    let written = files_below(dir.path());
    let mut packaged = BTreeSet::new();

    for (source, dest) in &assets {
        if let Some(bin) = source.strip_prefix("target/release/") {
            // cargo-deb resolves target/release/ to the real target folder.
            assert_eq!(bin, "dropship", "{source}: not a binary of this crate");
            assert_eq!(dest, "usr/bin/");
        } else if let Some(rel) = source.strip_prefix(GENERATED) {
            let pattern = glob::Pattern::new(rel).expect("a glob");
            let matched: Vec<&String> = written.iter().filter(|f| pattern.matches(f)).collect();
            assert!(
                !matched.is_empty(),
                "{source} is not written by scripts/package-deb (it writes {written:?})"
            );
            packaged.extend(matched.into_iter().cloned());
        } else {
            let path = Path::new(ROOT).join(source);
            let found = glob::glob(path.to_str().expect("UTF-8 path"))
                .expect("a glob")
                .flatten()
                .count();
            assert!(found > 0, "{source}: no such file in the repository");
        }
    }
    let unpackaged: Vec<&String> = written.difference(&packaged).collect();
    assert!(
        unpackaged.is_empty(),
        "generated but not packaged: {unpackaged:?}"
    );
}

#[test]
fn deb_scripts_and_unit_are_where_cargo_deb_looks() {
    let meta = deb_metadata();
    let scripts = PathBuf::from(ROOT).join(meta["maintainer-scripts"].as_str().expect("path"));
    for name in ["postinst", "postrm"] {
        let text = std::fs::read_to_string(scripts.join(name)).expect("maintainer script");
        // cargo-deb puts the systemd fragments there; without it they are dropped.
        assert!(text.contains("#DEBHELPER#"), "{name} lacks #DEBHELPER#");
        assert!(text.starts_with("#!/bin/sh\n"), "{name}: not a sh script");
    }
    let units = &meta["systemd-units"];
    let unit_dir = PathBuf::from(ROOT).join(units["unit-scripts"].as_str().expect("path"));
    // `<package>.service` is the name cargo-deb picks up.
    assert!(unit_dir.join("dropship.service").is_file());
}

#[test]
fn the_packaged_config_uses_the_folders_postinst_makes() {
    let config = deb_assets()
        .into_iter()
        .find(|(_, dest)| dest == "etc/dropship/dropship.toml")
        .map(|(source, _)| Path::new(ROOT).join(source))
        .expect("the config asset");
    let checked = dropship(&["check-config", "--config", config.to_str().expect("UTF-8")]);
    let postinst =
        std::fs::read_to_string(Path::new(ROOT).join("debian/postinst")).expect("postinst");
    let unit =
        std::fs::read_to_string(Path::new(ROOT).join("systemd/dropship.service")).expect("unit");
    for (key, folder) in [
        ("watch", "/var/spool/dropship/outbox"),
        ("journal", "/var/lib/dropship/journal.db"),
    ] {
        assert!(
            checked
                .lines()
                .any(|l| l.split_whitespace().eq([key, folder])),
            "{} does not set {key} to {folder}:\n{checked}",
            config.display()
        );
    }
    for folder in [
        "/var/spool/dropship/outbox",
        "/var/spool/dropship/sent",
        "/var/lib/dropship",
    ] {
        assert!(postinst.contains(folder), "postinst does not make {folder}");
    }
    // The unit's spool and state folders, and the config path it runs with.
    assert!(unit.contains("ReadWritePaths=/var/spool/dropship\n"));
    assert!(unit.contains("StateDirectory=dropship\n"));
    assert!(unit.contains("--config /etc/dropship/dropship.toml"));
}

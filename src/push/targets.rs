//! From `dropship push` arguments to files the journal can record: each argument
//! becomes a [`Target`] (a regular file, its remote key) or is refused with a reason
//! for that argument alone.
//!
//! Keys, in order of precedence:
//! 1. `--key KEY`, with a single FILE: the key as given (plain `/`-separated names).
//! 2. A file inside the watched folder: its path below it, as the watcher would
//!    name it (and recorded under the watcher's spelling of the path, so that the
//!    journal knows it is the same file and the daemon never sends it twice).
//! 3. Any other file: its name alone, like `rclone copy FILE remote:`.
//!
//! Links in the argument are resolved once, here: the journal records the real path,
//! and the engine then requires that path to be a regular file reached without a link
//! (see `engine::attempt::confinement`).

use std::path::{Component, Path, PathBuf};

use crate::config::Config;
use crate::identity::Identity;

/// A file to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The argument as given, for messages.
    pub given: PathBuf,
    /// The path the journal records: links resolved, or the watcher's spelling for a
    /// file inside the watched folder.
    pub path: PathBuf,
    /// The remote key.
    pub key: String,
    /// The content read at push time; the engine refuses a file that changes after.
    pub identity: Identity,
    /// The `[[rule]]` (its `match`) a file of the outbox falls under, and its
    /// priority; none and 0 for a file outside.
    pub rule: Option<String>,
    pub priority: i64,
    /// Compressed before upload as its rule or `upload.compress` says (a file of
    /// the outbox), else sent as it is.
    pub compress: crate::compress::Compress,
}

/// An argument that cannot be pushed, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub given: PathBuf,
    pub why: String,
}

/// Resolves every argument. `key` (from `--key`) applies to a single file; the
/// caller has checked there is one. The same file given twice is pushed once; two
/// files that would get the same key are not both pushed (the second would replace
/// the first at the service).
pub fn resolve(cfg: &Config, files: &[PathBuf], key: Option<&str>) -> (Vec<Target>, Vec<Refused>) {
    let outbox = std::fs::canonicalize(&cfg.watch.path).ok();
    let mut targets: Vec<Target> = Vec::new();
    let mut refused = Vec::new();
    for given in files {
        match resolve_one(cfg, outbox.as_deref(), given, key) {
            Ok(t) if targets.iter().any(|o| o.path == t.path) => {}
            Ok(t) => match targets.iter().find(|o| o.key == t.key) {
                Some(first) => refused.push(Refused {
                    given: given.clone(),
                    why: format!(
                        "it would be stored under the same key {:?} as {}",
                        t.key,
                        first.given.display()
                    ),
                }),
                None => targets.push(t),
            },
            Err(why) => refused.push(Refused {
                given: given.clone(),
                why,
            }),
        }
    }
    (targets, refused)
}

fn resolve_one(
    cfg: &Config,
    outbox: Option<&Path>,
    given: &Path,
    key: Option<&str>,
) -> Result<Target, String> {
    let real = std::fs::canonicalize(given).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => e.to_string(),
    })?;
    let meta = std::fs::symlink_metadata(&real).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(if meta.is_dir() {
            "is a folder; push takes files".into()
        } else {
            "not a regular file".into()
        });
    }
    // Refused now rather than left to wait in `retrying` until its mode is fixed,
    // as a file of the outbox would.
    std::fs::File::open(&real).map_err(|e| format!("cannot read it: {e}"))?;
    let inside = outbox
        .and_then(|o| real.strip_prefix(o).ok())
        .map(|rel| cfg.watch.path.join(rel));
    let identity = Identity::of(&meta);
    // A file of the outbox goes where the watcher would send it: its rule's key
    // (or `upload.key`), its rule's priority.
    let route = inside
        .as_ref()
        .map(|path| cfg.route(path, identity.mtime_ns));
    let key = match (key, &route) {
        (Some(k), _) => check_key(k)?,
        (None, Some(route)) => route.key.clone()?,
        (None, None) => real
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or("its name is not valid UTF-8; give --key")?,
    };
    Ok(Target {
        given: given.to_path_buf(),
        path: inside.unwrap_or(real),
        key,
        identity,
        rule: route.as_ref().and_then(|r| r.rule.clone()),
        priority: route.as_ref().map_or(0, |r| r.priority),
        compress: route
            .as_ref()
            .map_or(crate::compress::Compress::None, |r| r.compress),
    })
}

/// A `--key` must be plain names joined by `/`: never empty, absolute, `.` or `..`,
/// so that no backend can be asked to store outside its folder.
fn check_key(key: &str) -> Result<String, String> {
    let plain = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && Path::new(key)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(key.to_string())
    } else {
        Err(format!(
            "--key {key:?} is not a plain key (names joined by '/', without '.' or '..')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let text = "[watch]\npath = \"outbox\"\n[journal]\npath = \"j.db\"\n\
                    [backend]\ntype = \"local\"\npath = \"remote\"\n";
        crate::config::parse(&dir.join("dropship.toml"), text).expect("config")
    }

    #[test]
    fn keys_come_from_the_name_the_outbox_or_the_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path());
        std::fs::create_dir_all(dir.path().join("outbox/sub")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("elsewhere")).expect("mkdir");
        let inside = dir.path().join("outbox/sub/a.txt");
        let outside = dir.path().join("elsewhere/b.txt");
        std::fs::write(&inside, b"a").expect("write");
        std::fs::write(&outside, b"b").expect("write");
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");

        let (t, r) = resolve(&cfg, &[inside.clone(), outside.clone()], None);
        assert!(r.is_empty(), "{r:?}");
        assert_eq!(t[0].key, "sub/a.txt");
        assert_eq!(t[0].path, cfg.watch.path.join("sub/a.txt"));
        assert_eq!(t[1].key, "b.txt");

        // A link is resolved: the real file, under the real file's name.
        let (t, _) = resolve(&cfg, std::slice::from_ref(&link), None);
        assert_eq!(t[0].key, "b.txt");
        assert_eq!(
            t[0].path,
            std::fs::canonicalize(&outside).expect("canonical")
        );

        let (t, _) = resolve(&cfg, std::slice::from_ref(&outside), Some("x/y.bin"));
        assert_eq!(t[0].key, "x/y.bin");
        for bad in ["", "/abs", "a/../b", "./a", "a//b"] {
            let (t, r) = resolve(&cfg, std::slice::from_ref(&outside), Some(bad));
            assert!(t.is_empty() && r.len() == 1, "{bad:?} accepted");
        }
    }

    #[test]
    fn bad_arguments_are_refused_one_by_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path());
        let a = dir.path().join("a/x.txt");
        let b = dir.path().join("b/x.txt");
        for p in [&a, &b] {
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, b"x").expect("write");
        }
        let missing = dir.path().join("missing.txt");
        let folder = dir.path().join("a");
        let (t, r) = resolve(
            &cfg,
            &[
                a.clone(),
                missing.clone(),
                folder.clone(),
                b.clone(),
                a.clone(),
            ],
            None,
        );
        assert_eq!(t.len(), 1, "a once: {t:?}");
        let why = |p: &PathBuf| r.iter().find(|x| &x.given == p).map(|x| x.why.clone());
        assert_eq!(why(&missing).as_deref(), Some("no such file"));
        assert!(why(&folder).is_some_and(|w| w.contains("folder")));
        assert!(why(&b).is_some_and(|w| w.contains("same key")));
    }
}

//! Remote key templates: `upload.key` and a rule's `key`.
//!
//! A template is text with placeholders: `{path}` (the path relative to the watched
//! folder), `{dir}` (its folder part, empty at the top), `{name}`, `{stem}` (the
//! name without its last extension), `{ext}` (that extension, without the dot),
//! `{host}` (this machine's host name), `{mtime:FORMAT}` (the file's modification
//! time, UTC) and `{now:FORMAT}` (the time the file is queued, UTC), FORMAT being
//! strftime's (`%Y/%m/%d`; without one, `%Y-%m-%dT%H:%M:%SZ`). `{{` and `}}` are a
//! literal brace.
//!
//! Two rules keep natural templates working at the edges: an empty `{dir}` (a file at
//! the top of the outbox) takes the `/` right after it along, so `{dir}/{name}` is
//! `name`; and an empty `{ext}` takes the `.` right before it, so `{stem}.{ext}` of
//! `README` is `README`.
//!
//! The key is rendered once, when the file is queued, and kept in the journal: a
//! restart, a reload or a clock change never moves a queued file to another key.
//! A rendered key that would leave the remote folder (a leading `/`, an empty, `.`
//! or `..` component) refuses that file, with the reason, rather than guess.

use std::fmt;

use jiff::Timestamp;

/// The strftime format of `{mtime}` and `{now}` without one.
const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Path,
    Dir,
    Name,
    Stem,
    Ext,
    Host,
    Mtime(String),
    Now(String),
}

/// What a template is rendered from.
#[derive(Debug, Clone)]
pub struct KeyInput<'a> {
    /// The path relative to the watched folder, `/`-separated, UTF-8.
    pub rel: &'a str,
    /// The file's modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// When the file is queued.
    pub now: Timestamp,
    pub host: &'a str,
}

impl KeyTemplate {
    /// The default, `{path}`: the relative path as it is.
    pub fn path() -> KeyTemplate {
        KeyTemplate {
            source: "{path}".into(),
            pieces: vec![Piece::Path],
        }
    }

    /// Parses `source`; the error names what is wrong (an unknown placeholder, a
    /// format strftime refuses, a lone brace).
    pub fn parse(source: &str) -> Result<KeyTemplate, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, n)| n) == Some('{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().map(|&(_, n)| n) == Some('}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => return Err(format!("a lone `}}` at {at} (write `}}}}` for a brace)")),
                '{' => {
                    let rest = &source[at + 1..];
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("`{{` at {at} is never closed"))?;
                    let inner = &rest[..end];
                    for _ in 0..inner.chars().count() + 1 {
                        chars.next();
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(placeholder(inner)?);
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if pieces.is_empty() {
            return Err("the template is empty".into());
        }
        Ok(KeyTemplate {
            source: source.to_string(),
            pieces,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The key of one file, or why it cannot have one.
    pub fn render(&self, input: &KeyInput<'_>) -> Result<String, String> {
        let (dir, name) = match input.rel.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", input.rel),
        };
        let (stem, ext) = split_ext(name);
        let mut out = String::new();
        let mut skip_slash = false;
        for (i, piece) in self.pieces.iter().enumerate() {
            let value: std::borrow::Cow<'_, str> = match piece {
                Piece::Text(t) => {
                    let t = if skip_slash {
                        t.strip_prefix('/').unwrap_or(t)
                    } else {
                        t
                    };
                    // An empty `{ext}` next takes the `.` before it.
                    let next_is_empty_ext =
                        matches!(self.pieces.get(i + 1), Some(Piece::Ext)) && ext.is_empty();
                    let t = if next_is_empty_ext {
                        t.strip_suffix('.').unwrap_or(t)
                    } else {
                        t
                    };
                    skip_slash = false;
                    out.push_str(t);
                    continue;
                }
                Piece::Path => input.rel.into(),
                Piece::Dir => dir.into(),
                Piece::Name => name.into(),
                Piece::Stem => stem.into(),
                Piece::Ext => ext.into(),
                Piece::Host => input.host.into(),
                Piece::Mtime(f) => format_time(f, mtime(input.mtime_ns))?.into(),
                Piece::Now(f) => format_time(f, input.now)?.into(),
            };
            skip_slash = matches!(piece, Piece::Dir) && value.is_empty();
            out.push_str(&value);
        }
        match key_problem(&out) {
            Some(why) => Err(format!(
                "the key {out:?} from upload.key {:?} {why}",
                self.source
            )),
            None => Ok(out),
        }
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn placeholder(inner: &str) -> Result<Piece, String> {
    let (name, format) = match inner.split_once(':') {
        Some((n, f)) => (n, Some(f)),
        None => (inner, None),
    };
    let time = |f: Option<&str>| -> Result<String, String> {
        let f = f.unwrap_or(DEFAULT_TIME_FORMAT);
        if f.is_empty() {
            return Err(format!("`{{{inner}}}` has an empty format"));
        }
        // Refused now, at `check-config`, rather than file by file.
        format_time(f, Timestamp::UNIX_EPOCH)
            .map(|_| f.to_string())
            .map_err(|e| format!("`{{{inner}}}`: {e}"))
    };
    let plain = |p: Piece| match format {
        None => Ok(p),
        Some(_) => Err(format!("`{{{name}}}` takes no format")),
    };
    match name {
        "path" => plain(Piece::Path),
        "dir" => plain(Piece::Dir),
        "name" => plain(Piece::Name),
        "stem" => plain(Piece::Stem),
        "ext" => plain(Piece::Ext),
        "host" => plain(Piece::Host),
        "mtime" => Ok(Piece::Mtime(time(format)?)),
        "now" => Ok(Piece::Now(time(format)?)),
        other => Err(format!(
            "unknown placeholder `{{{other}}}` (known: path, dir, name, stem, ext, host, mtime:FORMAT, now:FORMAT)"
        )),
    }
}

/// `name` cut at its last `.`: `a.tar.gz` → (`a.tar`, `gz`); a leading dot is part
/// of the stem (`.bashrc` has no extension).
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(0) | None => (name, ""),
        Some(i) => (&name[..i], &name[i + 1..]),
    }
}

fn mtime(ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn format_time(format: &str, t: Timestamp) -> Result<String, String> {
    jiff::fmt::strtime::format(format, t).map_err(|e| format!("strftime format {format:?}: {e}"))
}

/// Why `key` cannot name an object under the remote folder, if it cannot.
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return Some("is empty");
    }
    if key.starts_with('/') {
        return Some("starts with `/`, outside the remote folder");
    }
    for c in key.split('/') {
        match c {
            "" => return Some("has an empty component (`//` or a trailing `/`)"),
            "." | ".." => return Some("has a `.` or `..` component, outside the remote folder"),
            _ => {}
        }
    }
    None
}

/// This machine's host name, for `{host}`; `localhost` if it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, rel: &str) -> Result<String, String> {
        KeyTemplate::parse(t).expect("parse").render(&KeyInput {
            rel,
            // 2026-11-24T13:14:15.5Z
            mtime_ns: 1_795_526_055_500_000_000,
            now: Timestamp::from_second(1_796_000_000).expect("time"),
            host: "gw-7",
        })
    }

    #[test]
    fn placeholders_render_from_the_file() {
        assert_eq!(
            render("{path}", "app/x/a.log").as_deref(),
            Ok("app/x/a.log")
        );
        assert_eq!(
            render("{host}/{dir}/{stem}-{mtime:%Y%m%d}.{ext}", "app/x/a.tar.gz").as_deref(),
            Ok("gw-7/app/x/a.tar-20261124.gz")
        );
        assert_eq!(
            render("logs/{mtime:%Y/%m/%d}/{name}", "a.log").as_deref(),
            Ok("logs/2026/11/24/a.log")
        );
        assert_eq!(
            render("{now:%Y}/{mtime}/{name}", "a").as_deref(),
            Ok("2026/2026-11-24T13:14:15Z/a")
        );
        assert_eq!(render("{{{name}}}", "a").as_deref(), Ok("{a}"));
    }

    #[test]
    fn an_empty_dir_or_ext_takes_its_separator_along() {
        assert_eq!(render("{dir}/{name}", "top.log").as_deref(), Ok("top.log"));
        assert_eq!(
            render("{dir}/{name}", "d/top.log").as_deref(),
            Ok("d/top.log")
        );
        assert_eq!(
            render("x/{dir}/{stem}.{ext}", "README").as_deref(),
            Ok("x/README")
        );
        assert_eq!(render("{stem}.{ext}", ".bashrc").as_deref(), Ok(".bashrc"));
    }

    #[test]
    fn keys_that_leave_the_remote_folder_are_refused() {
        let e = render("/{name}", "a").expect_err("leading slash");
        assert!(e.contains("starts with `/`"), "{e}");
        assert!(render("{name}/../x", "a").is_err());
        assert!(render("{name}//x", "a").is_err());
        assert!(render("{name}/", "a").is_err());
        assert!(render("./{name}", "a").is_err());
        assert_eq!(key_problem("a/b.c"), None);
    }

    #[test]
    fn bad_templates_are_refused_at_parse() {
        for (t, want) in [
            ("{size}", "unknown placeholder `{size}`"),
            ("{name", "never closed"),
            ("a}b", "lone `}`"),
            ("{mtime:%J}", "strftime"),
            ("{mtime:}", "empty format"),
            ("{name:%Y}", "takes no format"),
            ("", "empty"),
        ] {
            let e = KeyTemplate::parse(t).expect_err(t);
            assert!(e.contains(want), "{t}: {e}");
        }
    }
}

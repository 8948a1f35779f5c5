//! MIME types stored with an object: `content_type = "auto"` picks one from the key's
//! extension (a short table of what devices upload; anything else is
//! `application/octet-stream`, which never misleads a consumer), and a type given in
//! the config is checked once, at load, against what every service that stores one
//! accepts.

/// Longest type accepted: Insights Hub's `type` header allows 1–191 characters.
const MAX_LEN: usize = 191;

/// Whether `t` is a bare MIME type such as `text/csv`: two RFC 9110 tokens around one
/// `/`. Parameters (`; charset=...`) are refused: Edgio answers `-33` to them, and a
/// type that one backend takes and another refuses would fail files only after a
/// backend switch.
pub fn is_valid(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    t.len() <= MAX_LEN && t.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

/// The MIME type for a file named `name`.
pub fn for_name(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "html" | "htm" => "text/html",
        "gz" => "application/gzip",
        "zst" => "application/zstd",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "mp4" => "video/mp4",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::{for_name, is_valid};

    #[test]
    fn known_extensions_and_the_fallback() {
        assert_eq!(for_name("report.CSV"), "text/csv");
        assert_eq!(for_name("logs/app.log.gz"), "application/gzip");
        assert_eq!(for_name("noext"), "application/octet-stream");
        assert_eq!(for_name("x.weird"), "application/octet-stream");
    }

    #[test]
    fn only_bare_types_are_valid() {
        for ok in [
            "text/csv",
            "application/vnd.ms-excel",
            "application/x-ndjson",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        let long = format!("a/{}", "b".repeat(190));
        for bad in [
            "",
            "text",
            "text/",
            "/csv",
            "text/csv; charset=utf-8",
            "text /csv",
            "a/b/c",
            "text/c\nsv",
            long.as_str(),
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}

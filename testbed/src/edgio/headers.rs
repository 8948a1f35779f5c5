//! The `X-Agile-*` request headers shared by the upload calls, each judged the same
//! way everywhere (protocols/edgio.md §Small files, §Multipart 1):
//!
//! - booleans (`X-Agile-Recursive`): `true|yes|1` / `false|no|0`, without case; else the
//!   caller's code (`-39`);
//! - `X-Agile-MTime`: seconds since the epoch, digits only;
//! - content types: `type/subtype`, token characters only;
//! - `X-Agile-Encoding`: absent or `UTF8` (then names are RFC 3986 percent-encoded and
//!   decoded here); anything else is `-51`.
//!
//! A header whose value is not visible ASCII counts as malformed.

use axum::http::HeaderMap;

/// A header that is present but not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// The header's text, if present; `Err` if it is not visible ASCII.
pub(crate) fn text<'a>(h: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Malformed> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| Malformed),
    }
}

/// A boolean header or form field, `default` when absent.
pub(crate) fn flag(value: Option<&str>, default: bool) -> Result<bool, Malformed> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "yes" | "1") => Ok(true),
        Some("false" | "no" | "0") => Ok(false),
        Some(_) => Err(Malformed),
    }
}

/// `X-Agile-MTime`: `None` when absent.
pub(crate) fn mtime(h: &HeaderMap) -> Result<Option<u64>, Malformed> {
    match text(h, "x-agile-mtime")? {
        None => Ok(None),
        Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
            t.parse().map(Some).map_err(|_| Malformed)
        }
        Some(_) => Err(Malformed),
    }
}

/// A MIME type such as `text/plain`: two RFC 9110 tokens around one `/`, parameters
/// refused (the service keeps the bare type).
pub(crate) fn is_content_type(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    t.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

/// `X-Agile-Content-Type`: `None` when absent.
pub(crate) fn content_type(h: &HeaderMap) -> Result<Option<String>, Malformed> {
    match text(h, "x-agile-content-type")? {
        None => Ok(None),
        Some(t) if is_content_type(t) => Ok(Some(t.to_string())),
        Some(_) => Err(Malformed),
    }
}

/// How names in headers are written (`X-Agile-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// No header: names are taken as sent.
    Plain,
    /// `UTF8`: names are percent-encoded UTF-8.
    Utf8,
}

pub(crate) fn encoding(h: &HeaderMap) -> Result<Encoding, Malformed> {
    match text(h, "x-agile-encoding")? {
        None => Ok(Encoding::Plain),
        Some(t) if t.eq_ignore_ascii_case("utf8") || t.eq_ignore_ascii_case("utf-8") => {
            Ok(Encoding::Utf8)
        }
        Some(_) => Err(Malformed),
    }
}

/// A name header (`X-Agile-Basename`, `X-Agile-Directory`) decoded per `enc`.
pub(crate) fn name(
    h: &HeaderMap,
    header: &str,
    enc: Encoding,
) -> Result<Option<String>, Malformed> {
    let Some(raw) = text(h, header)? else {
        return Ok(None);
    };
    match enc {
        Encoding::Plain => Ok(Some(raw.to_string())),
        Encoding::Utf8 => percent_decode(raw).map(Some),
    }
}

/// RFC 3986 percent-decoding into UTF-8.
fn percent_decode(s: &str) -> Result<String, Malformed> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(Malformed)?;
            let hex = std::str::from_utf8(hex).map_err(|_| Malformed)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| Malformed)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn flags() {
        assert_eq!(flag(None, true), Ok(true));
        assert_eq!(flag(Some("YES"), false), Ok(true));
        assert_eq!(flag(Some("0"), true), Ok(false));
        assert_eq!(flag(Some("maybe"), true), Err(Malformed));
        assert_eq!(flag(Some(""), true), Err(Malformed));
    }

    #[test]
    fn content_types() {
        assert!(is_content_type("text/plain"));
        assert!(is_content_type("application/vnd.ms-excel"));
        for bad in [
            "",
            "text",
            "text/",
            "/plain",
            "text/plain; charset=x",
            "a/b/c",
        ] {
            assert!(!is_content_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn utf8_names_are_percent_decoded() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-agile-basename",
            HeaderValue::from_static("caf%C3%A9.txt"),
        );
        assert_eq!(
            name(&h, "x-agile-basename", Encoding::Utf8),
            Ok(Some("café.txt".into()))
        );
        assert_eq!(
            name(&h, "x-agile-basename", Encoding::Plain),
            Ok(Some("caf%C3%A9.txt".into()))
        );
        h.insert("x-agile-basename", HeaderValue::from_static("bad%zz"));
        assert_eq!(name(&h, "x-agile-basename", Encoding::Utf8), Err(Malformed));
    }

    #[test]
    fn mtimes() {
        let mut h = HeaderMap::new();
        assert_eq!(mtime(&h), Ok(None));
        h.insert("x-agile-mtime", HeaderValue::from_static("1437426380"));
        assert_eq!(mtime(&h), Ok(Some(1_437_426_380)));
        h.insert("x-agile-mtime", HeaderValue::from_static("-1"));
        assert_eq!(mtime(&h), Err(Malformed));
    }
}

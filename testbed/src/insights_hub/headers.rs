//! The metadata headers every upload call carries (protocols/insights-hub.md rule 3).
//!
//! `description` (1–100 characters), `type` (1–191 characters), `timestamp` (RFC 3339
//! date-time) and `If-Match` (a non-negative integer etag). Any of them present but
//! invalid is a 400, judged before the body is read. Lengths count characters, and the
//! lower bounds come from the v3.2.4 OpenAPI spec (`minLength: 1`).

use axum::http::HeaderMap;

use super::error::IhError;
use super::timestamp;

/// What the upload headers say, once valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) description: Option<String>,
    /// The file's MIME type as the client states it.
    pub(crate) file_type: Option<String>,
    /// The file's own time, in epoch milliseconds.
    pub(crate) timestamp_ms: Option<i64>,
    /// The etag the client believes current; `None` if not sent.
    pub(crate) if_match: Option<u64>,
}

/// Reads a header's raw bytes as UTF-8 text (a description may be non-ASCII).
fn text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, IhError> {
    headers
        .get(name)
        .map(|v| {
            std::str::from_utf8(v.as_bytes())
                .map_err(|_| IhError::bad_request(format!("Header {name} is not valid UTF-8.")))
        })
        .transpose()
}

fn bounded(headers: &HeaderMap, name: &str, max_chars: usize) -> Result<Option<String>, IhError> {
    let Some(v) = text(headers, name)? else {
        return Ok(None);
    };
    let n = v.chars().count();
    if n == 0 || n > max_chars {
        return Err(IhError::bad_request(format!(
            "Header {name} must be 1 to {max_chars} characters long, got {n}."
        )));
    }
    Ok(Some(v.to_string()))
}

/// Parses and checks the four headers.
pub(crate) fn parse(headers: &HeaderMap) -> Result<Meta, IhError> {
    let description = bounded(headers, "description", 100)?;
    let file_type = bounded(headers, "type", 191)?;
    let timestamp_ms = text(headers, "timestamp")?
        .map(|v| {
            timestamp::parse_ms(v.trim()).ok_or_else(|| {
                IhError::bad_request(format!(
                    "Header timestamp is not an ISO 8601 date-time: {v:?}."
                ))
            })
        })
        .transpose()?;
    let if_match = text(headers, "if-match")?
        .map(|v| {
            let v = v.trim();
            // Digits only: the spec types the etag as an integer, so `"3"` or `*` is refused.
            v.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| {
                    IhError::bad_request(format!("Header If-Match is not an integer etag: {v:?}."))
                })
        })
        .transpose()?;
    Ok(Meta {
        description,
        file_type,
        timestamp_ms,
        if_match,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                *k,
                HeaderValue::from_bytes(v.as_bytes()).expect("test header"),
            );
        }
        h
    }

    #[test]
    fn valid_headers_are_read() -> Result<(), IhError> {
        let m = parse(&with(&[
            ("description", "caf\u{e9} log"),
            ("type", "text/plain"),
            ("timestamp", "2018-07-27T17:05:31.208Z"),
            ("if-match", " 12 "),
        ]))?;
        assert_eq!(m.description.as_deref(), Some("caf\u{e9} log"));
        assert_eq!(m.file_type.as_deref(), Some("text/plain"));
        assert_eq!(m.timestamp_ms, Some(1_532_711_131_208));
        assert_eq!(m.if_match, Some(12));
        assert_eq!(parse(&HeaderMap::new())?, Meta::default());
        Ok(())
    }

    #[test]
    fn invalid_headers_are_400() {
        let long_desc = "d".repeat(101);
        let long_type = "t".repeat(192);
        for bad in [
            ("description", long_desc.as_str()),
            ("description", ""),
            ("type", long_type.as_str()),
            ("type", ""),
            ("timestamp", "now"),
            ("if-match", "\"3\""),
            ("if-match", "*"),
            ("if-match", "-1"),
            ("if-match", "1.5"),
            ("if-match", ""),
        ] {
            let err = parse(&with(&[bad])).err().map(|e| e.status().as_u16());
            assert_eq!(err, Some(400), "{bad:?}");
        }
        // Exactly at the limits is fine; 100 characters, not bytes.
        let ok_desc = "\u{e9}".repeat(100);
        assert!(parse(&with(&[("description", ok_desc.as_str())])).is_ok());
        assert!(parse(&with(&[("type", &"t".repeat(191))])).is_ok());
    }
}

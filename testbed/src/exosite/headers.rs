//! The request headers of an upload: `Content-Range` of a range (protocols/exosite.md
//! rule 6) and `MD5` (rule 8). Both are judged before the body is read.
//!
//! - `Content-Range: bytes <start>-<end>/<total>`, end inclusive, decimal digits only;
//!   the unit is compared without case (RFC 9110). Missing, another unit, `*` for the
//!   total or any other shape, `end < start`, or `end ≥ total` → 400.
//! - `MD5: <base64 of 16 bytes>` (named `MD5`, not `Content-MD5`; the seed). Standard
//!   padded base64, as Python's `base64.b64encode` writes it; anything else → 400.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_RANGE;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::ExError;

/// A checked `Content-Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub(crate) start: u64,
    /// Inclusive.
    pub(crate) end: u64,
    pub(crate) total: u64,
}

impl ContentRange {
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// The range holding the content's last byte.
    pub(crate) fn is_final(&self) -> bool {
        self.end + 1 == self.total
    }
}

pub(crate) fn content_range(headers: &HeaderMap) -> Result<ContentRange, ExError> {
    let raw = headers
        .get(CONTENT_RANGE)
        .ok_or_else(|| ExError::bad_request("Content-Range is required"))?;
    let text = raw.to_str().unwrap_or_default().trim();
    parse(text).ok_or_else(|| {
        ExError::bad_request(format!(
            "Content-Range must be \"bytes <start>-<end>/<total>\" with start <= end < total, got {text:?}"
        ))
    })
}

fn parse(text: &str) -> Option<ContentRange> {
    let (unit, spec) = text.split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = spec.trim().split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let r = ContentRange {
        start: num(start)?,
        end: num(end)?,
        total: num(total)?,
    };
    (r.start <= r.end && r.end < r.total).then_some(r)
}

/// The `MD5` header's digest; `None` when the header is absent.
pub(crate) fn md5(headers: &HeaderMap) -> Result<Option<[u8; 16]>, ExError> {
    let Some(raw) = headers.get("md5") else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or_default().trim();
    STANDARD
        .decode(text)
        .ok()
        .and_then(|d| <[u8; 16]>::try_from(d).ok())
        .map(Some)
        .ok_or_else(|| {
            ExError::bad_request(format!(
                "MD5 must be the base64 of a 16-byte MD5 digest, got {text:?}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn content_ranges() {
        let r = parse("bytes 0-9/20");
        assert_eq!(
            r,
            Some(ContentRange {
                start: 0,
                end: 9,
                total: 20
            })
        );
        assert_eq!(r.map(|r| (r.len(), r.is_final())), Some((10, false)));
        assert_eq!(parse("BYTES 10-19/20").map(|r| r.is_final()), Some(true));
        assert_eq!(parse("bytes 5-5/6").map(|r| r.len()), Some(1));
        for bad in [
            "",
            "bytes",
            "bytes 0-9",
            "bytes 0-9/*",
            "bytes */20",
            "items 0-9/20",
            "bytes=0-9/20",
            "bytes 9-0/20",
            "bytes 0-20/20",
            "bytes -1-9/20",
            "bytes +0-9/20",
            "bytes 0-9/2x",
            "bytes 0 - 9/20",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn md5_headers() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("md5", HeaderValue::from_str(v).expect("test header"));
            h
        };
        // MD5("") in base64.
        let empty = md5(&with("1B2M2Y8AsgTpgAmY7PhCfg==")).ok().flatten();
        assert_eq!(empty.map(|d| d[0]), Some(0xd4));
        assert!(md5(&HeaderMap::new()).is_ok_and(|d| d.is_none()));
        for bad in [
            "",
            "1B2M2Y8AsgTpgAmY7PhCfg",
            "d41d8cd98f00b204e9800998ecf8427e",
            "AAAA",
        ] {
            assert!(md5(&with(bad)).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client sends as `Content-Range`: no panic, and only a range
        /// with start <= end < total is taken.
        #[test]
        fn any_content_range_is_refused_or_consistent(text in ".{0,60}") {
            if let Some(r) = parse(&text) {
                prop_assert!(r.start <= r.end && r.end < r.total);
                prop_assert!(r.len() >= 1);
            }
        }

        #[test]
        fn a_well_formed_content_range_is_read_as_written(start in 0u64..1 << 50, len in 1u64..1 << 30, extra in 0u64..1 << 30) {
            let end = start + len - 1;
            let total = end + 1 + extra;
            let r = parse(&format!("bytes {start}-{end}/{total}"));
            prop_assert_eq!(r, Some(ContentRange { start, end, total }));
        }

        /// Any `MD5` header value: no panic; a digest only from 16 bytes of base64.
        #[test]
        fn any_md5_header_is_refused_or_sixteen_bytes(text in "[ -~]{0,40}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
                h.insert("md5", v);
                let _ = md5(&h);
            }
        }
    }
}

//! Parsing the headers of part uploads and commits: `Content-Range`, `Digest`,
//! `content-md5`. Pure functions; the handlers turn errors into Box answers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// `Content-Range: bytes first-last/total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) total: u64,
}

impl ContentRange {
    pub(crate) fn len(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// Parses `bytes a-b/total`. The `bytes` unit is required (every SDK sends it; an
/// old Box docs example omitted it), `b >= a`, `*` is not accepted.
pub(crate) fn parse_content_range(v: &str) -> Result<ContentRange, &'static str> {
    let (unit, rest) = v
        .trim()
        .split_once(' ')
        .ok_or("Content-Range must be 'bytes <first>-<last>/<total>'")?;
    if unit != "bytes" {
        return Err("Content-Range unit must be 'bytes'");
    }
    let (range, total) = rest
        .trim()
        .split_once('/')
        .ok_or("Content-Range lacks '/total'")?;
    let (first, last) = range
        .split_once('-')
        .ok_or("Content-Range lacks 'first-last'")?;
    let num = |s: &str| -> Result<u64, &'static str> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err("Content-Range numbers must be decimal integers");
        }
        s.parse().map_err(|_| "Content-Range number too large")
    };
    let r = ContentRange {
        first: num(first)?,
        last: num(last)?,
        total: num(total)?,
    };
    if r.last < r.first {
        return Err("Content-Range last byte is before the first");
    }
    Ok(r)
}

/// Parses an RFC 3230 `Digest` header and returns the SHA-1 it carries. The algorithm
/// token is matched case-insensitively (the legacy Python SDK sends `SHA=`); other
/// algorithms in a list are ignored; only SHA-1 counts (protocols/box.md
/// §Uploading a part).
pub(crate) fn parse_sha_digest(v: &str) -> Result<[u8; 20], &'static str> {
    for item in v.split(',') {
        let Some((alg, value)) = item.trim().split_once('=') else {
            continue;
        };
        if !alg.trim().eq_ignore_ascii_case("sha") {
            continue;
        }
        let raw = STANDARD
            .decode(value.trim())
            .map_err(|_| "Digest sha= value is not valid base64")?;
        return raw
            .try_into()
            .map_err(|_| "Digest sha= value is not a 20-byte SHA-1");
    }
    Err("Digest must be 'sha=<base64 SHA-1>'")
}

/// The whole-file SHA-1 of a direct upload's `content-md5` header (40 hex digits;
/// the name is historical, protocols/box.md §Small files).
pub(crate) fn parse_sha1_hex(v: &str) -> Result<[u8; 20], &'static str> {
    let v = v.trim();
    if v.len() != 40 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("content-md5 must be the 40-digit hex SHA-1 of the file");
    }
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).map_err(|_| "bad hex")?;
    }
    Ok(out)
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 8-15/100"),
            Ok(ContentRange {
                first: 8,
                last: 15,
                total: 100
            })
        );
        assert!(parse_content_range("8388608-16777215/445856194").is_err());
        assert!(parse_content_range("items 0-1/2").is_err());
        assert!(parse_content_range("bytes 5-4/10").is_err());
        assert!(parse_content_range("bytes */10").is_err());
        assert!(parse_content_range("bytes -1-4/10").is_err());
        assert!(parse_content_range("bytes 0-4").is_err());
    }

    #[test]
    fn digest_forms() {
        let sha = [7u8; 20];
        let v = format!("sha={}", b64(&sha));
        assert_eq!(parse_sha_digest(&v), Ok(sha));
        assert_eq!(parse_sha_digest(&format!("SHA={}", b64(&sha))), Ok(sha));
        assert_eq!(
            parse_sha_digest(&format!("md5=abc, Sha={}", b64(&sha))),
            Ok(sha)
        );
        assert!(parse_sha_digest("md5=AAAA").is_err());
        assert!(parse_sha_digest("sha=!!!").is_err());
        assert!(parse_sha_digest(&format!("sha={}", b64(&[1u8; 16]))).is_err());
    }

    #[test]
    fn sha1_hex_forms() {
        assert_eq!(parse_sha1_hex(&"0A".repeat(20)), Ok([10u8; 20]));
        assert!(parse_sha1_hex("abc").is_err());
        assert!(parse_sha1_hex(&"zz".repeat(20)).is_err());
    }
}

//! Ranged downloads shared by the emulators: what a `Range: bytes=...` header asks of
//! an object of a known size, and the body that streams that slice from its blob.
//!
//! One parser for every vendor, so a client's sampled verification meets the same
//! rules everywhere: `bytes=a-b`, `bytes=a-` and `bytes=-n` (the last n bytes) are
//! served; a range that starts past the end, a zero suffix, any range of an empty
//! object, and a header that is not one such range (several ranges, another unit,
//! a > b) are unsatisfiable (416). Treating a malformed header as unsatisfiable rather
//! than ignoring it is an emulator choice: it makes a client bug visible.

use std::io::{Seek, SeekFrom};

use axum::body::Body;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use crate::store::OpenBlob;

/// The bytes a `Range` header asks for, judged against the object's size.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wanted {
    Whole,
    /// First and last byte, inclusive, both inside the object.
    Span(u64, u64),
    Unsatisfiable,
}

pub(crate) fn wanted(range: Option<&str>, size: u64) -> Wanted {
    let Some(range) = range else {
        return Wanted::Whole;
    };
    let Some(spec) = range
        .trim()
        .strip_prefix("bytes=")
        .filter(|s| !s.contains(','))
    else {
        return Wanted::Unsatisfiable;
    };
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::Unsatisfiable;
    };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (num(a), num(b), a.is_empty()) {
        // bytes=-n: the last n bytes.
        (None, Some(n), true) if n > 0 && size > 0 => Wanted::Span(size - n.min(size), size - 1),
        // bytes=a- and bytes=a-b.
        (Some(first), None, false) if b.is_empty() && first < size => Wanted::Span(first, size - 1),
        (Some(first), Some(last), false) if first <= last && first < size => {
            Wanted::Span(first, last.min(size - 1))
        }
        _ => Wanted::Unsatisfiable,
    }
}

/// A body streaming `len` bytes of `blob` from byte `first`. The handle was opened
/// while the emulator's lock was held, so the bytes are those of the version the
/// caller looked up, even if the object is replaced meanwhile.
pub(crate) fn slice_body(blob: OpenBlob, first: u64, len: u64) -> std::io::Result<Body> {
    let end = first + len;
    let mut pieces = Vec::new();
    let mut start = 0u64;
    for (mut f, size) in blob.files {
        let (a, b) = (first.max(start), end.min(start + size));
        if a < b {
            // A seek on an open file reads nothing: cheap enough on the async thread.
            f.seek(SeekFrom::Start(a - start))?;
            let piece = tokio::fs::File::from_std(f).take(b - a);
            pieces.push(tokio_util::io::ReaderStream::with_capacity(
                piece,
                256 * 1024,
            ));
        }
        start += size;
    }
    Ok(Body::from_stream(
        futures_util::stream::iter(pieces).flatten(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slice_spans_the_segments_of_a_joined_blob() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let open = || -> std::io::Result<OpenBlob> {
            let mut files = Vec::new();
            for (i, p) in ["abc", "", "de", "fgh"].iter().enumerate() {
                let f = dir.path().join(format!("s{i}"));
                std::fs::write(&f, p)?;
                files.push((std::fs::File::open(&f)?, p.len() as u64));
            }
            Ok(OpenBlob { files })
        };
        for (first, len, want) in [
            (0, 8, "abcdefgh"),
            (2, 3, "cde"),
            (3, 2, "de"),
            (4, 4, "efgh"),
            (7, 1, "h"),
        ] {
            let body = slice_body(open()?, first, len)?;
            let got = axum::body::to_bytes(body, 64)
                .await
                .map_err(std::io::Error::other)?;
            assert_eq!(got, want.as_bytes(), "{first}+{len}");
        }
        Ok(())
    }

    #[test]
    fn ranges() {
        let w = |r: &str, size| wanted(Some(r), size);
        assert_eq!(wanted(None, 10), Wanted::Whole);
        assert_eq!(w("bytes=0-3", 10), Wanted::Span(0, 3));
        assert_eq!(w("bytes=2-100", 10), Wanted::Span(2, 9));
        assert_eq!(w("bytes=9-9", 10), Wanted::Span(9, 9));
        assert_eq!(w("bytes=4-", 10), Wanted::Span(4, 9));
        assert_eq!(w("bytes=-3", 10), Wanted::Span(7, 9));
        assert_eq!(w("bytes=-30", 10), Wanted::Span(0, 9));
        for bad in [
            "bytes=10-",
            "bytes=10-12",
            "bytes=-0",
            "bytes=3-2",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
        ] {
            assert_eq!(w(bad, 10), Wanted::Unsatisfiable, "{bad}");
        }
        assert_eq!(w("bytes=0-", 0), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-1", 0), Wanted::Unsatisfiable);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client sends as `Range`: no panic, and a span inside the object.
        #[test]
        fn any_range_header_gives_a_span_inside_the_object(range in ".{0,40}", size in 0u64..1 << 40) {
            if let Wanted::Span(first, last) = wanted(Some(&range), size) {
                prop_assert!(first <= last && last < size);
            }
        }

        #[test]
        fn a_well_formed_range_is_read_as_written(size in 1u64..1 << 40, a in 0u64..1 << 40, len in 0u64..1 << 20) {
            let first = a % size;
            let last = first + len;
            let got = wanted(Some(&format!("bytes={first}-{last}")), size);
            prop_assert_eq!(got, Wanted::Span(first, last.min(size - 1)));
        }
    }
}

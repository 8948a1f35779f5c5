//! Ranged downloads shared by the emulators: what a `Range: bytes=...` header asks of
//! an object of a known size, and the body that streams that slice from its blob.
//!
//! One parser for every vendor, so a client's sampled verification meets the same
//! rules everywhere: `bytes=a-b`, `bytes=a-` and `bytes=-n` (the last n bytes) are
//! served; a range that starts past the end, a zero suffix, any range of an empty
//! object, and a header that is not one such range (several ranges, another unit,
//! a > b) are unsatisfiable (416). Treating a malformed header as unsatisfiable rather
//! than ignoring it is an emulator choice: it makes a client bug visible.

use std::io::SeekFrom;

use axum::body::Body;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

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
pub(crate) async fn slice_body(blob: std::fs::File, first: u64, len: u64) -> std::io::Result<Body> {
    let mut f = tokio::fs::File::from_std(blob);
    f.seek(SeekFrom::Start(first)).await?;
    Ok(Body::from_stream(
        tokio_util::io::ReaderStream::with_capacity(f.take(len), 256 * 1024),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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

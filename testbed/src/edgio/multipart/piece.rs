//! `POST /multipart/piece` (rule 7): one piece, headers `X-Agile-Multipart` and
//! `X-Agile-Part`, body the piece's bytes, streamed to disk while hashed.
//!
//! Judged before the body, in this order: the token (401/403), the mpid (`-2`: unknown,
//! or created under another subtree), the part number (`-3`: not an integer ≥ 1;
//! `-10`: above 1000, which also bounds the distinct pieces to 1000), the upload's state
//! (`-8` COMPLETE/JOIN/SUCCESS/FAILED/EXPIRED, `-17` ABORT), and a `Content-Length`
//! above `edgio_max_piece` (`-11`) or taking the upload past `edgio_max_total`
//! (`-25`). A refused body is read before answering. After the body, the same checks
//! run again under the lock (the upload may have been aborted meanwhile) and the
//! piece is kept only if they pass: a body cut short is `-49` and nothing is kept.
//!
//! No request checksum is read: the docs define none for pieces (the open question
//! about `-6`); the answer's `X-Agile-Checksum` is the SHA-256 of the stored piece.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};

use super::super::error::{Agile, AgileResult};
use super::super::headers::text;
use super::super::receive::{Received, receive};
use super::super::{Edgio, NAME};
use super::http_status;
use super::upload::{Piece, UpState, Upload};
use crate::faults::Settings;
use crate::faults::body::drain;

/// Highest part number (protocols/edgio.md §Multipart 2: at most 1000 pieces).
const MAX_PART: u32 = 1000;

fn refuse(code: i64) -> Agile {
    Agile::new(http_status(code), code)
}

/// The part number of `X-Agile-Part`.
fn part_number(h: &HeaderMap) -> Result<u32, i64> {
    let raw = text(h, "x-agile-part").map_err(|_| -3)?.ok_or(-3)?;
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(-3);
    }
    match raw.parse::<u64>() {
        Ok(0) => Err(-3),
        Ok(n) if n <= u64::from(MAX_PART) => Ok(n as u32),
        // Digits, but too many: more than the 1000 pieces an upload may have.
        _ => Err(-10),
    }
}

/// Whether `upload` takes piece `number` of `size` bytes now.
fn admits(u: &Upload, s: &Settings, number: u32, size: Option<u64>) -> Result<(), i64> {
    match u.state {
        UpState::New | UpState::Ready => {}
        UpState::Abort => return Err(-17),
        _ => return Err(-8),
    }
    if let Some(size) = size {
        if size > s.edgio_max_piece {
            return Err(-11);
        }
        let others: u64 = u
            .live()
            .filter(|p| p.number != number)
            .map(|p| p.size)
            .sum();
        if others.saturating_add(size) > s.edgio_max_total {
            return Err(-25);
        }
    }
    Ok(())
}

pub(crate) async fn http(State(api): State<Arc<Edgio>>, h: HeaderMap, body: Body) -> AgileResult {
    let s = api.shared.settings();
    let judged = (|| {
        let caller = api.http_caller(&s, &h, None)?;
        let mpid = text(&h, "x-agile-multipart")
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_string();
        let mut st = api.settled(&s);
        let u = st
            .uploads
            .find(&mpid, &caller.root)
            .ok_or_else(|| refuse(-2))?;
        let number = part_number(&h).map_err(refuse)?;
        let declared = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        admits(u, &s, number, declared).map_err(refuse)?;
        Ok::<_, Agile>((caller, mpid, number))
    })();
    let (caller, mpid, number) = match judged {
        Ok(j) => j,
        Err(answer) => {
            drain(body).await;
            return Err(answer);
        }
    };
    let staged = match receive(&api.shared.store, body, s.edgio_max_piece).await? {
        Received::Kept(staged) => staged,
        Received::TooLong => return Err(refuse(-11)),
    };
    let mut st = api.settled(&s);
    let u = st
        .uploads
        .find(&mpid, &caller.root)
        .ok_or_else(|| refuse(-2))?;
    admits(u, &s, number, Some(staged.len)).map_err(refuse)?;
    let dir = match &u.dir {
        Some(d) => d.clone(),
        None => {
            let d = api
                .shared
                .store
                .session_dir(NAME, &mpid)
                .map_err(Agile::internal)?;
            u.dir = Some(d.clone());
            d
        }
    };
    let (size, sha256) = (staged.len, staged.sha256_hex());
    // Arrival order makes the name unique, even for a repeated number.
    let file = dir.join(format!("{}-{number}", u.pieces.len()));
    staged.persist(&file).map_err(Agile::internal)?;
    u.add_piece(Piece {
        number,
        size,
        file: Some(file),
        arrived: Instant::now(),
        superseded: false,
        expired: false,
    });
    tracing::debug!(mpid = %mpid, part = number, size, "edgio piece stored");
    Ok(Agile::ok()
        .header("x-agile-checksum", sha256)
        .header("x-agile-size", size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn part_numbers() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-agile-part", HeaderValue::from_static(v));
            part_number(&h)
        };
        assert_eq!(with("1"), Ok(1));
        assert_eq!(with("1000"), Ok(1000));
        assert_eq!(with("1001"), Err(-10));
        assert_eq!(with("99999999999999999999999"), Err(-10));
        for bad in ["0", "-1", "1.5", "", "one", "+1"] {
            assert_eq!(with(bad), Err(-3), "{bad:?}");
        }
        assert_eq!(part_number(&HeaderMap::new()), Err(-3));
    }
}

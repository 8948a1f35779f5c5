//! Property tests of every parser of bytes that come from outside the process: the
//! config file, the vendors' answers (bodies, status codes, headers), digests and
//! `Retry-After`. Whatever they hold, nothing panics; what is taken is consistent;
//! secrets never come back out. (The testbed has its own, for what clients send:
//! `Range`, `Content-Range`, `MD5`.)
//!
//! `PROPTEST_CASES=100000 cargo test --lib props` runs them longer.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use crate::backend::Op;
use crate::backend::bearer::Refusal;
use crate::backend::edgio::client::Reply;
use crate::secret::{Secret, redact};

/// The example configuration, which every mutation starts from.
const EXAMPLE: &str = include_str!("../config/dropship.toml");

const OPS: [Op; 9] = [
    Op::PutSingle,
    Op::Begin,
    Op::PutPart,
    Op::HeldParts,
    Op::Complete,
    Op::Abort,
    Op::Stat,
    Op::ReadBack,
    Op::Sweep,
];

fn status() -> impl Strategy<Value = StatusCode> {
    (100u16..600).prop_map(|c| StatusCode::from_u16(c).unwrap_or(StatusCode::OK))
}

/// JSON of any shape, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("code".to_string()),
                    Just("context_info".to_string()),
                    Just("conflicts".to_string()),
                    Just("errors".to_string()),
                    Just("id".to_string()),
                    ".{0,6}".prop_map(String::from),
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An answer body: JSON of any shape, or any bytes at all.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..600),
    ]
}

fn token() -> Secret {
    Secret::new("tok-3f9a1c-SECRET")
}

proptest! {
    /// Any text as a config file: an answer, never a panic; a refusal names where.
    #[test]
    fn any_config_text_is_read_or_refused_with_a_place(text in ".{0,400}") {
        if let Err(e) = crate::config::parse(Path::new("/etc/dropship/x.toml"), &text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// The example configuration with bytes inserted or removed somewhere.
    #[test]
    fn a_damaged_example_config_is_read_or_refused(at in 0usize..EXAMPLE.len(), cut in 0usize..40, junk in ".{0,20}") {
        let mut at = at;
        while !EXAMPLE.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + cut).min(EXAMPLE.len());
        while !EXAMPLE.is_char_boundary(end) {
            end -= 1;
        }
        let text = format!("{}{junk}{}", &EXAMPLE[..at], &EXAMPLE[end..]);
        if let Err(e) = crate::config::parse(Path::new("/etc/dropship/x.toml"), &text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Sizes, durations and rates as people write them: no panic; numbers round-trip.
    #[test]
    fn units_parse_anything_and_read_plain_numbers_back(text in ".{0,24}", n in 0u64..1 << 50) {
        let _ = crate::units::parse_size(&text);
        let _ = crate::units::parse_duration(&text);
        let _ = crate::units::parse_rate(&text);
        prop_assert_eq!(crate::units::parse_size(&n.to_string()), Ok(n));
        prop_assert_eq!(
            crate::units::parse_duration(&format!("{n}ms")),
            Ok(Duration::from_millis(n))
        );
    }

    /// A digest a server reports: any text is decoded or refused; hex round-trips.
    #[test]
    fn any_hex_digest_is_decoded_or_refused(text in ".{0,70}", bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let _ = crate::digest::from_hex(&text);
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        prop_assert_eq!(crate::digest::from_hex(&hex), Some(bytes));
    }

    /// `Retry-After` of any value: a duration or nothing.
    #[test]
    fn any_retry_after_is_a_duration_or_nothing(text in "[ -~]{0,30}") {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&text) {
            h.insert(RETRY_AFTER, v);
        }
        let got = crate::backend::http::retry_after(&h);
        if let Ok(n) = text.trim().parse::<u64>() {
            prop_assert_eq!(got, Some(Duration::from_secs(n)));
        }
    }

    /// A server's refusal (Box, Insights Hub: JSON of any shape, or not JSON): read
    /// without a panic, the token masked, and classified into an action.
    #[test]
    fn any_bearer_refusal_is_classified_and_masks_the_token(
        st in status(),
        b in body(),
        echo in any::<bool>(),
        op in 0usize..OPS.len(),
    ) {
        let t = token();
        let mut b = b;
        if echo {
            b.extend_from_slice(b"Authorization: Bearer tok-3f9a1c-SECRET");
        }
        let r = Refusal::parse(st, None, &b, &t);
        prop_assert!(!r.body.contains(t.expose()));
        let _ = crate::backend::box_api::client::conflict(&r);
        for e in [
            crate::backend::box_api::classify::classify(OPS[op], r.clone()),
            crate::backend::insights_hub::classify::classify(OPS[op], r.clone()),
            crate::backend::exosite::classify(OPS[op], r),
        ] {
            prop_assert!(!e.to_string().contains(t.expose()));
        }
    }

    /// An Edgio reply of any status, `X-Agile-Status` and body: classified, and any
    /// JSON-RPC result read for its code, without a panic.
    #[test]
    fn any_edgio_reply_is_classified(
        st in status(),
        agile in prop::option::of(any::<i64>()),
        b in body(),
        v in json(),
        op in 0usize..OPS.len(),
    ) {
        let reply = Reply {
            status: st,
            agile,
            headers: HeaderMap::new(),
            body: String::from_utf8_lossy(&b).into_owned(),
        };
        let _ = crate::backend::edgio::codes::classify(OPS[op], &reply);
        let _ = crate::backend::edgio::codes::rpc_code(&v);
    }

    /// Exosite's content info line: any text is read or refused.
    #[test]
    fn any_exosite_info_is_read_or_refused(text in ".{0,80}", size in any::<u64>()) {
        let _ = crate::backend::exosite::parse_info(&text);
        let line = format!("application/octet-stream,{size},1700000000,");
        prop_assert!(crate::backend::exosite::parse_info(&line).is_some());
    }

    /// Redaction: a secret never survives it, and the result fits a log line.
    #[test]
    fn redaction_leaves_no_secret_and_fits_a_line(
        before in ".{0,500}",
        after in ".{0,500}",
        secret in "[^*]{1,20}",
    ) {
        let s = Secret::new(secret.clone());
        let out = redact(&format!("{before}{secret}{after}"), &[&s]);
        prop_assert!(!out.contains(&secret), "{out:?}");
        prop_assert!(out.len() <= 400 + '…'.len_utf8());
    }
}

//! What every HTTP backend shares: the client, URL rules, `Retry-After`, and the
//! default mapping from a status code to the engine's next action.

use std::sync::Once;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::progress::{Expired, Progress, Timeouts};
use super::{BackendError, Op};

/// Time to set up a TCP + TLS connection before it counts as a network failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Keepalive probes on idle pooled connections, so that a dead one is found before
/// a request is put on it.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// Builds the HTTP client every backend uses.
pub fn client(timeouts: Timeouts) -> Result<reqwest::Client, BackendError> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Fails only if another provider was installed first, which is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    // No `timeout`/`read_timeout`: both run from the start of a request until its
    // answer, so a part slower than the timer could never land. [`send`] times a
    // request by its progress instead (see `progress.rs`).
    //
    // The kernel watches for the same: sent bytes that stay unacknowledged (a dead
    // link), or a receiver whose window stays shut, for `stall` abort the connection.
    // A slow link that keeps acknowledging never trips it.
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(TCP_KEEPALIVE)
        .tcp_user_timeout(timeouts.stall)
        .user_agent(concat!("dropship/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BackendError::Fatal {
            op: Op::Begin,
            status: None,
            detail: format!("cannot build the HTTP client: {e}"),
        })
}

/// Checks a configured base URL: https, or plain http on loopback (the testbed), or
/// plain http anywhere when `allow_insecure` is set. Returns it without a trailing `/`.
pub fn check_base_url(url: &str, allow_insecure: bool) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure || is_loopback(&parsed) => {}
        "http" => {
            return Err(format!(
                "{url} is plain http to a non-loopback host: tokens would cross the network in clear; use https, or set allow_insecure_http = true"
            ));
        }
        other => return Err(format!("{url}: unsupported scheme {other:?}")),
    }
    if parsed.host_str().is_none() {
        return Err(format!("{url} has no host"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url` points at the same scheme, host and port as `base` (a server may
/// only redirect our credentials to itself).
pub fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare on APIs and ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Sends a request, failing it as `Retry` when `progress` shows it stalled or
/// unanswered (see [`Timeouts`]). The request's body stream must report to the same
/// `progress`; a request without a streamed body passes [`Progress::without_body`].
pub async fn send(
    op: Op,
    req: reqwest::RequestBuilder,
    progress: &Progress,
    timeouts: Timeouts,
) -> Result<reqwest::Response, BackendError> {
    tokio::select! {
        r = req.send() => r.map_err(|e| {
            // The kernel's verdict (`TCP_USER_TIMEOUT`): nothing moved for `stall`.
            let stalled = timed_out(&e);
            match transport(op, e) {
                BackendError::Retry { op, after, cause } if stalled => BackendError::Retry {
                    op,
                    after,
                    cause: format!("{} ({cause})", Expired::Stalled(timeouts.stall)),
                },
                other => other,
            }
        }),
        why = progress.expired(timeouts) => Err(BackendError::Retry {
            op,
            after: None,
            cause: why.to_string(),
        }),
    }
}

/// Reads an answer's body, at most `limit` bytes (the rest is dropped), within
/// `within`: answers are small JSON documents, so one deadline covers them.
pub async fn read_body(
    op: Op,
    mut resp: reqwest::Response,
    limit: usize,
    within: Duration,
) -> Result<Vec<u8>, BackendError> {
    let read = async {
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport(op, e))? {
            let room = limit.saturating_sub(bytes.len());
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if bytes.len() >= limit {
                break;
            }
        }
        Ok(bytes)
    };
    match tokio::time::timeout(within, read).await {
        Ok(r) => r,
        Err(_) => Err(BackendError::Retry {
            op,
            after: None,
            cause: format!(
                "the answer's body did not arrive within {} s (upload.answer_timeout)",
                within.as_secs_f64()
            ),
        }),
    }
}

/// The shared mapping; a backend's `classify` handles its own quirks first.
pub fn from_status(
    op: Op,
    status: StatusCode,
    after: Option<Duration>,
    body: String,
) -> BackendError {
    match status.as_u16() {
        408 | 429 | 500..=599 => BackendError::Retry {
            op,
            after,
            cause: format!("HTTP {status}: {body}"),
        },
        // Refused credentials, or an account that may not do this (quota, a folder's
        // permissions): a person or a rotating agent fixes these for every file at
        // once, so the engine pauses instead of failing each file.
        401 | 403 => BackendError::AuthRefused {
            op,
            detail: format!("HTTP {status}: {body}"),
        },
        409 | 412 | 416 => BackendError::Conflict {
            op,
            detail: format!("HTTP {status}: {body}"),
        },
        code => BackendError::Fatal {
            op,
            status: Some(code),
            detail: body,
        },
    }
}

/// Whether a TLS error is in `err`'s chain: rustls's own, possibly wrapped in
/// `io::Error`s by the connector (whose `source` skips the error they wrap).
fn tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    if err.is::<rustls::Error>() {
        return true;
    }
    let wrapped = err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| tls_failure(inner));
    wrapped || err.source().is_some_and(tls_failure)
}

/// Whether the connection timed out in the kernel (`ETIMEDOUT`).
fn timed_out(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// A request that got no HTTP answer: refused, reset, timed out. Always retried:
/// every operation of the trait is safe to repeat (STYLE §2.3). No connection at
/// all is `Unreachable` (the service is away); anything after one is `Retry`.
pub fn transport(op: Op, err: reqwest::Error) -> BackendError {
    // The connector makes the TCP connection and the TLS handshake: a certificate
    // or handshake refused is a service that was reached, not one that is away.
    let unreachable = err.is_connect() && !tls_failure(&err);
    // Without the URL: it may carry ids, and the cause chain says what happened.
    let err = err.without_url();
    let mut cause = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        cause.push_str(": ");
        cause.push_str(&s.to_string());
        source = s.source();
    }
    if unreachable {
        return BackendError::Unreachable { op, cause };
    }
    BackendError::Retry {
        op,
        after: None,
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A closed port is a service that is away; a handshake that fails (TLS spoken
    /// to a plain HTTP server) is one that was reached.
    #[tokio::test]
    async fn no_connection_is_unreachable_a_failed_handshake_is_not() {
        let c = client(Timeouts::default()).expect("client");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        }; // dropped: nothing listens there now
        let e = c
            .get(format!("http://{closed}/"))
            .send()
            .await
            .expect_err("refused");
        assert!(
            matches!(transport(Op::Stat, e), BackendError::Unreachable { .. }),
            "refused"
        );
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = plain.local_addr().expect("addr");
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = plain.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let e = c
            .get(format!("https://{addr}/"))
            .send()
            .await
            .expect_err("handshake");
        let mapped = transport(Op::Stat, e);
        assert!(matches!(mapped, BackendError::Retry { .. }), "{mapped}");
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        assert!(check_base_url("https://api.box.com", false).is_ok());
        assert!(check_base_url("http://127.0.0.1:8900/box", false).is_ok());
        assert!(check_base_url("http://localhost:8900/", false).is_ok());
        assert!(check_base_url("http://[::1]:8900/", false).is_ok());
        let e = check_base_url("http://example.org/box", false).expect_err("insecure");
        assert!(e.contains("allow_insecure_http"));
        assert!(check_base_url("http://example.org/box", true).is_ok());
        assert!(check_base_url("ftp://example.org", true).is_err());
        assert!(check_base_url("not a url", true).is_err());
        assert_eq!(
            check_base_url("https://upload.box.com/api/", false).as_deref(),
            Ok("https://upload.box.com/api")
        );
    }

    #[test]
    fn origins() {
        assert!(same_origin(
            "https://a.example/x/y",
            "https://a.example/api"
        ));
        assert!(same_origin(
            "https://a.example:443/x",
            "https://a.example/api"
        ));
        assert!(!same_origin("https://b.example/x", "https://a.example/api"));
        assert!(!same_origin("http://a.example/x", "https://a.example/api"));
    }

    #[test]
    fn statuses_map_to_actions() {
        let s = |c: u16| StatusCode::from_u16(c).expect("status");
        assert!(matches!(
            from_status(Op::PutPart, s(503), None, String::new()),
            BackendError::Retry { .. }
        ));
        assert!(matches!(
            from_status(Op::PutPart, s(429), None, String::new()),
            BackendError::Retry { .. }
        ));
        assert!(matches!(
            from_status(Op::PutPart, s(401), None, String::new()),
            BackendError::AuthRefused { .. }
        ));
        assert!(matches!(
            from_status(Op::Begin, s(403), None, "quota".into()),
            BackendError::AuthRefused { .. }
        ));
        assert!(matches!(
            from_status(Op::PutPart, s(409), None, String::new()),
            BackendError::Conflict { .. }
        ));
        assert!(matches!(
            from_status(Op::Begin, s(400), None, "bad name".into()),
            BackendError::Fatal {
                status: Some(400),
                ..
            }
        ));
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }
}

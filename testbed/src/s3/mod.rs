//! A fault-injecting proxy in front of a real S3 server (s3s-fs in the suite),
//! mounted at `/s3`. Unlike the other emulators it keeps no objects: the upstream
//! server stores them and answers every request, so the daemon meets a real
//! server's semantics with the testbed's faults (503, 429, latency, throttle,
//! resets, stalls, mangled answers, hangs) in between.
//!
//! A client's endpoint is `http://ADDR/s3` with path-style addressing, so it sends
//! `/s3/<bucket>/<key>`, presigned for that URL with the upstream's access key id
//! and the testbed's secret. The proxy checks that signature (`sigv4`), then sends
//! `/<bucket>/<key>` to the upstream, signed again with the upstream's keys; every
//! other header and the body go as they came. A SigV4 signature covers host and
//! path, so forwarding the client's own would fail upstream; and the gate being
//! the testbed's, its secret can change at run time, which s3s-fs's cannot.
//!
//! What the proxy adds, each where s3s-fs 0.14.1 falls short of AWS (measured
//! against it; see the s3 backend's module doc):
//! - ListMultipartUploads, which s3s-fs answers `501 NotImplemented`: once the
//!   upstream has checked the signature (a 501 means it did), the proxy answers from
//!   the uploads it saw created through it and not yet completed, aborted or
//!   expired: every request goes through it, so that is the set the bucket holds.
//! - Expiry of unfinished uploads (`session_ttl_s`), as an AWS lifecycle rule
//!   `AbortIncompleteMultipartUpload` does: afterwards, a request naming the upload
//!   is answered `404 NoSuchUpload` without reaching the upstream.
//! - `corrupt_rate`: one byte of a PutObject or UploadPart body is flipped on its
//!   way to the upstream (in flight, after the client's digest was computed).

mod sigv4;
mod uploads;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body::Body as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::S3Upstream;
use crate::app::Shared;
use crate::emulator::{Emulator, Fault};
use crate::stats::EmulatorCounters;
use sigv4::Presigned;
use uploads::Uploads;

/// Path prefix and stats key.
pub(crate) const NAME: &str = "s3";

/// Create, Complete and error answers are a few hundred bytes; anything bigger
/// from the upstream on those calls is passed on unread, never held.
const MAX_BUFFERED_ANSWER: usize = 1 << 20;

pub(crate) struct S3Proxy {
    shared: Arc<Shared>,
    counters: Arc<EmulatorCounters>,
    /// The S3 server and its keys; `None`: every request gets 502.
    upstream: Option<S3Upstream>,
    client: Client<HttpConnector, Body>,
    uploads: Mutex<Uploads>,
    /// The server's runtime: an expiry found by `stats()`, called from a test's
    /// own thread, aborts upstream on it.
    runtime: tokio::runtime::Handle,
}

/// Which S3 call a request is, by method and query (path-style, the bucket being
/// the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Create,
    UploadPart,
    ListParts,
    Complete,
    Abort,
    ListUploads,
    PutObject,
    Other,
}

impl Call {
    /// `path` is `/<bucket>/<key>` (the prefix taken off).
    fn of(method: &Method, path: &str, query: &[(String, String)]) -> Call {
        let has = |k: &str| query.iter().any(|(n, _)| n == k);
        let bucket_level = !path.trim_matches('/').contains('/');
        match *method {
            Method::POST if has("uploads") => Call::Create,
            Method::POST if has("uploadId") => Call::Complete,
            Method::PUT if has("uploadId") && has("partNumber") => Call::UploadPart,
            Method::PUT if !bucket_level && !has("uploadId") => Call::PutObject,
            Method::GET if has("uploadId") => Call::ListParts,
            Method::GET if bucket_level && has("uploads") => Call::ListUploads,
            Method::DELETE if has("uploadId") => Call::Abort,
            _ => Call::Other,
        }
    }
}

impl S3Proxy {
    /// Must be called on the server's runtime.
    pub(crate) fn new(shared: Arc<Shared>, upstream: Option<S3Upstream>) -> S3Proxy {
        let counters = shared.counters.register(NAME);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // Pooled, so that the proxy's own connections do not add a handshake to
        // every request the daemon sends on a kept-alive one.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        S3Proxy {
            shared,
            counters,
            upstream: upstream.map(|mut u| {
                u.url = u.url.trim_end_matches('/').to_string();
                u
            }),
            client,
            uploads: Mutex::new(Uploads::default()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Ends the uploads older than `session_ttl_s`, on the upstream too.
    fn expire_old(&self) {
        let ttl = Duration::from_secs(self.shared.settings().session_ttl_s);
        let old = self.lock().expire_all(ttl);
        for upload in old {
            self.abort_upstream(upload);
        }
    }

    /// AbortMultipartUpload of `upload` on the upstream, signed with its keys, in
    /// the background: as a lifecycle rule ends an upload, so that the upstream
    /// holds no upload the proxy answers for as gone.
    fn abort_upstream(&self, upload: uploads::Open) {
        let Some(up) = self.upstream.clone() else {
            return;
        };
        let client = self.client.clone();
        self.runtime.spawn(async move {
            let Ok(mut url) = url::Url::parse(&up.url) else {
                return;
            };
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().extend(upload.key.split('/'));
            }
            let signed = rusty_s3::signing::sign(
                &jiff::Timestamp::now(),
                rusty_s3::Method::Delete,
                url,
                &up.access_key,
                &up.secret_key,
                None,
                "us-east-1",
                600,
                [("uploadId", upload.id.as_str())].into_iter(),
                std::iter::empty(),
            );
            let Ok(uri) = signed.as_str().parse::<Uri>() else {
                return;
            };
            let req = axum::http::Request::delete(uri).body(Body::empty());
            match req {
                Ok(req) => match client.request(req).await {
                    Ok(a) if a.status().is_success() => {
                        tracing::debug!(key = %upload.key, "expired upload aborted upstream");
                    }
                    Ok(a) => {
                        tracing::warn!(key = %upload.key, status = %a.status(), "expired upload: the upstream refused its abort");
                    }
                    Err(e) => tracing::warn!(error = %e, "expired upload: the upstream did not answer"),
                },
                Err(e) => tracing::warn!(error = %e, "expired upload: no request"),
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, Uploads> {
        // Every update is a single map operation: nothing half-done to see.
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Emulator for S3Proxy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(self: Arc<Self>) -> Router {
        Router::new().fallback(forward).with_state(self)
    }

    fn fault_response(&self, fault: Fault) -> Response {
        match fault {
            Fault::Unavailable => s3_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Please reduce your request rate.",
            ),
            Fault::RateLimited => s3_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            ),
        }
    }

    fn sessions_open(&self) -> u64 {
        self.expire_old();
        self.lock().open().len() as u64
    }
}

/// An S3 `<Error>` document.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// The query's pairs, percent-decoded.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `%XX` escapes (RFC 3986, as SigV4 encodes: `+` is a plus); invalid escapes stay
/// as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn forward(
    State(proxy): State<Arc<S3Proxy>>,
    OriginalUri(original): OriginalUri,
    req: Request,
) -> Response {
    // Drained before any early answer, so the client reads it instead of failing
    // on a half-sent body.
    async fn refuse(req: Request, status: StatusCode, code: &str, message: &str) -> Response {
        crate::faults::body::drain(req.into_body()).await;
        s3_error(status, code, message)
    }
    let query = query_pairs(&original);
    let presigned = match Presigned::parse(&query) {
        Ok(p) => p,
        Err(d) => return refuse(req, StatusCode::FORBIDDEN, d.code, &d.message).await,
    };
    let Some(upstream) = proxy.upstream.clone() else {
        return refuse(
            req,
            StatusCode::BAD_GATEWAY,
            "InternalError",
            "the testbed was started without --s3-upstream",
        )
        .await;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // The URL the client signed: its Host, the path as sent (prefix included).
    let Ok(client_url) = url::Url::parse(&format!("http://{host}{}", original.path())) else {
        return refuse(
            req,
            StatusCode::BAD_REQUEST,
            "InvalidURI",
            "no usable Host and path",
        )
        .await;
    };
    let secret = proxy.shared.secret();
    if let Err(d) = presigned.check(
        req.method(),
        &client_url,
        req.headers(),
        &upstream.access_key,
        &secret,
    ) {
        return refuse(req, StatusCode::FORBIDDEN, d.code, &d.message).await;
    }
    // Inside the nest the prefix is already off: `/<bucket>/<key>`.
    let path = req.uri().path().to_string();
    let call = Call::of(req.method(), &path, &presigned.rest);
    let upload_id = presigned
        .rest
        .iter()
        .find(|(k, _)| k == "uploadId")
        .map(|(_, v)| v.clone());
    let settings = proxy.shared.settings();
    let ttl = Duration::from_secs(settings.session_ttl_s);
    let expired = upload_id
        .as_ref()
        .and_then(|id| proxy.lock().expire(id, ttl));
    let ended = expired.is_some() || upload_id.as_ref().is_some_and(|id| proxy.lock().ended(id));
    if let Some(upload) = expired {
        proxy.abort_upstream(upload);
    }
    if ended {
        // As AWS answers for an upload its lifecycle rule aborted, or one that
        // was completed or aborted.
        return refuse(
            req,
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
        )
        .await;
    }
    let resigned = url::Url::parse(&format!("{}{path}", upstream.url))
        .ok()
        .and_then(|u| {
            presigned.resign(
                req.method(),
                u,
                req.headers(),
                (&upstream.access_key, &upstream.secret_key),
            )
        })
        .and_then(|u| u.as_str().parse::<Uri>().ok());
    let Some(uri) = resigned else {
        return refuse(
            req,
            StatusCode::BAD_REQUEST,
            "InvalidURI",
            "the path is not a URI",
        )
        .await;
    };
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    // The client's Host named the testbed; the upstream's comes from the URI.
    // Hop-by-hop headers are the connection's own.
    for h in [
        header::HOST,
        header::CONNECTION,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
    ] {
        parts.headers.remove(h);
    }
    let corrupt = matches!(call, Call::PutObject | Call::UploadPart)
        && body.size_hint().exact() != Some(0)
        && crate::faults::roll(settings.corrupt_rate);
    let body = if corrupt {
        proxy.counters.add_corrupted();
        flip_first_byte(body)
    } else {
        body
    };
    let answer = match proxy
        .client
        .request(axum::http::Request::from_parts(parts, body))
        .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "s3 upstream unreachable");
            return s3_error(
                StatusCode::BAD_GATEWAY,
                "InternalError",
                "the upstream S3 server did not answer",
            );
        }
    };
    let (parts, incoming) = answer.into_parts();
    let status = parts.status;
    let wanted = match call {
        Call::Create | Call::Complete => status.is_success(),
        Call::ListUploads => status == StatusCode::NOT_IMPLEMENTED,
        Call::Abort => {
            if status.is_success()
                && let Some(id) = &upload_id
            {
                proxy.lock().remove(id);
            }
            false
        }
        _ => false,
    };
    if !wanted {
        return Response::from_parts(parts, Body::new(incoming));
    }
    let Some(bytes) = read_small(Body::new(incoming)).await else {
        return s3_error(
            StatusCode::BAD_GATEWAY,
            "InternalError",
            "the upstream's answer broke off",
        );
    };
    let text = String::from_utf8_lossy(&bytes);
    match call {
        Call::Create => {
            if let (Some(key), Some(id)) = (tag(&text, "Key"), tag(&text, "UploadId")) {
                // Kept as `<bucket>/<key>`: one proxy may serve several buckets.
                proxy
                    .lock()
                    .created(format!("{}/{}", bucket_of(&path), unescape(&key)), id);
            }
            if settings.s3_create_answer_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(settings.s3_create_answer_delay_ms)).await;
            }
        }
        // A 200 may still carry an `<Error>` (AWS); only a result ends the upload.
        Call::Complete if text.contains("<CompleteMultipartUploadResult") => {
            if let Some(id) = &upload_id {
                proxy.lock().remove(id);
            }
        }
        Call::ListUploads => {
            // The upstream checked the signature and then said it cannot list.
            let prefix = presigned
                .rest
                .iter()
                .find(|(k, _)| k == "prefix")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            proxy.expire_old();
            let listed = proxy.lock().open();
            return list_uploads(bucket_of(&path), prefix, &listed);
        }
        _ => {}
    }
    let mut resp = Response::from_parts(parts, Body::from(bytes));
    resp.headers_mut().remove(header::TRANSFER_ENCODING);
    resp
}

/// The body with its first byte flipped.
fn flip_first_byte(body: Body) -> Body {
    let mut flipped = false;
    Body::from_stream(body.into_data_stream().map(move |chunk| {
        chunk.map(|b| {
            if flipped || b.is_empty() {
                return b;
            }
            flipped = true;
            let mut v = b.to_vec();
            v[0] ^= 0x01;
            Bytes::from(v)
        })
    }))
}

/// The whole of a small answer; `None` if it breaks off or is not small.
async fn read_small(body: Body) -> Option<Bytes> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.ok()?);
        if out.len() > MAX_BUFFERED_ANSWER {
            return None;
        }
    }
    Some(Bytes::from(out))
}

/// The text of the first `<name>` element.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The bucket of a `/<bucket>/<key>` path.
fn bucket_of(path: &str) -> &str {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
}

/// A ListMultipartUploadsResult of the uploads of `bucket` under `prefix`, in key
/// order, on one page.
fn list_uploads(bucket: &str, prefix: &str, open: &[uploads::Open]) -> Response {
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>{}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>",
        escape(bucket),
        escape(prefix)
    );
    let scope = format!("{bucket}/");
    for u in open {
        let Some(key) = u.key.strip_prefix(&scope).filter(|k| k.starts_with(prefix)) else {
            continue;
        };
        body.push_str(&format!(
            "<Upload><Key>{}</Key><UploadId>{}</UploadId><Initiated>{}</Initiated><StorageClass>STANDARD</StorageClass></Upload>",
            escape(key),
            escape(&u.id),
            crate::clock::iso8601(u.initiated).replace("+00:00", ".000Z"),
        ));
    }
    body.push_str("</ListMultipartUploadsResult>");
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_told_apart_by_method_and_query() {
        let q = |s: &str| query_pairs(&format!("/s3/b/k?{s}").parse::<Uri>().expect("uri"));
        assert_eq!(Call::of(&Method::POST, "/b/k", &q("uploads")), Call::Create);
        assert_eq!(
            Call::of(&Method::PUT, "/b/k", &q("partNumber=1&uploadId=a")),
            Call::UploadPart
        );
        assert_eq!(
            Call::of(&Method::GET, "/b/k", &q("uploadId=a")),
            Call::ListParts
        );
        assert_eq!(
            Call::of(&Method::POST, "/b/k", &q("uploadId=a")),
            Call::Complete
        );
        assert_eq!(
            Call::of(&Method::DELETE, "/b/k", &q("uploadId=a")),
            Call::Abort
        );
        assert_eq!(
            Call::of(&Method::GET, "/b/", &q("uploads&prefix=a%2Fb")),
            Call::ListUploads
        );
        assert_eq!(Call::of(&Method::PUT, "/b/k", &q("")), Call::PutObject);
        assert_eq!(Call::of(&Method::PUT, "/b", &q("")), Call::Other);
        assert_eq!(Call::of(&Method::HEAD, "/b/k", &q("")), Call::Other);
        assert_eq!(q("uploads&prefix=a%2Fb%20c")[1].1, "a/b c");
    }

    #[test]
    fn percent_decoding_leaves_broken_escapes_alone() {
        assert_eq!(percent_decode("a%2F%zz%4"), "a/%zz%4");
        assert_eq!(percent_decode("%41"), "A");
    }
}

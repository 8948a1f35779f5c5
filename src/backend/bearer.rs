//! An HTTP client for services with a bearer token: sends each request with the
//! token, re-reads it once on a 401/403, and parses refusals.
//!
//! Shared by the Box and Insights Hub backends; each keeps its own JSON shapes.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::http::{self, retry_after};
use super::{BackendError, Op, PartBody, Progress, Timeouts};
use crate::secret::{Secret, SecretSource, redact};

/// Largest error body read from a refusal; both services' are a few hundred bytes.
const MAX_ERROR_BODY: usize = 16 << 10;
/// Largest JSON answer read: a page of 1000 part records is about 100 KB.
const MAX_JSON_BODY: usize = 4 << 20;

/// A refusal: status, the service's error code where its body has one, and the body.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: String,
    pub context: Value,
    pub retry_after: Option<std::time::Duration>,
    /// Redacted and truncated, for messages.
    pub body: String,
}

impl Refusal {
    /// A refusal from its status, `Retry-After` and body, whatever the body holds
    /// (JSON of any shape, or not JSON at all); `token` is masked in the body.
    pub fn parse(
        status: StatusCode,
        retry_after: Option<std::time::Duration>,
        body: &[u8],
        token: &Secret,
    ) -> Refusal {
        let text = String::from_utf8_lossy(body);
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Refusal {
            status,
            // Box: `code`; Insights Hub's newer endpoints: `errors[0].code`.
            code: parsed
                .get("code")
                .or_else(|| parsed.pointer("/errors/0/code"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            context: parsed.get("context_info").cloned().unwrap_or(Value::Null),
            retry_after,
            body: redact(&text, &[token]),
        }
    }

    pub fn describe(&self) -> String {
        format!("HTTP {}: {}", self.status, self.body)
    }
}

/// An answer: success, or a refusal.
pub enum Answer {
    Ok(Response),
    Refused(Refusal),
}

/// Which header carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHeader {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A header of its own, e.g. Exosite's `X-Exosite-CIK: <token>`.
    Named(&'static str),
}

/// How a service takes the token, and what its refusal tells the operator.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// For messages: "Box", "Insights Hub".
    pub name: &'static str,
    pub header: TokenHeader,
    /// What to do about a refused token, followed by where it is read from: "put a
    /// valid token in".
    pub renewal: &'static str,
}

/// Holds the token and sends requests with it.
#[derive(Debug)]
pub struct BearerClient {
    service: Service,
    pub http: reqwest::Client,
    source: SecretSource,
    token: RwLock<Secret>,
    timeouts: Timeouts,
    /// The uplink's rate (bytes/s) as the last long body measured it.
    link_rate: AtomicU64,
}

impl BearerClient {
    fn new(
        service: Service,
        http: reqwest::Client,
        source: SecretSource,
        token: Secret,
        timeouts: Timeouts,
    ) -> BearerClient {
        BearerClient {
            service,
            http,
            source,
            token: RwLock::new(token),
            timeouts,
            link_rate: AtomicU64::new(0),
        }
    }

    /// The client of a configured service: `source` is the config's
    /// `token_file`/`token_env` choice (or why it is wrong), read once now.
    pub fn open(
        service: Service,
        source: Result<SecretSource, (&'static str, String)>,
        timeouts: Timeouts,
    ) -> Result<BearerClient, BackendError> {
        let source = source.map_err(|(k, e)| BackendError::config(format!("{k}: {e}")))?;
        let token = source.load().map_err(BackendError::config)?;
        Ok(BearerClient::new(
            service,
            http::client(timeouts)?,
            source,
            token,
            timeouts,
        ))
    }

    fn token(&self) -> Secret {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the token; `true` if it differs from `than` (then it is the one in
    /// use). An external agent rotates the token file.
    pub fn reload(&self, than: &Secret) -> bool {
        match self.source.load() {
            Ok(fresh) if fresh != *than => {
                *self.token.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                true
            }
            _ => false,
        }
    }

    /// Re-reads the token; `true` if it changed.
    pub fn reload_current(&self) -> bool {
        self.reload(&self.token())
    }

    /// Re-reads the token on demand; `Ok(true)` if it changed (then it is the one
    /// in use). A source that cannot be read leaves the token in use as it is.
    pub fn reread(&self) -> Result<bool, BackendError> {
        let fresh = self.source.load().map_err(BackendError::config)?;
        let mut slot = self.token.write().unwrap_or_else(|p| p.into_inner());
        if *slot == fresh {
            return Ok(false);
        }
        *slot = fresh;
        Ok(true)
    }

    /// Sends `build(request, body)` with the bearer token, `body` streamed from
    /// `body` and timed by its progress. On a 401 or 403 the token is read again
    /// once (box.md §Hosts and auth: "refreshes once and retries"; insights-hub.md
    /// §Errors: "refresh once, retry") and the request
    /// sent again if it changed. `build` is called per try, so bodies are rebuilt.
    pub async fn send(
        &self,
        op: Op,
        method: Method,
        url: &str,
        body: Option<&PartBody>,
        build: impl Fn(RequestBuilder, Option<reqwest::Body>) -> RequestBuilder,
    ) -> Result<Answer, BackendError> {
        let mut refreshed = false;
        loop {
            let token = self.token();
            let progress = match body {
                Some(_) => Progress::with_rate_hint(self.link_rate.load(Ordering::Relaxed)),
                None => Progress::without_body(),
            };
            let stream =
                body.map(|b| reqwest::Body::wrap_stream(b.clone().into_stream(progress.clone())));
            let req = build(self.http.request(method.clone(), url), stream);
            let req = match self.service.header {
                TokenHeader::Bearer => req.bearer_auth(token.expose()),
                TokenHeader::Named(name) => {
                    let Ok(mut value) = reqwest::header::HeaderValue::from_str(token.expose())
                    else {
                        return Err(BackendError::AuthRefused {
                            op,
                            detail: format!(
                                "the token in {} holds characters an HTTP header cannot carry",
                                self.source.describe()
                            ),
                        });
                    };
                    // Kept out of debug output, as `bearer_auth` does.
                    value.set_sensitive(true);
                    req.header(name, value)
                }
            };
            let resp = http::send(op, req, &progress, self.timeouts).await;
            if let Some(rate) = progress.measured_rate() {
                self.link_rate.store(rate, Ordering::Relaxed);
            }
            let resp = resp?;
            if resp.status().is_success() {
                return Ok(Answer::Ok(resp));
            }
            let refusal = self.refusal(op, resp, &token).await?;
            if matches!(refusal.status.as_u16(), 401 | 403) && !refreshed && self.reload(&token) {
                refreshed = true;
                continue;
            }
            if refusal.status == StatusCode::UNAUTHORIZED {
                return Err(BackendError::AuthRefused {
                    op,
                    detail: format!(
                        "{} refused the access token (HTTP 401); {} {}",
                        self.service.name,
                        self.service.renewal,
                        self.source.describe()
                    ),
                });
            }
            return Ok(Answer::Refused(refusal));
        }
    }

    async fn refusal(
        &self,
        op: Op,
        resp: Response,
        token: &Secret,
    ) -> Result<Refusal, BackendError> {
        let status = resp.status();
        let after = retry_after(resp.headers());
        let bytes = http::read_body(op, resp, MAX_ERROR_BODY, self.timeouts.answer).await?;
        Ok(Refusal::parse(status, after, &bytes, token))
    }

    /// Reads a success body of at most `limit` bytes, within the answer timeout.
    pub async fn body(
        &self,
        op: Op,
        resp: Response,
        limit: usize,
    ) -> Result<Vec<u8>, BackendError> {
        http::read_body(op, resp, limit, self.timeouts.answer).await
    }

    /// `len` bytes of a stored object from `offset`, read with `Range` (for
    /// verification that reads back). An object that is gone or shorter than the
    /// range gives fewer bytes (the caller compares); other refusals go through
    /// `classify`.
    pub async fn read_range(
        &self,
        op: Op,
        url: &str,
        offset: u64,
        len: u64,
        classify: impl FnOnce(Op, Refusal) -> BackendError,
    ) -> Result<bytes::Bytes, BackendError> {
        if len == 0 {
            return Ok(bytes::Bytes::new());
        }
        let range = format!("bytes={offset}-{}", offset + len - 1);
        let answer = self
            .send(op, Method::GET, url, None, |r, _| {
                r.header(reqwest::header::RANGE, &range)
            })
            .await?;
        match answer {
            Answer::Ok(resp) => {
                // A service (or a proxy) that ignores `Range` answers 200 with the
                // whole object: reading a range out of it would download the object
                // once per range.
                if resp.status() == StatusCode::OK && offset > 0 {
                    return Err(BackendError::Fatal {
                        op,
                        status: Some(200),
                        detail: format!(
                            "{} answered a ranged read with the whole object; reading it back \
                             is not possible: set upload.verify = \"size\"",
                            self.service.name
                        ),
                    });
                }
                // One more byte than asked shows a service that sent more.
                let limit = usize::try_from(len.saturating_add(1)).unwrap_or(usize::MAX);
                let mut bytes = bytes::Bytes::from(self.body(op, resp, limit).await?);
                bytes.truncate(len as usize);
                Ok(bytes)
            }
            Answer::Refused(r) if matches!(r.status.as_u16(), 404 | 416) => Ok(bytes::Bytes::new()),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    /// Reads a JSON success body.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        op: Op,
        resp: Response,
    ) -> Result<T, BackendError> {
        let status = resp.status();
        let bytes = self.body(op, resp, MAX_JSON_BODY).await?;
        serde_json::from_slice(&bytes).map_err(|e| BackendError::Retry {
            // A 2xx that is not the documented JSON: a proxy or a truncated answer.
            op,
            after: None,
            cause: format!(
                "HTTP {status} with an unexpected body ({e}): {}",
                redact(&String::from_utf8_lossy(&bytes), &[])
            ),
        })
    }
}

//! The account session: logs in, keeps the token, sends HTTP calls and JSON-RPC
//! calls with it, and logs in again once when the service says the token is gone.
//!
//! edgio.md §Auth and sessions: a token lives an hour by default; an expired or
//! invalid one is answered 401/403 with `X-Agile-Status: -10001` (HTTP) or code
//! `-10001` (JSON-RPC). One login serves every request; requests that meet the
//! expiry together log in once between them.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use super::codes::{self, AUTH};
use crate::backend::http::{self, retry_after};
use crate::backend::{BackendError, Op, PartBody, Progress, Timeouts};
use crate::secret::{Secret, SecretSource, redact};

/// Answers are empty (HTTP calls) or small JSON documents; a page of 1000 piece
/// records is about 60 KB. Kept small: a junk answer is held (and copied for the
/// redacted message) up to this size, several in flight at once.
const MAX_BODY: usize = 256 << 10;

/// What an HTTP call carries.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// Nothing (`Content-Length: 0`, as the service's examples send).
    Empty,
    /// Bytes streamed from a part.
    Part(&'a PartBody),
    /// An empty file as `multipart/form-data` (`/post/file`): `uploadFile` named
    /// `filename`, with the text `fields`.
    EmptyFileForm {
        filename: &'a str,
        fields: &'a [(&'a str, &'a str)],
    },
}

/// One HTTP call's answer: the status, the service's own code, the headers.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// `X-Agile-Status`; a reply without it (a proxy's) reads as `None`.
    pub agile: Option<i64>,
    pub headers: HeaderMap,
    /// Redacted, for messages.
    pub body: String,
}

impl Reply {
    /// Success as the service defines it: HTTP 200 and `X-Agile-Status: 0`.
    pub fn ok(&self) -> bool {
        self.status == StatusCode::OK && self.agile == Some(0)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn describe(&self) -> String {
        let code = self
            .agile
            .map(|c| format!(", X-Agile-Status {c} ({})", codes::meaning(c)))
            .unwrap_or_default();
        if self.body.is_empty() {
            format!("HTTP {}{code}", self.status)
        } else {
            format!("HTTP {}{code}: {}", self.status, self.body)
        }
    }
}

#[derive(Debug)]
pub struct Agile {
    pub http: reqwest::Client,
    /// The ingest host, without a trailing `/`.
    base: String,
    username: String,
    source: SecretSource,
    password: RwLock<Secret>,
    /// The token of the current login; `None` until the first call needs one.
    /// Held across a login, so that requests meeting an expiry together log in once.
    token: tokio::sync::Mutex<Option<Secret>>,
    timeouts: Timeouts,
    /// The uplink's rate (bytes/s) as the last long body measured it.
    link_rate: AtomicU64,
    rpc_id: AtomicU64,
}

impl Agile {
    pub fn new(
        base: String,
        username: String,
        source: SecretSource,
        timeouts: Timeouts,
    ) -> Result<Agile, BackendError> {
        let password = source.load().map_err(BackendError::config)?;
        Ok(Agile {
            http: http::client(timeouts)?,
            base,
            username,
            source,
            password: RwLock::new(password),
            token: tokio::sync::Mutex::new(None),
            timeouts,
            link_rate: AtomicU64::new(0),
            rpc_id: AtomicU64::new(1),
        })
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn password(&self) -> Secret {
        self.password
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the password; `true` if it changed (the next call logs in with it).
    pub fn reload(&self) -> bool {
        let current = self.password();
        match self.source.load() {
            Ok(fresh) if fresh != current => {
                *self.password.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                // The old login may still work, but it belongs to the old password.
                if let Ok(mut t) = self.token.try_lock() {
                    *t = None;
                }
                true
            }
            _ => false,
        }
    }

    /// Re-reads the password on demand; `Ok(true)` if it changed. Then the login is
    /// forgotten (waiting for a login in progress, which used the old password), so
    /// the next call logs in with the new one: after a password change the service
    /// ends the sessions the old one opened (edgio.md §Auth and sessions), and a
    /// call on such a token would cost a refusal first. The old token is not logged
    /// out: it is void already, or expires by itself.
    pub async fn reread(&self) -> Result<bool, BackendError> {
        let fresh = self.source.load().map_err(BackendError::config)?;
        if fresh == self.password() {
            return Ok(false);
        }
        let mut token = self.token.lock().await;
        *self.password.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        *token = None;
        Ok(true)
    }

    /// The current token, logging in when there is none.
    async fn token(&self, op: Op) -> Result<Secret, BackendError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = &*slot {
            return Ok(t.clone());
        }
        let fresh = match self.login(op).await {
            // The password file may have been rotated since it was read.
            Err(BackendError::AuthRefused { .. }) if self.reload() => self.login(op).await?,
            other => other?,
        };
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets `stale` if it is still the current token: the next call logs in.
    async fn drop_token(&self, stale: &Secret) {
        let mut slot = self.token.lock().await;
        if slot.as_ref() == Some(stale) {
            *slot = None;
        }
    }

    /// `POST /account/login` (edgio.md §Auth and sessions, HTTP form).
    async fn login(&self, op: Op) -> Result<Secret, BackendError> {
        let password = self.password();
        let mut pw =
            HeaderValue::from_str(password.expose()).map_err(|_| BackendError::AuthRefused {
                op,
                detail: format!(
                    "the password in {} holds characters an HTTP header cannot carry",
                    self.source.describe()
                ),
            })?;
        pw.set_sensitive(true);
        let req = self
            .http
            .post(format!("{}/account/login", self.base))
            .header("X-Agile-Username", &self.username)
            .header("X-Agile-Password", pw)
            .header("content-length", 0);
        let reply = self
            .finish(op, req, &Progress::without_body(), &[&password])
            .await?;
        if reply.ok() {
            let token = reply
                .header("X-Agile-Token")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| BackendError::Retry {
                    op,
                    after: None,
                    cause: "the login answer carries no X-Agile-Token".into(),
                })?;
            tracing::debug!("logged in to Edgio");
            return Ok(Secret::new(token));
        }
        if reply.agile == Some(AUTH) || reply.status == StatusCode::BAD_REQUEST {
            return Err(BackendError::AuthRefused {
                op,
                detail: format!(
                    "Edgio refused the login of user {:?} ({}); put the right password in {}",
                    self.username,
                    reply.describe(),
                    self.source.describe()
                ),
            });
        }
        Err(codes::classify(op, &reply))
    }

    /// Sends an HTTP call of the ingest host with the token (`X-Agile-Authorization`),
    /// `body` streamed and timed by its progress. `build` adds the call's headers;
    /// it runs per try, so a body is rebuilt after a login.
    pub async fn call(
        &self,
        op: Op,
        path: &str,
        payload: Payload<'_>,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Reply, BackendError> {
        let body = match payload {
            Payload::Part(b) => Some(b),
            _ => None,
        };
        let mut relogged = false;
        loop {
            let token = self.token(op).await?;
            let mut auth =
                HeaderValue::from_str(token.expose()).map_err(|_| BackendError::AuthRefused {
                    op,
                    detail: "the login returned a token an HTTP header cannot carry".into(),
                })?;
            auth.set_sensitive(true);
            let progress = match body {
                Some(_) => Progress::with_rate_hint(self.link_rate.load(Ordering::Relaxed)),
                None => Progress::without_body(),
            };
            let req = build(
                self.http
                    .post(format!("{}{path}", self.base))
                    .header("X-Agile-Authorization", auth),
            );
            let req = match payload {
                Payload::Part(b) => {
                    req.header("content-length", b.len())
                        .body(reqwest::Body::wrap_stream(
                            b.clone().into_stream(progress.clone()),
                        ))
                }
                Payload::Empty => req.header("content-length", 0),
                Payload::EmptyFileForm { filename, fields } => {
                    let file = reqwest::multipart::Part::bytes(Vec::new())
                        .file_name(filename.to_string())
                        .mime_str("application/octet-stream")
                        .map_err(|e| BackendError::Fatal {
                            op,
                            status: None,
                            detail: format!("cannot build the upload form: {e}"),
                        })?;
                    let form = fields
                        .iter()
                        .fold(reqwest::multipart::Form::new(), |f, (k, v)| {
                            f.text(k.to_string(), v.to_string())
                        })
                        .part("uploadFile", file);
                    req.multipart(form)
                }
            };
            let reply = self.finish(op, req, &progress, &[&token]).await?;
            if is_auth(&reply) {
                if !relogged {
                    relogged = true;
                    self.drop_token(&token).await;
                    continue;
                }
                return Err(self.refused(op, &reply.describe()));
            }
            return Ok(reply);
        }
    }

    /// Calls a JSON-RPC method of the ingest host (`/jsonrpc`, JSON-RPC 2.0 with
    /// positional parameters, as the vendor's examples call it), the token first.
    /// Returns the `result`: a bare code or an object with `code`.
    pub async fn rpc(&self, op: Op, method: &str, args: &[Value]) -> Result<Value, BackendError> {
        let mut relogged = false;
        loop {
            let token = self.token(op).await?;
            let mut params = vec![Value::String(token.expose().to_string())];
            params.extend_from_slice(args);
            let result = self.rpc_plain(op, method, params, &[&token]).await?;
            if codes::rpc_code(&result) == Some(AUTH) {
                if !relogged {
                    relogged = true;
                    self.drop_token(&token).await;
                    continue;
                }
                return Err(self.refused(op, &format!("{method} answered code {AUTH}")));
            }
            return Ok(result);
        }
    }

    async fn rpc_plain(
        &self,
        op: Op,
        method: &str,
        params: Vec<Value>,
        secrets: &[&Secret],
    ) -> Result<Value, BackendError> {
        let id = self.rpc_id.fetch_add(1, Ordering::Relaxed);
        let req = self
            .http
            .post(format!("{}/jsonrpc", self.base))
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let reply = self
            .finish(op, req, &Progress::without_body(), secrets)
            .await?;
        if !reply.status.is_success() {
            return Err(codes::classify(op, &reply));
        }
        let doc: Value = serde_json::from_str(&reply.body).map_err(|e| BackendError::Retry {
            op,
            after: None,
            cause: format!(
                "{method}: an answer that is not JSON-RPC ({e}): {}",
                reply.body
            ),
        })?;
        if let Some(err) = doc.get("error").filter(|e| !e.is_null()) {
            let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
            return Err(match code {
                // -32000..-32099: the server's own trouble.
                -32099..=-32000 => BackendError::Retry {
                    op,
                    after: None,
                    cause: format!("{method}: JSON-RPC error {err}"),
                },
                _ => BackendError::Fatal {
                    op,
                    status: None,
                    detail: format!("{method}: JSON-RPC error {err}"),
                },
            });
        }
        Ok(doc.get("result").cloned().unwrap_or(Value::Null))
    }

    /// Logs out (edgio.md: `logout(token)`), once, at shutdown.
    pub async fn logout(&self) {
        let token = self.token.lock().await.take();
        if let Some(t) = token {
            let params = vec![Value::String(t.expose().to_string())];
            match self.rpc_plain(Op::Abort, "logout", params, &[&t]).await {
                Ok(_) => tracing::debug!("logged out of Edgio"),
                Err(e) => tracing::debug!(error = %e, "logout failed; the token expires by itself"),
            }
        }
    }

    /// Sends `req` and reads the answer: headers, and the body (small, redacted).
    async fn finish(
        &self,
        op: Op,
        req: RequestBuilder,
        progress: &Progress,
        secrets: &[&Secret],
    ) -> Result<Reply, BackendError> {
        let resp = http::send(op, req, progress, self.timeouts).await;
        if let Some(rate) = progress.measured_rate() {
            self.link_rate.store(rate, Ordering::Relaxed);
        }
        let resp = resp?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let agile = headers
            .get("X-Agile-Status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        let bytes = http::read_body(op, resp, MAX_BODY, self.timeouts.answer).await?;
        let text = String::from_utf8_lossy(&bytes);
        // JSON-RPC answers are parsed whole; only refusals are cut for messages.
        let body = if status.is_success() {
            text.into_owned()
        } else {
            redact(&text, secrets)
        };
        Ok(Reply {
            status,
            agile,
            headers,
            body,
        })
    }

    fn refused(&self, op: Op, what: &str) -> BackendError {
        BackendError::AuthRefused {
            op,
            detail: format!(
                "Edgio refused a fresh login's token ({what}); check the account's rights and the password in {}",
                self.source.describe()
            ),
        }
    }

    /// The least wait a refusal asked for.
    pub fn retry_after(reply: &Reply) -> Option<std::time::Duration> {
        retry_after(&reply.headers)
    }
}

/// The token is missing, invalid or expired.
fn is_auth(reply: &Reply) -> bool {
    reply.agile == Some(AUTH) || matches!(reply.status.as_u16(), 401 | 403)
}

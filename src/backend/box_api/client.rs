//! Box's HTTP calls: authentication with one refresh, and the JSON shapes.
//!
//! `protocols/box.md` is the source of every rule cited here.

use std::sync::RwLock;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::http::{retry_after, transport};
use crate::backend::{BackendError, Op};
use crate::secret::{Secret, SecretSource, redact};

/// Largest error body read from a refusal; Box's are a few hundred bytes.
const MAX_ERROR_BODY: usize = 16 << 10;

/// `UploadSession` (box.md §Session lifecycle).
#[derive(Debug, Clone, Deserialize)]
pub struct UploadSession {
    pub id: String,
    pub part_size: u64,
    #[serde(default)]
    pub session_endpoints: Option<Endpoints>,
}

/// Absolute URLs of a session's calls; we keep them in the journal with the session.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoints {
    #[serde(default)]
    pub upload_part: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub abort: Option<String>,
    #[serde(default)]
    pub list_parts: Option<String>,
}

/// `UploadPart`: what commit needs back, exactly as the server gave it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadPart {
    pub part_id: String,
    pub offset: u64,
    pub size: u64,
    /// Hex (not base64).
    pub sha1: String,
}

#[derive(Debug, Deserialize)]
pub struct PartAnswer {
    pub part: UploadPart,
}

#[derive(Debug, Deserialize)]
pub struct PartList {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub entries: Vec<UploadPart>,
}

/// A file object (subset).
#[derive(Debug, Clone, Deserialize)]
pub struct BoxFile {
    pub id: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha1: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Entries<T> {
    #[serde(default)]
    pub total_count: Option<u64>,
    pub entries: Vec<T>,
}

/// An item in a folder listing or a conflict report.
#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// A refusal, parsed from Box's `ClientError` body.
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
    /// The conflicting item of a 409 `item_name_in_use` (an object for uploads, an
    /// array for folder creation).
    pub fn conflict(&self) -> Option<Item> {
        let c = self.context.get("conflicts")?;
        let first = match c {
            Value::Array(a) => a.first()?.clone(),
            other => other.clone(),
        };
        serde_json::from_value(first).ok()
    }

    pub fn describe(&self) -> String {
        format!("HTTP {}: {}", self.status, self.body)
    }
}

/// An answer: success, or a refusal with Box's error code.
pub enum Answer {
    Ok(Response),
    Refused(Refusal),
}

/// Holds the token and sends requests with it.
#[derive(Debug)]
pub struct BoxClient {
    pub http: reqwest::Client,
    source: SecretSource,
    token: RwLock<Secret>,
}

impl BoxClient {
    pub fn new(http: reqwest::Client, source: SecretSource, token: Secret) -> BoxClient {
        BoxClient {
            http,
            source,
            token: RwLock::new(token),
        }
    }

    fn token(&self) -> Secret {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the token after a 401; `true` if it changed (box.md §Hosts and auth:
    /// "refreshes once and retries"). An external agent rotates the token file.
    fn refresh(&self, refused: &Secret) -> bool {
        match self.source.load() {
            Ok(fresh) if fresh != *refused => {
                *self.token.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                true
            }
            _ => false,
        }
    }

    /// Sends `build(method, url)` with the bearer token; on a 401 reloads the token
    /// once and sends again. `build` is called per attempt, so bodies are rebuilt.
    pub async fn send(
        &self,
        op: Op,
        method: Method,
        url: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Answer, BackendError> {
        let mut refreshed = false;
        loop {
            let token = self.token();
            let req = build(self.http.request(method.clone(), url)).bearer_auth(token.expose());
            let resp = req.send().await.map_err(|e| transport(op, e))?;
            if resp.status().is_success() {
                return Ok(Answer::Ok(resp));
            }
            let refusal = self.refusal(resp, &token).await;
            if refusal.status == StatusCode::UNAUTHORIZED {
                if !refreshed && self.refresh(&token) {
                    refreshed = true;
                    continue;
                }
                return Err(BackendError::AuthExpired {
                    op,
                    detail: format!(
                        "Box refused the access token (HTTP 401); put a valid token in {}",
                        self.source.describe()
                    ),
                });
            }
            return Ok(Answer::Refused(refusal));
        }
    }

    async fn refusal(&self, resp: Response, token: &Secret) -> Refusal {
        let status = resp.status();
        let after = retry_after(resp.headers());
        let mut bytes = Vec::new();
        let mut resp = resp;
        while let Ok(Some(chunk)) = resp.chunk().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_ERROR_BODY {
                break;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Refusal {
            status,
            code: parsed
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            context: parsed.get("context_info").cloned().unwrap_or(Value::Null),
            retry_after: after,
            body: redact(&text, &[token]),
        }
    }
}

/// Reads a JSON success body.
pub async fn json<T: serde::de::DeserializeOwned>(
    op: Op,
    resp: Response,
) -> Result<T, BackendError> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| transport(op, e))?;
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

//! Shared helpers: start a testbed, talk Box to it, read Box errors.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dropship_testbed::{Options, SettingsPatch, Testbed};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub const TOKEN: &str = "testbed-secret";

/// A running testbed with a client; the store is deleted with it.
pub struct Bed {
    pub tb: Testbed,
    pub http: reqwest::Client,
    _store: tempfile::TempDir,
}

/// Small sizes for tests whose rule is not about sizes: sessions from 1 byte,
/// parts of 1 KiB.
pub fn small() -> SettingsPatch {
    SettingsPatch {
        box_min_session_size: Some(1),
        box_part_size: Some(1024),
        ..Default::default()
    }
}

pub async fn start(patch: SettingsPatch) -> Bed {
    let store = tempfile::tempdir().expect("temp dir for the store");
    let mut opts = Options::loopback(store.path());
    opts.settings.apply(&patch).expect("valid test settings");
    let tb = Testbed::start(opts).await.expect("testbed starts");
    Bed {
        tb,
        http: client(),
        _store: store,
    }
}

/// A plain-http client. In a workspace build, Cargo unifies reqwest's features with
/// the daemon's, which compiles rustls in without a default crypto provider; reqwest
/// then refuses to build a client unless one is installed. Installing ring's is
/// harmless when TLS is not compiled in.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

pub fn sha1_hex(data: &[u8]) -> String {
    sha1(data).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha1_b64(data: &[u8]) -> String {
    STANDARD.encode(sha1(data))
}

/// Deterministic non-repeating-ish test content.
pub fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Status, Box error code ("" if none) and the JSON body (Null if none).
pub async fn answer(resp: Response) -> (u16, String, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let code = body["code"].as_str().unwrap_or_default().to_string();
    (status, code, body)
}

impl Bed {
    /// `http://ADDR/box/2.0` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/box/2.0{path}", self.tb.url())
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(TOKEN)
    }

    pub async fn create_session(&self, folder: &str, name: &str, size: u64) -> Response {
        self.req(Method::POST, "/files/upload_sessions")
            .json(&json!({"folder_id": folder, "file_size": size, "file_name": name}))
            .send()
            .await
            .expect("create session request")
    }

    /// Creates a session and returns its JSON; panics unless 201.
    pub async fn session(&self, name: &str, size: u64) -> Value {
        let (status, _, body) = answer(self.create_session("0", name, size).await).await;
        assert_eq!(status, 201, "create session: {body}");
        body
    }

    pub async fn put_part(&self, session: &str, data: &[u8], offset: u64, total: u64) -> Response {
        let last = offset + data.len() as u64 - 1;
        self.req(Method::PUT, &format!("/files/upload_sessions/{session}"))
            .header("Content-Range", format!("bytes {offset}-{last}/{total}"))
            .header("Digest", format!("sha={}", sha1_b64(data)))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("put part request")
    }

    /// Uploads every part of `data` in order; returns the part records.
    pub async fn upload_all(&self, session: &Value, data: &[u8]) -> Vec<Value> {
        let id = session["id"].as_str().expect("session id");
        let part_size = session["part_size"].as_u64().expect("part_size") as usize;
        let mut parts = Vec::new();
        for (i, chunk) in data.chunks(part_size).enumerate() {
            let resp = self
                .put_part(id, chunk, (i * part_size) as u64, data.len() as u64)
                .await;
            let (status, _, body) = answer(resp).await;
            assert_eq!(status, 200, "part {i}: {body}");
            parts.push(body["part"].clone());
        }
        parts
    }

    pub async fn commit(&self, session: &str, parts: &[Value], whole_sha1_b64: &str) -> Response {
        self.req(
            Method::POST,
            &format!("/files/upload_sessions/{session}/commit"),
        )
        .header("Digest", format!("sha={whole_sha1_b64}"))
        .json(&json!({ "parts": parts }))
        .send()
        .await
        .expect("commit request")
    }

    /// Session + all parts + commit; returns the committed file JSON.
    pub async fn chunked_upload(&self, name: &str, data: &[u8]) -> Value {
        let s = self.session(name, data.len() as u64).await;
        let parts = self.upload_all(&s, data).await;
        let id = s["id"].as_str().expect("session id");
        let (status, _, body) = answer(self.commit(id, &parts, &sha1_b64(data)).await).await;
        assert_eq!(status, 201, "commit: {body}");
        body["entries"][0].clone()
    }

    /// A direct upload with hand-built multipart (so part order is under our control).
    pub async fn direct(
        &self,
        path: &str,
        fields: &[(&str, Vec<u8>)],
        headers: &[(&str, String)],
    ) -> Response {
        let boundary = "testbedBoundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let disposition = if *name == "file" {
                "form-data; name=\"file\"; filename=\"unused\"".to_string()
            } else {
                format!("form-data; name=\"{name}\"")
            };
            body.extend_from_slice(
                format!("Content-Disposition: {disposition}\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let mut req = self
            .req(Method::POST, path)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().await.expect("direct upload request")
    }

    /// Direct upload of a new file into `folder`.
    pub async fn direct_new(&self, folder: &str, name: &str, data: &[u8]) -> Response {
        let attrs = json!({"name": name, "parent": {"id": folder}}).to_string();
        self.direct(
            "/files/content",
            &[("attributes", attrs.into_bytes()), ("file", data.to_vec())],
            &[("content-md5", sha1_hex(data))],
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path)
            .send()
            .await
            .expect("GET request")
    }

    pub async fn mkdir(&self, parent: &str, name: &str) -> Response {
        self.req(Method::POST, "/folders")
            .json(&json!({"name": name, "parent": {"id": parent}}))
            .send()
            .await
            .expect("create folder request")
    }
}

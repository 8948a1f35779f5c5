//! Helpers for the Edgio tests: a testbed, its upload and delivery URLs, and the
//! calls most tests make (login, JSON-RPC, raw posts, multipart steps).

use dropship_testbed::SettingsPatch;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{Bed, TOKEN, start};

/// The account and user of a default testbed.
pub const ACCOUNT: &str = "testbed";
pub const USER: &str = "testbed";

pub struct Ed {
    pub bed: Bed,
}

/// An HTTP-interface answer: status, `X-Agile-Status`, headers, body.
#[derive(Debug)]
pub struct Agile {
    pub status: u16,
    pub code: i64,
    pub headers: HeaderMap,
    pub body: String,
}

impl Agile {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// (status, X-Agile-Status), the pair most assertions compare.
    pub fn pair(&self) -> (u16, i64) {
        (self.status, self.code)
    }
}

pub async fn agile(resp: reqwest::Response) -> Agile {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let code = headers
        .get("x-agile-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MIN);
    let body = resp.text().await.unwrap_or_default();
    Agile {
        status,
        code,
        headers,
        body,
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Ed {
    pub async fn start(patch: SettingsPatch) -> Ed {
        Ed {
            bed: start(patch).await,
        }
    }

    /// `http://ADDR/edgio` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/edgio{path}", self.bed.tb.url())
    }

    pub fn set(&self, patch: SettingsPatch) {
        self.bed.tb.update_settings(patch);
    }

    /// A POST to the upload host with these headers and body.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Agile {
        let mut req = self.bed.http.post(self.url(path)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        agile(req.send().await.expect("edgio request")).await
    }

    /// A token from the HTTP login.
    pub async fn login(&self) -> String {
        let a = self
            .post(
                "/account/login",
                &[("X-Agile-Username", USER), ("X-Agile-Password", TOKEN)],
                Vec::new(),
            )
            .await;
        assert_eq!(a.pair(), (200, 0), "login: {a:?}");
        a.header("x-agile-token").to_string()
    }

    /// The whole JSON-RPC reply to `request` sent to `endpoint` ("/jsonrpc" or "/jsonrpc2").
    pub async fn rpc_raw(&self, endpoint: &str, request: String) -> Value {
        let resp = self
            .bed
            .http
            .post(self.url(endpoint))
            .body(request)
            .send()
            .await
            .expect("json-rpc request");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.expect("json-rpc reply is JSON")
    }

    /// The result of a JSON-RPC 2.0 call; panics on an envelope error.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let reply = self.rpc_raw("/jsonrpc2", req.to_string()).await;
        assert!(reply.get("error").is_none(), "{method}: {reply}");
        reply["result"].clone()
    }

    pub async fn mkdir(&self, token: &str, dir: &str) {
        let r = self.rpc("makeDir2", json!([token, dir])).await;
        assert_eq!(r, json!(0), "makeDir2 {dir}");
    }

    pub async fn post_raw(&self, token: &str, dir: &str, name: &str, data: &[u8]) -> Agile {
        self.post(
            "/post/raw",
            &[
                ("X-Agile-Authorization", token),
                ("X-Agile-Directory", dir),
                ("X-Agile-Basename", name),
            ],
            data.to_vec(),
        )
        .await
    }

    /// A new upload's mpid; panics unless created.
    pub async fn create(&self, token: &str, dir: &str, name: &str) -> String {
        let a = self
            .post(
                "/multipart/create",
                &[
                    ("X-Agile-Authorization", token),
                    ("X-Agile-Directory", dir),
                    ("X-Agile-Basename", name),
                ],
                Vec::new(),
            )
            .await;
        assert_eq!(a.pair(), (200, 0), "create: {a:?}");
        a.header("x-agile-multipart").to_string()
    }

    pub async fn piece(&self, token: &str, mpid: &str, part: &str, data: &[u8]) -> Agile {
        self.post(
            "/multipart/piece",
            &[
                ("X-Agile-Authorization", token),
                ("X-Agile-Multipart", mpid),
                ("X-Agile-Part", part),
            ],
            data.to_vec(),
        )
        .await
    }

    pub async fn complete(&self, token: &str, mpid: &str) -> Agile {
        self.post(
            "/multipart/complete",
            &[
                ("X-Agile-Authorization", token),
                ("X-Agile-Multipart", mpid),
            ],
            Vec::new(),
        )
        .await
    }

    pub async fn state(&self, token: &str, mpid: &str) -> i64 {
        let s = self.rpc("getMultipartStatus", json!([token, mpid])).await;
        assert_eq!(s["code"], 0, "{s}");
        s["state"].as_i64().expect("state")
    }

    /// HEAD on the delivery host, `path` without the account.
    pub async fn head(&self, path: &str) -> Agile {
        let url = self.url(&format!("/origin/{ACCOUNT}/{path}"));
        agile(self.bed.http.head(url).send().await.expect("HEAD")).await
    }

    /// The objects the store holds for Edgio, as (path, sha256).
    pub fn objects(&self) -> Vec<(String, String)> {
        self.bed
            .tb
            .objects()
            .into_iter()
            .filter(|o| o.emulator == "edgio")
            .map(|o| (o.path, o.sha256))
            .collect()
    }
}

/// Settings for tests whose rule is not the rate limit: no limit, so a test's burst of
/// calls is never refused.
pub fn quiet() -> SettingsPatch {
    SettingsPatch {
        edgio_rate_limit_rps: Some(0),
        ..Default::default()
    }
}

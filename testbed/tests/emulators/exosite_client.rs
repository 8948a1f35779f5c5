//! Shared helpers for the Exosite tests: URLs, the seed's requests, plain-text answers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dropship_testbed::SettingsPatch;
use md5::{Digest, Md5};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::json;

use crate::support::{Bed, TOKEN};

/// Small sizes for tests whose rule is not about the range size: ranges of 1 KiB.
pub fn ex_small() -> SettingsPatch {
    SettingsPatch {
        exosite_part_size: Some(1024),
        ..Default::default()
    }
}

/// Base64 of the MD5 of `data`: the seed's `MD5` header.
pub fn md5_b64(data: &[u8]) -> String {
    STANDARD.encode(Md5::digest(data))
}

/// Status, headers and the body, as bytes and as (lossy) text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
    pub body: String,
}

impl Answer {
    pub async fn of(resp: Response) -> Answer {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            bytes,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and that the body is a non-empty plain-text line.
    pub fn assert_error(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "plain text: {:?}",
            self.headers
        );
        assert!(!self.body.trim().is_empty(), "an error text");
    }
}

impl Bed {
    /// `http://ADDR/exosite` + `path`.
    pub fn ex_url(&self, path: &str) -> String {
        format!("{}{path}", self.tb.emulator_url("exosite"))
    }

    /// A request presenting the token as the seed does, in `X-Exosite-CIK`.
    pub fn ex(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.ex_url(path))
            .header("X-Exosite-CIK", TOKEN)
    }

    pub async fn ex_send(&self, req: RequestBuilder) -> Answer {
        Answer::of(req.send().await.expect("exosite request")).await
    }

    /// The seed's initiate: `POST /onep:v1/content/` with the JSON body.
    pub async fn ex_initiate(&self, id: &str, length: u64, file_type: &str) -> Answer {
        let info = json!({"id": id, "length": length, "type": file_type});
        self.ex_send(
            self.ex(Method::POST, "/onep:v1/content/")
                .header("Content-Type", "application/json")
                .body(info.to_string()),
        )
        .await
    }

    /// The seed's PATCH of `data` at `start` of a `total`-byte content.
    pub async fn ex_patch(&self, id: &str, data: &[u8], start: u64, total: u64) -> Answer {
        self.ex_patch_with(id, data, start, total, &md5_b64(data))
            .await
    }

    /// The same with a chosen `MD5` header.
    pub async fn ex_patch_with(
        &self,
        id: &str,
        data: &[u8],
        start: u64,
        total: u64,
        md5: &str,
    ) -> Answer {
        let end = start + data.len() as u64 - 1;
        self.ex_send(
            self.ex(Method::PATCH, &format!("/onep:v1/content/{id}"))
                .header("Content-Type", "application/octet-stream")
                .header("MD5", md5)
                .header("Content-Range", format!("bytes {start}-{end}/{total}"))
                .body(data.to_vec()),
        )
        .await
    }

    /// Initiate, then every `part`-byte range in order; panics unless each is 204.
    pub async fn ex_upload(&self, id: &str, data: &[u8], part: usize, file_type: &str) {
        let total = data.len() as u64;
        let a = self.ex_initiate(id, total, file_type).await;
        assert_eq!(a.status, 204, "initiate: {}", a.body);
        for (i, chunk) in data.chunks(part).enumerate() {
            let a = self.ex_patch(id, chunk, (i * part) as u64, total).await;
            assert_eq!(a.status, 204, "range {i}: {}", a.body);
        }
    }

    /// `GET /onep:v1/content/{id}?info=true`.
    pub async fn ex_info(&self, id: &str) -> Answer {
        self.ex_send(self.ex(Method::GET, &format!("/onep:v1/content/{id}?info=true")))
            .await
    }

    /// The stored bytes through the testbed (not the emulator).
    pub fn ex_stored(&self, id: &str) -> Vec<u8> {
        self.tb.object_bytes("exosite", id).expect("stored content")
    }
}

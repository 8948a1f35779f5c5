//! Shared helpers for the Insights Hub tests: URLs, requests, error bodies.

use dropship_testbed::SettingsPatch;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use crate::support::{Bed, TOKEN};

/// The default asset (the vendor's example id, in dropship's example config).
pub const ASSET: &str = "00189ab4c65243bb9d77f17332dd570a";
/// The second default asset.
pub const ASSET2: &str = "fdf4cc6a51e0411389020dcf8a9936c5";

/// Small sizes for tests whose rule is not about the part size: parts of 1 KiB.
pub fn ih_small() -> SettingsPatch {
    SettingsPatch {
        ih_min_part_size: Some(1024),
        ..Default::default()
    }
}

/// Status, headers and JSON body (Null if none or not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub async fn of(resp: Response) -> Answer {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the service's error shape, `{"id": "<uuid>", "message": "..."}`.
    pub fn assert_error(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        let id = self.body["id"].as_str().unwrap_or_default();
        assert_eq!(id.len(), 36, "uuid id in {}", self.body);
        assert_eq!(id.matches('-').count(), 4, "uuid id in {}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message in {}",
            self.body
        );
    }
}

impl Bed {
    /// `http://ADDR/insights-hub/api/iotfile/v3/` + `path`.
    pub fn ih_url(&self, path: &str) -> String {
        format!(
            "{}/api/iotfile/v3/{path}",
            self.tb.emulator_url("insights-hub")
        )
    }

    pub fn ih(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.ih_url(path))
            .bearer_auth(TOKEN)
    }

    /// `PUT files/ASSET/<file><query>` with `body` and extra headers.
    pub async fn ih_put(
        &self,
        file: &str,
        query: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self
            .ih(Method::PUT, &format!("files/{ASSET}/{file}{query}"))
            .header("Content-Type", "application/octet-stream")
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Answer::of(req.send().await.expect("PUT request")).await
    }

    pub async fn ih_get(&self, path: &str) -> Answer {
        Answer::of(
            self.ih(Method::GET, path)
                .send()
                .await
                .expect("GET request"),
        )
        .await
    }

    /// `GET fileslist/ASSET/<file>` as a JSON array; panics unless 200.
    pub async fn ih_fileslist(&self, file: &str) -> Vec<Value> {
        let a = self.ih_get(&format!("fileslist/{ASSET}/{file}")).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body.as_array().cloned().expect("fileslist is an array")
    }

    /// The raw bytes of `GET files/ASSET/<file>`.
    pub async fn ih_download(&self, file: &str) -> Vec<u8> {
        let resp = self
            .ih(Method::GET, &format!("files/{ASSET}/{file}"))
            .send()
            .await
            .expect("download request");
        assert_eq!(resp.status().as_u16(), 200);
        resp.bytes().await.expect("download body").to_vec()
    }

    /// `GET files/<asset>?<query>`, the query form-encoded.
    pub async fn ih_search(&self, asset: &str, query: &[(&str, &str)]) -> Answer {
        let url = reqwest::Url::parse_with_params(&self.ih_url(&format!("files/{asset}")), query)
            .expect("search URL");
        let req = self.http.get(url).bearer_auth(TOKEN);
        Answer::of(req.send().await.expect("search request")).await
    }

    /// The search result for one file (by name and directory), if any.
    pub async fn ih_find(&self, file: &str) -> Option<Value> {
        let (dir, name) = match file.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => ("/".to_string(), file),
        };
        let filter = format!("name eq '{name}' and path eq '{dir}'");
        let a = self.ih_search(ASSET, &[("filter", filter.as_str())]).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body.as_array().and_then(|v| v.first().cloned())
    }

    /// start, parts 1..=n of `part` bytes each, complete with `last`: the whole
    /// multi-part sequence; returns the complete answer.
    pub async fn ih_multipart(
        &self,
        file: &str,
        parts: &[&[u8]],
        last: &[u8],
        headers: &[(&str, &str)],
    ) -> Answer {
        let a = self.ih_put(file, "?upload=start", b"", headers).await;
        assert_eq!(a.status, 200, "start: {}", a.body);
        for (i, p) in parts.iter().enumerate() {
            let a = self
                .ih_put(file, &format!("?part={}", i + 1), p, headers)
                .await;
            assert_eq!(a.status, 200, "part {}: {}", i + 1, a.body);
        }
        self.ih_put(file, "?upload=complete", last, headers).await
    }
}

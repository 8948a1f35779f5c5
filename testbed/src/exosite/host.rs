//! The product a request is for (protocols/exosite.md rule 2): devices call
//! `https://<product>.m2.exosite.io`, so the product is the first label of `Host`.
//!
//! The testbed serves one product, `exosite_product`. The check is off by default
//! (`exosite_check_host`): a client on loopback reaches the testbed as
//! `127.0.0.1:PORT`, and cannot send `<product>.m2.exosite.io` without DNS unless it
//! sets the `Host` header itself. When on, a request whose host's first label is not the
//! product (compared without case, the port ignored) gets 404, before its credentials
//! are looked at: an unknown product has no devices to check them against (assumed).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Exosite;
use super::error::ExError;
use crate::faults::body::drain;

pub(crate) async fn require_product(
    State(api): State<Arc<Exosite>>,
    req: Request,
    next: Next,
) -> Response {
    let s = api.shared.settings();
    if !s.exosite_check_host {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if product_of(host).eq_ignore_ascii_case(&s.exosite_product) {
        return next.run(req).await;
    }
    let err = ExError::not_found(format!("Not Found: no product {:?}", product_of(host)));
    drain(req.into_body()).await;
    err.into_response()
}

/// The first label of a `Host` value: `abc` of `abc.m2.exosite.io:443`.
fn product_of(host: &str) -> &str {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name.split('.').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::product_of;

    #[test]
    fn the_product_is_the_first_label_without_the_port() {
        assert_eq!(product_of("abc123.m2.exosite.io"), "abc123");
        assert_eq!(product_of("abc123.m2.exosite.io:443"), "abc123");
        assert_eq!(product_of("testbed"), "testbed");
        assert_eq!(product_of("127.0.0.1:8900"), "127");
        assert_eq!(product_of(""), "");
    }
}

//! Device credentials for every Exosite route (protocols/exosite.md §Host and auth,
//! rule 1).
//!
//! The provisioned device's token is the testbed's secret as it is when the request
//! arrives; `PUT /_testbed/secret` changing it models a revoked token (401). Accepted:
//! - `X-Exosite-CIK: <token>` (legacy; the seed's form),
//! - `Authorization: token <token>`,
//! - `Authorization: Basic base64(":<token>")` (token mode),
//! - `Authorization: Basic base64("<identity>:<password>")` (password mode): any
//!   identity, the password being the secret (one device, provisioned with it).
//!
//! If `X-Exosite-CIK` is present it is the credential, whatever `Authorization` says
//! (assumed). Scheme names are compared without case. Runs after the fault layer and
//! the gateway errors, so an injected 5xx comes before auth, as on a real front end.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Exosite;
use super::error::ExError;
use crate::faults::body::drain;

pub(crate) async fn require_device(
    State(api): State<Arc<Exosite>>,
    req: Request,
    next: Next,
) -> Response {
    // Compared with the secret current now: it can change between requests.
    if credential(req.headers()).is_some_and(|t| api.shared.secret_matches(&t)) {
        return next.run(req).await;
    }
    // Read the body first so the client sees the 401, not a broken pipe.
    drain(req.into_body()).await;
    ExError::unauthorized().into_response()
}

/// The token or password a request presents, if it presents one in a known form.
fn credential(headers: &HeaderMap) -> Option<String> {
    if let Some(cik) = headers.get("x-exosite-cik") {
        return cik.to_str().ok().map(|t| t.trim().to_string());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("token") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest.trim()).ok()?;
        let pair = String::from_utf8(decoded).ok()?;
        // Token mode has an empty identity; password mode any identity.
        let (_identity, password) = pair.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).expect("test header"));
        h
    }

    #[test]
    fn the_four_forms() {
        let basic = |pair: &str| format!("Basic {}", STANDARD.encode(pair));
        let t = Some("tok".to_string());
        assert_eq!(credential(&with("x-exosite-cik", " tok ")), t);
        assert_eq!(credential(&with("authorization", "token tok")), t);
        assert_eq!(credential(&with("authorization", "Token  tok")), t);
        assert_eq!(credential(&with("authorization", &basic(":tok"))), t);
        assert_eq!(credential(&with("authorization", &basic("dev-1:tok"))), t);
        assert_eq!(credential(&with("authorization", "Bearer tok")), None);
        assert_eq!(credential(&with("authorization", "Basic !!!")), None);
        assert_eq!(credential(&with("authorization", &basic("no-colon"))), None);
        assert_eq!(credential(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cik_header_wins() {
        let mut h = with("x-exosite-cik", "wrong");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("token tok"));
        assert_eq!(credential(&h).as_deref(), Some("wrong"));
    }
}

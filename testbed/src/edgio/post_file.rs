//! `POST /post/file`: a `multipart/form-data` upload (the seed's first example).
//!
//! Token in `X-Agile-Authorization` or `?token=` (401/403 before the form is read).
//! Form fields: `uploadFile` (the file; missing → `-24`, a second one → `-25`),
//! `basename` (default: the part's file name; only its last `/` segment counts, as the
//! docs say), `directory` (default `/`), `recursive` (`X-Agile-Recursive` wins; default
//! false), `mtime`. The file part is streamed to disk, never held in memory. An empty
//! file is stored: the seed uploads one and shows status 0, although the docs list
//! `-23 empty file`. `X-Agile-Checksum` and the rest behave as for `/post/raw`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};

use super::error::{Agile, AgileResult};
use super::headers::{self, flag, text};
use super::post_raw::{Target, placement, store_file};
use super::{Edgio, paths};
use crate::faults::body::drain;
use crate::hex::hex;
use crate::store::{Hashes, Staged};

/// Longest text field kept (names are at most 4096 bytes).
const MAX_FIELD: usize = 8 * 1024;

/// What the form held.
#[derive(Default)]
struct Form {
    file: Option<Staged>,
    /// The file part's own name and type.
    filename: Option<String>,
    part_type: Option<String>,
    /// More than one file part.
    several: bool,
    fields: HashMap<String, String>,
}

fn form_error(e: axum::extract::multipart::MultipartError) -> Agile {
    // A body that ended early shows as a 5xx from the form parser; anything else is
    // a malformed form, answered like a missing file.
    if e.status().is_server_error() {
        Agile::cut_body()
    } else {
        Agile::bad(-24)
    }
}

async fn read_form(api: &Edgio, mut form: Multipart) -> Result<Form, Agile> {
    let mut out = Form::default();
    while let Some(mut field) = form.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "uploadFile" {
            if out.file.is_some() {
                out.several = true;
                while field.chunk().await.map_err(form_error)?.is_some() {}
                continue;
            }
            out.filename = field.file_name().map(str::to_string);
            out.part_type = field.content_type().map(str::to_string);
            let mut staging = api
                .shared
                .store
                .staging(Hashes::SHA256)
                .map_err(Agile::internal)?;
            while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                staging.write(&chunk).await.map_err(Agile::internal)?;
            }
            out.file = Some(staging.finish().await.map_err(Agile::internal)?);
        } else {
            let mut value = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                if value.len() < MAX_FIELD {
                    value.extend_from_slice(&chunk);
                }
            }
            out.fields
                .insert(name, String::from_utf8_lossy(&value).trim().to_string());
        }
    }
    Ok(out)
}

pub(crate) async fn post_file(
    State(api): State<Arc<Edgio>>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    h: HeaderMap,
    req: axum::extract::Request,
) -> AgileResult {
    let s = api.shared.settings();
    let query_token = query
        .as_ref()
        .ok()
        .and_then(|q| q.get("token"))
        .map(String::as_str);
    let caller = match api.http_caller(&s, &h, query_token) {
        Ok(c) => c,
        Err(answer) => {
            drain(req.into_body()).await;
            return Err(answer);
        }
    };
    let multipart =
        match <Multipart as axum::extract::FromRequest<()>>::from_request(req, &()).await {
            Ok(m) => m,
            // Not a multipart/form-data request at all: no file in it.
            Err(_) => return Err(Agile::new(StatusCode::BAD_REQUEST, -24)),
        };
    let form = read_form(&api, multipart).await?;
    if form.several {
        return Err(Agile::bad(-25));
    }
    let Some(staged) = form.file else {
        return Err(Agile::bad(-24));
    };
    let recursive_header = text(&h, "x-agile-recursive").map_err(|_| Agile::bad(-39))?;
    let recursive = flag(
        recursive_header.or(form.fields.get("recursive").map(String::as_str)),
        false,
    )
    .map_err(|_| Agile::bad(-39))?;
    let basename = form
        .fields
        .get("basename")
        .filter(|b| !b.is_empty())
        .or(form.filename.as_ref())
        .and_then(|b| b.rsplit('/').next())
        .map(str::to_string)
        .unwrap_or_else(|| format!("post-{}", hex(&crate::hex::uuid_v4_bytes())));
    if !paths::basename_ok(&basename) {
        return Err(Agile::bad(-8));
    }
    let dir = form.fields.get("directory").map_or("/", String::as_str);
    let dir = paths::resolve(&caller.root, dir).map_err(|_| Agile::bad(-8))?;
    let key = paths::child(&dir, &basename).map_err(|_| Agile::bad(-8))?;
    let mimetype = headers::content_type(&h)
        .ok()
        .flatten()
        .or(form.part_type.filter(|t| headers::is_content_type(t)));
    let mtime = form
        .fields
        .get("mtime")
        .and_then(|m| m.parse::<u64>().ok())
        .filter(|m| *m > 0);
    let checksum = text(&h, "x-agile-checksum")
        .map_err(|_| Agile::bad(-26))?
        .map(str::to_ascii_lowercase);
    let t = Target {
        key,
        recursive,
        mimetype,
        mtime,
        checksum,
    };
    placement(&api, &s, &t)?;
    store_file(&api, &s, t, staged).await
}

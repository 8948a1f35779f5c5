//! Reading an upload body to disk while hashing it (the shared store's staging), never
//! whole in memory: pieces can be gigabytes.
//!
//! A body that ends before its `Content-Length` (the connection was cut) is `-49`
//! with nothing kept; a body longer than the caller's limit stops being kept at once
//! but is read to its end, so the client sees the refusal instead of a broken pipe.

use axum::body::Body;
use futures_util::StreamExt;

use super::error::Agile;
use crate::store::{Hashes, Staged, Store};

/// What became of a body.
pub(crate) enum Received {
    Kept(Staged),
    /// More than the limit: nothing kept.
    TooLong,
}

pub(crate) async fn receive(store: &Store, body: Body, max: u64) -> Result<Received, Agile> {
    let mut staging = Some(store.staging(Hashes::SHA256).map_err(Agile::internal)?);
    let mut len = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        // hyper reports a body shorter than its Content-Length as an error here.
        let chunk = chunk.map_err(|e| {
            tracing::debug!(error = %e, read = len, "edgio body ended early");
            Agile::cut_body()
        })?;
        len += chunk.len() as u64;
        if len > max {
            // Dropping the staging file deletes it.
            staging = None;
        }
        if let Some(s) = staging.as_mut() {
            s.write(&chunk).await.map_err(Agile::internal)?;
        }
    }
    match staging {
        Some(s) => Ok(Received::Kept(s.finish().await.map_err(Agile::internal)?)),
        None => Ok(Received::TooLong),
    }
}

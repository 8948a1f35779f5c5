//! The HTTP side of `[metrics] listen`: `GET /metrics` (OpenMetrics text) and
//! `GET /healthz` (200 `ok`, or 503 with the reason).
//!
//! Bound by [`bind`] before the daemon reports itself running, so a port that is
//! taken stops the start with a message naming the key; served by [`serve`] until
//! the daemon's cancel token fires. Plain HTTP: the endpoint is meant for loopback
//! or a trusted network, and nothing it serves is secret (see `metrics/mod.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Metrics;
use crate::journal::JournalHandle;

/// How long `/healthz` and a scrape wait for the journal. A probe must answer
/// quickly, and a journal call stuck this long behind another is a daemon that
/// cannot make progress; a scrape then still serves the counters (well within
/// Prometheus's default scrape timeout of 10 s).
const JOURNAL_WAIT: Duration = Duration::from_secs(2);

/// `Content-Type` of what `prometheus_client::encoding::text` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr} (metrics.listen): {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Takes the configured address (port 0: any free port) and logs the one bound.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    info!(addr = %bound, "metrics listening");
    Ok(listener)
}

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    journal: JournalHandle,
    /// [`JOURNAL_WAIT`]; shorter in tests.
    journal_wait: Duration,
}

/// Serves until `cancel`; connections still open then are let finish (the
/// daemon's shutdown deadline bounds them).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    journal: JournalHandle,
    cancel: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(Shared {
            metrics,
            journal,
            journal_wait: JOURNAL_WAIT,
        });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    if let Err(e) = served {
        warn!(error = %e, "the metrics server stopped");
    }
}

async fn metrics_text(State(s): State<Shared>) -> Response {
    match s.metrics.render(&s.journal, s.journal_wait).await {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        // Only a formatter error, which writing to a String never returns.
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn healthz(State(s): State<Shared>) -> Response {
    let probe = tokio::time::timeout(s.journal_wait, s.journal.call(|j| j.ping())).await;
    let why = match probe {
        Ok(Ok(())) => return (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => format!("journal: {e}"),
        Err(_) => format!(
            "journal: no answer within {} s",
            s.journal_wait.as_secs_f64()
        ),
    };
    warn!(reason = %why, "health check failed");
    (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;

    fn shared() -> Shared {
        let journal = Journal::open_in_memory().expect("journal");
        Shared {
            metrics: Arc::new(Metrics::new()),
            journal: JournalHandle::new(journal),
            journal_wait: Duration::from_millis(200),
        }
    }

    async fn body(r: Response) -> (StatusCode, String) {
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Real time, short: tokio's paused clock does not advance while a blocking
    /// task (the held journal) runs.
    #[tokio::test]
    async fn healthz_is_503_while_the_journal_does_not_answer() {
        let s = shared();
        assert_eq!(
            body(healthz(State(s.clone())).await).await,
            (StatusCode::OK, "ok\n".into())
        );
        // A call that holds the journal until told to let go.
        let (holding_tx, holding_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let journal = s.journal.clone();
        let busy = tokio::spawn(async move {
            journal
                .call(move |_| {
                    let _ = holding_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
        });
        tokio::task::spawn_blocking(move || holding_rx.recv())
            .await
            .expect("blocking task")
            .expect("the call holds the journal");
        let (status, why) = body(healthz(State(s.clone())).await).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(why.contains("journal: no answer within 0.2 s"), "{why}");
        // `/metrics` still serves the counters, and says the journal is out.
        let (status, text) = body(metrics_text(State(s.clone())).await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("\ndropship_journal_up 0\n"), "{text}");
        assert!(text.contains("\ndropship_bytes_sent_total 0\n"), "{text}");
        assert!(!text.contains("dropship_files{"), "no stale gauges: {text}");
        release_tx.send(()).expect("release");
        busy.await.expect("task").expect("call");
        let (_, text) = body(metrics_text(State(s.clone())).await).await;
        assert!(text.contains("\ndropship_journal_up 1\n"), "{text}");
        assert_eq!(
            body(healthz(State(s)).await).await,
            (StatusCode::OK, "ok\n".into())
        );
    }
}

//! The accept loop: one task per TCP connection, each with its fault switches.
//!
//! We run hyper ourselves (instead of `axum::serve`) for the reset and stall faults:
//! every request carries its connection's [`ConnectionControl`] in its extensions.
//! - When a reset fires `kill`, the connection task drops the connection future,
//!   which closes the socket with zero linger (an RST) and drops the in-flight
//!   handler with it.
//! - When a stall fires `stall`, the connection task takes the socket back from
//!   hyper (dropping the in-flight handler and hyper's buffers, not the socket) and
//!   holds it: nothing more is read or written, so the client's writes block once
//!   the socket buffers fill and it never gets an answer. Dropping the handler at
//!   once, rather than leaving it waiting, frees what it held (a Box part's range)
//!   for the client's retry on another connection.

use std::io;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::faults::body::ConnectionControl;

/// Accepts until `shutdown` is cancelled; connection tasks go to `tasks`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _peer)) => {
                tasks.spawn(connection(stream, router.clone(), shutdown.clone()));
            }
            Err(e) => {
                // EMFILE and friends: back off briefly rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, router: Router, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let control = ConnectionControl::default();
    let io = TokioIo::new(KillableStream {
        stream,
        kill: control.kill.clone(),
    });
    let request_control = control.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(request_control.clone());
        router.clone().oneshot(req.map(Body::new))
    });
    let mut conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(io, service);
    tokio::select! {
        r = &mut conn => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = control.kill.cancelled() => tracing::debug!("connection killed by a reset fault"),
        _ = control.stall.cancelled() => {
            // `select!` has dropped its borrow of `conn` by now. Taking the parts drops
            // the stalled handler (nothing it staged is kept) but hands the socket back.
            let socket = conn.into_parts().io.into_inner();
            tracing::debug!("connection stalled by a stall fault: holding it unread");
            hold(&socket.stream, &shutdown).await;
            tracing::debug!("stalled connection closed");
        }
        _ = shutdown.cancelled() => {}
    }
}

/// Keeps a stalled connection's socket open without reading or writing until the
/// client's close reaches it (FIN or RST) or the server shuts down; dropping the
/// socket afterwards closes it.
///
/// Unread body bytes keep the socket readable the whole time, so readability says
/// nothing: only "read closed" or an error ends the wait. A client that gives up with
/// body bytes still in its send buffer cannot get its FIN through the full window;
/// its kernel keeps probing and resets the connection after a few minutes, and only
/// then is the socket closed here. Until then it costs a socket and this small task.
async fn hold(stream: &TcpStream, shutdown: &CancellationToken) {
    loop {
        let ready = tokio::select! {
            r = stream.ready(Interest::READABLE | Interest::ERROR) => r,
            _ = shutdown.cancelled() => return,
        };
        match ready {
            Ok(r) if !r.is_read_closed() && !r.is_error() => {
                // Only more body bytes: forget this readiness (without reading), so the
                // next wait is for a new event instead of returning at once forever.
                let _ = stream.try_io(Interest::READABLE, || {
                    Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
                });
            }
            _ => return,
        }
    }
}

/// The socket, closed with zero linger if its connection was killed, so the client
/// gets an RST ("connection reset") rather than a clean FIN. (A stalled connection's
/// socket is closed normally; unread bytes in it make the kernel send an RST anyway.)
struct KillableStream {
    stream: TcpStream,
    /// The connection's kill switch; checked only when the socket is dropped.
    kill: CancellationToken,
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        if self.kill.is_cancelled() {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl tokio::io::AsyncRead for KillableStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for KillableStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

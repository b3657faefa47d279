//! The HTTP accept loop: hyper's HTTP/1.1 server driven by hand instead of `axum::serve`, so
//! that a request head must arrive in time and the number of open connections is bounded.
//!
//! It stays generic over [`axum::serve::Listener`], so any listener (plain TCP with
//! `TCP_NODELAY` tapped on, or one that wraps the stream in TLS) plugs in.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::consumers::DeadlineListener;

/// The most bytes a request head (request line and headers) may take; more is answered 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Connections answered 503 at once, beyond the limit; past these too, new connections are
/// closed without an answer, so a flood cannot grow the server without bound.
const MAX_REFUSING: usize = 1024;

/// What the accept loop enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long a request head may take to arrive, from the connection (or its previous
    /// response) going idle; then the connection is closed without an answer.
    pub header_read_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

/// Accepts connections for ever, serving `app` on each within `limits`.
pub(crate) async fn serve<L: Listener>(
    mut listener: DeadlineListener<L>,
    app: Router,
    limits: Limits,
) {
    let serving = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    loop {
        let (io, _) = listener.accept().await;
        match serving.clone().try_acquire_owned() {
            Ok(permit) => {
                // Handlers see the connection's write progress (SSE subscribers keep within
                // a bound of what their socket took), as `ConnectInfo<Connection>`.
                let connection = io.connection();
                let io = TokioIo::new(Counted {
                    io,
                    _permit: permit,
                });
                let app = TowerToHyperService::new(app.clone());
                let service = service_fn(move |mut request: Request<Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo(connection.clone()));
                    hyper::service::Service::call(&app, request)
                });
                tokio::spawn(async move {
                    // Errors are the peer's (bad request, timeout, reset): hyper has already
                    // answered what HTTP lets it answer.
                    let _ = builder(limits)
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await;
                });
            }
            Err(_) => {
                let Ok(permit) = refusing.clone().try_acquire_owned() else {
                    continue; // dropping `io` closes it
                };
                let limit = limits.max_connections;
                let io = TokioIo::new(Counted {
                    io,
                    _permit: permit,
                });
                tokio::spawn(async move {
                    let unavailable = service_fn(move |_: Request<Incoming>| async move {
                        Ok::<_, Infallible>(too_many_connections(limit))
                    });
                    let _ = builder(limits)
                        .keep_alive(false)
                        .serve_connection(io, unavailable)
                        .await;
                });
            }
        }
    }
}

fn builder(limits: Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES);
    builder
}

fn too_many_connections(limit: usize) -> Response<Body> {
    let mut response = Response::new(Body::from(format!(
        "too many connections: this server serves at most {limit} at once"
    )));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// A connection's stream holding its place under the connection limit: the place is given
/// back when the stream is dropped, which for a WebSocket is when the upgraded socket closes.
struct Counted<I> {
    io: I,
    _permit: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

//! The HTTP accept loop: hyper's HTTP/1.1 and HTTP/2 servers driven by hand instead of
//! `axum::serve`, so that a request head must arrive in time and the number of open connections
//! is bounded.
//!
//! A connection whose first bytes are the HTTP/2 preface (`PRI * HTTP/2.0...`: h2c with prior
//! knowledge, or h2 after TLS negotiated it by ALPN) is served by hyper's HTTP/2 server, every
//! other by its HTTP/1.1 server. WebSocket upgrades exist on HTTP/1.1 only (RFC 8441's extended
//! CONNECT is not enabled).
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
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::consumers::{DeadlineListener, SSE_AHEAD_BYTES};
use pushbench_core::http::MAX_STREAMS_PER_CONNECTION;

/// The most bytes a request head (request line and headers) may take; more is answered 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The client connection preface of HTTP/2 (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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
                let io = Counted {
                    io,
                    _permit: permit,
                };
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
                    let Some((protocol, io)) = sniff(io, limits).await else {
                        return;
                    };
                    let _ = match protocol {
                        Protocol::Http1 => {
                            builder(limits)
                                .serve_connection(io, service)
                                .with_upgrades()
                                .await
                        }
                        Protocol::Http2 => h2_builder().serve_connection(io, service).await,
                    };
                });
            }
            Err(_) => {
                let Ok(permit) = refusing.clone().try_acquire_owned() else {
                    continue; // dropping `io` closes it
                };
                let limit = limits.max_connections;
                let io = Counted {
                    io,
                    _permit: permit,
                };
                tokio::spawn(async move {
                    let unavailable = service_fn(move |_: Request<Incoming>| async move {
                        Ok::<_, Infallible>(too_many_connections(limit))
                    });
                    let Some((protocol, io)) = sniff(io, limits).await else {
                        return;
                    };
                    let _ = match protocol {
                        Protocol::Http1 => {
                            builder(limits)
                                .keep_alive(false)
                                .serve_connection(io, unavailable)
                                .await
                        }
                        // HTTP/2 has no `Connection: close`: the refused connection gets its
                        // 503s for as long as a request head may take, then is closed.
                        Protocol::Http2 => {
                            let serving = h2_builder().serve_connection(io, unavailable);
                            tokio::time::timeout(limits.header_read_timeout, serving)
                                .await
                                .unwrap_or(Ok(()))
                        }
                    };
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

fn h2_builder() -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        // What one stream may queue in hyper beyond the peer's flow-control window: the
        // bound an SSE subscriber keeps over HTTP/1.1 (its wait on the connection's write
        // progress is shared by every stream of an HTTP/2 connection, so loose there).
        .max_send_buf_size(SSE_AHEAD_BYTES as usize);
    // hyper's HTTP/2 server has no header read timeout of its own: the preface must arrive
    // within it (see `sniff`), and a connection idle after that only holds its place under
    // the connection limit, as an idle HTTP/1.1 keep-alive connection between requests does.
    builder
}

/// Which HTTP a connection speaks, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Reads a connection's first bytes, until they are the HTTP/2 preface or cannot be; returns
/// the protocol and the connection with those bytes put back. A connection that sends nothing
/// within the header read timeout, or closes, is dropped without an answer, as hyper's
/// HTTP/1.1 server does.
async fn sniff<I: AsyncRead + AsyncWrite + Unpin>(
    mut io: I,
    limits: Limits,
) -> Option<(Protocol, TokioIo<Prefixed<I>>)> {
    let mut seen = Vec::with_capacity(H2_PREFACE.len());
    let read = async {
        while seen.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&seen) {
            let mut buf = [0u8; H2_PREFACE.len()];
            let want = H2_PREFACE.len() - seen.len();
            let n = io.read(&mut buf[..want]).await.ok()?;
            if n == 0 {
                return None;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        Some(())
    };
    tokio::time::timeout(limits.header_read_timeout, read)
        .await
        .ok()??;
    let protocol = if seen == H2_PREFACE {
        Protocol::Http2
    } else {
        Protocol::Http1
    };
    Some((
        protocol,
        TokioIo::new(Prefixed {
            prefix: seen,
            offset: 0,
            io,
        }),
    ))
}

/// A stream that yields `prefix` (bytes already read from `io`) before reading `io` again.
struct Prefixed<I> {
    prefix: Vec<u8>,
    offset: usize,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.offset < this.prefix.len() {
            let rest = &this.prefix[this.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.offset += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

/// `AsyncWrite` for a wrapper that writes straight through to its `io` field.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<I: AsyncWrite + Unpin> AsyncWrite for $wrapper<I> {
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
    };
}

write_through!(Prefixed);
write_through!(Counted);

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

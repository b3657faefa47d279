//! The client side: one [`Driver`] per transport, each opening [`Session`]s to a [`Target`].

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::net::{TcpSocket, TcpStream};

use crate::tls::TlsClient;
use crate::transport::Transport;
use crate::wire::WireCounts;

/// Where the server under test listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The HTTP listener (`/ws`, `/sse`, `/poll`, `/rpc`).
    pub http: SocketAddr,
    /// The raw-TCP floor listener, if the server has one.
    pub tcp: Option<SocketAddr>,
    /// Local address to connect from (e.g. 127.0.0.2 on loopback, for more ephemeral ports);
    /// `None` lets the kernel choose.
    pub source: Option<IpAddr>,
    /// Bearer token sent as `Authorization: Bearer TOKEN` on every HTTP request and WebSocket
    /// upgrade, for a server started with `--token`.
    pub token: Option<String>,
    /// TLS for every connection (https, wss, the floor over TLS), or `None` for plain TCP.
    pub tls: Option<TlsClient>,
}

impl Target {
    /// A target with an HTTP listener and optionally a raw-TCP floor, connected to from any
    /// local address.
    pub fn new(http: SocketAddr, tcp: Option<SocketAddr>) -> Self {
        Target {
            http,
            tcp,
            source: None,
            token: None,
            tls: None,
        }
    }

    /// The same target reached over TLS as `tls` says.
    pub fn with_tls(mut self, tls: TlsClient) -> Self {
        self.tls = Some(tls);
        self
    }

    /// `https` with TLS, else `http`.
    pub fn http_scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// `wss` with TLS, else `ws`.
    pub fn ws_scheme(&self) -> &'static str {
        if self.tls.is_some() { "wss" } else { "ws" }
    }
}

/// Why a driver could not open a session or move a message.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: SocketAddr,
        /// The cause (refused, unreachable, ...).
        source: io::Error,
    },
    /// The server answered an HTTP request with an unexpected status.
    #[error("{method} {path} answered HTTP {status}: {body}")]
    Status {
        /// Request method.
        method: &'static str,
        /// Request path and query.
        path: String,
        /// Status code received.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// The WebSocket opening handshake or an HTTP exchange failed.
    #[error("{what}: {reason}")]
    Handshake {
        /// Which exchange.
        what: String,
        /// The cause.
        reason: String,
    },
    /// The TLS handshake failed (a certificate not trusted, a server that does not speak TLS).
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// The address dialled.
        addr: SocketAddr,
        /// The cause.
        reason: String,
    },
    /// The peer sent something the transport does not allow.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A socket read or write failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The target has no listener for this transport.
    #[error("the target has no {0} listener")]
    NoListener(Transport),
    /// The target answered 404 to a control endpoint a scenario needs (`POST /broadcast`,
    /// `POST /stall`, `GET /feed/*`): it does not implement that part of docs/PROTOCOL.md.
    #[error(
        "the target does not implement {method} {endpoint} (HTTP 404 for {path}); this scenario needs it (docs/PROTOCOL.md)"
    )]
    NotImplemented {
        /// Request method.
        method: &'static str,
        /// The endpoint, without its query.
        endpoint: String,
        /// Request path and query.
        path: String,
    },
    /// This process has as many files open as its limit allows (EMFILE).
    #[error(
        "cannot connect to {addr}: this process reached its open-files limit ({limit}); run the clients in separate processes (fanout does so above --in-process-max) or raise `ulimit -n`"
    )]
    FileLimit {
        /// The address dialled.
        addr: SocketAddr,
        /// The soft RLIMIT_NOFILE of this process.
        limit: u64,
    },
}

/// The soft open-files limit of this process (`ulimit -n`).
pub fn open_files_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// A client implementation of one transport.
pub trait Driver: Send + Sync {
    /// The transport this driver speaks.
    fn transport(&self) -> Transport;

    /// Opens a session: every connection the transport needs, ready to send and receive.
    fn connect<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>>;

    /// Opens a receive-only session subscribed to broadcast `topic` (one connection), and
    /// returns once the server's first message (its acknowledgement) has arrived.
    fn subscribe<'a>(
        &'a self,
        target: &'a Target,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>>;

    /// A fresh driver of the same transport over HTTP/2, whose sessions share connections,
    /// `streams_per_connection` streams each; `None` if the transport has no such mode (only
    /// SSE has). Each driver it returns opens its own connections.
    fn http2(&self, streams_per_connection: u32) -> Option<Arc<dyn Driver>> {
        let _ = streams_per_connection;
        None
    }
}

/// What [`Session::recv_batch`] hands each message to; `false` stops the batch after it.
pub type OnMessage<'a> = dyn FnMut(&[u8]) -> bool + Send + 'a;

/// An open client session. Messages are opaque bytes here; scenarios encode and check them.
pub trait Session: Send {
    /// Sends one message to the server (a WS frame, a `POST /rpc`, a length-prefixed frame).
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Receives the next message from the server; `None` when the server closed the session.
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, DriverError>>;

    /// Waits for the next message, then hands it and every further message already received
    /// (buffered, no wait needed) to `on_message`, in order, without copying them out; returns
    /// how many it handed over, `0` when the server closed the session. `on_message` returning
    /// `false` ends the batch after that message. One wake-up, one future and one timeout per
    /// batch instead of per message: the push receive loop's cost. By default one message per
    /// call, through [`Session::recv`].
    fn recv_batch<'a>(
        &'a mut self,
        on_message: &'a mut OnMessage<'_>,
    ) -> BoxFuture<'a, Result<usize, DriverError>> {
        Box::pin(async move {
            Ok(match self.recv().await? {
                Some(message) => {
                    on_message(&message);
                    1
                }
                None => 0,
            })
        })
    }

    /// Bytes this session's sockets have written and read so far.
    fn wire(&self) -> WireCounts;

    /// Closes the session politely (WS close frame, session delete, ...).
    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), DriverError>>;

    /// The id of the connection that carries what this session receives
    /// ([`crate::http::next_connection_id`]): sessions multiplexed over one HTTP/2 connection
    /// share it, so a run counts the connections it opened. `None` where not tracked.
    fn connection_id(&self) -> Option<u64> {
        None
    }
}

/// Opens a TCP connection to `addr` from the target's source address, with `TCP_NODELAY`
/// set, as every pushbench socket is. Hitting the open-files limit is named as such.
pub async fn connect_tcp(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<TcpStream, DriverError> {
    let error = |source: io::Error| {
        if source.raw_os_error() == Some(rustix::io::Errno::MFILE.raw_os_error()) {
            DriverError::FileLimit {
                addr,
                limit: open_files_limit(),
            }
        } else {
            DriverError::Connect { addr, source }
        }
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(error)?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).map_err(error)?;
    }
    let stream = socket.connect(addr).await.map_err(error)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

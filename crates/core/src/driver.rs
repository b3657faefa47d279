//! The client side: one [`Driver`] per transport, each opening [`Session`]s to a [`Target`].

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::net::TcpStream;

use crate::transport::Transport;
use crate::wire::WireCounts;

/// Where the server under test listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The HTTP listener (`/ws`, `/sse`, `/poll`, `/rpc`).
    pub http: SocketAddr,
    /// The raw-TCP floor listener, if the server has one.
    pub tcp: Option<SocketAddr>,
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
    /// The peer sent something the transport does not allow.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A socket read or write failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The target has no listener for this transport.
    #[error("the target has no {0} listener")]
    NoListener(Transport),
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
}

/// An open client session. Messages are opaque bytes here; scenarios encode and check them.
pub trait Session: Send {
    /// Sends one message to the server (a WS frame, a `POST /rpc`, a length-prefixed frame).
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Receives the next message from the server; `None` when the server closed the session.
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, DriverError>>;

    /// Bytes this session's sockets have written and read so far.
    fn wire(&self) -> WireCounts;

    /// Closes the session politely (WS close frame, session delete, ...).
    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), DriverError>>;
}

/// Opens a TCP connection with `TCP_NODELAY` set, as every pushbench socket is.
pub async fn connect_tcp(addr: SocketAddr) -> Result<TcpStream, DriverError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| DriverError::Connect { addr, source })?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

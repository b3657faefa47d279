//! pushbench's WebSocket driver: one connection to `GET /ws`, each message one text frame.
//!
//! ```no_run
//! # async fn demo(target: pushbench_core::Target) -> Result<(), pushbench_core::DriverError> {
//! use pushbench_core::Driver;
//! let mut session = pushbench_driver_ws::WsDriver.connect(&target).await?;
//! session.send(br#"{"seq":0,"blockSize":10}"#).await?;
//! let reply = session.recv().await?;
//! # Ok(()) }
//! ```

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use pushbench_core::{
    ClientStream, Driver, DriverError, Session, Target, Transport, WireCounter, WireCounts,
    connect_stream,
};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

mod feed;

/// Bytes tungstenite reads per call. Its default (128 KiB) is zero-filled before every read,
/// which costs more than a small message itself: with 10 000 clients that memset, not the
/// protocol, dominated fan-out. 32 KiB keeps large payloads at a few reads per 100 KiB.
pub const READ_BUFFER: usize = 32 * 1024;
/// Bytes a broadcast subscriber reads per call. A subscriber gets one small message per read
/// (a batch when it lags), and tungstenite zero-fills the whole read size before every read,
/// including the one that finds the socket empty: at 32 KiB that memset was the largest single
/// cost of a 19 000-client fan-out (15 % of all CPU in a `perf record -a`). 4 KiB still takes
/// a batch of small messages in one read; a larger frame grows the buffer to its length.
pub const SUBSCRIBER_READ_BUFFER: usize = 4 * 1024;

/// The WebSocket driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct WsDriver;

struct WsSession {
    socket: WebSocketStream<ClientStream>,
    wire: WireCounter,
}

fn ws_error(e: tungstenite::Error) -> DriverError {
    match e {
        tungstenite::Error::Io(e) => DriverError::Io(e),
        other => DriverError::Protocol(other.to_string()),
    }
}

impl Driver for WsDriver {
    fn transport(&self) -> Transport {
        Transport::Ws
    }

    fn connect<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move {
            let session = open(target, "/ws", READ_BUFFER).await?;
            Ok(Box::new(session) as Box<dyn Session>)
        })
    }

    fn subscribe<'a>(
        &'a self,
        target: &'a Target,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move {
            let mut session = open(
                target,
                &format!("/ws?topic={topic}"),
                SUBSCRIBER_READ_BUFFER,
            )
            .await?;
            match session.recv().await? {
                Some(ack) if ack.starts_with(br#"{"op":"subscribed""#) => {
                    Ok(Box::new(session) as Box<dyn Session>)
                }
                other => Err(DriverError::Protocol(format!(
                    "GET /ws?topic={topic}: first message is {other:?}, expected the subscription acknowledgement"
                ))),
            }
        })
    }
}

/// Connects (over TLS when the target says so) and upgrades `path` on the target's HTTP
/// listener, reading up to `read_buffer` bytes per call.
async fn open(target: &Target, path: &str, read_buffer: usize) -> Result<WsSession, DriverError> {
    open_counted(target, path, WireCounter::default(), read_buffer).await
}

/// Like [`open`], counting the connection's bytes in `wire`.
async fn open_counted(
    target: &Target,
    path: &str,
    wire: WireCounter,
    read_buffer: usize,
) -> Result<WsSession, DriverError> {
    let stream = connect_stream(target.http, target, &wire).await?;
    let url = format!("{}://{}{path}", target.ws_scheme(), target.http);
    let config = WebSocketConfig::default().read_buffer_size(read_buffer);
    let handshake_error = |reason: String| DriverError::Handshake {
        what: format!("WebSocket handshake with {url}"),
        reason,
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| handshake_error(e.to_string()))?;
    if let Some(authorization) = pushbench_core::http::bearer(target)? {
        request
            .headers_mut()
            .insert(tungstenite::http::header::AUTHORIZATION, authorization);
    }
    let (socket, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| match e {
            // A 404 to the upgrade: the target lacks the endpoint (named as such for /feed/ws).
            tungstenite::Error::Http(response) if response.status().as_u16() == 404 => {
                let body = response.body().as_deref().unwrap_or_default();
                pushbench_core::http::status_error(&tungstenite::http::Method::GET, path, 404, body)
            }
            e => handshake_error(handshake_reason(e)),
        })?;
    Ok(WsSession { socket, wire })
}

/// The handshake error, with the start of the server's answer when it refused the upgrade
/// (e.g. "this port speaks TLS").
fn handshake_reason(e: tungstenite::Error) -> String {
    match &e {
        tungstenite::Error::Http(response) => match response.body() {
            Some(body) if !body.is_empty() => {
                let end = body.len().min(200);
                format!("{e}: {}", String::from_utf8_lossy(&body[..end]).trim_end())
            }
            _ => e.to_string(),
        },
        _ => e.to_string(),
    }
}

impl Session for WsSession {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let text = std::str::from_utf8(message)
                .map_err(|e| DriverError::Protocol(format!("text message is not UTF-8: {e}")))?;
            self.socket
                .send(Message::text(text))
                .await
                .map_err(ws_error)
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, DriverError>> {
        Box::pin(self.next_message())
    }

    fn wire(&self) -> WireCounts {
        self.wire.counts()
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Result<(), DriverError>> {
        Box::pin(async move { self.socket.close(None).await.map_err(ws_error) })
    }
}

impl WsSession {
    async fn next_message(&mut self) -> Result<Option<Bytes>, DriverError> {
        loop {
            match self.socket.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Text(text))) => return Ok(Some(Bytes::from(text))),
                Some(Ok(Message::Binary(bytes))) => return Ok(Some(bytes)),
                Some(Ok(_)) => continue,
                // A server that drops the connection without a close frame has still
                // closed the session: report it like a TCP EOF.
                Some(Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ))) => return Ok(None),
                Some(Err(e)) => return Err(ws_error(e)),
            }
        }
    }
}

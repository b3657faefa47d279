//! pushbench's WebSocket driver: one connection to `GET /ws`, each message one text frame.
//!
//! The driver speaks RFC 6455 itself over the connection it opens (plain or TLS, its bytes
//! counted): the opening handshake (`handshake`), and a frame reader over one reused read
//! buffer that hands each message to [`Session::recv_batch`]'s callback as a slice of that
//! buffer, with no allocation, `Message` or waker registration per frame (`frame`).
//! tungstenite still parses and formats frame headers and makes and checks the handshake
//! keys. Text is checked as UTF-8, fragmented messages are reassembled, pings are answered,
//! masked or reserved-bit frames, unknown opcodes, bad control frames and messages over
//! [`MAX_MESSAGE_BYTES`] are protocol errors. In batched push tokio-tungstenite's per-message
//! machinery had made the client spend more CPU per message than the server spent sending it.
//!
//! ```no_run
//! # async fn demo(target: pushbench_core::Target) -> Result<(), pushbench_core::DriverError> {
//! use pushbench_core::Driver;
//! let mut session = pushbench_driver_ws::WsDriver.connect(&target).await?;
//! session.send(br#"{"seq":0,"blockSize":10}"#).await?;
//! let reply = session.recv().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use pushbench_core::{
    ClientStream, Driver, DriverError, OnMessage, Session, Target, Transport, WireCounter,
    WireCounts, connect_stream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

mod feed;
mod frame;
mod handshake;

pub use frame::MAX_MESSAGE_BYTES;

/// Bytes a session's read buffer takes per read when it holds no partial frame. The buffer
/// is reused (never zero-filled: the read goes into its spare capacity), so this sets the
/// batch a push session can take in one read and its resident size, not a per-read cost.
pub const READ_BUFFER: usize = 32 * 1024;
/// The same for a broadcast subscriber: one small message per read is the usual case, and
/// with 19 000 subscribers in one process a 4 KiB buffer each is 76 MiB rather than 608 MiB.
/// A larger frame grows the buffer to its length.
pub const SUBSCRIBER_READ_BUFFER: usize = 4 * 1024;
/// How long [`Session::close`] waits for the server's close frame (or EOF) after sending its own.
pub const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// The WebSocket driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct WsDriver;

/// One WebSocket connection: its stream, the bytes read and not yet handed over, and the
/// frames waiting to be written.
struct WsSession {
    stream: ClientStream,
    /// Bytes read from the stream, from the first not yet consumed.
    read: BytesMut,
    /// Bytes per read when the buffer holds no partial frame ([`READ_BUFFER`] or
    /// [`SUBSCRIBER_READ_BUFFER`]).
    read_size: usize,
    /// The bytes `read` must hold to complete the frame at its start (`0`: not known yet).
    need: usize,
    reader: frame::FrameReader,
    /// Client frames to write: a message, or the pongs and close reply the reader queued.
    out: Vec<u8>,
    /// The server closed the session (close frame or EOF): nothing more is read.
    closed: bool,
    /// This side sent its close frame.
    close_sent: bool,
    wire: WireCounter,
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
    let mut stream = connect_stream(target.http, target, &wire).await?;
    let mut read = BytesMut::with_capacity(read_buffer);
    handshake::upgrade(&mut stream, &mut read, target, path).await?;
    Ok(WsSession {
        stream,
        read,
        read_size: read_buffer,
        need: 0,
        reader: frame::FrameReader::default(),
        out: Vec::new(),
        closed: false,
        close_sent: false,
        wire,
    })
}

impl Session for WsSession {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            std::str::from_utf8(message)
                .map_err(|e| DriverError::Protocol(format!("text message is not UTF-8: {e}")))?;
            if self.closed || self.close_sent {
                return Err(DriverError::Protocol(
                    "cannot send on a closed WebSocket session".into(),
                ));
            }
            frame::write_frame(&mut self.out, OpCode::Data(Data::Text), message);
            self.write_out().await
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, DriverError>> {
        Box::pin(async move {
            let mut message = None;
            let mut take_one = |m: &[u8]| {
                message = Some(Bytes::copy_from_slice(m));
                false
            };
            self.receive(&mut take_one).await?;
            Ok(message)
        })
    }

    fn recv_batch<'a>(
        &'a mut self,
        on_message: &'a mut OnMessage<'_>,
    ) -> BoxFuture<'a, Result<usize, DriverError>> {
        Box::pin(self.receive(on_message))
    }

    fn wire(&self) -> WireCounts {
        self.wire.counts()
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Result<(), DriverError>> {
        Box::pin(async move {
            if !self.closed && !self.close_sent {
                // 1000: normal closure.
                let code = 1000u16.to_be_bytes();
                frame::write_frame(&mut self.out, OpCode::Control(Control::Close), &code);
                self.close_sent = true;
                self.write_out().await?;
                // The server's close (or its EOF) ends the exchange; whatever comes before it
                // is read and dropped.
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    let mut discard = |_: &[u8]| true;
                    while self.receive(&mut discard).await? > 0 {}
                    Ok::<_, DriverError>(())
                })
                .await;
            }
            let _ = self.stream.shutdown().await;
            Ok(())
        })
    }
}

impl WsSession {
    /// Hands every whole message the read buffer holds to `on_message` (see
    /// [`Session::recv_batch`]), reading once more whenever it holds none; `0` once the server
    /// has closed the session (a close frame, or EOF without one, as a TCP peer's end).
    /// A ping is answered right away: the pong is written before this returns or reads again.
    async fn receive(
        &mut self,
        on_message: &mut (dyn FnMut(&[u8]) -> bool + Send),
    ) -> Result<usize, DriverError> {
        loop {
            if self.closed {
                return Ok(0);
            }
            let drained = match self.reader.drain(&self.read, &mut self.out, on_message) {
                Ok(drained) => drained,
                Err(e) => {
                    // The stream can no longer be followed: end the session rather than hand
                    // over again the messages before the fault (they were not consumed).
                    self.closed = true;
                    return Err(e);
                }
            };
            self.read.advance(drained.consumed);
            self.need = drained.need;
            if let Some(code) = drained.closed {
                self.closed = true;
                if !self.close_sent {
                    // Echo the server's status code, as RFC 6455 5.5.1 suggests.
                    let code = code.as_ref().map_or(&[][..], |c| &c[..]);
                    frame::write_frame(&mut self.out, OpCode::Control(Control::Close), code);
                    self.close_sent = true;
                }
                // The server may already be gone; the session is over either way.
                let _ = self.write_out().await;
                return Ok(drained.handed);
            }
            self.write_out().await?;
            if drained.handed > 0 {
                return Ok(drained.handed);
            }
            if !self.fill().await? {
                self.closed = true;
                return Ok(0);
            }
        }
    }

    /// Reads once into the buffer's spare room (enough for the partial frame it holds, at
    /// least `read_size`); `false` at EOF.
    async fn fill(&mut self) -> Result<bool, DriverError> {
        let missing = self.need.saturating_sub(self.read.len());
        self.read.reserve(self.read_size.max(missing));
        Ok(self.stream.read_buf(&mut self.read).await? > 0)
    }

    /// Writes (and flushes, for TLS) the frames queued in `out`.
    async fn write_out(&mut self) -> Result<(), DriverError> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        self.out.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Cursor;
    use std::time::Instant;

    use tokio::net::{TcpListener, TcpStream};
    use tungstenite::protocol::frame::FrameHeader;

    use super::*;

    /// Runs a test body, failing it (instead of hanging) if it stalls: a missing pong or
    /// close would otherwise leave client and server each waiting for the other.
    async fn within<T>(body: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), body)
            .await
            .expect("stalled for 10 s")
    }

    /// A server that accepts one connection, reads the upgrade request and hands the socket
    /// and the request's `Sec-WebSocket-Key` to `script`.
    async fn one_connection<F, Fut>(script: F) -> (Target, tokio::task::JoinHandle<()>)
    where
        F: FnOnce(TcpStream, String) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::new(listener.local_addr().unwrap(), None);
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8];
                socket.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .to_owned();
            script(socket, key).await;
        });
        (target, server)
    }

    fn switching(key: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            tungstenite::handshake::derive_accept_key(key.as_bytes())
        )
        .into_bytes()
    }

    /// An unmasked server frame with a payload under 126 bytes.
    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    /// Reads one client frame: its opcode and unmasked payload.
    async fn read_client_frame(socket: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut bytes = Vec::new();
        loop {
            let mut cursor = Cursor::new(&bytes);
            if let Some((header, len)) = FrameHeader::parse(&mut cursor).unwrap() {
                let start = cursor.position() as usize;
                if bytes.len() >= start + len as usize {
                    let mask = header.mask.expect("client frames are masked");
                    let payload = bytes[start..start + len as usize]
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ mask[i & 3])
                        .collect();
                    return (u8::from(header.opcode), payload);
                }
            }
            let mut byte = [0u8];
            socket.read_exact(&mut byte).await.unwrap();
            bytes.push(byte[0]);
        }
    }

    #[tokio::test]
    async fn frames_sent_with_the_101_are_kept_and_a_ping_is_answered_before_reading_on() {
        within(async {
            let (target, server) = one_connection(|mut socket, key| async move {
                let mut first = switching(&key);
                first.extend(server_frame(0x81, b"first"));
                first.extend(server_frame(0x89, b"p"));
                socket.write_all(&first).await.unwrap();
                // The pong must come before the client needs anything more from us.
                assert_eq!(read_client_frame(&mut socket).await, (0x0a, b"p".to_vec()));
                socket
                    .write_all(&server_frame(0x81, b"second"))
                    .await
                    .unwrap();
                // EOF without a close frame.
            })
            .await;
            let mut session = WsDriver.connect(&target).await.unwrap();
            assert_eq!(session.recv().await.unwrap().unwrap(), &b"first"[..]);
            assert_eq!(session.recv().await.unwrap().unwrap(), &b"second"[..]);
            server.await.unwrap();
            assert_eq!(session.recv().await.unwrap(), None);
            let mut any = |_: &[u8]| true;
            assert_eq!(session.recv_batch(&mut any).await.unwrap(), 0);
            assert!(session.wire().up > 0 && session.wire().down > 0);
        })
        .await;
    }

    #[tokio::test]
    async fn a_close_from_the_server_is_echoed_and_ends_the_session() {
        within(async {
            let (target, server) = one_connection(|mut socket, key| async move {
                let mut bytes = switching(&key);
                bytes.extend(server_frame(0x81, b"one"));
                bytes.extend(server_frame(0x81, b"two"));
                bytes.extend(server_frame(0x88, &[0x03, 0xe9]));
                socket.write_all(&bytes).await.unwrap();
                assert_eq!(
                    read_client_frame(&mut socket).await,
                    (0x08, vec![0x03, 0xe9])
                );
                // Nothing more: the client's close() must not send a second close.
                let mut rest = Vec::new();
                socket.read_to_end(&mut rest).await.unwrap();
                assert_eq!(rest, Vec::<u8>::new());
            })
            .await;
            let mut session = WsDriver.connect(&target).await.unwrap();
            let mut got = Vec::new();
            let mut all = |m: &[u8]| {
                got.push(m.to_vec());
                true
            };
            assert_eq!(session.recv_batch(&mut all).await.unwrap(), 2);
            assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
            assert_eq!(session.recv().await.unwrap(), None);
            let error = session.send(b"late").await.unwrap_err().to_string();
            assert!(error.contains("closed"), "{error}");
            session.close().await.unwrap();
            server.await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn close_sends_a_normal_closure_and_returns_on_the_servers_close() {
        within(async {
            let (target, server) = one_connection(|mut socket, key| async move {
                socket.write_all(&switching(&key)).await.unwrap();
                assert_eq!(
                    read_client_frame(&mut socket).await,
                    (0x01, b"hello".to_vec())
                );
                assert_eq!(
                    read_client_frame(&mut socket).await,
                    (0x08, 1000u16.to_be_bytes().to_vec())
                );
                // A message still in flight, then the close; the socket stays open meanwhile.
                let mut bytes = server_frame(0x81, b"late");
                bytes.extend(server_frame(0x88, &1000u16.to_be_bytes()));
                socket.write_all(&bytes).await.unwrap();
                // The client already sent its close: it answers ours with nothing more.
                let mut rest = Vec::new();
                socket.read_to_end(&mut rest).await.unwrap();
                assert_eq!(rest, Vec::<u8>::new());
            })
            .await;
            let mut session = WsDriver.connect(&target).await.unwrap();
            session.send(b"hello").await.unwrap();
            let started = Instant::now();
            session.close().await.unwrap();
            assert!(started.elapsed() < CLOSE_WAIT, "{:?}", started.elapsed());
            server.await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn a_bad_frame_ends_the_session_without_handing_over_a_message_twice() {
        within(async {
            let (target, server) = one_connection(|mut socket, key| async move {
                let mut bytes = switching(&key);
                bytes.extend(server_frame(0x81, b"fine"));
                bytes.extend(server_frame(0xc1, b"rsv1"));
                socket.write_all(&bytes).await.unwrap();
                let mut rest = Vec::new();
                socket.read_to_end(&mut rest).await.unwrap();
            })
            .await;
            let mut session = WsDriver.connect(&target).await.unwrap();
            let mut got = Vec::new();
            let mut all = |m: &[u8]| {
                got.push(m.to_vec());
                true
            };
            let error = session.recv_batch(&mut all).await.unwrap_err().to_string();
            assert!(error.contains("reserved bits"), "{error}");
            assert_eq!(got, vec![b"fine".to_vec()]);
            assert_eq!(session.recv().await.unwrap(), None);
            session.close().await.unwrap();
            server.await.unwrap();
        })
        .await;
    }

    /// The error `connect` gives when the server answers the upgrade with `answer`.
    async fn refusal(answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static) -> DriverError {
        let (target, server) = one_connection(|mut socket, key| async move {
            socket.write_all(&answer(&key)).await.unwrap();
        })
        .await;
        let error = match WsDriver.connect(&target).await {
            Ok(_) => panic!("connected"),
            Err(e) => e,
        };
        server.await.unwrap();
        error
    }

    #[tokio::test]
    async fn a_refused_or_wrong_upgrade_is_a_handshake_error_naming_why() {
        within(async {
            let error =
                refusal(|_| b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\nnope\n".to_vec())
                    .await;
            assert!(
                matches!(&error, DriverError::Handshake { reason, .. } if reason == "HTTP error: 400 Bad Request: nope"),
                "{error}"
            );
            let error =
                refusal(|_| b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno".to_vec()).await;
            assert!(
                matches!(&error, DriverError::Status { status: 404, path, body, .. } if path == "/ws" && body == "no"),
                "{error}"
            );
            let error = refusal(|_| {
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n".to_vec()
            })
            .await;
            assert!(
                error
                    .to_string()
                    .contains("Sec-WebSocket-Accept is \"d3Jvbmc=\""),
                "{error}"
            );
            let error = refusal(|key| {
                String::from_utf8(switching(key))
                    .unwrap()
                    .replace("Upgrade: websocket\r\n", "")
                    .into_bytes()
            })
            .await;
            assert!(
                error.to_string().contains("lacks `Upgrade: websocket`"),
                "{error}"
            );
            let error = refusal(|key| {
                let mut answer = switching(key);
                answer.truncate(answer.len() - 2);
                answer.extend_from_slice(b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
                answer
            })
            .await;
            assert!(error.to_string().contains("permessage-deflate"), "{error}");
            let error = refusal(|_| b"HTTP/1.1 101 Switch".to_vec()).await;
            assert!(
                error
                    .to_string()
                    .contains("closed the connection before answering"),
                "{error}"
            );
            assert!(
                matches!(&error, DriverError::Handshake { what, .. } if what.starts_with("WebSocket handshake with ws://127.0.0.1:")),
                "{error:?}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_topic_that_cannot_go_in_a_request_line_is_refused_naming_why() {
        within(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let target = Target::new(listener.local_addr().unwrap(), None);
            let error = match WsDriver.subscribe(&target, "a b\r\nX-Injected: 1").await {
                Ok(_) => panic!("subscribed"),
                Err(e) => e.to_string(),
            };
            assert!(error.contains("cannot go in a request line"), "{error}");
        })
        .await;
    }
}

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
            let drained = self.reader.drain(&self.read, &mut self.out, on_message)?;
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

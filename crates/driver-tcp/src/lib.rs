//! pushbench's raw-TCP floor driver: 4-byte big-endian length, then the message, both ways.
//! The least a transport can do on the same hub, so every protocol is also shown as a ratio to it.
//! With a TLS target the frames go over TLS, as the server's floor then speaks it.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use pushbench_core::study::encode_subscribe;
use pushbench_core::{
    ClientStream, Driver, DriverError, Session, Target, Transport, WireCounter, WireCounts,
    connect_stream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

/// The largest frame the driver accepts from the server.
pub const MAX_FRAME: u32 = 64 * 1024 * 1024;

/// The raw-TCP floor driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDriver;

struct TcpSession {
    stream: BufReader<ClientStream>,
    frame: Vec<u8>,
    wire: WireCounter,
}

impl Driver for TcpDriver {
    fn transport(&self) -> Transport {
        Transport::Tcp
    }

    fn connect<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move { Ok(Box::new(open(target).await?) as Box<dyn Session>) })
    }

    fn subscribe<'a>(
        &'a self,
        target: &'a Target,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move {
            let mut session = open(target).await?;
            session.send(&encode_subscribe(topic)).await?;
            match session.recv().await? {
                Some(ack) if ack.starts_with(br#"{"op":"subscribed""#) => {
                    Ok(Box::new(session) as Box<dyn Session>)
                }
                other => Err(DriverError::Protocol(format!(
                    "tcp subscribe to {topic}: first frame is {other:?}, expected the acknowledgement"
                ))),
            }
        })
    }
}

async fn open(target: &Target) -> Result<TcpSession, DriverError> {
    let addr = target.tcp.ok_or(DriverError::NoListener(Transport::Tcp))?;
    let wire = WireCounter::default();
    // Over TLS when the server speaks it, so the floor stays a floor for TLS runs.
    let stream = BufReader::new(connect_stream(addr, target, &wire).await?);
    Ok(TcpSession {
        stream,
        frame: Vec::new(),
        wire,
    })
}

impl Session for TcpSession {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let len = u32::try_from(message.len()).map_err(|_| {
                DriverError::Protocol(format!("message of {} bytes is too long", message.len()))
            })?;
            // One write per message: prefix and body in one buffer.
            self.frame.clear();
            self.frame.extend_from_slice(&len.to_be_bytes());
            self.frame.extend_from_slice(message);
            let stream = self.stream.get_mut();
            stream.write_all(&self.frame).await?;
            // A no-op on plain TCP; over TLS it writes out what rustls still holds.
            stream.flush().await?;
            Ok(())
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, DriverError>> {
        Box::pin(async move {
            let len = match self.stream.read_u32().await {
                Ok(len) => len,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if len > MAX_FRAME {
                return Err(DriverError::Protocol(format!(
                    "frame of {len} bytes exceeds {MAX_FRAME}"
                )));
            }
            let mut body = vec![0; len as usize];
            self.stream.read_exact(&mut body).await?;
            Ok(Some(Bytes::from(body)))
        })
    }

    fn wire(&self) -> WireCounts {
        self.wire.counts()
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Result<(), DriverError>> {
        Box::pin(async move { Ok(self.stream.get_mut().shutdown().await?) })
    }
}

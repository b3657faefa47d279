//! pushbench's raw-TCP floor driver: 4-byte big-endian length, then the message, both ways.
//! The least a transport can do on the same hub, so every protocol is also shown as a ratio to it.
//! With a TLS target the frames go over TLS, as the server's floor then speaks it.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use pushbench_core::study::encode_subscribe;
use pushbench_core::{
    ClientStream, Driver, DriverError, OnMessage, Session, Target, Transport, WireCounter,
    WireCounts, connect_stream,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Bytes the floor's client reads per call, as the WebSocket driver does (its push sessions
/// read 32 KiB): a floor that read 8 KiB (`BufReader`'s default) made four times the reads of
/// the transports it is the floor of.
pub const READ_BUFFER: usize = 32 * 1024;

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
    let stream = BufReader::with_capacity(READ_BUFFER, connect_stream(addr, target, &wire).await?);
    Ok(TcpSession {
        stream,
        frame: Vec::new(),
        wire,
    })
}

/// The body length of the frame at the start of `buffer` if all of it is there.
fn complete_frame(buffer: &[u8]) -> Result<Option<usize>, DriverError> {
    let Some(prefix) = buffer.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len > MAX_FRAME {
        return Err(DriverError::Protocol(format!(
            "frame of {len} bytes exceeds {MAX_FRAME}"
        )));
    }
    let len = len as usize;
    Ok((buffer.len() >= 4 + len).then_some(len))
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

    fn recv_batch<'a>(
        &'a mut self,
        on_message: &'a mut OnMessage<'_>,
    ) -> BoxFuture<'a, Result<usize, DriverError>> {
        Box::pin(async move {
            let mut handed = 0;
            if complete_frame(self.stream.buffer())?.is_none() {
                // Wait (and read across buffer refills) for one whole frame.
                match self.recv().await? {
                    None => return Ok(0),
                    Some(message) => {
                        handed += 1;
                        if !on_message(&message) {
                            return Ok(handed);
                        }
                    }
                }
            }
            // Then every whole frame already read, straight from the read buffer.
            while let Some(len) = complete_frame(self.stream.buffer())? {
                let keep_going = on_message(&self.stream.buffer()[4..4 + len]);
                self.stream.consume(4 + len);
                handed += 1;
                if !keep_going {
                    break;
                }
            }
            Ok(handed)
        })
    }

    fn wire(&self) -> WireCounts {
        self.wire.counts()
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Result<(), DriverError>> {
        Box::pin(async move { Ok(self.stream.get_mut().shutdown().await?) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// Every frame handed over once, in order, whole, including one split across reads.
    #[tokio::test]
    async fn recv_batch_hands_over_every_frame_once_even_split_across_reads() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::new(
            "127.0.0.1:1".parse().unwrap(),
            Some(listener.local_addr().unwrap()),
        );
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut bytes: Vec<u8> = ["a", "bb", "ccc"]
                .iter()
                .flat_map(|b| frame(b.as_bytes()))
                .collect();
            let split = frame(b"dddd");
            bytes.extend_from_slice(&split[..3]);
            socket.write_all(&bytes).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            socket.write_all(&split[3..]).await.unwrap();
            socket.write_all(&frame(b"e")).await.unwrap();
        });
        let mut session = TcpDriver.connect(&target).await.unwrap();
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut batches = 0;
        // A broken hand-over could wait forever for a frame it already consumed: fail instead.
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let mut on_message = |m: &[u8]| {
                    got.push(m.to_vec());
                    true
                };
                let handed = session.recv_batch(&mut on_message).await.unwrap();
                if handed == 0 {
                    break;
                }
                batches += 1;
            }
        })
        .await
        .expect("recv_batch stalled: no end of stream within 10 s");
        server.await.unwrap();
        let want: Vec<&[u8]> = vec![b"a", b"bb", b"ccc", b"dddd", b"e"];
        assert_eq!(got, want);
        assert!(batches >= 2, "the split frame needed a second read");
    }

    #[tokio::test]
    async fn recv_batch_stops_where_told_and_rejects_an_oversized_frame() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::new(
            "127.0.0.1:1".parse().unwrap(),
            Some(listener.local_addr().unwrap()),
        );
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut bytes = [frame(b"x"), frame(b"y")].concat();
            bytes.extend_from_slice(&(MAX_FRAME + 1).to_be_bytes());
            socket.write_all(&bytes).await.unwrap();
            socket
        });
        let mut session = TcpDriver.connect(&target).await.unwrap();
        let _socket = server.await.unwrap();
        let mut got = Vec::new();
        let mut first_only = |m: &[u8]| {
            got.push(m.to_vec());
            false
        };
        assert_eq!(session.recv_batch(&mut first_only).await.unwrap(), 1);
        assert_eq!(got, [b"x".to_vec()]);
        let mut all = |_: &[u8]| true;
        let err = loop {
            match session.recv_batch(&mut all).await {
                Ok(handed) => assert!(handed > 0, "ended before the oversized frame"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(err.contains(&format!("exceeds {MAX_FRAME}")), "{err}");
    }
}

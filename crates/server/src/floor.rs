//! The raw-TCP floor: the same hub with the least framing possible (a 4-byte length prefix), so
//! every protocol figure can be read as a ratio to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::serve::Listener;
use pushbench_core::StudyHub;
use pushbench_core::study::{Flush, Response, encode_subscribed};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::broadcast::{Next, Topics};
use crate::consumers::WriteDeadline;

/// The largest frame the floor accepts; a larger length prefix closes the connection.
pub const MAX_FRAME: u32 = 64 * 1024 * 1024;

/// The most bytes one batched write gathers.
const BATCH_BYTES: usize = 64 * 1024;

fn push_frame(frame: &mut Vec<u8>, message: &[u8]) {
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
}

/// Serves the floor on `listener`: plain TCP (with TCP_NODELAY set by the caller's listener),
/// or TLS when the server speaks it, so the floor stays a floor for TLS runs.
pub(crate) async fn serve<L: Listener>(mut listener: L, topics: Arc<Topics>) {
    static SEEDS: AtomicU64 = AtomicU64::new(1);
    loop {
        let (stream, _) = listener.accept().await;
        let hub = StudyHub::new(SEEDS.fetch_add(1, Ordering::Relaxed));
        let topics = topics.clone();
        tokio::spawn(async move {
            // A peer that breaks the framing just loses its connection.
            let _ = connection(stream, hub, &topics).await;
        });
    }
}

async fn connection(
    stream: impl AsyncRead + AsyncWrite + Unpin,
    mut hub: StudyHub,
    topics: &Topics,
) -> std::io::Result<()> {
    // A write that stalls past the deadline fails, and the connection closes.
    let stream = WriteDeadline::new(stream, topics.stats.clone());
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    let mut call = Vec::new();
    let mut frame = Vec::new();
    loop {
        let len = match read.read_u32().await {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if len > MAX_FRAME {
            return Err(std::io::Error::other(format!(
                "frame of {len} bytes exceeds {MAX_FRAME}"
            )));
        }
        call.resize(len as usize, 0);
        read.read_exact(&mut call).await?;
        frame.clear();
        match hub.respond(&call).map_err(std::io::Error::other)? {
            Response::Reply(reply) => {
                push_frame(&mut frame, &reply);
                write.write_all(&frame).await?;
                // A no-op on plain TCP; over TLS it writes out what rustls still holds.
                write.flush().await?;
            }
            Response::Push(stream, flush) => {
                for message in stream {
                    push_frame(&mut frame, &message);
                    if flush == Flush::PerMessage || frame.len() >= BATCH_BYTES {
                        write.write_all(&frame).await?;
                        write.flush().await?;
                        frame.clear();
                    }
                }
                write.write_all(&frame).await?;
                write.flush().await?;
            }
            Response::Subscribe(topic) => {
                let mut subscription = topics.join(&topic);
                push_frame(&mut frame, &encode_subscribed(&topic));
                write.write_all(&frame).await?;
                write.flush().await?;
                // From here the connection only carries the topic's messages.
                loop {
                    match subscription.next_batch().await {
                        Next::Batch(batch) => {
                            frame.clear();
                            for message in batch {
                                push_frame(&mut frame, &message);
                            }
                            write.write_all(&frame).await?;
                            // TLS holds written data until flushed.
                            write.flush().await?;
                        }
                        Next::Ended => return Ok(()),
                        Next::TooSlow(reason) => return Err(std::io::Error::other(reason)),
                    }
                }
            }
        }
    }
}

//! The raw-TCP floor: the same hub with the least framing possible (a 4-byte length prefix), so
//! every protocol figure can be read as a ratio to it.

use std::sync::atomic::{AtomicU64, Ordering};

use pushbench_core::StudyHub;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The largest frame the floor accepts; a larger length prefix closes the connection.
pub const MAX_FRAME: u32 = 64 * 1024 * 1024;

pub(crate) async fn serve(listener: TcpListener) {
    static SEEDS: AtomicU64 = AtomicU64::new(1);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let hub = StudyHub::new(SEEDS.fetch_add(1, Ordering::Relaxed));
        tokio::spawn(async move {
            // A peer that breaks the framing just loses its connection.
            let _ = connection(stream, hub).await;
        });
    }
}

async fn connection(stream: TcpStream, mut hub: StudyHub) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
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
        let reply = hub.answer(&call).map_err(std::io::Error::other)?;
        frame.clear();
        frame.extend_from_slice(&(reply.len() as u32).to_be_bytes());
        frame.extend_from_slice(&reply);
        write.write_all(&frame).await?;
    }
}

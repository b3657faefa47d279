//! The study's call: the client invokes `runTest(blockSize)` and the server answers
//! `{"data": "<blockSize random A-Z0-9 chars>"}`, as in the published SignalR test. Every
//! message also carries a sequence number and a send timestamp (the envelope of DESIGN.md).
//!
//! Call (client to server): `{"seq":7,"ts":123456,"blockSize":1000}`
//! Reply (server to client): `{"seq":7,"ts":123999,"data":"Q3Z...8K"}`

use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

use serde::Deserialize;

/// The largest reply the server will build; a bigger `blockSize` is refused.
pub const MAX_BLOCK_SIZE: usize = 16 * 1024 * 1024;

const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Nanoseconds on this process's monotonic clock (since its first use).
pub fn mono_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A message that does not follow the study's wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not the JSON object expected; carries the parser's message and the start of the input.
    #[error("malformed {what}: {reason} (input starts {preview:?})")]
    Malformed {
        /// `call` or `reply`.
        what: &'static str,
        /// What serde_json found wrong.
        reason: String,
        /// The first bytes of the message.
        preview: String,
    },
    /// `blockSize` larger than [`MAX_BLOCK_SIZE`].
    #[error("blockSize {0} exceeds the limit of {MAX_BLOCK_SIZE}")]
    BlockTooLarge(u64),
    /// A reply whose `data` is not `block_size` characters of A-Z0-9.
    #[error("reply {seq}: data has {len} bytes, expected {expected} characters of A-Z0-9")]
    BadData {
        /// The reply's sequence number.
        seq: u64,
        /// Bytes of data received.
        len: usize,
        /// The requested block size.
        expected: usize,
    },
}

fn malformed(what: &'static str, bytes: &[u8], err: serde_json::Error) -> ProtocolError {
    let end = bytes.len().min(60);
    ProtocolError::Malformed {
        what,
        reason: err.to_string(),
        preview: String::from_utf8_lossy(&bytes[..end]).into_owned(),
    }
}

/// Encodes a call.
pub fn encode_call(seq: u64, block_size: usize) -> Vec<u8> {
    format!(
        r#"{{"seq":{seq},"ts":{},"blockSize":{block_size}}}"#,
        mono_ns()
    )
    .into_bytes()
}

/// A decoded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Call {
    /// Sequence number, echoed in the reply.
    pub seq: u64,
    /// Client send time, ns.
    #[serde(default)]
    pub ts: u64,
    /// Characters of data requested.
    #[serde(rename = "blockSize")]
    pub block_size: u64,
}

/// Decodes a call.
pub fn decode_call(bytes: &[u8]) -> Result<Call, ProtocolError> {
    serde_json::from_slice(bytes).map_err(|e| malformed("call", bytes, e))
}

/// The fields of a reply the client checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyMeta {
    /// Sequence number of the call answered.
    pub seq: u64,
    /// Server send time, ns.
    pub ts: u64,
}

/// Decodes a reply and checks that its data is `block_size` characters of A-Z0-9.
pub fn decode_reply(bytes: &[u8], block_size: usize) -> Result<ReplyMeta, ProtocolError> {
    #[derive(Deserialize)]
    struct Reply<'a> {
        seq: u64,
        #[serde(default)]
        ts: u64,
        #[serde(borrow)]
        data: &'a str,
    }
    let reply: Reply<'_> =
        serde_json::from_slice(bytes).map_err(|e| malformed("reply", bytes, e))?;
    let data = reply.data.as_bytes();
    if data.len() != block_size || !data.iter().all(|b| ALPHABET.contains(b)) {
        return Err(ProtocolError::BadData {
            seq: reply.seq,
            len: data.len(),
            expected: block_size,
        });
    }
    Ok(ReplyMeta {
        seq: reply.seq,
        ts: reply.ts,
    })
}

/// The server side of the study: answers calls with random blocks. One per connection.
#[derive(Debug, Clone)]
pub struct StudyHub {
    rng: u64,
}

impl StudyHub {
    /// A hub whose random blocks start from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        StudyHub { rng: seed | 1 }
    }

    /// Answers one encoded call with an encoded reply.
    pub fn answer(&mut self, call: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let call = decode_call(call)?;
        if call.block_size > MAX_BLOCK_SIZE as u64 {
            return Err(ProtocolError::BlockTooLarge(call.block_size));
        }
        let block = call.block_size as usize;
        let mut out = Vec::with_capacity(block + 64);
        // Writing into a Vec cannot fail.
        let _ = write!(out, r#"{{"seq":{},"ts":{},"data":""#, call.seq, mono_ns());
        out.extend((0..block).map(|_| ALPHABET[(self.next_random() % 36) as usize]));
        out.extend_from_slice(b"\"}");
        Ok(out)
    }

    // xorshift64*: statistical quality is irrelevant here, only speed and A-Z0-9 output.
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_answered_with_a_block_of_the_requested_size() {
        let mut hub = StudyHub::new(42);
        let reply = hub.answer(&encode_call(7, 1000)).unwrap();
        let meta = decode_reply(&reply, 1000).unwrap();
        assert_eq!(meta.seq, 7);
        assert_eq!(
            reply.len(),
            1000 + r#"{"seq":7,"ts":,"data":""}"#.len() + meta.ts.to_string().len()
        );
    }

    #[test]
    fn a_short_or_foreign_block_is_rejected() {
        let err = decode_reply(br#"{"seq":1,"data":"ABC"}"#, 4).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::BadData {
                seq: 1,
                len: 3,
                expected: 4
            }
        );
        assert!(decode_reply(br#"{"seq":1,"data":"abcd"}"#, 4).is_err());
    }

    #[test]
    fn malformed_messages_are_named() {
        let err = decode_reply(b"{\"seq\":", 4).unwrap_err().to_string();
        assert!(
            err.starts_with("malformed reply") && err.contains("{\\\"seq\\\":"),
            "{err}"
        );
        let err = StudyHub::new(1).answer(b"hello").unwrap_err().to_string();
        assert!(err.starts_with("malformed call"), "{err}");
        let huge = format!(r#"{{"seq":1,"blockSize":{}}}"#, MAX_BLOCK_SIZE + 1);
        assert!(matches!(
            StudyHub::new(1).answer(huge.as_bytes()),
            Err(ProtocolError::BlockTooLarge(_))
        ));
    }
}

//! The wire protocol behind every transport. The study's call: the client invokes
//! `runTest(blockSize)` and the server answers `{"data": "<blockSize random A-Z0-9 chars>"}`, as
//! in the published SignalR test. Every message also carries a sequence number and a send
//! timestamp (the envelope of DESIGN.md).
//!
//! Call (client to server): `{"seq":7,"ts":123456,"blockSize":1000}`
//! Reply (server to client): `{"seq":7,"ts":123999,"data":"Q3Z...8K"}`
//! Push request: `{"op":"push","n":100000,"payload":64,"flush":"batched"}`, answered by `n`
//! messages shaped like replies, `seq` 0 to n-1; with `"binary":true` each message is instead
//! 16 bytes (`seq`, `ts`, big-endian u64) followed by `payload` random bytes.
//! Broadcast plan (`POST /broadcast`): `{"topic":"t","subscribers":100,"n":10,"interval_us":1000,
//! "payload":64}`: once `subscribers` clients are subscribed to `t`, the server sends them `n`
//! reply-shaped messages, message `i` scheduled at `t0 + i * interval_us` and stamped with that
//! scheduled time (so a late send shows as latency: no coordinated omission).
//! The complete protocol, per endpoint, is in `docs/PROTOCOL.md`.

use serde::{Deserialize, Serialize};

/// The largest reply the server will build; a bigger `blockSize` is refused.
pub const MAX_BLOCK_SIZE: usize = 16 * 1024 * 1024;

const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// True when every byte of `data` is one of [`ALPHABET`] (A-Z, 0-9). Written without an early
/// exit or a table so the compiler checks 16 bytes per instruction: this runs on every message
/// a client receives.
fn in_alphabet(data: &[u8]) -> bool {
    data.iter().fold(true, |ok, &b| {
        ok & ((b.wrapping_sub(b'A') < 26) | (b.wrapping_sub(b'0') < 10))
    })
}

/// Nanoseconds on the host's `CLOCK_MONOTONIC`: the same clock in every process on one host,
/// so a server and driver processes can compare timestamps.
pub fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
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
    match decode_canonical_reply(bytes, block_size) {
        Some(meta) => Ok(meta),
        None => decode_reply_json(bytes, block_size),
    }
}

/// The reply exactly as pushbench's servers write it, `{"seq":N,"ts":N,"data":"<block_size
/// characters of A-Z0-9>"}` with no whitespace, decoded in one pass over its bytes; `None` for
/// anything else (other spacing or key order, escapes, a number serde_json would refuse, bad
/// data), which [`decode_reply_json`] then decodes or rejects: the result is the same either
/// way. Profiling batched push showed serde_json (its string scan, UTF-8 check and map
/// machinery) as a third of the client's CPU per message.
fn decode_canonical_reply(bytes: &[u8], block_size: usize) -> Option<ReplyMeta> {
    let rest = bytes.strip_prefix(br#"{"seq":"#)?;
    let (seq, rest) = canonical_u64(rest)?;
    let rest = rest.strip_prefix(br#","ts":"#)?;
    let (ts, rest) = canonical_u64(rest)?;
    let rest = rest.strip_prefix(br#","data":""#)?;
    if rest.get(block_size..)? != br#""}"# {
        return None;
    }
    in_alphabet(&rest[..block_size]).then_some(ReplyMeta { seq, ts })
}

/// A JSON number that is a u64 in serde_json's own form (no sign, no leading zero, no
/// fraction or exponent), and the bytes after it; `None` otherwise, or on overflow.
fn canonical_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    const POW10: [u64; 9] = [
        1,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
    ];
    let mut value = 0u64;
    let mut digits = 0;
    // Up to eight digits per step, read as one word (a reply's numbers are always followed by
    // more than eight bytes); the last few bytes of a short input one by one.
    while let Some(word) = bytes.get(digits..digits + 8) {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        let k = leading_digits(word);
        if k == 0 {
            break;
        }
        // The k digits moved to the top of the word, '0's below them: same value.
        let padded = if k == 8 {
            word
        } else {
            (word << (8 * (8 - k))) | (ZEROS >> (8 * k))
        };
        value = value
            .checked_mul(POW10[k])?
            .checked_add(eight_digits_value(padded))?;
        digits += k;
        if k < 8 {
            break;
        }
    }
    if bytes.len() < digits + 8 {
        while let Some(&b) = bytes.get(digits) {
            if !b.is_ascii_digit() {
                break;
            }
            value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            digits += 1;
        }
    }
    if digits == 0 || (digits > 1 && bytes[0] == b'0') {
        return None;
    }
    let rest = &bytes[digits..];
    if matches!(rest.first(), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((value, rest))
}

/// Eight ASCII '0's.
const ZEROS: u64 = 0x3030_3030_3030_3030;

/// How many of `word`'s bytes, read little-endian (the first in the lowest byte), are ASCII
/// digits before the first that is not. A digit is 0x30..=0x39: its high nibble is 3 and
/// adding 6 does not carry into it; bytes before the first non-digit never carry into it.
fn leading_digits(word: u64) -> usize {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let not_digit =
        ((word & HIGH) ^ ZEROS) | ((word.wrapping_add(0x0606_0606_0606_0606) & HIGH) ^ ZEROS);
    (not_digit.trailing_zeros() / 8) as usize
}

/// The value of eight ASCII digits read little-endian (the first digit in the lowest byte):
/// pairs, then quads, then the whole, each step a multiply and a shift.
fn eight_digits_value(word: u64) -> u64 {
    let v = word - ZEROS;
    let v = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v * 100 + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    (v * 10_000 + (v >> 32)) & 0xFFFF_FFFF
}

/// Decodes a reply in any JSON form with serde_json, naming what is malformed.
fn decode_reply_json(bytes: &[u8], block_size: usize) -> Result<ReplyMeta, ProtocolError> {
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
    if data.len() != block_size || !in_alphabet(data) {
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

/// How a server writes a burst of messages: a flush (one write) per message, or as many
/// messages per write as are ready. Stated in every push result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flush {
    /// One write (and flush) per message.
    PerMessage,
    /// Messages that are ready together go out in one write.
    Batched,
}

impl Flush {
    /// Both policies, in report order.
    pub const ALL: [Flush; 2] = [Flush::PerMessage, Flush::Batched];

    /// The id written in results.
    pub fn id(self) -> &'static str {
        match self {
            Flush::PerMessage => "per_message",
            Flush::Batched => "batched",
        }
    }
}

impl std::str::FromStr for Flush {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Flush::ALL
            .into_iter()
            .find(|f| f.id() == s)
            .ok_or_else(|| format!("unknown flush policy `{s}` (expected per_message or batched)"))
    }
}

/// The most messages one push request may ask for.
pub const MAX_PUSH: u64 = 100_000_000;

/// A request for `n` messages of `payload` data characters (or random bytes) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    /// Messages to send.
    pub n: u64,
    /// Data characters (text) or bytes (binary) per message.
    pub payload: usize,
    /// How the server writes them.
    pub flush: Flush,
    /// Binary messages: WS binary frames, raw bytes on tcp, base64 text on SSE and long polling.
    #[serde(default)]
    pub binary: bool,
}

/// Encodes a push request.
pub fn encode_push(request: &PushRequest) -> Vec<u8> {
    format!(
        r#"{{"op":"push","n":{},"payload":{},"flush":"{}","binary":{}}}"#,
        request.n,
        request.payload,
        request.flush.id(),
        request.binary
    )
    .into_bytes()
}

/// Bytes before the payload of a binary message: `seq` and `ts`, big-endian u64 each.
pub const BINARY_HEADER: usize = 16;

/// Decodes a binary message (16-byte header, then `payload` bytes) and checks its length.
pub fn decode_binary(bytes: &[u8], payload: usize) -> Result<ReplyMeta, ProtocolError> {
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
    };
    match (word(0), word(8)) {
        (Some(seq), Some(ts)) if bytes.len() == BINARY_HEADER + payload => {
            Ok(ReplyMeta { seq, ts })
        }
        (seq, _) => Err(ProtocolError::BadData {
            seq: seq.unwrap_or(0),
            len: bytes.len().saturating_sub(BINARY_HEADER),
            expected: payload,
        }),
    }
}

/// The most broadcast messages one plan may ask for.
pub const MAX_BROADCAST: u64 = 10_000_000;

/// A paced broadcast to every subscriber of a topic (`POST /broadcast`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastPlan {
    /// The topic subscribers joined (`?topic=` on the HTTP endpoints, a subscribe frame on tcp).
    pub topic: String,
    /// Start once this many clients (over every driver process) are subscribed.
    pub subscribers: u64,
    /// Messages to broadcast.
    pub n: u64,
    /// Scheduled interval between messages, µs (0: as fast as possible, still stamped).
    pub interval_us: u64,
    /// Data characters per message.
    pub payload: usize,
    /// How long to wait for the subscribers before starting anyway, ms.
    #[serde(default = "default_wait_ms")]
    pub wait_ms: u64,
    /// Fault injection: the sender itself stops for `stall_ms` before message `stall_before`
    /// (a paused sender must still show as latency: coordinated omission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_before: Option<u64>,
    /// How long the sender stops, ms (at most 10 000).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stall_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn default_wait_ms() -> u64 {
    60_000
}

impl BroadcastPlan {
    /// Checks the limits, naming the field.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let bad = |reason: String| ProtocolError::Malformed {
            what: "broadcast plan",
            reason,
            preview: String::new(),
        };
        if self.topic.is_empty() || self.topic.len() > 200 {
            return Err(bad(format!(
                "topic must be 1..=200 bytes, got {}",
                self.topic.len()
            )));
        }
        if self.stall_ms > 10_000 {
            return Err(bad(format!("stall_ms {} exceeds 10000", self.stall_ms)));
        }
        if self.n > MAX_BROADCAST || self.payload > MAX_BLOCK_SIZE {
            return Err(bad(format!(
                "n {} or payload {} over the limits ({MAX_BROADCAST}, {MAX_BLOCK_SIZE})",
                self.n, self.payload
            )));
        }
        Ok(())
    }
}

/// The acknowledgement a subscriber receives first: `{"op":"subscribed","topic":"t"}`.
pub fn encode_subscribed(topic: &str) -> Vec<u8> {
    serde_json::json!({"op": "subscribed", "topic": topic})
        .to_string()
        .into_bytes()
}

/// The tcp floor's subscribe frame: `{"op":"subscribe","topic":"t"}`.
pub fn encode_subscribe(topic: &str) -> Vec<u8> {
    serde_json::json!({"op": "subscribe", "topic": topic})
        .to_string()
        .into_bytes()
}

/// Random A-Z0-9 characters, the data of every text message.
pub fn random_text(len: usize, rng: &mut u64) -> Vec<u8> {
    (0..len)
        .map(|_| ALPHABET[(xorshift(rng) % 36) as usize])
        .collect()
}

/// One broadcast message: reply-shaped, stamped with its scheduled send time.
pub fn encode_broadcast(seq: u64, scheduled_ns: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 48);
    write_broadcast(&mut out, seq, scheduled_ns, data);
    out
}

/// Appends [`encode_broadcast`]'s message to `out`, allocating nothing when it has room.
pub fn write_broadcast(out: &mut Vec<u8>, seq: u64, ts: u64, data: &[u8]) {
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(br#"{"seq":"#);
    out.extend_from_slice(digits.format(seq).as_bytes());
    out.extend_from_slice(br#","ts":"#);
    out.extend_from_slice(digits.format(ts).as_bytes());
    out.extend_from_slice(br#","data":""#);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\"}");
}

/// What a client can ask of the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// One study call, one reply.
    Call(Call),
    /// A burst of messages.
    Push(PushRequest),
    /// Join a broadcast topic (the tcp floor's way; HTTP endpoints take `?topic=`).
    Subscribe(String),
}

/// Decodes any client message: a call (no `op`, or `"op":"call"`) or a push request.
pub fn decode_request(bytes: &[u8]) -> Result<Request, ProtocolError> {
    #[derive(Deserialize)]
    struct Op<'a> {
        #[serde(borrow, default)]
        op: Option<&'a str>,
    }
    let op: Op<'_> = serde_json::from_slice(bytes).map_err(|e| malformed("request", bytes, e))?;
    match op.op {
        None | Some("call") => decode_call(bytes).map(Request::Call),
        Some("push") => {
            let push: PushRequest =
                serde_json::from_slice(bytes).map_err(|e| malformed("push request", bytes, e))?;
            if push.n > MAX_PUSH || push.payload > MAX_BLOCK_SIZE {
                return Err(ProtocolError::Malformed {
                    what: "push request",
                    reason: format!(
                        "n {} or payload {} over the limits ({MAX_PUSH}, {MAX_BLOCK_SIZE})",
                        push.n, push.payload
                    ),
                    preview: String::new(),
                });
            }
            Ok(Request::Push(push))
        }
        Some("subscribe") => {
            #[derive(Deserialize)]
            struct Subscribe {
                topic: String,
            }
            let sub: Subscribe =
                serde_json::from_slice(bytes).map_err(|e| malformed("subscribe", bytes, e))?;
            Ok(Request::Subscribe(sub.topic))
        }
        Some(other) => Err(ProtocolError::Malformed {
            what: "request",
            reason: format!("unknown op `{other}` (expected call, push or subscribe)"),
            preview: String::new(),
        }),
    }
}

/// Messages of a batched burst that share one clock read for their `ts`. A batched burst's
/// messages wait in the server's buffer for one write anyway; a clock read per message was 16 %
/// of the WebSocket server's CPU in batched push (`perf record`, this 2-core VM's vDSO clock).
/// At 30-70 ns a message, `ts` is at most a few µs early, which can only add to a latency.
pub const MESSAGES_PER_STAMP: u32 = 64;

/// The messages answering a push request; the payload is drawn once, `seq` per message, `ts`
/// per message when flushed per message and every [`MESSAGES_PER_STAMP`] messages when batched.
#[derive(Debug, Clone)]
pub struct PushStream {
    data: Vec<u8>,
    next: u64,
    n: u64,
    binary: bool,
    stamp_every: u32,
    since_stamp: u32,
    stamp: u64,
}

impl PushStream {
    /// True when the messages are binary (see [`BINARY_HEADER`]).
    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// Appends the next message to `out`, stamped now, as [`Iterator::next`] would return it;
    /// false (and `out` untouched) when the burst is over. A server that formats many messages
    /// into one buffer allocates nothing per message this way.
    pub fn write_next(&mut self, out: &mut Vec<u8>) -> bool {
        if self.next >= self.n {
            return false;
        }
        if self.since_stamp == 0 {
            self.stamp = mono_ns();
        }
        self.since_stamp = (self.since_stamp + 1) % self.stamp_every;
        if self.binary {
            out.extend_from_slice(&self.next.to_be_bytes());
            out.extend_from_slice(&self.stamp.to_be_bytes());
            out.extend_from_slice(&self.data);
        } else {
            write_broadcast(out, self.next, self.stamp, &self.data);
        }
        self.next += 1;
        true
    }
}

impl Iterator for PushStream {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.data.len() + 48);
        self.write_next(&mut out).then_some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.n - self.next) as usize;
        (left, Some(left))
    }
}

/// What the hub answers a request with.
#[derive(Debug, Clone)]
pub enum Response {
    /// One reply message.
    Reply(Vec<u8>),
    /// A burst of messages, written under the stated flush policy.
    Push(PushStream, Flush),
    /// The connection joins a broadcast topic; acknowledge with [`encode_subscribed`].
    Subscribe(String),
}

/// The server side of the protocol: answers calls with random blocks and push requests with
/// bursts. One per connection.
#[derive(Debug, Clone)]
pub struct StudyHub {
    rng: u64,
}

impl StudyHub {
    /// A hub whose random blocks start from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        StudyHub { rng: seed | 1 }
    }

    /// Answers any client message: a call with its reply, a push request with its burst.
    pub fn respond(&mut self, request: &[u8]) -> Result<Response, ProtocolError> {
        match decode_request(request)? {
            Request::Call(call) => self.answer_call(&call).map(Response::Reply),
            Request::Push(push) => {
                let data = if push.binary {
                    (0..push.payload)
                        .map(|_| self.next_random() as u8)
                        .collect()
                } else {
                    random_text(push.payload, &mut self.rng)
                };
                Ok(Response::Push(
                    PushStream {
                        data,
                        next: 0,
                        n: push.n,
                        binary: push.binary,
                        stamp_every: match push.flush {
                            Flush::PerMessage => 1,
                            Flush::Batched => MESSAGES_PER_STAMP,
                        },
                        since_stamp: 0,
                        stamp: 0,
                    },
                    push.flush,
                ))
            }
            Request::Subscribe(topic) => Ok(Response::Subscribe(topic)),
        }
    }

    /// Answers one encoded call with an encoded reply.
    pub fn answer(&mut self, call: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        self.answer_call(&decode_call(call)?)
    }

    fn answer_call(&mut self, call: &Call) -> Result<Vec<u8>, ProtocolError> {
        if call.block_size > MAX_BLOCK_SIZE as u64 {
            return Err(ProtocolError::BlockTooLarge(call.block_size));
        }
        let block = call.block_size as usize;
        let mut out = Vec::with_capacity(block + 64);
        // The reply has a broadcast's shape; `ts` is read before the block is drawn.
        let ts = mono_ns();
        write_broadcast(&mut out, call.seq, ts, &random_text(block, &mut self.rng));
        Ok(out)
    }

    fn next_random(&mut self) -> u64 {
        xorshift(&mut self.rng)
    }
}

// xorshift64*: statistical quality is irrelevant here, only speed and A-Z0-9 output.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32
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
    fn a_push_request_is_answered_by_n_messages_in_order() {
        let request = PushRequest {
            n: 3,
            payload: 5,
            flush: Flush::Batched,
            binary: false,
        };
        let Response::Push(stream, flush) =
            StudyHub::new(3).respond(&encode_push(&request)).unwrap()
        else {
            panic!("not a push");
        };
        assert_eq!(flush, Flush::Batched);
        let seqs: Vec<u64> = stream.map(|m| decode_reply(&m, 5).unwrap().seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert!(matches!(
            decode_request(&encode_call(1, 2)),
            Ok(Request::Call(_))
        ));
        let err = decode_request(br#"{"op":"dance"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown op `dance`"), "{err}");
        let err = decode_request(br#"{"op":"push","n":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("malformed push request"), "{err}");
    }

    #[test]
    fn batched_messages_share_a_clock_read_per_64_and_per_message_ones_read_their_own() {
        let stamps = |flush, n| {
            let request = encode_push(&PushRequest {
                n,
                payload: 1,
                flush,
                binary: false,
            });
            let Ok(Response::Push(stream, _)) = StudyHub::new(3).respond(&request) else {
                panic!("not a push");
            };
            stream
                .map(|m| {
                    // Spaced so that consecutive clock reads differ.
                    std::thread::sleep(std::time::Duration::from_micros(20));
                    decode_reply(&m, 1).unwrap().ts
                })
                .collect::<Vec<_>>()
        };
        let batched = stamps(Flush::Batched, 130);
        let groups: Vec<_> = batched.chunk_by(|a, b| a == b).map(<[u64]>::len).collect();
        assert_eq!(groups, [64, 64, 2]);
        assert!(batched.is_sorted());
        let per_message = stamps(Flush::PerMessage, 10);
        assert!(
            per_message.windows(2).all(|w| w[0] < w[1]),
            "{per_message:?}"
        );
    }

    #[test]
    fn the_alphabet_is_exactly_a_to_z_and_0_to_9() {
        for b in 0..=255u8 {
            assert_eq!(in_alphabet(&[b]), ALPHABET.contains(&b), "byte {b}");
            assert_eq!(in_alphabet(&[b; 40]), ALPHABET.contains(&b));
        }
        assert!(in_alphabet(ALPHABET));
        assert!(in_alphabet(b""));
    }

    proptest::proptest! {
        #[test]
        fn numbers_of_every_length_decode_as_str_parse_does(
            value in proptest::prelude::any::<u64>(),
            digits in 1usize..=20,
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..10),
        ) {
            // Any digit string of 1 to 20 digits (leading zeros, overflow and all), any tail.
            let number = format!("{value:020}")[20 - digits..].to_owned();
            let mut bytes = number.clone().into_bytes();
            bytes.extend_from_slice(&tail);
            let run = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            let expected = std::str::from_utf8(&bytes[..run]).ok()
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|_| run == 1 || bytes[0] != b'0')
                .filter(|_| !matches!(bytes.get(run), Some(b'.' | b'e' | b'E')));
            let got = canonical_u64(&bytes);
            proptest::prop_assert_eq!(got.map(|(v, _)| v), expected, "{:?}", String::from_utf8_lossy(&bytes));
            if let Some((_, rest)) = got {
                proptest::prop_assert_eq!(rest, &bytes[run..]);
            }
        }
    }

    #[test]
    fn the_one_pass_reply_decoder_agrees_with_serde_json() {
        let canonical = br#"{"seq":7,"ts":123,"data":"AB9Z"}"#;
        assert_eq!(
            decode_canonical_reply(canonical, 4),
            Some(ReplyMeta { seq: 7, ts: 123 })
        );
        let max = format!(r#"{{"seq":0,"ts":{},"data":"AB9Z"}}"#, u64::MAX);
        assert!(decode_canonical_reply(max.as_bytes(), 4).is_some());
        let cases: &[&[u8]] = &[
            canonical,
            max.as_bytes(),
            br#"{"seq":0,"ts":0,"data":""}"#,
            br#"{"seq":7,"ts":123,"data":"AB9"}"#,
            br#"{"seq":7,"ts":123,"data":"AB9Z0"}"#,
            br#"{"seq":7,"ts":123,"data":"AB9z"}"#,
            br#"{"seq":7,"ts":123,"data":"AB\"Z"}"#,
            br#"{"seq":7,"ts":123,"data":"AB\u0041"}"#,
            br#"{"seq":07,"ts":123,"data":"AB9Z"}"#,
            br#"{"seq":-7,"ts":123,"data":"AB9Z"}"#,
            br#"{"seq":7.0,"ts":123,"data":"AB9Z"}"#,
            br#"{"seq":7e1,"ts":123,"data":"AB9Z"}"#,
            br#"{"seq":18446744073709551616,"ts":1,"data":"AB9Z"}"#,
            br#"{"seq":9999999999999999999,"ts":1,"data":"AB9Z"}"#,
            br#"{"seq":99999999999999999999,"ts":1,"data":"AB9Z"}"#,
            br#"{"seq":7,"ts":123,"data":"AB9Z"} "#,
            br#"{"seq":7,"ts":123,"data":"AB9Z"}}"#,
            br#"{"seq":7,"ts":123,"data":"AB9Z""#,
            br#"{"seq": 7,"ts":123,"data":"AB9Z"}"#,
            br#"{"ts":123,"seq":7,"data":"AB9Z"}"#,
            br#"{"seq":7,"data":"AB9Z"}"#,
            br#"{"seq":7,"ts":123,"data":"AB9Z","x":1}"#,
            br#"{"seq":7,"ts":123,"ts":1,"data":"AB9Z"}"#,
            b"{\"seq\":7,\"ts\":123,\"data\":\"AB\xff9\"}",
            b"",
            b"{\"seq\":",
        ];
        for &case in cases {
            assert_eq!(
                decode_reply(case, 4),
                decode_reply_json(case, 4),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
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

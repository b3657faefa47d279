//! WebSocket frames as the driver reads and writes them (RFC 6455 section 5), over bytes it
//! already holds: [`FrameReader::drain`] hands every whole message in a read buffer to a
//! callback as a slice of that buffer (a message in fragments is reassembled in one reused
//! `Vec`), queues the pong a ping asks for, and reports a close; [`write_frame`] formats a
//! masked client frame. Headers are parsed and formatted by tungstenite's [`FrameHeader`].
//!
//! Why not tokio-tungstenite's `WebSocketStream`: in batched push its per-message machinery
//! (a `Bytes` split and a `Message` per frame, a waker registration on every `poll_next`) made
//! the client spend more CPU per message than the server spent sending it.

use std::io::Cursor;
use std::ops::Range;

use pushbench_core::DriverError;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// The largest message (one frame, or the sum of a fragmented message's frames) the driver
/// accepts from the server: tungstenite's default `max_message_size`, which the driver had
/// before it read frames itself, and the tcp floor driver's `MAX_FRAME`.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The largest payload of a control frame (close, ping, pong), RFC 6455 section 5.5.
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Reads server frames from a buffer, keeping what spans frames: a fragmented message.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    /// The opcode (text or binary) of the fragmented message being reassembled, if any.
    fragmented: Option<Data>,
    /// That message's payload so far; reused from one fragmented message to the next.
    assembled: Vec<u8>,
}

/// What [`FrameReader::drain`] did with a buffer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Bytes of the buffer's start that were whole frames and are done with.
    pub consumed: usize,
    /// Messages handed to the callback.
    pub handed: usize,
    /// The server's close frame arrived: its status code, if it carried one. Nothing after a
    /// close is read.
    pub closed: Option<Option<[u8; 2]>>,
    /// Bytes the buffer must hold, counted after `consumed`, for the frame that starts there
    /// to be whole, once its header is known (`0` when not).
    pub need: usize,
}

/// What starts a buffer: a whole frame and its length, or not all of one yet.
enum Next {
    /// A whole frame of this many bytes.
    Whole(usize, Frame),
    /// The bytes the buffer must hold for the frame to be whole; `0` before its header is.
    Incomplete(usize),
}

/// One whole frame at the start of a buffer.
enum Frame {
    /// A whole message: its payload's place in the buffer.
    Message(Range<usize>),
    /// The last frame of a fragmented message: the message is in [`FrameReader::assembled`].
    Assembled,
    /// A fragment kept in [`FrameReader::assembled`], or a pong (nothing to do).
    Absorbed,
    /// A ping, with its payload's place.
    Ping(Range<usize>),
    /// A close, with its payload's place.
    Close(Range<usize>),
}

fn protocol(reason: String) -> DriverError {
    DriverError::Protocol(reason)
}

impl FrameReader {
    /// Hands every whole message at the start of `buffer` to `on_message`, in order, until the
    /// buffer holds no whole frame, `on_message` returns `false`, or a close frame arrives.
    /// A ping's pong is appended to `replies` (masked, ready to write). A frame the server must
    /// not send, or a message over [`MAX_MESSAGE_BYTES`], is a [`DriverError::Protocol`] naming
    /// what was wrong.
    pub(crate) fn drain(
        &mut self,
        buffer: &[u8],
        replies: &mut Vec<u8>,
        on_message: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<Drained, DriverError> {
        let mut drained = Drained::default();
        loop {
            let rest = &buffer[drained.consumed..];
            let (len, frame) = match self.next_frame(rest)? {
                Next::Whole(len, frame) => (len, frame),
                Next::Incomplete(need) => {
                    drained.need = need;
                    return Ok(drained);
                }
            };
            let keep_going = match frame {
                Frame::Message(payload) => {
                    drained.handed += 1;
                    on_message(&rest[payload])
                }
                Frame::Assembled => {
                    drained.handed += 1;
                    on_message(&self.assembled)
                }
                Frame::Absorbed => true,
                Frame::Ping(payload) => {
                    write_frame(replies, OpCode::Control(Control::Pong), &rest[payload]);
                    true
                }
                Frame::Close(payload) => {
                    drained.consumed += len;
                    drained.closed = Some(close_code(&rest[payload])?);
                    return Ok(drained);
                }
            };
            drained.consumed += len;
            if !keep_going {
                return Ok(drained);
            }
        }
    }

    /// The frame at the start of `buffer`, checked. State (a fragmented message) changes only
    /// once the whole frame is there.
    fn next_frame(&mut self, buffer: &[u8]) -> Result<Next, DriverError> {
        let mut cursor = Cursor::new(buffer);
        let (header, payload_len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(Next::Incomplete(0)),
            // The only error a parse over bytes in memory can meet: an opcode RFC 6455 reserves.
            Err(e) => return Err(protocol(format!("server frame has an unknown opcode: {e}"))),
        };
        if header.mask.is_some() {
            return Err(protocol(
                "server frame is masked (RFC 6455 5.1: a server must not mask its frames)".into(),
            ));
        }
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(protocol(
                "server frame has reserved bits (RSV1-3) set, and no extension was negotiated"
                    .into(),
            ));
        }
        let opcode = header.opcode;
        match opcode {
            OpCode::Control(control) => {
                if payload_len > MAX_CONTROL_PAYLOAD {
                    return Err(protocol(format!(
                        "server {control} frame of {payload_len} bytes (a control frame carries at most {MAX_CONTROL_PAYLOAD})"
                    )));
                }
                if !header.is_final {
                    return Err(protocol(format!(
                        "server {control} frame is fragmented (control frames must not be)"
                    )));
                }
            }
            OpCode::Data(data) => {
                let so_far = if data == Data::Continue {
                    if self.fragmented.is_none() {
                        return Err(protocol(
                            "server continuation frame with no fragmented message to continue"
                                .into(),
                        ));
                    }
                    self.assembled.len() as u64
                } else {
                    if self.fragmented.is_some() {
                        return Err(protocol(format!(
                            "server {data} frame began a message before the fragmented one ended"
                        )));
                    }
                    0
                };
                if so_far + payload_len > MAX_MESSAGE_BYTES as u64 {
                    return Err(protocol(format!(
                        "server message of {} bytes or more exceeds the driver's limit of {MAX_MESSAGE_BYTES} bytes",
                        so_far + payload_len
                    )));
                }
            }
        }
        // Both are bounded by MAX_MESSAGE_BYTES now, and the header by 14 bytes.
        let start = cursor.position() as usize;
        let end = start + payload_len as usize;
        if buffer.len() < end {
            return Ok(Next::Incomplete(end));
        }
        let payload = start..end;
        let frame = match opcode {
            OpCode::Data(data @ (Data::Text | Data::Binary)) => {
                if header.is_final {
                    if data == Data::Text {
                        check_text(&buffer[payload.clone()])?;
                    }
                    Frame::Message(payload)
                } else {
                    self.fragmented = Some(data);
                    self.assembled.clear();
                    self.assembled.extend_from_slice(&buffer[payload]);
                    Frame::Absorbed
                }
            }
            OpCode::Data(Data::Continue) => {
                self.assembled.extend_from_slice(&buffer[payload]);
                if header.is_final {
                    if self.fragmented.take() == Some(Data::Text) {
                        check_text(&self.assembled)?;
                    }
                    Frame::Assembled
                } else {
                    Frame::Absorbed
                }
            }
            OpCode::Control(Control::Ping) => Frame::Ping(payload),
            OpCode::Control(Control::Pong) => Frame::Absorbed,
            OpCode::Control(Control::Close) => Frame::Close(payload),
            // FrameHeader::parse refuses reserved opcodes; kept an error should that change.
            OpCode::Data(Data::Reserved(code)) | OpCode::Control(Control::Reserved(code)) => {
                return Err(protocol(format!("server frame has unknown opcode {code}")));
            }
        };
        Ok(Next::Whole(end, frame))
    }
}

/// A text message must be UTF-8 (RFC 6455 5.6); all-ASCII text, the usual case, is found so
/// by a plain scan before the full check.
fn check_text(payload: &[u8]) -> Result<(), DriverError> {
    if payload.is_ascii() {
        return Ok(());
    }
    std::str::from_utf8(payload)
        .map(|_| ())
        .map_err(|e| protocol(format!("server text message is not UTF-8: {e}")))
}

/// The status code of a close frame's payload (none when empty), checking its reason is
/// UTF-8 as RFC 6455 5.5.1 requires.
fn close_code(payload: &[u8]) -> Result<Option<[u8; 2]>, DriverError> {
    match payload {
        [] => Ok(None),
        [_] => Err(protocol(
            "server close frame has a 1-byte payload (a status code takes 2)".into(),
        )),
        [high, low, reason @ ..] => {
            std::str::from_utf8(reason)
                .map_err(|e| protocol(format!("server close frame's reason is not UTF-8: {e}")))?;
            Ok(Some([*high, *low]))
        }
    }
}

/// Appends one final client frame carrying `payload` to `out`, masked with a fresh random key
/// as RFC 6455 5.3 requires of a client.
pub(crate) fn write_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let mask: [u8; 4] = rand::random();
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: Some(mask),
    };
    // Formatting into a Vec cannot fail: its Write never does.
    let _ = header.format(payload.len() as u64, out);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, byte) in out[start..].iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A server frame: unmasked, `first` is FIN/RSV/opcode, the length in its shortest form.
    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n @ 0..=125 => out.push(n as u8),
            n @ 126..=0xffff => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    const TEXT: u8 = 0x81;
    const BINARY: u8 = 0x82;
    const PING: u8 = 0x89;
    const PONG: u8 = 0x8a;
    const CLOSE: u8 = 0x88;

    /// What a session would see: the messages handed over, the replies queued, the close.
    #[derive(Debug, Default, PartialEq)]
    struct Seen {
        messages: Vec<Vec<u8>>,
        /// Unmasked (opcode, payload) of every reply frame queued.
        replies: Vec<(u8, Vec<u8>)>,
        closed: Option<Option<[u8; 2]>>,
    }

    /// Feeds `stream` to a reader the way the session does, as two reads split at `split`:
    /// drains after each read, keeps the unconsumed rest for the next.
    fn feed_split(stream: &[u8], split: usize) -> Result<Seen, DriverError> {
        let mut reader = FrameReader::default();
        let mut seen = Seen::default();
        let mut buffer = Vec::new();
        let mut replies = Vec::new();
        for chunk in [&stream[..split], &stream[split..]] {
            buffer.extend_from_slice(chunk);
            loop {
                let mut on_message = |m: &[u8]| {
                    seen.messages.push(m.to_vec());
                    true
                };
                let drained = reader.drain(&buffer, &mut replies, &mut on_message)?;
                buffer.drain(..drained.consumed);
                if drained.closed.is_some() {
                    seen.closed = drained.closed;
                    seen.replies = unmask_all(&replies);
                    return Ok(seen);
                }
                if drained.need > 0 {
                    assert!(drained.need > buffer.len(), "need counts what is missing");
                }
                if drained.consumed == 0 {
                    break;
                }
            }
        }
        seen.replies = unmask_all(&replies);
        Ok(seen)
    }

    /// The same outcome for the stream however it is split in two.
    fn feed_every_split(stream: &[u8]) -> Result<Seen, DriverError> {
        let whole = feed_split(stream, stream.len());
        for split in 0..stream.len() {
            let parts = feed_split(stream, split);
            match (&whole, &parts) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "split at {split}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "split at {split}"),
                _ => panic!("split at {split}: {parts:?} vs whole {whole:?}"),
            }
        }
        whole
    }

    /// Client frames as a server reads them: checks each is final and masked, unmasks it.
    fn unmask_all(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let mut cursor = Cursor::new(bytes);
            let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final);
            let mask = header.mask.expect("client frames are masked");
            let start = cursor.position() as usize;
            let payload: Vec<u8> = bytes[start..start + len as usize]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i & 3])
                .collect();
            frames.push((u8::from(header.opcode), payload));
            bytes = &bytes[start + len as usize..];
        }
        frames
    }

    fn error_of(stream: &[u8]) -> String {
        feed_every_split(stream).unwrap_err().to_string()
    }

    #[test]
    fn text_and_binary_messages_are_handed_over_whole_however_the_bytes_arrive() {
        let long = vec![b'x'; 300]; // 16-bit length form
        let stream = [
            server_frame(TEXT, br#"{"seq":1}"#),
            server_frame(BINARY, &[0, 159, 255]),
            server_frame(TEXT, b""),
            server_frame(TEXT, &long),
        ]
        .concat();
        let seen = feed_every_split(&stream).unwrap();
        let want: Vec<Vec<u8>> = vec![br#"{"seq":1}"#.to_vec(), vec![0, 159, 255], vec![], long];
        assert_eq!(seen.messages, want);
        assert_eq!(seen.replies, vec![]);
        assert_eq!(seen.closed, None);
    }

    #[test]
    fn a_64_bit_length_frame_is_read() {
        let big = vec![b'y'; 70_000];
        let stream = server_frame(BINARY, &big);
        assert_eq!(stream[1], 127);
        let seen = feed_split(&stream, 5).unwrap();
        assert_eq!(seen.messages, vec![big]);
    }

    #[test]
    fn fragmented_messages_are_reassembled_with_control_frames_between_fragments() {
        let stream = [
            server_frame(0x01, b"he"), // text, not final
            server_frame(PING, b"p1"), // control frames may come between fragments
            server_frame(0x00, b"ll"), // continuation, not final
            server_frame(PONG, b"ignored"),
            server_frame(0x80, b"o"), // final continuation
            server_frame(0x02, &[1, 2]),
            server_frame(0x80, &[3]),
            server_frame(TEXT, b"after"),
        ]
        .concat();
        let seen = feed_every_split(&stream).unwrap();
        let want: Vec<Vec<u8>> = vec![b"hello".to_vec(), vec![1, 2, 3], b"after".to_vec()];
        assert_eq!(seen.messages, want);
        assert_eq!(seen.replies, vec![(0x0a, b"p1".to_vec())]);
    }

    #[test]
    fn a_ping_is_answered_with_a_pong_carrying_its_payload_and_a_pong_is_ignored() {
        let stream = [
            server_frame(PING, b"are you there"),
            server_frame(PONG, b"unsolicited"),
            server_frame(PING, b""),
            server_frame(TEXT, b"m"),
        ]
        .concat();
        let seen = feed_every_split(&stream).unwrap();
        assert_eq!(seen.messages, vec![b"m".to_vec()]);
        assert_eq!(
            seen.replies,
            vec![(0x0a, b"are you there".to_vec()), (0x0a, vec![])]
        );
    }

    #[test]
    fn a_close_ends_the_session_with_its_code_and_nothing_after_it_is_read() {
        let stream = [
            server_frame(TEXT, b"last"),
            server_frame(CLOSE, &[0x03, 0xe8, b'b', b'y', b'e']),
            server_frame(TEXT, b"never"),
        ]
        .concat();
        let seen = feed_every_split(&stream).unwrap();
        assert_eq!(seen.messages, vec![b"last".to_vec()]);
        assert_eq!(seen.closed, Some(Some([0x03, 0xe8])));
        let seen = feed_every_split(&server_frame(CLOSE, b"")).unwrap();
        assert_eq!(seen.closed, Some(None));
        assert!(error_of(&server_frame(CLOSE, &[3])).contains("1-byte payload"));
        assert!(error_of(&server_frame(CLOSE, &[3, 0xe8, 0xff])).contains("reason is not UTF-8"));
    }

    #[test]
    fn on_message_returning_false_stops_after_that_message() {
        let stream = [server_frame(TEXT, b"a"), server_frame(TEXT, b"b")].concat();
        let mut reader = FrameReader::default();
        let mut got = Vec::new();
        let mut first_only = |m: &[u8]| {
            got.push(m.to_vec());
            false
        };
        let drained = reader
            .drain(&stream, &mut Vec::new(), &mut first_only)
            .unwrap();
        assert_eq!(drained.handed, 1);
        assert_eq!(drained.consumed, 3);
        assert_eq!(got, vec![b"a".to_vec()]);
    }

    #[test]
    fn frames_a_server_must_not_send_are_protocol_errors_naming_the_fault() {
        let cases: [(Vec<u8>, &str); 9] = [
            // masked: mask bit on, key 1 2 3 4, payload "a" masked
            (vec![0x81, 0x81, 1, 2, 3, 4, b'a' ^ 1], "is masked"),
            (server_frame(0xc1, b"rsv1"), "reserved bits"),
            (server_frame(0xa1, b"rsv2"), "reserved bits"),
            (server_frame(0x83, b"op3"), "unknown opcode"),
            (server_frame(0x8b, b"op11"), "unknown opcode"),
            (server_frame(PING, &[0; 126]), "at most 125"),
            (server_frame(0x09, b"frag"), "PING frame is fragmented"),
            (
                server_frame(0x80, b"cont"),
                "no fragmented message to continue",
            ),
            (
                [server_frame(0x01, b"a"), server_frame(TEXT, b"b")].concat(),
                "before the fragmented one ended",
            ),
        ];
        for (stream, want) in cases {
            let error = error_of(&stream);
            assert!(error.contains(want), "{stream:?}: {error}");
            assert!(error.starts_with("protocol error: "), "{error}");
        }
    }

    #[test]
    fn a_message_over_the_limit_is_refused_from_its_header() {
        // Only the header: the refusal must not wait for (or buffer) 64 MiB.
        let mut header = vec![BINARY, 127];
        header.extend_from_slice(&(MAX_MESSAGE_BYTES as u64 + 1).to_be_bytes());
        let error = error_of(&header);
        assert!(error.contains("exceeds the driver's limit"), "{error}");
        // A fragmented message whose fragments together exceed it.
        let mut stream = server_frame(0x02, &[0; 10]);
        stream.extend_from_slice(&[0x80, 127]);
        stream.extend_from_slice(&(MAX_MESSAGE_BYTES as u64 - 9).to_be_bytes());
        let error = error_of(&stream);
        assert!(error.contains("exceeds the driver's limit"), "{error}");
        // Exactly at the limit waits for the payload instead.
        let mut header = vec![BINARY, 127];
        header.extend_from_slice(&(MAX_MESSAGE_BYTES as u64).to_be_bytes());
        let drained = FrameReader::default()
            .drain(&header, &mut Vec::new(), &mut |_| true)
            .unwrap();
        assert_eq!(drained.need, 10 + MAX_MESSAGE_BYTES);
    }

    #[test]
    fn text_must_be_utf8_and_binary_need_not_be() {
        let seen = feed_every_split(&server_frame(TEXT, "grüße ✓".as_bytes())).unwrap();
        assert_eq!(seen.messages, vec!["grüße ✓".as_bytes().to_vec()]);
        let error = error_of(&server_frame(TEXT, &[b'a', 0xc3, 0x28]));
        assert!(error.contains("not UTF-8"), "{error}");
        // Fragments may split a character; the whole message must be valid.
        let e_acute = "é".as_bytes();
        let split_char = [
            server_frame(0x01, &e_acute[..1]),
            server_frame(0x80, &e_acute[1..]),
        ]
        .concat();
        assert_eq!(
            feed_every_split(&split_char).unwrap().messages,
            vec![e_acute.to_vec()]
        );
        let bad = [server_frame(0x01, b"ok"), server_frame(0x80, &[0xff])].concat();
        assert!(error_of(&bad).contains("not UTF-8"));
        let seen = feed_every_split(&server_frame(BINARY, &[0xff, 0xfe])).unwrap();
        assert_eq!(seen.messages, vec![vec![0xff, 0xfe]]);
    }

    #[test]
    fn client_frames_are_masked_and_read_back_as_sent() {
        let mut out = Vec::new();
        let long = vec![b'z'; 200];
        write_frame(&mut out, OpCode::Data(Data::Text), b"hello");
        write_frame(&mut out, OpCode::Data(Data::Text), &long);
        write_frame(&mut out, OpCode::Control(Control::Close), &[3, 0xe8]);
        assert_eq!(
            unmask_all(&out),
            vec![
                (0x01, b"hello".to_vec()),
                (0x01, long),
                (0x08, vec![3, 0xe8])
            ]
        );
        // Masked on the wire: the payload does not appear as itself (with 4 random key bytes,
        // an all-zero key has a chance of 2^-32).
        assert!(!out.windows(5).any(|w| w == b"hello"));
    }
}

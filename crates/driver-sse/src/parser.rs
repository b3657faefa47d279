//! An incremental `text/event-stream` parser following the WHATWG HTML standard, "Server-sent
//! events: parsing an event stream" and "interpreting an event stream".
//!
//! Bytes arrive in chunks of any size (a chunk may end inside a UTF-8 character, a field name,
//! or between the CR and LF of one line end); events come out whole, in order.
//!
//! ```
//! use pushbench_driver_sse::SseParser;
//! let mut parser = SseParser::new();
//! parser.push(b"id: 7\r\ndata: hel").unwrap();
//! parser.push(b"lo\r\n\r\n").unwrap();
//! let event = parser.next_event().unwrap();
//! assert_eq!((event.event.as_str(), event.data.as_str(), event.last_event_id.as_str()), ("message", "hello", "7"));
//! ```

use std::collections::VecDeque;
use std::mem;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` type; `message` when the event had none.
    pub event: String,
    /// The data lines joined with `\n` (the final line feed removed).
    pub data: String,
    /// The last event ID at dispatch time (it persists across events).
    pub last_event_id: String,
}

/// A dispatched event, borrowed from the parser: what [`SseParser::push_each`] hands over
/// without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEventRef<'a> {
    /// The `event:` type; `message` when the event had none.
    pub event: &'a str,
    /// The data lines joined with `\n` (the final line feed removed).
    pub data: &'a str,
    /// The last event ID at dispatch time (it persists across events).
    pub last_event_id: &'a str,
}

impl SseEventRef<'_> {
    /// An owned copy.
    pub fn to_owned_event(&self) -> SseEvent {
        SseEvent {
            event: self.event.to_owned(),
            data: self.data.to_owned(),
            last_event_id: self.last_event_id.to_owned(),
        }
    }
}

/// The most bytes one line (without its terminator), and one event's data, may hold by
/// default: 8 MiB. The payload scenario's largest message, 1 MiB of binary data, travels as
/// one base64 `data:` line of about 1.4 MiB.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// A stream the parser refuses. Without these limits a peer that never ends a line, or never
/// ends an event, would make the client buffer without bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line (without its terminator) is longer than the parser's limit.
    #[error("event-stream line longer than the limit of {limit} bytes")]
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The data lines of one event add up to more than the parser's limit.
    #[error("event-stream event data longer than the limit of {limit} bytes")]
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// The parser: push bytes in, take events out.
#[derive(Debug)]
pub struct SseParser {
    /// A line begun in an earlier chunk, without its terminator yet.
    partial: Vec<u8>,
    /// The previous chunk ended with CR: a leading LF in the next one belongs to it.
    after_cr: bool,
    /// How many bytes of a leading BOM have been matched; `None` once past the start.
    bom_matched: Option<usize>,
    data: String,
    event: String,
    last_event_id: String,
    retry: Option<u64>,
    queue: VecDeque<SseEvent>,
    limit: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser with the default limit, [`MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }

    /// A parser refusing a line, or one event's data, longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        SseParser {
            partial: Vec::new(),
            after_cr: false,
            bom_matched: Some(0),
            data: String::new(),
            event: String::new(),
            last_event_id: String::new(),
            retry: None,
            queue: VecDeque::new(),
            limit,
        }
    }

    /// Parses a chunk of the stream, queueing the events it completes. After an error the
    /// stream is broken: the caller should drop it.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), SseError> {
        let mut queue = mem::take(&mut self.queue);
        let parsed = self.push_each(chunk, &mut |event| queue.push_back(event.to_owned_event()));
        self.queue = queue;
        parsed
    }

    /// Parses a chunk of the stream like [`SseParser::push`], handing each event it completes
    /// to `on_event` as it is dispatched, borrowed from the parser's buffers, instead of
    /// queueing an owned copy: no allocation per event. Events queued by an earlier `push`
    /// stay queued.
    pub fn push_each(
        &mut self,
        mut chunk: &[u8],
        on_event: &mut dyn FnMut(SseEventRef<'_>),
    ) -> Result<(), SseError> {
        if let Some(matched) = self.bom_matched {
            let n = (BOM.len() - matched).min(chunk.len());
            if chunk[..n] == BOM[matched..matched + n] {
                chunk = &chunk[n..];
                if matched + n < BOM.len() {
                    self.bom_matched = Some(matched + n);
                    return Ok(());
                }
                self.bom_matched = None;
            } else {
                // Not a BOM after all: the bytes matched so far are content.
                self.bom_matched = None;
                self.lines(&BOM[..matched], on_event)?;
            }
        }
        self.lines(chunk, on_event)
    }

    /// The oldest event not yet taken.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.queue.pop_front()
    }

    /// The latest valid `retry:` value, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The last event ID buffer.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Ends the stream: an event without its closing blank line is discarded, as the spec says.
    pub fn finish(&mut self) {
        self.partial.clear();
        self.data.clear();
        self.event.clear();
        self.after_cr = false;
    }

    fn lines(
        &mut self,
        mut rest: &[u8],
        on_event: &mut dyn FnMut(SseEventRef<'_>),
    ) -> Result<(), SseError> {
        // An empty chunk must not forget a CR that ended the previous one (found by the
        // property test in tests/parser_model.rs).
        if rest.is_empty() {
            return Ok(());
        }
        if mem::take(&mut self.after_cr) && rest[0] == b'\n' {
            rest = &rest[1..];
        }
        // One scan of the chunk for line ends: a search per line costs more than the short
        // lines themselves.
        let mut start = 0;
        let mut lf_after_cr = None;
        let mut lone = None;
        for i in memchr::memchr2_iter(b'\n', b'\r', rest) {
            if lf_after_cr == Some(i) {
                // The LF of a CRLF: the line ended at the CR.
                start = i + 1;
                continue;
            }
            let line = &rest[start..i];
            if self.partial.is_empty() {
                self.check_len(line.len())?;
                lone = self.line_in_chunk(line, lone, on_event)?;
            } else {
                self.check_len(self.partial.len() + line.len())?;
                let mut joined = mem::take(&mut self.partial);
                joined.extend_from_slice(line);
                let parsed = self.line(&joined, on_event);
                joined.clear();
                self.partial = joined;
                parsed?;
            }
            start = i + 1;
            if rest[i] == b'\r' {
                match rest.get(i + 1) {
                    Some(b'\n') => lf_after_cr = Some(i + 1),
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        if let Some(data) = lone {
            self.push_data(data)?;
        }
        let rest = &rest[start..];
        if !rest.is_empty() {
            self.check_len(self.partial.len() + rest.len())?;
            self.partial.extend_from_slice(rest);
        }
        Ok(())
    }

    fn check_len(&self, len: usize) -> Result<(), SseError> {
        if len > self.limit {
            Err(SseError::LineTooLong { limit: self.limit })
        } else {
            Ok(())
        }
    }

    fn line(
        &mut self,
        line: &[u8],
        on_event: &mut dyn FnMut(SseEventRef<'_>),
    ) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(on_event);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        // The two fields of nearly every line first, then any field: the name ends at the
        // first colon (neither "data" nor "id" holds one).
        let (name, value) = if let Some(value) = line.strip_prefix(b"data:") {
            (&b"data"[..], value)
        } else if let Some(value) = line.strip_prefix(b"id:") {
            (&b"id"[..], value)
        } else {
            match memchr::memchr(b':', line) {
                Some(colon) => (&line[..colon], &line[colon + 1..]),
                None => (line, &b""[..]),
            }
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match name {
            b"data" => self.push_data(&utf8_lossy(value))?,
            b"event" => replace(&mut self.event, value),
            b"id" if !value.contains(&0) => replace(&mut self.last_event_id, value),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // All digits; only a value too large for u64 fails, and is ignored.
                if let Ok(ms) = std::str::from_utf8(value).unwrap_or_default().parse() {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A line wholly inside the chunk being parsed. A data line that may be its event's only
    /// one is not copied but kept borrowed as `lone` (returned), and the blank line right
    /// after it dispatches it as it is: the common event costs no copy of its data. Anything
    /// else first appends `lone` to the data buffer, so the result is the same.
    fn line_in_chunk<'c>(
        &mut self,
        line: &'c [u8],
        lone: Option<&'c str>,
        on_event: &mut dyn FnMut(SseEventRef<'_>),
    ) -> Result<Option<&'c str>, SseError> {
        if line.is_empty() {
            if let Some(data) = lone {
                on_event(SseEventRef {
                    event: if self.event.is_empty() {
                        "message"
                    } else {
                        &self.event
                    },
                    data,
                    last_event_id: &self.last_event_id,
                });
                self.event.clear();
                return Ok(None);
            }
        } else if lone.is_none() && self.data.is_empty() {
            if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                // Invalid UTF-8 takes the copying path, which replaces it.
                if let Ok(data) = std::str::from_utf8(value) {
                    self.check_data(data.len())?;
                    return Ok(Some(data));
                }
            }
        }
        if let Some(data) = lone {
            self.push_data(data)?;
        }
        self.line(line, on_event)?;
        Ok(None)
    }

    fn check_data(&self, more: usize) -> Result<(), SseError> {
        if self.data.len() + more + 1 > self.limit {
            Err(SseError::EventTooLarge { limit: self.limit })
        } else {
            Ok(())
        }
    }

    /// Appends a data line's value and its line feed to the data buffer.
    fn push_data(&mut self, value: &str) -> Result<(), SseError> {
        self.check_data(value.len())?;
        // Room for the line feed too: pushing it after an exact fit would reallocate.
        self.data.reserve(value.len() + 1);
        self.data.push_str(value);
        self.data.push('\n');
        Ok(())
    }

    /// Hands the event to `on_event` and resets its type and data, keeping their buffers for
    /// the next event.
    fn dispatch(&mut self, on_event: &mut dyn FnMut(SseEventRef<'_>)) {
        if self.data.is_empty() {
            self.event.clear();
            return;
        }
        self.data.pop();
        on_event(SseEventRef {
            event: if self.event.is_empty() {
                "message"
            } else {
                &self.event
            },
            data: &self.data,
            last_event_id: &self.last_event_id,
        });
        self.data.clear();
        self.event.clear();
    }
}

/// `bytes` as text, invalid UTF-8 replaced by U+FFFD. Valid text (nearly every line) takes
/// `str::from_utf8`'s fast path: `String::from_utf8_lossy` alone walks it in slower chunks,
/// which profiling showed as a quarter of the parser's time on 64 B events.
fn utf8_lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Replaces `buffer`'s text with `bytes` (lossy UTF-8), keeping its allocation: the id changes
/// with every event.
fn replace(buffer: &mut String, bytes: &[u8]) {
    buffer.clear();
    buffer.push_str(&utf8_lossy(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        for c in chunks {
            p.push(c).unwrap();
        }
        std::iter::from_fn(|| p.next_event()).collect()
    }

    fn datas(chunks: &[&[u8]]) -> Vec<String> {
        parse(chunks).into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn push_each_hands_over_the_same_events_as_push_split_anywhere() {
        let stream: &[u8] =
            b"id: 1\ndata: {\"seq\":0}\n\nevent: x\ndata: a\ndata: b\n\nid: 2\ndata: c\r\n\r\n";
        let want = parse(&[stream]);
        assert_eq!(want.len(), 3);
        for split in 0..=stream.len() {
            let mut p = SseParser::new();
            let mut got = Vec::new();
            for chunk in [&stream[..split], &stream[split..]] {
                p.push_each(chunk, &mut |e| got.push(e.to_owned_event()))
                    .unwrap();
            }
            assert_eq!(got, want, "split at {split}");
            assert_eq!(p.next_event(), None, "nothing queued by push_each");
        }
    }

    #[test]
    fn lf_cr_crlf_and_mixed_line_ends() {
        assert_eq!(datas(&[b"data: a\n\n"]), ["a"]);
        assert_eq!(datas(&[b"data: a\r\r"]), ["a"]);
        assert_eq!(datas(&[b"data: a\r\n\r\n"]), ["a"]);
        assert_eq!(datas(&[b"data: a\rdata: b\r\ndata: c\n\r\n"]), ["a\nb\nc"]);
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        // A CR at a chunk end and the LF at the next start must not make a blank line.
        assert_eq!(
            datas(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]),
            ["a\nb"]
        );
        // ...even with an empty chunk between them.
        assert_eq!(datas(&[b"data: a\r", b"", b"\n\n"]), ["a"]);
        // ...while a CR followed by a non-LF is a line end of its own.
        assert_eq!(datas(&[b"data: a\r", b"\r"]), ["a"]);
    }

    #[test]
    fn blank_line_dispatches_and_empty_data_does_not() {
        let mut p = SseParser::new();
        p.push(b"id: 5\n\n").unwrap();
        assert_eq!(p.next_event(), None);
        assert_eq!(p.last_event_id(), "5");
        p.push(b"event: x\n\ndata: y\n\n").unwrap();
        let e = p.next_event().unwrap();
        assert_eq!(
            (e.event.as_str(), e.data.as_str()),
            ("message", "y"),
            "type reset by the empty event"
        );
    }

    #[test]
    fn multi_line_data_and_empty_data_lines() {
        assert_eq!(datas(&[b"data: a\ndata: b\n\n"]), ["a\nb"]);
        assert_eq!(datas(&[b"data\n\n"]), [""]);
        assert_eq!(datas(&[b"data:\ndata:\n\n"]), ["\n"]);
        assert_eq!(datas(&[b"data: a\ndata\n\n"]), ["a\n"]);
    }

    #[test]
    fn only_one_leading_space_is_stripped() {
        assert_eq!(datas(&[b"data:  x\n\n"]), [" x"]);
        assert_eq!(datas(&[b"data:x\n\n"]), ["x"]);
        assert_eq!(datas(&[b"data: x \n\n"]), ["x "]);
    }

    #[test]
    fn comments_are_ignored() {
        assert_eq!(datas(&[b": keep-alive\ndata: a\n:another\n\n:\n\n"]), ["a"]);
    }

    #[test]
    fn event_type_applies_to_one_event() {
        let events = parse(&[b"event: session\ndata: 1\n\ndata: 2\n\n"]);
        assert_eq!(events[0].event, "session");
        assert_eq!(events[1].event, "message");
    }

    #[test]
    fn id_persists_ignores_null_and_resets_when_empty() {
        let events = parse(&[b"id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\nid\ndata: d\n\n"]);
        let ids: Vec<_> = events.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(ids, ["1", "1", "1", ""]);
    }

    #[test]
    fn retry_needs_only_digits() {
        let mut p = SseParser::new();
        p.push(b"retry: 1500\n").unwrap();
        assert_eq!(p.retry(), Some(1500));
        for bad in [
            &b"retry: 15x\n"[..],
            b"retry: -1\n",
            b"retry:\n",
            b"retry: 1 \n",
            b"retry: 99999999999999999999999\n",
        ] {
            p.push(bad).unwrap();
            assert_eq!(p.retry(), Some(1500), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_field_without_colon_has_an_empty_value() {
        let events = parse(&[b"data: a\nevent\n\n"]);
        assert_eq!(events[0].event, "message", "empty type means message");
        let mut p = SseParser::new();
        p.push(b"id: 3\nid\n").unwrap();
        assert_eq!(p.last_event_id(), "");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(datas(&[b"foo: bar\ndata: a\nDATA: b\ndata : c\n\n"]), ["a"]);
    }

    #[test]
    fn a_bom_is_skipped_only_at_the_start() {
        assert_eq!(datas(&[b"\xEF\xBB\xBFdata: a\n\n"]), ["a"]);
        assert_eq!(datas(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"]), ["a"]);
        // A later BOM is part of a field name, which is then unknown.
        assert_eq!(datas(&[b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"]), ["a"]);
        // Bytes that start like a BOM but are not one are kept.
        assert_eq!(
            parse(&[b"\xEF", b"data: a\n\n"]).len(),
            0,
            "field name \\xEFdata is unknown"
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(datas(&[b"data: a\xFFb\n\n"]), ["a\u{FFFD}b"]);
        // A character split across chunks survives.
        assert_eq!(datas(&[b"data: \xC3", b"\xA9\n\n"]), ["\u{e9}"]);
    }

    #[test]
    fn ids_and_types_are_replaced_whole_and_lossy() {
        // The id buffer is reused: a shorter id must not keep the longer one's tail.
        let events = parse(&[b"id: 12345\ndata: a\n\nid: 7\xFF\nevent: t\xC3\ndata: b\n\n"]);
        assert_eq!(events[0].last_event_id, "12345");
        assert_eq!(events[1].last_event_id, "7\u{FFFD}");
        assert_eq!(events[1].event, "t\u{FFFD}");
    }

    #[test]
    fn an_incomplete_event_at_the_end_is_discarded() {
        let mut p = SseParser::new();
        p.push(b"data: a\n\ndata: b\n").unwrap();
        p.finish();
        assert_eq!(p.next_event().map(|e| e.data), Some("a".into()));
        assert_eq!(p.next_event(), None);
        p.push(b"\n").unwrap();
        assert_eq!(
            p.next_event(),
            None,
            "the discarded data does not come back"
        );
    }

    fn stream() -> Vec<u8> {
        let mut s = b"\xEF\xBB\xBF: hello\r\nretry: 3000\n".to_vec();
        for i in 0..200 {
            let end: &[u8] = [&b"\n"[..], b"\r", b"\r\n"][i % 3];
            s.extend_from_slice(format!("id: {i}").as_bytes());
            s.extend_from_slice(end);
            if i % 7 == 0 {
                s.extend_from_slice(b"event: tick");
                s.extend_from_slice(end);
            }
            s.extend_from_slice(format!("data: line {i} \u{e9}").as_bytes());
            s.extend_from_slice(end);
            s.extend_from_slice(b"data:second");
            s.extend_from_slice(end);
            s.extend_from_slice(end);
        }
        s
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        let whole = stream();
        let expected = parse(&[&whole]);
        assert_eq!(expected.len(), 200);
        assert_eq!(expected[7].event, "tick");
        assert_eq!(expected[8].data, "line 8 \u{e9}\nsecond");
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(parse(&bytes), expected);
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..50 {
            let mut chunks = Vec::new();
            let mut rest = &whole[..];
            while !rest.is_empty() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let n = (seed % 40 + 1) as usize;
                let (a, b) = rest.split_at(n.min(rest.len()));
                chunks.push(a);
                rest = b;
            }
            assert_eq!(parse(&chunks), expected);
        }
    }

    #[test]
    fn a_line_over_the_limit_is_refused_even_in_pieces() {
        let mut p = SseParser::with_limit(16);
        assert!(p.push(b"data: 0123456789\n").is_ok());
        assert_eq!(
            p.push(b"data: 0123456789abc\n"),
            Err(SseError::LineTooLong { limit: 16 })
        );
        let mut p = SseParser::with_limit(16);
        p.push(b"data: 01234").unwrap();
        assert_eq!(
            p.push(b"56789abcdef"),
            Err(SseError::LineTooLong { limit: 16 })
        );
    }

    #[test]
    fn an_event_over_the_limit_is_refused_though_each_line_fits() {
        let mut p = SseParser::with_limit(16);
        // 6 + 1, then 10 + 1 (the joining line feeds count): 18 > 16.
        p.push(b"data: 012345\n").unwrap();
        assert_eq!(
            p.push(b"data:0123456789\n"),
            Err(SseError::EventTooLarge { limit: 16 })
        );
        assert_eq!(
            SseError::EventTooLarge { limit: 16 }.to_string(),
            "event-stream event data longer than the limit of 16 bytes"
        );
        // Exactly at the limit is fine: 7 + 9 = 16.
        let mut p = SseParser::with_limit(16);
        p.push(b"data: 012345\ndata:01234567\n\n").unwrap();
        assert_eq!(p.next_event().map(|e| e.data.len()), Some(15));
    }

    #[test]
    fn the_default_limit_takes_a_base64_mebibyte() {
        // The payload scenario's largest binary message: 1 MiB as base64.
        let line = vec![b'A'; 1024 * 1024 * 4 / 3 + 4];
        let mut p = SseParser::new();
        p.push(b"data: ").unwrap();
        p.push(&line).unwrap();
        p.push(b"\n\n").unwrap();
        assert_eq!(p.next_event().map(|e| e.data.len()), Some(line.len()));
    }
}

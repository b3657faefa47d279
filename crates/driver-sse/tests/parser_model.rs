//! Property test: the incremental parser, fed a generated event stream cut into arbitrary
//! chunks, dispatches exactly what a plain reference model of the WHATWG spec ("parsing an
//! event stream", "interpreting an event stream") dispatches from the whole stream at once.
//!
//! The model is written straight from the spec's prose, favouring obviousness over speed:
//! decode the whole stream as UTF-8 (invalid bytes become U+FFFD, one leading BOM dropped),
//! split it into lines at CRLF, CR or LF, and process each line.

#![allow(clippy::unwrap_used, missing_docs)]

use proptest::prelude::*;
use pushbench_driver_sse::{SseError, SseEvent, SseParser};

/// What the model ends with: dispatched events, the reconnection time, the last event ID.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<SseEvent>,
    retry: Option<u64>,
    last_event_id: String,
}

fn model(stream: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(stream);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    // Lines end at CRLF, CR or LF; a last line without its end is not a line yet.
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut line));
            }
            '\n' => lines.push(std::mem::take(&mut line)),
            c => line.push(c),
        }
    }
    let (mut data, mut event_type, mut last_id) = (String::new(), String::new(), String::new());
    let mut out = Outcome {
        events: Vec::new(),
        retry: None,
        last_event_id: String::new(),
    };
    for line in lines {
        if line.is_empty() {
            // Dispatch.
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            let event = if event_type.is_empty() {
                "message".to_owned()
            } else {
                std::mem::take(&mut event_type)
            };
            out.events.push(SseEvent {
                event,
                data: std::mem::take(&mut data),
                last_event_id: last_id.clone(),
            });
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => event_type = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => last_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // The spec sets no bound; a value beyond u64 is ignored (parser and model agree
                // on that choice).
                if let Ok(ms) = value.parse() {
                    out.retry = Some(ms);
                }
            }
            _ => {}
        }
    }
    out.last_event_id = last_id;
    out
}

fn parse_in_chunks(stream: &[u8], cuts: &[usize]) -> Result<Outcome, SseError> {
    let mut parser = SseParser::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut start = 0;
    for cut in cuts.into_iter().chain([stream.len()]) {
        parser.push(&stream[start..cut])?;
        start = cut;
    }
    parser.finish();
    Ok(Outcome {
        events: std::iter::from_fn(|| parser.next_event()).collect(),
        retry: parser.retry(),
        last_event_id: parser.last_event_id().to_owned(),
    })
}

/// Bytes that make values interesting: spaces and colons (stripping, splitting), NUL (ids),
/// digits (retry), a 2-byte character, lone and truncated UTF-8, and BOM bytes.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(&b" "[..]),
        Just(&b":"[..]),
        Just(&b"\0"[..]),
        Just(&b"7"[..]),
        Just(&b"42"[..]),
        Just(&b"x"[..]),
        Just(&b"\xC3\xA9"[..]),
        Just(&b"\xC3"[..]),
        Just(&b"\xFF"[..]),
        Just(&b"\xEF\xBB\xBF"[..]),
        Just(&b"99999999999999999999999"[..]),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

/// One line's content (without its end).
fn line() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        4 => Just(&b"data"[..]),
        2 => Just(&b"event"[..]),
        2 => Just(&b"id"[..]),
        2 => Just(&b"retry"[..]),
        1 => Just(&b"DATA"[..]),
        1 => Just(&b"foo"[..]),
        1 => Just(&b"data "[..]),
        1 => Just(&b"\xFFdata"[..]),
    ];
    let colon = prop_oneof![Just(&b":"[..]), Just(&b": "[..]), Just(&b""[..])];
    prop_oneof![
        6 => (name, colon, value()).prop_map(|(n, c, v)| [n, c, &v].concat()),
        2 => Just(Vec::new()),
        1 => value().prop_map(|v| [&b":"[..], &v].concat()),
        1 => prop::collection::vec(any::<u8>(), 0..8),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    let end = prop_oneof![Just(&b"\n"[..]), Just(&b"\r"[..]), Just(&b"\r\n"[..])];
    let lines = prop::collection::vec((line(), end), 0..40);
    let bom = prop_oneof![3 => Just(&b""[..]), 1 => Just(&b"\xEF\xBB\xBF"[..]), 1 => Just(&b"\xEF\xBB"[..])];
    // The stream may stop mid-line or mid-event: what is unfinished must not be dispatched.
    let tail = prop_oneof![Just(Vec::new()), line()];
    (bom, lines, tail).prop_map(|(bom, lines, tail)| {
        let mut out = bom.to_vec();
        for (line, end) in lines {
            out.extend_from_slice(&line);
            out.extend_from_slice(end);
        }
        out.extend_from_slice(&tail);
        out
    })
}

proptest! {
    // 512 cases of up to 40 lines run in well under a second in a debug build.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn chunked_parse_matches_the_spec_model(
        stream in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let parsed = parse_in_chunks(&stream, &cuts);
        prop_assert_eq!(parsed, Ok(model(&stream)));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_match_the_model(
        stream in prop::collection::vec(any::<u8>(), 0..256),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        prop_assert_eq!(parse_in_chunks(&stream, &cuts), Ok(model(&stream)));
    }
}

/// The model itself, on the spec's own examples, so a wrong model cannot bless a wrong parser.
#[test]
fn the_model_follows_the_spec_examples() {
    let datas = |s: &[u8]| -> Vec<String> { model(s).events.into_iter().map(|e| e.data).collect() };
    // "data: YHOO\ndata: +2\ndata: 10\n\n" is one message "YHOO\n+2\n10".
    assert_eq!(
        datas(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
        ["YHOO\n+2\n10"]
    );
    // Comments, an id, and the last block without a blank line is never dispatched.
    let out = model(
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event",
    );
    let got: Vec<_> = out
        .events
        .iter()
        .map(|e| (e.data.as_str(), e.last_event_id.as_str()))
        .collect();
    assert_eq!(got, [("first event", "1"), ("second event", "")]);
    // Two events: "" then "\n"; and "test" twice (one space stripped, not more).
    assert_eq!(datas(b"data\n\ndata\ndata\n\ndata:\n"), ["", "\n"]);
    assert_eq!(datas(b"data:test\n\ndata: test\n\n"), ["test", "test"]);
    assert_eq!(model(b"retry: 10\nretry: x\n").retry, Some(10));
    assert_eq!(
        model(b"\xEF\xBB\xBFevent: a\r\ndata: b\r\r").events[0].event,
        "a"
    );
}

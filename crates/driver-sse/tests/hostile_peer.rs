//! The SSE driver against a fake peer that misbehaves: garbage, an event cut off by the end
//! of the stream, a line that never ends.

#![allow(clippy::unwrap_used, missing_docs)]

use pushbench_core::{Driver, DriverError, Target};
use pushbench_driver_sse::{MAX_EVENT_BYTES, SseDriver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one connection: reads the request head, answers 200 `text/event-stream` with `body`
/// (close-delimited), then closes.
async fn peer(body: Vec<u8>) -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
        socket.write_all(answer).await.unwrap();
        // The client may hang up first (after a limit error): that is fine.
        let _ = socket.write_all(&body).await;
        let _ = socket.shutdown().await;
    });
    Target::new(addr, None)
}

const SESSION: &[u8] = b"id: 0\nevent: session\ndata: t\n\n";

#[tokio::test]
async fn garbage_is_skipped_and_a_partial_event_at_the_end_is_not_delivered() {
    let mut body = SESSION.to_vec();
    body.extend_from_slice(b"\xFF\xFE garbage without a colon\r\nbogus: field\n:comment\n\n");
    body.extend_from_slice(b"data: \xC3\x28 kept\n\n");
    body.extend_from_slice(b"data: cut off before its blank line\n");
    let target = peer(body).await;
    let mut session = SseDriver.subscribe(&target, "t").await.unwrap();
    let first = session.recv().await.unwrap().unwrap();
    assert_eq!(&first[..], "\u{FFFD}( kept".as_bytes());
    assert_eq!(
        session.recv().await.unwrap(),
        None,
        "the unfinished event is discarded and the session ends cleanly"
    );
}

#[tokio::test]
async fn a_line_past_the_limit_is_a_protocol_error_naming_the_limit() {
    let mut body = SESSION.to_vec();
    body.extend_from_slice(b"data: ");
    body.resize(body.len() + MAX_EVENT_BYTES + 1, b'A');
    let target = peer(body).await;
    let mut session = SseDriver.subscribe(&target, "t").await.unwrap();
    match session.recv().await {
        Err(DriverError::Protocol(message)) => assert_eq!(
            message,
            format!(
                "GET /sse?topic=t: event-stream line longer than the limit of {MAX_EVENT_BYTES} bytes"
            )
        ),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stream_that_ends_before_its_session_event_is_an_error() {
    let target = peer(b"event: session\ndata: t".to_vec()).await;
    match SseDriver.subscribe(&target, "t").await {
        Err(DriverError::Protocol(message)) => {
            assert_eq!(message, "GET /sse?topic=t ended before naming a session")
        }
        Err(e) => panic!("expected a protocol error, got {e}"),
        Ok(_) => panic!("a session without its session event"),
    }
}

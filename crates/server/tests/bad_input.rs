//! Bad input against the real server over raw sockets: each answer is the status line or the
//! WebSocket close code the RFCs prescribe, and after each the server still answers a normal
//! request.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use pushbench_server::{
    MAX_HEADER_BYTES, RunningServer, ServerConfig, WS_MAX_MESSAGE_BYTES, spawn,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for a loaded 2-core machine to answer anything; only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(20);

fn server() -> RunningServer {
    spawn(ServerConfig {
        tcp: None,
        header_read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .unwrap()
}

/// Everything the server sends until it closes the connection (a reset counts as a close).
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open; got {out:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `request` on a new connection; returns the status line of the answer.
async fn status_line(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let answer = read_to_close(&mut stream).await;
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or("").to_owned()
}

/// A normal request still works.
async fn assert_healthy(addr: SocketAddr) {
    let line = status_line(
        addr,
        b"GET /poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(line, "HTTP/1.1 200 OK", "the server stopped answering");
}

#[tokio::test]
async fn garbage_requests_get_400() {
    let server = server();
    for garbage in [
        &b"\x00\x01\x02\xFF not http at all\r\n\r\n"[..],
        b"GET /poll HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET /poll HTTP/9.9\r\nHost: x\r\n\r\n",
        b"G\xC3\xA9T /poll HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(
            status_line(server.http_addr, garbage).await,
            "HTTP/1.1 400 Bad Request",
            "{}",
            String::from_utf8_lossy(garbage)
        );
        assert_healthy(server.http_addr).await;
    }
}

#[tokio::test]
async fn headers_over_the_limit_get_431() {
    let server = server();
    let mut request = b"GET /poll HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    request.resize(request.len() + MAX_HEADER_BYTES, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        status_line(server.http_addr, &request).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // Just under the limit is served.
    let mut request = b"GET /poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ".to_vec();
    request.resize(MAX_HEADER_BYTES - 100, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        status_line(server.http_addr, &request).await,
        "HTTP/1.1 200 OK"
    );
    assert_healthy(server.http_addr).await;
}

#[tokio::test]
async fn more_than_100_headers_get_431() {
    let server = server();
    let mut request = "GET /poll HTTP/1.1\r\nHost: x\r\n".to_owned();
    for i in 0..100 {
        request.push_str(&format!("X-H{i}: 1\r\n"));
    }
    request.push_str("\r\n");
    assert_eq!(
        status_line(server.http_addr, request.as_bytes()).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_healthy(server.http_addr).await;
}

#[tokio::test]
async fn a_body_over_2_mib_gets_413() {
    let server = server();
    let body = vec![b' '; 2 * 1024 * 1024 + 1];
    let head = format!(
        "POST /rpc?session=1 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let stream = TcpStream::connect(server.http_addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    // The server may answer and close before it has read the whole body: write on the side
    // and ignore a write the server's close cuts short.
    let writer = tokio::spawn(async move {
        let _ = write.write_all(head.as_bytes()).await;
        let _ = write.write_all(&body).await;
        write
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout(PATIENCE, read.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            other => panic!("no answer: {other:?} after {answer:?}"),
        }
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 413 Payload Too Large"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(writer.await);
    assert_healthy(server.http_addr).await;
}

#[tokio::test]
async fn unknown_paths_get_404() {
    let server = server();
    for path in ["/nowhere", "/ws/extra", "/../etc/passwd", "/%00"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(
            status_line(server.http_addr, request.as_bytes()).await,
            "HTTP/1.1 404 Not Found",
            "{path}"
        );
    }
    assert_healthy(server.http_addr).await;
}

#[tokio::test]
async fn truncated_requests_and_silent_connections_are_closed_after_the_header_timeout() {
    let server = server();
    for partial in [&b""[..], b"GET /poll HTTP/1.1\r\nHost:", b"POST /rpc"] {
        let mut stream = TcpStream::connect(server.http_addr).await.unwrap();
        stream.write_all(partial).await.unwrap();
        // The server closes it (300 ms here) without an answer; PATIENCE fails a hang.
        assert_eq!(
            read_to_close(&mut stream).await,
            b"",
            "{}",
            String::from_utf8_lossy(partial)
        );
    }
    assert_healthy(server.http_addr).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503_and_a_freed_place_is_reused() {
    let server = spawn(ServerConfig {
        tcp: None,
        max_connections: 2,
        ..ServerConfig::default()
    })
    .unwrap();
    let addr = server.http_addr;
    // Two keep-alive connections, each proven served (so counted) by one answered request.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 404"));
        held.push(stream);
    }
    let line = status_line(addr, b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(line, "HTTP/1.1 503 Service Unavailable");
    // Hanging up one gives its place back once the server has seen the close.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let line = status_line(
            addr,
            b"GET /poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if line == "HTTP/1.1 200 OK" {
            break;
        }
        assert_eq!(line, "HTTP/1.1 503 Service Unavailable");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens `/ws` by hand and returns the socket after the 101 answer.
async fn ws_open(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// A client frame: `first` is FIN/RSV/opcode; masked with a fixed key unless `masked` is false.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Sends `bytes` on an open WebSocket and returns the code of the server's close frame.
async fn close_code_after(addr: SocketAddr, bytes: &[u8]) -> u16 {
    let mut stream = ws_open(addr).await;
    stream.write_all(bytes).await.unwrap();
    let answer = read_to_close(&mut stream).await;
    // The server's frames: find the close frame (opcode 8), unmasked, short length.
    let mut rest = &answer[..];
    while rest.len() >= 2 {
        let (opcode, len) = (rest[0] & 0x0F, (rest[1] & 0x7F) as usize);
        assert!(
            len < 126,
            "unexpected long frame from the server: {answer:?}"
        );
        if opcode == 8 {
            assert!(len >= 2, "close frame without a code");
            return u16::from_be_bytes([rest[2], rest[3]]);
        }
        rest = &rest[2 + len..];
    }
    panic!("no close frame in {answer:?}");
}

#[tokio::test]
async fn websocket_bad_frames_get_their_rfc_6455_close_codes() {
    let server = server();
    let addr = server.http_addr;
    // A frame longer than the limit: refused from its header alone.
    let mut header = frame(0x81, &[], true);
    header[1] = 0x80 | 127;
    header.splice(2..2, ((WS_MAX_MESSAGE_BYTES + 1) as u64).to_be_bytes());
    assert_eq!(
        close_code_after(addr, &header).await,
        1009,
        "oversized frame"
    );
    // A message over the limit in fragments that each fit.
    let half = vec![b'a'; WS_MAX_MESSAGE_BYTES / 2 + 1];
    let mut fragments = frame(0x01, &half, true);
    fragments.extend(frame(0x80, &half, true));
    assert_eq!(
        close_code_after(addr, &fragments).await,
        1009,
        "oversized message"
    );
    // A text frame that is not UTF-8.
    assert_eq!(
        close_code_after(addr, &frame(0x81, b"\xFF\xFE{}", true)).await,
        1007
    );
    // Protocol violations: an unmasked client frame, reserved bits, reserved opcodes.
    assert_eq!(
        close_code_after(addr, &frame(0x81, b"{}", false)).await,
        1002
    );
    assert_eq!(
        close_code_after(addr, &frame(0xC1, b"{}", true)).await,
        1002
    );
    assert_eq!(
        close_code_after(addr, &frame(0x83, b"{}", true)).await,
        1002
    );
    assert_eq!(close_code_after(addr, &frame(0x8B, b"", true)).await, 1002);
    // A continuation with nothing to continue.
    assert_eq!(
        close_code_after(addr, &frame(0x80, b"{}", true)).await,
        1002
    );
    assert_healthy(addr).await;
}

#[tokio::test]
async fn a_websocket_message_just_under_the_limit_is_served() {
    let server = server();
    let mut stream = ws_open(server.http_addr).await;
    // A valid call padded with spaces to just under the limit: JSON allows the whitespace.
    let mut call = br#"{"seq":1,"blockSize":4}"#.to_vec();
    call.resize(WS_MAX_MESSAGE_BYTES, b' ');
    stream.write_all(&frame(0x81, &call, true)).await.unwrap();
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], 0x81, "a text reply, not a close");
}

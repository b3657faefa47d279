//! HTTP/2 against the real server: h2c with prior knowledge and h2 over TLS (chosen by ALPN)
//! stream `/sse` as `text/event-stream`; HTTP/1.1 still works beside them; the connection
//! limit, the header size limit and the header read timeout hold for HTTP/2 too.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pushbench_core::http::Http2Connection;
use pushbench_core::{Target, WireCounter};
use pushbench_server::{MAX_HEADER_BYTES, ServerConfig, ServerTls, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for a loaded 2-core machine; only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(20);

/// Reads `body` until it holds `events` complete `data:` lines; returns them.
async fn data_lines(mut body: Incoming, events: usize) -> Vec<String> {
    let mut text = String::new();
    loop {
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("data: "))
            .map(str::to_owned)
            .collect();
        if lines.len() >= events {
            return lines;
        }
        let frame = tokio::time::timeout(PATIENCE, body.frame())
            .await
            .expect("no event in time")
            .expect("the stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

async fn assert_ticker_over_h2(target: &Target) {
    let connection = Http2Connection::connect(target, &WireCounter::default())
        .await
        .unwrap();
    let response = connection.get("/sse", "text/event-stream").await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "text/event-stream"
    );
    // The ticker's first event comes at once, the second a second later.
    let lines = data_lines(response.into_body(), 2).await;
    assert!(
        lines[0].starts_with(r#"data: {"seq":0,"unix_ms":"#),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(r#"data: {"seq":1,"unix_ms":"#),
        "{lines:?}"
    );
}

#[tokio::test]
async fn h2c_with_prior_knowledge_streams_the_sse_ticker() {
    let server = spawn(ServerConfig::default()).unwrap();
    assert_ticker_over_h2(&server.target()).await;
}

#[tokio::test]
async fn h2_over_tls_is_chosen_by_alpn_and_streams_the_sse_ticker() {
    let server = spawn(ServerConfig {
        tls: Some(ServerTls::self_signed(None).unwrap()),
        ..ServerConfig::default()
    })
    .unwrap();
    let target = server.target();
    assert!(target.tls.is_some());
    assert_ticker_over_h2(&target).await;
}

#[tokio::test]
async fn an_http1_request_is_still_served_as_http1() {
    let server = spawn(ServerConfig::default()).unwrap();
    let mut stream = TcpStream::connect(server.http_addr).await.unwrap();
    // `P` starts the HTTP/2 preface too: the server must tell `POST` from `PRI` and put back
    // the bytes it read to tell them apart.
    stream
        .write_all(b"POST /rpc?session=999 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    // The app's answer, not a parse error.
    assert!(
        answer.starts_with("HTTP/1.1 404 Not Found") && answer.ends_with("no session 999"),
        "{answer}"
    );
}

#[tokio::test]
async fn h2_streams_beyond_the_connection_limit_get_503() {
    let server = spawn(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    })
    .unwrap();
    let target = server.target();
    let first = Http2Connection::connect(&target, &WireCounter::default())
        .await
        .unwrap();
    let held = first.get("/sse", "text/event-stream").await.unwrap();
    assert_eq!(held.status(), 200);
    // Streams on the connection already served do not count against the limit.
    let again = first.get("/sse", "text/event-stream").await.unwrap();
    assert_eq!(again.status(), 200);
    let second = Http2Connection::connect(&target, &WireCounter::default())
        .await
        .unwrap();
    let refused = second.get("/sse", "text/event-stream").await.unwrap();
    assert_eq!(refused.status(), 503);
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("at most 1 at once"),
        "{body:?}"
    );
}

#[tokio::test]
async fn an_h2_header_list_over_the_limit_is_refused() {
    let server = spawn(ServerConfig::default()).unwrap();
    let stream = TcpStream::connect(server.http_addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = |headers: usize| {
        let mut builder = http::Request::get(format!("http://{}/sse", server.http_addr));
        for i in 0..headers {
            builder = builder.header(format!("x-pad-{i}"), "x".repeat(4096));
        }
        builder.body(Empty::<Bytes>::new()).unwrap()
    };
    // 17 headers of 4 KiB (plus their names): over the 64 KiB the server allows.
    const { assert!(17 * 4096 > MAX_HEADER_BYTES) };
    let refused = tokio::time::timeout(PATIENCE, sender.send_request(request(17)))
        .await
        .unwrap();
    match refused {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(e) => panic!("expected a 431 answer, got {e}"),
    }
    // The same connection still serves a request under the limit.
    sender.ready().await.unwrap();
    let response = sender.send_request(request(4)).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_half_sent_h2_preface_is_closed_after_the_header_read_timeout() {
    let server = spawn(ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .unwrap();
    let mut stream = TcpStream::connect(server.http_addr).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
        .await
        .expect("the server kept a half-sent preface open");
    // Closed without an answer (a reset counts as closed).
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

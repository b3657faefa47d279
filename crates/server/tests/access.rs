//! Access control against the real server: the `/ws` Origin check (cross-site WebSocket
//! hijacking) and the bearer token.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use pushbench_server::{Access, RunningServer, ServerConfig, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn server(access: Access) -> RunningServer {
    spawn(ServerConfig {
        tcp: None,
        access,
        ..ServerConfig::default()
    })
    .unwrap()
}

/// Sends `request` and returns the status line of the answer.
async fn status_line(addr: SocketAddr, request: String) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte)).await;
        assert_eq!(
            read.expect("no answer").unwrap(),
            1,
            "closed after {head:?}"
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).trim_end().to_owned()
}

fn upgrade(path: &str, host: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

const SWITCHING: &str = "HTTP/1.1 101 Switching Protocols";

#[tokio::test]
async fn a_cross_origin_upgrade_gets_403_and_same_or_allowed_origins_succeed() {
    let server = server(Access {
        allowed_origins: vec!["https://dashboard.example".into()],
        ..Access::default()
    });
    let addr = server.http_addr;
    let host = addr.to_string();
    let with_origin = |origin: &str| upgrade("/ws", &host, &format!("Origin: {origin}\r\n"));
    assert_eq!(
        status_line(addr, with_origin("https://evil.example")).await,
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(
        status_line(addr, with_origin("http://127.0.0.1:1")).await,
        "HTTP/1.1 403 Forbidden",
        "same host, another port"
    );
    assert_eq!(
        status_line(addr, with_origin(&format!("http://{host}"))).await,
        SWITCHING,
        "same origin"
    );
    assert_eq!(
        status_line(addr, with_origin("https://dashboard.example")).await,
        SWITCHING,
        "allowlisted"
    );
    assert_eq!(
        status_line(addr, upgrade("/ws", &host, "")).await,
        SWITCHING,
        "no Origin: not a browser"
    );
    assert_eq!(
        status_line(addr, upgrade("/ws?topic=t", &host, "Origin: null\r\n")).await,
        "HTTP/1.1 403 Forbidden",
        "subscriptions are checked too"
    );
    let feed = "/feed/ws?stream=o&n=5&rate=100&drop_every=5&down_ms=0&retry_ms=10&payload=4";
    assert_eq!(
        status_line(
            addr,
            upgrade(feed, &host, "Origin: https://evil.example\r\n")
        )
        .await,
        "HTTP/1.1 403 Forbidden",
        "the reconnect feed's WebSocket too"
    );
    assert_eq!(
        status_line(
            addr,
            with_origin(&format!("http://{host}")).replacen("/ws", feed, 1)
        )
        .await,
        SWITCHING,
        "the feed, same origin"
    );
}

#[tokio::test]
async fn with_a_token_every_endpoint_answers_401_without_it() {
    let server = server(Access {
        token: Some("s3cret".into()),
        ..Access::default()
    });
    let addr = server.http_addr;
    let get = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
    };
    let post = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        )
    };
    const UNAUTHORIZED: &str = "HTTP/1.1 401 Unauthorized";
    for request in [
        get("/sse", ""),
        get("/poll", ""),
        get("/nowhere", ""),
        post("/rpc?session=1"),
        post("/broadcast"),
        post("/stall?ms=1"),
        upgrade("/ws", "x", ""),
        get("/poll", "Authorization: Bearer wrong\r\n"),
        get("/poll", "Authorization: Bearer s3cret2\r\n"),
        get("/poll", "Authorization: Basic s3cret\r\n"),
        get("/poll?token=s3cre", ""),
    ] {
        assert_eq!(
            status_line(addr, request.clone()).await,
            UNAUTHORIZED,
            "{request}"
        );
    }
    for request in [
        get("/poll", "Authorization: Bearer s3cret\r\n"),
        get("/poll?token=s3cret", ""),
        get("/poll?topic=t&token=s3cret", ""),
    ] {
        assert_eq!(
            status_line(addr, request.clone()).await,
            "HTTP/1.1 200 OK",
            "{request}"
        );
    }
    assert_eq!(
        status_line(addr, upgrade("/ws?token=s3cret", "x", "")).await,
        SWITCHING
    );
}

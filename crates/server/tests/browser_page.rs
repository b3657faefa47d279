//! The browser client's endpoints over a real socket: the page and its script with the right
//! content types, results delivered to the waiting run, and what a page can get wrong (a
//! malformed result names the field; a result for a run nobody waits for is 404).

#![allow(clippy::unwrap_used, missing_docs)]

use pushbench_server::{BrowserReport, ServerConfig, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request on its own connection: (status, lower-cased head, body).
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn report_json() -> serde_json::Value {
    serde_json::json!({
        "user_agent": "test", "sent": 3, "received": 3, "duplicated": 0, "out_of_order": 0,
        "elapsed_ms": 1.5, "connect_ms": 0.5, "bytes_loaded": 30, "latencies_us": [10.0, 20.0, 30.0]
    })
}

#[tokio::test]
async fn the_page_and_its_script_are_served_with_their_content_types() {
    let server = spawn(ServerConfig::default()).unwrap();
    let (status, head, body) =
        request(server.http_addr, "GET", "/bench/browser.html?run=x", "").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("cross-origin-opener-policy: same-origin"),
        "{head}"
    );
    assert!(
        body.contains(r#"<script src="/bench/browser.js"></script>"#),
        "{body}"
    );

    let (status, head, body) = request(server.http_addr, "GET", "/bench/browser.js", "").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/javascript; charset=utf-8"),
        "{head}"
    );
    assert!(body.contains("new EventSource(") && body.contains("new WebSocket("));

    let (status, _, body) = request(server.http_addr, "GET", "/bench/clock", "").await;
    assert_eq!(status, 200);
    let clock: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(clock["mono_ns"].as_u64().unwrap() > 0, "{body}");
}

#[tokio::test]
async fn a_result_reaches_the_run_waiting_for_it() {
    let server = spawn(ServerConfig::default()).unwrap();
    let waiting = server.browser.expect("run-1");
    let body = report_json().to_string();
    let (status, _, _) = request(server.http_addr, "POST", "/bench/result?run=run-1", &body).await;
    assert_eq!(status, 204);
    let report: BrowserReport = waiting.await.unwrap();
    assert_eq!((report.sent, report.received), (3, 3));
    assert_eq!(report.latencies_us, [10.0, 20.0, 30.0]);
    assert_eq!(report.error, None);

    // Delivered once: the same run again is nobody's.
    let (status, _, body) = request(
        server.http_addr,
        "POST",
        "/bench/result?run=run-1",
        &report_json().to_string(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body, "no run `run-1` is waiting for a browser result\n");
}

#[tokio::test]
async fn a_malformed_result_is_400_naming_the_field() {
    let server = spawn(ServerConfig::default()).unwrap();
    let _waiting = server.browser.expect("run-2");
    let mut wrong = report_json();
    wrong["received"] = serde_json::json!("three");
    let (status, _, body) = request(
        server.http_addr,
        "POST",
        "/bench/result?run=run-2",
        &wrong.to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with("result body: field `received`: invalid type"),
        "{body}"
    );

    let mut missing = report_json();
    missing.as_object_mut().unwrap().remove("sent");
    let (status, _, body) = request(
        server.http_addr,
        "POST",
        "/bench/result?run=run-2",
        &missing.to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("missing field `sent`"), "{body}");

    let (status, _, _) = request(server.http_addr, "POST", "/bench/result", "{}").await;
    assert_eq!(status, 400, "no run id");
}

#[tokio::test]
async fn a_result_for_an_unknown_run_is_404() {
    let server = spawn(ServerConfig::default()).unwrap();
    let (status, _, body) = request(
        server.http_addr,
        "POST",
        "/bench/result?run=nobody",
        &report_json().to_string(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.contains("no run `nobody`"), "{body}");
}

#[tokio::test]
async fn the_websocket_clock_answers_every_message_with_the_monotonic_clock() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = spawn(ServerConfig::default()).unwrap();
    let url = format!("ws://{}/bench/clock/ws", server.http_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut last = 0;
    for _ in 0..3 {
        ws.send(Message::text("t")).await.unwrap();
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("no clock reading")
        };
        let reading: serde_json::Value = serde_json::from_str(&text).unwrap();
        let now = reading["mono_ns"].as_u64().unwrap();
        assert!(now > last, "{text}");
        last = now;
    }
}

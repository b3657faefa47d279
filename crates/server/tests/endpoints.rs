//! The server's endpoints over real sockets: status codes and close codes for what a client
//! can get wrong.

#![allow(missing_docs)]

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Method;
use pushbench_core::DriverError;
use pushbench_core::http::Http1Connection;
use pushbench_core::study::{decode_reply, encode_call};
use pushbench_core::{WireCounter, connect_tcp};
use pushbench_server::{ServerConfig, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn status_of(result: Result<(u16, Bytes), DriverError>) -> (u16, String) {
    match result {
        Ok((status, body)) => (status, String::from_utf8_lossy(&body).into_owned()),
        Err(DriverError::Status { status, body, .. }) => (status, body),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn rpc_and_poll_answer_client_mistakes_with_named_errors() {
    let server = spawn(ServerConfig::default()).unwrap();
    let mut http = Http1Connection::connect(&server.target(), &WireCounter::default())
        .await
        .unwrap();
    let mut ask = async |method: Method, path: &str, body: &'static [u8]| {
        status_of(
            http.exchange(method, path, Bytes::from_static(body), &[200, 202, 204])
                .await,
        )
    };

    let (status, body) = ask(Method::POST, "/rpc?session=999", b"{}").await;
    assert_eq!((status, body.as_str()), (404, "no session 999"));
    let (status, body) = ask(Method::POST, "/rpc", b"{}").await;
    assert_eq!((status, body.as_str()), (400, "missing ?session=ID"));

    let (status, body) = ask(Method::GET, "/poll", b"").await;
    assert_eq!(status, 200);
    let id = body
        .trim_start_matches(r#"{"session":""#)
        .trim_end_matches(r#""}"#)
        .to_owned();
    assert!(id.parse::<u64>().is_ok(), "{body}");

    let (status, body) = ask(Method::POST, &format!("/rpc?session={id}"), b"not json").await;
    assert_eq!(status, 400);
    assert!(body.starts_with("malformed request"), "{body}");

    let (status, _) = ask(
        Method::POST,
        &format!("/rpc?session={id}"),
        br#"{"seq":4,"blockSize":8}"#,
    )
    .await;
    assert_eq!(status, 202);
    let (status, body) = ask(Method::GET, &format!("/poll?session={id}"), b"").await;
    assert_eq!(status, 200);
    assert_eq!(decode_reply(body.as_bytes(), 8).unwrap().seq, 4);

    assert_eq!(
        ask(Method::DELETE, &format!("/poll?session={id}"), b"")
            .await
            .0,
        204
    );
    assert_eq!(
        ask(Method::GET, &format!("/poll?session={id}"), b"")
            .await
            .0,
        404
    );
    assert_eq!(ask(Method::GET, "/nowhere", b"").await.0, 404);
}

#[tokio::test]
async fn ws_answers_calls_and_closes_1007_on_a_malformed_one() {
    let server = spawn(ServerConfig::default()).unwrap();
    let url = format!("ws://{}/ws", server.http_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    ws.send(Message::text(
        String::from_utf8(encode_call(1, 16)).unwrap(),
    ))
    .await
    .unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert_eq!(decode_reply(reply.into_data().as_ref(), 16).unwrap().seq, 1);

    ws.send(Message::text("hello")).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Invalid);
            assert!(
                frame.reason.starts_with("malformed request"),
                "{}",
                frame.reason
            );
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn tcp_floor_answers_frames_and_drops_an_oversized_one() {
    let server = spawn(ServerConfig::default()).unwrap();
    let mut stream = connect_tcp(server.tcp_addr.unwrap(), None).await.unwrap();
    let call = encode_call(9, 32);
    stream
        .write_all(&(call.len() as u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&call).await.unwrap();
    let len = stream.read_u32().await.unwrap();
    let mut reply = vec![0; len as usize];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(decode_reply(&reply, 32).unwrap().seq, 9);

    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        stream.read_to_end(&mut rest).await.unwrap(),
        0,
        "connection closed, nothing sent"
    );
}

#[test]
fn binding_a_taken_address_names_it() {
    let first = spawn(ServerConfig::default()).unwrap();
    let config = ServerConfig {
        http: first.http_addr,
        ..ServerConfig::default()
    };
    let err = spawn(config).unwrap_err().to_string();
    assert!(
        err.contains(&format!("cannot bind {}", first.http_addr)),
        "{err}"
    );
}

#[tokio::test]
async fn sse_names_the_session_then_streams_replies_each_with_an_id() {
    use http_body_util::BodyExt;
    let server = spawn(ServerConfig::default()).unwrap();
    let wire = WireCounter::default();
    let mut down = Http1Connection::connect(&server.target(), &wire)
        .await
        .unwrap();
    let response = down
        .request(
            Method::GET,
            "/sse?session=new",
            Bytes::new(),
            "text/event-stream",
        )
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut text = String::new();
    let mut read_events = async |events: usize, text: &mut String| {
        while text.matches("\n\n").count() < events {
            let frame = body.frame().await.unwrap().unwrap();
            text.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
        }
    };
    read_events(1, &mut text).await;
    assert!(
        text.starts_with("id: 0\nevent: session\ndata: "),
        "{text:?}"
    );
    let session = text.trim_end().rsplit("data: ").next().unwrap().to_owned();

    let mut up = Http1Connection::connect(&server.target(), &wire)
        .await
        .unwrap();
    for seq in 0..2u64 {
        let call = Bytes::from(encode_call(seq, 8));
        up.exchange(
            Method::POST,
            &format!("/rpc?session={session}"),
            call,
            &[202],
        )
        .await
        .unwrap();
    }
    read_events(3, &mut text).await;
    assert!(text.contains("\n\nid: 1\ndata: {\"seq\":0,"), "{text:?}");
    assert!(text.contains("\n\nid: 2\ndata: {\"seq\":1,"), "{text:?}");
}

/// The parameterless `GET /sse` is a ticker a person can watch with `curl -N`; an unknown
/// `session` value is a named 400, not a silent ticker.
#[tokio::test]
async fn parameterless_sse_streams_a_ticker_and_unknown_session_values_are_400() {
    use http_body_util::BodyExt;
    let server = spawn(ServerConfig::default()).unwrap();
    let wire = WireCounter::default();
    let mut http = Http1Connection::connect(&server.target(), &wire)
        .await
        .unwrap();
    let (status, body) = status_of(
        http.exchange(Method::GET, "/sse?session=7", Bytes::new(), &[200])
            .await,
    );
    assert_eq!(status, 400);
    assert!(body.contains("session=new"), "{body}");

    let mut down = Http1Connection::connect(&server.target(), &wire)
        .await
        .unwrap();
    let response = down
        .request(Method::GET, "/sse", Bytes::new(), "text/event-stream")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut text = String::new();
    // The first tick comes at once, the second a second later.
    while text.matches("\n\n").count() < 2 {
        let frame = body.frame().await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
    }
    assert!(
        text.starts_with("id: 0\ndata: {\"seq\":0,\"unix_ms\":"),
        "{text:?}"
    );
    assert!(text.contains("\n\nid: 1\ndata: {\"seq\":1,"), "{text:?}");
}

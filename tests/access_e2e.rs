//! A server started with a token: every real driver gets through with it, and is refused
//! with 401 without it or with a wrong one.

#![allow(clippy::unwrap_used, missing_docs)]

use pushbench_core::study::{decode_reply, encode_call};
use pushbench_core::{Driver, DriverError, Target};
use pushbench_server::{Access, ServerConfig, spawn};

fn web_drivers() -> Vec<Box<dyn Driver>> {
    vec![
        Box::new(pushbench_driver_ws::WsDriver),
        Box::new(pushbench_driver_sse::SseDriver),
        Box::new(pushbench_driver_longpoll::LongpollDriver),
    ]
}

#[tokio::test]
async fn drivers_with_the_token_call_and_without_it_get_401() {
    let server = spawn(ServerConfig {
        access: Access {
            token: Some("e2e-token".into()),
            ..Access::default()
        },
        ..ServerConfig::default()
    })
    .unwrap();
    let authorized = server.target();
    assert_eq!(authorized.token.as_deref(), Some("e2e-token"));
    for driver in web_drivers() {
        let transport = driver.transport();
        let mut session = driver.connect(&authorized).await.unwrap();
        session.send(&encode_call(3, 16)).await.unwrap();
        let reply = session.recv().await.unwrap().expect("a reply");
        assert_eq!(decode_reply(&reply, 16).unwrap().seq, 3, "{transport}");
        // Broadcast subscriptions carry it too.
        driver.subscribe(&authorized, "t").await.unwrap();

        for token in [None, Some("wrong".to_owned())] {
            let target = Target {
                token: token.clone(),
                ..server.target()
            };
            let error = match driver.connect(&target).await {
                Ok(_) => panic!("{transport} connected with token {token:?}"),
                Err(e) => e,
            };
            match &error {
                DriverError::Status { status, .. } => assert_eq!(*status, 401, "{transport}"),
                // The WebSocket client reports the refused upgrade's status in its text.
                DriverError::Handshake { reason, .. } => {
                    assert!(reason.contains("401"), "{transport}: {error}")
                }
                other => panic!("{transport}: unexpected error {other}"),
            }
        }
    }
}

#[test]
fn a_token_a_header_cannot_carry_is_a_named_error() {
    let target = Target {
        token: Some("line\nbreak".into()),
        ..Target::new("127.0.0.1:1".parse().unwrap(), None)
    };
    let error = pushbench_core::http::bearer(&target)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "protocol error: the token has characters an HTTP header cannot carry"
    );
}

/// `pushbench serve --token` as a user runs it: the printed address refuses a request without
/// the token; a malformed `--allow-origin` is refused up front.
#[test]
fn serve_takes_a_token_and_checks_allow_origin() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};

    let bad = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--allow-origin",
            "evil.example",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--allow-origin evil.example: expected an origin, scheme://host[:port]"),
        "{stderr}"
    );

    /// Stops the server even when an assertion fails first.
    struct Serve(std::process::Child);
    impl Drop for Serve {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Serve(
        Command::new(env!("CARGO_BIN_EXE_pushbench"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("PUSHBENCH_TOKEN", "from-env")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("http ").unwrap().to_owned();
    let status = |extra: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "GET /poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or("").to_owned()
    };
    assert_eq!(status(""), "HTTP/1.1 401 Unauthorized");
    assert_eq!(
        status("Authorization: Bearer from-env\r\n"),
        "HTTP/1.1 200 OK"
    );
}

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

//! The WebSocket opening handshake (RFC 6455 section 4) over a connection the driver opened:
//! the `GET` with `Sec-WebSocket-Key` (and the target's bearer token), the `101` answer parsed
//! by httparse and its `Sec-WebSocket-Accept` checked. A refusal names the status and quotes
//! the start of the server's body; a 404 is [`pushbench_core::http::status_error`]'s.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use pushbench_core::{ClientStream, DriverError, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tungstenite::handshake::client::generate_key;
use tungstenite::handshake::derive_accept_key;

/// The longest response head the driver reads before giving up on it.
const MAX_HEAD: usize = 16 * 1024;
/// Headers a response head may have.
const MAX_HEADERS: usize = 64;
/// Bytes of a refusal's body quoted in the error.
const QUOTED_BODY: usize = 200;
/// How long the driver waits for the rest of a refusal's body before quoting what it has.
const BODY_WAIT: Duration = Duration::from_secs(1);

/// Sends the upgrade request for `path` on `stream` and reads the server's answer into
/// `read`. On success `read` keeps whatever the server sent after the response head (its
/// first frames may come in the same segment).
pub(crate) async fn upgrade(
    stream: &mut ClientStream,
    read: &mut BytesMut,
    target: &Target,
    path: &str,
) -> Result<(), DriverError> {
    let url = format!("{}://{}{path}", target.ws_scheme(), target.http);
    let refused = |reason: String| DriverError::Handshake {
        what: format!("WebSocket handshake with {url}"),
        reason,
    };
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refused(format!(
            "the path {path:?} cannot go in a request line (it must start with / and have no spaces or control characters)"
        )));
    }
    let key = generate_key();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n",
        target.http
    )
    .into_bytes();
    if let Some(authorization) = pushbench_core::http::bearer(target)? {
        request.extend_from_slice(b"Authorization: ");
        request.extend_from_slice(authorization.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).await?;
    stream.flush().await?;

    let (head_len, head) = loop {
        if let Some(parsed) = parse_head(read).map_err(&refused)? {
            break parsed;
        }
        if read.len() >= MAX_HEAD {
            return Err(refused(format!(
                "the response head is longer than {MAX_HEAD} bytes"
            )));
        }
        read.reserve(4096);
        if stream.read_buf(read).await? == 0 {
            return Err(refused(
                "the server closed the connection before answering the upgrade".into(),
            ));
        }
    };
    read.advance(head_len);
    if head.status != 101 {
        let body = refusal_body(stream, read, head.content_length).await;
        if head.status == 404 {
            return Err(pushbench_core::http::status_error(
                &tungstenite::http::Method::GET,
                path,
                404,
                &body,
            ));
        }
        let mut reason = format!("HTTP error: {} {}", head.status, head.reason);
        if !body.is_empty() {
            reason.push_str(": ");
            reason.push_str(String::from_utf8_lossy(&body).trim_end());
        }
        return Err(refused(reason));
    }
    let expected = derive_accept_key(key.as_bytes());
    if !head.upgrade_websocket {
        return Err(refused(
            "the 101 response lacks `Upgrade: websocket`".into(),
        ));
    }
    if !head.connection_upgrade {
        return Err(refused(
            "the 101 response lacks `Connection: upgrade`".into(),
        ));
    }
    match head.accept {
        Some(accept) if accept == expected => {}
        Some(accept) => {
            return Err(refused(format!(
                "Sec-WebSocket-Accept is {accept:?}, expected {expected:?} for the key sent"
            )));
        }
        None => {
            return Err(refused(
                "the 101 response lacks Sec-WebSocket-Accept".into(),
            ));
        }
    }
    if let Some(extension) = head.extensions {
        return Err(refused(format!(
            "the server chose extension {extension:?}, which the driver did not offer"
        )));
    }
    if let Some(protocol) = head.protocol {
        return Err(refused(format!(
            "the server chose subprotocol {protocol:?}, which the driver did not offer"
        )));
    }
    Ok(())
}

/// What the driver needs from a response head.
#[derive(Debug, Default)]
struct Head {
    status: u16,
    reason: String,
    content_length: Option<usize>,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    accept: Option<String>,
    extensions: Option<String>,
    protocol: Option<String>,
}

/// The response head at the start of `bytes` and its length, `None` while incomplete.
fn parse_head(bytes: &[u8]) -> Result<Option<(usize, Head)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            let end = bytes.len().min(QUOTED_BODY);
            return Err(format!(
                "the server's answer is not an HTTP response ({e}): {:?}",
                String::from_utf8_lossy(&bytes[..end])
            ));
        }
    };
    let mut head = Head {
        status: response.code.unwrap_or(0),
        reason: response.reason.unwrap_or("").to_owned(),
        ..Head::default()
    };
    for header in response.headers.iter() {
        let value = String::from_utf8_lossy(header.value).trim().to_owned();
        let name = header.name;
        if name.eq_ignore_ascii_case("upgrade") {
            head.upgrade_websocket = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            head.connection_upgrade = value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            head.accept = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            head.extensions = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            head.protocol = Some(value);
        } else if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        }
    }
    Ok(Some((len, head)))
}

/// The start of a refusal's body (up to [`QUOTED_BODY`] bytes): what is already read, plus
/// what the server sends within [`BODY_WAIT`] until its `Content-Length` or EOF.
async fn refusal_body(
    stream: &mut ClientStream,
    read: &mut BytesMut,
    content_length: Option<usize>,
) -> Vec<u8> {
    let wanted = content_length.unwrap_or(QUOTED_BODY).min(QUOTED_BODY);
    let _ = tokio::time::timeout(BODY_WAIT, async {
        while read.len() < wanted {
            read.reserve(wanted - read.len());
            match stream.read_buf(read).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    read[..read.len().min(wanted)].to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_101_head_is_parsed_at_any_case_and_its_length_excludes_what_follows() {
        let bytes = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, Upgrade\r\nsec-websocket-accept: abc=\r\n\r\n\x81\x01a";
        let (len, head) = parse_head(bytes).unwrap().unwrap();
        assert_eq!(&bytes[len..], b"\x81\x01a");
        assert_eq!(head.status, 101);
        assert!(head.upgrade_websocket && head.connection_upgrade);
        assert_eq!(head.accept.as_deref(), Some("abc="));
        assert!(head.extensions.is_none() && head.protocol.is_none());
        // Every prefix of the head is incomplete, not an error.
        for end in 0..len {
            assert!(parse_head(&bytes[..end]).unwrap().is_none(), "{end}");
        }
    }

    #[test]
    fn an_answer_that_is_not_http_is_named_and_quoted() {
        let error = parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err();
        assert!(
            error.contains("not an HTTP response") && error.contains("SSH-2.0"),
            "{error}"
        );
    }
}

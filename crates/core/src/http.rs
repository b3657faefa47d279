//! Minimal HTTP client connections on hyper, shared by the SSE and long-polling drivers.
//! One [`Http1Connection`] is one TCP connection, as a browser would hold it; one
//! [`Http2Connection`] is one TCP connection carrying many streams (h2c with prior knowledge,
//! or h2 over TLS chosen by ALPN). Their bytes are counted by a [`WireCounter`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;

use crate::driver::{DriverError, Target};
use crate::tls::{ALPN_H2, ClientStream, connect_stream};
use crate::wire::WireCounter;

/// Streams one HTTP/2 connection of pushbench's server may have open at once (its
/// `SETTINGS_MAX_CONCURRENT_STREAMS`), so the most a client puts on one connection.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// A number naming one client connection of this process, so sessions can tell whether they
/// share one (HTTP/2) and a run can count the connections it opened.
pub fn next_connection_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct Http1Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    /// `Bearer TOKEN` when the target has a token.
    authorization: Option<HeaderValue>,
    driver: JoinHandle<()>,
    id: u64,
}

impl Http1Connection {
    /// Connects to the target's HTTP listener (TCP_NODELAY on; TLS when the target says so),
    /// counting bytes in `counter`.
    pub async fn connect(target: &Target, counter: &WireCounter) -> Result<Self, DriverError> {
        let addr = target.http;
        let stream = connect_stream(addr, target, counter).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| handshake_error(addr, e))?;
        // Errors of the connection surface on the request that meets them.
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Http1Connection {
            sender,
            host: addr.to_string(),
            authorization: bearer(target)?,
            driver,
            id: next_connection_id(),
        })
    }

    /// This connection's [`next_connection_id`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends a request accepting `accept`; returns the response head with its streaming body.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        accept: &str,
    ) -> Result<Response<Incoming>, DriverError> {
        self.request_with(method, path, body, accept, &[]).await
    }

    /// Like [`request`](Self::request), with extra headers (e.g. `Last-Event-ID`).
    pub async fn request_with(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        accept: &str,
        headers: &[(&'static str, String)],
    ) -> Result<Response<Incoming>, DriverError> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(http::header::HOST, &self.host)
            .header(http::header::ACCEPT, accept);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        if !body.is_empty() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(authorization) = &self.authorization {
            builder = builder.header(http::header::AUTHORIZATION, authorization);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| DriverError::Protocol(format!("cannot build {method} {path}: {e}")))?;
        self.sender
            .ready()
            .await
            .map_err(|e| exchange_error(&method, path, e))?;
        self.sender
            .send_request(request)
            .await
            .map_err(|e| exchange_error(&method, path, e))
    }

    /// Sends a request, reads the whole response, and checks its status is `expected`.
    /// Returns `(status, body)`; a status outside `expected` is a [`DriverError::Status`].
    pub async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        expected: &[u16],
    ) -> Result<(u16, Bytes), DriverError> {
        let response = self.request(method.clone(), path, body, "*/*").await?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| exchange_error(&method, path, e))?
            .to_bytes();
        if !expected.contains(&status) {
            return Err(status_error(&method, path, status, &body));
        }
        Ok((status, body))
    }
}

impl Drop for Http1Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// One HTTP/2 connection: h2c with prior knowledge on plain TCP, h2 over TLS (the driver offers
/// only `h2` by ALPN and fails if the server does not choose it). Clones share the connection;
/// each [`request`](Self::request) is a new stream on it. The connection closes when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct Http2Connection {
    sender: http2::SendRequest<Full<Bytes>>,
    /// `http://ADDR` or `https://ADDR`: HTTP/2 requests carry scheme and authority.
    origin: String,
    authorization: Option<HeaderValue>,
    _driver: Arc<AbortOnDrop>,
    id: u64,
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Http2Connection {
    /// Connects to the target's HTTP listener (TCP_NODELAY on; TLS with ALPN `h2` when the
    /// target says so) and runs the HTTP/2 handshake, counting bytes in `counter`.
    pub async fn connect(target: &Target, counter: &WireCounter) -> Result<Self, DriverError> {
        let addr = target.http;
        let mut h2_target = target.clone();
        h2_target.tls = target.tls.as_ref().map(|tls| tls.for_h2());
        let stream = connect_stream(addr, &h2_target, counter).await?;
        if let ClientStream::Tls(tls) = &stream {
            let chosen = tls.get_ref().1.alpn_protocol();
            if chosen != Some(ALPN_H2) {
                return Err(DriverError::Handshake {
                    what: format!("HTTP/2 connection to {addr}"),
                    reason: format!(
                        "the server did not choose h2 by ALPN (it chose {})",
                        chosen.map_or("nothing".into(), |p| String::from_utf8_lossy(p)
                            .into_owned())
                    ),
                });
            }
        }
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| DriverError::Handshake {
                what: format!("HTTP/2 connection to {addr}"),
                reason: e.to_string(),
            })?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Http2Connection {
            sender,
            origin: format!("{}://{addr}", target.http_scheme()),
            authorization: bearer(target)?,
            _driver: Arc::new(AbortOnDrop(driver)),
            id: next_connection_id(),
        })
    }

    /// This connection's [`next_connection_id`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Opens a stream: `GET path` accepting `accept`; returns the response head with its
    /// streaming body.
    pub async fn get(&self, path: &str, accept: &str) -> Result<Response<Incoming>, DriverError> {
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(format!("{}{path}", self.origin))
            .header(http::header::ACCEPT, accept);
        if let Some(authorization) = &self.authorization {
            builder = builder.header(http::header::AUTHORIZATION, authorization);
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| DriverError::Protocol(format!("cannot build GET {path}: {e}")))?;
        let mut sender = self.sender.clone();
        sender
            .ready()
            .await
            .map_err(|e| exchange_error(&Method::GET, path, e))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| exchange_error(&Method::GET, path, e))
    }
}

/// The upstream half of SSE and long polling, as SignalR does it: every message is a
/// `POST /rpc?session=ID` on one keep-alive connection, answered 202.
#[derive(Debug)]
pub struct RpcUpstream {
    connection: Http1Connection,
    path: String,
}

impl RpcUpstream {
    /// Sends the messages of `session` over `connection`.
    pub fn new(connection: Http1Connection, session: &str) -> Self {
        RpcUpstream {
            connection,
            path: format!("/rpc?session={session}"),
        }
    }

    /// Posts one message and waits for its 202.
    pub async fn send(&mut self, message: &[u8]) -> Result<(), DriverError> {
        self.connection
            .exchange(
                Method::POST,
                &self.path,
                Bytes::copy_from_slice(message),
                &[202],
            )
            .await?;
        Ok(())
    }

    /// The connection, for other requests of the session.
    pub fn connection(&mut self) -> &mut Http1Connection {
        &mut self.connection
    }
}

/// The `Authorization` header value for the target's token, if it has one.
pub fn bearer(target: &Target) -> Result<Option<HeaderValue>, DriverError> {
    let Some(token) = &target.token else {
        return Ok(None);
    };
    let mut value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
        DriverError::Protocol("the token has characters an HTTP header cannot carry".into())
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

fn handshake_error(addr: SocketAddr, e: hyper::Error) -> DriverError {
    DriverError::Handshake {
        what: format!("HTTP/1.1 connection to {addr}"),
        reason: e.to_string(),
    }
}

fn exchange_error(method: &Method, path: &str, e: hyper::Error) -> DriverError {
    DriverError::Handshake {
        what: format!("{method} {path}"),
        reason: e.to_string(),
    }
}

/// Builds the error for an unexpected HTTP status, quoting the start of the body.
/// A `404` from a control endpoint (`/broadcast`, `/stall`, `/feed/*`) is a
/// [`DriverError::NotImplemented`]: the target lacks the endpoint, which the other endpoints'
/// 404s (an unknown session) do not mean.
pub fn status_error(method: &Method, path: &str, status: u16, body: &[u8]) -> DriverError {
    let endpoint = path.split('?').next().unwrap_or(path);
    let control = ["/broadcast", "/stall"].contains(&endpoint) || endpoint.starts_with("/feed/");
    if status == 404 && control {
        return DriverError::NotImplemented {
            method: static_method(method),
            endpoint: endpoint.to_owned(),
            path: path.to_owned(),
        };
    }
    let end = body.len().min(200);
    DriverError::Status {
        method: static_method(method),
        path: path.to_owned(),
        status,
        body: String::from_utf8_lossy(&body[..end]).into_owned(),
    }
}

fn static_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "HTTP",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_404_names_a_missing_control_endpoint_but_not_an_unknown_session() {
        for (method, path) in [
            (Method::POST, "/broadcast"),
            (Method::POST, "/stall?ms=5"),
            (Method::GET, "/feed/sse?stream=a&n=5"),
        ] {
            let e = status_error(&method, path, 404, b"Cannot POST");
            let endpoint = path.split('?').next().unwrap();
            assert!(
                matches!(&e, DriverError::NotImplemented { endpoint: ep, .. } if ep == endpoint),
                "{e:?}"
            );
            assert!(
                e.to_string()
                    .contains(&format!("does not implement {method} {endpoint} (HTTP 404")),
                "{e}"
            );
        }
        let e = status_error(&Method::GET, "/poll?session=x", 404, b"unknown session");
        assert!(
            matches!(e, DriverError::Status { status: 404, .. }),
            "{e:?}"
        );
        let e = status_error(&Method::POST, "/broadcast", 400, b"bad topic");
        assert!(
            matches!(e, DriverError::Status { status: 400, .. }),
            "{e:?}"
        );
    }
}

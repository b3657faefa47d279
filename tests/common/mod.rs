//! Test doubles shared by the end-to-end tests: drivers that break messages on purpose, and a
//! misbehaving server.

#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use pushbench_core::study::encode_call;
use pushbench_core::{Driver, DriverError, Session, StudyHub, Target, Transport, WireCounts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a [`Fault`] driver does to the server's messages.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Swallows the message with this index (0-based).
    Drop(u64),
    /// Delivers the message with this index twice.
    Duplicate(u64),
}

/// Wraps a real driver and breaks one downstream message.
pub struct FaultyDriver {
    pub inner: Arc<dyn Driver>,
    pub fault: Fault,
}

struct FaultySession {
    inner: Box<dyn Session>,
    fault: Fault,
    seen: u64,
    pending: Option<Bytes>,
}

impl Driver for FaultyDriver {
    fn transport(&self) -> Transport {
        self.inner.transport()
    }

    fn connect<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move { Ok(self.wrap(self.inner.connect(target).await?)) })
    }

    fn subscribe<'a>(
        &'a self,
        target: &'a Target,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move { Ok(self.wrap(self.inner.subscribe(target, topic).await?)) })
    }
}

impl FaultyDriver {
    fn wrap(&self, inner: Box<dyn Session>) -> Box<dyn Session> {
        Box::new(FaultySession {
            inner,
            fault: self.fault,
            seen: 0,
            pending: None,
        })
    }
}

impl Session for FaultySession {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), DriverError>> {
        self.inner.send(message)
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, DriverError>> {
        Box::pin(async move {
            if let Some(copy) = self.pending.take() {
                return Ok(Some(copy));
            }
            let message = self.inner.recv().await?;
            let index = self.seen;
            self.seen += 1;
            match (self.fault, message) {
                (Fault::Drop(i), Some(_)) if i == index => self.inner.recv().await,
                (Fault::Duplicate(i), Some(m)) if i == index => {
                    self.pending = Some(m.clone());
                    Ok(Some(m))
                }
                (_, m) => Ok(m),
            }
        })
    }

    fn wire(&self) -> WireCounts {
        self.inner.wire()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), DriverError>> {
        self.inner.close()
    }
}

/// How the bad server misbehaves.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// Answers every call with a reply that is not JSON.
    Garbage,
    /// Answers the first `n` calls correctly, then closes.
    CloseAfter(u64),
}

fn replies(n: u64, block: usize) -> Vec<Vec<u8>> {
    let mut hub = StudyHub::new(7);
    (0..n)
        .map(|seq| hub.answer(&encode_call(seq, block)).expect("valid call"))
        .collect()
}

/// A server speaking every transport's framing but misbehaving; replies use block size 10.
pub async fn bad_server(how: Misbehaviour) -> Target {
    let (good, garbage) = match how {
        Misbehaviour::Garbage => (Vec::new(), true),
        Misbehaviour::CloseAfter(n) => (replies(n, 10), false),
    };
    let events: String = if garbage {
        "data: {not json\n\n".repeat(20)
    } else {
        good.iter()
            .enumerate()
            .map(|(i, r)| format!("id: {i}\ndata: {}\n\n", String::from_utf8_lossy(r)))
            .collect()
    };
    let sse_body = format!("event: session\ndata: 1\n\n{events}");
    let poll_lines: String = if garbage {
        "{not json\n".repeat(20)
    } else {
        good.iter()
            .map(|r| format!("{}\n", String::from_utf8_lossy(r)))
            .collect()
    };
    let polls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ws_good = good.clone();
    let app = Router::new()
        .route(
            "/sse",
            get(move || async move {
                ([("content-type", "text/event-stream")], sse_body).into_response()
            }),
        )
        .route(
            "/poll",
            get(move || async move {
                match polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                    0 => r#"{"session":"1"}"#.to_owned().into_response(),
                    1 => poll_lines.into_response(),
                    _ => axum::http::StatusCode::GONE.into_response(),
                }
            }),
        )
        .route("/rpc", post(|| async { axum::http::StatusCode::ACCEPTED }))
        .route(
            "/ws",
            get(move |ws: WebSocketUpgrade| async move {
                ws.on_upgrade(move |mut socket| async move {
                    let mut sent = 0usize;
                    while let Some(Ok(_call)) = socket.recv().await {
                        let reply = if garbage {
                            "{not json".to_owned()
                        } else if let Some(r) = ws_good.get(sent) {
                            String::from_utf8_lossy(r).into_owned()
                        } else {
                            return;
                        };
                        sent += 1;
                        if socket.send(Message::text(reply)).await.is_err() {
                            return;
                        }
                    }
                })
            }),
        );
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http_addr = http.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(http, app).await });

    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let tcp_addr = tcp.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let good = good.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let Ok(len) = stream.read_u32().await else {
                        return;
                    };
                    let mut call = vec![0; len as usize];
                    if stream.read_exact(&mut call).await.is_err() {
                        return;
                    }
                    let reply = if garbage {
                        b"{not json".to_vec()
                    } else if let Some(r) = good.get(i) {
                        r.clone()
                    } else {
                        return;
                    };
                    let mut frame = (reply.len() as u32).to_be_bytes().to_vec();
                    frame.extend_from_slice(&reply);
                    if stream.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Target::new(http_addr, Some(tcp_addr))
}

/// An address where nothing listens (a port just released).
pub fn closed_target() -> Target {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    drop(listener);
    Target::new(addr, Some(addr))
}

/// A `pushbench serve` process, killed when the test ends however it ends.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `pushbench serve` on free loopback ports with `extra` flags (and no token from the
/// environment); returns it with its HTTP and raw-TCP addresses.
pub fn serve_with(extra: &[&str]) -> (Server, String, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .env_remove("PUSHBENCH_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pushbench serve");
    let stdout = child.stdout.take().expect("serve's stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut line = |prefix: &str| {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("serve printed {line:?}, expected `{prefix}ADDR`"))
            .to_owned()
    };
    let http = line("http ");
    let tcp = line("tcp ");
    (Server(child), http, tcp)
}

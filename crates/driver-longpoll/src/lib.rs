//! pushbench's long-polling driver, shaped like SignalR's: `GET /poll` opens a session, one
//! connection keeps a `GET /poll?session=ID` outstanding at all times (replies arrive one per
//! line of its response), and a second connection carries each call as `POST /rpc?session=ID`.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Method;
use pushbench_core::http::{Http1Connection, RpcUpstream};
use pushbench_core::{Driver, DriverError, Session, Target, Transport, WireCounter, WireCounts};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The long-polling driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct LongpollDriver;

struct LongpollSession {
    /// The POST connection; `None` for a receive-only (subscribed) session.
    up: Option<RpcUpstream>,
    session: String,
    replies: mpsc::UnboundedReceiver<Result<Bytes, DriverError>>,
    poller: JoinHandle<()>,
    wire: WireCounter,
}

#[derive(Deserialize)]
struct Opened {
    session: String,
}

impl Driver for LongpollDriver {
    fn transport(&self) -> Transport {
        Transport::Longpoll
    }

    fn connect<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move {
            let wire = WireCounter::default();
            let (up, session) = open(target, "/poll", &wire).await?;
            let down = Http1Connection::connect(target, &wire).await?;
            let up = Some(RpcUpstream::new(up, &session));
            Ok(Box::new(LongpollSession::start(up, down, session, wire)) as Box<dyn Session>)
        })
    }

    fn subscribe<'a>(
        &'a self,
        target: &'a Target,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move {
            // One connection: it opens the session, then carries the polls.
            let wire = WireCounter::default();
            let (down, session) = open(target, &format!("/poll?topic={topic}"), &wire).await?;
            Ok(Box::new(LongpollSession::start(None, down, session, wire)) as Box<dyn Session>)
        })
    }
}

/// Opens a session with `GET path`; returns the connection and the session id.
async fn open(
    target: &Target,
    path: &str,
    wire: &WireCounter,
) -> Result<(Http1Connection, String), DriverError> {
    let mut connection = Http1Connection::connect(target, wire).await?;
    let (_, body) = connection
        .exchange(Method::GET, path, Bytes::new(), &[200])
        .await?;
    let opened: Opened = serde_json::from_slice(&body)
        .map_err(|e| DriverError::Protocol(format!("GET {path} did not name a session: {e}")))?;
    Ok((connection, opened.session))
}

impl LongpollSession {
    fn start(
        up: Option<RpcUpstream>,
        down: Http1Connection,
        session: String,
        wire: WireCounter,
    ) -> Self {
        let (tx, replies) = mpsc::unbounded_channel();
        let poll_path = format!("/poll?session={session}");
        let poller = tokio::spawn(poll_loop(down, poll_path, tx));
        LongpollSession {
            up,
            session,
            replies,
            poller,
            wire,
        }
    }
}

/// Keeps one poll outstanding; forwards each reply line, then the error that ended it, if any.
async fn poll_loop(
    mut down: Http1Connection,
    path: String,
    tx: mpsc::UnboundedSender<Result<Bytes, DriverError>>,
) {
    loop {
        match down
            .exchange(Method::GET, &path, Bytes::new(), &[200, 204, 410])
            .await
        {
            Ok((200, body)) => {
                for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    if tx.send(Ok(body.slice_ref(line))).is_err() {
                        return;
                    }
                }
            }
            Ok((204, _)) => {}
            // 410: the server ended the session; the receiver sees the end of the stream.
            Ok(_) => return,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

impl Session for LongpollSession {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            match &mut self.up {
                Some(up) => up.send(message).await,
                None => Err(DriverError::Protocol(
                    "a subscribed long-polling session only receives".into(),
                )),
            }
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, DriverError>> {
        Box::pin(async move { self.replies.recv().await.transpose() })
    }

    fn wire(&self) -> WireCounts {
        self.wire.counts()
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Result<(), DriverError>> {
        Box::pin(async move {
            self.poller.abort();
            // A subscribed session has no spare connection; the server ends it with the topic.
            if let Some(up) = &mut self.up {
                let path = format!("/poll?session={}", self.session);
                up.connection()
                    .exchange(Method::DELETE, &path, Bytes::new(), &[204])
                    .await?;
            }
            Ok(())
        })
    }
}

impl Drop for LongpollSession {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

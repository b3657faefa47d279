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
    up: RpcUpstream,
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
            let mut up = Http1Connection::connect(target.http, &wire).await?;
            let (_, body) = up
                .exchange(Method::GET, "/poll", Bytes::new(), &[200])
                .await?;
            let opened: Opened = serde_json::from_slice(&body).map_err(|e| {
                DriverError::Protocol(format!("GET /poll did not name a session: {e}"))
            })?;
            let down = Http1Connection::connect(target.http, &wire).await?;
            let (tx, replies) = mpsc::unbounded_channel();
            let poll_path = format!("/poll?session={}", opened.session);
            let poller = tokio::spawn(poll_loop(down, poll_path, tx));
            Ok(Box::new(LongpollSession {
                up: RpcUpstream::new(up, &opened.session),
                session: opened.session,
                replies,
                poller,
                wire,
            }) as Box<dyn Session>)
        })
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
        Box::pin(self.up.send(message))
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
            let path = format!("/poll?session={}", self.session);
            self.up
                .connection()
                .exchange(Method::DELETE, &path, Bytes::new(), &[204])
                .await?;
            Ok(())
        })
    }
}

impl Drop for LongpollSession {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

//! Slow and dead consumers: the one policy every transport applies, its bounds, and the
//! counters that show it at work (`GET /stats`).
//!
//! A client that stops reading must not cost the server memory or delay other clients. So:
//! - **Bounded queue.** A broadcast subscriber may fall behind its topic by at most
//!   [`SUBSCRIBER_QUEUE`] messages and [`SUBSCRIBER_QUEUE_BYTES`] bytes (the topic's messages are
//!   stored once, shared by every subscriber). One more and it is disconnected (`lagged`).
//! - **Write deadline.** A write that makes no progress (not one byte taken by the socket, or
//!   for long polling and its push bursts: no room made in the session's queue) for
//!   [`WRITE_DEADLINE`] disconnects the client (`write_timeouts`). This holds for every
//!   connection of the server, subscriber or not: an idle connection has nothing pending and is
//!   never affected.
//!
//! Nothing is skipped silently: a disconnected subscriber's client sees its stream end early
//! and counts the messages it did not get as lost. How it is told: WS close 1008 with a reason
//! (when the socket still takes it), SSE and tcp: the connection closes, long polling: the
//! session ends (`410` to a waiting poll, `404` after).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// Messages a broadcast subscriber may fall behind its topic by (the topic channel's capacity).
pub const SUBSCRIBER_QUEUE: usize = 4096;
/// Bytes of messages a broadcast subscriber may fall behind its topic by.
pub const SUBSCRIBER_QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// How long a pending write may make no progress before the client is disconnected.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);
/// Bytes an SSE subscriber's stream may hand to hyper ahead of what its socket took. hyper
/// itself would buffer up to ~400 KiB per connection for a client that stopped reading.
pub const SSE_AHEAD_BYTES: u64 = 64 * 1024;

/// Bytes one connection's socket has taken, for a response body that must not run far ahead of
/// its socket (hyper buffers whatever a body yields until its own buffer is full).
#[derive(Debug, Default)]
pub struct WriteProgress {
    written: AtomicU64,
    wrote: Notify,
}

impl WriteProgress {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        if n > 0 {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
            self.wrote.notify_waiters();
        }
    }

    /// Waits until `written()` reaches `target`. A connection that stops writing for good is
    /// dropped by its [`WriteDeadline`], and this wait with it.
    pub async fn reached(&self, target: u64) {
        loop {
            let wrote = self.wrote.notified();
            let mut wrote = std::pin::pin!(wrote);
            wrote.as_mut().enable();
            if self.written() >= target {
                return;
            }
            wrote.await;
        }
    }
}

/// Connect info of every connection of the server: its write progress
/// (`ConnectInfo<Connection>` in handlers, set per connection by the accept loop).
#[derive(Debug, Clone)]
pub struct Connection {
    /// The connection's [`WriteProgress`].
    pub progress: Arc<WriteProgress>,
}

impl<L: Listener> Connected<IncomingStream<'_, DeadlineListener<L>>> for Connection {
    fn connect_info(stream: IncomingStream<'_, DeadlineListener<L>>) -> Self {
        Connection {
            progress: stream.io().progress.clone(),
        }
    }
}

/// What the policy did, counted since the server started.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    subscribers_open: AtomicU64,
    subscribed: AtomicU64,
    lagged: AtomicU64,
    write_timeouts: AtomicU64,
}

impl ConsumerStats {
    pub(crate) fn subscriber_opened(&self) {
        self.subscribed.fetch_add(1, Ordering::Relaxed);
        self.subscribers_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn subscriber_closed(&self) {
        self.subscribers_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn lagged(&self) {
        self.lagged.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn write_timeout(&self) {
        self.write_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, with the server's resident memory.
    pub fn snapshot(&self) -> StatsSnapshot {
        let lagged = self.lagged.load(Ordering::Relaxed);
        let write_timeouts = self.write_timeouts.load(Ordering::Relaxed);
        StatsSnapshot {
            subscribers_open: self.subscribers_open.load(Ordering::Relaxed),
            subscribed: self.subscribed.load(Ordering::Relaxed),
            slow_disconnected: lagged + write_timeouts,
            lagged,
            write_timeouts,
            messages_dropped: 0,
            rss_bytes: rss_bytes(),
            policy: Policy {
                queue_messages: SUBSCRIBER_QUEUE as u64,
                queue_bytes: SUBSCRIBER_QUEUE_BYTES as u64,
                write_deadline_ms: WRITE_DEADLINE.as_millis() as u64,
            },
        }
    }
}

/// `GET /stats`: the slow-consumer counters and the server's memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Broadcast subscribers connected now.
    pub subscribers_open: u64,
    /// Broadcast subscriptions opened since the server started.
    pub subscribed: u64,
    /// Clients disconnected by the policy: `lagged + write_timeouts`.
    pub slow_disconnected: u64,
    /// Subscribers disconnected for falling behind their queue.
    pub lagged: u64,
    /// Connections (or long-polling sessions) closed because a write made no progress for
    /// [`WRITE_DEADLINE`].
    pub write_timeouts: u64,
    /// Messages skipped while the client stayed connected: always 0 under this policy.
    pub messages_dropped: u64,
    /// The server process's resident set (`VmRSS` of `/proc/self/status`), if readable.
    pub rss_bytes: Option<u64>,
    /// The bounds in force.
    pub policy: Policy,
}

/// The slow-consumer bounds, as `GET /stats` states them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// [`SUBSCRIBER_QUEUE`].
    pub queue_messages: u64,
    /// [`SUBSCRIBER_QUEUE_BYTES`].
    pub queue_bytes: u64,
    /// [`WRITE_DEADLINE`], ms.
    pub write_deadline_ms: u64,
}

/// `VmRSS` of `/proc/self/status` in bytes (Linux); `None` elsewhere.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A connection whose writes fail with `TimedOut` once one has been pending, without a byte
/// taken, for [`WRITE_DEADLINE`]. Whatever drives it (hyper, tungstenite, the tcp floor) then
/// drops the connection. Reads are untouched.
pub struct WriteDeadline<S> {
    inner: S,
    stats: Arc<ConsumerStats>,
    deadline: Duration,
    progress: Arc<WriteProgress>,
    /// Armed while a write is pending.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<S> WriteDeadline<S> {
    /// This connection's connect info (its write progress), for handlers.
    pub(crate) fn connection(&self) -> Connection {
        Connection {
            progress: self.progress.clone(),
        }
    }

    /// Wraps `inner`, counting timeouts in `stats`.
    pub fn new(inner: S, stats: Arc<ConsumerStats>) -> Self {
        Self::with_deadline(inner, stats, WRITE_DEADLINE)
    }

    fn with_deadline(inner: S, stats: Arc<ConsumerStats>, deadline: Duration) -> Self {
        WriteDeadline {
            inner,
            stats,
            deadline,
            progress: Arc::default(),
            timer: None,
            armed: false,
        }
    }

    /// What the inner write returned: progress disarms the deadline, waiting arms it (once).
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.armed = false;
            return polled;
        }
        let deadline = Instant::now() + self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        ready!(timer.as_mut().poll(cx));
        self.armed = false;
        self.stats.write_timeout();
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "slow consumer: no byte written for {} ms",
                self.deadline.as_millis()
            ),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.progress.add(n);
        }
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.progress.add(n);
        }
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A listener whose connections carry the [`WriteDeadline`].
pub struct DeadlineListener<L> {
    inner: L,
    stats: Arc<ConsumerStats>,
}

impl<L> DeadlineListener<L> {
    /// Wraps `inner`, counting timeouts in `stats`.
    pub fn new(inner: L, stats: Arc<ConsumerStats>) -> Self {
        DeadlineListener { inner, stats }
    }
}

impl<L: Listener> Listener for DeadlineListener<L> {
    type Io = WriteDeadline<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        (WriteDeadline::new(io, self.stats.clone()), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const DEADLINE: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_write_nobody_takes_fails_after_the_deadline_and_is_counted() {
        // A 1-byte pipe nobody reads: the second write can never complete.
        let (client, _server) = tokio::io::duplex(1);
        let stats = Arc::new(ConsumerStats::default());
        let mut io = WriteDeadline::with_deadline(client, stats.clone(), DEADLINE);
        io.write_all(b"x").await.unwrap();
        let started = Instant::now();
        let err = io.write_all(b"y").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() >= DEADLINE);
        assert_eq!(stats.snapshot().write_timeouts, 1);
        assert_eq!(stats.snapshot().slow_disconnected, 1);
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_taking_bytes_is_not_cut_off() {
        let (client, mut server) = tokio::io::duplex(1);
        let stats = Arc::new(ConsumerStats::default());
        let mut io = WriteDeadline::with_deadline(client, stats.clone(), DEADLINE);
        let reader = tokio::spawn(async move {
            let mut bytes = [0u8; 6];
            for byte in bytes.chunks_mut(1) {
                // A byte every 50 ms: the whole write takes longer than the deadline, but it
                // never goes a deadline without progress (a 6x margin for a busy machine).
                tokio::time::sleep(Duration::from_millis(50)).await;
                server.read_exact(byte).await.unwrap();
            }
            bytes
        });
        io.write_all(b"abcdef").await.unwrap();
        assert_eq!(&reader.await.unwrap(), b"abcdef");
        assert_eq!(stats.snapshot().write_timeouts, 0);
    }
}

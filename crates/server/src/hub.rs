//! The hub behind every HTTP endpoint: sessions for SSE and long polling, and the handlers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt};
use pushbench_core::StudyHub;
use pushbench_core::study::{Flush, PushStream, Response as HubResponse, encode_subscribed};
use serde::Deserialize;
use tokio::sync::mpsc::{self, error::SendTimeoutError, error::TrySendError};

use crate::broadcast::{Next, Subscription, Topics};
use crate::consumers::{
    Connection, ConsumerStats, SSE_AHEAD_BYTES, StatsSnapshot, WRITE_DEADLINE, WriteProgress,
};

/// Replies a session may hold before `POST /rpc` waits for the client to catch up.
const SESSION_QUEUE: usize = 1024;
/// The most bytes one batched write (an SSE frame, a poll response) gathers.
const BATCH_BYTES: usize = 64 * 1024;

/// A message on its way down a session, with the flush policy it was sent under.
#[derive(Debug)]
struct Outgoing {
    message: Bytes,
    flush: Flush,
}

/// What goes down an SSE session.
#[derive(Debug)]
enum SseOutgoing {
    /// One message: a reply.
    Message(Outgoing),
    /// A whole push burst, formatted straight into the stream's frames as they are written:
    /// no message of it is allocated or queued on its own (see [`SseSession`]).
    Burst(PushStream, Flush),
}
/// Bytes the server's WebSocket reads per call (see `ws`). tungstenite allocates and zero-fills
/// this buffer per connection, so it is resident memory for every idle WebSocket: at 32 KiB an
/// idle subscriber cost 34.5 KiB of server RSS (`pushbench perf memory`, 10 000 connections),
/// over issue 6's 32 KiB target. 8 KiB still takes any client call (small JSON, at most
/// [`WS_MAX_MESSAGE_BYTES`] over several reads) and a burst of pipelined calls per read.
pub const WS_READ_BUFFER: usize = 8 * 1024;
/// The largest WebSocket message (and frame) a client may send; a larger one is refused with
/// close code 1009. Every client message is a small JSON call.
pub const WS_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// How long a slow subscriber's close frame may take to leave.
const CLOSE_GRACE: Duration = Duration::from_millis(100);
/// How long a poll waits for a reply before answering 204.
const POLL_WAIT: Duration = Duration::from_secs(30);

/// State shared by the handlers: the open SSE and long-polling sessions, and the broadcast
/// topics.
#[derive(Clone, Default)]
pub struct AppState {
    sessions: Arc<Sessions>,
    pub(crate) topics: Arc<Topics>,
    pub(crate) browser: crate::browser::BrowserRuns,
}

impl AppState {
    /// The slow-consumer counters every connection of this state's server reports to.
    pub fn consumer_stats(&self) -> Arc<ConsumerStats> {
        self.topics.stats.clone()
    }

    /// Where results posted by browser clients (`POST /bench/result`) are delivered.
    pub fn browser_runs(&self) -> crate::browser::BrowserRuns {
        self.browser.clone()
    }
}

/// `?topic=NAME`: subscribe the connection to a broadcast topic.
#[derive(Deserialize)]
pub(crate) struct TopicQuery {
    topic: Option<String>,
}

/// Binary messages travel as base64 text on the text-only transports (SSE, long polling).
fn text_only(message: Vec<u8>, binary: bool) -> Bytes {
    if binary {
        Bytes::from(BASE64.encode(message))
    } else {
        Bytes::from(message)
    }
}

#[derive(Default)]
struct Sessions {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, SessionEntry>>,
}

enum SessionEntry {
    /// An SSE session: its stream owns the receiving end.
    Sse(mpsc::Sender<SseOutgoing>),
    /// A long-polling session, with the receiving end its polls take turns on.
    Poll {
        tx: mpsc::Sender<Outgoing>,
        rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Outgoing>>>,
    },
}

impl Sessions {
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn open_sse(&self) -> (u64, mpsc::Receiver<SseOutgoing>) {
        let (id, (tx, rx)) = (self.next_id(), mpsc::channel(SESSION_QUEUE));
        self.lock().insert(id, SessionEntry::Sse(tx));
        (id, rx)
    }

    fn open_poll(&self) -> (u64, mpsc::Sender<Outgoing>) {
        let (id, (tx, rx)) = (self.next_id(), mpsc::channel(SESSION_QUEUE));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        self.lock()
            .insert(id, SessionEntry::Poll { tx: tx.clone(), rx });
        (id, tx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SessionEntry>> {
        // A panic elsewhere cannot leave the map half-updated: recover the guard.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, id: u64) -> bool {
        self.lock().remove(&id).is_some()
    }

    /// Queues a message on session `id`. A full queue that makes no room within
    /// [`WRITE_DEADLINE`] means the client stopped taking messages: the session is closed and
    /// counted as a write timeout. False when the message was not queued.
    async fn queue<T>(
        &self,
        id: u64,
        tx: &mpsc::Sender<T>,
        outgoing: T,
        stats: &ConsumerStats,
    ) -> bool {
        // The common case, room in the queue, without arming a timer.
        let outgoing = match tx.try_send(outgoing) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(outgoing)) => outgoing,
        };
        match tx.send_timeout(outgoing, WRITE_DEADLINE).await {
            Ok(()) => true,
            Err(SendTimeoutError::Closed(_)) => false,
            Err(SendTimeoutError::Timeout(_)) => {
                stats.write_timeout();
                self.close(id);
                false
            }
        }
    }
}

/// Removes an SSE session when its stream is dropped (the client went away).
struct SessionGuard {
    sessions: Arc<Sessions>,
    id: u64,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.close(self.id);
    }
}

fn new_hub() -> StudyHub {
    static SEEDS: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    StudyHub::new(SEEDS.fetch_add(0x9E37_79B9, Ordering::Relaxed))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// `GET /ws`: every data frame is a call, answered by a frame of the same kind.
/// `GET /ws?topic=T`: a subscriber; the first frame acknowledges, then the topic's broadcasts.
pub(crate) async fn ws(
    State(state): State<AppState>,
    Query(query): Query<TopicQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // tungstenite zero-fills its whole read buffer before every read (128 KiB by default).
    let upgrade = upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(WS_MAX_MESSAGE_BYTES)
        .max_frame_size(WS_MAX_MESSAGE_BYTES);
    match query.topic {
        Some(topic) => upgrade.on_upgrade(move |socket| {
            let rx = state.topics.join(&topic);
            ws_subscriber(socket, rx, topic)
        }),
        None => upgrade.on_upgrade(|socket| ws_session(socket, new_hub())),
    }
}

fn text_frame(message: Bytes) -> Message {
    // Every server message but a binary push is ASCII JSON.
    match Utf8Bytes::try_from(message) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Text(Utf8Bytes::from_static("")),
    }
}

async fn ws_subscriber(socket: WebSocket, mut subscription: Subscription, topic: String) {
    let (mut sink, mut incoming) = socket.split();
    let ack = text_frame(Bytes::from(encode_subscribed(&topic)));
    if sink.send(ack).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            message = incoming.next() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            },
            next = subscription.next_batch() => match next {
                Next::Batch(batch) => {
                    // A write that stalls past the deadline fails here (see `consumers`).
                    for message in batch {
                        if sink.feed(text_frame(message)).await.is_err() {
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
                Next::Ended => {
                    let _ = sink.close().await;
                    return;
                }
                Next::TooSlow(reason) => {
                    // 1008: the client broke the server's policy (RFC 6455 7.4.1). The close
                    // frame queues behind the backlog, so it gets a deadline of its own.
                    let reason = Utf8Bytes::from(reason.chars().take(120).collect::<String>());
                    let close = Message::Close(Some(CloseFrame { code: 1008, reason }));
                    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close)).await;
                    return;
                }
            }
        }
    }
}

/// The close frame RFC 6455 7.4.1 prescribes for what the client sent wrong: 1009 for a
/// message over [`WS_MAX_MESSAGE_BYTES`], 1007 for a text frame that is not UTF-8, 1002 for a
/// frame that breaks the protocol (unmasked, reserved bits, unknown opcode, ...). `None` when
/// the connection itself is gone.
fn close_for(error: axum::Error) -> Option<CloseFrame> {
    use tokio_tungstenite::tungstenite::Error;
    let inner = error.into_inner();
    let (code, reason) = match inner.downcast_ref::<Error>()? {
        Error::Capacity(e) => (1009, format!("{e} (limit {WS_MAX_MESSAGE_BYTES} bytes)")),
        Error::Utf8(e) => (1007, format!("text frame is not UTF-8: {e}")),
        Error::Protocol(e) => (1002, e.to_string()),
        _ => return None,
    };
    let reason = Utf8Bytes::from(reason.chars().take(120).collect::<String>());
    Some(CloseFrame { code, reason })
}

async fn ws_session(mut socket: WebSocket, mut hub: StudyHub) {
    while let Some(received) = socket.recv().await {
        let message = match received {
            Ok(message) => message,
            Err(e) => {
                if let Some(close) = close_for(e) {
                    let _ = socket.send(Message::Close(Some(close))).await;
                }
                return;
            }
        };
        let (request, binary) = match &message {
            Message::Text(text) => (text.as_bytes(), false),
            Message::Binary(bytes) => (bytes.as_ref(), true),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let frame = |m: Vec<u8>, binary: bool| {
            if binary {
                Message::Binary(m.into())
            } else {
                text_frame(Bytes::from(m))
            }
        };
        let sent = match hub.respond(request) {
            Ok(HubResponse::Reply(reply)) => socket.send(frame(reply, binary)).await,
            Ok(HubResponse::Push(stream, flush)) => {
                // A binary push goes out in binary frames, whatever frame asked for it.
                let binary = stream.is_binary();
                ws_push(&mut socket, stream.map(|m| frame(m, binary)), flush).await
            }
            Ok(HubResponse::Subscribe(_)) => {
                let reason = Utf8Bytes::from_static("subscribe with GET /ws?topic=NAME");
                let _ = socket
                    .send(Message::Close(Some(CloseFrame { code: 1008, reason })))
                    .await;
                return;
            }
            Err(e) => {
                // 1007: the frame's data does not fit the message type (RFC 6455 7.4.1).
                let reason = Utf8Bytes::from(e.to_string().chars().take(120).collect::<String>());
                let _ = socket
                    .send(Message::Close(Some(CloseFrame { code: 1007, reason })))
                    .await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Writes a burst: a flush per frame, or frames fed and flushed every `BATCH_BYTES`.
async fn ws_push(
    socket: &mut WebSocket,
    frames: impl Iterator<Item = Message>,
    flush: Flush,
) -> Result<(), axum::Error> {
    let mut pending = 0;
    for frame in frames {
        match flush {
            Flush::PerMessage => socket.send(frame).await?,
            Flush::Batched => {
                pending += match &frame {
                    Message::Text(text) => text.len(),
                    Message::Binary(bytes) => bytes.len(),
                    _ => 0,
                };
                socket.feed(frame).await?;
                if pending >= BATCH_BYTES {
                    socket.flush().await?;
                    pending = 0;
                }
            }
        }
    }
    socket.flush().await
}

/// Formats one SSE event: `id:` and a single `data:` line (JSON has no line breaks).
pub(crate) fn write_event(out: &mut Vec<u8>, id: u64, data: &[u8]) {
    write_event_head(out, id);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// `id: ID\ndata: `, the start of [`write_event`].
fn write_event_head(out: &mut Vec<u8>, id: u64) {
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    out.extend_from_slice(b"\ndata: ");
}

/// `?session=new` opens an SSE session, `?topic=T` subscribes; neither: the ticker.
#[derive(Deserialize)]
pub(crate) struct SseQuery {
    topic: Option<String>,
    session: Option<String>,
}

/// How often the parameterless `GET /sse` ticks.
const TICK: Duration = Duration::from_secs(1);

/// `GET /sse` without parameters: a ticker, one event a second (`id: N`,
/// `data: {"seq":N,"unix_ms":T}`, the first at once), so `curl -N` or a browser's
/// `EventSource` shows the server working.
fn sse_ticker() -> Response {
    let ticks = stream::unfold(
        (tokio::time::interval(TICK), 0u64),
        |(mut interval, seq)| async move {
            interval.tick().await;
            let unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let mut event = Vec::with_capacity(64);
            let data = format!(r#"{{"seq":{seq},"unix_ms":{unix_ms}}}"#);
            write_event(&mut event, seq, data.as_bytes());
            Some((Ok::<_, Infallible>(Bytes::from(event)), (interval, seq + 1)))
        },
    );
    event_stream(Body::from_stream(ticks))
}

/// `GET /sse?session=new`: opens a session; the first event (`id: 0`, `event: session`) names
/// it, then one event per message, `id:` counting up. Per-message flushing yields to hyper
/// after each event so it writes them one by one; batched gathers what is ready into one
/// frame. `?topic=T` subscribes to a broadcast topic instead; no parameter streams a ticker.
pub(crate) async fn sse(
    State(state): State<AppState>,
    Query(query): Query<SseQuery>,
    connection: Option<Extension<ConnectInfo<Connection>>>,
) -> Response {
    if let Some(topic) = query.topic {
        let progress = connection.map(|Extension(ConnectInfo(c))| c.progress);
        return sse_subscriber(state.topics.join(&topic), &topic, progress);
    }
    match query.session.as_deref() {
        None => return sse_ticker(),
        Some("new") => {}
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "GET /sse?session={other}: only session=new is understood (it opens a session)\n"
                ),
            )
                .into_response();
        }
    }
    let (id, rx) = state.sessions.open_sse();
    let guard = SessionGuard {
        sessions: state.sessions.clone(),
        id,
    };
    let first = Bytes::from(format!("id: 0\nevent: session\ndata: {id}\n\n"));
    let session = SseSession {
        rx,
        _guard: guard,
        seq: 0,
        burst: None,
        yield_first: false,
    };
    let events = stream::unfold(session, |mut session| async move {
        let frame = session.frame().await?;
        Some((Ok::<_, Infallible>(frame), session))
    });
    event_stream(Body::from_stream(
        stream::once(async { Ok(first) }).chain(events),
    ))
}

/// The event stream of an SSE session: its queue, and the burst it is writing.
struct SseSession {
    rx: mpsc::Receiver<SseOutgoing>,
    /// Closes the session when the stream is dropped.
    _guard: SessionGuard,
    /// The `id:` of the last event written.
    seq: u64,
    burst: Option<(PushStream, Flush)>,
    /// Yield to hyper before the next frame, so per-message events are written one by one.
    yield_first: bool,
}

impl SseSession {
    /// The next frame: one event when the first event ready is flushed per message, else every
    /// event ready up to [`BATCH_BYTES`]. `None` once the session is closed.
    async fn frame(&mut self) -> Option<Bytes> {
        if std::mem::take(&mut self.yield_first) {
            tokio::task::yield_now().await;
        }
        let mut frame = Vec::new();
        if self.next_event(&mut frame, true).await? == Flush::PerMessage {
            self.yield_first = true;
            return Some(Bytes::from(frame));
        }
        frame.reserve(BATCH_BYTES);
        while frame.len() < BATCH_BYTES && self.next_event(&mut frame, false).await.is_some() {}
        Some(Bytes::from(frame))
    }

    /// Appends the next event to `frame`, from the burst being written or else the queue
    /// (waiting for it when `wait`); its flush policy, or `None` when nothing is ready (or,
    /// waiting, the session was closed).
    async fn next_event(&mut self, frame: &mut Vec<u8>, wait: bool) -> Option<Flush> {
        loop {
            if let Some((burst, flush)) = &mut self.burst {
                if burst.is_binary() {
                    // Binary messages travel as base64 text (see `text_only`).
                    if let Some(message) = burst.next() {
                        self.seq += 1;
                        write_event(frame, self.seq, &text_only(message, true));
                        return Some(*flush);
                    }
                } else {
                    let start = frame.len();
                    write_event_head(frame, self.seq + 1);
                    if burst.write_next(frame) {
                        frame.extend_from_slice(b"\n\n");
                        self.seq += 1;
                        return Some(*flush);
                    }
                    frame.truncate(start);
                }
                self.burst = None;
            }
            let outgoing = if wait {
                self.rx.recv().await?
            } else {
                self.rx.try_recv().ok()?
            };
            match outgoing {
                SseOutgoing::Message(Outgoing { message, flush }) => {
                    self.seq += 1;
                    write_event(frame, self.seq, &message);
                    return Some(flush);
                }
                SseOutgoing::Burst(burst, flush) => self.burst = Some((burst, flush)),
            }
        }
    }
}

fn event_stream(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /sse?topic=T`: the first event (`id: 0`, `event: session`, data the topic) says the
/// subscription is live; then one event per broadcast message, what is ready in one write.
fn sse_subscriber(
    subscription: Subscription,
    topic: &str,
    progress: Option<Arc<WriteProgress>>,
) -> Response {
    let first = Bytes::from(format!("id: 0\nevent: session\ndata: {topic}\n\n"));
    // Bytes handed to hyper, on the connection's count of written bytes: what runs ahead of
    // the socket is what hyper buffers, so a stalled client costs at most SSE_AHEAD_BYTES and
    // one frame here (the response head and chunk sizes make the count err on the safe side).
    let handed = progress.as_ref().map_or(0, |p| p.written()) + first.len() as u64;
    let events = stream::unfold(Some((subscription, 0u64, handed)), move |state| {
        let progress = progress.clone();
        async move {
            let (mut subscription, mut seq, mut handed) = state?;
            if let Some(progress) = &progress {
                progress
                    .reached(handed.saturating_sub(SSE_AHEAD_BYTES))
                    .await;
            }
            let batch = match subscription.next_batch().await {
                Next::Batch(batch) => batch,
                Next::Ended => return None,
                // An error, not the end: hyper drops the connection instead of closing the
                // body cleanly, so the client cannot take it for the topic's end.
                Next::TooSlow(reason) => {
                    return Some((Err(std::io::Error::other(reason)), None));
                }
            };
            let mut frame = Vec::with_capacity(batch.iter().map(|m| m.len() + 32).sum());
            for message in batch {
                seq += 1;
                write_event(&mut frame, seq, &message);
            }
            handed += frame.len() as u64;
            Some((Ok(Bytes::from(frame)), Some((subscription, seq, handed))))
        }
    });
    event_stream(Body::from_stream(
        stream::once(async { Ok::<_, std::io::Error>(first) }).chain(events),
    ))
}

#[derive(Deserialize)]
pub(crate) struct SessionQuery {
    session: Option<u64>,
    topic: Option<String>,
}

/// `GET /poll`: opens a session, or waits for replies on one.
pub(crate) async fn poll(
    State(state): State<AppState>,
    Query(query): Query<SessionQuery>,
) -> Response {
    let Some(id) = query.session else {
        let (id, tx) = state.sessions.open_poll();
        if let Some(topic) = &query.topic {
            let mut subscription = state.topics.join(topic);
            let (sessions, stats) = (state.sessions.clone(), state.topics.stats.clone());
            // The topic's messages go down the session like replies; polls take them in batches.
            // The session's queue is the subscriber's socket here: the write deadline applies
            // to making room in it, which only the client's next poll does.
            tokio::spawn(async move {
                loop {
                    let batch = match subscription.next_batch().await {
                        Next::Batch(batch) => batch,
                        Next::Ended => return,
                        Next::TooSlow(_) => {
                            sessions.close(id);
                            return;
                        }
                    };
                    for message in batch {
                        let flush = Flush::Batched;
                        let outgoing = Outgoing { message, flush };
                        if !sessions.queue(id, &tx, outgoing, &stats).await {
                            return;
                        }
                    }
                }
            });
        }
        return (
            [("content-type", "application/json")],
            format!(r#"{{"session":"{id}"}}"#),
        )
            .into_response();
    };
    let rx = match state.sessions.lock().get(&id) {
        Some(SessionEntry::Poll { rx, .. }) => Some(rx.clone()),
        _ => None,
    };
    let Some(rx) = rx else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no long-polling session {id}"),
        );
    };
    let mut rx = rx.lock().await;
    let first = match tokio::time::timeout(POLL_WAIT, rx.recv()).await {
        Err(_) => return StatusCode::NO_CONTENT.into_response(),
        Ok(None) => return error(StatusCode::GONE, format!("session {id} closed")),
        Ok(Some(first)) => first,
    };
    let mut body = first.message.to_vec();
    if first.flush == Flush::Batched {
        while body.len() < BATCH_BYTES {
            let Ok(more) = rx.try_recv() else { break };
            body.push(b'\n');
            body.extend_from_slice(&more.message);
        }
    }
    ([("content-type", "application/x-ndjson")], body).into_response()
}

/// `GET /stats`: the slow-consumer counters and the server's resident memory, as JSON.
pub(crate) async fn stats(State(state): State<AppState>) -> Response {
    let snapshot: StatsSnapshot = state.topics.stats.snapshot();
    match serde_json::to_string(&snapshot) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("stats: {e}")),
    }
}

/// `DELETE /poll?session=ID`: ends a long-polling session.
pub(crate) async fn poll_close(
    State(state): State<AppState>,
    Query(query): Query<SessionQuery>,
) -> Response {
    match query.session {
        Some(id) if state.sessions.close(id) => StatusCode::NO_CONTENT.into_response(),
        Some(id) => error(StatusCode::NOT_FOUND, format!("no session {id}")),
        None => error(StatusCode::BAD_REQUEST, "missing ?session=ID"),
    }
}

/// `POST /rpc?session=ID`: the upstream call of SSE and long polling; the reply goes down the
/// session.
pub(crate) async fn rpc(
    State(state): State<AppState>,
    Query(query): Query<SessionQuery>,
    body: Bytes,
) -> Response {
    let Some(id) = query.session else {
        return error(StatusCode::BAD_REQUEST, "missing ?session=ID");
    };
    let session = match state.sessions.lock().get(&id) {
        Some(SessionEntry::Sse(tx)) => Ok(tx.clone()),
        Some(SessionEntry::Poll { tx, .. }) => Err(tx.clone()),
        None => return error(StatusCode::NOT_FOUND, format!("no session {id}")),
    };
    let (sessions, stats) = (state.sessions.clone(), state.topics.stats.clone());
    match new_hub().respond(&body) {
        Ok(HubResponse::Reply(reply)) => {
            let reply = Outgoing {
                message: Bytes::from(reply),
                flush: Flush::PerMessage,
            };
            let sent = match session {
                Ok(tx) => tx.send(SseOutgoing::Message(reply)).await.is_ok(),
                Err(tx) => tx.send(reply).await.is_ok(),
            };
            if sent {
                StatusCode::ACCEPTED.into_response()
            } else {
                error(StatusCode::GONE, format!("session {id} closed"))
            }
        }
        // The whole burst goes to the SSE stream, which formats it as it writes.
        Ok(HubResponse::Push(stream, flush)) => match session {
            Ok(tx) => {
                let burst = SseOutgoing::Burst(stream, flush);
                if sessions.queue(id, &tx, burst, &stats).await {
                    StatusCode::ACCEPTED.into_response()
                } else {
                    error(StatusCode::GONE, format!("session {id} closed"))
                }
            }
            Err(tx) => {
                // The burst goes down the session while this answers at once, as a call would.
                let binary = stream.is_binary();
                tokio::spawn(async move {
                    for message in stream {
                        let message = text_only(message, binary);
                        if !sessions
                            .queue(id, &tx, Outgoing { message, flush }, &stats)
                            .await
                        {
                            return;
                        }
                    }
                });
                StatusCode::ACCEPTED.into_response()
            }
        },
        Ok(HubResponse::Subscribe(_)) => error(
            StatusCode::BAD_REQUEST,
            "subscribe with GET /sse?topic=NAME or GET /poll?topic=NAME",
        ),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushbench_core::study::{PushRequest, decode_binary, decode_reply, encode_push};

    fn burst(n: u64, flush: Flush, binary: bool) -> SseOutgoing {
        let request = encode_push(&PushRequest {
            n,
            payload: 64,
            flush,
            binary,
        });
        match new_hub().respond(&request) {
            Ok(HubResponse::Push(stream, flush)) => SseOutgoing::Burst(stream, flush),
            other => panic!("not a burst: {other:?}"),
        }
    }

    fn reply(text: &'static str) -> SseOutgoing {
        SseOutgoing::Message(Outgoing {
            message: Bytes::from_static(text.as_bytes()),
            flush: Flush::PerMessage,
        })
    }

    /// A session with `queued` in its queue, then closed: its stream ends once they are written.
    async fn session(queued: Vec<SseOutgoing>) -> SseSession {
        let sessions = Arc::new(Sessions::default());
        let (id, rx) = sessions.open_sse();
        let Some(SessionEntry::Sse(tx)) = sessions.lock().remove(&id) else {
            panic!("no SSE session {id}");
        };
        for outgoing in queued {
            tx.send(outgoing).await.unwrap();
        }
        SseSession {
            rx,
            _guard: SessionGuard { sessions, id },
            seq: 0,
            burst: None,
            yield_first: false,
        }
    }

    /// The events of `frame` as (id, data).
    fn events(frame: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let text = std::str::from_utf8(frame).unwrap();
        assert!(
            text.ends_with("\n\n"),
            "a frame ends inside an event: {text:?}"
        );
        text.trim_end()
            .split("\n\n")
            .map(|event| {
                let (id, data) = event.split_once("\ndata: ").unwrap();
                let id = id.strip_prefix("id: ").unwrap().parse().unwrap();
                (id, data.as_bytes().to_vec())
            })
            .collect()
    }

    #[tokio::test]
    async fn a_batched_burst_is_written_in_frames_of_at_most_batch_bytes_ids_in_order() {
        let queued = vec![
            reply("first"),
            burst(5000, Flush::Batched, false),
            reply("after"),
        ];
        let mut session = session(queued).await;
        let mut frames = Vec::new();
        while let Some(frame) = session.frame().await {
            frames.push(frame);
        }
        // The reply goes alone (per message), the burst in full frames, the reply after it.
        assert_eq!(events(&frames[0]), vec![(1, b"first".to_vec())]);
        let all: Vec<_> = frames.iter().flat_map(|f| events(f)).collect();
        assert_eq!(all.len(), 5002);
        for (i, (id, _)) in all.iter().enumerate() {
            assert_eq!(*id, i as u64 + 1);
        }
        for (i, (_, data)) in all[1..5001].iter().enumerate() {
            let meta = decode_reply(data, 64).unwrap();
            assert_eq!(meta.seq, i as u64);
        }
        assert_eq!(all[5001].1, b"after");
        let burst_frames = &frames[1..];
        assert!(burst_frames.len() >= 6, "{} frames", burst_frames.len());
        for frame in burst_frames {
            // At most one event past the bound, and nothing split.
            assert!(frame.len() < BATCH_BYTES + 200, "{} bytes", frame.len());
        }
        assert!(burst_frames[0].len() >= BATCH_BYTES);
    }

    #[tokio::test]
    async fn a_per_message_burst_writes_one_event_per_frame() {
        let mut session = session(vec![burst(50, Flush::PerMessage, false)]).await;
        let mut frames = Vec::new();
        while let Some(frame) = session.frame().await {
            frames.push(events(&frame));
        }
        assert_eq!(frames.len(), 50);
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame.len(), 1);
            assert_eq!(frame[0].0, i as u64 + 1);
            assert_eq!(decode_reply(&frame[0].1, 64).unwrap().seq, i as u64);
        }
    }

    #[tokio::test]
    async fn a_binary_burst_goes_as_base64_events() {
        let mut session = session(vec![burst(3, Flush::Batched, true)]).await;
        let frame = session.frame().await.unwrap();
        let all = events(&frame);
        assert_eq!(all.len(), 3);
        for (i, (_, data)) in all.iter().enumerate() {
            let bytes = BASE64.decode(data).unwrap();
            assert_eq!(decode_binary(&bytes, 64).unwrap().seq, i as u64);
        }
        assert!(session.frame().await.is_none());
    }
}

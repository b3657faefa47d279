//! The hub behind every HTTP endpoint: sessions for SSE and long polling, and the handlers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use pushbench_core::StudyHub;
use serde::Deserialize;
use tokio::sync::mpsc;

/// Replies a session may hold before `POST /rpc` waits for the client to catch up.
const SESSION_QUEUE: usize = 1024;
/// How long a poll waits for a reply before answering 204.
const POLL_WAIT: Duration = Duration::from_secs(30);

/// State shared by the handlers: the open SSE and long-polling sessions.
#[derive(Clone, Default)]
pub struct AppState {
    sessions: Arc<Sessions>,
}

#[derive(Default)]
struct Sessions {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, SessionEntry>>,
}

struct SessionEntry {
    tx: mpsc::Sender<Bytes>,
    /// The receiving end, held here for long polling (SSE streams own theirs).
    poll: Option<Arc<tokio::sync::Mutex<mpsc::Receiver<Bytes>>>>,
}

impl Sessions {
    fn open(&self, for_poll: bool) -> (u64, Option<mpsc::Receiver<Bytes>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let (poll, rx) = if for_poll {
            (Some(Arc::new(tokio::sync::Mutex::new(rx))), None)
        } else {
            (None, Some(rx))
        };
        self.lock().insert(id, SessionEntry { tx, poll });
        (id, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SessionEntry>> {
        // A panic elsewhere cannot leave the map half-updated: recover the guard.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, id: u64) -> bool {
        self.lock().remove(&id).is_some()
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
pub(crate) async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|socket| ws_session(socket, new_hub()))
}

async fn ws_session(mut socket: WebSocket, mut hub: StudyHub) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match &message {
            Message::Text(text) => hub.answer(text.as_bytes()).map(|r| {
                // Replies are ASCII JSON, so this conversion cannot fail.
                Message::Text(Utf8Bytes::from(String::from_utf8_lossy(&r).into_owned()))
            }),
            Message::Binary(bytes) => hub.answer(bytes).map(|r| Message::Binary(r.into())),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                // 1007: the frame's data does not fit the message type (RFC 6455 7.4.1).
                let reason = Utf8Bytes::from(e.to_string().chars().take(120).collect::<String>());
                let _ = socket
                    .send(Message::Close(Some(CloseFrame { code: 1007, reason })))
                    .await;
                return;
            }
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

/// `GET /sse`: opens a session; the first event names it, then one event per reply.
pub(crate) async fn sse(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (id, rx) = state.sessions.open(false);
    let guard = SessionGuard {
        sessions: state.sessions.clone(),
        id,
    };
    let first = Event::default()
        .id("0")
        .event("session")
        .data(id.to_string());
    let rx = rx.unwrap_or_else(|| mpsc::channel(1).1);
    let replies = stream::unfold((rx, guard, 0u64), |(mut rx, guard, seq)| async move {
        let reply = rx.recv().await?;
        let event = Event::default()
            .id((seq + 1).to_string())
            .data(String::from_utf8_lossy(&reply));
        Some((Ok(event), (rx, guard, seq + 1)))
    });
    Sse::new(stream::once(async { Ok(first) }).chain(replies))
}

#[derive(Deserialize)]
pub(crate) struct SessionQuery {
    session: Option<u64>,
}

/// `GET /poll`: opens a session, or waits for replies on one.
pub(crate) async fn poll(
    State(state): State<AppState>,
    Query(query): Query<SessionQuery>,
) -> Response {
    let Some(id) = query.session else {
        let (id, _) = state.sessions.open(true);
        return (
            [("content-type", "application/json")],
            format!(r#"{{"session":"{id}"}}"#),
        )
            .into_response();
    };
    let Some(rx) = state.sessions.lock().get(&id).and_then(|s| s.poll.clone()) else {
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
    let mut body = first.to_vec();
    while let Ok(more) = rx.try_recv() {
        body.push(b'\n');
        body.extend_from_slice(&more);
    }
    ([("content-type", "application/x-ndjson")], body).into_response()
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
    let Some(tx) = state.sessions.lock().get(&id).map(|s| s.tx.clone()) else {
        return error(StatusCode::NOT_FOUND, format!("no session {id}"));
    };
    let reply = match new_hub().answer(&body) {
        Ok(reply) => reply,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match tx.send(Bytes::from(reply)).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(_) => error(StatusCode::GONE, format!("session {id} closed")),
    }
}

//! The hub behind every HTTP endpoint: sessions for SSE and long polling, and the handlers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt};
use pushbench_core::StudyHub;
use pushbench_core::study::{Flush, Response as HubResponse};
use serde::Deserialize;
use tokio::sync::mpsc;

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
    tx: mpsc::Sender<Outgoing>,
    /// The receiving end, held here for long polling (SSE streams own theirs).
    poll: Option<Arc<tokio::sync::Mutex<mpsc::Receiver<Outgoing>>>>,
}

impl Sessions {
    fn open(&self, for_poll: bool) -> (u64, Option<mpsc::Receiver<Outgoing>>) {
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
        let (request, binary) = match &message {
            Message::Text(text) => (text.as_bytes(), false),
            Message::Binary(bytes) => (bytes.as_ref(), true),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let frame = |m: Vec<u8>| {
            if binary {
                Message::Binary(m.into())
            } else {
                // Replies are ASCII JSON, so this conversion loses nothing.
                Message::Text(Utf8Bytes::from(String::from_utf8_lossy(&m).into_owned()))
            }
        };
        let sent = match hub.respond(request) {
            Ok(HubResponse::Reply(reply)) => socket.send(frame(reply)).await,
            Ok(HubResponse::Push(stream, flush)) => {
                ws_push(&mut socket, stream.map(frame), flush).await
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
fn write_event(out: &mut Vec<u8>, id: u64, data: &[u8]) {
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// `GET /sse`: opens a session; the first event (`id: 0`, `event: session`) names it, then
/// one event per message, `id:` counting up. Per-message flushing yields to hyper after each
/// event so it writes them one by one; batched gathers what is ready into one frame.
pub(crate) async fn sse(State(state): State<AppState>) -> Response {
    let (id, rx) = state.sessions.open(false);
    let guard = SessionGuard {
        sessions: state.sessions.clone(),
        id,
    };
    let first = Bytes::from(format!("id: 0\nevent: session\ndata: {id}\n\n"));
    let rx = rx.unwrap_or_else(|| mpsc::channel(1).1);
    let events = stream::unfold(
        (rx, guard, 0u64, false),
        |(mut rx, guard, mut seq, yield_first)| async move {
            if yield_first {
                tokio::task::yield_now().await;
            }
            let first = rx.recv().await?;
            let mut frame = Vec::with_capacity(first.message.len() + 32);
            seq += 1;
            write_event(&mut frame, seq, &first.message);
            if first.flush == Flush::Batched {
                while frame.len() < BATCH_BYTES {
                    let Ok(next) = rx.try_recv() else { break };
                    seq += 1;
                    write_event(&mut frame, seq, &next.message);
                }
            }
            let per_message = first.flush == Flush::PerMessage;
            Some((
                Ok::<_, Infallible>(Bytes::from(frame)),
                (rx, guard, seq, per_message),
            ))
        },
    );
    let body = Body::from_stream(stream::once(async { Ok(first) }).chain(events));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
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
    match new_hub().respond(&body) {
        Ok(HubResponse::Reply(reply)) => {
            let reply = Outgoing {
                message: Bytes::from(reply),
                flush: Flush::PerMessage,
            };
            match tx.send(reply).await {
                Ok(()) => StatusCode::ACCEPTED.into_response(),
                Err(_) => error(StatusCode::GONE, format!("session {id} closed")),
            }
        }
        Ok(HubResponse::Push(stream, flush)) => {
            // The burst goes down the session while this answers at once, as a call would.
            tokio::spawn(async move {
                for message in stream {
                    if tx
                        .send(Outgoing {
                            message: Bytes::from(message),
                            flush,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            StatusCode::ACCEPTED.into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

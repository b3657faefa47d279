//! Live feeds that drop their connections: the server side of the `reconnect` scenario.
//!
//! `GET /feed/sse?<plan>` and `GET /feed/ws?<plan>[&after=SEQ]` (plan: see
//! [`FeedPlan::query`]) follow feed `stream`, created with its plan at the first connection.
//! The feed produces messages 1..=n at `rate` per second whether or not anyone listens, and
//! keeps the last [`REPLAY_CAPACITY`] for replay. Each connection starts after the client's
//! resume point (SSE `Last-Event-ID`, WS `after`), or at the live end without one, and is
//! dropped after `drop_every` messages (SSE: the response and its connection end; WS: the TCP
//! connection closes without a close frame); then, with `down_ms`, the feed refuses
//! connections for that long (SSE: the response ends at once; WS: 503), as a restarting server
//! would. When the feed is over and the client has everything, SSE
//! answers 204 (which tells an EventSource to stop) and WS sends `{"op":"end"}` and closes 1000.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt};
use pushbench_core::reconnect::{FeedPlan, REPLAY_CAPACITY};
use pushbench_core::study::{encode_broadcast, mono_ns, random_text};
use serde::Deserialize;
use tokio::sync::watch;

use crate::access::{Access, check_origin};

/// How long an ended feed is kept for late reconnections before it is forgotten.
const ENDED_FEED_TTL: Duration = Duration::from_secs(30);

/// The routes of the feeds, with their own state; `/feed/ws` checks Origin as `/ws` does.
pub(crate) fn router(access: Arc<Access>) -> Router {
    let ws = get(ws).route_layer(middleware::from_fn_with_state(access, check_origin));
    Router::new()
        .route("/feed/sse", get(sse))
        .route("/feed/ws", ws)
        .with_state(Arc::new(Feeds::default()))
}

#[derive(Default)]
struct Feeds {
    open: Mutex<HashMap<String, Arc<Feed>>>,
}

struct Feed {
    plan: FeedPlan,
    state: Mutex<FeedState>,
    /// The highest sequence number produced so far.
    produced: watch::Sender<u64>,
}

struct FeedState {
    /// Messages `first..=produced`, oldest first.
    replay: VecDeque<Bytes>,
    first: u64,
    down_until: Option<Instant>,
}

/// Where a new connection starts, or why it may not.
enum Admission {
    /// The feed is down after a drop.
    Down,
    /// The feed is over and the client has had everything.
    Over,
    /// Deliver from this sequence number.
    From(u64),
}

impl Feeds {
    /// The feed named by `plan`, started by this call if it is new.
    fn feed(self: &Arc<Self>, plan: &FeedPlan) -> Arc<Feed> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = open.get(&plan.stream) {
            return feed.clone();
        }
        let feed = Arc::new(Feed {
            plan: plan.clone(),
            state: Mutex::new(FeedState {
                replay: VecDeque::new(),
                first: 1,
                down_until: None,
            }),
            produced: watch::channel(0).0,
        });
        open.insert(plan.stream.clone(), feed.clone());
        tokio::spawn(produce(self.clone(), feed.clone()));
        feed
    }
}

/// Produces the feed's messages at its rate, then forgets the feed once clients had time to
/// finish.
async fn produce(feeds: Arc<Feeds>, feed: Arc<Feed>) {
    let plan = &feed.plan;
    let mut rng = mono_ns() | 1;
    let data = random_text(plan.payload, &mut rng);
    let period = Duration::from_nanos(1_000_000_000 / plan.rate.max(1));
    let mut ticks = tokio::time::interval(period);
    for seq in 1..=plan.n {
        ticks.tick().await;
        let message = Bytes::from(encode_broadcast(seq, mono_ns(), &data));
        {
            let mut state = feed.lock();
            state.replay.push_back(message);
            if state.replay.len() > REPLAY_CAPACITY {
                state.replay.pop_front();
                state.first += 1;
            }
        }
        feed.produced.send_replace(seq);
    }
    tokio::time::sleep(ENDED_FEED_TTL).await;
    feeds
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&plan.stream);
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(&self, after: Option<u64>) -> Admission {
        let mut state = self.lock();
        if let Some(until) = state.down_until {
            if Instant::now() < until {
                return Admission::Down;
            }
            state.down_until = None;
        }
        let produced = *self.produced.borrow();
        // A resume point the buffer no longer holds restarts at its oldest message: the gap
        // is lost, and the client counts it.
        let next = match after {
            Some(after) => (after + 1).max(state.first),
            None => produced + 1,
        };
        if next > self.plan.n {
            Admission::Over
        } else {
            Admission::From(next)
        }
    }

    /// Message `seq` with its sequence number, waiting for it to be produced; a connection
    /// that fell further behind than the replay buffer skips to its oldest message (the client
    /// counts the gap as lost). `None` once the feed is past its end.
    async fn message(&self, seq: u64, produced: &mut watch::Receiver<u64>) -> Option<(u64, Bytes)> {
        if seq > self.plan.n {
            return None;
        }
        // The sender lives as long as the feed, which this connection holds.
        let _ = produced.wait_for(|&p| p >= seq).await;
        let state = self.lock();
        let seq = seq.max(state.first);
        let message = state.replay.get((seq - state.first) as usize)?.clone();
        Some((seq, message))
    }

    /// Called when a connection is dropped after `drop_every` messages.
    fn dropped(&self) {
        if self.plan.down_ms > 0 {
            self.lock().down_until =
                Some(Instant::now() + Duration::from_millis(self.plan.down_ms));
        }
    }
}

#[derive(Deserialize)]
struct After {
    after: Option<u64>,
}

fn bad_plan(plan: &FeedPlan) -> Option<Response> {
    plan.validate()
        .err()
        .map(|e| (StatusCode::BAD_REQUEST, e).into_response())
}

/// One event of the feed: `id:` is the sequence number the client resumes after.
fn sse_event(seq: u64, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 32);
    crate::hub::write_event(&mut out, seq, data);
    Bytes::from(out)
}

/// `GET /feed/sse?<plan>`: the feed as an event stream, resumed after `Last-Event-ID`.
async fn sse(
    State(feeds): State<Arc<Feeds>>,
    Query(plan): Query<FeedPlan>,
    headers: HeaderMap,
) -> Response {
    if let Some(bad) = bad_plan(&plan) {
        return bad;
    }
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let feed = feeds.feed(&plan);
    // Every response ends its connection: a drop is the end of the response and of the
    // connection (all events written first), which an EventSource answers by reconnecting.
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONNECTION, "close"),
    ];
    let from = match feed.admit(after) {
        // 204 is how a server tells an EventSource to stop reconnecting.
        Admission::Over => return StatusCode::NO_CONTENT.into_response(),
        // Down: a connection that ends at once, as one to a restarting server would.
        Admission::Down => return (headers, Body::empty()).into_response(),
        Admission::From(seq) => seq,
    };
    let retry = Bytes::from(format!("retry: {}\n\n", plan.retry_ms));
    let produced = feed.produced.subscribe();
    let events = stream::unfold(
        (feed, produced, from, 0u64),
        |(feed, mut produced, seq, sent)| async move {
            if sent == u64::MAX {
                return None;
            }
            if sent == feed.plan.drop_every && seq <= feed.plan.n {
                // The drop: the response (and with it the connection) ends here.
                feed.dropped();
                return None;
            }
            match feed.message(seq, &mut produced).await {
                Some((seq, message)) => Some((
                    Ok::<_, Infallible>(sse_event(seq, &message)),
                    (feed, produced, seq + 1, sent + 1),
                )),
                None if seq > feed.plan.n => {
                    let end = Bytes::from_static(b"event: end\ndata: end\n\n");
                    Some((Ok(end), (feed, produced, seq, u64::MAX)))
                }
                None => None,
            }
        },
    );
    let body = stream::once(async { Ok::<_, Infallible>(retry) }).chain(events);
    (headers, Body::from_stream(body)).into_response()
}

/// `GET /feed/ws?<plan>[&after=SEQ]`: the feed as text frames, resumed after `after`.
async fn ws(
    State(feeds): State<Arc<Feeds>>,
    Query(plan): Query<FeedPlan>,
    Query(after): Query<After>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(bad) = bad_plan(&plan) {
        return bad;
    }
    let feed = feeds.feed(&plan);
    let from = match feed.admit(after.after) {
        Admission::Down => {
            return (StatusCode::SERVICE_UNAVAILABLE, "feed is down").into_response();
        }
        Admission::Over => plan.n + 1,
        Admission::From(seq) => seq,
    };
    upgrade
        .read_buffer_size(crate::hub::WS_READ_BUFFER)
        .on_upgrade(move |socket| ws_feed(socket, feed, from))
}

async fn ws_feed(mut socket: WebSocket, feed: Arc<Feed>, from: u64) {
    let mut produced = feed.produced.subscribe();
    let mut seq = from;
    let mut sent = 0;
    loop {
        if sent == feed.plan.drop_every && seq <= feed.plan.n {
            // The drop: the socket closes without a close frame.
            feed.dropped();
            return;
        }
        let Some((at, message)) = feed.message(seq, &mut produced).await else {
            break;
        };
        seq = at;
        let text = Utf8Bytes::try_from(message).unwrap_or_else(|_| Utf8Bytes::from_static(""));
        if socket.send(Message::Text(text)).await.is_err() {
            return;
        }
        seq += 1;
        sent += 1;
    }
    if seq > feed.plan.n {
        let _ = socket
            .send(Message::Text(Utf8Bytes::from_static(r#"{"op":"end"}"#)))
            .await;
        let close = CloseFrame {
            code: 1000,
            reason: Utf8Bytes::from_static("feed over"),
        };
        let _ = socket.send(Message::Close(Some(close))).await;
        let _ = socket.flush().await;
    }
}

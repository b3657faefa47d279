//! Broadcast topics: clients subscribe (`?topic=` on `/ws`, `/sse`, `/poll`, a subscribe frame
//! on the tcp floor) and `POST /broadcast` starts a paced broadcast to every subscriber.
//!
//! Every subscriber reads the topic through a [`Subscription`], which applies the slow-consumer
//! policy of [`crate::consumers`]: falling more than its queue behind disconnects it.
//!
//! The pacer is its own thread (not a task of the server runtime), so a stalled runtime cannot
//! delay the schedule: each message is stamped with its *scheduled* time, and whatever holds it
//! up afterwards (the runtime, a socket, the client) shows up as latency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pushbench_core::study::{BroadcastPlan, encode_broadcast, mono_ns, random_text};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::consumers::{ConsumerStats, SUBSCRIBER_QUEUE, SUBSCRIBER_QUEUE_BYTES};
use crate::hub::AppState;

/// The most bytes one batch of a subscription (one write) gathers.
const BATCH_BYTES: usize = 64 * 1024;
/// How long the end of a topic waits for subscribers still to take its last message.
const END_GRACE: Duration = Duration::from_secs(1);
/// The most a stall request may block the server, ms.
const MAX_STALL_MS: u64 = 10_000;

/// The open topics.
#[derive(Default)]
pub(crate) struct Topics {
    open: Mutex<HashMap<String, Arc<Topic>>>,
    /// The slow-consumer counters, shared with every connection of the server.
    pub(crate) stats: Arc<ConsumerStats>,
}

struct Topic {
    tx: broadcast::Sender<Bytes>,
    started: Mutex<bool>,
}

impl Topics {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Topic>>> {
        // A panic elsewhere cannot leave the map half-updated: recover the guard.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        self.lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Topic {
                    // The channel's capacity is every subscriber's queue: the messages are
                    // stored once, and a receiver more than this far behind is lagging.
                    tx: broadcast::channel(SUBSCRIBER_QUEUE).0,
                    started: Mutex::new(false),
                })
            })
            .clone()
    }

    /// Joins `name`, creating it if needed; the subscription sees every message sent from now
    /// on.
    pub(crate) fn join(&self, name: &str) -> Subscription {
        let rx = self.topic(name).tx.subscribe();
        self.stats.subscriber_opened();
        Subscription {
            rx,
            stats: self.stats.clone(),
        }
    }

    fn close(&self, name: &str) {
        self.lock().remove(name);
    }
}

/// One subscriber's place in its topic: its queue is the part of the topic it has not read yet.
pub(crate) struct Subscription {
    rx: broadcast::Receiver<Bytes>,
    stats: Arc<ConsumerStats>,
}

/// What a subscription has for its subscriber next.
pub(crate) enum Next {
    /// Messages to send in one write: the next one and those ready behind it, up to 64 KiB.
    Batch(Vec<Bytes>),
    /// The topic's broadcast is over and every message was taken.
    Ended,
    /// The subscriber fell behind by more than its queue and must be disconnected (counted
    /// already); the reason says by how much.
    TooSlow(String),
}

impl Subscription {
    /// Waits for the next messages, or says the subscriber lags past its queue.
    pub(crate) async fn next_batch(&mut self) -> Next {
        let first = match self.rx.recv().await {
            Ok(first) => first,
            Err(RecvError::Closed) => return Next::Ended,
            Err(RecvError::Lagged(missed)) => return self.too_slow(missed),
        };
        // Every message of a broadcast has the same size: the lag in bytes is the count times it.
        let behind = self.rx.len();
        if behind.saturating_mul(first.len()) > SUBSCRIBER_QUEUE_BYTES {
            return self.too_slow(0);
        }
        let mut bytes = first.len();
        let mut batch = vec![first];
        while bytes < BATCH_BYTES {
            match self.rx.try_recv() {
                Ok(next) => {
                    bytes += next.len();
                    batch.push(next);
                }
                Err(TryRecvError::Lagged(missed)) => return self.too_slow(missed),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        Next::Batch(batch)
    }

    fn too_slow(&self, missed: u64) -> Next {
        self.stats.lagged();
        let behind = self.rx.len() as u64 + missed;
        Next::TooSlow(format!(
            "slow consumer: {behind} messages behind, over the queue of {SUBSCRIBER_QUEUE} messages or {} MiB",
            SUBSCRIBER_QUEUE_BYTES >> 20
        ))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stats.subscriber_closed();
    }
}

/// `POST /broadcast` with a [`BroadcastPlan`]: 202 and the broadcast starts once its
/// subscribers have joined; 200 if that topic's broadcast was already started (several driver
/// processes each send the plan).
pub(crate) async fn start(State(state): State<AppState>, body: Bytes) -> Response {
    let plan: BroadcastPlan = match serde_json::from_slice(&body) {
        Ok(plan) => plan,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("broadcast plan: {e}")).into_response(),
    };
    if let Err(e) = plan.validate() {
        return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
    }
    let topics = state.topics.clone();
    let topic = topics.topic(&plan.topic);
    {
        let mut started = topic.started.lock().unwrap_or_else(|e| e.into_inner());
        if *started {
            return (StatusCode::OK, "already started").into_response();
        }
        *started = true;
    }
    let spawned = std::thread::Builder::new()
        .name("pushbench-server-pacer".into())
        .spawn(move || {
            pace(&topic.tx, &plan);
            topics.close(&plan.topic);
        });
    match spawned {
        Ok(_) => (StatusCode::ACCEPTED, "started").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("pacer thread: {e}"),
        )
            .into_response(),
    }
}

/// Waits for the subscribers (up to `wait_ms`), then sends message `i` at `t0 + i * interval`.
fn pace(tx: &broadcast::Sender<Bytes>, plan: &BroadcastPlan) {
    let give_up = Instant::now() + Duration::from_millis(plan.wait_ms);
    while (tx.receiver_count() as u64) < plan.subscribers && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut rng = mono_ns() | 1;
    let data = random_text(plan.payload, &mut rng);
    // A little lead so the first message is not already late when it is built.
    let t0 = mono_ns() + 1_000_000;
    let interval = plan.interval_us * 1000;
    for seq in 0..plan.n {
        if plan.stall_before == Some(seq) {
            std::thread::sleep(Duration::from_millis(plan.stall_ms));
        }
        let due = t0 + seq * interval;
        let now = mono_ns();
        if due > now {
            std::thread::sleep(Duration::from_nanos(due - now));
        }
        // No receivers left is not an error here: the clients count what they missed.
        let _ = tx.send(Bytes::from(encode_broadcast(seq, due, &data)));
    }
    // Ending the topic ends every subscription (a WebSocket close frame and teardown per
    // subscriber), work that would compete with the last message's delivery and count as its
    // latency: with 5 000 WebSocket subscribers the last message's p50 was 80 ms against 25-30
    // ms for the others. So the topic ends once every subscriber took the last message (a
    // subscriber's task writes what it takes before it looks for more), or after END_GRACE.
    let give_up = Instant::now() + END_GRACE;
    while !tx.is_empty() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[derive(Deserialize)]
pub(crate) struct StallQuery {
    ms: u64,
}

/// `POST /stall?ms=N`: blocks the server runtime's worker for N ms (at most 10 s), as a
/// garbage-collection pause or a blocking call would. Fault injection for latency tests.
pub(crate) async fn stall(Query(query): Query<StallQuery>) -> Response {
    if query.ms > MAX_STALL_MS {
        return (
            StatusCode::BAD_REQUEST,
            format!("stall of {} ms exceeds {MAX_STALL_MS} ms", query.ms),
        )
            .into_response();
    }
    // Deliberately blocking: this is the fault being injected.
    std::thread::sleep(Duration::from_millis(query.ms));
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn send(topics: &Topics, name: &str, count: usize, size: usize) {
        let tx = topics.topic(name).tx.clone();
        for _ in 0..count {
            tx.send(Bytes::from(vec![b'x'; size])).unwrap();
        }
    }

    #[tokio::test]
    async fn a_subscriber_within_its_queue_gets_batches_and_is_counted_open() {
        let topics = Topics::default();
        let mut subscription = topics.join("t");
        assert_eq!(topics.stats.snapshot().subscribers_open, 1);
        send(&topics, "t", 10, 100);
        let Next::Batch(batch) = subscription.next_batch().await else {
            panic!("expected a batch");
        };
        assert_eq!(batch.len(), 10);
        drop(subscription);
        let stats = topics.stats.snapshot();
        assert_eq!((stats.subscribers_open, stats.subscribed), (0, 1));
        assert_eq!(stats.slow_disconnected, 0);
    }

    #[tokio::test]
    async fn falling_more_than_the_queue_behind_in_messages_is_too_slow() {
        let topics = Topics::default();
        let mut subscription = topics.join("t");
        send(&topics, "t", SUBSCRIBER_QUEUE + 1, 8);
        let Next::TooSlow(reason) = subscription.next_batch().await else {
            panic!("expected too slow");
        };
        assert!(reason.contains("slow consumer"), "{reason}");
        assert_eq!(topics.stats.snapshot().lagged, 1);
    }

    #[tokio::test]
    async fn falling_more_than_the_queue_behind_in_bytes_is_too_slow() {
        let topics = Topics::default();
        let mut subscription = topics.join("t");
        // 33 messages of 1 MiB: well under the message bound, over the 32 MiB one.
        send(&topics, "t", 34, 1 << 20);
        assert!(matches!(subscription.next_batch().await, Next::TooSlow(_)));
        assert_eq!(topics.stats.snapshot().slow_disconnected, 1);
    }

    #[test]
    fn a_topic_ends_once_its_subscribers_took_the_last_message_or_after_the_grace() {
        let plan = BroadcastPlan {
            topic: "t".into(),
            subscribers: 1,
            n: 2,
            interval_us: 0,
            payload: 8,
            wait_ms: 1_000,
            stall_before: None,
            stall_ms: 0,
        };
        let pace_for = |delay: Duration| {
            let (tx, mut rx) = broadcast::channel(16);
            let pacer = std::thread::spawn({
                let plan = plan.clone();
                move || {
                    pace(&tx, &plan);
                    Instant::now()
                }
            });
            // The subscriber takes the messages `delay` after they were all sent.
            while rx.len() < 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(delay);
            let took = Instant::now();
            assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok());
            (took, pacer.join().unwrap())
        };
        let (took, ended) = pace_for(Duration::from_millis(200));
        assert!(
            ended >= took,
            "the topic ended before its subscriber took the last message"
        );
        let (took, ended) = pace_for(END_GRACE + Duration::from_millis(500));
        assert!(
            ended < took,
            "a subscriber that never takes it holds the topic past the grace"
        );
    }

    #[tokio::test]
    async fn the_end_of_a_topic_is_not_a_disconnect() {
        let topics = Topics::default();
        let mut subscription = topics.join("t");
        send(&topics, "t", 1, 8);
        topics.close("t");
        assert!(matches!(subscription.next_batch().await, Next::Batch(_)));
        assert!(matches!(subscription.next_batch().await, Next::Ended));
        assert_eq!(topics.stats.snapshot().slow_disconnected, 0);
    }
}

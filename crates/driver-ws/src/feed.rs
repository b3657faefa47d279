//! Following a `reconnect` feed over WebSocket: an application-level resume, since the
//! protocol has none. After a drop the client waits the retry delay and reconnects with
//! `after=` the last sequence number it saw (or, without resume, rejoins the live feed).

use std::time::Duration;

use futures_util::future::BoxFuture;
use pushbench_core::reconnect::{FeedEvent, FeedPlan, Follower, note_failure};
use pushbench_core::study::decode_reply;
use pushbench_core::{DriverError, Session, Target, Transport, WireCounter, WireCounts};

use crate::{READ_BUFFER, WsDriver, open_counted};

/// The frame that says the feed is over.
const END: &[u8] = br#"{"op":"end"}"#;

impl Follower for WsDriver {
    fn transport(&self) -> Transport {
        Transport::Ws
    }

    fn follow<'a>(
        &'a self,
        target: &'a Target,
        plan: &'a FeedPlan,
        resume: bool,
        on_event: &'a mut (dyn FnMut(FeedEvent) + Send),
    ) -> BoxFuture<'a, Result<WireCounts, DriverError>> {
        Box::pin(async move {
            let wire = WireCounter::default();
            let retry = Duration::from_millis(plan.retry_ms);
            let mut last: Option<u64> = None;
            let mut failures = 0;
            loop {
                let mut path = format!("/feed/ws?{}", plan.query());
                if let (true, Some(last)) = (resume, last) {
                    path.push_str(&format!("&after={last}"));
                }
                let reason = match open_counted(target, &path, wire.clone(), READ_BUFFER).await {
                    // Retrying cannot help a target without the endpoint.
                    Err(e @ DriverError::NotImplemented { .. }) => return Err(e),
                    Err(e) => e.to_string(),
                    Ok(mut session) => loop {
                        match session.recv().await {
                            Ok(Some(message)) if message.as_ref() == END => {
                                let _ = Box::new(session).close().await;
                                return Ok(wire.counts());
                            }
                            Ok(Some(message)) => {
                                failures = 0;
                                if let Ok(meta) = decode_reply(&message, plan.payload) {
                                    last = Some(meta.seq);
                                }
                                on_event(FeedEvent::Message(message));
                            }
                            Ok(None) => break "the server closed the connection".to_owned(),
                            Err(e) => break e.to_string(),
                        }
                    },
                };
                note_failure(&mut failures, &format!("GET {path}"), &reason)?;
                on_event(FeedEvent::Dropped(reason));
                tokio::time::sleep(retry).await;
            }
        })
    }
}

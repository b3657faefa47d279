//! Following a `reconnect` feed as a browser's `EventSource` does (WHATWG HTML, "Server-sent
//! events"): on a network error or the end of the response it waits the reconnection time
//! (the server's `retry:`), then reconnects sending `Last-Event-ID` (the last `id:` seen); a
//! 204 ends the feed; any other status or content type fails it for good.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Method;
use pushbench_core::http::Http1Connection;
use pushbench_core::reconnect::{FeedEvent, FeedPlan, Follower, note_failure};
use pushbench_core::{DriverError, Target, Transport, WireCounter, WireCounts};

use crate::session::{EventStream, SseDriver, expect_event_stream};

/// How one connection of the feed ended.
enum Ended {
    /// The server said the feed is over (`event: end`, or 204).
    Over,
    /// The connection broke or ended: reconnect.
    Dropped(String),
}

impl Follower for SseDriver {
    fn transport(&self) -> Transport {
        Transport::Sse
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
            let path = format!("/feed/sse?{}", plan.query());
            // An EventSource starts with a user-agent-defined delay until `retry:` says
            // otherwise; the plan's is the one the server will announce.
            let mut retry = plan.retry_ms;
            let mut last_event_id = String::new();
            let mut failures = 0;
            loop {
                let headers = if resume && !last_event_id.is_empty() {
                    vec![("last-event-id", last_event_id.clone())]
                } else {
                    Vec::new()
                };
                let ended =
                    follow_once(target, &path, &headers, &wire, on_event, &mut failures).await;
                let reason = match ended? {
                    (Ended::Over, _, _) => return Ok(wire.counts()),
                    (Ended::Dropped(reason), id, new_retry) => {
                        if let Some(id) = id {
                            last_event_id = id;
                        }
                        retry = new_retry.unwrap_or(retry);
                        reason
                    }
                };
                note_failure(&mut failures, &format!("GET {path}"), &reason)?;
                on_event(FeedEvent::Dropped(reason));
                tokio::time::sleep(Duration::from_millis(retry)).await;
            }
        })
    }
}

/// One connection: its end, the last event ID it left, and the `retry:` it announced.
async fn follow_once(
    target: &Target,
    path: &str,
    headers: &[(&'static str, String)],
    wire: &WireCounter,
    on_event: &mut (dyn FnMut(FeedEvent) + Send),
    failures: &mut u32,
) -> Result<(Ended, Option<String>, Option<u64>), DriverError> {
    let dropped = |e: DriverError| Ok((Ended::Dropped(e.to_string()), None, None));
    let mut connection = match Http1Connection::connect(target, wire).await {
        Ok(c) => c,
        Err(e) => return dropped(e),
    };
    let response = match connection
        .request_with(
            Method::GET,
            path,
            Bytes::new(),
            "text/event-stream",
            headers,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return dropped(e),
    };
    let status = response.status().as_u16();
    if status == 204 {
        return Ok((Ended::Over, None, None));
    }
    // Anything but a 200 event stream fails an EventSource for good; so does the case.
    let response = expect_event_stream(response, path).await?;
    let mut events = EventStream::new(response.into_body(), connection, format!("GET {path}"));
    let mut last_id = None;
    let ended = loop {
        match events.next().await {
            Ok(Some(event)) if event.event == "end" => break Ended::Over,
            Ok(Some(event)) => {
                *failures = 0;
                last_id = Some(event.last_event_id);
                on_event(FeedEvent::Message(Bytes::from(event.data)));
            }
            Ok(None) => break Ended::Dropped("the response ended".into()),
            Err(e) => break Ended::Dropped(e.to_string()),
        }
    };
    // The parser keeps the last event ID even across events without `id:`.
    let id = last_id.or_else(|| {
        let id = events.parser.last_event_id();
        (!id.is_empty()).then(|| id.to_owned())
    });
    Ok((ended, id, events.parser.retry()))
}

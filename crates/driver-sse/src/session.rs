//! The SSE session: `GET /sse` held open on one connection (events parsed incrementally), and
//! each call sent as `POST /rpc?session=ID` on a second, as SignalR and browsers do.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Method;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use pushbench_core::http::{Http1Connection, RpcUpstream, status_error};
use pushbench_core::{Driver, DriverError, Session, Target, Transport, WireCounter, WireCounts};

use crate::parser::{SseEvent, SseParser};

/// The Server-Sent Events driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SseDriver;

struct SseSession {
    events: EventStream,
    up: RpcUpstream,
    wire: WireCounter,
}

/// An open `text/event-stream` response and its parser.
struct EventStream {
    body: Incoming,
    parser: SseParser,
    // Keeps the stream's connection alive.
    _connection: Http1Connection,
}

impl EventStream {
    /// The next dispatched event, or `None` at the end of the stream.
    async fn next(&mut self) -> Result<Option<SseEvent>, DriverError> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Ok(Some(event));
            }
            match self.body.frame().await {
                None => {
                    self.parser.finish();
                    return Ok(self.parser.next_event());
                }
                Some(Err(e)) => {
                    return Err(DriverError::Handshake {
                        what: "GET /sse stream".into(),
                        reason: e.to_string(),
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser
                            .push(&data)
                            .map_err(|e| DriverError::Protocol(e.to_string()))?;
                    }
                }
            }
        }
    }
}

impl Driver for SseDriver {
    fn transport(&self) -> Transport {
        Transport::Sse
    }

    fn connect<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move {
            let wire = WireCounter::default();
            let mut down = Http1Connection::connect(target.http, &wire).await?;
            let response = down
                .request(Method::GET, "/sse", Bytes::new(), "text/event-stream")
                .await?;
            let status = response.status().as_u16();
            let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
            if status != 200 {
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                return Err(status_error(&Method::GET, "/sse", status, &body));
            }
            if !content_type.is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")) {
                return Err(DriverError::Protocol(
                    "GET /sse did not answer text/event-stream".into(),
                ));
            }
            let mut events = EventStream {
                body: response.into_body(),
                parser: SseParser::new(),
                _connection: down,
            };
            let session = match events.next().await? {
                Some(event) if event.event == "session" => event.data,
                Some(event) => {
                    return Err(DriverError::Protocol(format!(
                        "GET /sse: first event is `{}`, expected `session`",
                        event.event
                    )));
                }
                None => {
                    return Err(DriverError::Protocol(
                        "GET /sse ended before naming a session".into(),
                    ));
                }
            };
            let up = Http1Connection::connect(target.http, &wire).await?;
            Ok(Box::new(SseSession {
                events,
                up: RpcUpstream::new(up, &session),
                wire,
            }) as Box<dyn Session>)
        })
    }
}

impl Session for SseSession {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.up.send(message))
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, DriverError>> {
        Box::pin(async move {
            while let Some(event) = self.events.next().await? {
                if event.event == "message" {
                    return Ok(Some(Bytes::from(event.data)));
                }
            }
            Ok(None)
        })
    }

    fn wire(&self) -> WireCounts {
        self.wire.counts()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), DriverError>> {
        // Dropping both connections ends the stream; the server forgets the session.
        Box::pin(async move { Ok(()) })
    }
}

//! The SSE session: `GET /sse?session=new` held open on one connection (events parsed incrementally), and
//! each call sent as `POST /rpc?session=ID` on a second, as SignalR and browsers do.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Method;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use pushbench_core::http::{Http1Connection, RpcUpstream, status_error};
use pushbench_core::{
    Driver, DriverError, OnMessage, Session, Target, Transport, WireCounter, WireCounts,
};

use crate::h2::SseHttp2Driver;
use crate::parser::{SseEvent, SseParser};

/// The Server-Sent Events driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SseDriver;

pub(crate) struct SseSession {
    pub(crate) events: EventStream,
    /// The POST connection; `None` for a receive-only (subscribed) session.
    pub(crate) up: Option<RpcUpstream>,
    /// What this session reports as its bytes; sessions sharing an HTTP/2 connection leave
    /// the connection's bytes to the one that opened it, so sums count each byte once.
    pub(crate) wire: WireCounter,
}

/// An open `text/event-stream` response and its parser.
pub(crate) struct EventStream {
    body: Incoming,
    pub(crate) parser: SseParser,
    /// Names the stream in errors: `GET /sse?topic=T`.
    what: String,
    /// The id of the connection the stream arrives on.
    pub(crate) connection_id: u64,
    // Keeps the stream's connection (an `Http1Connection` or an `Http2Connection`) alive.
    _connection: Box<dyn Send>,
}

impl EventStream {
    /// Parses `body`, the response to `what` (e.g. `GET /sse`) on `connection`.
    pub(crate) fn new(body: Incoming, connection: Http1Connection, what: String) -> Self {
        let id = connection.id();
        Self::on(body, Box::new(connection), id, what)
    }

    /// Parses `body`, the response to `what` on the connection `connection_id`, which
    /// `connection` keeps open.
    pub(crate) fn on(
        body: Incoming,
        connection: Box<dyn Send>,
        connection_id: u64,
        what: String,
    ) -> Self {
        EventStream {
            body,
            parser: SseParser::new(),
            what,
            connection_id,
            _connection: connection,
        }
    }

    /// Reads the stream's first event, which names the session (or the topic).
    pub(crate) async fn session_name(&mut self, path: &str) -> Result<String, DriverError> {
        match self.next().await? {
            Some(event) if event.event == "session" => Ok(event.data),
            Some(event) => Err(DriverError::Protocol(format!(
                "GET {path}: first event is `{}`, expected `session`",
                event.event
            ))),
            None => Err(DriverError::Protocol(format!(
                "GET {path} ended before naming a session"
            ))),
        }
    }

    /// The next dispatched event, or `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<SseEvent>, DriverError> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Ok(Some(event));
            }
            match self.body.frame().await {
                None => {
                    // An event without its closing blank line is discarded, not dispatched.
                    self.parser.finish();
                    return Ok(self.parser.next_event());
                }
                Some(Err(e)) => {
                    return Err(DriverError::Handshake {
                        what: self.what.clone(),
                        reason: e.to_string(),
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser
                            .push(&data)
                            .map_err(|e| DriverError::Protocol(format!("{}: {e}", self.what)))?;
                    }
                }
            }
        }
    }
}

impl EventStream {
    /// Waits for the stream's next chunk, then parses it and every further chunk already
    /// received, handing each `message` event's data to `on_message` as the parser dispatches
    /// it (borrowed: no allocation per event); returns how many it handed over, `0` at the end
    /// of the stream. After `on_message` returns `false` the rest of its chunk is discarded.
    pub(crate) async fn message_batch(
        &mut self,
        on_message: &mut OnMessage<'_>,
    ) -> Result<usize, DriverError> {
        let mut handed = 0;
        let mut stopped = false;
        // Events an earlier `next` parsed but did not take.
        while let Some(event) = self.parser.next_event() {
            if event.event == "message" {
                handed += 1;
                if !on_message(event.data.as_bytes()) {
                    return Ok(handed);
                }
            }
        }
        std::future::poll_fn(|cx| {
            loop {
                let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                    Poll::Pending if handed == 0 => return Poll::Pending,
                    Poll::Pending => return Poll::Ready(Ok(handed)),
                    Poll::Ready(None) => {
                        // An event without its closing blank line is discarded.
                        self.parser.finish();
                        return Poll::Ready(Ok(handed));
                    }
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Err(DriverError::Handshake {
                            what: self.what.clone(),
                            reason: e.to_string(),
                        }));
                    }
                    Poll::Ready(Some(Ok(frame))) => frame,
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                self.parser
                    .push_each(&data, &mut |event| {
                        if event.event == "message" && !stopped {
                            handed += 1;
                            stopped = !on_message(event.data.as_bytes());
                        }
                    })
                    .map_err(|e| DriverError::Protocol(format!("{}: {e}", self.what)))?;
                if stopped {
                    return Poll::Ready(Ok(handed));
                }
            }
        })
        .await
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
            let (events, session) = open_stream(target, "/sse?session=new", &wire).await?;
            let up = Http1Connection::connect(target, &wire).await?;
            Ok(Box::new(SseSession {
                events,
                up: Some(RpcUpstream::new(up, &session)),
                wire,
            }) as Box<dyn Session>)
        })
    }

    fn subscribe<'a>(
        &'a self,
        target: &'a Target,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move {
            let wire = WireCounter::default();
            let path = format!("/sse?topic={topic}");
            let (events, _) = open_stream(target, &path, &wire).await?;
            Ok(Box::new(SseSession {
                events,
                up: None,
                wire,
            }) as Box<dyn Session>)
        })
    }

    fn http2(&self, streams_per_connection: u32) -> Option<Arc<dyn Driver>> {
        Some(Arc::new(SseHttp2Driver::new(streams_per_connection)))
    }
}

/// Checks that `response` to `GET path` is a 200 `text/event-stream` (what an EventSource
/// requires; anything else fails it for good), naming the status and quoting the body if not.
pub(crate) async fn expect_event_stream(
    response: http::Response<Incoming>,
    path: &str,
) -> Result<http::Response<Incoming>, DriverError> {
    let status = response.status().as_u16();
    let is_stream = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if status == 200 && is_stream {
        return Ok(response);
    }
    if status == 200 {
        return Err(DriverError::Protocol(format!(
            "GET {path} did not answer text/event-stream"
        )));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Err(status_error(&Method::GET, path, status, &body))
}

/// Opens `GET path` as an event stream and reads its first event, which names the session.
async fn open_stream(
    target: &Target,
    path: &str,
    wire: &WireCounter,
) -> Result<(EventStream, String), DriverError> {
    let mut down = Http1Connection::connect(target, wire).await?;
    let response = down
        .request(Method::GET, path, Bytes::new(), "text/event-stream")
        .await?;
    let response = expect_event_stream(response, path).await?;
    let mut events = EventStream::new(response.into_body(), down, format!("GET {path}"));
    let name = events.session_name(path).await?;
    Ok((events, name))
}

impl Session for SseSession {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            match &mut self.up {
                Some(up) => up.send(message).await,
                None => Err(DriverError::Protocol(
                    "a subscribed SSE session only receives".into(),
                )),
            }
        })
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

    fn recv_batch<'a>(
        &'a mut self,
        on_message: &'a mut OnMessage<'_>,
    ) -> BoxFuture<'a, Result<usize, DriverError>> {
        Box::pin(self.events.message_batch(on_message))
    }

    fn wire(&self) -> WireCounts {
        self.wire.counts()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), DriverError>> {
        // Dropping both connections ends the stream; the server forgets the session.
        Box::pin(async move { Ok(()) })
    }

    fn connection_id(&self) -> Option<u64> {
        Some(self.events.connection_id)
    }
}

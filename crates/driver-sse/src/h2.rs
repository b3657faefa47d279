//! SSE over HTTP/2: sessions share connections, up to `streams_per_connection` streams each,
//! as a browser multiplexes every `EventSource` of an origin over one HTTP/2 connection
//! (where over HTTP/1.1 it holds one connection per stream, at most 6 per origin).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use pushbench_core::http::{Http1Connection, Http2Connection, RpcUpstream};
use pushbench_core::{Driver, DriverError, Session, Target, Transport, WireCounter};
use tokio::sync::Mutex;

use crate::session::{EventStream, SseSession, expect_event_stream};

/// The SSE driver over HTTP/2 (h2c with prior knowledge, or h2 over TLS by ALPN). Its
/// sessions fill one connection with `streams_per_connection` streams before opening the
/// next; a session's calls (`POST /rpc`) go on an HTTP/1.1 connection of its own.
#[derive(Debug)]
pub struct SseHttp2Driver {
    streams_per_connection: u32,
    /// The connection new streams go to, and how many it has been given.
    filling: Mutex<Option<Filling>>,
}

#[derive(Debug)]
struct Filling {
    connection: Http2Connection,
    streams: u32,
}

impl SseHttp2Driver {
    /// A driver putting up to `streams_per_connection` (at least 1) streams on a connection.
    pub fn new(streams_per_connection: u32) -> Self {
        SseHttp2Driver {
            streams_per_connection: streams_per_connection.max(1),
            filling: Mutex::new(None),
        }
    }

    /// A connection with room for one more stream, and the wire counter the new session
    /// reports: the connection's for the stream that opened it, a zero one for the others.
    async fn reserve(
        &self,
        target: &Target,
    ) -> Result<(Http2Connection, WireCounter), DriverError> {
        let mut filling = self.filling.lock().await;
        if let Some(f) = filling
            .as_mut()
            .filter(|f| f.streams < self.streams_per_connection)
        {
            f.streams += 1;
            return Ok((f.connection.clone(), WireCounter::default()));
        }
        let wire = WireCounter::default();
        let connection = Http2Connection::connect(target, &wire).await?;
        *filling = Some(Filling {
            connection: connection.clone(),
            streams: 1,
        });
        Ok((connection, wire))
    }

    /// Opens `GET path` as a stream and reads its first event, which names the session.
    async fn open_stream(
        &self,
        target: &Target,
        path: &str,
    ) -> Result<(EventStream, String, WireCounter), DriverError> {
        let (connection, wire) = self.reserve(target).await?;
        let response = connection.get(path, "text/event-stream").await?;
        let response = expect_event_stream(response, path).await?;
        let id = connection.id();
        let mut events = EventStream::on(
            response.into_body(),
            Box::new(connection),
            id,
            format!("GET {path} (HTTP/2)"),
        );
        let name = events.session_name(path).await?;
        Ok((events, name, wire))
    }
}

impl Driver for SseHttp2Driver {
    fn transport(&self) -> Transport {
        Transport::Sse
    }

    fn connect<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        Box::pin(async move {
            let (events, session, wire) = self.open_stream(target, "/sse?session=new").await?;
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
            let path = format!("/sse?topic={topic}");
            let (events, _, wire) = self.open_stream(target, &path).await?;
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

//! pushbench's server: one axum app carrying the same hub behind every transport, plus the
//! raw-TCP floor, on its own runtime thread so that clients never share its cores' scheduler.
//!
//! | endpoint | transport | what |
//! |---|---|---|
//! | `GET /ws` | WebSocket | each text (or binary) frame is a call; the reply is a frame of the same kind |
//! | `GET /sse?session=new` | SSE | opens a session: first event `id: 0`, `event: session`, data the session id; then one event per reply, `id:` counting up from 1 |
//! | `GET /sse` | SSE | a ticker for people (`curl -N`): `data: {"seq":N,"unix_ms":T}` with `id: N` every second |
//! | `GET /poll` | long polling | without `session`: opens one and answers `{"session":"ID"}`; with `?session=ID`: waits for replies, answers them one per line (204 after 30 s of nothing) |
//! | `DELETE /poll?session=ID` | long polling | ends a session |
//! | `POST /rpc?session=ID` | SSE, long polling | the upstream call; 202, and the reply goes down the session's stream or poll |
//! | `GET /ws?topic=T`, `GET /sse?topic=T`, `GET /poll?topic=T` | all | subscribe to broadcast topic T; the first message acknowledges |
//! | `POST /broadcast` | control | a paced broadcast plan (JSON) for a topic; starts once its subscribers joined |
//! | `POST /stall?ms=N` | control | blocks the server runtime N ms (fault injection) |
//! | `GET /feed/sse?PLAN`, `GET /feed/ws?PLAN[&after=SEQ]` | SSE, WebSocket | a live feed that drops connections every K messages and resumes after `Last-Event-ID` / `after` (the `reconnect` scenario) |
//! | `GET /bench/browser.html`, `GET /bench/browser.js`, `POST /bench/result?run=ID`, `GET /bench/clock`, `GET /bench/clock/ws` | browser client | the page a headless browser runs one case in, and where it posts its result ([`BrowserRuns`]) |
//! | `GET /stats` | control | slow-consumer counters and the server's RSS, JSON ([`StatsSnapshot`]) |
//! | raw TCP | floor | 4-byte big-endian length, then the call; the reply framed the same way; `{"op":"subscribe","topic":"T"}` subscribes |
//!
//! Bad input is answered as the RFCs say (400, 431, 404, 413, 503; WebSocket close 1002, 1007,
//! 1009), slow or silent connections are closed after [`ServerConfig::header_read_timeout`],
//! and [`Access`] adds a bearer token and the `/ws` Origin check: docs/PROTOCOL.md lists every
//! limit.
//!
//! Slow and dead consumers get one policy on every transport ([`consumers`]): a broadcast
//! subscriber may fall [`SUBSCRIBER_QUEUE`] messages or [`SUBSCRIBER_QUEUE_BYTES`] bytes behind
//! its topic, and any write may go [`WRITE_DEADLINE`] without progress; past either bound the
//! client is disconnected (WS close 1008, otherwise the connection or long-polling session
//! closes) and counted in `GET /stats`. Nothing is skipped while a client stays connected, and
//! the server's memory per stalled client is bounded by its transport's write buffer.
//!
//! With [`ServerConfig::tls`] every listener speaks TLS (https, wss, the floor inside TLS)
//! through [`TlsListener`].
//!
//! ```no_run
//! let server = pushbench_server::spawn(pushbench_server::ServerConfig::default()).unwrap();
//! println!("listening on {}", server.http_addr);
//! ```

mod accept;
mod access;
mod broadcast;
pub mod browser;
pub mod consumers;
mod feed;
mod floor;
mod hub;
mod tls;

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use pushbench_core::Target;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use accept::MAX_HEADER_BYTES;
pub use access::Access;
pub use browser::{BrowserReport, BrowserRuns};
use consumers::DeadlineListener;
pub use hub::{AppState, WS_MAX_MESSAGE_BYTES};

pub use consumers::{
    ConsumerStats, SUBSCRIBER_QUEUE, SUBSCRIBER_QUEUE_BYTES, StatsSnapshot, WRITE_DEADLINE,
};
pub use tls::{ServerTls, TlsListener};

/// Where and how the server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// HTTP listener address; port 0 picks a free port.
    pub http: SocketAddr,
    /// Raw-TCP floor listener address, or `None` for no floor.
    pub tcp: Option<SocketAddr>,
    /// Worker threads of the server's runtime.
    pub threads: usize,
    /// How long a request head may take to arrive once a connection is open (or idle after
    /// a response); then the connection is closed without an answer.
    pub header_read_timeout: Duration,
    /// HTTP connections served at once (WebSockets included); more are answered 503.
    pub max_connections: usize,
    /// The bearer token and the origins allowed to open `/ws`.
    pub access: Access,
    /// Serve https/wss (and the floor over TLS) with this identity; `None` for plain TCP.
    pub tls: Option<ServerTls>,
}

impl ServerConfig {
    /// The default [`ServerConfig::header_read_timeout`]: 30 s (hyper's own default).
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default [`ServerConfig::max_connections`]: fan-out runs 10 000+ clients.
    pub const MAX_CONNECTIONS: usize = 50_000;
}

impl Default for ServerConfig {
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        ServerConfig {
            http: loopback,
            tcp: Some(loopback),
            threads: 1,
            header_read_timeout: Self::HEADER_READ_TIMEOUT,
            max_connections: Self::MAX_CONNECTIONS,
            access: Access::default(),
            tls: None,
        }
    }
}

/// The axum app: every HTTP endpoint, sharing `state`, behind the `access` rules.
pub fn app(state: AppState, access: Access) -> Router {
    let access = Arc::new(access);
    let browser = browser::router(state.browser_runs());
    let ws = get(hub::ws).route_layer(middleware::from_fn_with_state(
        access.clone(),
        access::check_origin,
    ));
    Router::new()
        .route("/ws", ws)
        .route("/sse", get(hub::sse))
        .route("/poll", get(hub::poll).delete(hub::poll_close))
        .route("/rpc", post(hub::rpc))
        .route("/broadcast", post(broadcast::start))
        .route("/stall", post(broadcast::stall))
        .route("/stats", get(hub::stats))
        .with_state(state)
        .merge(feed::router(access.clone()))
        .merge(browser)
        // Outermost, so unknown paths answer 401 too: without the token nothing is told.
        .layer(middleware::from_fn_with_state(
            access,
            access::require_token,
        ))
}

/// A server running on its own thread; dropping it shuts the server down.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound HTTP address.
    pub http_addr: SocketAddr,
    /// The bound raw-TCP floor address.
    pub tcp_addr: Option<SocketAddr>,
    /// The token every HTTP request must carry, if the server has one.
    token: Option<String>,
    /// The driver setting that trusts the server's certificate, when it serves TLS.
    pub client_tls: Option<pushbench_core::TlsClient>,
    /// Where results of browser clients (`POST /bench/result`) arrive.
    pub browser: BrowserRuns,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// The addresses drivers connect to, with the server's token.
    pub fn target(&self) -> Target {
        let target = Target {
            token: self.token.clone(),
            ..Target::new(self.http_addr, self.tcp_addr)
        };
        match &self.client_tls {
            Some(tls) => target.with_tls(tls.clone()),
            None => target,
        }
    }

    /// Stops the server and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds the listeners (errors surface here, naming the address) and starts the server on a
/// new thread with its own tokio runtime.
pub fn spawn(config: ServerConfig) -> io::Result<RunningServer> {
    let bind = |addr: SocketAddr| {
        let listener = StdTcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
        listener.set_nonblocking(true)?;
        Ok::<_, io::Error>(listener)
    };
    let client_tls = match &config.tls {
        Some(tls) => Some(tls.client().map_err(io::Error::other)?),
        None => None,
    };
    let tls = config.tls.clone();
    let http = bind(config.http)?;
    let tcp = config.tcp.map(bind).transpose()?;
    let http_addr = http.local_addr()?;
    let limits = accept::Limits {
        header_read_timeout: config.header_read_timeout,
        max_connections: config.max_connections.max(1),
    };
    let access = config.access;
    let token = access.token.clone();
    let tcp_addr = tcp.as_ref().map(StdTcpListener::local_addr).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads.max(1))
        .thread_name("pushbench-server")
        .enable_all()
        .build()?;
    let state = AppState::default();
    let browser = state.browser_runs();
    let (shutdown, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("pushbench-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let served = async {
                    let http = TcpListener::from_std(http)?;
                    let nodelay = |stream: &mut tokio::net::TcpStream| {
                        let _ = stream.set_nodelay(true);
                    };
                    if let Some(tcp) = tcp {
                        let (tcp, topics) = (TcpListener::from_std(tcp)?, state.topics.clone());
                        match &tls {
                            Some(tls) => {
                                tokio::spawn(floor::serve(TlsListener::new(tcp, tls)?, topics))
                            }
                            None => tokio::spawn(floor::serve(tcp.tap_io(nodelay), topics)),
                        };
                    }
                    // Every connection's writes carry the slow-consumer deadline; TLS is a
                    // Listener too, so both compose with the accept loop.
                    let stats = state.consumer_stats();
                    let app = app(state, access);
                    match &tls {
                        Some(tls) => {
                            let listener =
                                DeadlineListener::new(TlsListener::new(http, tls)?, stats);
                            accept::serve(listener, app, limits).await
                        }
                        None => {
                            let listener = DeadlineListener::new(http.tap_io(nodelay), stats);
                            accept::serve(listener, app, limits).await
                        }
                    }
                    Ok::<_, io::Error>(())
                };
                tokio::select! {
                    result = served => {
                        if let Err(e) = result {
                            eprintln!("pushbench server on {http_addr} stopped: {e}");
                        }
                    }
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here cancels every connection task.
        })?;
    Ok(RunningServer {
        http_addr,
        tcp_addr,
        token,
        client_tls,
        browser,
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}

//! pushbench's server: one axum app carrying the same hub behind every transport, plus the
//! raw-TCP floor, on its own runtime thread so that clients never share its cores' scheduler.
//!
//! | endpoint | transport | what |
//! |---|---|---|
//! | `GET /ws` | WebSocket | each text (or binary) frame is a call; the reply is a frame of the same kind |
//! | `GET /sse` | SSE | opens a session: first event `id: 0`, `event: session`, data the session id; then one event per reply, `id:` counting up from 1 |
//! | `GET /poll` | long polling | without `session`: opens one and answers `{"session":"ID"}`; with `?session=ID`: waits for replies, answers them one per line (204 after 30 s of nothing) |
//! | `DELETE /poll?session=ID` | long polling | ends a session |
//! | `POST /rpc?session=ID` | SSE, long polling | the upstream call; 202, and the reply goes down the session's stream or poll |
//! | `GET /ws?topic=T`, `GET /sse?topic=T`, `GET /poll?topic=T` | all | subscribe to broadcast topic T; the first message acknowledges |
//! | `POST /broadcast` | control | a paced broadcast plan (JSON) for a topic; starts once its subscribers joined |
//! | `POST /stall?ms=N` | control | blocks the server runtime N ms (fault injection) |
//! | `GET /stats` | control | slow-consumer counters and the server's RSS, JSON ([`StatsSnapshot`]) |
//! | raw TCP | floor | 4-byte big-endian length, then the call; the reply framed the same way; `{"op":"subscribe","topic":"T"}` subscribes |
//!
//! Slow and dead consumers get one policy on every transport ([`consumers`]): a broadcast
//! subscriber may fall [`SUBSCRIBER_QUEUE`] messages or [`SUBSCRIBER_QUEUE_BYTES`] bytes behind
//! its topic, and any write may go [`WRITE_DEADLINE`] without progress; past either bound the
//! client is disconnected (WS close 1008, otherwise the connection or long-polling session
//! closes) and counted in `GET /stats`. Nothing is skipped while a client stays connected, and
//! the server's memory per stalled client is bounded by its transport's write buffer.
//!
//! ```no_run
//! let server = pushbench_server::spawn(pushbench_server::ServerConfig::default()).unwrap();
//! println!("listening on {}", server.http_addr);
//! ```

mod broadcast;
pub mod consumers;
mod floor;
mod hub;

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::thread::JoinHandle;

use axum::Router;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use pushbench_core::Target;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use consumers::{
    ConsumerStats, SUBSCRIBER_QUEUE, SUBSCRIBER_QUEUE_BYTES, StatsSnapshot, WRITE_DEADLINE,
};
pub use hub::AppState;

/// Where and how the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// HTTP listener address; port 0 picks a free port.
    pub http: SocketAddr,
    /// Raw-TCP floor listener address, or `None` for no floor.
    pub tcp: Option<SocketAddr>,
    /// Worker threads of the server's runtime.
    pub threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        ServerConfig {
            http: loopback,
            tcp: Some(loopback),
            threads: 1,
        }
    }
}

/// The axum app: every HTTP endpoint, sharing `state`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(hub::ws))
        .route("/sse", get(hub::sse))
        .route("/poll", get(hub::poll).delete(hub::poll_close))
        .route("/rpc", post(hub::rpc))
        .route("/broadcast", post(broadcast::start))
        .route("/stall", post(broadcast::stall))
        .route("/stats", get(hub::stats))
        .with_state(state)
}

/// A server running on its own thread; dropping it shuts the server down.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound HTTP address.
    pub http_addr: SocketAddr,
    /// The bound raw-TCP floor address.
    pub tcp_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// The addresses drivers connect to.
    pub fn target(&self) -> Target {
        Target::new(self.http_addr, self.tcp_addr)
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
    let http = bind(config.http)?;
    let tcp = config.tcp.map(bind).transpose()?;
    let http_addr = http.local_addr()?;
    let tcp_addr = tcp.as_ref().map(StdTcpListener::local_addr).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads.max(1))
        .thread_name("pushbench-server")
        .enable_all()
        .build()?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("pushbench-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let served = async {
                    let http = TcpListener::from_std(http)?;
                    let state = AppState::default();
                    if let Some(tcp) = tcp {
                        let topics = state.topics.clone();
                        tokio::spawn(floor::serve(TcpListener::from_std(tcp)?, topics));
                    }
                    let listener = http.tap_io(|stream| {
                        let _ = stream.set_nodelay(true);
                    });
                    // Every connection's writes carry the slow-consumer deadline.
                    let listener =
                        consumers::DeadlineListener::new(listener, state.consumer_stats());
                    // Connect info carries each connection's write progress (SSE subscribers
                    // use it to stay within SSE_AHEAD_BYTES of their socket).
                    let app =
                        app(state).into_make_service_with_connect_info::<consumers::Connection>();
                    axum::serve(listener, app).await
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
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}

//! The browser client's side of the server: the page a headless browser loads to run one case
//! with its own `WebSocket`, `EventSource` and `fetch` (`GET /bench/browser.html`,
//! `GET /bench/browser.js`), the clock it reads (`GET /bench/clock`, or over a WebSocket
//! `GET /bench/clock/ws`), and the mailbox its
//! result is posted to (`POST /bench/result?run=ID`), from which the waiting runner takes it
//! ([`BrowserRuns`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// The page: loads `browser.js`, which reads the case from the page's query string.
pub const BROWSER_HTML: &str = include_str!("../browser/browser.html");
/// The client: the wire protocol of docs/PROTOCOL.md over the browser's own APIs.
pub const BROWSER_JS: &str = include_str!("../browser/browser.js");

/// What the page measured in one case, posted as JSON to `POST /bench/result?run=ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrowserReport {
    /// `navigator.userAgent`, recorded so the browser version is known.
    pub user_agent: String,
    /// Calls (study) or messages (push, latency) expected.
    pub sent: u64,
    /// Distinct expected replies or messages received.
    pub received: u64,
    /// Received again after a first copy.
    pub duplicated: u64,
    /// Received after a later sequence number.
    pub out_of_order: u64,
    /// The case's wall time on `performance.now()`, ms (study: connect included, to the
    /// last reply; push: from the request to the last message).
    pub elapsed_ms: f64,
    /// Time to open the connection(s), ms.
    pub connect_ms: f64,
    /// Sum of the reply JSON lengths (the study's "bytes loaded").
    #[serde(default)]
    pub bytes_loaded: u64,
    /// Per-message latencies, µs: study send-to-reply on the page's clock; latency: receipt
    /// minus the server's scheduled time, through the page's clock offset.
    #[serde(default)]
    pub latencies_us: Vec<f64>,
    /// Latency only: half the round trip of the clock reading the offset came from, µs: the
    /// most the offset (and so every latency) can be off by.
    #[serde(default)]
    pub clock_uncertainty_us: Option<f64>,
    /// Why the case failed or stopped early, as the page saw it.
    #[serde(default)]
    pub error: Option<String>,
}

/// Runs waiting for their browser's result, keyed by run id; cloning shares the registry.
#[derive(Debug, Clone, Default)]
pub struct BrowserRuns {
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<BrowserReport>>>>,
}

impl BrowserRuns {
    /// Registers `run` and returns where its result will arrive; a second registration of the
    /// same id replaces the first (whose receiver then sees the sender dropped).
    pub fn expect(&self, run: &str) -> oneshot::Receiver<BrowserReport> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(run.to_owned(), tx);
        rx
    }

    /// Unregisters `run` (its case ended without a result: timeout, browser gone).
    pub fn forget(&self, run: &str) {
        self.lock().remove(run);
    }

    fn deliver(&self, run: &str, report: BrowserReport) -> bool {
        match self.lock().remove(run) {
            Some(tx) => tx.send(report).is_ok(),
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<BrowserReport>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `/bench/*` routes, delivering results into `runs`.
pub(crate) fn router(runs: BrowserRuns) -> Router {
    Router::new()
        .route("/bench/browser.html", get(page))
        .route("/bench/browser.js", get(script))
        .route("/bench/clock", get(clock))
        .route("/bench/clock/ws", get(clock_ws))
        .route("/bench/result", post(result))
        .with_state(runs)
}

async fn page() -> Response {
    // Cross-origin isolation: Chromium then gives `performance.now()` 5 µs resolution instead
    // of 100 µs (everything the page loads is same-origin, so nothing is blocked).
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::HeaderName::from_static("cross-origin-opener-policy"),
                "same-origin",
            ),
            (
                header::HeaderName::from_static("cross-origin-embedder-policy"),
                "require-corp",
            ),
        ],
        BROWSER_HTML,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        BROWSER_JS,
    )
        .into_response()
}

/// `GET /bench/clock`: `{"mono_ns":N}`, the host's `CLOCK_MONOTONIC`, the clock of every `ts`.
async fn clock() -> Response {
    let body = format!(r#"{{"mono_ns":{}}}"#, pushbench_core::study::mono_ns());
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `GET /bench/clock/ws`: a WebSocket answering every message with `{"mono_ns":N}`; its round
/// trip is a fraction of a `fetch`'s in a browser, so the page's clock offset is tighter.
async fn clock_ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
            let now = format!(r#"{{"mono_ns":{}}}"#, pushbench_core::study::mono_ns());
            if socket.send(Message::Text(now.into())).await.is_err() {
                break;
            }
        }
    })
}

#[derive(Deserialize)]
struct RunQuery {
    run: String,
}

/// `POST /bench/result?run=ID`: 204 when a runner was waiting for `ID`, 404 when none is, 400
/// naming the field when the body is not a [`BrowserReport`].
async fn result(
    State(runs): State<BrowserRuns>,
    Query(query): Query<RunQuery>,
    body: Bytes,
) -> Response {
    let mut json = serde_json::Deserializer::from_slice(&body);
    let report: BrowserReport = match serde_path_to_error::deserialize(&mut json) {
        Ok(report) => report,
        Err(e) => {
            let path = e.path().to_string();
            let message = format!("result body: field `{path}`: {}\n", e.into_inner());
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    if runs.deliver(&query.run, report) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let message = format!("no run `{}` is waiting for a browser result\n", query.run);
        (StatusCode::NOT_FOUND, message).into_response()
    }
}

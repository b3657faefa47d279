//! pushbench: measures WebSockets against Server-Sent Events, long polling and a raw-TCP floor.
//!
//! This crate wires the workspace together for the CLI and the benches: it starts the
//! in-process server and the client runtime ([`Harness`]), registers every driver, and keeps a
//! run's result files up to date as cases finish ([`RunWriter`]), so an interrupted run still
//! leaves what it measured.
//!
//! ```no_run
//! use pushbench::{Harness, RunWriter};
//! use pushbench_core::StudyConfig;
//! let harness = Harness::start().unwrap();
//! let config = StudyConfig::quick();
//! let mut writer = RunWriter::create("/tmp/run".as_ref(), harness.run_config("study", &config)).unwrap();
//! let cases = harness.run_study(&config, &mut |_| {});
//! for case in cases {
//!     writer.push(case).unwrap();
//! }
//! writer.finish().unwrap();
//! ```

pub mod browser;
pub mod network;
pub mod perf;
mod plan;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pushbench_core::{DriverSet, RunEvent, StudyConfig, Target, capture_run_info};
use pushbench_driver_longpoll::LongpollDriver;
use pushbench_driver_sse::SseDriver;
use pushbench_driver_tcp::TcpDriver;
use pushbench_driver_ws::WsDriver;
use pushbench_schema::{CaseResult, PerfTarget, RunFile, SchemaError};
use pushbench_server::{RunningServer, ServerConfig, ServerTls};
use tokio::runtime::Runtime;

pub use plan::{Plan, default_driver_exe};
pub use pushbench_core as core;
pub use pushbench_report as report;
pub use pushbench_schema as schema;

/// Worker threads of the client runtime (the server has its own, see [`ServerConfig`]).
pub const CLIENT_THREADS: usize = 1;

/// Every driver this build has.
pub fn drivers() -> DriverSet {
    DriverSet::new(vec![
        Arc::new(WsDriver),
        Arc::new(SseDriver),
        Arc::new(LongpollDriver),
        Arc::new(TcpDriver),
    ])
}

/// The label of pushbench's own server in results (`params.server`).
pub const IN_PROCESS_SERVER: &str = "pushbench-axum";

/// The label of an external target when `run --target` is given no `--server-label`.
pub const EXTERNAL_SERVER: &str = "external";

/// The server under test (in-process, or an external target) and a separate runtime for the
/// clients.
pub struct Harness {
    /// The in-process server on its own runtime thread; `None` when the run measures an
    /// external target ([`Harness::external`]).
    pub server: Option<RunningServer>,
    /// The same server serving TLS (https, wss, the floor over TLS), when the run measures
    /// TLS; it runs beside the plain one so a run can compare them.
    pub tls_server: Option<RunningServer>,
    /// The external target, when there is no in-process server.
    pub external: Option<Target>,
    /// The server's label, recorded in every case as `params.server`.
    pub server_label: String,
    /// The server's configuration.
    pub server_config: ServerConfig,
    /// The client runtime; drivers run here.
    pub runtime: Runtime,
    /// The drivers.
    pub drivers: DriverSet,
    /// The pushbench executable fan-out starts as driver processes (see [`default_driver_exe`]).
    pub driver_exe: Option<PathBuf>,
}

impl Harness {
    /// Starts the server on loopback (one runtime thread) and a one-thread client runtime.
    pub fn start() -> io::Result<Harness> {
        Harness::start_with(None)
    }

    /// Starts the plain server and, with `tls`, a second one serving TLS with that identity
    /// (each on its own one-thread runtime), and a one-thread client runtime.
    pub fn start_with(tls: Option<ServerTls>) -> io::Result<Harness> {
        let server_config = ServerConfig::default();
        let server = pushbench_server::spawn(server_config.clone())?;
        let tls_server = tls
            .map(|tls| {
                pushbench_server::spawn(ServerConfig {
                    tls: Some(tls),
                    ..server_config.clone()
                })
            })
            .transpose()?;
        Ok(Harness {
            server: Some(server),
            tls_server,
            external: None,
            server_label: IN_PROCESS_SERVER.to_owned(),
            server_config,
            runtime: client_runtime()?,
            drivers: drivers(),
            driver_exe: default_driver_exe(),
        })
    }

    /// No in-process server: the drivers connect to `target`, a server in another process
    /// speaking docs/PROTOCOL.md, and every case is labelled `label`.
    pub fn external(target: Target, label: &str) -> io::Result<Harness> {
        Ok(Harness {
            server: None,
            external: Some(target),
            tls_server: None,
            server_label: label.to_owned(),
            server_config: ServerConfig::default(),
            runtime: client_runtime()?,
            drivers: drivers(),
            driver_exe: default_driver_exe(),
        })
    }

    /// Where the drivers connect.
    pub fn target(&self) -> Target {
        match (&self.server, &self.external) {
            (Some(server), _) => server.target(),
            (None, Some(target)) => target.clone(),
            (None, None) => unreachable!("a Harness has a server or an external target"),
        }
    }

    /// Labels `case` with the server it measured; against an external target, also drops the
    /// server CPU figure, which reads this process's server threads (there are none).
    pub fn label_case(&self, case: &mut CaseResult) {
        case.params.server = Some(self.server_label.clone());
        if self.server.is_none() {
            case.metrics.server_cpu_s_per_million = None;
        }
    }

    /// Where the drivers connect over TLS (trusting the run's certificate), if the harness
    /// has a TLS server.
    pub fn tls_target(&self) -> Option<Target> {
        self.tls_server.as_ref().map(RunningServer::target)
    }

    /// The `config` recorded in run.json: the scenario's own configuration under its id, the
    /// server and client runtimes, and how each transport carries messages.
    pub fn run_config(&self, scenario: &str, config: &impl serde::Serialize) -> serde_json::Value {
        let target = self.target();
        let server = match &self.server {
            Some(server) => serde_json::json!({
                "kind": "in-process axum",
                "label": self.server_label,
                "threads": self.server_config.threads,
                "http": server.http_addr.to_string(),
                "tcp": server.tcp_addr.map(|a| a.to_string()),
            }),
            None => serde_json::json!({
                "kind": "a server in another process (run --target)",
                "label": self.server_label,
                "target": format!("http://{}", target.http),
                "http": target.http.to_string(),
                "tcp": target.tcp.map(|a| a.to_string()),
            }),
        };
        let mut value = serde_json::json!({
            "scenario": scenario,
            "server": server,
            "tls": self.tls_server.as_ref().map(|tls| serde_json::json!({
                "http": tls.http_addr.to_string(),
                "tcp": tls.tcp_addr.map(|a| a.to_string()),
                "library": "rustls 0.23 (ring provider), tokio-rustls; TLS 1.3, ALPN http/1.1",
                "certificate": "self-signed ECDSA P-256 (rcgen), generated at start; clients trust exactly it",
                "session_resumption": "rustls defaults (server sends tickets; a client resumes on its next connection)",
                "wire_bytes": "counted at the TCP socket, below TLS",
            })),
            "client_threads": CLIENT_THREADS,
            "tcp_nodelay": true,
            "transports": {
                "ws": "GET /ws upgrade; each call a text frame, each reply a text frame",
                "sse": "GET /sse?session=new kept open (events with id:); each call a POST /rpc?session=ID on a second connection, 202, reply as the next event",
                "longpoll": "GET /poll?session=ID kept outstanding on one connection (replies one per line); each call a POST /rpc?session=ID on a second connection",
                "tcp": "raw TCP floor: 4-byte big-endian length prefix, then the call; the reply framed the same way",
                "subscribers": "latency, fanout and connect clients subscribe on one connection each: GET /ws?topic=T, GET /sse?topic=T, GET /poll?topic=T (then polls on the same connection), tcp {\"op\":\"subscribe\"} frame; the first server message acknowledges; POST /broadcast starts a paced broadcast stamped with scheduled send times",
            },
            "clock": "CLOCK_MONOTONIC of the host (latency across processes on one host)",
        });
        value[scenario] = serde_json::to_value(config).unwrap_or_default();
        if scenario == "all" {
            // `config` maps each scenario id to its configuration: lift them to the top level.
            if let Some(map) = value["all"].as_object().cloned() {
                for (id, config) in map {
                    value[id] = config;
                }
            }
            value.as_object_mut().map(|o| o.remove("all"));
        }
        if scenario == "study" || scenario == "all" {
            // Study replies are single messages: each is written and flushed on its own.
            value["flush"] = serde_json::json!("per_message");
        }
        value
    }

    /// Runs the study on the client runtime; `on_event` sees progress and each finished case.
    pub fn run_study(
        &self,
        config: &StudyConfig,
        on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
    ) -> Vec<CaseResult> {
        let target = self.target();
        let mut cases = self.runtime.block_on(pushbench_core::run_study(
            config,
            &self.drivers,
            &target,
            on_event,
        ));
        cases.iter_mut().for_each(|c| self.label_case(c));
        cases
    }
}

/// The clients' runtime: [`CLIENT_THREADS`] worker threads.
fn client_runtime() -> io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CLIENT_THREADS)
        .thread_name("pushbench-client")
        .enable_all()
        .build()
}

/// Keeps a run directory's `run.json` and `cases.csv` current: written when the run starts,
/// after every case (marked incomplete), and once more when it finishes.
pub struct RunWriter {
    dir: PathBuf,
    file: RunFile,
}

impl RunWriter {
    /// Captures the environment and writes an empty, incomplete run into `dir`.
    pub fn create(dir: &Path, config: serde_json::Value) -> Result<RunWriter, SchemaError> {
        let writer = RunWriter {
            dir: dir.to_path_buf(),
            file: RunFile::new(capture_run_info(config)),
        };
        writer.file.write(&writer.dir)?;
        Ok(writer)
    }

    /// Adds a case at the end and rewrites the files.
    pub fn push(&mut self, case: CaseResult) -> Result<(), SchemaError> {
        self.set(self.file.cases.len(), case)
    }

    /// Puts `case` at `index` (replacing the case there, or appending at the end) and rewrites
    /// the files.
    pub fn set(&mut self, index: usize, case: CaseResult) -> Result<(), SchemaError> {
        match self.file.cases.get_mut(index) {
            Some(slot) => *slot = case,
            None => self.file.cases.push(case),
        }
        self.file.write(&self.dir)
    }

    /// The benches' event handler for one plan: prints each group's label and writes each
    /// measured case after the cases already in the run (panicking if the files cannot be
    /// written: a bench has no one to report the error to).
    pub fn bench_events(&mut self) -> impl FnMut(RunEvent<'_>) + Send + '_ {
        let offset = self.file.cases.len();
        move |event| match event {
            RunEvent::GroupStarted { label, .. } => println!("pushbench: {label}"),
            RunEvent::CaseMeasured { index, case } => {
                self.set(offset + index, case.clone())
                    .expect("write results");
            }
        }
    }

    /// Replaces the run's performance targets (`cargo bench --bench perf`) and rewrites the
    /// files.
    pub fn set_targets(&mut self, targets: Vec<PerfTarget>) -> Result<(), SchemaError> {
        self.file.targets = targets;
        self.file.write(&self.dir)
    }

    /// The run so far.
    pub fn file(&self) -> &RunFile {
        &self.file
    }

    /// Stamps the end time, marks the run complete and writes it.
    pub fn finish(mut self) -> Result<RunFile, SchemaError> {
        self.file.run.finished_at = pushbench_core::env::rfc3339_now();
        self.file.run.complete = true;
        self.file.write(&self.dir)?;
        Ok(self.file)
    }

    /// Stamps the end time and writes the run as incomplete (interrupted or failed).
    pub fn abandon(mut self) -> Result<RunFile, SchemaError> {
        self.file.run.finished_at = pushbench_core::env::rfc3339_now();
        self.file.run.complete = false;
        self.file.write(&self.dir)?;
        Ok(self.file)
    }
}

/// What tells a case from its neighbours in a table: the flush policy, the client count, or the
/// variant; ` tls` when it ran over TLS, ` browser` when a browser was the client.
fn variant_label(case: &CaseResult) -> String {
    let mut label = plain_variant_label(case);
    if case.params.tls == Some(true) {
        label.push_str(" tls");
    }
    if case.params.client.as_deref() == Some(browser::BROWSER_CLIENT) {
        label.push_str(" browser");
    }
    label
}

fn plain_variant_label(case: &CaseResult) -> String {
    if case.scenario == "payload" {
        return format!(
            "{} B {}",
            case.params.payload_bytes.unwrap_or(0),
            case.variant
        );
    }
    if case.scenario == "connect" && case.variant == "first-message" {
        return case.variant.clone();
    }
    if case.scenario == "reconnect" {
        return format!("{} down={}", case.variant, case.params.down_ms.unwrap_or(0));
    }
    match (&case.params.flush, case.params.clients) {
        (Some(flush), _) => flush.clone(),
        (None, Some(clients)) if case.params.http.is_some() => {
            let http = case.params.http.as_deref().unwrap_or("");
            match case.metrics.connections {
                Some(n) => format!("{clients} cl h{http} {n}c"),
                None => format!("{clients} clients h{http}"),
            }
        }
        (None, Some(clients)) => format!("{clients} clients"),
        (None, None) => case.variant.clone(),
    }
}

/// A plain-text table of the cases, for the terminal.
pub fn summary_table(file: &RunFile) -> String {
    let mut out = format!(
        "{:<9} {:<18} {:>6} {:>11} {:>11} {:>9} {:>9} {:>10}  {}\n",
        "transport",
        "variant",
        "n",
        "elapsed ms",
        "per s",
        "p50 us",
        "p99 us",
        "recv/sent",
        "status"
    );
    let num =
        |v: Option<f64>, prec: usize| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.prec$}"));
    for case in &file.cases {
        let (m, i) = (&case.metrics, &case.integrity);
        let status = match (&case.error, i.is_sound()) {
            (Some(e), _) => format!("ERROR: {e}"),
            (None, false) => format!(
                "FLAGGED: lost {} dup {} ooo {}",
                i.lost, i.duplicated, i.out_of_order
            ),
            (None, true) if i.lost > 0 => format!("ok, lost {} by design", i.lost),
            (None, true) => "ok".to_owned(),
        };
        out.push_str(&format!(
            "{:<9} {:<18} {:>6} {:>11} {:>11} {:>9} {:>9} {:>10}  {}\n",
            case.transport,
            variant_label(case),
            case.params.n.map_or_else(|| "-".into(), |n| n.to_string()),
            num(m.elapsed_ms, 1),
            num(m.calls_per_s.or(m.msgs_per_s).or(m.conns_per_s), 0),
            num(m.p50_us, 0),
            num(m.p99_us, 0),
            format!("{}/{}", i.received, i.sent),
            status
        ));
    }
    out
}

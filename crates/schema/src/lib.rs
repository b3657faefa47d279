//! The result contract shared by pushbench's runner, benches, CLI and report.
//!
//! A run is written as `run.json` (every field, histograms included) and `cases.csv` (one row
//! per case, fixed columns). Readers reject files whose `schema_version` they do not know.
//!
//! ```
//! use pushbench_schema::{CaseResult, Integrity, RunFile};
//! let mut case = CaseResult::new("study", "ws", "sequential");
//! case.params.n = Some(100);
//! case.integrity = Integrity { sent: 100, received: 100, ..Integrity::default() };
//! assert!(case.integrity.is_clean());
//! let json = serde_json::to_string(&case).unwrap();
//! assert!(json.contains("\"transport\":\"ws\""));
//! # let _ = RunFile::default();
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The version of the result format written by this crate; readers accept only this one.
pub const SCHEMA_VERSION: u32 = 1;

/// File name of the full result inside a run directory.
pub const RUN_JSON: &str = "run.json";
/// File name of the per-case table inside a run directory.
pub const CASES_CSV: &str = "cases.csv";

/// Everything a run wrote: where and how it ran, and one entry per measured case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    /// Format version; see [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run's environment and configuration.
    pub run: RunInfo,
    /// The measured cases, in the order they ran.
    pub cases: Vec<CaseResult>,
    /// Performance targets checked by this run (`cargo bench --bench perf`): each a figure the
    /// run measured, its bound and whether it was met; empty (and absent) for other runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<PerfTarget>,
}

/// Which side of its threshold a [`PerfTarget`] must land on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Met when the value is at least the threshold (a ratio to the floor, a rate).
    AtLeast,
    /// Met when the value is at most the threshold (memory, a latency).
    AtMost,
}

/// A performance target and the figure this run measured for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfTarget {
    /// Stable id, e.g. `push.ws_to_tcp.batched`.
    pub id: String,
    /// What the figure is, in words a reader of the report understands.
    pub description: String,
    /// The measured value; `None` when the run could not measure it (`note` says why).
    pub value: Option<f64>,
    /// The value's unit, e.g. `×`, `GB/s`, `KiB`, `ms`.
    pub unit: String,
    /// Which side of `threshold` meets the target.
    pub bound: Bound,
    /// The target's threshold, in `unit`.
    pub threshold: f64,
    /// Whether `value` meets the target (false when not measured).
    pub met: bool,
    /// How the figure was measured, or why it could not be.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl PerfTarget {
    /// A target with `value` checked against `bound` and `threshold`.
    pub fn new(
        id: &str,
        description: &str,
        unit: &str,
        bound: Bound,
        threshold: f64,
        value: Option<f64>,
    ) -> Self {
        let met = value.is_some_and(|v| match bound {
            Bound::AtLeast => v >= threshold,
            Bound::AtMost => v <= threshold,
        });
        PerfTarget {
            id: id.to_owned(),
            description: description.to_owned(),
            value,
            unit: unit.to_owned(),
            bound,
            threshold,
            met,
            note: String::new(),
        }
    }

    /// The same target with `note` saying how it was measured (or why not).
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// The target as a reader writes it, e.g. `≥ 0.5 ×`.
    pub fn bound_text(&self) -> String {
        let op = match self.bound {
            Bound::AtLeast => "≥",
            Bound::AtMost => "≤",
        };
        format!("{op} {} {}", self.threshold, self.unit)
    }
}

/// The environment a run measured in; every figure is read next to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Unique run id (start time and host).
    pub id: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// End time, RFC 3339 UTC; empty while the run is in progress.
    pub finished_at: String,
    /// False when the run stopped early (an error or an interrupt): the cases are what it measured.
    pub complete: bool,
    /// `git rev-parse HEAD` of the code that ran, with `-dirty` if the tree had changes.
    pub git_commit: String,
    /// pushbench's own version.
    pub tool_version: String,
    /// `rustc -V` of the compiler that built the harness.
    pub rustc: String,
    /// Build profile (`release` or `debug`): debug numbers are not comparable.
    pub profile: String,
    /// Versions of the crates that shape the figures (tokio, axum, hyper, tungstenite, ...).
    pub crate_versions: BTreeMap<String, String>,
    /// The machine.
    pub host: Host,
    /// What was run: the scenario configuration as given, with defaults filled in.
    pub config: serde_json::Value,
}

/// The machine a run measured on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Host name.
    pub name: String,
    /// CPU model name.
    pub cpu: String,
    /// Logical cores available to the process.
    pub cores: u32,
    /// Kernel release.
    pub kernel: String,
    /// Operating system (PRETTY_NAME of os-release).
    pub os: String,
}

/// One measured case: a scenario, a transport, a variant and its parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// Scenario id, e.g. `study`.
    pub scenario: String,
    /// Transport id: `ws`, `sse`, `longpoll` or `tcp`.
    pub transport: String,
    /// Variant within the scenario, e.g. `sequential` or `all-at-once`.
    pub variant: String,
    /// Parameters that define the case.
    pub params: Params,
    /// What was measured.
    pub metrics: Metrics,
    /// Message accounting: a case with any loss is flagged, never averaged in silently.
    pub integrity: Integrity,
    /// Latency histogram in nanoseconds (1 ns to 1 h, 3 significant digits), HdrHistogram V2
    /// serialization, base64; `pushbench merge` adds these losslessly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<String>,
    /// Why the case failed or stopped early; `None` for a case that ran to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CaseResult {
    /// An empty case for `scenario`/`transport`/`variant`, to be filled by the runner.
    pub fn new(scenario: &str, transport: &str, variant: &str) -> Self {
        CaseResult {
            scenario: scenario.to_owned(),
            transport: transport.to_owned(),
            variant: variant.to_owned(),
            ..CaseResult::default()
        }
    }

    /// True when the case ran to the end without error and without any integrity fault.
    pub fn is_ok(&self) -> bool {
        self.error.is_none() && self.integrity.is_sound()
    }
}

/// Case parameters. Scenarios fill the fields they use; the rest stay absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Number of calls or messages per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// The study's reply size: characters of `data` per reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u64>,
    /// Concurrent clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<u64>,
    /// Flush policy: `per_message` or `batched`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush: Option<String>,
    /// Payload bytes per message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u64>,
    /// Paced send rate, messages per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// How many times the case ran; metrics are the median run, counts are summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u64>,
    /// Interval between broadcasts (fan-out), microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_us: Option<u64>,
    /// Driver processes the clients ran in (1 = in-process with the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// Reconnect: the server dropped each connection after this many messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_every: Option<u64>,
    /// Reconnect: after a drop the server refused connections for this long, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_ms: Option<u64>,
    /// Reconnect: the delay before reconnecting (SSE `retry:`), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ms: Option<u64>,
    /// `true` when the case ran over TLS (https, wss, the floor over TLS); absent for plain TCP
    /// and in runs made before TLS existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// The server measured: `pushbench-axum` for pushbench's own, or the label given to an
    /// external target (`run --target URL --server-label NAME`); absent in older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The HTTP version the case's event streams used: `1.1` (one connection per stream) or
    /// `2` (streams multiplexed); absent where not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// HTTP/2: the most streams the clients put on one connection (1 for HTTP/1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams_per_connection: Option<u64>,
    /// The client that measured the case: `browser` (headless Chromium running the page
    /// `/bench/browser.html` with its own `WebSocket`, `EventSource` and `fetch`) or `rust`
    /// (pushbench's drivers); absent means `rust` (runs made without `--client`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The emulated network between client and server (`run --network`), normalised as
    /// `rtt=50ms,loss=0%,rate=none`; absent for loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// Measured figures. Times in ms (whole case) or µs (per message).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Wall time of the case, clock started before connect (median over repeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<f64>,
    /// Fastest repeat's elapsed time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_min_ms: Option<f64>,
    /// Slowest repeat's elapsed time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_max_ms: Option<f64>,
    /// Time to open the connection(s), included in `elapsed_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<f64>,
    /// Completed calls per second of `elapsed_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_s: Option<f64>,
    /// Messages received per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgs_per_s: Option<f64>,
    /// Payload bytes received per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_s: Option<f64>,
    /// Server threads' CPU seconds per million messages delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_s_per_million: Option<f64>,
    /// Client threads' CPU seconds per million messages received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_s_per_million: Option<f64>,
    /// Sum of the reply JSON lengths, as the study counted "bytes loaded" (per repeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_loaded: Option<u64>,
    /// Bytes the client wrote to its sockets, headers and framing included (per repeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_bytes_up: Option<u64>,
    /// Bytes the client read from its sockets, headers and framing included (per repeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_bytes_down: Option<u64>,
    /// Mean latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_us: Option<f64>,
    /// Median latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    /// 90th percentile latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_us: Option<f64>,
    /// 99th percentile latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    /// 99.9th percentile latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_us: Option<f64>,
    /// Largest latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_us: Option<f64>,
    /// Connections opened per second until all were live (connection ramp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conns_per_s: Option<f64>,
    /// Reconnect: connections the server dropped (outages the client went through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<u64>,
    /// Reconnect: median time from noticing a drop to the first message after it, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_p50_ms: Option<f64>,
    /// Reconnect: 99th percentile recovery time, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_p99_ms: Option<f64>,
    /// Reconnect: longest recovery time, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_max_ms: Option<f64>,
    /// Bytes read from the wire per payload byte delivered (framing and encoding overhead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_per_payload_byte: Option<f64>,
    /// Client connections the case's streams arrived on, counted by the clients (over
    /// HTTP/2, several streams share one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// Browser latency cases: the most the page's clock offset to the server's clock (and so
    /// every latency figure) can be off by, µs: half the round trip of its best clock reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_uncertainty_us: Option<f64>,
}

/// Message accounting for a case, summed over all its runs (`sent` = n × repeats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    /// Messages (calls) sent.
    pub sent: u64,
    /// Distinct expected messages received.
    pub received: u64,
    /// Sent but never received.
    pub lost: u64,
    /// Received again after a first copy.
    pub duplicated: u64,
    /// Received after a later sequence number.
    pub out_of_order: u64,
    /// The case loses messages by design (reconnecting without resume): `lost` is its
    /// finding, not a fault, as long as nothing was duplicated or reordered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub loss_by_design: bool,
}

impl Integrity {
    /// True when every message sent arrived once, in order.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.received == self.sent
    }

    /// True when the counts hold no fault: clean, or losing only what the case loses by
    /// design (every message accounted for as received or lost, none twice or late).
    pub fn is_sound(&self) -> bool {
        self.is_clean()
            || (self.loss_by_design
                && self.duplicated == 0
                && self.out_of_order == 0
                && self.received + self.lost == self.sent)
    }

    /// Adds another run's counts to these.
    pub fn add(&mut self, other: &Integrity) {
        self.sent += other.sent;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.loss_by_design |= other.loss_by_design;
    }
}

/// Why a result file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not valid JSON or a field has the wrong shape.
    #[error("{path}: invalid run file: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause, naming line, column and field.
        source: serde_json::Error,
    },
    /// The file was written by another version of the format.
    #[error(
        "{path}: schema_version {found} is not supported (this pushbench reads version {SCHEMA_VERSION})"
    )]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// The version the file declares.
        found: String,
    },
    /// The CSV table could not be written.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
}

impl RunFile {
    /// A new run file holding `run` and no cases yet.
    pub fn new(run: RunInfo) -> Self {
        RunFile {
            schema_version: SCHEMA_VERSION,
            run,
            cases: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// Reads and validates `path` (a `run.json`, or a directory holding one).
    pub fn read(path: &Path) -> Result<RunFile, SchemaError> {
        let path = if path.is_dir() {
            path.join(RUN_JSON)
        } else {
            path.to_path_buf()
        };
        let text = fs::read_to_string(&path).map_err(|source| SchemaError::Io {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    /// Parses run-file text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<RunFile, SchemaError> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: Option<serde_json::Value>,
        }
        let json_err = |source| SchemaError::Json {
            path: path.to_path_buf(),
            source,
        };
        let version: Version = serde_json::from_str(text).map_err(json_err)?;
        match version.schema_version {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {
            }
            other => {
                let found = other.map_or_else(|| "(missing)".to_owned(), |v| v.to_string());
                return Err(SchemaError::UnknownVersion {
                    path: path.to_path_buf(),
                    found,
                });
            }
        }
        serde_json::from_str(text).map_err(json_err)
    }

    /// Writes `run.json` and `cases.csv` into `dir`, each atomically (temp file, then rename).
    pub fn write(&self, dir: &Path) -> Result<(), SchemaError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SchemaError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let json_path = dir.join(RUN_JSON);
        let mut json = serde_json::to_vec_pretty(self).map_err(|source| SchemaError::Json {
            path: json_path.clone(),
            source,
        })?;
        json.push(b'\n');
        write_atomic(&json_path, &json).map_err(io_err(&json_path))?;

        let csv_path = dir.join(CASES_CSV);
        let csv = self.cases_csv().map_err(|source| SchemaError::Csv {
            path: csv_path.clone(),
            source,
        })?;
        write_atomic(&csv_path, &csv).map_err(io_err(&csv_path))
    }

    /// The cases as CSV: one row per case, the columns of [`CsvRow`].
    pub fn cases_csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for case in &self.cases {
            writer.serialize(CsvRow::new(&self.run, case))?;
        }
        writer
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))
    }
}

/// One row of `cases.csv`: fixed columns, empty where a case has no such figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsvRow {
    /// Run id, so rows from several runs can be concatenated.
    pub run_id: String,
    /// Commit that produced the row.
    pub git_commit: String,
    /// Scenario id.
    pub scenario: String,
    /// Transport id.
    pub transport: String,
    /// Variant.
    pub variant: String,
    /// See [`Params::n`].
    pub n: Option<u64>,
    /// See [`Params::block_size`].
    pub block_size: Option<u64>,
    /// See [`Params::clients`].
    pub clients: Option<u64>,
    /// See [`Params::flush`].
    pub flush: Option<String>,
    /// See [`Params::payload_bytes`].
    pub payload_bytes: Option<u64>,
    /// See [`Params::rate`].
    pub rate: Option<u64>,
    /// See [`Params::repeats`].
    pub repeats: Option<u64>,
    /// See [`Params::interval_us`].
    pub interval_us: Option<u64>,
    /// See [`Params::processes`].
    pub processes: Option<u64>,
    /// See [`Params::drop_every`].
    pub drop_every: Option<u64>,
    /// See [`Params::down_ms`].
    pub down_ms: Option<u64>,
    /// See [`Params::retry_ms`].
    pub retry_ms: Option<u64>,
    /// See [`Params::tls`].
    pub tls: Option<bool>,
    /// See [`Params::server`].
    pub server: Option<String>,
    /// See [`Metrics::elapsed_ms`].
    pub elapsed_ms: Option<f64>,
    /// See [`Metrics::connect_ms`].
    pub connect_ms: Option<f64>,
    /// See [`Metrics::calls_per_s`].
    pub calls_per_s: Option<f64>,
    /// See [`Metrics::msgs_per_s`].
    pub msgs_per_s: Option<f64>,
    /// See [`Metrics::bytes_per_s`].
    pub bytes_per_s: Option<f64>,
    /// See [`Metrics::server_cpu_s_per_million`].
    pub server_cpu_s_per_million: Option<f64>,
    /// See [`Metrics::client_cpu_s_per_million`].
    pub client_cpu_s_per_million: Option<f64>,
    /// See [`Metrics::bytes_loaded`].
    pub bytes_loaded: Option<u64>,
    /// See [`Metrics::wire_bytes_up`].
    pub wire_bytes_up: Option<u64>,
    /// See [`Metrics::wire_bytes_down`].
    pub wire_bytes_down: Option<u64>,
    /// See [`Metrics::p50_us`].
    pub p50_us: Option<f64>,
    /// See [`Metrics::p90_us`].
    pub p90_us: Option<f64>,
    /// See [`Metrics::p99_us`].
    pub p99_us: Option<f64>,
    /// See [`Metrics::p999_us`].
    pub p999_us: Option<f64>,
    /// See [`Metrics::max_us`].
    pub max_us: Option<f64>,
    /// See [`Metrics::conns_per_s`].
    pub conns_per_s: Option<f64>,
    /// See [`Metrics::wire_per_payload_byte`].
    pub wire_per_payload_byte: Option<f64>,
    /// See [`Metrics::reconnects`].
    pub reconnects: Option<u64>,
    /// See [`Metrics::recovery_p50_ms`].
    pub recovery_p50_ms: Option<f64>,
    /// See [`Metrics::recovery_p99_ms`].
    pub recovery_p99_ms: Option<f64>,
    /// See [`Metrics::recovery_max_ms`].
    pub recovery_max_ms: Option<f64>,
    /// See [`Integrity::sent`].
    pub sent: u64,
    /// See [`Integrity::received`].
    pub received: u64,
    /// See [`Integrity::lost`].
    pub lost: u64,
    /// See [`Integrity::duplicated`].
    pub duplicated: u64,
    /// See [`Integrity::out_of_order`].
    pub out_of_order: u64,
    /// See [`Integrity::loss_by_design`].
    pub loss_by_design: bool,
    /// `ok`, `integrity` (a counting fault) or `error`.
    pub status: String,
    /// The case's error, if any.
    pub error: Option<String>,
    /// See [`Params::http`].
    pub http: Option<String>,
    /// See [`Params::streams_per_connection`].
    pub streams_per_connection: Option<u64>,
    /// See [`Metrics::connections`].
    pub connections: Option<u64>,
    /// See [`Params::client`].
    pub client: Option<String>,
    /// See [`Metrics::clock_uncertainty_us`].
    pub clock_uncertainty_us: Option<f64>,
    /// See [`Params::network`].
    pub network: Option<String>,
}

impl CsvRow {
    /// Flattens `case` of `run` into a row.
    pub fn new(run: &RunInfo, case: &CaseResult) -> Self {
        let (p, m, i) = (&case.params, &case.metrics, &case.integrity);
        let status = if case.error.is_some() {
            "error"
        } else if !i.is_sound() {
            "integrity"
        } else {
            "ok"
        };
        CsvRow {
            run_id: run.id.clone(),
            git_commit: run.git_commit.clone(),
            scenario: case.scenario.clone(),
            transport: case.transport.clone(),
            variant: case.variant.clone(),
            n: p.n,
            block_size: p.block_size,
            clients: p.clients,
            flush: p.flush.clone(),
            payload_bytes: p.payload_bytes,
            rate: p.rate,
            repeats: p.repeats,
            interval_us: p.interval_us,
            processes: p.processes,
            drop_every: p.drop_every,
            down_ms: p.down_ms,
            retry_ms: p.retry_ms,
            tls: p.tls,
            server: p.server.clone(),
            elapsed_ms: m.elapsed_ms,
            connect_ms: m.connect_ms,
            calls_per_s: m.calls_per_s,
            msgs_per_s: m.msgs_per_s,
            bytes_per_s: m.bytes_per_s,
            server_cpu_s_per_million: m.server_cpu_s_per_million,
            client_cpu_s_per_million: m.client_cpu_s_per_million,
            bytes_loaded: m.bytes_loaded,
            wire_bytes_up: m.wire_bytes_up,
            wire_bytes_down: m.wire_bytes_down,
            p50_us: m.p50_us,
            p90_us: m.p90_us,
            p99_us: m.p99_us,
            p999_us: m.p999_us,
            max_us: m.max_us,
            conns_per_s: m.conns_per_s,
            wire_per_payload_byte: m.wire_per_payload_byte,
            reconnects: m.reconnects,
            recovery_p50_ms: m.recovery_p50_ms,
            recovery_p99_ms: m.recovery_p99_ms,
            recovery_max_ms: m.recovery_max_ms,
            sent: i.sent,
            received: i.received,
            lost: i.lost,
            duplicated: i.duplicated,
            out_of_order: i.out_of_order,
            loss_by_design: i.loss_by_design,
            status: status.to_owned(),
            error: case.error.clone(),
            http: p.http.clone(),
            streams_per_connection: p.streams_per_connection,
            connections: m.connections,
            client: p.client.clone(),
            clock_uncertainty_us: m.clock_uncertainty_us,
            network: p.network.clone(),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunFile {
        let mut run = RunFile::new(RunInfo {
            id: "r1".into(),
            git_commit: "abc".into(),
            ..RunInfo::default()
        });
        let mut case = CaseResult::new("study", "sse", "sequential");
        case.params.n = Some(100);
        case.params.block_size = Some(1000);
        case.params.server = Some("node-express".into());
        case.metrics.elapsed_ms = Some(12.5);
        case.integrity = Integrity {
            sent: 100,
            received: 99,
            lost: 1,
            ..Integrity::default()
        };
        run.cases.push(case);
        run
    }

    #[test]
    fn a_target_is_met_only_on_its_side_of_the_threshold_and_round_trips() {
        let at_least = |v| PerfTarget::new("r", "ratio", "×", Bound::AtLeast, 0.5, v);
        assert!(at_least(Some(0.5)).met && at_least(Some(0.7)).met);
        assert!(!at_least(Some(0.49)).met && !at_least(None).met);
        let at_most = PerfTarget::new("m", "memory", "KiB", Bound::AtMost, 32.0, Some(33.0));
        assert!(!at_most.met);
        assert_eq!(at_most.bound_text(), "≤ 32 KiB");

        let dir = tempfile::tempdir().unwrap();
        let mut run = sample();
        run.targets
            .push(at_least(Some(0.61)).with_note("push, 64 B, batched"));
        run.write(dir.path()).unwrap();
        let back = RunFile::read(dir.path()).unwrap();
        assert_eq!(back.targets, run.targets);
        // Runs without targets keep their old shape.
        sample().write(dir.path()).unwrap();
        let json = fs::read_to_string(dir.path().join(RUN_JSON)).unwrap();
        assert!(!json.contains("targets"), "{json}");
    }

    #[test]
    fn round_trips_through_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let run = sample();
        run.write(dir.path()).unwrap();
        assert_eq!(RunFile::read(dir.path()).unwrap(), run);
        let csv = fs::read_to_string(dir.path().join(CASES_CSV)).unwrap();
        let mut lines = csv.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("run_id,git_commit,scenario,transport,variant,n,")
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("r1,abc,study,sse,sequential,100,1000,"),
            "{row}"
        );
        assert!(row.contains(",100,99,1,0,0,false,integrity,"), "{row}");
        let header = csv.lines().next().unwrap();
        let column = header.split(',').position(|c| c == "server").unwrap();
        assert_eq!(row.split(',').nth(column), Some("node-express"), "{row}");
    }

    #[test]
    fn rejects_unknown_schema_version_by_name() {
        let err = RunFile::parse(
            r#"{"schema_version": 7, "run": {}, "cases": []}"#,
            Path::new("x/run.json"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("x/run.json") && msg.contains("schema_version 7"),
            "{msg}"
        );
        let err = RunFile::parse(r#"{"cases": []}"#, Path::new("y")).unwrap_err();
        assert!(
            err.to_string().contains("schema_version (missing)"),
            "{err}"
        );
    }

    #[test]
    fn names_the_bad_field() {
        let text = r#"{"schema_version": 1, "run": {"id": 5}, "cases": []}"#;
        let err = RunFile::parse(text, Path::new("z"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid type") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn loss_by_design_is_sound_only_when_every_message_is_accounted_for() {
        let lossy = Integrity {
            sent: 10,
            received: 7,
            lost: 3,
            loss_by_design: true,
            ..Integrity::default()
        };
        assert!(lossy.is_sound() && !lossy.is_clean());
        let undeclared = Integrity {
            loss_by_design: false,
            ..lossy
        };
        assert!(!undeclared.is_sound());
        assert!(
            !Integrity {
                duplicated: 1,
                ..lossy
            }
            .is_sound()
        );
        assert!(!Integrity { lost: 2, ..lossy }.is_sound(), "7 + 2 != 10");
        let mut case = CaseResult::new("reconnect", "ws", "no-resume");
        case.integrity = lossy;
        assert!(case.is_ok());
        let mut total = Integrity::default();
        total.add(&lossy);
        assert!(total.loss_by_design, "combining runs keeps the flag");
    }

    #[test]
    fn integrity_is_clean_only_without_faults() {
        let clean = Integrity {
            sent: 3,
            received: 3,
            ..Integrity::default()
        };
        assert!(clean.is_clean());
        assert!(
            !Integrity {
                duplicated: 1,
                ..clean
            }
            .is_clean()
        );
        assert!(
            !Integrity {
                out_of_order: 1,
                ..clean
            }
            .is_clean()
        );
        assert!(
            !Integrity {
                received: 2,
                lost: 1,
                ..clean
            }
            .is_clean()
        );
    }
}

//! pushbench's report: reads a run directory's `run.json` (never runs anything) and renders
//! `charts/*.svg` + `charts/*.png` with plotters and a bundled font (no system font libraries),
//! and `REPORT.md`, whose every figure comes from that file.
//!
//! Charts, each written only when the run has its cases: `study-n{N}` (elapsed time per
//! transport, like the published bar chart), `study-calls-per-s`, `study-latency`,
//! `push-msgs-per-s`, `latency-c{C}` (percentile curves), `fanout` (latency by clients with the
//! 100 ms line), `connect`, `reconnect`, `payload-overhead`, `payload-throughput` and
//! `roundtrip-c{C}`.
//! REPORT.md adds a "measured comparison" table: the usual WS-vs-SSE feature table, filled
//! with this run's figures; when the run measured cases both plain and over TLS
//! (`params.tls`), a "What TLS costs" section comparing them, and, for a run holding cases of
//! several servers (`params.server`), a "Servers compared" section with each server's figures
//! side by side; for a run with browser cases (`params.client`, `run --client both`), a
//! "Browser clients" section and `browser-*` charts comparing them with the Rust client.
//!
//! ```
//! use pushbench_schema::{CaseResult, RunFile, RunInfo};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut run = RunFile::new(RunInfo { complete: true, ..RunInfo::default() });
//! let mut ws = CaseResult::new("study", "ws", "sequential");
//! ws.params.n = Some(100);
//! ws.metrics.elapsed_ms = Some(12.5);
//! run.cases.push(ws);
//! run.write(dir.path()).unwrap();
//!
//! let rendered = pushbench_report::render(dir.path()).unwrap();
//! let report = std::fs::read_to_string(&rendered.report).unwrap();
//! assert!(report.contains("## Does the published conclusion hold here?"));
//! assert!(dir.path().join("charts/study-n100.png").exists());
//! ```

mod browser;
mod charts;
mod http2;
mod lines;
mod markdown;
mod network;
mod perf;
mod scenarios;
mod servers;
mod study;
mod tls;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::style::{FontStyle, register_font as plotters_register_font};
use pushbench_schema::{CaseResult, RunFile, SchemaError, write_atomic};

use crate::charts::{Bar, BarSeries, CallsPerSecond, Chart, ElapsedBars, LogBars, write_chart};
use crate::study::StudyView;

/// DejaVu Sans (its licence is in `assets/`), so text renders the same on any machine.
const FONT_TTF: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// File name of the report inside a run directory.
pub const REPORT_MD: &str = "REPORT.md";

/// Registers the bundled font with plotters as `sans-serif`. Idempotent. Any plotters user in
/// the process needs it (criterion's own charts too), so the bench main calls it first.
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            // The bundled font is valid TrueType, so registration cannot fail.
            let _ = plotters_register_font("sans-serif", style, FONT_TTF);
        }
    });
}

/// What [`render`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The REPORT.md path.
    pub report: PathBuf,
    /// Every chart file (SVG and PNG).
    pub charts: Vec<PathBuf>,
}

/// Why a report could not be rendered; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// run.json is missing, malformed or of an unknown version.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// plotters failed to draw or write a chart.
    #[error("{path}: cannot draw chart: {message}")]
    Chart {
        /// The chart file.
        path: PathBuf,
        /// plotters' message.
        message: String,
    },
}

/// Reads `dir/run.json`, writes `dir/charts/*.svg` + `*.png` and `dir/REPORT.md`. Returns what
/// it wrote. Missing figures are shown as "—"; only an unreadable run file or an unwritable
/// directory is an error.
pub fn render(dir: &Path) -> Result<Rendered, ReportError> {
    register_font();
    let full = RunFile::read(dir)?;
    // Several servers (`run --target`, merged): every section but "Servers compared" shows the
    // first server's cases; with plain and TLS cases in one run, charts and scenario sections
    // show the plain ones.
    let servers = servers::labels(&full);
    let one_server = match servers.as_slice() {
        [first, _, ..] => servers::only(&full, first),
        _ => full.clone(),
    };
    let one_server = network::first_only(&one_server);
    let plain = tls::main_cases(&one_server);
    let main = browser::main_cases(&plain);
    let file: &RunFile = &main;
    let view = StudyView::new(file);
    let all = [
        study_charts(&view),
        roundtrip_charts(file),
        push_charts(file),
    ];
    let (mut lines, mut bars) = scenarios::charts(file);
    lines.extend(http2::charts(file));
    bars.extend(servers::charts(&full));
    bars.extend(browser::charts(&plain));
    let network_charts = network::charts(&full);
    let mut charts = Vec::new();
    let mut names = Vec::new();
    let more = lines
        .iter()
        .map(|c| c as &dyn ErasedChart)
        .chain(bars.iter().map(|c| c as &dyn ErasedChart))
        .chain(network_charts.iter().map(|c| c as &dyn ErasedChart));
    for chart in all.iter().flatten().map(|c| c.as_ref()).chain(more) {
        names.push(chart.name());
        charts.extend(chart.write(dir)?);
    }
    let report = dir.join(REPORT_MD);
    let mut md = markdown::report(&one_server, file, &names);
    let mut compared = String::new();
    servers::compared(&mut compared, &full);
    let mut networks = String::new();
    network::section(&mut networks, &full, &names);
    if !compared.is_empty() {
        let note = format!(
            "> This run holds cases of {} servers ({}); the sections below show {}'s, and \
             [Servers compared](#servers-compared) puts them side by side.\n\n",
            servers.len(),
            servers.join(", "),
            servers[0]
        );
        let title = "# pushbench report\n\n";
        if md.starts_with(title) {
            md.insert_str(title.len(), &note);
        }
        let at = md
            .find("\n## Integrity\n")
            .or_else(|| md.rfind("\n---\n"))
            .map_or(md.len(), |i| i + 1);
        md.insert_str(at, &compared);
    }
    if !networks.is_empty() {
        let at = md
            .find("\n## Integrity\n")
            .or_else(|| md.rfind("\n---\n"))
            .map_or(md.len(), |i| i + 1);
        md.insert_str(at, &networks);
    }
    write_atomic(&report, md.as_bytes()).map_err(|source| ReportError::Io {
        path: report.clone(),
        source,
    })?;
    Ok(Rendered { report, charts })
}

/// A chart of any kind, ready to write.
type BoxedChart<'a> = Box<dyn ErasedChart + 'a>;

/// The `study` charts: elapsed bars per N, calls/s by N, latency at the largest N.
fn study_charts<'a>(view: &'a StudyView<'a>) -> Vec<BoxedChart<'a>> {
    let ns = view.ns();
    let mut charts: Vec<BoxedChart<'a>> = Vec::new();
    for &n in &ns {
        charts.push(Box::new(ElapsedBars { n, view }));
    }
    if !ns.is_empty() {
        charts.push(Box::new(CallsPerSecond { view }));
    }
    if let Some(&n) = ns.last() {
        charts.push(Box::new(percentile_bars(
            "study-latency".into(),
            format!("Study: per-call latency at {n} calls (lower is faster)"),
            "latency per call (µs, log scale)",
            study::TRANSPORT_ORDER
                .iter()
                .map(|t| view.case(n, "sequential", t))
                .collect(),
        )));
    }
    charts
}

/// The `roundtrip` charts: latency percentiles per transport, one chart per client count.
fn roundtrip_charts(file: &RunFile) -> Vec<BoxedChart<'static>> {
    let roundtrip = study::scenario_cases(file, "roundtrip");
    study::client_counts(&roundtrip)
        .into_iter()
        .map(|clients| -> BoxedChart<'static> {
            let per_transport = study::TRANSPORT_ORDER
                .iter()
                .map(|t| {
                    roundtrip
                        .iter()
                        .copied()
                        .find(|c| c.transport == *t && c.params.clients == Some(clients))
                })
                .collect();
            Box::new(percentile_bars(
                format!("roundtrip-c{clients}"),
                format!(
                    "Round trip with {clients} concurrent client(s): latency (lower is faster)"
                ),
                "round-trip time (µs, log scale)",
                per_transport,
            ))
        })
        .collect()
}

/// The `push` chart: messages per second per transport and flush policy.
fn push_charts(file: &RunFile) -> Vec<BoxedChart<'static>> {
    let push = study::push_cases(file);
    if push.is_empty() {
        return Vec::new();
    }
    vec![Box::new(push_bars(&push))]
}

/// p50 and p99 bars of one case (or none) per transport.
fn percentile_bars(
    name: String,
    title: String,
    y_desc: &'static str,
    cases: Vec<Option<&CaseResult>>,
) -> LogBars {
    let series = |label: &str, get: fn(&CaseResult) -> Option<f64>| BarSeries {
        label: label.to_owned(),
        bars: cases
            .iter()
            .map(|c| {
                let c = (*c)?;
                let value = get(c)?;
                Some(Bar {
                    value,
                    ok: c.is_ok(),
                    text: format!("{value:.0}"),
                })
            })
            .collect(),
    };
    LogBars {
        name,
        title,
        y_desc,
        series: vec![
            series("p50", |c| c.metrics.p50_us),
            series("p99", |c| c.metrics.p99_us),
        ],
    }
}

/// Push throughput: messages per second per transport, one series per flush policy.
fn push_bars(cases: &[&CaseResult]) -> LogBars {
    let n = cases.first().and_then(|c| c.params.n).unwrap_or(0);
    let payload = cases
        .first()
        .and_then(|c| c.params.payload_bytes)
        .unwrap_or(0);
    let series = |flush: &str| BarSeries {
        label: flush.to_owned(),
        bars: study::TRANSPORT_ORDER
            .iter()
            .map(|t| {
                let c = cases
                    .iter()
                    .find(|c| c.transport == *t && c.params.flush.as_deref() == Some(flush))?;
                let value = c.metrics.msgs_per_s?;
                Some(Bar {
                    value,
                    ok: c.is_ok(),
                    text: format!("{:.0}k", value / 1000.0),
                })
            })
            .collect(),
    };
    LogBars {
        name: "push-msgs-per-s".into(),
        title: format!("Push: {n} messages of {payload} B, messages per second (higher is faster)"),
        y_desc: "messages per second (log scale)",
        series: vec![series("per_message"), series("batched")],
    }
}

/// [`Chart`] behind `dyn`, so `render` can treat charts of different kinds alike.
trait ErasedChart {
    fn name(&self) -> String;
    fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError>;
}

impl<C: Chart> ErasedChart for C {
    fn name(&self) -> String {
        Chart::name(self)
    }

    fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        write_chart(self, dir)
    }
}

//! pushbench's report: reads a run directory's `run.json` (never runs anything) and renders
//! `charts/*.svg` + `charts/*.png` with plotters and a bundled font (no system font libraries),
//! and `REPORT.md`.
//!
//! ```no_run
//! let rendered = pushbench_report::render("results/latest".as_ref()).unwrap();
//! println!("{}", rendered.report.display());
//! ```

mod charts;
mod markdown;
mod study;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::style::{FontStyle, register_font as plotters_register_font};
use pushbench_schema::{RunFile, SchemaError, write_atomic};

use crate::charts::{Bar, BarSeries, CallsPerSecond, Chart, ElapsedBars, LogBars, write_chart};
use crate::study::StudyView;
use pushbench_schema::CaseResult;

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

/// Reads `dir/run.json`, writes `dir/charts/*.svg|png` and `dir/REPORT.md`.
pub fn render(dir: &Path) -> Result<Rendered, ReportError> {
    register_font();
    let file = RunFile::read(dir)?;
    let view = StudyView::new(&file);
    let mut charts = Vec::new();
    let mut names = Vec::new();
    let mut add = |chart: &dyn ErasedChart| -> Result<(), ReportError> {
        names.push(chart.name());
        charts.extend(chart.write(dir)?);
        Ok(())
    };
    let ns = view.ns();
    for &n in &ns {
        add(&ElapsedBars { n, view: &view })?;
    }
    if !ns.is_empty() {
        add(&CallsPerSecond { view: &view })?;
    }
    if let Some(&n) = ns.last() {
        add(&percentile_bars(
            "study-latency".into(),
            format!("Study: per-call latency at {n} calls (lower is faster)"),
            "latency per call (µs, log scale)",
            study::TRANSPORT_ORDER
                .iter()
                .map(|t| view.case(n, "sequential", t))
                .collect(),
        ))?;
    }
    let roundtrip = study::scenario_cases(&file, "roundtrip");
    for clients in study::client_counts(&roundtrip) {
        let per_transport = study::TRANSPORT_ORDER
            .iter()
            .map(|t| {
                roundtrip
                    .iter()
                    .copied()
                    .find(|c| c.transport == *t && c.params.clients == Some(clients))
            })
            .collect();
        add(&percentile_bars(
            format!("roundtrip-c{clients}"),
            format!("Round trip with {clients} concurrent client(s): latency (lower is faster)"),
            "round-trip time (µs, log scale)",
            per_transport,
        ))?;
    }
    let push = study::push_cases(&file);
    if !push.is_empty() {
        add(&push_bars(&push))?;
    }
    let report = dir.join(REPORT_MD);
    write_atomic(&report, markdown::report(&file, &names).as_bytes()).map_err(|source| {
        ReportError::Io {
            path: report.clone(),
            source,
        }
    })?;
    Ok(Rendered { report, charts })
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

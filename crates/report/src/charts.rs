//! The charts: each drawn once by a backend-generic function, written as SVG and PNG.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use pushbench_schema::CaseResult;

use crate::ReportError;
use crate::study::{StudyView, TRANSPORT_ORDER};

const SIZE: (u32, u32) = (1024, 640);
const FONT: &str = "sans-serif";
const SEQ_COLOR: RGBColor = RGBColor(52, 101, 164);
const ALL_COLOR: RGBColor = RGBColor(245, 121, 0);
const FLOOR_COLOR: RGBColor = RGBColor(136, 138, 133);
const FLAG_COLOR: RGBColor = RGBColor(204, 0, 0);

type DrawResult = Result<(), String>;

/// A chart that can draw itself on any plotters backend.
pub(crate) trait Chart {
    /// File stem under `charts/`.
    fn name(&self) -> String;
    /// Draws the chart.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Writes `chart` as `dir/charts/<name>.svg` and `.png`.
pub(crate) fn write_chart(chart: &impl Chart, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts).map_err(|source| ReportError::Io {
        path: charts.clone(),
        source,
    })?;
    let svg = charts.join(format!("{}.svg", chart.name()));
    let png = charts.join(format!("{}.png", chart.name()));
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |message| ReportError::Chart { path, message }
    };
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        chart
            .draw(&root)
            .and_then(|()| root.present().map_err(err))
            .map_err(fail(&svg))?;
    }
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        chart
            .draw(&root)
            .and_then(|()| root.present().map_err(err))
            .map_err(fail(&png))?;
    }
    Ok(vec![svg, png])
}

fn title_style() -> TextStyle<'static> {
    (FONT, 26).into_font().into()
}

fn label_style() -> TextStyle<'static> {
    (FONT, 16).into_font().into()
}

/// Text centred above a point: the value written on a bar.
fn value_style() -> TextStyle<'static> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    label_style().pos(Pos::new(HPos::Center, VPos::Bottom))
}

/// Tick label of the categorical transport axis (bars at 0, 1, 2, ...).
fn transport_label(x: &f64) -> String {
    let i = x.round() as usize;
    match TRANSPORT_ORDER.get(i) {
        Some(&"tcp") => "tcp (floor)".to_owned(),
        Some(t) if (x - i as f64).abs() < 0.01 => (*t).to_owned(),
        _ => String::new(),
    }
}

/// The legend box every chart uses.
fn draw_legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(label_style())
        .position(position)
        .draw()
        .map_err(err)
}

/// Bars of elapsed time per transport for one call count, like the published chart.
pub(crate) struct ElapsedBars<'a> {
    pub n: u64,
    pub view: &'a StudyView<'a>,
}

impl Chart for ElapsedBars<'_> {
    fn name(&self) -> String {
        format!("study-n{}", self.n)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(err)?;
        let seq: Vec<Option<&CaseResult>> = TRANSPORT_ORDER
            .iter()
            .map(|t| self.view.case(self.n, "sequential", t))
            .collect();
        let all: Vec<Option<&CaseResult>> = TRANSPORT_ORDER
            .iter()
            .map(|t| self.view.case(self.n, "all-at-once", t))
            .collect();
        let has_all = all.iter().any(Option::is_some);
        let top = seq
            .iter()
            .chain(&all)
            .flatten()
            .filter_map(|c| c.metrics.elapsed_max_ms.or(c.metrics.elapsed_ms))
            .fold(0.0f64, f64::max);
        let top = if top > 0.0 { top * 1.2 } else { 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "Study: {} sequential calls, elapsed time per transport (lower is faster)",
                    self.n
                ),
                title_style(),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5f64..(TRANSPORT_ORDER.len() as f64 - 0.5), 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(TRANSPORT_ORDER.len())
            .x_label_formatter(&transport_label)
            .x_desc("transport")
            .y_desc("elapsed time (ms), connect included")
            .y_label_formatter(&|y| {
                if top >= 10.0 {
                    format!("{y:.0}")
                } else {
                    fmt_ms(*y)
                }
            })
            .label_style(label_style())
            .axis_desc_style(label_style())
            .draw()
            .map_err(err)?;
        let width = if has_all { 0.35 } else { 0.6 };
        let series: [(&[Option<&CaseResult>], f64, RGBColor, &str); 2] = [
            (
                &seq,
                if has_all { -0.18 } else { 0.0 },
                SEQ_COLOR,
                "one transport at a time",
            ),
            (
                &all,
                0.18,
                ALL_COLOR,
                "all at once (ws, sse, longpoll together)",
            ),
        ];
        for (cases, offset, color, label) in series {
            if !cases.iter().any(Option::is_some) {
                continue;
            }
            let mut legend_drawn = false;
            for (i, case) in cases.iter().enumerate() {
                let Some(case) = case else { continue };
                let x = i as f64 + offset;
                let value = case.metrics.elapsed_ms.unwrap_or(0.0);
                let flagged = !case.is_ok();
                let fill = if flagged {
                    FLAG_COLOR
                } else if case.transport == "tcp" {
                    FLOOR_COLOR
                } else {
                    color
                };
                let bar = Rectangle::new(
                    [(x - width / 2.0, 0.0), (x + width / 2.0, value)],
                    fill.filled(),
                );
                let series = chart.draw_series(std::iter::once(bar)).map_err(err)?;
                if !legend_drawn && case.transport != "tcp" && !flagged {
                    legend_drawn = true;
                    series.label(label).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                    });
                }
                if let (Some(lo), Some(hi)) =
                    (case.metrics.elapsed_min_ms, case.metrics.elapsed_max_ms)
                {
                    if hi > lo {
                        let cap = width / 6.0;
                        let lines = [
                            vec![(x, lo), (x, hi)],
                            vec![(x - cap, lo), (x + cap, lo)],
                            vec![(x - cap, hi), (x + cap, hi)],
                        ];
                        chart
                            .draw_series(
                                lines
                                    .into_iter()
                                    .map(|l| PathElement::new(l, BLACK.stroke_width(2))),
                            )
                            .map_err(err)?;
                    }
                }
                let text = if flagged {
                    format!("{} FLAGGED", fmt_ms(value))
                } else {
                    fmt_ms(value)
                };
                let y = case.metrics.elapsed_max_ms.unwrap_or(value).max(value) + top * 0.02;
                let style = value_style();
                chart
                    .draw_series(std::iter::once(Text::new(text, (x, y), style)))
                    .map_err(err)?;
            }
        }
        if has_all {
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
        Ok(())
    }
}

/// Calls per second against the call count, one line per transport.
pub(crate) struct CallsPerSecond<'a> {
    pub view: &'a StudyView<'a>,
}

fn transport_color(t: &str) -> RGBColor {
    match t {
        "ws" => SEQ_COLOR,
        "sse" => RGBColor(78, 154, 6),
        "longpoll" => RGBColor(117, 80, 123),
        _ => FLOOR_COLOR,
    }
}

impl Chart for CallsPerSecond<'_> {
    fn name(&self) -> String {
        "study-calls-per-s".into()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(err)?;
        let ns = self.view.ns();
        let (lo, hi) = match (ns.first(), ns.last()) {
            (Some(&a), Some(&b)) if a < b => (a as f64, b as f64),
            (Some(&a), _) => (a as f64 / 2.0, a as f64 * 2.0),
            _ => (1.0, 10.0),
        };
        let top = ns
            .iter()
            .flat_map(|&n| {
                TRANSPORT_ORDER
                    .iter()
                    .filter_map(move |t| self.view.case(n, "sequential", t))
            })
            .filter_map(|c| c.metrics.calls_per_s)
            .fold(0.0f64, f64::max);
        let top = if top > 0.0 { top * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Study: calls per second by number of calls (higher is faster)",
                title_style(),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d((lo * 0.8..hi * 1.25).log_scale(), 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("sequential calls per run (log scale)")
            .y_desc("calls per second")
            .x_labels(4)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(label_style())
            .axis_desc_style(label_style())
            .draw()
            .map_err(err)?;
        for t in TRANSPORT_ORDER {
            let points: Vec<(f64, f64)> = ns
                .iter()
                .filter_map(|&n| {
                    let c = self.view.case(n, "sequential", t)?;
                    Some((n as f64, c.metrics.calls_per_s?))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let color = transport_color(t);
            let label = if t == "tcp" {
                "tcp (floor)".to_owned()
            } else {
                t.to_owned()
            };
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 5, color.filled())),
                )
                .map_err(err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// One bar of a [`LogBars`] chart.
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    /// Height.
    pub value: f64,
    /// False draws the bar in red: the case is flagged.
    pub ok: bool,
    /// Text written above the bar.
    pub text: String,
}

/// One colour of bars in a [`LogBars`] chart: a bar (or none) per transport.
#[derive(Debug, Clone)]
pub(crate) struct BarSeries {
    /// Legend label.
    pub label: String,
    /// One bar per transport, in [`TRANSPORT_ORDER`].
    pub bars: Vec<Option<Bar>>,
}

/// Grouped bars per transport on a log scale, up to two series side by side (p50 and p99,
/// or the two flush policies).
pub(crate) struct LogBars {
    /// File stem.
    pub name: String,
    /// Chart title.
    pub title: String,
    /// Y axis description.
    pub y_desc: &'static str,
    /// The series, drawn left and right of each transport's tick.
    pub series: Vec<BarSeries>,
}

impl Chart for LogBars {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(err)?;
        let values = self
            .series
            .iter()
            .flat_map(|s| s.bars.iter().flatten())
            .map(|b| b.value)
            .filter(|v| *v > 0.0);
        let (min, max) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if max > 0.0 {
            (min / 3.0, max * 3.0)
        } else {
            (1.0, 10.0)
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, title_style())
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(
                -0.5f64..(TRANSPORT_ORDER.len() as f64 - 0.5),
                (lo..hi).log_scale(),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(TRANSPORT_ORDER.len())
            .x_label_formatter(&transport_label)
            .x_desc("transport")
            .y_desc(self.y_desc)
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(label_style())
            .axis_desc_style(label_style())
            .draw()
            .map_err(err)?;
        let colors = [SEQ_COLOR, ALL_COLOR];
        for (k, series) in self.series.iter().enumerate().take(2) {
            let (offset, color) = (if k == 0 { -0.18 } else { 0.18 }, colors[k]);
            let bars: Vec<(f64, &Bar)> = series
                .bars
                .iter()
                .enumerate()
                .filter_map(|(i, b)| Some((i as f64 + offset, b.as_ref()?)))
                .collect();
            if bars.is_empty() {
                continue;
            }
            chart
                .draw_series(bars.iter().map(|&(x, b)| {
                    let fill = if b.ok { color } else { FLAG_COLOR };
                    Rectangle::new([(x - 0.17, lo), (x + 0.17, b.value.max(lo))], fill.filled())
                }))
                .map_err(err)?
                .label(series.label.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                });
            chart
                .draw_series(bars.iter().map(|&(x, b)| {
                    let text = if b.ok {
                        b.text.clone()
                    } else {
                        format!("{} FLAGGED", b.text)
                    };
                    Text::new(text, (x, b.value.max(lo) * 1.08), value_style())
                }))
                .map_err(err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

/// Milliseconds: one decimal, or two significant digits below 1 ms.
pub(crate) fn fmt_ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

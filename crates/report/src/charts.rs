//! The charts: each drawn once by a backend-generic function, written as SVG and PNG.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use pushbench_schema::CaseResult;

use crate::ReportError;
use crate::study::{StudyView, TRANSPORT_ORDER};

/// Pixel size of every chart.
pub(crate) const SIZE: (u32, u32) = (1024, 640);
const FONT: &str = "sans-serif";
const SEQ_COLOR: RGBColor = RGBColor(52, 101, 164);
const ALL_COLOR: RGBColor = RGBColor(245, 121, 0);
const FLOOR_COLOR: RGBColor = RGBColor(136, 138, 133);
pub(crate) const FLAG_COLOR: RGBColor = RGBColor(204, 0, 0);
/// Legend text for a flagged bar or point.
pub(crate) const FLAG_LABEL: &str = "FLAGGED (error or lost/dup/out-of-order)";
/// Fraction of the plot height kept free above the tallest bar for its labels and the legend.
const HEADROOM: f64 = 0.3;
/// Vertical distance between stacked labels, as a fraction of the plot height.
const LINE: f64 = 0.045;

type DrawResult = Result<(), String>;

/// A chart that can draw itself on any plotters backend.
pub(crate) trait Chart {
    /// File stem under `charts/`.
    fn name(&self) -> String;
    /// Draws the chart.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

pub(crate) fn err<E: std::fmt::Display>(e: E) -> String {
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

pub(crate) fn title_style() -> TextStyle<'static> {
    (FONT, 26).into_font().into()
}

pub(crate) fn label_style() -> TextStyle<'static> {
    (FONT, 16).into_font().into()
}

/// Text centred above a point: the value written on a bar.
fn value_style() -> TextStyle<'static> {
    label_style().pos(Pos::new(HPos::Center, VPos::Bottom))
}

/// The "FLAGGED" mark above a bar.
fn flag_style() -> TextStyle<'static> {
    value_style().color(&FLAG_COLOR)
}

/// Tick label of the categorical transport axis (bars at 0, 1, 2, ...).
fn transport_label(x: &f64) -> String {
    let i = x.round() as usize;
    match TRANSPORT_ORDER.get(i) {
        _ if (x - i as f64).abs() > 0.01 => String::new(),
        Some(&"tcp") => "tcp (floor)".to_owned(),
        Some(t) => (*t).to_owned(),
        None => String::new(),
    }
}

/// A legend entry with no data of its own: a coloured square and `label`.
fn legend_entry<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    label: &str,
    color: RGBColor,
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    Ok(())
}

/// The legend box every chart uses.
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
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

/// Draws the bar `[(x0, y0), (x1, y1)]`: solid `color`, or red and hatched when flagged.
fn draw_bar<'a, DB, Y>(
    root: &DrawingArea<DB, Shift>,
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    corners: [(f64, f64); 2],
    color: RGBColor,
    flagged: bool,
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64>,
{
    let fill = if flagged { FLAG_COLOR } else { color };
    chart
        .draw_series(std::iter::once(Rectangle::new(corners, fill.filled())))
        .map_err(err)?;
    if !flagged {
        return Ok(());
    }
    // Diagonal white lines in pixel space, clipped to the bar, so a flagged bar reads as
    // flagged in greyscale too.
    let (a, b) = (
        chart.backend_coord(&corners[0]),
        chart.backend_coord(&corners[1]),
    );
    let (x0, x1) = (a.0.min(b.0), a.0.max(b.0));
    let (y0, y1) = (a.1.min(b.1), a.1.max(b.1));
    let style = WHITE.stroke_width(2);
    let mut c = y0 - x1;
    while c <= y1 - x0 {
        // The line y = x + c inside the rectangle.
        let (xa, xb) = ((y0 - c).max(x0), (y1 - c).min(x1));
        if xa < xb {
            root.draw(&PathElement::new(vec![(xa, xa + c), (xb, xb + c)], style))
                .map_err(err)?;
        }
        c += 12;
    }
    Ok(())
}

/// A study series: one variant of the cases, drawn in one colour.
struct StudySeries {
    variant: &'static str,
    color: RGBColor,
    label: &'static str,
}

const STUDY_SERIES: [StudySeries; 2] = [
    StudySeries {
        variant: "sequential",
        color: SEQ_COLOR,
        label: "sequential: one transport at a time",
    },
    StudySeries {
        variant: "all-at-once",
        color: ALL_COLOR,
        label: "all-at-once: ws, sse and longpoll together",
    },
];

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
        let cases: Vec<Vec<Option<&CaseResult>>> = STUDY_SERIES
            .iter()
            .map(|s| {
                TRANSPORT_ORDER
                    .iter()
                    .map(|t| self.view.case(self.n, s.variant, t))
                    .collect()
            })
            .collect();
        let all_cases = || cases.iter().flatten().flatten();
        let has_all = cases[1].iter().any(Option::is_some);
        let top = all_cases()
            .filter_map(|c| c.metrics.elapsed_max_ms.or(c.metrics.elapsed_ms))
            .fold(0.0f64, f64::max);
        let top = if top > 0.0 {
            top / (1.0 - HEADROOM)
        } else {
            1.0
        };
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
        let width = if has_all { 0.38 } else { 0.6 };
        for (k, series) in STUDY_SERIES.iter().enumerate() {
            for (i, case) in cases[k].iter().enumerate() {
                let Some(case) = case else { continue };
                // Side by side when the transport has both variants, centred otherwise.
                let paired = cases[1 - k][i].is_some();
                let x = i as f64
                    + match (paired, k) {
                        (false, _) => 0.0,
                        (true, 0) => -0.2,
                        (true, _) => 0.2,
                    };
                let color = if case.transport == "tcp" {
                    FLOOR_COLOR
                } else {
                    series.color
                };
                let flagged = !case.is_ok();
                let m = &case.metrics;
                let mut label_y = top * 0.01;
                if let Some(value) = m.elapsed_ms {
                    draw_bar(
                        root,
                        &mut chart,
                        [(x - width / 2.0, 0.0), (x + width / 2.0, value)],
                        color,
                        flagged,
                    )?;
                    label_y = value + top * 0.01;
                }
                let repeated = case.params.repeats.is_none_or(|r| r > 1);
                let whisker = match (m.elapsed_min_ms, m.elapsed_max_ms) {
                    (Some(lo), Some(hi)) if repeated && hi > lo => Some((lo, hi)),
                    _ => None,
                };
                if let Some((lo, hi)) = whisker {
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
                    label_y = label_y.max(hi + top * 0.01);
                }
                let text = m.elapsed_ms.map_or_else(|| "no data".to_owned(), fmt_ms);
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (x, label_y),
                        value_style(),
                    )))
                    .map_err(err)?;
                if flagged {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            "FLAGGED",
                            (x, label_y + top * LINE),
                            flag_style(),
                        )))
                        .map_err(err)?;
                }
            }
        }
        for (k, series) in STUDY_SERIES.iter().enumerate() {
            if cases[k].iter().any(Option::is_some) {
                legend_entry(&mut chart, series.label, series.color)?;
            }
        }
        if all_cases().any(|c| c.transport == "tcp") {
            legend_entry(&mut chart, "tcp (floor)", FLOOR_COLOR)?;
        }
        if all_cases().any(|c| !c.is_ok()) {
            legend_entry(&mut chart, FLAG_LABEL, FLAG_COLOR)?;
        }
        // The floor is the shortest bar and stands rightmost, so the upper right is free.
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// Calls per second against the call count, one line per transport.
pub(crate) struct CallsPerSecond<'a> {
    pub view: &'a StudyView<'a>,
}

pub(crate) fn transport_color(t: &str) -> RGBColor {
    match t {
        "ws" => SEQ_COLOR,
        "sse" => RGBColor(78, 154, 6),
        // SSE over HTTP/2, beside SSE over HTTP/1.1 in the HTTP/2 section.
        "sse-h2" => RGBColor(196, 140, 0),
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
        let cases = || {
            ns.iter().flat_map(|&n| {
                TRANSPORT_ORDER
                    .iter()
                    .filter_map(move |t| self.view.case(n, "sequential", t))
            })
        };
        let top = cases()
            .filter_map(|c| c.metrics.calls_per_s)
            .fold(0.0f64, f64::max);
        let top = if top > 0.0 {
            top / (1.0 - HEADROOM)
        } else {
            1.0
        };
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
            .x_desc("sequential calls per run, N (log scale)")
            .y_desc("calls per second")
            .x_labels(4)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(label_style())
            .axis_desc_style(label_style())
            .draw()
            .map_err(err)?;
        for t in TRANSPORT_ORDER {
            let points: Vec<(f64, f64, bool)> = ns
                .iter()
                .filter_map(|&n| {
                    let c = self.view.case(n, "sequential", t)?;
                    Some((n as f64, c.metrics.calls_per_s?, c.is_ok()))
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
                .draw_series(LineSeries::new(
                    points.iter().map(|&(x, y, _)| (x, y)),
                    color.stroke_width(3),
                ))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            chart
                .draw_series(points.iter().map(|&(x, y, ok)| -> DynElement<'_, DB, _> {
                    if ok {
                        Circle::new((x, y), 5, color.filled()).into_dyn()
                    } else {
                        Cross::new((x, y), 8, FLAG_COLOR.stroke_width(3)).into_dyn()
                    }
                }))
                .map_err(err)?;
        }
        if cases().any(|c| !c.is_ok() && c.metrics.calls_per_s.is_some()) {
            chart
                .draw_series(std::iter::empty::<Cross<(f64, f64), i32>>())
                .map_err(err)?
                .label(FLAG_LABEL)
                .legend(|c| Cross::new(c, 6, FLAG_COLOR.stroke_width(3)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// One bar of a [`LogBars`] chart.
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    /// Height.
    pub value: f64,
    /// False draws the bar red and hatched: the case is flagged.
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

/// A log axis from a power of ten below `min` to a top that leaves [`HEADROOM`] of the
/// height free above `max`.
pub(crate) fn log_range(min: f64, max: f64) -> (f64, f64) {
    if !(min > 0.0 && max >= min && max.is_finite()) {
        return (1.0, 10.0);
    }
    let lo = 10f64.powf((min / 1.5).log10().floor());
    let hi = 10f64.powf(lo.log10() + (max.log10() - lo.log10()) / (1.0 - HEADROOM));
    (lo, hi)
}

/// Ticks of a log axis from `lo` to `hi`: 1, 2 and 5 times each power of ten (only the
/// powers of ten when the axis spans more than four decades).
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mantissas: &[f64] = if hi / lo > 1e4 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut ticks = Vec::new();
    // Integer powers, so 1e5 is exactly 100000 and its label reads "100k".
    let mut exp = lo.log10().floor() as i32;
    while 10f64.powi(exp) <= hi {
        let decade = 10f64.powi(exp);
        ticks.extend(
            mantissas
                .iter()
                .map(|m| m * decade)
                .filter(|v| (lo..=hi).contains(v)),
        );
        exp += 1;
    }
    ticks
}

/// A log-axis tick label: `20`, `5000`, `20k`, `2M`.
pub(crate) fn log_tick(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e4 => format!("{}k", v / 1e3),
        v if v >= 1.0 => format!("{v:.0}"),
        v if v > 0.0 => {
            let decimals = (-v.log10()).ceil() as usize;
            format!("{v:.decimals$}")
        }
        _ => String::new(),
    }
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
            .filter(|v| *v > 0.0 && v.is_finite());
        let (min, max) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = log_range(min, max);
        // A fixed fraction of the height, as a factor on the log axis.
        let line = (hi / lo).powf(LINE);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, title_style())
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(
                -0.5f64..(TRANSPORT_ORDER.len() as f64 - 0.5),
                (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(TRANSPORT_ORDER.len())
            .x_label_formatter(&transport_label)
            .x_desc("transport")
            .y_desc(self.y_desc)
            .y_label_formatter(&|y| log_tick(*y))
            .label_style(label_style())
            .axis_desc_style(label_style())
            .draw()
            .map_err(err)?;
        let colors = [SEQ_COLOR, ALL_COLOR];
        let mut any_flagged = false;
        for (k, series) in self.series.iter().enumerate().take(2) {
            let (offset, color) = (if k == 0 { -0.2 } else { 0.2 }, colors[k]);
            legend_entry(&mut chart, &series.label, color)?;
            for (i, bar) in series.bars.iter().enumerate() {
                let Some(bar) = bar else { continue };
                let x = i as f64 + offset;
                let top = bar.value.clamp(lo, hi);
                draw_bar(
                    root,
                    &mut chart,
                    [(x - 0.18, lo), (x + 0.18, top)],
                    color,
                    !bar.ok,
                )?;
                let label_y = top * line.powf(0.25);
                chart
                    .draw_series(std::iter::once(Text::new(
                        bar.text.clone(),
                        (x, label_y),
                        value_style(),
                    )))
                    .map_err(err)?;
                if !bar.ok {
                    any_flagged = true;
                    chart
                        .draw_series(std::iter::once(Text::new(
                            "FLAGGED",
                            (x, label_y * line),
                            flag_style(),
                        )))
                        .map_err(err)?;
                }
            }
        }
        if any_flagged {
            legend_entry(&mut chart, FLAG_LABEL, FLAG_COLOR)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

/// Milliseconds: one decimal, or two significant digits below 1 ms.
pub(crate) fn fmt_ms(v: f64) -> String {
    if v >= 1.0 || v <= 0.0 {
        format!("{v:.1}")
    } else {
        // Two significant digits: 0.12, 0.012, ...
        let decimals = (1.0 - v.log10().floor()) as usize;
        format!("{v:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_keep_two_significant_digits_below_one() {
        assert_eq!(fmt_ms(180.24), "180.2");
        assert_eq!(fmt_ms(1.0), "1.0");
        assert_eq!(fmt_ms(0.123), "0.12");
        assert_eq!(fmt_ms(0.0123), "0.012");
        assert_eq!(fmt_ms(0.0), "0.0");
    }

    #[test]
    fn log_axis_starts_below_the_smallest_bar_and_labels_1_2_5() {
        let (lo, hi) = log_range(104.0, 260.0);
        assert_eq!(lo, 10.0);
        assert!(hi > 260.0 * 1.5, "{hi}");
        assert_eq!(
            log_range(100.0, 100.0).0,
            10.0,
            "a bar of 100 keeps a height"
        );
        assert_eq!(log_range(f64::MAX, 0.0), (1.0, 10.0), "no bars at all");
        assert_eq!(
            log_ticks(10.0, 1047.0),
            [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
        assert_eq!(log_ticks(35.0, 180.0), [50.0, 100.0]);
        assert_eq!(log_ticks(100.0, 1e7), [100.0, 1e3, 1e4, 1e5, 1e6, 1e7]);
        let labels: Vec<String> = [0.5, 0.01, 20.0, 1000.0, 20_000.0, 1e5, 2e6]
            .into_iter()
            .map(log_tick)
            .collect();
        assert_eq!(labels, ["0.5", "0.01", "20", "1000", "20k", "100k", "2M"]);
    }

    #[test]
    fn transport_ticks_only_at_categories() {
        assert_eq!(transport_label(&0.0), "ws");
        assert_eq!(transport_label(&3.0), "tcp (floor)");
        assert_eq!(transport_label(&0.5), "");
        assert_eq!(transport_label(&7.0), "");
    }
}

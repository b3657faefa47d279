//! Line charts on log-log axes: latency percentile curves, fan-out latency against clients,
//! payload overhead and throughput against payload size.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::charts::{
    Chart, FLAG_COLOR, FLAG_LABEL, draw_legend, err, label_style, log_tick, log_ticks, title_style,
    transport_color,
};

/// One line: points `(x, y, ok)`; a point that is not ok is drawn as a red cross.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Legend text.
    pub label: String,
    /// Transport whose colour the line takes.
    pub transport: String,
    /// Dashed (a second series of the same transport, e.g. p50 beside p99, binary beside text).
    pub dashed: bool,
    /// The points, in x order.
    pub points: Vec<(f64, f64, bool)>,
}

/// A horizontal reference line with its label (the 100 ms threshold).
#[derive(Debug, Clone)]
pub(crate) struct Threshold {
    /// Height.
    pub y: f64,
    /// Label written above its right end.
    pub label: String,
}

/// Lines on log-log axes.
pub(crate) struct LogLines {
    /// File stem.
    pub name: String,
    /// Chart title.
    pub title: String,
    /// X axis description.
    pub x_desc: String,
    /// Y axis description.
    pub y_desc: String,
    /// Tick labels of the x axis, e.g. `p99` at 2.0 on a "nines" axis; empty for numbers.
    pub x_ticks: Vec<(f64, String)>,
    /// The lines.
    pub lines: Vec<Line>,
    /// An optional reference line.
    pub threshold: Option<Threshold>,
}

/// Bounds of a log axis holding every value: whole decades around them.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if max <= 0.0 {
        return (1.0, 10.0);
    }
    let lo = 10f64.powf(min.log10().floor());
    let mut hi = 10f64.powf(max.log10().ceil());
    if hi <= lo {
        hi = lo * 10.0;
    }
    (lo, hi)
}

impl Chart for LogLines {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let points = || self.lines.iter().flat_map(|l| l.points.iter());
        let (x_lo, x_hi) = if self.x_ticks.is_empty() {
            let (lo, hi) = decades(points().map(|p| p.0));
            // The data's own span (not whole decades) on x, so points fill the width.
            let xs = points().map(|p| p.0).filter(|x| *x > 0.0);
            let (min, max) = xs.fold((hi, lo), |(a, b), x| (a.min(x), b.max(x)));
            if min < max { (min, max) } else { (lo, hi) }
        } else {
            let first = self.x_ticks.first().map_or(0.0, |t| t.0);
            let last = self.x_ticks.last().map_or(1.0, |t| t.0);
            (first, last)
        };
        let ys = points()
            .map(|p| p.1)
            .chain(self.threshold.iter().map(|t| t.y));
        let (y_lo, y_hi) = decades(ys);
        let x_pad = (x_hi / x_lo).powf(0.04);
        let y_top = y_hi * (y_hi / y_lo).powf(0.25);
        let y_bottom = y_lo / (y_hi / y_lo).powf(0.03);
        let x_range = (x_lo / x_pad)..(x_hi * x_pad);
        let labels: Vec<(f64, String)> = if self.x_ticks.is_empty() {
            log_ticks(x_range.start, x_range.end)
                .into_iter()
                .map(|v| (v, log_tick(v)))
                .collect()
        } else {
            self.x_ticks.clone()
        };
        let keys: Vec<f64> = labels.iter().map(|l| l.0).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, title_style())
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(
                x_range.clone().log_scale().with_key_points(keys),
                (y_bottom..y_top)
                    .log_scale()
                    .with_key_points(log_ticks(y_lo, y_hi)),
            )
            .map_err(err)?;
        let x_label = |x: &f64| {
            labels
                .iter()
                .find(|(v, _)| (v / x - 1.0).abs() < 1e-6)
                .map(|(_, l)| l.clone())
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&|y| log_tick(*y))
            .label_style(label_style())
            .axis_desc_style(label_style())
            .draw()
            .map_err(err)?;
        if let Some(t) = &self.threshold {
            let style = FLAG_COLOR.stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x_range.start, t.y), (x_range.end, t.y)],
                    10,
                    6,
                    style,
                ))
                .map_err(err)?
                .label(t.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        let mut any_flagged = false;
        for line in &self.lines {
            if line.points.is_empty() {
                continue;
            }
            let color = transport_color(&line.transport);
            let style = color.stroke_width(if line.dashed { 2 } else { 3 });
            let xy = line.points.iter().map(|&(x, y, _)| (x, y));
            let drawn = if line.dashed {
                chart
                    .draw_series(DashedLineSeries::new(xy, 8, 5, style))
                    .map_err(err)?
            } else {
                chart.draw_series(LineSeries::new(xy, style)).map_err(err)?
            };
            let dashed = line.dashed;
            drawn.label(line.label.clone()).legend(move |(x, y)| {
                if dashed {
                    PathElement::new(vec![(x, y), (x + 8, y)], style)
                } else {
                    PathElement::new(vec![(x, y), (x + 20, y)], style)
                }
            });
            for &(x, y, ok) in &line.points {
                any_flagged |= !ok;
                if ok {
                    chart
                        .draw_series(std::iter::once(Circle::new((x, y), 4, color.filled())))
                        .map_err(err)?;
                } else {
                    chart
                        .draw_series(std::iter::once(Cross::new(
                            (x, y),
                            8,
                            FLAG_COLOR.stroke_width(3),
                        )))
                        .map_err(err)?;
                }
            }
        }
        if any_flagged {
            chart
                .draw_series(std::iter::empty::<Cross<(f64, f64), i32>>())
                .map_err(err)?
                .label(FLAG_LABEL)
                .legend(|c| Cross::new(c, 6, FLAG_COLOR.stroke_width(3)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_enclose_every_value() {
        assert_eq!(decades([150.0, 4200.0].into_iter()), (100.0, 10_000.0));
        assert_eq!(decades([100.0].into_iter()), (100.0, 1000.0));
        assert_eq!(decades(std::iter::empty()), (1.0, 10.0));
    }
}

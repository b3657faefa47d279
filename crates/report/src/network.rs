//! "Emulated networks": a run measured over several emulated networks (`run --network`, each
//! case's `params.network`) gets the study's total time and the connect median per transport
//! side by side for each network, with charts, and the number of round trips each figure grew
//! by (its growth over the first network divided by the added round-trip time). The rest of
//! the report shows the first network's cases.

use std::fmt::Write;

use plotters::coord::Shift;
use plotters::prelude::*;
use pushbench_schema::{CaseResult, RunFile};

use crate::charts::{Chart, draw_legend, err, label_style, title_style, transport_color};
use crate::markdown::status;
use crate::study::TRANSPORT_ORDER;

/// The networks measured in `file`, in run order (`params.network`).
pub(crate) fn networks(file: &RunFile) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in file
        .cases
        .iter()
        .filter_map(|c| c.params.network.as_deref())
    {
        if !out.iter().any(|o| o == n) {
            out.push(n.to_owned());
        }
    }
    out
}

/// `file` with only the first network's cases (and cases without one), when it holds several.
pub(crate) fn first_only(file: &RunFile) -> RunFile {
    let networks = networks(file);
    let mut out = file.clone();
    if let [first, _, ..] = networks.as_slice() {
        out.cases
            .retain(|c| c.params.network.as_deref().is_none_or(|n| n == first));
    }
    out
}

/// The round-trip time a network adds, ms, from its normalised spec (`rtt=25ms,...`).
fn rtt_ms(network: &str) -> Option<f64> {
    let rtt = network.split(',').find_map(|kv| kv.strip_prefix("rtt="))?;
    if let Some(us) = rtt.strip_suffix("us") {
        us.parse::<f64>().ok().map(|v| v / 1000.0)
    } else {
        rtt.strip_suffix("ms")?.parse().ok()
    }
}

/// A column heading: the rtt alone when loss and rate are the same in every network.
fn labels(networks: &[String]) -> Vec<String> {
    let rest = |n: &str| {
        n.split_once(',')
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default()
    };
    let same_rest = networks.windows(2).all(|w| rest(&w[0]) == rest(&w[1]));
    networks
        .iter()
        .map(|n| {
            if same_rest {
                n.split(',').next().unwrap_or(n).to_owned()
            } else {
                n.clone()
            }
        })
        .collect()
}

/// One figure compared across networks.
struct Figure {
    /// Chart file stem.
    name: String,
    /// Chart title and table heading.
    title: String,
    scenario: &'static str,
    keep: Box<dyn Fn(&CaseResult) -> bool>,
    /// The figure, ms.
    get: fn(&CaseResult) -> Option<f64>,
}

fn figures(file: &RunFile) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut ns: Vec<u64> = file
        .cases
        .iter()
        .filter(|c| c.scenario == "study" && c.variant == "sequential")
        .filter_map(|c| c.params.n)
        .collect();
    ns.sort_unstable();
    ns.dedup();
    if let Some(&n) = ns.last() {
        out.push(Figure {
            name: "network-study-connect".to_owned(),
            title: format!(
                "Study, {n} sequential calls: connect ms (opening the session, before the first call)"
            ),
            scenario: "study",
            keep: Box::new(move |c| c.variant == "sequential" && c.params.n == Some(n)),
            get: |c| c.metrics.connect_ms,
        });
    }
    for n in ns {
        out.push(Figure {
            name: format!("network-study-n{n}"),
            title: format!("Study, {n} sequential calls: total ms, connect included"),
            scenario: "study",
            keep: Box::new(move |c| c.variant == "sequential" && c.params.n == Some(n)),
            get: |c| c.metrics.elapsed_ms,
        });
    }
    for (variant, what) in [
        ("first-message", "one connection at a time"),
        ("ramp", "a ramp, all at once"),
    ] {
        if file
            .cases
            .iter()
            .any(|c| c.scenario == "connect" && c.variant == variant)
        {
            out.push(Figure {
                name: format!("network-connect-{variant}"),
                title: format!("Connect ({what}): median ms from TCP connect to first message"),
                scenario: "connect",
                keep: Box::new(move |c| c.variant == variant),
                get: |c| c.metrics.p50_us.map(|us| us / 1000.0),
            });
        }
    }
    out
}

fn find<'a>(
    file: &'a RunFile,
    figure: &Figure,
    transport: &str,
    network: &str,
) -> Option<&'a CaseResult> {
    file.cases.iter().find(|c| {
        c.scenario == figure.scenario
            && c.transport == transport
            && c.params.network.as_deref() == Some(network)
            && c.params.tls != Some(true)
            && (figure.keep)(c)
    })
}

/// Round trips a figure grew by from the first network to `network`: the growth divided by
/// the round-trip time added (only when the rtt grew and both cases are clean).
fn round_trips(first: (&CaseResult, f64, &str), then: (&CaseResult, f64, &str)) -> Option<f64> {
    let added = rtt_ms(then.2)? - rtt_ms(first.2)?;
    (added > 0.0 && first.0.is_ok() && then.0.is_ok()).then(|| (then.1 - first.1) / added)
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Appends the "Emulated networks" section when `file` holds cases of a network.
pub(crate) fn section(md: &mut String, file: &RunFile, charts: &[String]) {
    let networks = networks(file);
    if networks.is_empty() {
        return;
    }
    let heads = labels(&networks);
    md.push_str("## Emulated networks\n\n");
    let _ = writeln!(
        md,
        "Measured with `pushbench run --network` ({}): the clients ran in network namespace pb-client and \
         `pushbench serve` in pb-server, joined through pb-router (scripts/netns.sh), where a userspace \
         delay line (`pushbench delayline`, a TUN device) held every packet rtt/2 in each direction, \
         TCP handshakes included; loss is dropped per direction by nftables, rate limited per direction by \
         tc tbf. Server and clients run in separate processes here, so the server's CPU is not measured. \
         {}\n",
        networks
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
        if networks.len() > 1 {
            format!(
                "The other sections of this report show the first network's (`{}`) cases only.",
                networks[0]
            )
        } else {
            String::new()
        }
    );
    if networks.len() > 1 {
        let _ = writeln!(
            md,
            "\"+RTTs\" is how many round trips a figure grew by: (figure − figure at {}) ÷ the round-trip \
             time added; near a whole number, it counts the network round trips the transport waited for \
             (the delay line's own lateness adds a fraction per round trip). Before its first call a \
             transport waits for the TCP handshake, then the WebSocket upgrade, or the GET that opens the \
             SSE stream or the long-polling session; SSE and long polling also open a second connection \
             for the calls, each call an HTTP POST whose reply comes down the event stream or the poll \
             response. The raw-TCP floor waits for its TCP handshake only.\n",
            heads[0]
        );
    }
    for figure in figures(file) {
        let any = TRANSPORT_ORDER.iter().any(|t| {
            networks
                .iter()
                .any(|n| find(file, &figure, t, n).and_then(figure.get).is_some())
        });
        if !any {
            continue;
        }
        let _ = writeln!(md, "### {}\n", figure.title);
        if charts.contains(&figure.name) {
            let _ = writeln!(md, "![{}](charts/{}.png)\n", figure.title, figure.name);
        }
        let _ = write!(md, "| transport |");
        for (i, head) in heads.iter().enumerate() {
            let _ = write!(md, " {head} ms |");
            if i > 0 {
                let _ = write!(md, " +RTTs |");
            }
        }
        md.push_str("\n|---|");
        for i in 0..heads.len() {
            md.push_str(if i > 0 { "---:|---:|" } else { "---:|" });
        }
        md.push('\n');
        for t in TRANSPORT_ORDER {
            let cells: Vec<Option<(&CaseResult, f64, &str)>> = networks
                .iter()
                .map(|n| {
                    let c = find(file, &figure, t, n)?;
                    Some((c, (figure.get)(c)?, n.as_str()))
                })
                .collect();
            if cells.iter().all(Option::is_none) {
                continue;
            }
            let _ = write!(md, "| {t} |");
            for (i, cell) in cells.iter().enumerate() {
                let value = match cell {
                    Some((c, v, _)) if c.is_ok() => ms(*v),
                    Some((c, v, _)) => format!("{} ({})", ms(*v), status(c)),
                    None => "—".to_owned(),
                };
                let _ = write!(md, " {value} |");
                if i > 0 {
                    let trips = match (cells[0], *cell) {
                        (Some(first), Some(then)) => round_trips(first, then),
                        _ => None,
                    };
                    let _ = write!(
                        md,
                        " {} |",
                        trips.map_or("—".to_owned(), |r| format!("{r:.1}"))
                    );
                }
            }
            md.push('\n');
        }
        md.push('\n');
    }
}

/// One line per transport across the networks (categorical x axis, in run order).
pub(crate) struct NetworkLines {
    name: String,
    title: String,
    heads: Vec<String>,
    /// Per transport: a value (ms) or none per network.
    lines: Vec<(String, Vec<Option<f64>>)>,
}

/// The charts of the section: one per figure with data for at least one transport.
pub(crate) fn charts(file: &RunFile) -> Vec<NetworkLines> {
    let networks = networks(file);
    if networks.is_empty() {
        return Vec::new();
    }
    let heads = labels(&networks);
    figures(file)
        .into_iter()
        .filter_map(|figure| {
            let lines: Vec<(String, Vec<Option<f64>>)> = TRANSPORT_ORDER
                .iter()
                .map(|t| {
                    let values = networks
                        .iter()
                        .map(|n| find(file, &figure, t, n).and_then(figure.get))
                        .collect();
                    ((*t).to_owned(), values)
                })
                .filter(|(_, v): &(String, Vec<Option<f64>>)| v.iter().any(Option::is_some))
                .collect();
            (!lines.is_empty()).then(|| NetworkLines {
                name: figure.name,
                title: figure.title,
                heads: heads.clone(),
                lines,
            })
        })
        .collect()
}

impl Chart for NetworkLines {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let max = self
            .lines
            .iter()
            .flat_map(|(_, v)| v.iter().flatten())
            .fold(0.0f64, |m, v| m.max(*v));
        let top = if max > 0.0 { max * 1.25 } else { 1.0 };
        let last = self.heads.len().saturating_sub(1) as f64;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, title_style())
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(-0.3f64..last + 0.3, 0f64..top)
            .map_err(err)?;
        let heads = self.heads.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(self.heads.len() * 2 + 1)
            .x_label_formatter(&move |x| {
                let i = x.round();
                if (x - i).abs() > 0.01 || i < 0.0 {
                    return String::new();
                }
                heads.get(i as usize).cloned().unwrap_or_default()
            })
            .x_desc("emulated network (round-trip time added)")
            .y_desc("ms")
            .label_style(label_style())
            .axis_desc_style(label_style())
            .draw()
            .map_err(err)?;
        for (transport, values) in &self.lines {
            let color = transport_color(transport);
            let points: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (i as f64, v)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
                .map_err(err)?
                // The values in the legend: labels beside points collide when values meet.
                .label(format!(
                    "{transport}: {} ms",
                    values
                        .iter()
                        .map(|v| v.map_or("—".to_owned(), ms))
                        .collect::<Vec<_>>()
                        .join(" / ")
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 5, color.filled())))
                .map_err(err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushbench_schema::RunInfo;

    fn case(scenario: &str, t: &str, variant: &str, network: &str, ms: f64) -> CaseResult {
        let mut c = CaseResult::new(scenario, t, variant);
        c.params.network = Some(network.to_owned());
        if scenario == "study" {
            c.params.n = Some(100);
            c.metrics.elapsed_ms = Some(ms);
            c.metrics.connect_ms = Some(ms / 40.0);
        } else {
            c.metrics.p50_us = Some(ms * 1000.0);
        }
        c.integrity.sent = 1;
        c.integrity.received = 1;
        c
    }

    #[test]
    fn tables_count_round_trips_from_the_first_network() {
        let mut run = RunFile::new(RunInfo::default());
        let (zero, fifty) = ("rtt=0ms,loss=0%,rate=none", "rtt=50ms,loss=0%,rate=none");
        run.cases
            .push(case("connect", "ws", "first-message", zero, 1.0));
        run.cases
            .push(case("connect", "ws", "first-message", fifty, 101.0));
        run.cases
            .push(case("study", "sse", "sequential", zero, 40.0));
        run.cases
            .push(case("study", "sse", "sequential", fifty, 5140.0));
        let mut md = String::new();
        section(&mut md, &run, &["network-connect-first-message".to_owned()]);
        assert!(md.contains("## Emulated networks"), "{md}");
        assert!(
            md.contains("| transport | rtt=0ms ms | rtt=50ms ms | +RTTs |"),
            "{md}"
        );
        assert!(md.contains("| ws | 1.0 | 101 | 2.0 |"), "{md}");
        assert!(md.contains("| sse | 40.0 | 5140 | 102.0 |"), "{md}");
        assert!(
            md.contains("charts/network-connect-first-message.png"),
            "{md}"
        );
        assert!(md.contains("| sse | 1.0 | 128 | 2.5 |"), "{md}");
        // study connect, study total for n=100, connect first-message.
        assert_eq!(charts(&run).len(), 3);
        assert_eq!(first_only(&run).cases.len(), 2);
    }

    #[test]
    fn a_run_without_networks_has_no_section() {
        let mut run = RunFile::new(RunInfo::default());
        run.cases.push(CaseResult::new("study", "ws", "sequential"));
        let mut md = String::new();
        section(&mut md, &run, &[]);
        assert!(md.is_empty());
        assert!(charts(&run).is_empty());
    }

    #[test]
    fn headings_keep_loss_and_rate_when_they_differ() {
        let nets = ["rtt=0ms,loss=0%,rate=none", "rtt=0ms,loss=1%,rate=none"].map(String::from);
        assert_eq!(labels(&nets), nets.to_vec());
        assert_eq!(rtt_ms("rtt=800us,loss=0%,rate=none"), Some(0.8));
    }
}

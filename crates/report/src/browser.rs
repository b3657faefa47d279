//! "Browser clients": the same cases run by headless Chromium (`params.client = "browser"`)
//! and by pushbench's Rust drivers in one run, side by side per transport. Browser cases are
//! kept out of the other sections (which compare transports under one client) unless the run
//! has nothing else.

use std::borrow::Cow;
use std::fmt::Write as _;

use pushbench_schema::{CaseResult, RunFile};

use crate::charts::{Bar, BarSeries, LogBars};
use crate::markdown::{opt, status};
use crate::study::TRANSPORT_ORDER;

/// True for a case a browser measured.
pub(crate) fn is_browser(case: &CaseResult) -> bool {
    case.params.client.as_deref() == Some("browser")
}

/// The cases the other sections show: without the browser's, unless the run has only those.
pub(crate) fn main_cases(file: &RunFile) -> Cow<'_, RunFile> {
    let browser = file.cases.iter().filter(|c| is_browser(c)).count();
    if browser == 0 || browser == file.cases.len() {
        return Cow::Borrowed(file);
    }
    let mut rust = file.clone();
    rust.cases.retain(|c| !is_browser(c));
    Cow::Owned(rust)
}

/// One figure compared between the two clients.
struct Figure {
    /// Chart file stem.
    name: String,
    /// What is compared, for titles and the table.
    what: String,
    /// The y axis.
    y_desc: &'static str,
    /// Which cases: scenario and a filter.
    scenario: &'static str,
    keep: Box<dyn Fn(&CaseResult) -> bool>,
    /// The figure of a case.
    value: fn(&CaseResult) -> Option<f64>,
    /// How the figure is written.
    unit: &'static str,
    /// True when higher is better (for the ratio's reading).
    higher_is_better: bool,
}

/// The figures a run's browser cases allow: study elapsed time at the largest N, push
/// messages per second per flush policy, latency p50 and p99.
fn figures(file: &RunFile) -> Vec<Figure> {
    let browser: Vec<&CaseResult> = file.cases.iter().filter(|c| is_browser(c)).collect();
    let mut out = Vec::new();
    if let Some(n) = browser
        .iter()
        .filter(|c| c.scenario == "study")
        .filter_map(|c| c.params.n)
        .max()
    {
        out.push(Figure {
            name: format!("browser-study-n{n}"),
            what: format!("study, {n} sequential calls: elapsed ms"),
            y_desc: "elapsed ms, connect included (log scale, lower is faster)",
            scenario: "study",
            keep: Box::new(move |c| c.variant == "sequential" && c.params.n == Some(n)),
            value: |c| c.metrics.elapsed_ms,
            unit: "ms",
            higher_is_better: false,
        });
    }
    for flush in ["per_message", "batched"] {
        if browser
            .iter()
            .any(|c| c.scenario == "push" && c.params.flush.as_deref() == Some(flush))
        {
            out.push(Figure {
                name: format!("browser-push-{flush}"),
                what: format!("push, {flush}: messages per second"),
                y_desc: "messages per second (log scale, higher is faster)",
                scenario: "push",
                keep: Box::new(move |c| c.params.flush.as_deref() == Some(flush)),
                value: |c| c.metrics.msgs_per_s,
                unit: "msgs/s",
                higher_is_better: true,
            });
        }
    }
    if browser.iter().any(|c| c.scenario == "latency") {
        for (label, value) in [
            (
                "p50",
                (|c: &CaseResult| c.metrics.p50_us) as fn(&CaseResult) -> Option<f64>,
            ),
            ("p99", |c: &CaseResult| c.metrics.p99_us),
        ] {
            out.push(Figure {
                name: format!("browser-latency-{label}"),
                what: format!("latency, 1 client: {label} µs"),
                y_desc: "latency from the scheduled send, µs (log scale, lower is faster)",
                scenario: "latency",
                keep: Box::new(|c| c.params.clients == Some(1)),
                value,
                unit: "µs",
                higher_is_better: false,
            });
        }
    }
    out
}

/// The case of `client` (`rust` also matches runs without `params.client`) for `transport`.
fn find<'a>(
    file: &'a RunFile,
    figure: &Figure,
    transport: &str,
    browser: bool,
) -> Option<&'a CaseResult> {
    file.cases.iter().find(|c| {
        c.scenario == figure.scenario
            && c.transport == transport
            && c.params.tls != Some(true)
            && is_browser(c) == browser
            && (figure.keep)(c)
    })
}

/// One chart per figure: the Rust client's bar and the browser's per transport.
pub(crate) fn charts(file: &RunFile) -> Vec<LogBars> {
    figures(file)
        .into_iter()
        .map(|figure| {
            let series = |label: &str, browser: bool| BarSeries {
                label: label.to_owned(),
                bars: TRANSPORT_ORDER
                    .iter()
                    .map(|t| {
                        let c = find(file, &figure, t, browser)?;
                        let value = (figure.value)(c)?;
                        Some(Bar {
                            value,
                            ok: c.is_ok(),
                            text: short(value),
                        })
                    })
                    .collect(),
            };
            LogBars {
                name: figure.name.clone(),
                title: format!("Browser vs Rust client, {}", figure.what),
                y_desc: figure.y_desc,
                series: vec![series("rust", false), series("browser", true)],
            }
        })
        .collect()
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The "Browser clients" section: what the browser ran, then per figure a chart and a table of
/// both clients per transport; absent when the run has no browser case.
pub(crate) fn section(md: &mut String, file: &RunFile, charts: &[String]) {
    let browser: Vec<&CaseResult> = file.cases.iter().filter(|c| is_browser(c)).collect();
    if browser.is_empty() {
        return;
    }
    // A merged run (`pushbench merge`) keeps each source's configuration under `merged_from`.
    let config = &file.run.config;
    let merged = config["merged_from"].as_array().into_iter().flatten();
    let version = std::iter::once(&config["browser"])
        .chain(merged.map(|source| &source["config"]["browser"]))
        .find_map(|browser| browser["version"].as_str())
        .unwrap_or("");
    let version = if version.is_empty() {
        "headless Chromium".to_owned()
    } else {
        format!("headless {version}")
    };
    let _ = write!(
        md,
        "## Browser clients\n\n\
         {} case(s) here were run by {version} instead of pushbench's Rust drivers: the browser loads \
         `/bench/browser.html` from the same in-process server, speaks the same protocol with its own \
         `WebSocket`, `EventSource` and `fetch` (`/ws`; `/sse?session=new` + `POST /rpc`; `/poll` + `POST /rpc`), \
         counts every message by sequence number as the drivers do, times with `performance.now()` and posts its \
         counts to `/bench/result`. One fresh browser (and profile) per case; starting it is outside the clock. \
         Study latency is send-to-reply on the page's clock; latency-scenario figures are receipt minus the \
         server's scheduled send time through a clock offset read over a WebSocket from `/bench/clock/ws`, accurate to ± the \
         *clock ±* column; push has no browser latency (throughput only). Browsers cannot open raw TCP, so \
         there is no browser tcp case.\n\n",
        browser.len()
    );
    let figures = figures(file);
    let mut compared = false;
    for figure in &figures {
        let rows: Vec<(&str, Option<&CaseResult>, &CaseResult)> = TRANSPORT_ORDER
            .iter()
            .filter_map(|t| {
                let b = find(file, figure, t, true)?;
                Some((*t, find(file, figure, t, false), b))
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        compared = true;
        let _ = writeln!(md, "### {}\n", capitalise(&figure.what));
        if charts.contains(&figure.name) {
            let _ = writeln!(
                md,
                "![browser vs Rust client, {}](charts/{name}.png) ([SVG](charts/{name}.svg))\n",
                figure.what,
                name = figure.name
            );
        }
        let clock = figure.scenario == "latency";
        let _ = writeln!(
            md,
            "| transport | Rust client {unit} | browser {unit} | browser ÷ Rust | browser sent / received | {}browser status |\n|---|---|---|---|---|{}---|",
            if clock { "clock ± µs | " } else { "" },
            if clock { "---|" } else { "" },
            unit = figure.unit,
        );
        for (t, rust, b) in rows {
            let r = rust.and_then(|c| (figure.value)(c));
            let v = (figure.value)(b);
            let ratio = match (r, v) {
                (Some(r), Some(v)) if r > 0.0 => Some(v / r),
                _ => None,
            };
            let clock_cell = if clock {
                format!(
                    "{} | ",
                    opt(b.metrics.clock_uncertainty_us, |u| format!("{u:.0}"))
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                md,
                "| {t} | {} | {} | {} | {} / {} | {clock_cell}{} |",
                opt(r, short),
                opt(v, short),
                opt(ratio, |x| format!("{x:.2}×")),
                b.integrity.sent,
                b.integrity.received,
                status(b)
            );
        }
        let reading = if figure.higher_is_better {
            "below 1 means the browser is slower"
        } else {
            "above 1 means the browser is slower"
        };
        let _ = writeln!(md, "\nbrowser ÷ Rust: {reading}.\n");
    }
    if !compared {
        md.push_str(
            "This run has no browser figure to compare with the Rust client (`--client both` runs both).\n\n",
        );
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().collect::<String>() + chars.as_str()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushbench_schema::RunInfo;

    fn case(client: Option<&str>, transport: &str, elapsed: f64) -> CaseResult {
        let mut c = CaseResult::new("study", transport, "sequential");
        c.params.n = Some(100);
        c.params.client = client.map(str::to_owned);
        c.metrics.elapsed_ms = Some(elapsed);
        c.integrity.sent = 100;
        c.integrity.received = 100;
        c
    }

    #[test]
    fn the_section_compares_each_transport_and_only_with_browser_cases() {
        let mut file = RunFile::new(RunInfo::default());
        file.cases.push(case(None, "ws", 10.0));
        file.cases.push(case(None, "tcp", 5.0));
        let mut md = String::new();
        section(&mut md, &file, &[]);
        assert!(md.is_empty(), "no browser case, no section");
        assert!(charts(&file).is_empty());

        file.cases.push(case(Some("browser"), "ws", 25.0));
        let mut md = String::new();
        section(&mut md, &file, &["browser-study-n100".into()]);
        assert!(md.starts_with("## Browser clients"), "{md}");
        assert!(
            md.contains("| ws | 10.0 | 25.0 | 2.50× | 100 / 100 | ok |"),
            "{md}"
        );
        assert!(!md.contains("| tcp |"), "{md}");
        assert!(md.contains("charts/browser-study-n100.png"), "{md}");
        let [chart] = charts(&file).try_into().ok().unwrap();
        assert_eq!(
            chart.series[0].bars[0].as_ref().map(|b| b.value),
            Some(10.0)
        );
        assert_eq!(
            chart.series[1].bars[0].as_ref().map(|b| b.value),
            Some(25.0)
        );

        assert_eq!(main_cases(&file).cases.len(), 2, "browser cases set aside");
    }
}

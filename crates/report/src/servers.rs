//! "Servers compared": a run holding cases of more than one server (`params.server`, e.g.
//! pushbench's own and a Node.js reference measured with `run --target`, combined by
//! `pushbench merge`) gets each server's figure side by side, per scenario, case and transport,
//! with the ratio to the first server. The rest of the report shows the first server's cases.

use std::collections::BTreeMap;
use std::fmt::Write;

use pushbench_schema::{CaseResult, RunFile};

use crate::charts::{Bar, BarSeries, LogBars};
use crate::markdown::{flag_reason, opt, status};
use crate::study::TRANSPORT_ORDER;

/// The label of pushbench's own server, listed first when present.
const OWN_SERVER: &str = "pushbench-axum";

/// The servers measured in `file`, pushbench's own first, then in order of appearance. Cases
/// without a label (older runs) are not counted.
pub(crate) fn labels(file: &RunFile) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for label in file.cases.iter().filter_map(|c| c.params.server.as_deref()) {
        if !labels.iter().any(|l| l == label) {
            labels.push(label.to_owned());
        }
    }
    if let Some(own) = labels.iter().position(|l| l == OWN_SERVER) {
        let own = labels.remove(own);
        labels.insert(0, own);
    }
    labels
}

/// `file` with only the cases of `server` (and unlabelled ones): what the rest of the report
/// shows when the run holds several servers.
pub(crate) fn only(file: &RunFile, server: &str) -> RunFile {
    let mut out = file.clone();
    out.cases
        .retain(|c| c.params.server.as_deref().is_none_or(|s| s == server));
    out
}

/// The figure a scenario is compared by: its value, what it is, and whether lower is better.
struct Figure {
    what: &'static str,
    lower_is_better: bool,
    get: fn(&CaseResult) -> Option<f64>,
}

fn figure(scenario: &str) -> Figure {
    match scenario {
        "study" => Figure {
            what: "elapsed ms, connect included (lower is faster)",
            lower_is_better: true,
            get: |c| c.metrics.elapsed_ms,
        },
        "push" | "payload" => Figure {
            what: "messages per second (higher is faster)",
            lower_is_better: false,
            get: |c| c.metrics.msgs_per_s,
        },
        "fanout" | "latency" => Figure {
            what: "p99 latency from the scheduled send time, µs (lower is better)",
            lower_is_better: true,
            get: |c| c.metrics.p99_us,
        },
        "roundtrip" => Figure {
            what: "p50 round trip, µs (lower is faster)",
            lower_is_better: true,
            get: |c| c.metrics.p50_us,
        },
        "connect" => Figure {
            what: "p50 connect to first message, µs (lower is faster)",
            lower_is_better: true,
            get: |c| c.metrics.p50_us,
        },
        _ => Figure {
            what: "elapsed ms (lower is faster)",
            lower_is_better: true,
            get: |c| c.metrics.elapsed_ms,
        },
    }
}

/// What tells a case from the others of its scenario and transport, the server aside.
fn case_label(c: &CaseResult) -> String {
    let p = &c.params;
    let mut parts = vec![c.variant.clone()];
    if let Some(n) = p.n {
        parts.push(format!("n={n}"));
    }
    if let Some(clients) = p.clients {
        parts.push(format!("{clients} clients"));
    }
    if let Some(flush) = &p.flush {
        parts.push(flush.clone());
    }
    if c.scenario != "study"
        && let Some(bytes) = p.payload_bytes
    {
        parts.push(format!("{bytes} B"));
    }
    if let Some(down) = p.down_ms {
        parts.push(format!("down={down}"));
    }
    parts.join(" ")
}

fn value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Appends the "Servers compared" section when `file` holds cases of two or more servers.
pub(crate) fn compared(md: &mut String, file: &RunFile) {
    let servers = labels(file);
    let [first, others @ ..] = servers.as_slice() else {
        return;
    };
    if others.is_empty() {
        return;
    }
    md.push_str("## Servers compared\n\n");
    let _ = writeln!(
        md,
        "This run holds cases of {} servers, measured by the same drivers, on the same host, with the \
         same configuration (`pushbench run --target URL` for a server in another process; runs combined \
         with `pushbench merge`). The other sections of this report show **{first}**'s cases only; here \
         each server's figure is side by side, with the ratio of each other server's figure to \
         {first}'s (for a \"lower is better\" figure a ratio above 1 means slower than {first}). A \
         flagged case (error or lost messages) gets no ratio.\n",
        servers.len()
    );
    for server in &servers {
        let cases: Vec<&CaseResult> = file
            .cases
            .iter()
            .filter(|c| c.params.server.as_deref() == Some(server))
            .collect();
        let flagged = cases.iter().filter(|c| !c.is_ok()).count();
        let _ = writeln!(
            md,
            "- **{server}**: {}; {} case(s), {flagged} flagged.",
            describe(file, server),
            cases.len()
        );
    }
    md.push('\n');
    for chart in charts(file) {
        let _ = writeln!(
            md,
            "![{}](charts/{name}.png) ([SVG](charts/{name}.svg))\n",
            chart.title,
            name = chart.name
        );
    }

    let mut scenarios: Vec<&str> = Vec::new();
    for c in &file.cases {
        if c.params.server.is_some() && !scenarios.contains(&c.scenario.as_str()) {
            scenarios.push(&c.scenario);
        }
    }
    for scenario in scenarios {
        table(md, file, scenario, &servers);
    }

    let flagged: Vec<&CaseResult> = file
        .cases
        .iter()
        .filter(|c| c.params.server.as_deref().is_some_and(|s| s != first) && !c.is_ok())
        .collect();
    if !flagged.is_empty() {
        md.push_str("Flagged cases of the other servers:\n\n");
        for c in flagged {
            let _ = writeln!(
                md,
                "- {} {} {} {}: {}",
                c.params.server.as_deref().unwrap_or(""),
                c.scenario,
                c.transport,
                case_label(c),
                flag_reason(c).unwrap_or_default().replace('|', "/")
            );
        }
        md.push('\n');
    }
}

/// How run.json's configuration describes `server` (its own, or a merged source's).
fn describe(file: &RunFile, server: &str) -> String {
    let config = &file.run.config;
    let own = std::iter::once(&config["server"]);
    let sources = config["merged_from"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| &s["config"]["server"]);
    own.chain(sources)
        .find(|s| s["label"].as_str() == Some(server))
        .and_then(|s| {
            let kind = s["kind"].as_str()?;
            let at = s["target"].as_str().or_else(|| s["http"].as_str());
            Some(match at {
                Some(at) => format!("{kind} at {at}"),
                None => kind.to_owned(),
            })
        })
        .unwrap_or_else(|| "not described in run.json".to_owned())
}

fn table(md: &mut String, file: &RunFile, scenario: &str, servers: &[String]) {
    let figure = figure(scenario);
    let first = &servers[0];
    // (transport rank, case label) -> server -> case
    let mut rows: BTreeMap<(usize, String, String), BTreeMap<&str, &CaseResult>> = BTreeMap::new();
    let mut order: Vec<(usize, String, String)> = Vec::new();
    for c in file.cases.iter().filter(|c| c.scenario == scenario) {
        let Some(server) = c.params.server.as_deref() else {
            continue;
        };
        let rank = TRANSPORT_ORDER
            .iter()
            .position(|t| *t == c.transport)
            .unwrap_or(TRANSPORT_ORDER.len());
        let key = (rank, c.transport.clone(), case_label(c));
        if !rows.contains_key(&key) {
            order.push(key.clone());
        }
        rows.entry(key).or_default().entry(server).or_insert(c);
    }
    let _ = writeln!(md, "### {scenario}: {}\n", figure.what);
    let mut head = String::from("| case | transport |");
    let mut rule = String::from("|---|---|");
    for s in servers {
        let _ = write!(head, " {s} |");
        rule.push_str("---|");
    }
    for s in &servers[1..] {
        let _ = write!(head, " {s} ÷ {first} |");
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    // Ratios per transport, for the summary line (geometric mean).
    let mut by_transport: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    for key in order {
        let cases = &rows[&key];
        let (_, transport, label) = &key;
        let mut line = format!("| {label} | {transport} |");
        for s in servers {
            let cell = cases.get(s.as_str()).map_or_else(
                || "—".to_owned(),
                |c| {
                    let v = opt((figure.get)(c), value);
                    if c.is_ok() {
                        v
                    } else {
                        format!("{v} ({})", status(c))
                    }
                },
            );
            let _ = write!(line, " {cell} |");
        }
        let base = cases
            .get(first.as_str())
            .filter(|c| c.is_ok())
            .and_then(|c| (figure.get)(c))
            .filter(|v| *v > 0.0);
        let slot = match by_transport.iter().position(|(t, _)| t == transport) {
            Some(i) => i,
            None => {
                by_transport.push((transport.clone(), vec![Vec::new(); servers.len() - 1]));
                by_transport.len() - 1
            }
        };
        for (i, s) in servers[1..].iter().enumerate() {
            let other = cases
                .get(s.as_str())
                .filter(|c| c.is_ok())
                .and_then(|c| (figure.get)(c));
            let ratio = base.zip(other).map(|(b, o)| o / b);
            if let Some(r) = ratio.filter(|r| *r > 0.0) {
                by_transport[slot].1[i].push(r);
            }
            let _ = write!(line, " {} |", opt(ratio, |r| format!("{r:.2}×")));
        }
        let _ = writeln!(md, "{line}");
    }
    md.push('\n');
    for (i, s) in servers[1..].iter().enumerate() {
        let means: Vec<String> = by_transport
            .iter()
            .filter_map(|(t, ratios)| {
                let r = &ratios[i];
                (!r.is_empty()).then(|| {
                    let mean = (r.iter().map(|x| x.ln()).sum::<f64>() / r.len() as f64).exp();
                    format!("{t} {mean:.2}× ({} case(s))", r.len())
                })
            })
            .collect();
        if !means.is_empty() {
            let better = if figure.lower_is_better {
                "above 1: slower"
            } else {
                "below 1: slower"
            };
            let _ = writeln!(
                md,
                "{s} ÷ {first}, geometric mean per transport ({better} than {first}): {}.\n",
                means.join(", ")
            );
        }
    }
}

/// The cases a comparison chart draws: scenario, a filter, the file stem and the title.
struct ChartSpec {
    name: String,
    title: String,
    scenario: &'static str,
    keep: Box<dyn Fn(&CaseResult) -> bool>,
}

/// One chart per compared scenario, the first two servers side by side per transport: study
/// (sequential, the largest N), push (each flush policy), fanout (the most clients).
pub(crate) fn charts(file: &RunFile) -> Vec<LogBars> {
    let servers = labels(file);
    let [first, second, ..] = servers.as_slice() else {
        return Vec::new();
    };
    let largest = |scenario: &str, get: fn(&CaseResult) -> Option<u64>| {
        file.cases
            .iter()
            .filter(|c| c.scenario == scenario && c.params.server.is_some())
            .filter_map(get)
            .max()
    };
    let mut specs = Vec::new();
    if let Some(n) = largest("study", |c| {
        (c.variant == "sequential").then_some(c.params.n?)
    }) {
        specs.push(ChartSpec {
            name: format!("servers-study-n{n}"),
            title: format!("Study, {n} sequential calls: elapsed ms per server (lower is faster)"),
            scenario: "study",
            keep: Box::new(move |c| c.variant == "sequential" && c.params.n == Some(n)),
        });
    }
    for flush in ["per_message", "batched"] {
        if file.cases.iter().any(|c| {
            c.scenario == "push"
                && c.params.server.is_some()
                && c.params.flush.as_deref() == Some(flush)
        }) {
            specs.push(ChartSpec {
                name: format!("servers-push-{flush}"),
                title: format!("Push ({flush}): messages per second per server (higher is faster)"),
                scenario: "push",
                keep: Box::new(move |c| c.params.flush.as_deref() == Some(flush)),
            });
        }
    }
    if let Some(clients) = largest("fanout", |c| {
        (c.variant == "broadcast").then_some(c.params.clients?)
    }) {
        specs.push(ChartSpec {
            name: format!("servers-fanout-c{clients}"),
            title: format!(
                "Fan-out to {clients} clients: p99 latency per server, µs (lower is better)"
            ),
            scenario: "fanout",
            keep: Box::new(move |c| c.variant == "broadcast" && c.params.clients == Some(clients)),
        });
    }
    specs
        .into_iter()
        .map(|spec| {
            let figure = figure(spec.scenario);
            let series = |server: &str| BarSeries {
                label: server.to_owned(),
                bars: TRANSPORT_ORDER
                    .iter()
                    .map(|t| {
                        let c = file.cases.iter().find(|c| {
                            c.scenario == spec.scenario
                                && c.transport == *t
                                && c.params.server.as_deref() == Some(server)
                                && (spec.keep)(c)
                        })?;
                        let value = (figure.get)(c)?;
                        Some(Bar {
                            value,
                            ok: c.is_ok(),
                            text: short(value),
                        })
                    })
                    .collect(),
            };
            LogBars {
                name: spec.name,
                title: spec.title,
                y_desc: match spec.scenario {
                    "study" => "elapsed ms (log scale)",
                    "push" => "messages per second (log scale)",
                    _ => "p99 latency µs (log scale)",
                },
                series: vec![series(first), series(second)],
            }
        })
        .collect()
}

/// A bar's label: 1234567 as 1.2M, 45678 as 46k, small values with two digits.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else {
        value(v)
    }
}

//! "HTTP/2 and the browser connection limit": the fan-out cases a run measured for SSE both
//! over HTTP/1.1 (one connection per client) and over HTTP/2 (streams multiplexed,
//! `params.http`), set side by side with the connections each opened.

use std::fmt::Write;

use pushbench_schema::{CaseResult, RunFile};

use crate::lines::{Line, LogLines};
use crate::markdown::{opt, status};

/// Whether a case ran its event streams over HTTP/2.
pub(crate) fn is_h2(case: &CaseResult) -> bool {
    case.params.http.as_deref() == Some("2")
}

/// An SSE fan-out case over HTTP/1.1 and its HTTP/2 twin with the same client count.
struct Pair<'a> {
    clients: u64,
    h1: Option<&'a CaseResult>,
    h2: &'a CaseResult,
}

fn pairs(file: &RunFile) -> Vec<Pair<'_>> {
    let fanout = |c: &&CaseResult| c.scenario == "fanout" && c.transport == "sse";
    let mut out: Vec<Pair<'_>> = file
        .cases
        .iter()
        .filter(fanout)
        .filter(|c| is_h2(c))
        .filter_map(|h2| {
            let clients = h2.params.clients?;
            let h1 = file.cases.iter().filter(fanout).find(|c| {
                c.params.http.as_deref() == Some("1.1") && c.params.clients == Some(clients)
            });
            Some(Pair { clients, h1, h2 })
        })
        .collect();
    out.sort_by_key(|p| p.clients);
    out
}

/// The section's charts: delivery p50/p99 by clients, and connections by clients, for each
/// HTTP version; none when the run has no HTTP/2 case.
pub(crate) fn charts(file: &RunFile) -> Vec<LogLines> {
    let pairs = pairs(file);
    if pairs.is_empty() {
        return Vec::new();
    }
    type Get = fn(&CaseResult) -> Option<f64>;
    // The HTTP/1.1 (false) or HTTP/2 (true) case of every pair.
    let series = |over_h2: bool, get: Get, scale: f64| {
        pairs
            .iter()
            .filter_map(|p| {
                let c = if over_h2 { Some(p.h2) } else { p.h1 }?;
                Some((p.clients as f64, get(c)? / scale, c.is_ok()))
            })
            .collect::<Vec<_>>()
    };
    let (h1, h2) = (false, true);
    let line = |label: &str, transport: &str, dashed: bool, points| Line {
        label: label.to_owned(),
        transport: transport.to_owned(),
        dashed,
        points,
    };
    let p99: Get = |c| c.metrics.p99_us;
    let p50: Get = |c| c.metrics.p50_us;
    let connections: Get = |c| c.metrics.connections.map(|n| n as f64);
    vec![
        LogLines {
            name: "http2-latency".into(),
            title: "SSE fan-out over HTTP/1.1 and HTTP/2: delivery latency by clients".into(),
            x_desc: "concurrent clients (log scale)".into(),
            y_desc: "delivery latency (ms, log scale)".into(),
            x_ticks: Vec::new(),
            lines: vec![
                line("HTTP/1.1 p99", "sse", false, series(h1, p99, 1000.0)),
                line("HTTP/1.1 p50", "sse", true, series(h1, p50, 1000.0)),
                line("HTTP/2 p99", "sse-h2", false, series(h2, p99, 1000.0)),
                line("HTTP/2 p50", "sse-h2", true, series(h2, p50, 1000.0)),
            ],
            threshold: None,
        },
        LogLines {
            name: "http2-connections".into(),
            title: "SSE fan-out: client connections opened by clients".into(),
            x_desc: "concurrent clients (log scale)".into(),
            y_desc: "TCP connections (log scale)".into(),
            x_ticks: Vec::new(),
            lines: vec![
                line("HTTP/1.1", "sse", false, series(h1, connections, 1.0)),
                line("HTTP/2", "sse-h2", false, series(h2, connections, 1.0)),
            ],
            threshold: None,
        },
    ]
}

/// The section; nothing when the run has no HTTP/2 case.
pub(crate) fn section(md: &mut String, file: &RunFile, charts: &[String]) {
    let pairs = pairs(file);
    let Some(last) = pairs.last() else {
        return;
    };
    md.push_str(
        "## HTTP/2 and the browser connection limit\n\n\
         Browsers open at most 6 HTTP/1.1 connections per origin, and an `EventSource` holds one for as long as it \
         is open: a 7th SSE stream to the same origin (a 7th tab, say) waits for one of the 6 to close. Over \
         HTTP/2 a browser multiplexes every stream of an origin over one connection, up to the server's \
         `SETTINGS_MAX_CONCURRENT_STREAMS` (commonly 100), so the limit no longer bites. This run measured the \
         server side of that: the same SSE fan-out once over HTTP/1.1 (one connection per client) and once over \
         HTTP/2 (h2c with prior knowledge, or h2 chosen by ALPN over TLS), the clients' streams put M to a \
         connection. `connections` is what the clients counted, not a computed figure.\n\n",
    );
    for name in ["http2-latency", "http2-connections"] {
        if charts.iter().any(|c| c == name) {
            let _ = writeln!(
                md,
                "![{name}](charts/{name}.png) ([SVG](charts/{name}.svg))\n"
            );
        }
    }
    md.push_str(
        "| clients | streams per connection | connections HTTP/1.1 / HTTP/2 | p50 ms HTTP/1.1 / HTTP/2 | p99 ms HTTP/1.1 / HTTP/2 | connect all ms HTTP/1.1 / HTTP/2 | bytes read HTTP/1.1 / HTTP/2 | recv/sent HTTP/2 | status HTTP/1.1 / HTTP/2 |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let ms = |v: Option<f64>| opt(v, |v| format!("{:.2}", v / 1000.0));
    let both = |h1: Option<&CaseResult>, h2: &CaseResult, f: &dyn Fn(&CaseResult) -> String| {
        format!("{} / {}", h1.map_or("—".into(), f), f(h2))
    };
    for p in &pairs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {}/{} | {} |",
            p.clients,
            opt(p.h2.params.streams_per_connection, |n| n.to_string()),
            both(p.h1, p.h2, &|c| opt(c.metrics.connections, |n| n
                .to_string())),
            both(p.h1, p.h2, &|c| ms(c.metrics.p50_us)),
            both(p.h1, p.h2, &|c| ms(c.metrics.p99_us)),
            both(p.h1, p.h2, &|c| opt(c.metrics.connect_ms, |v| format!(
                "{v:.1}"
            ))),
            both(p.h1, p.h2, &|c| opt(c.metrics.wire_bytes_down, |n| n
                .to_string())),
            p.h2.integrity.received,
            p.h2.integrity.sent,
            both(p.h1, p.h2, &status),
        );
    }
    let h2 = last.h2;
    let _ = write!(
        md,
        "\nAt {} clients this run's HTTP/2 clients received {} of {} messages over {} connection(s) (p99 {} ms)",
        last.clients,
        h2.integrity.received,
        h2.integrity.sent,
        opt(h2.metrics.connections, |n| n.to_string()),
        ms(h2.metrics.p99_us),
    );
    match last.h1 {
        Some(h1) => {
            let _ = writeln!(
                md,
                "; over HTTP/1.1 the same clients received {} of {} over {} connections (p99 {} ms). A browser \
                 would hold at most 6 of those HTTP/1.1 streams per origin open at once.\n",
                h1.integrity.received,
                h1.integrity.sent,
                opt(h1.metrics.connections, |n| n.to_string()),
                ms(h1.metrics.p99_us),
            );
        }
        None => md.push_str(".\n\n"),
    }
}

//! The scenarios beyond the study: latency, fan-out, connect and payload (charts and report
//! sections), and the measured comparison table that turns the usual WS-vs-SSE feature table
//! into figures from this run.

use std::fmt::Write;

use pushbench_core::LatencyHistogram;
use pushbench_schema::{CaseResult, RunFile};

use crate::charts::{Bar, BarSeries, LogBars};
use crate::lines::{Line, LogLines, Threshold};
use crate::markdown::{counts, opt, status, us};
use crate::study::{TRANSPORT_ORDER, client_counts, scenario_cases};

/// The "instant" threshold fan-out is judged by, µs.
const INSTANT_US: f64 = 100_000.0;
/// The payload size the comparison table quotes for binary overhead.
const BINARY_SIZE: u64 = 4096;

fn transport_label(t: &str) -> String {
    if t == "tcp" {
        "tcp (floor)".to_owned()
    } else {
        t.to_owned()
    }
}

fn image(md: &mut String, name: &str, alt: &str, charts: &[String]) {
    if charts.iter().any(|c| c == name) {
        let _ = writeln!(
            md,
            "![{alt}](charts/{name}.png) ([SVG](charts/{name}.svg))\n"
        );
    }
}

/// Percentile axis of the latency curves: x = 1 / (1 - q), so each "nine" is a decade.
const NINES: [(f64, &str); 6] = [
    (2.0, "p50"),
    (10.0, "p90"),
    (100.0, "p99"),
    (1000.0, "p99.9"),
    (10_000.0, "p99.99"),
    (100_000.0, "max"),
];

/// A case's latency curve: from its histogram when it has one, else its percentile fields.
fn percentile_curve(case: &CaseResult) -> Vec<(f64, f64)> {
    let histogram = case
        .histogram
        .as_deref()
        .and_then(|h| LatencyHistogram::from_base64(h).ok())
        .filter(|h| !h.is_empty());
    match histogram {
        Some(h) => {
            let mut points: Vec<(f64, f64)> =
                [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999]
                    .into_iter()
                    .map(|q| (1.0 / (1.0 - q), h.quantile_us(q)))
                    .collect();
            points.push((100_000.0, h.quantile_us(1.0)));
            points
        }
        None => {
            let m = &case.metrics;
            [
                (2.0, m.p50_us),
                (10.0, m.p90_us),
                (100.0, m.p99_us),
                (1000.0, m.p999_us),
                (100_000.0, m.max_us),
            ]
            .into_iter()
            .filter_map(|(x, y)| Some((x, y?)))
            .collect()
        }
    }
}

/// Charts of the new scenarios, in report order.
pub(crate) fn charts(file: &RunFile) -> (Vec<LogLines>, Vec<LogBars>) {
    let mut lines = Vec::new();
    let latency = scenario_cases(file, "latency");
    for clients in client_counts(&latency) {
        let rate = latency.iter().find_map(|c| c.params.rate).unwrap_or(0);
        lines.push(LogLines {
            name: format!("latency-c{clients}"),
            title: format!("Latency at {rate} msgs/s to {clients} client(s), by percentile"),
            x_desc: "percentile (each step one more nine)".into(),
            y_desc: "latency from scheduled send (µs, log scale)".into(),
            x_ticks: NINES.iter().map(|&(x, l)| (x, l.to_owned())).collect(),
            lines: TRANSPORT_ORDER
                .iter()
                .filter_map(|t| {
                    let c = latency
                        .iter()
                        .find(|c| c.transport == *t && c.params.clients == Some(clients))?;
                    Some(Line {
                        label: transport_label(t),
                        transport: (*t).to_owned(),
                        dashed: false,
                        points: percentile_curve(c)
                            .into_iter()
                            .map(|(x, y)| (x, y, c.is_ok()))
                            .collect(),
                    })
                })
                .collect(),
            threshold: None,
        });
    }
    let fanout = scenario_cases(file, "fanout");
    if !fanout.is_empty() {
        let mut fan_lines = Vec::new();
        for t in TRANSPORT_ORDER {
            let points = fanout_points(&fanout, t);
            if points.is_empty() {
                continue;
            }
            for (label, dashed, get) in [
                (
                    "p99",
                    false,
                    (|c: &CaseResult| c.metrics.p99_us) as fn(&CaseResult) -> _,
                ),
                ("p50", true, |c: &CaseResult| c.metrics.p50_us),
            ] {
                fan_lines.push(Line {
                    label: format!("{} {label}", transport_label(t)),
                    transport: t.to_owned(),
                    dashed,
                    points: points
                        .iter()
                        .filter_map(|c| {
                            Some((c.params.clients? as f64, get(c)? / 1000.0, c.is_ok()))
                        })
                        .collect(),
                });
            }
        }
        lines.push(LogLines {
            name: "fanout".into(),
            title: "Fan-out: delivery latency of a broadcast by number of clients".into(),
            x_desc: "concurrent clients (log scale)".into(),
            y_desc: "delivery latency (ms, log scale)".into(),
            x_ticks: Vec::new(),
            lines: fan_lines,
            threshold: Some(Threshold {
                y: INSTANT_US / 1000.0,
                label: "100 ms (instant threshold)".into(),
            }),
        });
    }
    let payload = scenario_cases(file, "payload");
    if !payload.is_empty() {
        let per_kind = |get: fn(&CaseResult) -> Option<f64>| {
            let mut out = Vec::new();
            for t in TRANSPORT_ORDER {
                for kind in ["text", "binary"] {
                    let mut points: Vec<(f64, f64, bool)> = payload
                        .iter()
                        .filter(|c| c.transport == t && c.variant == kind)
                        .filter_map(|c| Some((c.params.payload_bytes? as f64, get(c)?, c.is_ok())))
                        .collect();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    if !points.is_empty() {
                        out.push(Line {
                            label: format!("{} {kind}", transport_label(t)),
                            transport: t.to_owned(),
                            dashed: kind == "binary",
                            points,
                        });
                    }
                }
            }
            out
        };
        lines.push(LogLines {
            name: "payload-overhead".into(),
            title: "Payload: bytes on the wire per payload byte (lower is leaner)".into(),
            x_desc: "payload per message (bytes, log scale)".into(),
            y_desc: "wire bytes per payload byte (log scale)".into(),
            x_ticks: Vec::new(),
            lines: per_kind(|c| c.metrics.wire_per_payload_byte),
            threshold: None,
        });
        lines.push(LogLines {
            name: "payload-throughput".into(),
            title: "Payload: megabytes of payload per second (higher is faster)".into(),
            x_desc: "payload per message (bytes, log scale)".into(),
            y_desc: "payload MB/s (log scale)".into(),
            x_ticks: Vec::new(),
            lines: per_kind(|c| c.metrics.bytes_per_s.map(|b| b / 1e6)),
            threshold: None,
        });
    }
    let mut bars = Vec::new();
    let first = scenario_cases(file, "connect")
        .into_iter()
        .filter(|c| c.variant == "first-message")
        .collect::<Vec<_>>();
    if !first.is_empty() {
        let n = first.iter().find_map(|c| c.params.n).unwrap_or(0);
        let series = |label: &str, get: fn(&CaseResult) -> Option<f64>| BarSeries {
            label: label.to_owned(),
            bars: TRANSPORT_ORDER
                .iter()
                .map(|t| {
                    let c = first.iter().find(|c| c.transport == *t)?;
                    let value = get(c)?;
                    Some(Bar {
                        value,
                        ok: c.is_ok(),
                        text: format!("{value:.0}"),
                    })
                })
                .collect(),
        };
        bars.push(LogBars {
            name: "connect".into(),
            title: format!(
                "Connect: TCP connect to first server message, {n} connections (lower is faster)"
            ),
            y_desc: "time to first message (µs, log scale)",
            series: vec![
                series("p50", |c| c.metrics.p50_us),
                series("p99", |c| c.metrics.p99_us),
            ],
        });
    }
    if let Some(chart) = reconnect_chart(file) {
        bars.push(chart);
    }
    (lines, bars)
}

/// Recovery time after a drop, with resume, one series per downtime (at most two: the
/// shortest and the longest).
fn reconnect_chart(file: &RunFile) -> Option<LogBars> {
    let resumed: Vec<&CaseResult> = scenario_cases(file, "reconnect")
        .into_iter()
        .filter(|c| c.variant == "resume")
        .collect();
    let mut downs: Vec<u64> = resumed.iter().filter_map(|c| c.params.down_ms).collect();
    downs.sort_unstable();
    downs.dedup();
    if downs.len() > 2 {
        downs = vec![downs[0], downs[downs.len() - 1]];
    }
    let series = downs
        .iter()
        .map(|&down| BarSeries {
            label: format!("server down {down} ms after each drop"),
            bars: TRANSPORT_ORDER
                .iter()
                .map(|t| {
                    let c = resumed
                        .iter()
                        .find(|c| c.transport == *t && c.params.down_ms == Some(down))?;
                    let value = c.metrics.recovery_p50_ms?;
                    Some(Bar {
                        value,
                        ok: c.is_ok(),
                        text: format!("{value:.0}"),
                    })
                })
                .collect(),
        })
        .collect::<Vec<_>>();
    (!series.is_empty()).then(|| LogBars {
        name: "reconnect".into(),
        title: "Reconnect: drop to first message after it, with resume (median, lower is faster)"
            .into(),
        y_desc: "recovery time (ms, log scale)",
        series,
    })
}

/// Fan-out cases of `transport` (broadcast and search points), by client count.
fn fanout_points<'a>(cases: &[&'a CaseResult], transport: &str) -> Vec<&'a CaseResult> {
    let mut points: Vec<&CaseResult> = cases
        .iter()
        .copied()
        // HTTP/2 twins have their own section and chart.
        .filter(|c| c.transport == transport && c.params.clients.is_some())
        .filter(|c| !crate::http2::is_h2(c))
        .collect();
    points.sort_by_key(|c| c.params.clients);
    points
}

fn passes(case: &CaseResult) -> bool {
    case.is_ok() && case.metrics.p99_us.is_some_and(|p| p < INSTANT_US)
}

/// The largest measured client count whose p99 stayed under 100 ms, in words.
pub(crate) fn fanout_verdict(cases: &[&CaseResult], transport: &str) -> Option<String> {
    let points = fanout_points(cases, transport);
    let largest = points.last()?.params.clients?;
    let best = points
        .iter()
        .filter(|c| passes(c))
        .filter_map(|c| c.params.clients)
        .max();
    let first_fail = points
        .iter()
        .filter(|c| !passes(c))
        .filter_map(|c| c.params.clients)
        .filter(|&c| best.is_none_or(|b| c > b))
        .min();
    Some(match (best, first_fail) {
        (None, _) => format!(
            "none: even {} client(s) missed 100 ms p99 (or was flagged)",
            points[0].params.clients.unwrap_or(0)
        ),
        (Some(b), None) if b == largest => format!("≥ {b} (the largest tested)"),
        (Some(b), Some(f)) => format!("{b} (fails at {f})"),
        (Some(b), None) => b.to_string(),
    })
}

/// The sections of the new scenarios.
pub(crate) fn sections(md: &mut String, file: &RunFile, charts: &[String]) {
    latency(md, file, charts);
    fanout(md, file, charts);
    connect(md, file, charts);
    reconnect(md, file, charts);
    payload(md, file, charts);
}

fn reconnect(md: &mut String, file: &RunFile, charts: &[String]) {
    let cases = scenario_cases(file, "reconnect");
    if cases.is_empty() {
        return;
    }
    md.push_str(
        "## Reconnect: dropped connections, resumed or not\n\n\
         A live feed produces messages at a fixed rate whether or not anyone is connected, and the server \
         drops every connection after `drop every` messages; with `down ms` it then refuses connections for \
         that long, as a restarting server would. The client waits the retry delay and reconnects, as its \
         transport's clients do. SSE: the server announces the delay with `retry:` and numbers events with \
         `id:`; the client reconnects as a browser's `EventSource` does, sending `Last-Event-ID`, and the \
         server replays from a bounded buffer (`resume`). WebSockets have no such mechanism: the client \
         resumes at the application level, reconnecting with the last sequence number it saw. `no-resume` \
         reconnects without either and rejoins the live feed, so what was sent while it was away is lost: \
         those losses are the finding, not a fault (status \"lost by design\"). Recovery runs from the moment \
         the client notices a drop to the first message after it; delivery latency runs from each message's \
         production to its receipt, so replayed messages show how late they arrived.\n\n",
    );
    image(md, "reconnect", "recovery time after a drop", charts);
    md.push_str(
        "| transport | variant | down ms | drop every | retry ms | reconnects | recovery p50 / max ms | delivery p50 / max ms | sent/recv/lost/dup/ooo | status |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let ms = |v: Option<f64>| opt(v, |v| format!("{v:.1}"));
    for c in &cases {
        let (p, m) = (&c.params, &c.metrics);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} |",
            c.transport,
            c.variant,
            opt(p.down_ms, |n| n.to_string()),
            opt(p.drop_every, |n| n.to_string()),
            opt(p.retry_ms, |n| n.to_string()),
            opt(m.reconnects, |n| n.to_string()),
            ms(m.recovery_p50_ms),
            ms(m.recovery_max_ms),
            ms(m.p50_us.map(|v| v / 1e3)),
            ms(m.max_us.map(|v| v / 1e3)),
            counts(&c.integrity),
            status(c)
        );
    }
    md.push('\n');
}

fn latency(md: &mut String, file: &RunFile, charts: &[String]) {
    let cases = scenario_cases(file, "latency");
    if cases.is_empty() {
        return;
    }
    md.push_str(
        "## Latency at a steady rate\n\n\
         The server emits at a fixed rate to C subscribed clients (every client receives every message). \
         A pacer thread, outside the server's runtime, stamps each message with its *scheduled* send time and \
         latency is measured from that time to each client's receipt, on the host's monotonic clock: a server \
         that falls behind shows its delay in the figures instead of hiding it (no coordinated omission). The \
         pacer itself wakes from `sleep` some 0.1–0.2 ms late on this kind of VM; that lateness is part of every \
         transport's figure alike. Percentiles come from HDR histograms of every message.\n\n",
    );
    for clients in client_counts(&cases) {
        image(
            md,
            &format!("latency-c{clients}"),
            &format!("latency percentiles, {clients} clients"),
            charts,
        );
    }
    md.push_str(
        "| transport | clients | rate msgs/s | messages per client | p50 / p90 / p99 / p99.9 / max µs | deliveries/s | sent/recv/lost/dup/ooo | status |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for c in &cases {
        let m = &c.metrics;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} / {} / {} / {} / {} | {} | {} | {} |",
            c.transport,
            opt(c.params.clients, |n| n.to_string()),
            opt(c.params.rate, |n| n.to_string()),
            opt(c.params.n, |n| n.to_string()),
            us(m.p50_us),
            us(m.p90_us),
            us(m.p99_us),
            us(m.p999_us),
            us(m.max_us),
            opt(m.msgs_per_s, |v| format!("{v:.0}")),
            counts(&c.integrity),
            status(c)
        );
    }
    md.push('\n');
}

fn fanout(md: &mut String, file: &RunFile, charts: &[String]) {
    let cases = scenario_cases(file, "fanout");
    if cases.is_empty() {
        return;
    }
    md.push_str(
        "## Fan-out: one broadcast to many clients\n\n\
         Every interval the server broadcasts one message to C subscribed clients; latency runs from the \
         scheduled broadcast time to each client's receipt. Above the in-process limit the clients run in \
         separate driver processes (`pushbench drive`, each from its own loopback address), whose histograms are \
         merged without loss; `client processes` says where the clients ran (`server` when in the server's own \
         process). Points marked `search` were added by a bisection \
         towards the largest client count whose p99 stays under 100 ms, the usual threshold for \"instant\".\n\n",
    );
    image(md, "fanout", "fan-out latency by clients", charts);
    md.push_str("| transport | largest client count with p99 < 100 ms |\n|---|---|\n");
    for t in TRANSPORT_ORDER {
        if let Some(verdict) = fanout_verdict(&cases, t) {
            let _ = writeln!(md, "| {} | {verdict} |", transport_label(t));
        }
    }
    md.push_str(
        "\n| transport | variant | clients | client processes | broadcasts | interval ms | connect all ms | p50 / p99 / max ms | sent/recv/lost/dup/ooo | status |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut sorted = cases.clone();
    sorted.sort_by_key(|c| {
        let order = TRANSPORT_ORDER.iter().position(|t| *t == c.transport);
        (order, c.params.clients)
    });
    let ms = |v: Option<f64>| opt(v, |v| format!("{:.1}", v / 1000.0));
    let in_process_max = file.run.config["fanout"]["in_process_max"].as_u64();
    for c in sorted {
        let m = &c.metrics;
        let processes = match (c.params.clients, in_process_max) {
            (Some(clients), Some(max)) if clients <= max => "server".to_string(),
            _ => opt(c.params.processes, |n| n.to_string()),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} | {} |",
            c.transport,
            c.variant,
            opt(c.params.clients, |n| n.to_string()),
            processes,
            opt(c.params.n, |n| n.to_string()),
            opt(c.params.interval_us, |n| format!("{}", n / 1000)),
            opt(m.connect_ms, |v| format!("{v:.0}")),
            ms(m.p50_us),
            ms(m.p99_us),
            ms(m.max_us),
            counts(&c.integrity),
            status(c)
        );
    }
    md.push('\n');
}

fn connect(md: &mut String, file: &RunFile, charts: &[String]) {
    let cases = scenario_cases(file, "connect");
    if cases.is_empty() {
        return;
    }
    md.push_str(
        "## Connect: time to the first message\n\n\
         Each connection is timed from the start of its TCP connect to the server's first message (WebSocket: \
         the upgrade, then a subscription acknowledgement frame; SSE: `GET /sse`, then the first event; long \
         polling: the `GET /poll` answer naming the session; tcp: a subscribe frame and its acknowledgement). \
         `first-message`: connections one after another, each closed before the next. `ramp`: C connections \
         opened at once; the time until all are live and the rate they were accepted.\n\n",
    );
    image(md, "connect", "time to first message", charts);
    md.push_str(
        "| transport | variant | connections | p50 / p99 / max µs | all live ms | conns/s | sent/recv/lost/dup/ooo | status |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for c in &cases {
        let m = &c.metrics;
        let ramp = c.variant == "ramp";
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} / {} | {} | {} | {} | {} |",
            c.transport,
            c.variant,
            opt(c.params.clients.or(c.params.n), |n| n.to_string()),
            us(m.p50_us),
            us(m.p99_us),
            us(m.max_us),
            if ramp {
                opt(m.elapsed_ms, |v| format!("{v:.1}"))
            } else {
                "—".into()
            },
            if ramp {
                opt(m.conns_per_s, |v| format!("{v:.0}"))
            } else {
                "—".into()
            },
            counts(&c.integrity),
            status(c)
        );
    }
    md.push('\n');
}

fn payload(md: &mut String, file: &RunFile, charts: &[String]) {
    let cases = scenario_cases(file, "payload");
    if cases.is_empty() {
        return;
    }
    md.push_str(
        "## Payload: framing and encoding cost by size\n\n\
         The server pushes messages of each payload size (batched writes), as text (JSON with the payload in a \
         string of A-Z0-9) and as binary (16 header bytes and random bytes: WebSocket binary frames and raw tcp \
         frames; SSE and long polling are text-only and carry it as base64, whose 4/3 is part of what is \
         measured). \"Wire per payload byte\" is every byte the client read (headers, framing, envelope, \
         encoding) over the payload bytes delivered.\n\n",
    );
    image(
        md,
        "payload-overhead",
        "wire bytes per payload byte",
        charts,
    );
    image(md, "payload-throughput", "payload throughput", charts);
    md.push_str(
        "| transport | kind | payload B | messages | wire per payload byte | msgs/s | payload MB/s | sent/recv/lost/dup/ooo | status |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for c in &cases {
        let m = &c.metrics;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.transport,
            c.variant,
            opt(c.params.payload_bytes, |n| n.to_string()),
            opt(c.params.n, |n| n.to_string()),
            opt(m.wire_per_payload_byte, |v| format!("{v:.3}")),
            opt(m.msgs_per_s, |v| format!("{v:.0}")),
            opt(m.bytes_per_s, |v| format!("{:.1}", v / 1e6)),
            counts(&c.integrity),
            status(c)
        );
    }
    md.push('\n');
}

const NOT_MEASURED: &str = "not measured in this run";

/// One cell per web transport: the figure `get` finds for it, or [`NOT_MEASURED`].
fn cells(get: impl Fn(&str) -> Option<String>) -> [String; 3] {
    ["ws", "sse", "longpoll"].map(|t| get(t).unwrap_or_else(|| NOT_MEASURED.to_owned()))
}

fn find<'a>(
    file: &'a RunFile,
    scenario: &str,
    transport: &str,
    pick: impl Fn(&CaseResult) -> bool,
) -> Option<&'a CaseResult> {
    file.cases
        .iter()
        .filter(|c| c.scenario == scenario && c.transport == transport && pick(c))
        .max_by_key(|c| (c.params.n, c.params.clients))
}

fn flagged(c: &CaseResult, text: String) -> String {
    if c.is_ok() {
        text
    } else {
        format!("{text} (FLAGGED)")
    }
}

/// The usual WebSockets-vs-SSE feature table, each row filled from this run's cases (`file`:
/// the plain ones when the run has TLS twins; `full`: every case, for the Encryption row).
pub(crate) fn comparison(md: &mut String, file: &RunFile, full: &RunFile) {
    md.push_str(
        "## Measured comparison\n\n\
         The feature table that usually settles \"WebSockets or SSE?\", with this run's figures in place of \
         adjectives. The last column names the scenario each row comes from (its section is below); a row says so when this run did not measure it.\n\n\
         | aspect | WebSockets (ws) | SSE (sse) | long polling | what was measured |\n|---|---|---|---|---|\n",
    );
    let mut row = |aspect: &str, values: [String; 3], how: &str| {
        let _ = writeln!(
            md,
            "| {aspect} | {} | {} | {} | {how} |",
            values[0], values[1], values[2]
        );
    };
    row(
        "Direction",
        cells(|t| {
            let c = find(file, "study", t, |c| c.variant == "sequential")?;
            let up = c.metrics.wire_bytes_up? as f64 / c.params.n? as f64;
            let how = match t {
                "ws" => "full duplex, one connection",
                "sse" => "server→client stream; calls go up as POSTs",
                _ => "a poll held open; calls go up as POSTs",
            };
            Some(flagged(c, format!("{how}: {up:.0} B up per call")))
        }),
        "study: client bytes written per call, largest N, sequential",
    );
    row(
        "Binary data",
        cells(|t| {
            let c = find(file, "payload", t, |c| {
                c.variant == "binary" && c.params.payload_bytes == Some(BINARY_SIZE)
            })?;
            let ratio = c.metrics.wire_per_payload_byte?;
            let how = if t == "ws" {
                "binary frames"
            } else {
                "base64 text"
            };
            Some(flagged(c, format!("{how}: {ratio:.2} wire B per byte")))
        }),
        "payload: 4 KiB binary messages, bytes read per payload byte",
    );
    row(
        "Throughput",
        cells(|t| {
            let get = |flush: &str| {
                find(file, "push", t, |c| {
                    c.params.flush.as_deref() == Some(flush)
                })
            };
            let (b, p) = (get("batched"), get("per_message"));
            let fmt = |c: Option<&CaseResult>| {
                c.and_then(|c| Some(flagged(c, format!("{:.0}k", c.metrics.msgs_per_s? / 1e3))))
            };
            match (fmt(b), fmt(p)) {
                (None, None) => None,
                (b, p) => Some(format!(
                    "{} msgs/s batched, {} per message",
                    b.unwrap_or_else(|| "—".into()),
                    p.unwrap_or_else(|| "—".into())
                )),
            }
        }),
        "push: messages per second, 64 B, both flush policies",
    );
    row(
        "Latency at a steady rate",
        cells(|t| {
            let c = find(file, "latency", t, |_| true)?;
            Some(flagged(
                c,
                format!(
                    "p99 {} µs at {} clients",
                    us(c.metrics.p99_us),
                    c.params.clients?
                ),
            ))
        }),
        "latency: p99 from the scheduled send time, largest client count",
    );
    let fan = scenario_cases(file, "fanout");
    row(
        "Connection limits / scale",
        cells(|t| fanout_verdict(&fan, t).map(|v| format!("{v} clients under 100 ms p99"))),
        "fanout: largest client count whose broadcast p99 < 100 ms",
    );
    row(
        "Connection setup",
        cells(|t| {
            let c = find(file, "connect", t, |c| c.variant == "first-message")?;
            Some(flagged(
                c,
                format!("{} µs to first message (p50)", us(c.metrics.p50_us)),
            ))
        }),
        "connect: TCP connect to the server's first message",
    );
    row(
        "Reconnection",
        cells(|t| {
            // The case without downtime: what reconnecting itself costs.
            let pick = |variant: &str| {
                file.cases
                    .iter()
                    .filter(|c| c.scenario == "reconnect" && c.transport == t)
                    .filter(|c| c.variant == variant)
                    .min_by_key(|c| c.params.down_ms)
            };
            let mut parts = Vec::new();
            if let Some(c) = pick("resume") {
                let text = format!(
                    "{} of {} lost over {} drops with resume, recovery p50 {} ms",
                    c.integrity.lost,
                    c.integrity.sent,
                    opt(c.metrics.reconnects, |n| n.to_string()),
                    opt(c.metrics.recovery_p50_ms, |v| format!("{v:.0}"))
                );
                parts.push(flagged(c, text));
            }
            if let Some(c) = pick("no-resume") {
                parts.push(flagged(
                    c,
                    format!("{} lost without resume", c.integrity.lost),
                ));
            }
            (!parts.is_empty()).then(|| parts.join("; "))
        }),
        "reconnect: messages lost across dropped connections (no downtime), SSE by `Last-Event-ID`, WS by an app-level resume; long polling not measured",
    );
    row(
        "Encryption",
        cells(|t| crate::tls::encryption_cell(full, t)),
        "study and push run plain and over TLS in the same run: TLS throughput ÷ plain (see What TLS costs)",
    );
    row(
        "Protocol",
        [
            "RFC 6455: HTTP upgrade, then framed messages both ways".to_owned(),
            "plain HTTP response, `text/event-stream`".to_owned(),
            "plain HTTP requests and responses".to_owned(),
        ],
        "descriptive, not a measurement",
    );
    md.push('\n');
}

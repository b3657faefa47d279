//! REPORT.md, written from the run file alone: every number below comes from it.

use std::fmt::Write;

use pushbench_schema::{CaseResult, Integrity, RunFile};

use crate::charts::fmt_ms;
use crate::study::{
    StudyView, TRANSPORT_ORDER, WEB, client_counts, push_cases, push_ratio_to_floor, scenario_cases,
};

pub(crate) fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "—".to_owned(), f)
}

pub(crate) fn us(v: Option<f64>) -> String {
    opt(v, |v| format!("{v:.0}"))
}

/// Why a case is flagged, or `None` for a clean one.
pub(crate) fn flag_reason(case: &CaseResult) -> Option<String> {
    if let Some(e) = &case.error {
        return Some(format!("error: {e}"));
    }
    let i = &case.integrity;
    if i.is_sound() {
        return None;
    }
    Some(format!(
        "received {} of {} sent, {} lost, {} duplicated, {} out of order",
        i.received, i.sent, i.lost, i.duplicated, i.out_of_order
    ))
}

pub(crate) fn status(case: &CaseResult) -> String {
    let lost = case.integrity.lost;
    flag_reason(case).map_or_else(
        || match lost {
            0 => "ok".to_owned(),
            lost => format!("ok ({lost} lost by design)"),
        },
        |r| format!("**FLAGGED**: {}", r.replace('|', "/")),
    )
}

/// Integrity as `sent/received/lost/duplicated/out of order`.
pub(crate) fn counts(i: &Integrity) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        i.sent, i.received, i.lost, i.duplicated, i.out_of_order
    )
}

fn per_call(total: Option<u64>, n: Option<u64>) -> Option<f64> {
    let n = n.filter(|&n| n > 0)?;
    Some(total? as f64 / n as f64)
}

/// The whole report.
/// `file` is the whole run; `main` its cases the scenario sections show (the plain ones when
/// the run also has TLS twins).
pub(crate) fn report(file: &RunFile, main: &RunFile, charts: &[String]) -> String {
    let mut md = String::new();
    let view = StudyView::new(main);
    let run = &file.run;
    let _ = writeln!(md, "# pushbench report\n");
    if !run.complete {
        let _ = writeln!(
            md,
            "> **Warning: incomplete run: {} cases measured before it stopped.** The figures below are what it measured.\n",
            file.cases.len()
        );
    }
    let flagged: Vec<&CaseResult> = file.cases.iter().filter(|c| !c.is_ok()).collect();
    if !flagged.is_empty() {
        let _ = writeln!(
            md,
            "> **Warning: {} flagged case(s)** (an error or a counting fault): see [Integrity](#integrity).\n",
            flagged.len()
        );
    }
    md.push_str(
        "## What this answers\n\n\
         WebSockets or Server-Sent Events? This report measures both (and long polling) on one server, \
         against a raw-TCP floor measured in the same run, reproducing a published study's method. \
         Every figure here was measured by the run described under [Environment](#environment).\n\n",
    );
    if !view.is_empty() {
        md.push_str(
            "## The study we reproduce\n\n\
             A .NET Core 3 / SignalR test app (2020) timed three transports: WebSockets, Server-Sent Events and \
             Long Polling. One *call* is one RPC: the client invokes `runTest(blockSize)` and the server answers \
             `{\"data\": \"<blockSize random A-Z0-9 chars>\"}` (blockSize 1000). Calls are sequential, one outstanding \
             at a time, for N = 100, 1 000 and 10 000. The clock starts before the connection is opened (negotiation \
             and handshake included) and stops at the last reply; it also reported \"bytes loaded\", the sum of the \
             replies' JSON lengths. With SSE and Long Polling, SignalR sends every client-to-server call as an HTTP \
             POST; the reply comes down the SSE stream or the poll response. An \"all at once\" mode ran the three \
             concurrently. **Published conclusion: WebSockets fastest.** The raw numbers were only published as a \
             chart image, so this reproduction is judged by method and by ordering, not by absolute times.\n\n",
        );
    }
    crate::perf::section(&mut md, file);
    our_method(&mut md, file);
    environment(&mut md, file);
    if !view.is_empty() {
        results(&mut md, &view, charts);
        conclusion(&mut md, &view);
    }
    crate::scenarios::comparison(&mut md, main, file);
    push(&mut md, main, charts);
    crate::scenarios::sections(&mut md, main, charts);
    roundtrip(&mut md, main, charts);
    crate::tls::section(&mut md, file);
    crate::http2::section(&mut md, main, charts);
    crate::browser::section(&mut md, file, charts);
    integrity(&mut md, file, &flagged);
    all_cases(&mut md, file, &StudyView::new(file));
    let _ = writeln!(
        md,
        "\n---\nRegenerate with `pushbench report <dir>` (reads `run.json` only)."
    );
    md
}

/// A JSON number or array of numbers as `a, b, c`; `None` when absent.
fn json_list(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Array(items) if !items.is_empty() => Some(
            items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn our_method(md: &mut String, file: &RunFile) {
    // A merged run describes its method by its first source's configuration.
    let first_source = &file.run.config["merged_from"][0]["config"];
    let config = if file.run.config["server"].is_null() && first_source.is_object() {
        first_source
    } else {
        &file.run.config
    };
    md.push_str("## Our method\n\n");
    let server = &config["server"];
    let threads = |v: &serde_json::Value| {
        v.as_u64()
            .map_or_else(|| "an unrecorded number of".to_owned(), |t| t.to_string())
    };
    let nodelay = match config["tcp_nodelay"].as_bool() {
        Some(false) => "TCP_NODELAY **off** (as configured)",
        _ => "TCP_NODELAY on every socket, both sides",
    };
    // A server in another process (run --target) has its threads out of this run's sight.
    let server_threads = match (server["threads"].is_null(), server["target"].as_str()) {
        (true, Some(_)) => String::new(),
        _ => format!(
            " on its own runtime with {} thread(s)",
            threads(&server["threads"])
        ),
    };
    let _ = writeln!(
        md,
        "- Server: {}{server_threads}; clients on a separate runtime with {} thread(s). \
         {nodelay}; flush policy `{}`.",
        server["kind"].as_str().unwrap_or("in-process axum"),
        threads(&config["client_threads"]),
        config["flush"].as_str().unwrap_or("not recorded"),
    );
    let study = &config["study"];
    let view = StudyView::new(file);
    if !view.is_empty() {
        let calls = json_list(&study["calls"]).unwrap_or_else(|| {
            let ns: Vec<String> = view.ns().iter().map(u64::to_string).collect();
            ns.join(", ")
        });
        let blocks = json_list(&study["block_size"]).unwrap_or_else(|| {
            let mut sizes: Vec<u64> = file
                .cases
                .iter()
                .filter(|c| c.scenario == "study")
                .filter_map(|c| c.params.block_size)
                .collect();
            sizes.sort_unstable();
            sizes.dedup();
            let sizes: Vec<String> = sizes.iter().map(u64::to_string).collect();
            if sizes.is_empty() {
                "not recorded".to_owned()
            } else {
                sizes.join(", ")
            }
        });
        let timeout = study["call_timeout_ms"]
            .as_u64()
            .map_or_else(String::new, |t| {
                format!("; a reply not received within {t} ms is counted lost")
            });
        let _ = writeln!(
            md,
            "- Study: N = {calls} sequential calls per case; block size {blocks}{timeout}."
        );
    }
    let runs: Vec<u64> = file
        .cases
        .iter()
        .map(|c| c.params.repeats.unwrap_or(1))
        .collect();
    if let (Some(lo), Some(hi)) = (runs.iter().min(), runs.iter().max()) {
        let range = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo} to {hi}")
        };
        let _ = writeln!(
            md,
            "- Runs per case: {range} (column \"runs\"). Each run is one whole case, connect included; elapsed \
             time is the median run with the range of all runs, latency percentiles come from every call of every \
             run, and integrity counts are summed over all runs (so `sent` = n × runs)."
        );
    }
    if let Some(source) = config["source"].as_str() {
        let _ = writeln!(md, "- Produced by: {source}.");
    }
    md.push_str(
        "- Each call is `{\"seq\":N,\"ts\":T,\"blockSize\":B}`; each reply `{\"seq\":N,\"ts\":T,\"data\":\"<B chars>\"}`. \
         The sequence number lets every reply be counted (received, lost, duplicated, out of order); the client \
         checks every reply's data length and alphabet. \"Bytes loaded\" sums reply JSON lengths as the study did \
         (ours carry `seq` and `ts` too); \"wire\" bytes are counted at the client's sockets, headers, handshakes \
         and framing included.\n",
    );
    let transports = &config["transports"];
    for t in TRANSPORT_ORDER {
        let how = transports[t].as_str().unwrap_or(match t {
            "ws" => "each call a text frame on GET /ws, each reply a text frame",
            "sse" => "GET /sse kept open; each call a POST /rpc, the reply an event on the stream",
            "longpoll" => "a GET /poll kept outstanding; each call a POST /rpc, the reply in the poll response",
            _ => "raw TCP, 4-byte length prefix both ways: the floor",
        });
        let _ = writeln!(md, "- `{t}`: {how}.");
    }
    md.push('\n');
}

fn environment(md: &mut String, file: &RunFile) {
    let run = &file.run;
    md.push_str("## Environment\n\n| | |\n|---|---|\n");
    let rows = [
        ("run id", run.id.clone()),
        ("git commit", format!("`{}`", run.git_commit)),
        (
            "started / finished",
            format!("{} / {}", run.started_at, run.finished_at),
        ),
        ("complete", run.complete.to_string()),
        ("host", run.host.name.clone()),
        (
            "cpu",
            format!("{} ({} cores available)", run.host.cpu, run.host.cores),
        ),
        (
            "kernel / os",
            format!("{} / {}", run.host.kernel, run.host.os),
        ),
        ("rustc", run.rustc.clone()),
        ("profile", run.profile.clone()),
        ("pushbench", run.tool_version.clone()),
        (
            "crates",
            run.crate_versions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(md, "| {k} | {} |", v.replace('|', "/"));
    }
    let config = serde_json::to_string_pretty(&run.config).unwrap_or_default();
    let _ = writeln!(md, "\nConfiguration:\n\n```json\n{config}\n```\n");
}

fn case_row(view: &StudyView<'_>, c: &CaseResult) -> String {
    let m = &c.metrics;
    let range = match (m.elapsed_min_ms, m.elapsed_max_ms) {
        (Some(lo), Some(hi)) if hi > lo => format!(" ({}–{})", fmt_ms(lo), fmt_ms(hi)),
        _ => String::new(),
    };
    let i = &c.integrity;
    format!(
        "| {} | {} | {} | {}{} | {} | {} | {} | {} / {} | {} / {} | {} | {} |",
        c.transport,
        match (crate::tls::is_tls(c), crate::browser::is_browser(c)) {
            (true, _) => format!("{} (TLS)", c.variant),
            (false, true) => format!("{} (browser)", c.variant),
            (false, false) => c.variant.clone(),
        },
        c.params.repeats.unwrap_or(1),
        opt(m.elapsed_ms, fmt_ms),
        range,
        opt(m.calls_per_s.or(m.msgs_per_s), |v| format!("{v:.0}")),
        opt(view.ratio_to_floor(c), |r| format!("{r:.2}×")),
        opt(m.bytes_loaded, |v| v.to_string()),
        opt(per_call(m.wire_bytes_up, c.params.n), |v| format!("{v:.0}")),
        opt(per_call(m.wire_bytes_down, c.params.n), |v| format!(
            "{v:.0}"
        )),
        us(m.p50_us),
        us(m.p99_us),
        counts(i),
        status(c)
    )
}

const TABLE_HEAD: &str = "| transport | variant | runs | elapsed ms (range) | calls/s or msgs/s | × tcp floor | bytes loaded per run | wire up / down per call (B) | p50 / p99 µs | sent/recv/lost/dup/ooo (all runs) | status |\n|---|---|---|---|---|---|---|---|---|---|---|\n";

fn results(md: &mut String, view: &StudyView<'_>, charts: &[String]) {
    md.push_str("## Results\n\n");
    for n in view.ns() {
        let _ = writeln!(md, "### {n} calls\n");
        let name = format!("study-n{n}");
        if charts.contains(&name) {
            let _ = writeln!(
                md,
                "![elapsed time per transport, {n} calls](charts/{name}.png) ([SVG](charts/{name}.svg))\n"
            );
        }
        md.push_str(TABLE_HEAD);
        for variant in ["sequential", "all-at-once"] {
            for t in TRANSPORT_ORDER {
                if let Some(c) = view.case(n, variant, t) {
                    md.push_str(&case_row(view, c));
                    md.push('\n');
                }
            }
        }
        md.push('\n');
    }
    for (name, what) in [
        ("study-calls-per-s", "calls per second by N"),
        ("study-latency", "per-call latency p50 and p99"),
    ] {
        if charts.iter().any(|c| c == name) {
            let _ = writeln!(
                md,
                "![{what}](charts/{name}.png) ([SVG](charts/{name}.svg))\n"
            );
        }
    }
}

/// Where the published ordering (WebSockets fastest) stands at one N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Held,
    Failed,
    Tied,
    Incomplete,
}

/// One N's ranking sentence, its verdict, and whether the two fastest overlap across runs;
/// computed from the sequential cases.
fn ranking(view: &StudyView<'_>, n: u64) -> (String, Verdict, bool) {
    let mut ranked: Vec<(&str, &CaseResult, f64)> = Vec::new();
    let mut gaps = Vec::new();
    for t in WEB {
        match view.case(n, "sequential", t) {
            None => gaps.push(format!("{t} not measured")),
            Some(c) if !c.is_ok() => gaps.push(format!("{t} flagged")),
            Some(c) => match c.metrics.elapsed_ms {
                Some(ms) => ranked.push((t, c, ms)),
                None => gaps.push(format!("{t} has no elapsed time")),
            },
        }
    }
    ranked.sort_by(|a, b| a.2.total_cmp(&b.2));
    let order = ranked
        .iter()
        .map(|(t, _, ms)| format!("{t} {} ms", fmt_ms(*ms)))
        .collect::<Vec<_>>()
        .join(" < ");
    let order = if order.is_empty() {
        "no clean web transport".to_owned()
    } else {
        order
    };
    if !gaps.is_empty() {
        let text = format!(
            "N={n}: {order}: incomplete comparison ({}), so the published ordering cannot be checked at this N.",
            gaps.join(", ")
        );
        return (text, Verdict::Incomplete, false);
    }
    let (first, second) = (&ranked[0], &ranked[1]);
    if fmt_ms(first.2) == fmt_ms(second.2) {
        let text = format!(
            "N={n}: {order}: {} and {} tie at this precision; the published ordering is neither confirmed nor contradicted.",
            first.0, second.0
        );
        return (text, Verdict::Tied, false);
    }
    let (mut text, verdict) = if first.0 == "ws" {
        (
            format!("N={n}: {order}: WebSockets fastest, as published."),
            Verdict::Held,
        )
    } else {
        (
            format!(
                "N={n}: {order}: {} fastest; the published conclusion does **not** hold at this N.",
                first.0
            ),
            Verdict::Failed,
        )
    };
    // The runs' spread says how firm a median ordering is on a noisy machine.
    let mut overlap = false;
    if let (Some(hi), Some(lo)) = (
        first.1.metrics.elapsed_max_ms,
        second.1.metrics.elapsed_min_ms,
    ) {
        if hi > lo {
            overlap = true;
            let _ = write!(
                text,
                " The two fastest overlap across runs ({} up to {} ms, {} from {} ms).",
                first.0,
                fmt_ms(hi),
                second.0,
                fmt_ms(lo)
            );
        }
    }
    (text, verdict, overlap)
}

/// The web transports of one N ordered by `key`, clean cases with a value only.
fn order_by(
    view: &StudyView<'_>,
    n: u64,
    key: impl Fn(&CaseResult) -> Option<f64>,
) -> Vec<&'static str> {
    let mut values: Vec<(&str, f64)> = WEB
        .iter()
        .filter_map(|t| {
            let c = view.case(n, "sequential", t).filter(|c| c.is_ok())?;
            Some((*t, key(c)?))
        })
        .collect();
    values.sort_by(|a, b| a.1.total_cmp(&b.1));
    values.into_iter().map(|(t, _)| t).collect()
}

/// Upstream wire bytes per call of a case.
fn up_per_call(c: &CaseResult) -> Option<f64> {
    per_call(c.metrics.wire_bytes_up, c.params.n)
}

/// One N's measured explanation: bytes up per call, ratio to the floor, and whether the
/// order by bytes matches the order by time.
fn explanation(view: &StudyView<'_>, n: u64) -> Option<String> {
    let mut parts = Vec::new();
    let ws_up = view.case(n, "sequential", "ws").and_then(up_per_call);
    for t in TRANSPORT_ORDER {
        let Some(c) = view.case(n, "sequential", t) else {
            continue;
        };
        let up = up_per_call(c);
        let mut part = format!("{t} {} B up per call", opt(up, |v| format!("{v:.0}")));
        match (t, up, ws_up) {
            ("ws" | "tcp", _, _) => {}
            (_, Some(up), Some(ws)) if ws > 0.0 => {
                let _ = write!(part, " ({:.1}× ws)", up / ws);
            }
            _ => {}
        }
        if t == "tcp" {
            part.push_str(", the floor");
        } else {
            part.push_str(&opt(view.ratio_to_floor(c), |r| {
                format!(", {r:.2}× the floor's time")
            }));
        }
        if !c.is_ok() {
            part.push_str(" (FLAGGED)");
        }
        parts.push(part);
    }
    if parts.is_empty() {
        return None;
    }
    let mut line = format!("- N={n}: {}.", parts.join("; "));
    let by_bytes = order_by(view, n, up_per_call);
    let by_time = order_by(view, n, |c| c.metrics.elapsed_ms);
    if by_bytes.len() >= 2 && by_bytes.len() == by_time.len() {
        if by_bytes == by_time {
            let _ = write!(
                line,
                " Fewer bytes up went with less time: {}.",
                by_time.join(" < ")
            );
        } else {
            let _ = write!(
                line,
                " Bytes up alone do not explain the order: by bytes {}, by time {}.",
                by_bytes.join(" < "),
                by_time.join(" < ")
            );
        }
    }
    Some(line)
}

fn conclusion(md: &mut String, view: &StudyView<'_>) {
    md.push_str(
        "## Does the published conclusion hold here?\n\n\
         The published result is an ordering, WebSockets fastest, so that is what is checked: for each N, the \
         three web transports ranked by elapsed time (sequential variant, median run, connect included).\n\n",
    );
    let mut verdicts: Vec<(u64, Verdict)> = Vec::new();
    let mut overlaps = Vec::new();
    for n in view.ns() {
        let (text, verdict, overlap) = ranking(view, n);
        let _ = writeln!(md, "- {text}");
        verdicts.push((n, verdict));
        if overlap {
            overlaps.push(n);
        }
    }
    md.push_str(
        "\nWhy, in measured terms (sequential cases; bytes are counted at the client's sockets, headers and \
         framing included):\n\n",
    );
    for n in view.ns() {
        if let Some(line) = explanation(view, n) {
            let _ = writeln!(md, "{line}");
        }
    }
    md.push_str(
        "\nWhat the bytes stand for: a WebSocket call is one frame on a connection that is already open. With SSE \
         and long polling every call is a separate HTTP POST, so each call carries a request line and headers and \
         gets an HTTP response of its own, besides the reply that comes down the stream or the poll. The tcp floor \
         carries the same call with a 4-byte prefix only, so a transport's ratio to it is what its protocol costs \
         over the bare exchange on this machine.\n\n",
    );
    let with = |v: Verdict| -> Vec<u64> {
        verdicts
            .iter()
            .filter(|(_, x)| *x == v)
            .map(|(n, _)| *n)
            .collect()
    };
    let list = |ns: &[u64]| {
        ns.iter()
            .map(|n| format!("N={n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (held, failed, tied, incomplete) = (
        with(Verdict::Held),
        with(Verdict::Failed),
        with(Verdict::Tied),
        with(Verdict::Incomplete),
    );
    let summary = if held.len() == verdicts.len() && !held.is_empty() {
        format!(
            "**Summary:** the published ordering (WebSockets fastest) held at every N measured here ({}).",
            list(&held)
        )
    } else {
        let mut s = String::from("**Summary:** the published ordering did not hold at every N. ");
        if !held.is_empty() {
            let _ = write!(s, "WebSockets were fastest at {}. ", list(&held));
        }
        if !failed.is_empty() {
            let _ = write!(s, "They were not at {}. ", list(&failed));
        }
        if !tied.is_empty() {
            let _ = write!(s, "They tied for fastest at {}. ", list(&tied));
        }
        if !incomplete.is_empty() {
            let _ = write!(
                s,
                "The comparison is incomplete at {} (a web transport is missing or flagged).",
                list(&incomplete)
            );
        }
        s
    };
    let mut summary = summary.trim_end().to_owned();
    if !overlaps.is_empty() {
        let _ = write!(
            summary,
            " The ranking is by median run: at {} the two fastest overlap across runs, so some runs of \
             the runner-up beat some runs of the fastest.",
            list(&overlaps)
        );
    }
    let _ = writeln!(md, "{summary}\n");
}

fn push(md: &mut String, file: &RunFile, charts: &[String]) {
    let cases = push_cases(file);
    if cases.is_empty() {
        return;
    }
    md.push_str(
        "## Push: a server streaming messages\n\n\
         The server streams n messages of a fixed payload (a ticker, a token stream) as fast as the transport \
         allows; the clock runs from the client's request to the last message. Flush policy `per_message`: one \
         write per message (WebSocket `send`, a length-prefixed frame, one SSE event per frame with a yield to \
         hyper after each, one message per long-poll response). `batched`: the messages ready together go out in \
         one write of up to 64 KiB. Latency is from the server's send to the client's receipt (one process, one \
         monotonic clock), so it includes the time a message waits behind the ones before it. CPU is each side's \
         threads' time on the CPU (`/proc/self/task/*/schedstat`) per million messages.\n\n",
    );
    if charts.iter().any(|c| c == "push-msgs-per-s") {
        md.push_str("![messages per second per transport and flush policy](charts/push-msgs-per-s.png) ([SVG](charts/push-msgs-per-s.svg))\n\n");
    }
    md.push_str(
        "| transport | flush | n | payload B | runs | msgs/s | MB/s | × tcp floor | wire down per msg (B) | p50 / p99 latency µs | CPU s per M msgs server / client | sent/recv/lost/dup/ooo (all runs) | status |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in &cases {
        let (m, i) = (&c.metrics, &c.integrity);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} |",
            c.transport,
            c.params.flush.as_deref().unwrap_or("—"),
            opt(c.params.n, |n| n.to_string()),
            opt(c.params.payload_bytes, |n| n.to_string()),
            c.params.repeats.unwrap_or(1),
            opt(m.msgs_per_s, |v| format!("{v:.0}")),
            opt(m.bytes_per_s, |v| format!("{:.1}", v / 1e6)),
            opt(push_ratio_to_floor(&cases, c), |r| format!("{r:.2}×")),
            opt(per_call(m.wire_bytes_down, c.params.n), |v| format!(
                "{v:.0}"
            )),
            us(m.p50_us),
            us(m.p99_us),
            opt(m.server_cpu_s_per_million, |v| format!("{v:.2}")),
            opt(m.client_cpu_s_per_million, |v| format!("{v:.2}")),
            counts(i),
            status(c)
        );
    }
    md.push_str("\n× tcp floor is the transport's msgs/s divided by the tcp floor's under the same flush policy.\n\n");
}

fn roundtrip(md: &mut String, file: &RunFile, charts: &[String]) {
    let cases = scenario_cases(file, "roundtrip");
    if cases.is_empty() {
        return;
    }
    md.push_str(
        "## Round trip: client to server and back\n\n\
         C clients at once, each making sequential round trips: a call up, a reply of the stated payload down \
         (WebSocket: a frame each way; SSE: a POST, then the event on the open stream; long polling: a POST, then \
         the reply in the outstanding poll; tcp: a frame each way). Latency is each round trip, measured by the \
         client; round trips/s counts all clients' replies over the slowest client's time, connect included.\n\n",
    );
    for clients in client_counts(&cases) {
        let name = format!("roundtrip-c{clients}");
        if charts.contains(&name) {
            let _ = writeln!(
                md,
                "![round-trip latency, {clients} clients](charts/{name}.png) ([SVG](charts/{name}.svg))\n"
            );
        }
    }
    md.push_str(
        "| transport | clients | round trips per client | payload B | runs | round trips/s | p50 / p90 / p99 / max µs | p50 × tcp floor | wire up / down per round trip (B) | sent/recv/lost/dup/ooo (all runs) | status |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in &cases {
        let (m, i) = (&c.metrics, &c.integrity);
        let floor = cases
            .iter()
            .find(|f| f.transport == "tcp" && f.params.clients == c.params.clients && f.is_ok())
            .and_then(|f| f.metrics.p50_us);
        let ratio = match (m.p50_us, floor) {
            (Some(v), Some(f)) if f > 0.0 => Some(v / f),
            _ => None,
        };
        let trips = c.params.n.zip(c.params.clients).map(|(n, k)| n * k);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} / {} / {} / {} | {} | {} / {} | {} | {} |",
            c.transport,
            opt(c.params.clients, |n| n.to_string()),
            opt(c.params.n, |n| n.to_string()),
            opt(c.params.payload_bytes, |n| n.to_string()),
            c.params.repeats.unwrap_or(1),
            opt(m.msgs_per_s, |v| format!("{v:.0}")),
            us(m.p50_us),
            us(m.p90_us),
            us(m.p99_us),
            us(m.max_us),
            opt(ratio, |r| format!("{r:.2}×")),
            opt(per_call(m.wire_bytes_up, trips), |v| format!("{v:.0}")),
            opt(per_call(m.wire_bytes_down, trips), |v| format!("{v:.0}")),
            counts(i),
            status(c)
        );
    }
    md.push('\n');
}

fn integrity(md: &mut String, file: &RunFile, flagged: &[&CaseResult]) {
    md.push_str("## Integrity\n\n");
    let by_design: Vec<&CaseResult> = file
        .cases
        .iter()
        .filter(|c| c.is_ok() && c.integrity.lost > 0)
        .collect();
    if flagged.is_empty() && by_design.is_empty() {
        md.push_str(
            "Every case: received == sent, 0 lost, 0 duplicated, 0 out of order, no errors.\n\n",
        );
        return;
    }
    if flagged.is_empty() {
        let _ = writeln!(
            md,
            "No errors and no counting faults: every message was received once and in order, except the {} \
             case(s) that lose messages by design (reconnecting without resume), whose every message is \
             accounted for as received or lost.\n",
            by_design.len()
        );
        return;
    }
    for c in flagged {
        let _ = writeln!(
            md,
            "- {} / {} / {} (n={}): {}",
            c.scenario,
            c.transport,
            c.variant,
            opt(c.params.n, |n| n.to_string()),
            flag_reason(c).unwrap_or_default()
        );
    }
    md.push('\n');
}

fn all_cases(md: &mut String, file: &RunFile, view: &StudyView<'_>) {
    md.push_str("## All cases\n\n| scenario | n | ");
    md.push_str(&TABLE_HEAD[2..TABLE_HEAD.find('\n').unwrap_or(0)]);
    md.push_str("\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for c in &file.cases {
        let _ = writeln!(
            md,
            "| {} | {} {}",
            c.scenario,
            opt(c.params.n, |n| n.to_string()),
            case_row(view, c)
        );
    }
}

//! REPORT.md, written from the run file alone: every number below comes from it.

use std::fmt::Write;

use pushbench_schema::{CaseResult, Integrity, RunFile};

use crate::charts::fmt_ms;
use crate::study::{
    StudyView, TRANSPORT_ORDER, WEB, client_counts, push_cases, push_ratio_to_floor, scenario_cases,
};

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "—".to_owned(), f)
}

fn us(v: Option<f64>) -> String {
    opt(v, |v| format!("{v:.0}"))
}

/// Why a case is flagged, or `None` for a clean one.
pub(crate) fn flag_reason(case: &CaseResult) -> Option<String> {
    if let Some(e) = &case.error {
        return Some(format!("error: {e}"));
    }
    let i = &case.integrity;
    if i.is_clean() {
        return None;
    }
    Some(format!(
        "received {} of {} sent, {} lost, {} duplicated, {} out of order",
        i.received, i.sent, i.lost, i.duplicated, i.out_of_order
    ))
}

fn status(case: &CaseResult) -> String {
    flag_reason(case).map_or_else(
        || "ok".to_owned(),
        |r| format!("**FLAGGED**: {}", r.replace('|', "/")),
    )
}

/// Integrity as `sent/received/lost/duplicated/out of order`.
fn counts(i: &Integrity) -> String {
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
pub(crate) fn report(file: &RunFile, charts: &[String]) -> String {
    let mut md = String::new();
    let view = StudyView::new(file);
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
    our_method(&mut md, file);
    environment(&mut md, file);
    if !view.is_empty() {
        results(&mut md, &view, charts);
        conclusion(&mut md, &view);
    }
    push(&mut md, file, charts);
    roundtrip(&mut md, file, charts);
    integrity(&mut md, &flagged);
    all_cases(&mut md, file, &view);
    let _ = writeln!(
        md,
        "\n---\nRegenerate with `pushbench report <dir>` (reads `run.json` only)."
    );
    md
}

fn our_method(md: &mut String, file: &RunFile) {
    let config = &file.run.config;
    md.push_str("## Our method\n\n");
    let server = &config["server"];
    let _ = writeln!(
        md,
        "- Server: {} with {} runtime thread(s); clients on a separate runtime with {} thread(s). \
         TCP_NODELAY on every socket, both sides; flush policy `{}`.",
        server["kind"].as_str().unwrap_or("in-process axum"),
        server["threads"]
            .as_u64()
            .map_or("?".into(), |t| t.to_string()),
        config["client_threads"]
            .as_u64()
            .map_or("?".into(), |t| t.to_string()),
        config["flush"].as_str().unwrap_or("per_message"),
    );
    let study = &config["study"];
    if study.is_object() {
        let _ = writeln!(
            md,
            "- Calls per case: {}; block size {}; a reply not received within {} ms is counted lost.",
            study["calls"], study["block_size"], study["call_timeout_ms"]
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
        c.variant,
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

fn conclusion(md: &mut String, view: &StudyView<'_>) {
    md.push_str("## Does the published conclusion hold here?\n\n");
    let mut held = Vec::new();
    let mut failed = Vec::new();
    let mut incomplete = Vec::new();
    for n in view.ns() {
        let mut ranked: Vec<(&str, f64)> = WEB
            .iter()
            .filter_map(|t| {
                let c = view.case(n, "sequential", t).filter(|c| c.is_ok())?;
                Some((*t, c.metrics.elapsed_ms?))
            })
            .collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
        let order = ranked
            .iter()
            .map(|(t, v)| format!("{t} {} ms", fmt_ms(*v)))
            .collect::<Vec<_>>()
            .join(" < ");
        if ranked.len() < WEB.len() {
            incomplete.push(n);
            let _ = writeln!(
                md,
                "- N={n}: {order}: incomplete comparison (a web transport is missing or flagged at this N)."
            );
        } else if ranked[0].0 == "ws" {
            held.push(n);
            let _ = writeln!(md, "- N={n}: {order}: WebSockets fastest, as published.");
        } else {
            failed.push(n);
            let _ = writeln!(
                md,
                "- N={n}: {order}: {} fastest; the published conclusion does **not** hold at this N.",
                ranked[0].0
            );
        }
    }
    md.push_str("\nWhy, in measured terms (sequential cases):\n\n");
    for n in view.ns() {
        let mut parts = Vec::new();
        for t in TRANSPORT_ORDER {
            let Some(c) = view.case(n, "sequential", t) else {
                continue;
            };
            let up = per_call(c.metrics.wire_bytes_up, c.params.n);
            let ratio = view.ratio_to_floor(c);
            parts.push(format!(
                "{t} sends {} B up per call{}",
                opt(up, |v| format!("{v:.0}")),
                if t == "tcp" {
                    " (the floor)".to_owned()
                } else {
                    opt(ratio, |r| format!(" and takes {r:.2}× the floor's time"))
                }
            ));
        }
        if !parts.is_empty() {
            let _ = writeln!(md, "- N={n}: {}.", parts.join("; "));
        }
    }
    md.push_str(
        "\nA WebSocket call is one small frame each way on a connection that is already open. SSE and long polling \
         must send every call upstream as a separate HTTP POST (request line, headers, and a 202 response to read) \
         before the reply can come down the stream or the poll, so each call costs an extra HTTP exchange; the \
         upstream bytes per call above show that cost directly, and the ratio to the raw-TCP floor shows how much \
         of each transport's time is protocol rather than the work itself.\n\n",
    );
    let list = |ns: &[u64]| {
        ns.iter()
            .map(|n| format!("N={n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let summary = if failed.is_empty() && incomplete.is_empty() && !held.is_empty() {
        format!(
            "**Summary:** the published ordering (WebSockets fastest) held at every N measured here ({}).",
            list(&held)
        )
    } else {
        let mut s = String::from("**Summary:** ");
        if !held.is_empty() {
            let _ = write!(s, "WebSockets were fastest at {}. ", list(&held));
        }
        if !failed.is_empty() {
            let _ = write!(s, "They were not at {}. ", list(&failed));
        }
        if !incomplete.is_empty() {
            let _ = write!(s, "The comparison is incomplete at {}.", list(&incomplete));
        }
        s
    };
    let _ = writeln!(md, "{}\n", summary.trim_end());
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

fn integrity(md: &mut String, flagged: &[&CaseResult]) {
    md.push_str("## Integrity\n\n");
    if flagged.is_empty() {
        md.push_str(
            "Every case: received == sent, 0 lost, 0 duplicated, 0 out of order, no errors.\n\n",
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

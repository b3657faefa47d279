//! `cargo bench --bench perf`: the performance targets of issue 6, measured in one run and
//! written as a pushbench result (`results/perf/`, with REPORT.md and its "Performance
//! targets" section), then printed as a table of id | figure | target | met.
//!
//! Figure groups, each a function appending [`PerfTarget`]s to one list:
//! - push: 64 B push, batched and per_message, over ws, sse and the tcp floor through the
//!   shared runner (200 000 messages batched, 100 000 per message, 3 repeats, medians); the
//!   batched ratios to the floor are targets (≥ 0.5×), the per_message ratios are stated beside
//!   them; the driver's CPU share (client CPU over server CPU per message, batched) is a target
//!   (≤ 1) for ws and sse.
//! - memory and scale: against `pushbench serve` child processes (1 worker thread), the
//!   server's VmRSS growth per idle WS and SSE subscriber at 10 000 connections (target ≤ 32 KiB)
//!   and the delivery p99 of 10 broadcasts 100 ms apart to 19 000 subscribers in `pushbench
//!   drive` child processes (target ≤ 100 ms, zero loss required); see `pushbench perf`.
//! - peers: pushbench against the Node.js reference (`scripts/reference/node`), in one run:
//!   its server against the Node server (`server.js`, Express 5 + ws) with pushbench's drivers
//!   on push (64 B batched) and fan-out p99 (300 subscribers), and its ws and sse drivers
//!   against the Node client (`client.js`, ws and eventsource) on push against one
//!   `pushbench serve --threads 1`; ratios oriented so > 1 means pushbench is better, target
//!   ≥ 1 (alternating runs after a warm-up, 5 rounds, medians; any loss leaves a figure
//!   unmeasured). Without Node or `npm ci` the targets are listed as not measured.
//! - SSE parser: criterion group `perf/sse-parser` (`Throughput::Bytes`) parsing an event
//!   stream like the server's (`id:` and `data:` lines, 64 B and 1 KiB payloads) delivered in
//!   16 KiB chunks; the target (≥ 1 GB/s) reads criterion's estimate.
//!
//! `cargo bench --bench perf -- --test` (CI's quick mode) runs every group on tiny inputs in
//! seconds and writes to `target/perf-bench-test/` instead; its values are a smoke test, not
//! figures.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use pushbench::perf::{self, Bound, PerfTarget};
use pushbench::{Harness, Plan, RunWriter};
use pushbench_core::{Flush, PushConfig, Transport};
use pushbench_driver_sse::SseParser;

/// The SSE parser target, GB/s.
const PARSER_GB_PER_S: f64 = 1.0;
/// How many bytes a socket read hands the parser at once.
const CHUNK: usize = 16 * 1024;

fn main() {
    // plotters' text needs a registered font once ab_glyph is on; criterion's charts too.
    pushbench_report::register_font();
    let test_mode = std::env::args().any(|a| a == "--test");
    let out = match std::env::var_os("PUSHBENCH_OUT") {
        Some(dir) => PathBuf::from(dir),
        None if test_mode => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/perf-bench-test")
        }
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results/perf"),
    };
    let harness = Harness::start().expect("start the in-process server");
    let plans = push_plans(test_mode);
    let parser_streams = parser_streams(test_mode);
    let peers = if test_mode {
        perf::peers::PeersConfig::test()
    } else {
        perf::peers::PeersConfig::full()
    };
    let mut run_config = harness.run_config("push", &plans[0].config_value());
    run_config["perf"] = serde_json::json!({
        "push_plans": plans.iter().map(Plan::config_value).collect::<Vec<_>>(),
        "peers": peers,
        "sse_parser": {
            "chunk_bytes": CHUNK,
            "streams": parser_streams.iter().map(|s| serde_json::json!({
                "name": s.name, "payload_bytes": s.payload, "events": s.events, "bytes": s.bytes.len(),
            })).collect::<Vec<_>>(),
        },
    });
    let mut source = String::from(
        "cargo bench --bench perf: push through the runner (medians of the repeats); the SSE parser \
         through criterion (sample_size 20)",
    );
    if test_mode {
        source.push_str(" (--test: tiny inputs, one iteration each; a smoke test, not figures)");
    }
    run_config["source"] = serde_json::json!(source);
    let mut writer = RunWriter::create(&out, run_config).expect("create the result directory");

    let mut targets = Vec::new();
    // Figure groups, each one function appending its targets.
    println!("pushbench: server memory per idle connection and fan-out at scale (child processes)");
    let work = tempfile::tempdir().expect("a temporary directory");
    harness.runtime.block_on(perf::child_server_targets(
        Path::new(env!("CARGO_BIN_EXE_pushbench")),
        &child_server_sizes(test_mode),
        work.path(),
        &mut targets,
    ));
    push_targets(&harness, &plans, &mut writer, &mut targets);
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference/node");
    let exe = Path::new(env!("CARGO_BIN_EXE_pushbench"));
    perf::peers::targets(&harness, exe, &node_dir, &peers, &mut targets);
    let criterion_dir = criterion_dir();
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .output_directory(&criterion_dir)
        .configure_from_args();
    sse_parser_targets(
        &mut criterion,
        &criterion_dir,
        &parser_streams,
        test_mode,
        &mut targets,
    );
    criterion.final_summary();

    writer.set_targets(targets).expect("write results");
    let file = writer.finish().expect("write results");
    let rendered = pushbench_report::render(&out).expect("render the report");
    println!("\n{}", pushbench::summary_table(&file));
    println!("pushbench: wrote {}", rendered.report.display());
    println!(
        "\nPerformance targets\n{}",
        perf::targets_table(&file.targets)
    );
}

/// 10 000 idle connections; 19 000 subscribers (the open-files limit) of 10 broadcasts 100 ms
/// apart; a few hundred under `--test`.
fn child_server_sizes(test_mode: bool) -> perf::ChildServerSizes {
    let (idle_connections, clients, messages) = if test_mode {
        (200, 200, 3)
    } else {
        (10_000, 19_000, 10)
    };
    perf::ChildServerSizes {
        idle_connections,
        scale: perf::ScaleSpec {
            clients,
            messages,
            interval_ms: 100,
            server_threads: 1,
        },
    }
}

/// Push, 64 B, over ws, sse and the tcp floor: batched, then per_message.
fn push_plans(test_mode: bool) -> Vec<Plan> {
    let (batched, per_message, repeats) = if test_mode {
        (2_000, 1_000, 1)
    } else {
        // Batched push runs at 5-14 M msgs/s here: 2 M messages keep each repeat over 100 ms
        // (200 000 ran for ~30 ms, short for a CPU split between client and server).
        (2_000_000, 100_000, 3)
    };
    let push = |messages, flush| {
        Plan::Push(PushConfig {
            messages,
            payload_bytes: 64,
            transports: vec![Transport::Ws, Transport::Sse, Transport::Tcp],
            flush: vec![flush],
            repeats,
            ..PushConfig::default()
        })
    };
    vec![
        push(batched, Flush::Batched),
        push(per_message, Flush::PerMessage),
    ]
}

/// Runs the push plans, writing every case to the run as it is measured, and appends the push
/// and driver-capacity targets.
fn push_targets(
    harness: &Harness,
    plans: &[Plan],
    writer: &mut RunWriter,
    targets: &mut Vec<PerfTarget>,
) {
    let mut batched_kernel_share = None;
    for plan in plans {
        let batched = matches!(plan, Plan::Push(c) if c.flush == [Flush::Batched]);
        let before = perf::CpuSplit::client_now();
        let mut on_event = writer.bench_events();
        harness.runtime.block_on(plan.run(harness, &mut on_event));
        if batched {
            batched_kernel_share = perf::CpuSplit::client_now()
                .zip(before)
                .and_then(|(after, before)| after.kernel_share_since(&before));
        }
    }
    perf::push::targets(&writer.file().cases, batched_kernel_share, targets);
}

/// One event stream the parser bench parses.
struct ParserStream {
    name: &'static str,
    payload: usize,
    events: u64,
    bytes: Vec<u8>,
}

/// Streams as the server writes them (`id: N`, `data: {"seq":N,"ts":T,"data":"…"}`, blank
/// line): about 4 MiB each of 64 B and of 1 KiB payloads (64 KiB each under `--test`).
fn parser_streams(test_mode: bool) -> Vec<ParserStream> {
    let size = if test_mode {
        64 * 1024
    } else {
        4 * 1024 * 1024
    };
    [("64B", 64), ("1KiB", 1024)]
        .into_iter()
        .map(|(name, payload)| {
            let data = "A".repeat(payload);
            let mut bytes = Vec::with_capacity(size + payload + 100);
            let mut events = 0;
            while bytes.len() < size {
                let ts = 1_700_000_000_000_000_000u64 + events * 1_234;
                bytes.extend_from_slice(
                    format!("id: {events}\ndata: {{\"seq\":{events},\"ts\":{ts},\"data\":\"{data}\"}}\n\n")
                        .as_bytes(),
                );
                events += 1;
            }
            ParserStream { name, payload, events, bytes }
        })
        .collect()
}

/// Parses `stream` in socket-sized chunks, taking the events out after each chunk as the
/// driver does; returns how many there were.
fn parse_all(stream: &[u8]) -> u64 {
    let mut parser = SseParser::new();
    let mut events = 0;
    for chunk in stream.chunks(CHUNK) {
        parser.push(chunk).expect("a valid stream");
        while let Some(event) = parser.next_event() {
            std::hint::black_box(&event);
            events += 1;
        }
    }
    events
}

/// Criterion's output directory, as criterion itself finds it, so its estimates can be read.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

/// Criterion's estimate of one iteration's time in ns (its slope, else its mean) from the
/// `estimates.json` it wrote for `group`/`function`; `None` when it measured nothing this run
/// (`--test`, or a filter that skipped it).
fn criterion_estimate_ns(
    dir: &Path,
    group: &str,
    function: &str,
    since: std::time::SystemTime,
) -> Option<(f64, &'static str)> {
    let path = dir
        .join(group.replace('/', "_"))
        .join(function)
        .join("new/estimates.json");
    if std::fs::metadata(&path).and_then(|m| m.modified()).ok()? < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    ["slope", "mean"].into_iter().find_map(|k| {
        let ns = json.get(k)?.get("point_estimate")?.as_f64()?;
        Some((ns, k))
    })
}

/// `perf/sse-parser`: one criterion function per stream, then one target per stream from
/// criterion's estimate (or, when criterion measured nothing, a timing of the same loop here).
fn sse_parser_targets(
    criterion: &mut Criterion,
    criterion_dir: &Path,
    streams: &[ParserStream],
    test_mode: bool,
    targets: &mut Vec<PerfTarget>,
) {
    const GROUP: &str = "perf/sse-parser";
    let started = std::time::SystemTime::now();
    let mut bench = criterion.benchmark_group(GROUP);
    for s in streams {
        assert_eq!(
            parse_all(&s.bytes),
            s.events,
            "the {} stream parses whole",
            s.name
        );
        bench.throughput(Throughput::Bytes(s.bytes.len() as u64));
        bench.bench_function(s.name, |b| b.iter(|| parse_all(&s.bytes)));
    }
    bench.finish();
    for s in streams {
        let bytes = s.bytes.len() as f64;
        let (ns, how) = match criterion_estimate_ns(criterion_dir, GROUP, s.name, started) {
            Some((ns, k)) => (ns, format!("criterion's {k} estimate")),
            None => {
                // The same loop, timed here: criterion did not measure (`--test`).
                let passes = if test_mode { 3 } else { 20 };
                let start = Instant::now();
                for _ in 0..passes {
                    std::hint::black_box(parse_all(&s.bytes));
                }
                (
                    start.elapsed().as_nanos() as f64 / passes as f64,
                    format!(
                        "own timing of the same loop, {passes} passes (criterion measured nothing)"
                    ),
                )
            }
        };
        // The 64 B stream (push's messages, the most per-event work per byte) is the
        // target's figure; the 1 KiB one is its own row.
        let id = match s.payload {
            64 => "sse_parser.gb_per_s".to_owned(),
            _ => format!("sse_parser.gb_per_s.{}", s.name.to_lowercase()),
        };
        targets.push(
            PerfTarget::new(
                &id,
                &format!(
                    "SSE parser alone, {} B payload events (id + data lines), {CHUNK} B chunks",
                    s.payload
                ),
                "GB/s",
                Bound::AtLeast,
                PARSER_GB_PER_S,
                Some(bytes / ns),
            )
            .with_note(format!(
                "{how}: {:.2} MiB, {} events per pass, {:.0} ns per event",
                bytes / (1024.0 * 1024.0),
                s.events,
                ns / s.events as f64
            )),
        );
    }
}

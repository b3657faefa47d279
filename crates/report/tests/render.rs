//! Renders synthetic runs and checks every file the report writes.

#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;
use std::path::Path;

use pushbench_report::{ReportError, render};
use pushbench_schema::{CaseResult, Integrity, RunFile, RunInfo};

fn case(n: u64, variant: &str, transport: &str, elapsed: f64) -> CaseResult {
    let mut c = CaseResult::new("study", transport, variant);
    c.params.n = Some(n);
    c.params.block_size = Some(1000);
    c.params.repeats = Some(3);
    let m = &mut c.metrics;
    m.elapsed_ms = Some(elapsed);
    m.elapsed_min_ms = Some(elapsed * 0.9);
    m.elapsed_max_ms = Some(elapsed * 1.1);
    m.calls_per_s = Some(n as f64 / elapsed * 1000.0);
    m.bytes_loaded = Some(n * 1030);
    let up = match transport {
        "ws" => 50,
        "tcp" => 48,
        _ => 180,
    };
    m.wire_bytes_up = Some(n * up);
    m.wire_bytes_down = Some(n * 1100);
    m.p50_us = Some(elapsed * 1000.0 / n as f64);
    m.p99_us = Some(elapsed * 2000.0 / n as f64);
    c.integrity = Integrity {
        sent: n,
        received: n,
        ..Integrity::default()
    };
    c
}

/// N=100: ws fastest. N=1000: sse fastest; all-at-once has one failed case (an error, no
/// metrics) and one flagged case (1 lost).
fn synthetic(complete: bool) -> RunFile {
    let mut file = RunFile::new(RunInfo {
        id: "synthetic".into(),
        git_commit: "0123abc".into(),
        complete,
        config: serde_json::json!({"study": {"calls": [100, 1000], "block_size": 1000, "repeats": 3, "call_timeout_ms": 10000}}),
        ..RunInfo::default()
    });
    for (t, ms) in [
        ("ws", 10.0),
        ("sse", 20.0),
        ("longpoll", 30.0),
        ("tcp", 5.0),
    ] {
        file.cases.push(case(100, "sequential", t, ms));
    }
    for (t, ms) in [("ws", 15.0), ("sse", 25.0), ("longpoll", 35.0)] {
        file.cases.push(case(100, "all-at-once", t, ms));
    }
    for (t, ms) in [
        ("ws", 200.0),
        ("sse", 150.0),
        ("longpoll", 300.0),
        ("tcp", 100.0),
    ] {
        file.cases.push(case(1000, "sequential", t, ms));
    }
    let mut failed = CaseResult::new("study", "ws", "all-at-once");
    failed.params.n = Some(1000);
    failed.error = Some("connect: cannot connect to 127.0.0.1:1: refused".into());
    file.cases.push(failed);
    file.cases.push(case(1000, "all-at-once", "sse", 260.0));
    let mut lossy = case(1000, "all-at-once", "longpoll", 320.0);
    lossy.integrity = Integrity {
        sent: 1000,
        received: 999,
        lost: 1,
        ..Integrity::default()
    };
    file.cases.push(lossy);
    file
}

const CHARTS: [&str; 4] = [
    "study-n100",
    "study-n1000",
    "study-calls-per-s",
    "study-latency",
];

fn rendered(complete: bool) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    synthetic(complete).write(dir.path()).unwrap();
    let out = render(dir.path()).unwrap();
    assert_eq!(out.report, dir.path().join("REPORT.md"));
    let expected: Vec<_> = CHARTS
        .iter()
        .flat_map(|name| ["svg", "png"].map(|ext| dir.path().join(format!("charts/{name}.{ext}"))))
        .collect();
    assert_eq!(out.charts, expected);
    let md = fs::read_to_string(&out.report).unwrap();
    (dir, md)
}

/// The one table row of `transport`/`variant` whose elapsed cell starts with `elapsed`.
fn row<'a>(md: &'a str, transport: &str, variant: &str, elapsed: &str) -> &'a str {
    let start = format!("| {transport} | {variant} | ");
    md.lines()
        .find(|l| l.starts_with(&start) && l.contains(&format!(" | {elapsed}")))
        .unwrap_or_else(|| panic!("no row {transport} {variant} {elapsed} in\n{md}"))
}

/// The text elements of an SVG, trimmed.
fn svg_texts(svg: &str) -> Vec<&str> {
    svg.split("<text")
        .skip(1)
        .filter_map(|chunk| {
            let body = &chunk[chunk.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim())
        })
        .collect()
}

/// How many pixels of `png` are exactly `rgb`.
fn pixels(png: &image::RgbImage, rgb: [u8; 3]) -> usize {
    png.pixels().filter(|p| p.0 == rgb).count()
}

#[test]
fn every_chart_is_a_real_image_with_title_and_axis_labels() {
    let (dir, _) = rendered(true);
    let charts = dir.path().join("charts");
    // (chart, text somewhere in a label, whole labels)
    let texts: [(&str, &[&str], &[&str]); 4] = [
        (
            "study-n100",
            &[
                "Study: 100 sequential calls, elapsed time per transport",
                "all-at-once: ws, sse and longpoll together",
            ],
            &[
                "elapsed time (ms), connect included",
                "transport",
                "tcp (floor)",
                "10.0",
            ],
        ),
        (
            "study-n1000",
            &["Study: 1000 sequential calls, elapsed time per transport"],
            &[
                "elapsed time (ms), connect included",
                "transport",
                "FLAGGED",
                "no data",
                "150.0",
            ],
        ),
        (
            "study-calls-per-s",
            &["Study: calls per second by number of calls"],
            &[
                "calls per second",
                "sequential calls per run, N (log scale)",
                "100",
                "1000",
                "tcp (floor)",
            ],
        ),
        (
            "study-latency",
            &["Study: per-call latency at 1000 calls"],
            &[
                "latency per call (µs, log scale)",
                "transport",
                "p99",
                "100",
                "150",
            ],
        ),
    ];
    for (name, want, ticks) in texts {
        let png = image::open(charts.join(format!("{name}.png"))).unwrap();
        assert_eq!((png.width(), png.height()), (1024, 640), "{name}");
        let svg = fs::read_to_string(charts.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}");
        let found = svg_texts(&svg);
        for text in want {
            assert!(
                found.iter().any(|t| t.contains(text)),
                "{text:?} missing from {name}.svg: {found:?}"
            );
        }
        // Axis titles are whole text elements, not parts of the title.
        for tick in ticks {
            assert!(
                found.contains(tick),
                "{tick:?} not a label of {name}.svg: {found:?}"
            );
        }
    }
    // The bars are drawn, not just the text and legend: the floor is a grey bar, the
    // flagged case a red one (thousands of pixels, where a legend square has ~170).
    let n1000 = image::open(charts.join("study-n1000.png"))
        .unwrap()
        .to_rgb8();
    assert!(pixels(&n1000, [136, 138, 133]) > 3000, "grey tcp floor bar");
    assert!(pixels(&n1000, [204, 0, 0]) > 3000, "red flagged bar");
    let n100 = image::open(charts.join("study-n100.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(pixels(&n100, [204, 0, 0]), 0, "nothing flagged at N=100");
}

#[test]
fn report_has_every_section_in_order() {
    let (_dir, md) = rendered(true);
    let mut at = 0;
    for heading in [
        "# pushbench report",
        "## What this answers",
        "## The study we reproduce",
        "## Our method",
        "## Environment",
        "## Results",
        "### 100 calls",
        "### 1000 calls",
        "## Does the published conclusion hold here?",
        "## Integrity",
        "## All cases",
        "Regenerate with `pushbench report <dir>`",
    ] {
        let found = md[at..]
            .find(heading)
            .unwrap_or_else(|| panic!("{heading} missing or out of order"));
        at += found + heading.len();
    }
    assert!(md.contains("![elapsed time per transport, 100 calls](charts/study-n100.png) ([SVG](charts/study-n100.svg))"));
    assert!(md.contains("![calls per second by N](charts/study-calls-per-s.png)"));
    assert!(md.contains("![per-call latency p50 and p99](charts/study-latency.png)"));
    assert!(md.contains("`0123abc`"));
    assert!(md.contains("- Study: N = 100, 1000 sequential calls per case; block size 1000; a reply not received within 10000 ms is counted lost."), "{md}");
    assert!(
        md.contains("- Runs per case: 1 to 3 (column \"runs\")."),
        "{md}"
    );
    assert!(md.contains("\"call_timeout_ms\": 10000"), "config as JSON");
    assert!(!md.contains("incomplete run"));
}

#[test]
fn report_ranks_transports_per_n_and_says_where_the_conclusion_fails() {
    let (_dir, md) = rendered(true);
    assert!(md.contains("- N=100: ws 10.0 ms < sse 20.0 ms < longpoll 30.0 ms: WebSockets fastest, as published.\n"), "{md}");
    assert!(md.contains("- N=1000: sse 150.0 ms < ws 200.0 ms < longpoll 300.0 ms: sse fastest; the published conclusion does **not** hold at this N.\n"), "{md}");
    assert!(
        md.contains("**Summary:** the published ordering did not hold at every N. WebSockets were fastest at N=100. They were not at N=1000."),
        "{md}"
    );
    assert!(!md.contains("held at every N measured here"));
    assert!(
        !md.contains("overlap across runs"),
        "ranges 9–11 and 18–22 do not overlap"
    );
}

#[test]
fn ratios_to_the_tcp_floor_are_per_n_against_the_sequential_floor() {
    let (_dir, md) = rendered(true);
    assert!(row(&md, "ws", "sequential", "10.0").contains("| 2.00× |"));
    assert!(row(&md, "sse", "sequential", "150.0").contains("| 1.50× |"));
    assert!(row(&md, "tcp", "sequential", "5.0").contains("| 1.00× |"));
    assert!(
        row(&md, "ws", "all-at-once", "15.0").contains("| 3.00× |"),
        "all-at-once is compared with the sequential floor of the same N"
    );
    assert!(
        row(&md, "sse", "all-at-once", "260.0").contains("| 2.60× |"),
        "N=1000 uses the N=1000 floor"
    );
    assert!(
        md.contains("sse 180 B up per call (3.6× ws), 1.50× the floor's time"),
        "{md}"
    );
    assert!(md.contains("tcp 48 B up per call, the floor"), "{md}");
    assert!(md.contains("Bytes up alone do not explain the order: by bytes ws < sse < longpoll, by time sse < ws < longpoll."), "{md}");
    assert!(
        md.contains("Fewer bytes up went with less time: ws < sse < longpoll."),
        "{md}"
    );
}

#[test]
fn flagged_and_failed_cases_are_listed_and_missing_figures_shown_as_dashes() {
    let (_dir, md) = rendered(true);
    assert!(md.contains("**Warning: 2 flagged case(s)**"));
    assert!(md.contains("- study / longpoll / all-at-once (n=1000): received 999 of 1000 sent, 1 lost, 0 duplicated, 0 out of order"));
    assert!(md.contains("- study / ws / all-at-once (n=1000): error: connect: cannot connect to 127.0.0.1:1: refused"));
    let failed = row(&md, "ws", "all-at-once", "—");
    assert!(
        failed.contains("| — / — | — / — | 0/0/0/0/0 | **FLAGGED**: error: connect"),
        "{failed}"
    );
    let lossy = row(&md, "longpoll", "all-at-once", "320.0");
    assert!(
        lossy.contains("| 1000/999/1/0/0 | **FLAGGED**: received 999 of 1000 sent, 1 lost"),
        "{lossy}"
    );
    assert!(!md.contains("every case: received == sent"));
}

#[test]
fn a_clean_run_says_so_under_integrity() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = synthetic(true);
    file.cases.retain(CaseResult::is_ok);
    file.write(dir.path()).unwrap();
    let md = fs::read_to_string(render(dir.path()).unwrap().report).unwrap();
    assert!(md.contains(
        "Every case: received == sent, 0 lost, 0 duplicated, 0 out of order, no errors."
    ));
    assert!(!md.contains("flagged case(s)"));
}

#[test]
fn an_incomplete_run_is_announced() {
    let (_dir, md) = rendered(false);
    let warning = "**Warning: incomplete run: 14 cases measured before it stopped.**";
    let at = md.find(warning).unwrap_or_else(|| panic!("{md}"));
    assert!(
        at < md.find("## What this answers").unwrap(),
        "warning comes first"
    );
}

#[test]
fn missing_data_never_stops_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = RunFile::new(RunInfo::default());
    // Study cases with nothing measured, one without even an N, and a scenario the report
    // has no section for yet.
    for t in ["ws", "sse", "tcp"] {
        let mut c = CaseResult::new("study", t, "sequential");
        c.params.n = Some(100);
        c.error = Some(format!("{t} failed"));
        file.cases.push(c);
    }
    file.cases
        .push(CaseResult::new("study", "longpoll", "sequential"));
    let mut fanout = CaseResult::new("fanout", "sse", "broadcast");
    fanout.params.clients = Some(1000);
    fanout.metrics.p99_us = Some(850.0);
    file.cases.push(fanout);
    file.write(dir.path()).unwrap();
    let out = render(dir.path()).unwrap();
    for chart in &out.charts {
        assert!(fs::metadata(chart).unwrap().len() > 0, "{chart:?}");
    }
    let md = fs::read_to_string(out.report).unwrap();
    assert!(md.contains("- N=100: no clean web transport: incomplete comparison (ws flagged, sse flagged, longpoll not measured), so the published ordering cannot be checked at this N."), "{md}");
    assert!(md.contains("The comparison is incomplete at N=100"), "{md}");
    assert!(md.contains("| fanout | — | sse | broadcast |"), "{md}");
    assert!(md.contains("| study | — | longpoll | sequential |"), "{md}");
}

#[test]
fn a_flagged_web_transport_makes_the_comparison_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = synthetic(true);
    let sse = file
        .cases
        .iter_mut()
        .find(|c| c.transport == "sse" && c.variant == "sequential" && c.params.n == Some(100))
        .unwrap();
    sse.integrity.duplicated = 2;
    file.write(dir.path()).unwrap();
    let md = fs::read_to_string(render(dir.path()).unwrap().report).unwrap();
    assert!(
        md.contains("- N=100: ws 10.0 ms < longpoll 30.0 ms: incomplete comparison (sse flagged)"),
        "{md}"
    );
    assert!(
        md.contains("sse 180 B up per call (3.6× ws), 4.00× the floor's time (FLAGGED)"),
        "{md}"
    );
    let reason = "received 100 of 100 sent, 0 lost, 2 duplicated, 0 out of order";
    assert!(
        row(&md, "sse", "sequential", "20.0").ends_with(&format!("| **FLAGGED**: {reason} |")),
        "{md}"
    );
    assert!(
        md.contains(&format!("- study / sse / sequential (n=100): {reason}")),
        "{md}"
    );
}

#[test]
fn an_unknown_schema_version_names_file_and_version() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("run.json"),
        r#"{"schema_version": 99, "run": {}, "cases": []}"#,
    )
    .unwrap();
    let err = render(dir.path()).unwrap_err();
    assert!(matches!(err, ReportError::Schema(_)), "{err:?}");
    let msg = err.to_string();
    let file = dir.path().join("run.json");
    assert!(
        msg.contains(&file.display().to_string()) && msg.contains("schema_version 99"),
        "{msg}"
    );
    assert!(!dir.path().join("REPORT.md").exists());
    assert!(!dir.path().join("charts").exists());
}

#[test]
fn an_unwritable_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(true).write(dir.path()).unwrap();
    // A file where the charts directory should go.
    fs::write(dir.path().join("charts"), "not a directory").unwrap();
    let err = render(dir.path()).unwrap_err();
    let charts = dir.path().join("charts");
    assert!(
        matches!(&err, ReportError::Io { path, .. } if path == Path::new(&charts)),
        "{err:?}"
    );
    assert!(err.to_string().contains(&charts.display().to_string()));
}

fn push_case(transport: &str, flush: &str, msgs_per_s: f64) -> CaseResult {
    let mut c = CaseResult::new("push", transport, "stream");
    c.params.n = Some(1000);
    c.params.payload_bytes = Some(64);
    c.params.flush = Some(flush.into());
    c.metrics.msgs_per_s = Some(msgs_per_s);
    c.metrics.bytes_per_s = Some(msgs_per_s * 64.0);
    c.metrics.server_cpu_s_per_million = Some(1.5);
    c.integrity = Integrity {
        sent: 1000,
        received: 1000,
        ..Integrity::default()
    };
    c
}

#[test]
fn push_cases_get_their_own_section_chart_and_floor_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = RunFile::new(RunInfo {
        complete: true,
        ..RunInfo::default()
    });
    for (t, flush, rate) in [
        ("ws", "per_message", 300_000.0),
        ("tcp", "per_message", 400_000.0),
        ("ws", "batched", 800_000.0),
        ("tcp", "batched", 800_000.0),
    ] {
        file.cases.push(push_case(t, flush, rate));
    }
    file.write(dir.path()).unwrap();
    let out = render(dir.path()).unwrap();
    assert_eq!(out.charts.len(), 2, "only the push chart: {:?}", out.charts);
    let png = image::open(dir.path().join("charts/push-msgs-per-s.png")).unwrap();
    assert_eq!(png.width(), 1024);
    let md = fs::read_to_string(out.report).unwrap();
    assert!(md.contains("## Push: a server streaming messages"));
    assert!(
        !md.contains("## The study we reproduce"),
        "no study cases, no study section"
    );
    assert!(
        md.contains("| ws | per_message | 1000 | 64 | 1 | 300000 | 19.2 | 0.75× |"),
        "{md}"
    );
    assert!(
        md.contains("| ws | batched | 1000 | 64 | 1 | 800000 | 51.2 | 1.00× |"),
        "{md}"
    );
    let all = md.lines().find(|l| l.starts_with("| push |")).unwrap();
    assert!(
        all.contains("| 300000 | — |"),
        "msgs/s shown, no study floor ratio: {all}"
    );
}

#[test]
fn roundtrip_cases_get_a_latency_chart_per_client_count_and_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = RunFile::new(RunInfo {
        complete: true,
        ..RunInfo::default()
    });
    for (t, p50) in [("ws", 120.0), ("tcp", 100.0)] {
        let mut c = CaseResult::new("roundtrip", t, "concurrent");
        c.params.clients = Some(10);
        c.params.n = Some(50);
        c.metrics.p50_us = Some(p50);
        c.metrics.p99_us = Some(p50 * 3.0);
        c.metrics.wire_bytes_up = Some(500 * 48);
        c.integrity = Integrity {
            sent: 500,
            received: 500,
            ..Integrity::default()
        };
        file.cases.push(c);
    }
    file.write(dir.path()).unwrap();
    let out = render(dir.path()).unwrap();
    assert!(
        dir.path().join("charts/roundtrip-c10.png").exists(),
        "{:?}",
        out.charts
    );
    let md = fs::read_to_string(out.report).unwrap();
    assert!(md.contains("## Round trip: client to server and back"));
    assert!(
        md.contains("| ws | 10 | 50 | — | 1 | — | 120 / — / 360 / — | 1.20× | 48 / — |"),
        "{md}"
    );
}

#[test]
fn a_run_with_targets_gets_the_performance_targets_section() {
    use pushbench_schema::{Bound, PerfTarget};
    let dir = tempfile::tempdir().unwrap();
    let mut file = RunFile::new(RunInfo {
        complete: true,
        ..RunInfo::default()
    });
    for (t, rate) in [("ws", 600_000.0), ("tcp", 1_000_000.0)] {
        file.cases.push(push_case(t, "batched", rate));
    }
    file.write(dir.path()).unwrap();
    let md = fs::read_to_string(render(dir.path()).unwrap().report).unwrap();
    assert!(
        !md.contains("## Performance targets"),
        "no targets, no section"
    );
    file.targets = vec![
        PerfTarget::new(
            "push.ws_to_tcp.batched",
            "WS / tcp",
            "×",
            Bound::AtLeast,
            0.5,
            Some(0.6),
        ),
        PerfTarget::new(
            "driver.cpu_share.ws",
            "client / server CPU",
            "×",
            Bound::AtMost,
            1.0,
            Some(1.4),
        ),
    ];
    file.write(dir.path()).unwrap();
    let md = fs::read_to_string(render(dir.path()).unwrap().report).unwrap();
    assert!(md.contains("## Performance targets"), "{md}");
    assert!(
        md.contains("| `push.ws_to_tcp.batched` | WS / tcp | 0.60 × | ≥ 0.5 × | ✓ |"),
        "{md}"
    );
    assert!(
        md.contains("| `driver.cpu_share.ws` | client / server CPU | 1.40 × | ≤ 1 × | ✗ |"),
        "{md}"
    );
}

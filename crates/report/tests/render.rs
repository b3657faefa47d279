//! Renders a synthetic run and checks every file the report writes.

#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;

use pushbench_report::render;
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
    m.wire_bytes_up = Some(n * if transport == "ws" { 50 } else { 180 });
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

/// N=100: ws fastest. N=1000: sse fastest, one flagged case, one failed case.
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

fn rendered(complete: bool) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    synthetic(complete).write(dir.path()).unwrap();
    let out = render(dir.path()).unwrap();
    assert_eq!(out.report, dir.path().join("REPORT.md"));
    assert_eq!(out.charts.len(), 8, "{:?}", out.charts);
    let md = fs::read_to_string(&out.report).unwrap();
    (dir, md)
}

#[test]
fn every_chart_is_a_real_image_with_title_and_axis_labels() {
    let (dir, _) = rendered(true);
    let charts = dir.path().join("charts");
    for name in [
        "study-n100",
        "study-n1000",
        "study-calls-per-s",
        "study-latency",
    ] {
        let png = image::open(charts.join(format!("{name}.png"))).unwrap();
        assert_eq!((png.width(), png.height()), (1024, 640), "{name}");
        let svg = fs::read_to_string(charts.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}");
        assert!(svg.contains("Study: "), "{name} title");
    }
    let bars = fs::read_to_string(charts.join("study-n1000.svg")).unwrap();
    for text in [
        "elapsed time (ms), connect included",
        "transport",
        "tcp (floor)",
        "FLAGGED",
        "150.0",
    ] {
        assert!(bars.contains(text), "{text} in study-n1000.svg");
    }
    let lines = fs::read_to_string(charts.join("study-calls-per-s.svg")).unwrap();
    assert!(lines.contains("calls per second") && lines.contains("log scale"));
}

#[test]
fn report_ranks_transports_per_n_and_says_where_the_conclusion_fails() {
    let (_dir, md) = rendered(true);
    for heading in [
        "## What this answers",
        "## The study we reproduce",
        "## Our method",
        "## Environment",
        "## Results",
        "## Does the published conclusion hold here?",
        "## Integrity",
        "## All cases",
    ] {
        assert!(md.contains(heading), "{heading}");
    }
    assert!(md.contains("- N=100: ws 10.0 ms < sse 20.0 ms < longpoll 30.0 ms: WebSockets fastest, as published."), "{md}");
    assert!(md.contains("- N=1000: sse 150.0 ms < ws 200.0 ms < longpoll 300.0 ms: sse fastest; the published conclusion does **not** hold"), "{md}");
    assert!(
        md.contains("WebSockets were fastest at N=100. They were not at N=1000."),
        "{md}"
    );
    assert!(md.contains("![elapsed time per transport, 100 calls](charts/study-n100.png)"));
    assert!(md.contains("`0123abc`"));
    assert!(
        md.contains("- Runs per case: 1 to 3 (column \"runs\")."),
        "{md}"
    );
    assert!(!md.contains("incomplete run"));
}

#[test]
fn ratios_to_the_tcp_floor_are_per_n() {
    let (_dir, md) = rendered(true);
    let row = |t: &str, variant: &str, n: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| {t} | {variant} | 3 | {n}")))
            .unwrap_or_else(|| panic!("row {t} {variant} {n}"))
            .to_owned()
    };
    assert!(row("ws", "sequential", "10.0").contains("| 2.00× |"));
    assert!(row("sse", "sequential", "150.0").contains("| 1.50× |"));
    assert!(row("tcp", "sequential", "5.0").contains("| 1.00× |"));
    assert!(
        md.contains("ws sends 50 B up per call and takes 2.00× the floor's time"),
        "{md}"
    );
}

#[test]
fn flagged_and_failed_cases_are_listed_and_missing_figures_shown_as_dashes() {
    let (_dir, md) = rendered(true);
    assert!(md.contains("**Warning: 2 flagged case(s)**"));
    assert!(md.contains("- study / longpoll / all-at-once (n=1000): received 999 of 1000 sent, 1 lost, 0 duplicated, 0 out of order"));
    assert!(md.contains("- study / ws / all-at-once (n=1000): error: connect: cannot connect to 127.0.0.1:1: refused"));
    let failed_row = md
        .lines()
        .find(|l| l.starts_with("| ws | all-at-once | 1 | —"))
        .unwrap();
    assert!(
        failed_row.contains("**FLAGGED**: error: connect"),
        "{failed_row}"
    );
}

#[test]
fn an_incomplete_run_is_announced() {
    let (_dir, md) = rendered(false);
    assert!(
        md.contains("**Warning: incomplete run: 13 cases measured before it stopped.**"),
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
    let err = render(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("run.json") && err.contains("schema_version 99"),
        "{err}"
    );
    assert!(!dir.path().join("REPORT.md").exists());
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

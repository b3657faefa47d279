//! Renders a synthetic run of the scenarios beyond the study (latency, fan-out, connect,
//! payload) and checks the charts, the sections and the measured comparison.

#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use pushbench_core::LatencyHistogram;
use pushbench_report::render;
use pushbench_schema::{CaseResult, Integrity, RunFile, RunInfo};

fn clean(n: u64) -> Integrity {
    Integrity {
        sent: n,
        received: n,
        ..Integrity::default()
    }
}

/// A case whose histogram holds `values_us` and whose fields are filled from it.
fn measured(scenario: &str, transport: &str, variant: &str, values_us: &[u64]) -> CaseResult {
    let mut c = CaseResult::new(scenario, transport, variant);
    let mut h = LatencyHistogram::new();
    for &v in values_us {
        h.record(Duration::from_micros(v));
    }
    h.fill(&mut c.metrics);
    c.histogram = Some(h.to_base64());
    c.integrity = clean(values_us.len() as u64);
    c
}

fn fanout(transport: &str, clients: u64, p99_ms: u64, variant: &str) -> CaseResult {
    let values: Vec<u64> = (1..=100).map(|i| p99_ms * 1000 * i / 99).collect();
    let mut c = measured("fanout", transport, variant, &values);
    c.params.clients = Some(clients);
    c.params.n = Some(10);
    c.params.interval_us = Some(100_000);
    c.params.processes = Some(if clients > 4000 { 2 } else { 1 });
    c
}

fn synthetic() -> RunFile {
    let mut file = RunFile::new(RunInfo {
        id: "synthetic-scenarios".into(),
        complete: true,
        ..RunInfo::default()
    });
    for (t, base) in [("ws", 100), ("sse", 120), ("longpoll", 150), ("tcp", 80)] {
        for clients in [1, 100] {
            let values: Vec<u64> = (0..1000).map(|i| base * clients + i).collect();
            let mut c = measured("latency", t, "paced", &values);
            c.params.clients = Some(clients);
            c.params.rate = Some(1000);
            c.params.n = Some(1000);
            file.cases.push(c);
        }
    }
    // ws passes up to 1000 and fails at 10 000; sse passes everywhere; longpoll's 1000 is
    // under 100 ms but flagged (lost messages), so its answer is 100.
    for (clients, ws, sse, lp) in [(1, 1, 1, 1), (100, 5, 4, 6), (1000, 40, 20, 50)] {
        file.cases.push(fanout("ws", clients, ws, "broadcast"));
        file.cases.push(fanout("sse", clients, sse, "broadcast"));
        file.cases
            .push(fanout("longpoll", clients, lp, "broadcast"));
    }
    file.cases.push(fanout("ws", 10_000, 900, "broadcast"));
    file.cases.push(fanout("sse", 10_000, 90, "broadcast"));
    file.cases.push(fanout("ws", 3162, 150, "search"));
    let flagged = file
        .cases
        .iter_mut()
        .find(|c| c.transport == "longpoll" && c.params.clients == Some(1000))
        .unwrap();
    flagged.integrity.received -= 3;
    flagged.integrity.lost = 3;
    for (t, base) in [("ws", 150), ("sse", 200), ("longpoll", 250), ("tcp", 120)] {
        let values: Vec<u64> = (0..100).map(|i| base + i).collect();
        let mut c = measured("connect", t, "first-message", &values);
        c.params.n = Some(100);
        file.cases.push(c);
        let mut ramp = measured("connect", t, "ramp", &values);
        ramp.params.clients = Some(100);
        ramp.metrics.elapsed_ms = Some(25.0);
        ramp.metrics.conns_per_s = Some(4000.0);
        file.cases.push(ramp);
    }
    for t in ["ws", "sse", "longpoll", "tcp"] {
        for kind in ["text", "binary"] {
            for size in [16u64, 4096, 1_048_576] {
                let mut c = CaseResult::new("payload", t, kind);
                c.params.payload_bytes = Some(size);
                c.params.n = Some(100);
                c.integrity = clean(100);
                let base64 = kind == "binary" && (t == "sse" || t == "longpoll");
                let ratio = if base64 { 1.34 } else { 1.0 } + 40.0 / size as f64;
                c.metrics.wire_per_payload_byte = Some(ratio);
                c.metrics.msgs_per_s = Some(1e9 / size as f64);
                c.metrics.bytes_per_s = Some(1e9);
                file.cases.push(c);
            }
        }
    }
    file
}

fn render_to(file: &RunFile, dir: &Path) -> String {
    file.write(dir).unwrap();
    render(dir).unwrap();
    fs::read_to_string(dir.join("REPORT.md")).unwrap()
}

#[test]
fn every_scenario_gets_its_charts_as_decodable_images() {
    let dir = tempfile::tempdir().unwrap();
    let report = render_to(&synthetic(), dir.path());
    for name in [
        "latency-c1",
        "latency-c100",
        "fanout",
        "connect",
        "payload-overhead",
        "payload-throughput",
    ] {
        let png = dir.path().join(format!("charts/{name}.png"));
        let image = image::open(&png).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((image.width(), image.height()), (1024, 640), "{name}");
        let svg = fs::read_to_string(dir.path().join(format!("charts/{name}.svg"))).unwrap();
        assert!(
            svg.contains("log scale") || svg.contains("percentile"),
            "{name}: axis labels"
        );
        assert!(
            report.contains(&format!("charts/{name}.png")),
            "{name} linked"
        );
    }
    let fanout_svg = fs::read_to_string(dir.path().join("charts/fanout.svg")).unwrap();
    assert!(fanout_svg.contains("100 ms (instant threshold)"));
    // No study cases: no study charts, and the report still renders.
    assert!(!dir.path().join("charts/study-latency.png").exists());
    for section in [
        "## Measured comparison",
        "## Latency at a steady rate",
        "## Fan-out: one broadcast to many clients",
        "## Connect: time to the first message",
        "## Payload: framing and encoding cost by size",
    ] {
        assert!(report.contains(section), "{section}");
    }
}

#[test]
fn fanout_names_the_largest_count_under_100_ms_and_ignores_flagged_cases() {
    let dir = tempfile::tempdir().unwrap();
    let report = render_to(&synthetic(), dir.path());
    assert!(report.contains("| ws | 1000 (fails at 3162) |"), "{report}");
    assert!(
        report.contains("| sse | ≥ 10000 (the largest tested) |"),
        "{report}"
    );
    assert!(
        report.contains("| longpoll | 100 (fails at 1000) |"),
        "{report}"
    );
}

#[test]
fn comparison_rows_carry_this_runs_figures_or_say_they_were_not_measured() {
    let dir = tempfile::tempdir().unwrap();
    let report = render_to(&synthetic(), dir.path());
    let row = |aspect: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("| {aspect} |")))
            .unwrap_or_else(|| panic!("no {aspect} row"))
            .to_owned()
    };
    let binary = row("Binary data");
    assert!(
        binary.contains("binary frames: 1.01 wire B per byte"),
        "{binary}"
    );
    assert!(
        binary.contains("base64 text: 1.35 wire B per byte"),
        "{binary}"
    );
    let reconnect = row("Reconnection");
    assert_eq!(reconnect.matches("not measured in this run").count(), 3);
    // No study and no push in this run.
    assert!(row("Direction").contains("not measured in this run"));
    assert!(row("Throughput").contains("not measured in this run"));
    let scale = row("Connection limits / scale");
    assert!(
        scale.contains("≥ 10000 (the largest tested) clients"),
        "{scale}"
    );
    let setup = row("Connection setup");
    assert!(setup.contains("199 µs to first message"), "{setup}");
}

#[test]
fn latency_curves_fall_back_to_fields_without_a_usable_histogram() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = synthetic();
    for c in file.cases.iter_mut().filter(|c| c.scenario == "latency") {
        c.histogram = Some("not base64!".into());
    }
    let report = render_to(&file, dir.path());
    assert!(dir.path().join("charts/latency-c100.png").exists());
    // The table still shows the percentile fields.
    let ws = report
        .lines()
        .find(|l| l.starts_with("| ws | 100 | 1000 |"))
        .unwrap();
    assert!(ws.contains(" / "), "{ws}");
}

fn reconnect(transport: &str, variant: &str, down_ms: u64, lost: u64, dup: u64) -> CaseResult {
    let mut c = measured("reconnect", transport, variant, &[100, 200, 300]);
    c.params.n = Some(500);
    c.params.drop_every = Some(100);
    c.params.down_ms = Some(down_ms);
    c.params.retry_ms = Some(50);
    c.metrics.reconnects = Some(4);
    c.metrics.recovery_p50_ms = Some(51.0 + down_ms as f64);
    c.metrics.recovery_max_ms = Some(60.0 + down_ms as f64);
    c.integrity = Integrity {
        sent: 500,
        received: 500 - lost,
        lost,
        duplicated: dup,
        loss_by_design: variant == "no-resume",
        ..Integrity::default()
    };
    c
}

#[test]
fn reconnect_section_separates_loss_by_design_from_faults() {
    let mut file = RunFile::new(RunInfo {
        id: "synthetic-reconnect".into(),
        complete: true,
        ..RunInfo::default()
    });
    for t in ["ws", "sse"] {
        file.cases.push(reconnect(t, "resume", 0, 0, 0));
        file.cases.push(reconnect(t, "no-resume", 0, 150, 0));
        file.cases.push(reconnect(t, "resume", 200, 0, 0));
    }
    // A no-resume case that duplicated a message is a fault, by design or not.
    file.cases.push(reconnect("sse", "no-resume", 200, 300, 1));
    let dir = tempfile::tempdir().unwrap();
    file.write(dir.path()).unwrap();
    let rendered = render(dir.path()).unwrap();
    assert!(dir.path().join("charts/reconnect.png").is_file());
    let md = fs::read_to_string(&rendered.report).unwrap();
    let section = &md[md.find("## Reconnect").expect("reconnect section")..];
    assert!(section.contains("| ws | no-resume | 0 | 100 | 50 | 4 | 51.0 / 60.0 |"));
    assert!(section.contains("ok (150 lost by design)"), "{section}");
    assert!(section.contains("| sse | no-resume | 200 |"));
    assert!(section.contains("**FLAGGED**: received 200 of 500 sent, 300 lost, 1 duplicated"));
    let row = md
        .lines()
        .find(|l| l.starts_with("| Reconnection |"))
        .unwrap();
    assert!(
        row.contains(
            "0 of 500 lost over 4 drops with resume, recovery p50 51 ms; 150 lost without resume"
        ),
        "{row}"
    );
    let integrity = &md[md.find("## Integrity").unwrap()..];
    assert!(!integrity.starts_with("## Integrity\n\nEvery case: received == sent"));
    assert!(
        integrity.contains("reconnect / sse / no-resume"),
        "{integrity}"
    );
}

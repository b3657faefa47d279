//! Renders a synthetic fan-out run with SSE over HTTP/1.1 and HTTP/2 and checks the section
//! "HTTP/2 and the browser connection limit": its charts, its figures, and that it stays out
//! of a run without HTTP/2 cases and out of the fan-out chart's SSE line.

#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;
use std::time::Duration;

use pushbench_core::LatencyHistogram;
use pushbench_report::render;
use pushbench_schema::{CaseResult, Integrity, RunFile, RunInfo};

fn fanout(clients: u64, http: Option<&str>, p99_ms: u64, connections: u64) -> CaseResult {
    let variant = if http == Some("2") {
        "http2"
    } else {
        "broadcast"
    };
    let mut c = CaseResult::new("fanout", "sse", variant);
    let mut h = LatencyHistogram::new();
    for i in 1..=100 {
        h.record(Duration::from_micros(p99_ms * 1000 * i / 99));
    }
    h.fill(&mut c.metrics);
    c.histogram = Some(h.to_base64());
    c.integrity = Integrity {
        sent: 10 * clients,
        received: 10 * clients,
        ..Integrity::default()
    };
    c.params.clients = Some(clients);
    c.params.n = Some(10);
    c.params.http = http.map(str::to_owned);
    c.params.streams_per_connection = http.map(|h| if h == "2" { 100 } else { 1 });
    c.metrics.connections = Some(connections);
    c
}

fn run(cases: Vec<CaseResult>) -> (tempfile::TempDir, String) {
    let mut file = RunFile::new(RunInfo {
        id: "synthetic-http2".into(),
        complete: true,
        ..RunInfo::default()
    });
    file.cases = cases;
    let dir = tempfile::tempdir().unwrap();
    file.write(dir.path()).unwrap();
    render(dir.path()).unwrap();
    let md = fs::read_to_string(dir.path().join("REPORT.md")).unwrap();
    (dir, md)
}

#[test]
fn the_http2_section_shows_measured_connections_and_percentiles() {
    let (dir, md) = run(vec![
        fanout(100, Some("1.1"), 4, 100),
        fanout(100, Some("2"), 3, 1),
        fanout(300, Some("1.1"), 9, 300),
        fanout(300, Some("2"), 17, 3),
    ]);
    let at = md
        .find("## HTTP/2 and the browser connection limit")
        .expect("the section");
    let section = &md[at..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    assert!(
        section.contains("6 HTTP/1.1 connections per origin"),
        "{section}"
    );
    // One row per client count: connections HTTP/1.1 / HTTP/2 as the clients counted them.
    assert!(section.contains("| 100 | 100 | 100 / 1 |"), "{section}");
    assert!(section.contains("| 300 | 100 | 300 / 3 |"), "{section}");
    // The closing sentence quotes the largest client count's figures.
    assert!(
        section.contains("received 3000 of 3000 messages over 3 connection(s) (p99 17.0"),
        "{section}"
    );
    assert!(
        section.contains("over 300 connections (p99 9.0"),
        "{section}"
    );
    for chart in ["http2-latency", "http2-connections"] {
        assert!(
            section.contains(&format!("charts/{chart}.png")),
            "{section}"
        );
        assert!(dir.path().join(format!("charts/{chart}.svg")).exists());
    }
    // The fan-out chart's SSE line leaves the HTTP/2 twins to this section: the verdict
    // counts HTTP/1.1 cases only (300 clients passes either way, so check the table row).
    assert!(
        md.contains("| sse | http2 | 300 |"),
        "the HTTP/2 cases are listed"
    );
}

#[test]
fn no_http2_section_without_http2_cases() {
    let (dir, md) = run(vec![fanout(100, None, 4, 100)]);
    assert!(!md.contains("HTTP/2 and the browser"), "{md}");
    assert!(!dir.path().join("charts/http2-latency.svg").exists());
}

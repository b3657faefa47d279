//! A run holding cases of two servers (pushbench's own and a `--target`, merged) gets a
//! "Servers compared" section with both figures and their ratio; the other sections show only
//! the first server's cases. A run of one server has no such section.

#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;

use pushbench_report::render;
use pushbench_schema::{CaseResult, Integrity, RunFile, RunInfo};

fn case(server: &str, scenario: &str, transport: &str, figure: f64) -> CaseResult {
    let mut c = CaseResult::new(scenario, transport, "sequential");
    c.params.server = Some(server.to_owned());
    c.integrity = Integrity {
        sent: 100,
        received: 100,
        ..Integrity::default()
    };
    match scenario {
        "study" => {
            c.params.n = Some(100);
            c.metrics.elapsed_ms = Some(figure);
        }
        "push" => {
            c.variant = "stream".into();
            c.params.n = Some(100);
            c.params.flush = Some("batched".into());
            c.metrics.msgs_per_s = Some(figure);
        }
        _ => {
            c.variant = "broadcast".into();
            c.params.clients = Some(10);
            c.metrics.p99_us = Some(figure);
        }
    }
    c
}

/// Renders `cases`; returns REPORT.md and the chart file names written.
fn render_run(cases: Vec<CaseResult>) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut run = RunFile::new(RunInfo {
        complete: true,
        config: serde_json::json!({
            "scenario": "merge",
            "merged_from": [
                {"config": {"server": {"label": "pushbench-axum", "kind": "in-process axum", "http": "127.0.0.1:1"}}},
                {"config": {"server": {"label": "node-express-ws", "kind": "external target node-express-ws (--target)", "target": "http://127.0.0.1:8090"}}},
            ],
        }),
        ..RunInfo::default()
    });
    run.cases = cases;
    run.write(dir.path()).unwrap();
    let rendered = render(dir.path()).unwrap();
    let charts = rendered
        .charts
        .iter()
        .map(|c| c.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    (fs::read_to_string(rendered.report).unwrap(), charts)
}

#[test]
fn two_servers_are_compared_side_by_side_with_their_ratio() {
    // Node listed first in the file: pushbench's own still comes first.
    let mut lossy = case("node-express-ws", "fanout", "sse", 9000.0);
    lossy.integrity.received = 90;
    lossy.integrity.lost = 10;
    let (report, charts) = render_run(vec![
        case("node-express-ws", "study", "ws", 30.0),
        case("node-express-ws", "study", "sse", 50.0),
        case("pushbench-axum", "study", "ws", 10.0),
        case("pushbench-axum", "study", "sse", 40.0),
        case("pushbench-axum", "push", "ws", 200_000.0),
        case("node-express-ws", "push", "ws", 100_000.0),
        case("pushbench-axum", "fanout", "sse", 3000.0),
        lossy,
    ]);
    let section = report
        .split("## Servers compared")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    assert!(
        section.contains("| case | transport | pushbench-axum | node-express-ws | node-express-ws ÷ pushbench-axum |"),
        "{section}"
    );
    assert!(
        section.contains("| sequential n=100 | ws | 10.00 | 30.00 | 3.00× |"),
        "{section}"
    );
    assert!(
        section.contains("| sequential n=100 | sse | 40.00 | 50.00 | 1.25× |"),
        "{section}"
    );
    assert!(
        section.contains("| stream n=100 batched | ws | 200000 | 100000 | 0.50× |"),
        "{section}"
    );
    // The flagged case shows its figure with its flag, and gets no ratio.
    let fanout_row = section
        .lines()
        .find(|l| l.starts_with("| broadcast 10 clients | sse |"))
        .unwrap();
    assert!(
        fanout_row.contains("**FLAGGED**") && fanout_row.ends_with("| — |"),
        "{fanout_row}"
    );
    assert!(
        section.contains("Flagged cases of the other servers"),
        "{section}"
    );
    // Geometric mean of 3.00 (ws) alone, and of 1.25 (sse) alone.
    assert!(
        section.contains("ws 3.00× (1 case(s)), sse 1.25× (1 case(s))"),
        "{section}"
    );
    assert!(
        section.contains("**node-express-ws**: external target node-express-ws (--target) at http://127.0.0.1:8090; 4 case(s), 1 flagged"),
        "{section}"
    );
    // One chart per compared scenario, both servers per transport, embedded in the section.
    for name in [
        "servers-study-n100",
        "servers-push-batched",
        "servers-fanout-c10",
    ] {
        assert!(
            charts.contains(&format!("{name}.png")),
            "{name}: {charts:?}"
        );
        assert!(
            charts.contains(&format!("{name}.svg")),
            "{name}: {charts:?}"
        );
        assert!(
            section.contains(&format!("](charts/{name}.png)")),
            "{section}"
        );
    }
    assert!(
        !charts
            .iter()
            .any(|c| c.starts_with("servers-push-per_message"))
    );
    assert!(
        report.contains("This run holds cases of 2 servers (pushbench-axum, node-express-ws)"),
        "{report}"
    );
    // The rest of the report is pushbench-axum's: its All cases table has no Node case.
    let all_cases = report.split("## All cases").nth(1).unwrap();
    assert!(!all_cases.contains("30.0"), "{all_cases}");
    assert!(all_cases.contains("10.0"), "{all_cases}");
}

#[test]
fn one_server_has_no_comparison() {
    let (report, charts) = render_run(vec![
        case("pushbench-axum", "study", "ws", 10.0),
        case("pushbench-axum", "study", "sse", 40.0),
    ]);
    assert!(!report.contains("Servers compared"), "{report}");
    assert!(
        !charts.iter().any(|c| c.starts_with("servers-")),
        "{charts:?}"
    );
    assert!(report.contains("## All cases"));
}

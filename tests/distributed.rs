//! `serve`, two `drive` processes from their own loopback addresses, and `merge`: the merged
//! result has the summed counts and exactly the percentiles of the hand-merged histograms.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

use pushbench_core::LatencyHistogram;
use pushbench_schema::RunFile;

mod common;
use common::serve_with;

const EXE: &str = env!("CARGO_BIN_EXE_pushbench");

fn drive(http: &str, tcp: &str, transport: &str, source: &str, out: &Path) -> Child {
    Command::new(EXE)
        .args([
            "drive",
            "--quiet",
            &format!("--target=http://{http}"),
            &format!("--tcp-target={tcp}"),
            &format!("--transport={transport}"),
            &format!("--topic=merge-test-{transport}"),
            "--clients=3",
            "--subscribers=6",
            "--messages=40",
            "--interval-us=2000",
            &format!("--source={source}"),
            &format!("--out={}", out.display()),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn histogram(file: &RunFile) -> LatencyHistogram {
    LatencyHistogram::from_base64(file.cases[0].histogram.as_deref().unwrap()).unwrap()
}

#[test]
fn serve_two_drive_processes_and_merge_losslessly() {
    let (_server, http, tcp) = serve_with(&[]);
    let dir = tempfile::tempdir().unwrap();
    for transport in ["ws", "tcp"] {
        let parts = [
            dir.path().join(format!("{transport}-a")),
            dir.path().join(format!("{transport}-b")),
        ];
        let children = [
            drive(&http, &tcp, transport, "127.0.0.2", &parts[0]),
            drive(&http, &tcp, transport, "127.0.0.3", &parts[1]),
        ];
        for child in children {
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{transport}: {stderr}");
        }
        let merged_dir = dir.path().join(format!("{transport}-merged"));
        let merge = Command::new(EXE)
            .arg("merge")
            .args(&parts)
            .arg("--out")
            .arg(&merged_dir)
            .output()
            .unwrap();
        assert!(
            merge.status.success(),
            "{}",
            String::from_utf8_lossy(&merge.stderr)
        );

        let [a, b] = parts.map(|p| RunFile::read(&p).unwrap());
        let merged = RunFile::read(&merged_dir).unwrap();
        assert_eq!(merged.cases.len(), 1, "one case from two parts");
        let case = &merged.cases[0];
        assert_eq!(case.transport, transport);
        assert_eq!(case.params.clients, Some(6));
        assert_eq!(case.params.processes, Some(2));
        assert_eq!(case.integrity.sent, 6 * 40);
        assert_eq!(case.integrity.received, 6 * 40);
        assert!(case.is_ok(), "{case:?}");
        assert_eq!(
            case.integrity.received,
            a.cases[0].integrity.received + b.cases[0].integrity.received
        );

        let mut by_hand = histogram(&a);
        by_hand.merge(&histogram(&b));
        assert_eq!(histogram(&merged).len(), by_hand.len());
        let m = &case.metrics;
        assert_eq!(m.p50_us, Some(by_hand.quantile_us(0.5)));
        assert_eq!(m.p90_us, Some(by_hand.quantile_us(0.9)));
        assert_eq!(m.p99_us, Some(by_hand.quantile_us(0.99)));
        assert_eq!(m.p999_us, Some(by_hand.quantile_us(0.999)));
        let merged_from = &merged.run.config["merged_from"];
        assert_eq!(merged_from.as_array().unwrap().len(), 2);
    }
}

#[test]
fn merge_refuses_parts_it_cannot_merge_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = RunFile::new(pushbench_schema::RunInfo::default());
    let mut case = pushbench_schema::CaseResult::new("fanout", "ws", "broadcast");
    case.integrity.sent = 10;
    case.integrity.received = 10;
    file.cases.push(case);
    file.write(dir.path()).unwrap();
    // Two parts of one case (a case alone is passed through unchanged: nothing to combine).
    let output = Command::new(EXE)
        .arg("merge")
        .arg(dir.path())
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("merged"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no histogram"), "{stderr}");
}

//! The `pushbench` binary as a user runs it.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

fn pushbench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn run_then_report_writes_results_charts_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_str = out.to_str().unwrap();
    let run = pushbench(&[
        "run", "study", "--quick", "--calls", "50", "--quiet", "--out", out_str,
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for t in ["ws", "sse", "longpoll", "tcp"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(t) && l.ends_with("ok")),
            "{t} row in\n{stdout}"
        );
    }
    let file = pushbench_schema::RunFile::read(&out).unwrap();
    assert!(file.run.complete);
    assert_eq!(file.cases.len(), 7, "4 sequential + 3 all-at-once");
    assert!(
        file.cases
            .iter()
            .all(|c| c.integrity.received == 50 && c.integrity.lost == 0)
    );
    assert!(out.join("cases.csv").exists());

    let report = pushbench(&["report", out_str]);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(out.join("REPORT.md").exists());
    let charts: Vec<_> = std::fs::read_dir(out.join("charts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        charts
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "png")),
        "{charts:?}"
    );
    assert!(
        charts
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "svg")),
        "{charts:?}"
    );
}

#[test]
fn bad_arguments_are_named() {
    let out = pushbench(&["run", "study", "--transports", "ws,quic"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown transport `quic`"));

    let out = pushbench(&["run", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario `nosuch`"));

    let out = pushbench(&["report", "/nonexistent/dir"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir"));
}

#[test]
fn list_names_every_scenario() {
    let out = pushbench(&["list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for id in [
        "study",
        "push",
        "latency",
        "fanout",
        "roundtrip",
        "connect",
        "reconnect",
        "payload",
    ] {
        assert!(text.lines().any(|l| l.starts_with(id)), "{id} in\n{text}");
    }
}

#[test]
fn an_interrupted_run_keeps_its_finished_runs_marked_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args([
            "run",
            "study",
            "--calls",
            "500",
            "--repeats",
            "1000",
            "--transports",
            "ws,tcp",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let measured = || {
        pushbench_schema::RunFile::read(&out)
            .map(|f| f.cases.len())
            .unwrap_or(0)
    };
    while measured() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no case measured within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let file = pushbench_schema::RunFile::read(&out).unwrap();
    assert!(!file.run.complete);
    assert!(!file.run.finished_at.is_empty());
    assert_eq!(
        file.cases.len(),
        2,
        "ws and tcp, each with the runs finished before the interrupt"
    );
    for case in &file.cases {
        let runs = case.params.repeats.unwrap();
        assert!((1..1000).contains(&runs), "{runs}");
        assert_eq!(case.integrity.received, 500 * runs, "{case:?}");
        assert!(case.is_ok());
    }
}

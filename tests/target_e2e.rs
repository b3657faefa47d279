//! `pushbench run --target URL`: scenarios measured against a server in another process (here
//! `pushbench serve`, which speaks docs/PROTOCOL.md), every case labelled with the server it
//! measured; a target without a raw-TCP floor skips tcp with a note; nothing listening is a
//! clear error; `merge` keeps the cases of different servers apart.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

use pushbench_schema::{CaseResult, RunFile};

mod common;
use common::{Server, serve_with};

const EXE: &str = env!("CARGO_BIN_EXE_pushbench");

/// Starts `pushbench serve` on free ports; returns it with its HTTP and raw-TCP addresses.
fn serve() -> (Server, String, String) {
    serve_with(&[])
}

fn pushbench(args: &[&str]) -> Output {
    Command::new(EXE).args(args).output().unwrap()
}

fn assert_clean(case: &CaseResult, server: &str) {
    let what = format!("{}/{}/{}", case.scenario, case.transport, case.variant);
    assert_eq!(case.params.server.as_deref(), Some(server), "{what}");
    assert_eq!(case.error, None, "{what}");
    assert!(case.integrity.is_clean(), "{what}: {:?}", case.integrity);
    assert!(case.integrity.sent > 0, "{what}");
    assert_eq!(
        case.metrics.server_cpu_s_per_million, None,
        "{what}: this process cannot see an external server's CPU"
    );
}

#[test]
fn study_and_push_against_a_serve_process_are_labelled_and_lossless() {
    let (_server, http, tcp) = serve();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{http}");
    for (scenario, extra) in [("study", &[][..]), ("push", &["--messages", "2000"][..])] {
        let out = dir.path().join(scenario);
        let mut args = vec![
            "run",
            scenario,
            "--quick",
            "--quiet",
            "--target",
            &url,
            "--tcp-target",
            &tcp,
            "--server-label",
            "serve-process",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let output = pushbench(&args);
        assert!(
            output.status.success(),
            "{scenario}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let file = RunFile::read(&out).unwrap();
        let server = &file.run.config["server"];
        assert_eq!(server["label"], "serve-process");
        assert_eq!(server["target"], url.as_str());
        assert_eq!(server["tcp"], tcp.as_str());
        let transports: Vec<&str> = file.cases.iter().map(|c| c.transport.as_str()).collect();
        for t in ["ws", "sse", "longpoll", "tcp"] {
            assert!(transports.contains(&t), "{scenario}: no {t} case");
        }
        for case in &file.cases {
            assert_clean(case, "serve-process");
        }
        let csv = std::fs::read_to_string(out.join("cases.csv")).unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let column = header.iter().position(|c| *c == "server").unwrap();
        for row in csv.lines().skip(1) {
            assert_eq!(row.split(',').nth(column), Some("serve-process"), "{row}");
        }
    }
}

#[test]
fn a_target_without_a_tcp_floor_skips_tcp_with_a_note() {
    let (_server, http, _tcp) = serve();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let url = format!("http://{http}");
    let output = pushbench(&[
        "run",
        "push",
        "--quiet",
        "--messages=500",
        "--flush=batched",
        "--target",
        &url,
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("tcp skipped") && stderr.contains("--tcp-target"),
        "{stderr}"
    );
    let file = RunFile::read(&out).unwrap();
    let notes = file.run.config["notes"].to_string();
    assert!(notes.contains("tcp skipped"), "{notes}");
    assert_eq!(file.cases.len(), 3, "ws, sse, longpoll; no tcp");
    for case in &file.cases {
        assert_ne!(case.transport, "tcp");
        assert_clean(case, "external");
    }

    // Asking for tcp explicitly without a floor is an error, before anything runs.
    let output = pushbench(&[
        "run",
        "push",
        "--transports=ws,tcp",
        "--target",
        &url,
        "--out",
        dir.path().join("tcp").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no raw-TCP floor") && stderr.contains("--tcp-target"),
        "{stderr}"
    );
}

#[test]
fn a_target_with_nothing_listening_is_a_clear_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let out = dir.path().join("run");
    let output = pushbench(&[
        "run",
        "study",
        "--quick",
        "--target",
        &url,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("--target {url}: nothing answers there"))
            && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(
        !out.exists(),
        "nothing is written for a run that cannot start"
    );

    for (args, expected) in [
        (
            &["--target", "https://127.0.0.1:1"][..],
            "`run` measures http:// targets",
        ),
        (&["--tcp-target", "127.0.0.1:1"][..], "--target"),
        (
            &["--target", "http://127.0.0.1:1", "--server-label", "a b"][..],
            "--server-label `a b`",
        ),
    ] {
        let mut all = vec!["run", "study", "--quick"];
        all.extend_from_slice(args);
        let output = pushbench(&all);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// Runs fanout at 1 and 3 clients (ws only) into `out`, in-process or against `target`.
fn fanout(out: &Path, target: Option<(&str, &str)>) {
    let mut args = vec![
        "run".to_owned(),
        "fanout".into(),
        "--quick".into(),
        "--quiet".into(),
        "--transports=ws".into(),
        "--clients=1,3".into(),
        "--broadcasts=3".into(),
        "--interval-ms=10".into(),
        format!("--out={}", out.display()),
    ];
    if let Some((url, label)) = target {
        args.push(format!("--target={url}"));
        args.push(format!("--server-label={label}"));
    }
    let output = Command::new(EXE).args(&args).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn merge_keeps_the_cases_of_each_server_and_of_each_run_apart() {
    let (_server, http, _tcp) = serve();
    let dir = tempfile::tempdir().unwrap();
    let (own, other, merged) = (
        dir.path().join("own"),
        dir.path().join("other"),
        dir.path().join("merged"),
    );
    fanout(&own, None);
    fanout(&other, Some((&format!("http://{http}"), "other-server")));
    let output = pushbench(&[
        "merge",
        own.to_str().unwrap(),
        other.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let inputs: Vec<CaseResult> = [&own, &other]
        .iter()
        .flat_map(|d| RunFile::read(d).unwrap().cases)
        .collect();
    let merged = RunFile::read(&merged).unwrap();
    assert_eq!(merged.cases.len(), 4, "2 client counts x 2 servers");
    // Nothing was combined: every case is one of the inputs, unchanged.
    for case in &merged.cases {
        assert!(inputs.contains(case), "{case:?}");
    }
    let key = |c: &CaseResult| (c.params.server.clone().unwrap(), c.params.clients.unwrap());
    let mut keys: Vec<_> = merged.cases.iter().map(key).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("other-server".to_owned(), 1),
            ("other-server".to_owned(), 3),
            ("pushbench-axum".to_owned(), 1),
            ("pushbench-axum".to_owned(), 3),
        ]
    );
}

#[test]
fn a_token_reaches_a_target_that_requires_one() {
    let (_server, http, _tcp) = serve_with(&["--token", "s3cret"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{http}");
    let run = |out: &str, token: Option<&str>| {
        let mut args = vec![
            "run",
            "push",
            "--quiet",
            "--messages=200",
            "--flush=batched",
            "--transports=ws,sse,longpoll",
            "--target",
            &url,
        ];
        if let Some(token) = token {
            args.extend(["--token", token]);
        }
        let out = dir.path().join(out);
        let output = Command::new(EXE)
            .args(&args)
            .arg(format!("--out={}", out.display()))
            .env_remove("PUSHBENCH_TOKEN")
            .output()
            .unwrap();
        (output.status.code(), RunFile::read(&out).unwrap())
    };
    let (code, file) = run("with", Some("s3cret"));
    assert_eq!(code, Some(0));
    for case in &file.cases {
        assert_clean(case, "external");
    }
    let (code, file) = run("without", None);
    assert_eq!(code, Some(1), "every case flagged");
    assert_eq!(file.cases.len(), 3);
    for case in &file.cases {
        let error = case.error.as_deref().unwrap();
        assert!(error.contains("401"), "{}: {error}", case.transport);
    }
}

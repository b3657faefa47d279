//! The Node.js reference server (scripts/reference/node) measured with `run --target`: study,
//! push and fanout run clean against it, and the reconnect scenario, whose `/feed/*` endpoints
//! it lacks, fails per case naming the endpoint.
//!
//! The Node client (scripts/reference/node/client.js) receives a small push over ws and sse from
//! `pushbench serve` whole, and prints the JSON line the perf bench's peers group parses.
//!
//! Needs Node and the server's npm dependencies, so `cargo test --workspace` lists it as
//! ignored; `.ci/run` installs them (`npm ci`) and runs it with `--ignored`:
//! `cargo test --test node_reference -- --ignored`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use pushbench::perf::peers::NodeClientReport;
use pushbench_schema::RunFile;

const EXE: &str = env!("CARGO_BIN_EXE_pushbench");

/// A child process (the Node server, or `pushbench serve`), killed when the test ends however
/// it ends.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference/node");
    for module in ["ws", "express", "eventsource"] {
        assert!(
            dir.join("node_modules").join(module).is_dir(),
            "no {module} in node_modules: run `npm ci` in {} first (.ci/run does)",
            dir.display()
        );
    }
    dir
}

fn start_node() -> (Node, String, String) {
    let dir = node_dir();
    let mut child = Command::new("node")
        .arg("server.js")
        .arg("0")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("this test needs `node` (Node 18+) on PATH");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let http = lines.next().unwrap().unwrap();
    let tcp = lines.next().unwrap().unwrap();
    let http = http.strip_prefix("http ").unwrap().to_owned();
    let tcp = tcp.strip_prefix("tcp ").unwrap().to_owned();
    (Node(child), http, tcp)
}

fn run(scenario: &str, http: &str, tcp: &str, out: &Path, extra: &[&str]) -> (i32, RunFile) {
    let output = Command::new(EXE)
        .args(["run", scenario, "--quick", "--quiet"])
        .args(["--target", &format!("http://{http}"), "--tcp-target", tcp])
        .args(["--server-label", "node-express-ws"])
        .arg(format!("--out={}", out.display()))
        .args(extra)
        .output()
        .unwrap();
    let code = output.status.code().unwrap();
    assert!(
        code <= 1,
        "{scenario}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (code, RunFile::read(out).unwrap())
}

#[test]
#[ignore = "needs Node and `npm ci` in scripts/reference/node; .ci/run runs it with --ignored"]
fn study_push_and_fanout_run_clean_against_the_node_reference_server() {
    let (_node, http, tcp) = start_node();
    let dir = tempfile::tempdir().unwrap();
    for (scenario, extra) in [
        ("study", &["--calls=50"][..]),
        ("push", &["--messages=2000"][..]),
        (
            "fanout",
            &["--clients=1,20", "--broadcasts=3", "--interval-ms=20"][..],
        ),
    ] {
        let (code, file) = run(scenario, &http, &tcp, &dir.path().join(scenario), extra);
        assert_eq!(code, 0, "{scenario}");
        let transports: Vec<&str> = file.cases.iter().map(|c| c.transport.as_str()).collect();
        for t in ["ws", "sse", "longpoll", "tcp"] {
            assert!(transports.contains(&t), "{scenario}: no {t} case");
        }
        for case in &file.cases {
            let what = format!("{scenario}/{}/{}", case.transport, case.variant);
            assert_eq!(case.params.server.as_deref(), Some("node-express-ws"));
            assert_eq!(case.error, None, "{what}");
            assert!(case.integrity.is_clean(), "{what}: {:?}", case.integrity);
        }
    }

    let (code, file) = run(
        "reconnect",
        &http,
        &tcp,
        &dir.path().join("reconnect"),
        &["--down-ms=0", "--resume-only"],
    );
    assert_eq!(code, 1, "flagged cases exit 1");
    assert_eq!(file.cases.len(), 2);
    for case in &file.cases {
        let error = case.error.as_deref().unwrap();
        let endpoint = format!("does not implement GET /feed/{} (HTTP 404", case.transport);
        assert!(error.contains(&endpoint), "{error}");
    }
}

#[test]
#[ignore = "needs Node and `npm ci` in scripts/reference/node; .ci/run runs it with --ignored"]
fn the_node_client_receives_a_push_from_pushbench_serve_whole() {
    let mut server = Command::new(EXE)
        .args(["serve", "--bind", "127.0.0.1:0", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Keep the server's stdout open for the whole test: it prints more lines after the first,
    // and a closed pipe would end it.
    let mut stdout = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    let server = Node(server);
    let http = first.strip_prefix("http ").unwrap().to_owned();
    for (transport, library) in [("ws", "ws "), ("sse", "eventsource ")] {
        let output = Command::new("node")
            .arg("client.js")
            .arg(format!("http://{http}"))
            .args([transport, "3000", "64", "batched"])
            .current_dir(node_dir())
            .output()
            .expect("this test needs `node` (Node 20+) on PATH");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{transport}: {}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let report = NodeClientReport::parse(&stdout).unwrap();
        assert_eq!(report.transport, transport);
        assert!(report.library.starts_with(library), "{}", report.library);
        assert_eq!((report.messages, report.received), (3000, 3000), "{stdout}");
        assert_eq!(
            (
                report.lost,
                report.duplicated,
                report.out_of_order,
                report.bad
            ),
            (0, 0, 0, 0)
        );
        assert!(report.rate().unwrap() > 0.0);
    }
    let output = Command::new("node")
        .arg("client.js")
        .arg(format!("http://{http}"))
        .args(["ws", "10", "64", "per_message"])
        .env("IDLE_TIMEOUT_MS", "1000")
        .current_dir(node_dir())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "a small per_message push works too"
    );
    // With the server gone the client reports the failure and exits 1.
    drop(server);
    drop(stdout);
    let output = Command::new("node")
        .arg("client.js")
        .arg(format!("http://{http}"))
        .args(["sse", "10", "64"])
        .current_dir(node_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report = NodeClientReport::parse(&String::from_utf8_lossy(&output.stdout)).unwrap();
    assert_eq!(report.received, 0);
    assert!(report.rate().unwrap_err().contains("EventSource error"));
}

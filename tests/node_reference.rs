//! The Node.js reference server (scripts/reference/node) measured with `run --target`: study,
//! push and fanout run clean against it, and the reconnect scenario, whose `/feed/*` endpoints
//! it lacks, fails per case naming the endpoint.
//!
//! Needs Node and the server's npm dependencies, so `cargo test --workspace` lists it as
//! ignored; `.ci/run` installs them (`npm ci`) and runs it with `--ignored`:
//! `cargo test --test node_reference -- --ignored`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use pushbench_schema::RunFile;

const EXE: &str = env!("CARGO_BIN_EXE_pushbench");

/// The Node process, killed when the test ends however it ends.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_node() -> (Node, String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference/node");
    assert!(
        dir.join("node_modules/ws").is_dir() && dir.join("node_modules/express").is_dir(),
        "run `npm ci` in {} first (.ci/run does)",
        dir.display()
    );
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

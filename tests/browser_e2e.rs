//! `pushbench run --client browser` through the real binary: without Chromium it names the
//! installer; a browser that never answers is killed with every process it started, on the
//! case timeout and on Ctrl-C (a stand-in "Chromium" script shows this without a browser); and,
//! with Chromium installed, a study case in headless Chromium counts every reply.
//!
//! The last needs Chromium, so `cargo test --workspace` lists it as ignored; `.ci/run` runs
//! scripts/install-browser.sh and then `cargo test --test browser_e2e -- --ignored`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pushbench_schema::RunFile;

const EXE: &str = env!("CARGO_BIN_EXE_pushbench");

fn pushbench(args: &[&str], envs: &[(&str, &Path)]) -> Command {
    let mut command = Command::new(EXE);
    command.args(args).env_remove("PUSHBENCH_CHROMIUM");
    for (key, value) in envs {
        command.env(key, value);
    }
    command
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn client_browser_without_chromium_names_the_installer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = pushbench(
        &["run", "study", "--quick", "--client", "browser", "--out"],
        &[("PUSHBENCH_CHROMIUM", Path::new("/nonexistent/chromium"))],
    )
    .arg(&out)
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        stderr.contains("scripts/install-browser.sh")
            && stderr.contains("PUSHBENCH_CHROMIUM=/nonexistent/chromium"),
        "{stderr}"
    );
    assert!(
        !out.exists(),
        "nothing is written when the client is missing"
    );
}

#[test]
fn client_browser_refuses_scenarios_without_browser_cases() {
    let output = pushbench(&["run", "fanout", "--quick", "--client", "browser"], &[])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(stderr.contains("`fanout` has no browser cases"), "{stderr}");
}

#[test]
fn client_browser_refuses_an_emulated_network() {
    let output = pushbench(
        &[
            "run",
            "study",
            "--quick",
            "--client",
            "both",
            "--network",
            "rtt=10ms",
        ],
        &[],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        stderr.contains("--client browser runs against the in-process server"),
        "{stderr}"
    );
}

/// A stand-in for Chromium that never loads the page: it starts a child and sleeps, writing
/// both process ids to `pids`.
fn silent_browser(dir: &Path) -> (PathBuf, PathBuf) {
    let script = dir.join("chromium");
    let pids = dir.join("pids");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'Stand-in Chromium 1'; exit 0; }}\nsleep 300 &\necho \"$! $$\" >> '{}'\nexec sleep 300\n",
            pids.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    (script, pids)
}

fn started_pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Alive: in /proc and not a zombie (a killed child waits there until init reaps it).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        }
        Err(_) => false,
    }
}

fn assert_all_gone(pids: &[u32]) {
    assert!(!pids.is_empty(), "the stand-in browser never started");
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = pids.iter().filter(|&&p| alive(p)).collect();
    assert!(left.is_empty(), "browser processes left behind: {left:?}");
}

#[test]
fn a_browser_that_posts_nothing_fails_its_case_and_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let (script, pids) = silent_browser(dir.path());
    let out = dir.path().join("run");
    let output = pushbench(
        &[
            "run",
            "study",
            "--quick",
            "--quiet",
            "--client",
            "browser",
            "--transports",
            "ws",
            "--calls",
            "5",
            "--browser-timeout-s",
            "1",
            "--out",
        ],
        &[("PUSHBENCH_CHROMIUM", &script)],
    )
    .arg(&out)
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let pids = started_pids(&pids);
    assert_eq!(pids.len(), 2, "one case, a browser and its child");
    assert_all_gone(&pids);
    let file = RunFile::read(&out).unwrap();
    let [case] = file.cases.as_slice() else {
        panic!("one case expected: {:?}", file.cases)
    };
    assert_eq!(case.params.client.as_deref(), Some("browser"));
    let error = case.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("study ws sequential n=5: no result from the browser")
            && error.contains("within 1 s"),
        "{error}"
    );
}

#[test]
fn ctrl_c_kills_the_browser_and_keeps_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (script, pids_file) = silent_browser(dir.path());
    let out = dir.path().join("run");
    let mut child = pushbench(
        &[
            "run",
            "study",
            "--quick",
            "--quiet",
            "--client",
            "browser",
            "--transports",
            "sse",
            "--out",
        ],
        &[("PUSHBENCH_CHROMIUM", &script)],
    )
    .arg(&out)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while started_pids(&pids_file).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pids = started_pids(&pids_file);
    assert!(pids.iter().all(|&p| alive(p)), "the browser runs: {pids:?}");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_all_gone(&pids);
    assert!(!RunFile::read(&out).unwrap().run.complete);
}

#[test]
#[ignore = "needs Chromium: scripts/install-browser.sh, then cargo test --test browser_e2e -- --ignored"]
fn study_in_headless_chromium_counts_every_reply() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = pushbench(
        &[
            "run",
            "study",
            "--quick",
            "--quiet",
            "--client",
            "both",
            "--transports",
            "sse",
            "--calls",
            "100",
            "--out",
        ],
        &[],
    )
    .arg(&out)
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let file = RunFile::read(&out).unwrap();
    let browser: Vec<_> = file
        .cases
        .iter()
        .filter(|c| c.params.client.as_deref() == Some("browser"))
        .collect();
    let [case] = browser.as_slice() else {
        panic!("one browser case expected: {:?}", file.cases)
    };
    assert_eq!(
        (case.scenario.as_str(), case.transport.as_str()),
        ("study", "sse")
    );
    assert_eq!(case.integrity.sent, 100);
    assert_eq!(case.integrity.received, 100);
    assert_eq!(case.integrity.lost + case.integrity.duplicated, 0);
    assert!(case.error.is_none(), "{:?}", case.error);
    assert!(case.metrics.elapsed_ms.unwrap() > 0.0);
    assert_eq!(
        case.metrics.bytes_loaded.map(|b| b > 100 * 1000),
        Some(true)
    );
    assert!(
        file.cases
            .iter()
            .any(|c| c.params.client.as_deref() == Some("rust") && c.transport == "sse"),
        "--client both runs the Rust client too"
    );
    let csv = std::fs::read_to_string(out.join("cases.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains(",client,"), "{csv}");
}

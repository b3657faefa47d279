//! `run --network`: the scenario really measured through scripts/netns.sh's emulated network.
//! The delay must show in what the clients measured (a WebSocket's first message needs the
//! TCP handshake and the upgrade: at least one 50 ms round trip), every case must record its
//! network, and the namespaces and the delay line must be gone afterwards.
//!
//! Needs root, iproute2 and /dev/net/tun, so it is ignored by `cargo test`; `.ci/run` installs
//! iproute2 (scripts/install-netns.sh) and runs it with
//! `cargo test --test network_e2e -- --ignored`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

use pushbench_schema::RunFile;

const EXE: &str = env!("CARGO_BIN_EXE_pushbench");

fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root, iproute2 and /dev/net/tun; .ci/run runs it with --ignored"]
fn connect_over_a_50ms_network_takes_at_least_one_round_trip_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = Command::new(EXE)
        .args([
            "run",
            "connect",
            "--quick",
            "--quiet",
            "--transports",
            "ws",
            "--connections",
            "10",
            "--ramp",
            "20",
            "--network",
            "rtt=50ms",
            "--network",
            "rtt=0ms",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let file = RunFile::read(&out).unwrap();
    let connect_p50 = |network: &str| {
        let case = file
            .cases
            .iter()
            .find(|c| c.variant == "first-message" && c.params.network.as_deref() == Some(network))
            .unwrap_or_else(|| panic!("no first-message case for {network}"));
        assert!(case.integrity.is_clean(), "{network}: {:?}", case.integrity);
        case.metrics.p50_us.unwrap() / 1000.0
    };
    let delayed = connect_p50("rtt=50ms,loss=0%,rate=none");
    let direct = connect_p50("rtt=0ms,loss=0%,rate=none");
    assert!(delayed >= 50.0, "connect p50 {delayed} ms over a 50 ms rtt");
    assert!(direct < 50.0, "connect p50 {direct} ms with no delay");
    assert!(
        file.cases.iter().all(|c| c.params.network.is_some()),
        "every case records its network"
    );
    let csv = std::fs::read_to_string(out.join("cases.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",network"));
    assert!(csv.contains("rtt=50ms,loss=0%,rate=none"));
    let left = namespaces();
    for ns in ["pb-client", "pb-router", "pb-server"] {
        assert!(!left.contains(ns), "{ns} left behind: {left}");
    }
    assert!(!std::path::Path::new("/run/pushbench-netns").exists());
}

#[test]
fn bad_network_spec_is_refused_naming_the_key() {
    let output = Command::new(EXE)
        .args([
            "run",
            "connect",
            "--quick",
            "--network",
            "rtt=50ms,jitter=5ms",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown key `jitter`"), "{stderr}");
}

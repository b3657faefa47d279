//! End-to-end: latency, fan-out and connect (broadcast topics) and payload, against the real
//! server, every transport.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use pushbench::Harness;
use pushbench_core::http::Http1Connection;
use pushbench_core::{
    BroadcastSpec, ConnectConfig, FanoutConfig, LatencyConfig, PayloadConfig, Transport,
    WireCounter, run_broadcast_case, run_connect, run_fanout, run_latency, run_payload,
};
use pushbench_schema::CaseResult;

fn assert_clean(case: &CaseResult) {
    assert!(
        case.is_ok(),
        "{} {} {}: {:?} {:?}",
        case.scenario,
        case.transport,
        case.variant,
        case.error,
        case.integrity
    );
}

#[test]
fn latency_delivers_every_paced_message_to_every_client() {
    let harness = Harness::start().unwrap();
    let config = LatencyConfig {
        clients: vec![1, 20],
        rate: 1000,
        duration_ms: 300,
        ..LatencyConfig::default()
    };
    let cases = harness.runtime.block_on(run_latency(
        &config,
        &harness.drivers,
        &harness.target(),
        &mut |_| {},
    ));
    assert_eq!(cases.len(), 8, "2 client counts x 4 transports");
    for case in &cases {
        assert_clean(case);
        let clients = case.params.clients.unwrap();
        assert_eq!(case.integrity.received, 300 * clients, "{case:?}");
        assert_eq!(case.params.rate, Some(1000));
        let m = &case.metrics;
        assert!(m.p50_us.unwrap() <= m.p99_us.unwrap());
        assert!(m.p99_us.unwrap() <= m.max_us.unwrap());
        // 300 messages at 1000/s take 0.3 s whatever the transport: the pacing held.
        let elapsed = m.elapsed_ms.unwrap();
        assert!((290.0..1000.0).contains(&elapsed), "{elapsed} ms");
        let histogram = case.histogram.as_deref().unwrap();
        let h = pushbench_core::LatencyHistogram::from_base64(histogram).unwrap();
        assert_eq!(h.len(), 300 * clients);
    }
}

/// 1000 messages at 1000/s; a 200 ms stall delays about 200 of them by 0..200 ms, so the
/// p99 must be well above 100 ms and the median must not move. A sender that stamped the
/// actual send time (coordinated omission) would show the stalled burst as on time.
fn stalled_run(harness: &Harness, t: Transport, sender_stall: bool) -> CaseResult {
    let spec = BroadcastSpec {
        scenario: "latency".into(),
        variant: "paced".into(),
        topic: pushbench_core::broadcast::unique_topic("stall"),
        clients: 1,
        subscribers: 1,
        n: 1000,
        interval_us: 1000,
        payload: 64,
        timeout_ms: 5000,
        stall_before: sender_stall.then_some(300),
        stall_ms: if sender_stall { 200 } else { 0 },
    };
    let target = harness.target();
    let driver = harness.drivers.get(t).unwrap();
    let stall_runtime = async {
        if sender_stall {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut http = Http1Connection::connect(&target, &WireCounter::default())
            .await
            .unwrap();
        let method = http::Method::POST;
        http.exchange(method, "/stall?ms=200", Bytes::new(), &[204])
            .await
            .unwrap();
    };
    let (measured, ()) = harness.runtime.block_on(async {
        tokio::join!(run_broadcast_case(driver, &target, &spec), stall_runtime)
    });
    measured.case
}

#[test]
fn latency_is_measured_from_the_schedule_so_a_stall_shows_in_the_p99() {
    let harness = Harness::start().unwrap();
    for t in [Transport::Ws, Transport::Sse] {
        for sender_stall in [false, true] {
            let case = stalled_run(&harness, t, sender_stall);
            assert_clean(&case);
            let m = &case.metrics;
            let (p50, p99, max) = (m.p50_us.unwrap(), m.p99_us.unwrap(), m.max_us.unwrap());
            let what = if sender_stall {
                "sender"
            } else {
                "server runtime"
            };
            assert!(p99 > 150_000.0, "{t} {what} stall: p99 {p99} us");
            assert!(max > 190_000.0, "{t} {what} stall: max {max} us");
            assert!(p50 < 50_000.0, "{t} {what} stall: p50 {p50} us");
        }
    }
}

#[test]
fn fanout_in_process_and_in_driver_processes_delivers_every_broadcast() {
    let mut harness = Harness::start().unwrap();
    harness.driver_exe = Some(env!("CARGO_BIN_EXE_pushbench").into());
    let config = FanoutConfig {
        clients: vec![3, 7],
        broadcasts: 4,
        interval_ms: 20,
        in_process_max: 5,
        per_process: 4,
        search_steps: 0,
        transports: vec![
            Transport::Ws,
            Transport::Sse,
            Transport::Longpoll,
            Transport::Tcp,
        ],
        ..FanoutConfig::default()
    };
    let cases = harness.runtime.block_on(run_fanout(
        &config,
        &harness.drivers,
        &harness.target(),
        harness.driver_exe.as_deref(),
        &mut |_| {},
    ));
    assert_eq!(cases.len(), 8);
    for case in &cases {
        assert_clean(case);
        let clients = case.params.clients.unwrap();
        assert_eq!(case.integrity.received, 4 * clients, "{case:?}");
        let processes = case.params.processes.unwrap();
        assert_eq!(processes, if clients == 7 { 2 } else { 1 }, "{case:?}");
        assert!(case.metrics.p99_us.is_some());
    }
}

#[test]
fn fanout_beyond_this_process_file_limit_is_refused_up_front() {
    let harness = Harness::start().unwrap();
    let limit = pushbench_core::open_files_limit();
    let clients = limit / 2 + 100;
    let config = FanoutConfig {
        clients: vec![clients],
        in_process_max: u64::MAX,
        search_steps: 0,
        transports: vec![Transport::Ws],
        ..FanoutConfig::default()
    };
    let started = std::time::Instant::now();
    let cases = harness.runtime.block_on(run_fanout(
        &config,
        &harness.drivers,
        &harness.target(),
        None,
        &mut |_| {},
    ));
    let error = cases[0].error.as_deref().unwrap();
    assert!(
        error.contains(&format!("over its limit of {limit}")),
        "{error}"
    );
    assert_eq!(cases[0].integrity.received, 0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused, not attempted"
    );
}

#[test]
fn a_driver_process_at_its_open_files_limit_fails_fast_and_says_so() {
    let harness = Harness::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args([
            "drive",
            "--quiet",
            &format!("--target=http://{}", harness.target().http),
            "--transport=ws",
            "--clients=200",
            "--messages=1",
            "--max-open-files=64",
            &format!("--out={}", dir.path().display()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("open-files limit (64)") && stderr.contains("separate processes"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "no hang");
    // The run file still says what happened.
    let file = pushbench_schema::RunFile::read(dir.path()).unwrap();
    assert!(
        file.cases[0]
            .error
            .as_deref()
            .unwrap()
            .contains("open-files limit")
    );
}

#[test]
fn connect_times_sequential_connections_and_a_ramp() {
    let harness = Harness::start().unwrap();
    let config = ConnectConfig {
        connections: 20,
        ramp: vec![50],
        ..ConnectConfig::default()
    };
    let cases = harness.runtime.block_on(run_connect(
        &config,
        &harness.drivers,
        &harness.target(),
        &mut |_| {},
    ));
    assert_eq!(cases.len(), 8);
    for case in &cases {
        assert_clean(case);
        let m = &case.metrics;
        assert!(m.p50_us.unwrap() > 0.0 && m.p50_us <= m.max_us, "{m:?}");
        match case.variant.as_str() {
            "first-message" => {
                assert_eq!(case.params.n, Some(20));
                assert_eq!(case.integrity.received, 20);
            }
            "ramp" => {
                assert_eq!(case.params.clients, Some(50));
                assert_eq!(case.integrity.received, 50);
                assert!(m.conns_per_s.unwrap() > 0.0);
            }
            other => panic!("unexpected variant {other}"),
        }
    }
}

#[test]
fn payload_measures_framing_and_base64_overhead() {
    let harness = Harness::start().unwrap();
    let config = PayloadConfig {
        sizes: vec![16, 5000],
        budget_bytes: 100_000,
        ..PayloadConfig::quick()
    };
    let cases = harness.runtime.block_on(run_payload(
        &config,
        &harness.drivers,
        &harness.target(),
        &mut |_| {},
    ));
    assert_eq!(cases.len(), 16, "2 sizes x 2 kinds x 4 transports");
    let ratio = |t: &str, kind: &str, size: u64| {
        let case = cases
            .iter()
            .find(|c| c.transport == t && c.variant == kind && c.params.payload_bytes == Some(size))
            .unwrap();
        assert_clean(case);
        case.metrics.wire_per_payload_byte.unwrap()
    };
    // Binary over WS and tcp is the payload plus a few header bytes; SSE and long polling
    // carry it as base64 (4/3) plus their framing.
    assert!(ratio("ws", "binary", 5000) < 1.05);
    assert!(ratio("tcp", "binary", 5000) < 1.05);
    assert!(ratio("sse", "binary", 5000) > 1.33);
    assert!(ratio("longpoll", "binary", 5000) > 1.33);
    // Small messages cost far more framing per byte than large ones.
    for t in ["ws", "sse", "longpoll", "tcp"] {
        assert!(ratio(t, "text", 16) > ratio(t, "text", 5000), "{t}");
    }
}

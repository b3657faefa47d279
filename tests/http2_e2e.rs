//! End-to-end: SSE fan-out over HTTP/2 against the real server. 100 clients' streams share ONE
//! connection (counted by the clients), every broadcast reaches every stream exactly once, and
//! the same run measures HTTP/1.1 with one connection per client beside it; over TLS the
//! server's ALPN choice of h2 carries the same.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use futures_util::future::join_all;
use pushbench::Harness;
use pushbench_core::study::{decode_reply, encode_call};
use pushbench_core::{Driver, FanoutConfig, Transport, run_fanout};
use pushbench_driver_sse::SseHttp2Driver;
use pushbench_schema::CaseResult;

fn fanout(harness: &Harness, tls: bool, clients: Vec<u64>, m: u32) -> Vec<CaseResult> {
    let config = FanoutConfig {
        clients,
        broadcasts: 10,
        interval_ms: 20,
        transports: vec![Transport::Sse],
        search_steps: 0,
        timeout_ms: 10_000,
        http2: Some(m),
        ..FanoutConfig::default()
    };
    config.validate().unwrap();
    let target = if tls {
        harness.tls_target().unwrap()
    } else {
        harness.target()
    };
    harness.runtime.block_on(run_fanout(
        &config,
        &harness.drivers,
        &target,
        None,
        &mut |_| {},
    ))
}

/// Every broadcast reached every client exactly once, in order.
fn assert_exact(case: &CaseResult, clients: u64) {
    assert!(case.is_ok(), "{case:?}");
    let i = &case.integrity;
    assert_eq!(i.sent, 10 * clients, "{case:?}");
    assert_eq!(i.received, i.sent, "{case:?}");
    assert_eq!(
        (i.lost, i.duplicated, i.out_of_order),
        (0, 0, 0),
        "{case:?}"
    );
}

fn by_variant<'a>(cases: &'a [CaseResult], variant: &str, clients: u64) -> &'a CaseResult {
    cases
        .iter()
        .find(|c| c.variant == variant && c.params.clients == Some(clients))
        .unwrap_or_else(|| panic!("no {variant} case for {clients} clients in {cases:?}"))
}

#[test]
fn a_hundred_sse_streams_share_one_http2_connection_without_loss() {
    let harness = Harness::start().unwrap();
    let cases = fanout(&harness, false, vec![100], 100);
    assert_eq!(cases.len(), 2, "HTTP/1.1 and HTTP/2: {cases:?}");

    let h2 = by_variant(&cases, "http2", 100);
    assert_exact(h2, 100);
    assert_eq!(h2.params.http.as_deref(), Some("2"));
    assert_eq!(h2.params.streams_per_connection, Some(100));
    assert_eq!(h2.metrics.connections, Some(1), "{h2:?}");
    assert!(h2.histogram.is_some());

    let h1 = by_variant(&cases, "broadcast", 100);
    assert_exact(h1, 100);
    assert_eq!(h1.params.http.as_deref(), Some("1.1"));
    assert_eq!(h1.params.streams_per_connection, Some(1));
    assert_eq!(h1.metrics.connections, Some(100), "{h1:?}");
    // One TCP and one HTTP/2 handshake instead of 100 TCP connections' worth of request
    // heads: the streams' bytes on the wire are far fewer.
    assert!(
        h2.metrics.wire_bytes_up.unwrap() < h1.metrics.wire_bytes_up.unwrap(),
        "{:?} vs {:?}",
        h2.metrics,
        h1.metrics
    );
}

#[test]
fn streams_beyond_m_open_another_connection_and_tls_negotiates_h2() {
    let harness = Harness::start_with(Some(
        pushbench_server::ServerTls::self_signed(None).unwrap(),
    ))
    .unwrap();
    let cases = fanout(&harness, true, vec![25], 10);
    let h2 = by_variant(&cases, "http2", 25);
    assert_exact(h2, 25);
    // ceil(25 / 10) connections, each negotiated as h2 by ALPN (the driver fails otherwise).
    assert_eq!(h2.metrics.connections, Some(3), "{h2:?}");
    assert_eq!(
        by_variant(&cases, "broadcast", 25).metrics.connections,
        Some(25)
    );
}

/// Each of 100 sessions sharing one connection gets its own answers: the call sent for session
/// k comes back on stream k and nowhere else. (In fan-out every stream carries the same
/// broadcast, so only distinct content per stream shows the streams apart.)
#[test]
fn each_of_a_hundred_multiplexed_sessions_gets_its_own_replies() {
    let harness = Harness::start().unwrap();
    let target = harness.target();
    let driver = SseHttp2Driver::new(100);
    harness.runtime.block_on(async {
        let mut sessions = Vec::new();
        for _ in 0..100 {
            sessions.push(driver.connect(&target).await.unwrap());
        }
        let first = sessions[0].connection_id().unwrap();
        assert!(sessions.iter().all(|s| s.connection_id() == Some(first)));
        let replies = join_all(sessions.iter_mut().enumerate().map(|(k, s)| async move {
            let mut seqs = Vec::new();
            for call in 0..3u64 {
                let seq = k as u64 * 1000 + call;
                s.send(&encode_call(seq, 16)).await.unwrap();
                // A reply routed to another stream never comes: fail, do not hang.
                let reply = tokio::time::timeout(Duration::from_secs(10), s.recv())
                    .await
                    .unwrap_or_else(|_| panic!("session {k}: no reply to call {seq}"))
                    .unwrap()
                    .unwrap();
                seqs.push(decode_reply(&reply, 16).unwrap().seq);
            }
            (k, seqs)
        }))
        .await;
        for (k, seqs) in replies {
            let k = k as u64;
            assert_eq!(seqs, [k * 1000, k * 1000 + 1, k * 1000 + 2], "session {k}");
        }
    });
}

#[test]
fn http2_needs_sse_and_a_stream_count_the_server_allows() {
    let bad = |m: u32, transports: Vec<Transport>| {
        FanoutConfig {
            http2: Some(m),
            transports,
            ..FanoutConfig::default()
        }
        .validate()
        .unwrap_err()
    };
    let e = bad(0, vec![Transport::Sse]);
    assert!(e.contains("fanout.http2") && e.contains("got 0"), "{e}");
    let e = bad(257, vec![Transport::Sse]);
    assert!(e.contains("1 to 256") && e.contains("got 257"), "{e}");
    let e = bad(100, vec![Transport::Ws]);
    assert!(e.contains("add sse"), "{e}");
}

fn pushbench(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn run_fanout_http2_writes_the_http_columns_and_refuses_what_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = pushbench(&[
        "run",
        "fanout",
        "--quick",
        "--transports",
        "sse",
        "--clients",
        "120",
        "--http2=50",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let csv = std::fs::read_to_string(out.join("cases.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|&h| h == name)
            .unwrap_or_else(|| panic!("no {name} column in {header:?}"))
    };
    let wanted = [
        column("http"),
        column("streams_per_connection"),
        column("connections"),
    ];
    // Appended after the columns older readers know (the last of those is `error`).
    assert!(wanted.iter().all(|&i| i > column("error")), "{header:?}");
    let rows: Vec<String> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            wanted.map(|i| cells[i]).join(",")
        })
        .collect();
    assert_eq!(rows, ["1.1,1,120", "2,50,3"], "{csv}");

    let push = pushbench(&["run", "push", "--quick", "--http2"]);
    assert!(!push.status.success());
    assert!(
        String::from_utf8_lossy(&push.stderr).contains("--http2 compares SSE"),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    let zero = pushbench(&["run", "fanout", "--quick", "--http2=0"]);
    assert!(!zero.status.success());
    assert!(String::from_utf8_lossy(&zero.stderr).contains("fanout.http2"));
}

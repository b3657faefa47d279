//! End-to-end over TLS: the study and push through https, wss and the floor over TLS for every
//! transport; `pushbench serve --tls` serving its ticker to a client that trusts the printed
//! certificate; and the clear errors when one side speaks TLS and the other does not.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use pushbench::{Harness, Plan};
use pushbench_core::http::Http1Connection;
use pushbench_core::{
    PushConfig, StudyConfig, Target, TlsClient, Transport, WireCounter, run_study_case,
};
use pushbench_schema::CaseResult;
use pushbench_server::ServerTls;

const EXE: &str = env!("CARGO_BIN_EXE_pushbench");

fn tls_harness() -> Harness {
    Harness::start_with(Some(ServerTls::self_signed(None).unwrap())).unwrap()
}

fn assert_clean_tls(cases: &[CaseResult], scenario: &str) {
    for t in Transport::ALL {
        assert!(
            cases.iter().any(|c| c.transport == t.id()),
            "{scenario}: no {t} case in {cases:?}"
        );
    }
    for case in cases {
        let i = &case.integrity;
        assert_eq!(case.error, None, "{scenario} {}", case.transport);
        assert_eq!(i.lost, 0, "{scenario} {}: {i:?}", case.transport);
        assert_eq!(i.received, i.sent, "{scenario} {}: {i:?}", case.transport);
        assert!(i.sent > 0, "{scenario} {}: {i:?}", case.transport);
        assert!(case.is_ok(), "{scenario}: {case:?}");
        assert_eq!(case.params.tls, Some(true), "{scenario}: {case:?}");
    }
}

#[test]
fn study_and_push_run_over_tls_for_every_transport_without_loss() {
    let harness = tls_harness();
    let target = harness.tls_target().unwrap();
    assert!(target.tls.is_some());
    let study = Plan::Study(StudyConfig {
        calls: vec![50],
        ..StudyConfig::quick()
    });
    // Enough messages to fill the socket: a server that leaves TLS records in rustls's buffer
    // unflushed (the floor once did) loses the last ones, and this fails.
    let push = Plan::Push(PushConfig {
        messages: 10_000,
        ..PushConfig::quick()
    });
    let (study, push) = harness.runtime.block_on(async {
        (
            study.run_on(&harness, &target, &mut |_| {}).await,
            push.run_on(&harness, &target, &mut |_| {}).await,
        )
    });
    assert_clean_tls(&study, "study");
    assert_clean_tls(&push, "push");
    // Both flush policies, every transport.
    assert_eq!(push.len(), 2 * Transport::ALL.len(), "{push:?}");
}

#[test]
fn tls_wire_bytes_are_counted_below_tls_so_they_exceed_plain() {
    let harness = tls_harness();
    let (plain, tls) = (harness.target(), harness.tls_target().unwrap());
    for t in Transport::ALL {
        let driver = harness.drivers.get(t).unwrap();
        let run = |target: Target| {
            let m = harness.runtime.block_on(run_study_case(
                driver,
                &target,
                20,
                100,
                std::time::Duration::from_secs(10),
                pushbench_core::StudyVariant::Sequential,
            ));
            assert!(m.case.is_ok(), "{t}: {:?}", m.case);
            m.case.metrics
        };
        let (p, s) = (run(plain.clone()), run(tls.clone()));
        // Same replies either way; TLS adds a handshake and a header and tag per record.
        assert_eq!(p.bytes_loaded, s.bytes_loaded, "{t}");
        let (p_down, s_down) = (p.wire_bytes_down.unwrap(), s.wire_bytes_down.unwrap());
        let (p_up, s_up) = (p.wire_bytes_up.unwrap(), s.wire_bytes_up.unwrap());
        assert!(
            s_down > p_down + 20 * 22,
            "{t}: down plain {p_down}, tls {s_down}"
        );
        assert!(s_up > p_up + 20 * 22, "{t}: up plain {p_up}, tls {s_up}");
    }
}

#[test]
fn run_cli_with_tls_both_writes_plain_and_tls_cases() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(EXE)
        .args([
            "run",
            "study",
            "--quick",
            "--tls=both",
            "--calls=20",
            "--no-all-at-once",
            "--quiet",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = pushbench_schema::RunFile::read(dir.path()).unwrap();
    let tls = file.cases.iter().filter(|c| c.params.tls == Some(true));
    let plain = file.cases.iter().filter(|c| c.params.tls.is_none());
    assert_eq!(tls.count(), Transport::ALL.len(), "{:?}", file.cases);
    assert_eq!(plain.count(), Transport::ALL.len(), "{:?}", file.cases);
    let csv = std::fs::read_to_string(dir.path().join("cases.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains(",tls,"), "{csv}");
}

/// The `serve` process, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_tls_streams_the_ticker_over_https_to_a_client_trusting_the_printed_certificate() {
    let mut child = Command::new(EXE)
        .args(["serve", "--tls", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let server = Server(child);
    let mut next = |prefix: &str| {
        let line = lines.next().unwrap().unwrap();
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected `{prefix}...`, got {line:?}"))
            .to_owned()
    };
    let https = next("https ");
    let _tcp = next("tcp ");
    let cert = next("cert ");
    let fingerprint = next("sha256 ");
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");

    let client = TlsClient::from_ca_file(cert.as_ref()).unwrap();
    let target = Target::new(https.parse().unwrap(), None).with_tls(client);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = runtime.block_on(async {
        let mut connection = Http1Connection::connect(&target, &WireCounter::default())
            .await
            .unwrap();
        let response = connection
            .request(Method::GET, "/sse", Bytes::new(), "text/event-stream")
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut text = String::new();
        while !text.contains("\n\n") {
            let frame = body.frame().await.unwrap().unwrap();
            text.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
        }
        text
    });
    assert!(text.starts_with("id: 0\ndata: {\"seq\":0,"), "{text:?}");
    drop(server);
    // Killed, the server could not remove its generated certificate.
    let _ = std::fs::remove_file(&cert);
}

#[test]
fn plain_clients_against_tls_and_tls_clients_against_plain_fail_with_clear_errors() {
    let harness = tls_harness();
    let tls = harness.tls_target().unwrap();
    // The TLS server's addresses, reached without TLS.
    let plain_to_tls = Target::new(tls.http, tls.tcp);
    // The plain server, reached with TLS.
    let tls_to_plain = harness.target().with_tls(tls.tls.clone().unwrap());
    harness.runtime.block_on(async {
        for t in [Transport::Ws, Transport::Sse, Transport::Longpoll] {
            let driver = harness.drivers.get(t).unwrap();
            let err = driver
                .connect(&plain_to_tls)
                .await
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("this port speaks TLS"), "{t}: {err}");
            let err = driver
                .connect(&tls_to_plain)
                .await
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains("TLS handshake with") && err.contains("did not answer in TLS"),
                "{t}: {err}"
            );
        }
    });
    // A certificate nobody trusts is refused, naming the handshake.
    let stranger = ServerTls::self_signed(None).unwrap().client().unwrap();
    let untrusted = Target::new(tls.http, tls.tcp).with_tls(stranger);
    let err = harness
        .runtime
        .block_on(
            harness
                .drivers
                .get(Transport::Ws)
                .unwrap()
                .connect(&untrusted),
        )
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("TLS handshake with") && err.contains("certificate"),
        "{err}"
    );
}

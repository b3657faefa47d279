//! End-to-end: every driver against the real in-process server over real sockets, and the
//! integrity and error paths against drivers and servers that break on purpose.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fault, FaultyDriver, Misbehaviour, bad_server, closed_target};
use pushbench::{Harness, RunWriter};
use pushbench_core::{
    DriverSet, StudyConfig, StudyGroup, StudyVariant, Transport, run_study, run_study_case,
    run_study_group,
};
use pushbench_schema::RunFile;

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn every_transport_completes_the_study_with_every_reply_counted() {
    let harness = Harness::start().unwrap();
    let target = harness.target();
    for t in Transport::ALL {
        let driver = harness.drivers.get(t).unwrap();
        let m = harness.runtime.block_on(run_study_case(
            driver,
            &target,
            200,
            1000,
            TIMEOUT,
            StudyVariant::Sequential,
        ));
        let case = &m.case;
        assert_eq!(case.error, None, "{t}");
        assert_eq!(
            (
                case.integrity.sent,
                case.integrity.received,
                case.integrity.lost
            ),
            (200, 200, 0),
            "{t}"
        );
        assert!(case.is_ok(), "{t}: {case:?}");
        assert_eq!(m.latency.len(), 200, "{t}");
        let metrics = &case.metrics;
        // Each reply carries 1000 data characters plus its JSON envelope.
        assert!(
            metrics.bytes_loaded.unwrap() > 200 * 1000,
            "{t}: {metrics:?}"
        );
        assert!(
            metrics.wire_bytes_down.unwrap() > metrics.bytes_loaded.unwrap(),
            "{t}: framing counted {metrics:?}"
        );
        assert!(
            metrics.wire_bytes_up.unwrap() > 200 * 30,
            "{t}: {metrics:?}"
        );
        assert!(
            metrics.elapsed_ms.unwrap() >= metrics.connect_ms.unwrap(),
            "{t}"
        );
    }
}

#[test]
fn all_at_once_runs_the_web_transports_together_and_counts_everything() {
    let harness = Harness::start().unwrap();
    let config = StudyConfig {
        calls: vec![300],
        repeats: 1,
        ..StudyConfig::default()
    };
    let group = StudyGroup {
        n: 300,
        variant: StudyVariant::AllAtOnce,
        transports: vec![Transport::Ws, Transport::Sse, Transport::Longpoll],
    };
    let runs = harness.runtime.block_on(run_study_group(
        &harness.drivers,
        &harness.target(),
        &group,
        &config,
    ));
    assert_eq!(runs.len(), 3);
    for m in runs {
        assert_eq!(m.case.variant, "all-at-once");
        assert!(m.case.is_ok(), "{:?}", m.case);
        assert_eq!(m.case.integrity.received, 300);
    }
}

fn faulty(harness: &Harness, t: Transport, fault: Fault) -> FaultyDriver {
    let inner: Arc<dyn pushbench_core::Driver> = match t {
        Transport::Ws => Arc::new(pushbench_driver_ws::WsDriver),
        Transport::Sse => Arc::new(pushbench_driver_sse::SseDriver),
        Transport::Longpoll => Arc::new(pushbench_driver_longpoll::LongpollDriver),
        Transport::Tcp => Arc::new(pushbench_driver_tcp::TcpDriver),
    };
    assert!(harness.drivers.get(t).is_some());
    FaultyDriver { inner, fault }
}

#[test]
fn a_dropped_reply_is_counted_lost_and_flags_the_case() {
    let harness = Harness::start().unwrap();
    for t in Transport::ALL {
        let driver = faulty(&harness, t, Fault::Drop(5));
        let m = harness.runtime.block_on(run_study_case(
            &driver,
            &harness.target(),
            20,
            100,
            Duration::from_millis(300),
            StudyVariant::Sequential,
        ));
        let i = m.case.integrity;
        assert_eq!(
            (i.sent, i.received, i.lost),
            (20, 19, 1),
            "{t}: {:?}",
            m.case
        );
        assert!(!m.case.is_ok(), "{t}");
        assert_eq!(m.latency.len(), 19, "{t}");
    }
}

#[test]
fn a_duplicated_reply_is_counted_and_flags_the_case() {
    let harness = Harness::start().unwrap();
    for t in Transport::ALL {
        let driver = faulty(&harness, t, Fault::Duplicate(3));
        let m = harness.runtime.block_on(run_study_case(
            &driver,
            &harness.target(),
            20,
            100,
            TIMEOUT,
            StudyVariant::Sequential,
        ));
        let i = m.case.integrity;
        assert_eq!(
            (i.received, i.lost, i.duplicated),
            (20, 0, 1),
            "{t}: {:?}",
            m.case
        );
        assert!(!m.case.is_ok(), "{t}");
    }
}

#[test]
fn connection_refused_is_a_clear_error_per_case() {
    let harness = Harness::start().unwrap();
    let target = closed_target();
    for t in Transport::ALL {
        let m = harness.runtime.block_on(run_study_case(
            harness.drivers.get(t).unwrap(),
            &target,
            10,
            10,
            TIMEOUT,
            StudyVariant::Sequential,
        ));
        let err = m.case.error.clone().unwrap_or_default();
        assert!(
            err.starts_with("connect: cannot connect to 127.0.0.1:") && err.contains("refused"),
            "{t}: {err}"
        );
        assert_eq!(m.case.integrity.sent, 0, "{t}");
    }
}

#[test]
fn a_malformed_reply_is_a_clear_error_per_case() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt.block_on(bad_server(Misbehaviour::Garbage));
    let drivers = pushbench::drivers();
    for t in Transport::ALL {
        let m = rt.block_on(run_study_case(
            drivers.get(t).unwrap(),
            &target,
            10,
            10,
            TIMEOUT,
            StudyVariant::Sequential,
        ));
        let err = m.case.error.clone().unwrap_or_default();
        assert!(
            err.contains("call 0: malformed reply") && err.contains("not json"),
            "{t}: {err}"
        );
    }
}

#[test]
fn a_server_closing_early_is_reported_and_the_run_keeps_what_it_measured() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt.block_on(bad_server(Misbehaviour::CloseAfter(3)));
    let drivers: DriverSet = pushbench::drivers();
    let dir = tempfile::tempdir().unwrap();
    let config = StudyConfig {
        calls: vec![10],
        block_size: 10,
        all_at_once: false,
        repeats: 1,
        ..StudyConfig::default()
    };
    let mut writer = RunWriter::create(dir.path(), serde_json::json!({"test": true})).unwrap();
    rt.block_on(run_study(&config, &drivers, &target, &mut |event| {
        if let pushbench_core::RunEvent::CaseMeasured { index, case } = event {
            writer.set(index, case.clone()).unwrap();
        }
    }));
    let written = RunFile::read(dir.path()).unwrap();
    assert!(
        !written.run.complete,
        "not finished: still marked incomplete"
    );
    assert_eq!(written.cases.len(), 4);
    for case in &written.cases {
        let err = case.error.clone().unwrap_or_default();
        assert!(
            err.contains("closed the session after 3 of 10 replies"),
            "{}: {err}",
            case.transport
        );
        assert_eq!(
            (case.integrity.sent, case.integrity.received),
            (4, 3),
            "{}",
            case.transport
        );
        assert!(
            case.metrics.p50_us.is_some(),
            "latencies of the 3 good calls kept"
        );
    }
    let finished = writer.finish().unwrap();
    assert!(finished.run.complete);
}

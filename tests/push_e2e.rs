//! End-to-end: the push scenario on every transport and flush policy against the real server.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fault, FaultyDriver};
use pushbench::Harness;
use pushbench_core::{Flush, PushConfig, PushRequest, Transport, run_push, run_push_case};

#[test]
fn every_transport_delivers_every_pushed_message_under_both_flush_policies() {
    let harness = Harness::start().unwrap();
    let target = harness.target();
    for flush in Flush::ALL {
        for t in Transport::ALL {
            let request = PushRequest {
                n: 3000,
                payload: 64,
                flush,
                binary: false,
            };
            let driver = harness.drivers.get(t).unwrap();
            let m = harness.runtime.block_on(run_push_case(
                driver,
                &target,
                request,
                Duration::from_secs(10),
            ));
            let case = &m.case;
            assert!(case.is_ok(), "{t} {flush:?}: {case:?}");
            assert_eq!(case.integrity.received, 3000, "{t} {flush:?}");
            assert_eq!(case.params.flush.as_deref(), Some(flush.id()));
            assert_eq!(m.latency.len(), 3000, "{t} {flush:?}");
            let metrics = &case.metrics;
            assert!(metrics.msgs_per_s.unwrap() > 0.0);
            assert!(
                metrics.wire_bytes_down.unwrap() > 3000 * 64,
                "{t} {flush:?}: {metrics:?}"
            );
            assert!(
                metrics.server_cpu_s_per_million.unwrap() > 0.0,
                "{t} {flush:?}: {metrics:?}"
            );
        }
    }
}

#[test]
fn a_dropped_push_message_is_counted_lost_with_a_clear_error() {
    let harness = Harness::start().unwrap();
    let inner: Arc<dyn pushbench_core::Driver> = Arc::new(pushbench_driver_sse::SseDriver);
    let driver = FaultyDriver {
        inner,
        fault: Fault::Drop(10),
    };
    let request = PushRequest {
        n: 100,
        payload: 16,
        flush: Flush::Batched,
        binary: false,
    };
    let m = harness.runtime.block_on(run_push_case(
        &driver,
        &harness.target(),
        request,
        Duration::from_millis(300),
    ));
    let i = m.case.integrity;
    assert_eq!((i.sent, i.received, i.lost), (100, 99, 1), "{:?}", m.case);
    let err = m.case.error.unwrap_or_default();
    assert!(
        err.contains("no message for 300 ms after 99 of 100"),
        "{err}"
    );
}

#[test]
fn run_push_makes_one_case_per_transport_and_flush_policy() {
    let harness = Harness::start().unwrap();
    let config = PushConfig {
        messages: 500,
        transports: vec![Transport::Ws, Transport::Tcp],
        repeats: 2,
        ..PushConfig::default()
    };
    let cases = harness.runtime.block_on(run_push(
        &config,
        &harness.drivers,
        &harness.target(),
        &mut |_| {},
    ));
    let keys: Vec<(String, Option<String>, Option<u64>)> = cases
        .iter()
        .map(|c| {
            (
                c.transport.clone(),
                c.params.flush.clone(),
                c.params.repeats,
            )
        })
        .collect();
    let expected = [
        ("ws", "per_message"),
        ("tcp", "per_message"),
        ("ws", "batched"),
        ("tcp", "batched"),
    ]
    .map(|(t, f)| (t.to_owned(), Some(f.to_owned()), Some(2)));
    assert_eq!(keys, expected);
    assert!(
        cases
            .iter()
            .all(|c| c.is_ok() && c.integrity.received == 1000)
    );
}

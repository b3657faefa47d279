//! End-to-end: concurrent round trips on every transport against the real server.

#![allow(clippy::unwrap_used, missing_docs)]

use pushbench::Harness;
use pushbench_core::{RoundtripConfig, run_roundtrip};

#[test]
fn concurrent_clients_complete_every_round_trip_on_every_transport() {
    let harness = Harness::start().unwrap();
    let config = RoundtripConfig {
        clients: vec![1, 20],
        round_trips: 30,
        repeats: 1,
        ..RoundtripConfig::default()
    };
    let cases = harness.runtime.block_on(run_roundtrip(
        &config,
        &harness.drivers,
        &harness.target(),
        &mut |_| {},
    ));
    assert_eq!(cases.len(), 8);
    for case in &cases {
        let clients = case.params.clients.unwrap();
        assert!(case.is_ok(), "{case:?}");
        assert_eq!(case.scenario, "roundtrip");
        assert_eq!(case.integrity.received, clients * 30, "{case:?}");
        let m = &case.metrics;
        assert!(m.p50_us.unwrap() > 0.0 && m.p50_us <= m.p99_us, "{m:?}");
        // Every client's sockets are counted: at least one call up per round trip.
        assert!(m.wire_bytes_up.unwrap() > clients * 30 * 40, "{case:?}");
    }
    assert_eq!(
        cases
            .iter()
            .filter(|c| c.params.clients == Some(20))
            .count(),
        4
    );
}

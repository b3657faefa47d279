//! `pushbench::perf::idle_memory` against a real `pushbench serve` child: the server holds the
//! connections (its GET /stats count) and the figure comes out positive. No speed assertion.

use std::path::Path;

use pushbench::perf::{PerfTransport, idle_memory};

const EXE: &str = env!("CARGO_BIN_EXE_pushbench");

async fn check(transport: PerfTransport) {
    // idle_memory itself fails unless GET /stats reports all 200 (+1 warm-up) subscribers.
    let m = idle_memory(Path::new(EXE), transport, 200)
        .await
        .expect("idle_memory");
    assert_eq!(m.connections, 200);
    assert!(m.baseline_rss > 0 && m.loaded_rss > m.baseline_rss, "{m:?}");
    assert!(m.bytes_per_connection > 0.0, "{m:?}");
    let t = m.target();
    assert_eq!(t.id, format!("memory.idle.{transport}"));
    assert!(t.value.is_some_and(|v| v > 0.0), "{t:?}");
}

#[tokio::test]
async fn idle_ws_connections_are_held_and_measured() {
    check(PerfTransport::Ws).await;
}

#[tokio::test]
async fn idle_sse_connections_are_held_and_measured() {
    check(PerfTransport::Sse).await;
}

#[tokio::test]
async fn scale_delivers_every_message_to_every_driver_client() {
    let work = tempfile::tempdir().expect("tempdir");
    // 9 501 would need two drivers; 40 clients in one driver keeps the test small.
    let spec = pushbench::perf::ScaleSpec {
        clients: 40,
        messages: 3,
        interval_ms: 20,
        server_threads: 1,
    };
    let s = pushbench::perf::scale(Path::new(EXE), PerfTransport::Sse, &spec, work.path())
        .await
        .expect("scale");
    assert_eq!((s.spec.clients, s.drivers, s.received), (40, 1, 120));
    assert!(s.p99_ms > 0.0 && s.p99_ms >= s.p50_ms, "{s:?}");
    assert_eq!(s.target().id, "scale.fanout_40.sse.p99_ms");
}

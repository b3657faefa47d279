//! End-to-end: the `reconnect` scenario against the real server. Resume loses nothing, no
//! resume loses what was sent while away (and says so), downtime shows in the recovery time,
//! and the feed endpoints speak SSE's reconnection protocol (`retry:`, `Last-Event-ID`, 204).

#![allow(clippy::unwrap_used, missing_docs)]

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use pushbench::Harness;
use pushbench_core::http::Http1Connection;
use pushbench_core::reconnect::{FeedPlan, Follower, run_reconnect};
use pushbench_core::{ReconnectConfig, WireCounter};
use pushbench_driver_sse::SseDriver;
use pushbench_driver_ws::WsDriver;
use pushbench_schema::CaseResult;

fn run(harness: &Harness, config: &ReconnectConfig) -> Vec<CaseResult> {
    let followers: [&dyn Follower; 2] = [&WsDriver, &SseDriver];
    let target = harness.target();
    harness
        .runtime
        .block_on(run_reconnect(config, &followers, &target, &mut |_| {}))
}

fn describe(case: &CaseResult) -> String {
    format!(
        "{} {} down={:?}: {:?} {:?} {:?}",
        case.transport,
        case.variant,
        case.params.down_ms,
        case.error,
        case.integrity,
        case.metrics.reconnects
    )
}

#[test]
fn resume_loses_nothing_and_no_resume_shows_what_a_reconnect_loses() {
    let harness = Harness::start().unwrap();
    let config = ReconnectConfig {
        messages: 300,
        rate: 1000,
        drop_every: 60,
        down_ms: vec![0],
        retry_ms: 30,
        ..ReconnectConfig::default()
    };
    let cases = run(&harness, &config);
    assert_eq!(cases.len(), 4, "ws and sse, resume and no-resume");
    for case in &cases {
        assert!(case.is_ok(), "{}", describe(case));
        assert_eq!(case.integrity.sent, 300, "{}", describe(case));
        assert_eq!(case.integrity.duplicated, 0, "{}", describe(case));
        assert_eq!(case.integrity.out_of_order, 0, "{}", describe(case));
        assert_eq!(case.params.drop_every, Some(60));
        match case.variant.as_str() {
            "resume" => {
                assert!(case.integrity.is_clean(), "{}", describe(case));
                assert!(!case.integrity.loss_by_design);
                // 300 messages, 60 per connection: dropped after 60, 120, 180 and 240.
                assert_eq!(case.metrics.reconnects, Some(4), "{}", describe(case));
                // Recovery waits the retry delay at least.
                assert!(case.metrics.recovery_p50_ms.unwrap() >= 30.0);
            }
            "no-resume" => {
                // The retry delay alone is 30 messages at this rate: every reconnect misses
                // some, and the case counts them instead of failing.
                assert!(case.integrity.lost > 0, "{}", describe(case));
                assert!(case.integrity.loss_by_design);
                assert_eq!(
                    case.integrity.received + case.integrity.lost,
                    300,
                    "{}",
                    describe(case)
                );
                assert!(case.metrics.reconnects.unwrap() >= 1);
            }
            other => panic!("unexpected variant {other}"),
        }
    }
}

#[test]
fn downtime_after_a_drop_shows_in_the_recovery_time_and_resume_still_loses_nothing() {
    let harness = Harness::start().unwrap();
    let config = ReconnectConfig {
        messages: 200,
        rate: 1000,
        drop_every: 80,
        down_ms: vec![150],
        retry_ms: 20,
        no_resume: false,
        ..ReconnectConfig::default()
    };
    for case in run(&harness, &config) {
        assert!(case.integrity.is_clean(), "{}", describe(&case));
        assert_eq!(case.metrics.reconnects, Some(2), "{}", describe(&case));
        let recovery = case.metrics.recovery_p50_ms.unwrap();
        assert!(
            recovery >= 150.0,
            "{}: recovery {recovery} ms",
            describe(&case)
        );
        // Messages produced during the outage arrive late, from the replay buffer.
        assert!(
            case.metrics.max_us.unwrap() >= 100_000.0,
            "{}",
            describe(&case)
        );
    }
}

fn plan(stream: &str, n: u64) -> FeedPlan {
    FeedPlan {
        stream: stream.into(),
        n,
        rate: 2000,
        drop_every: 1000,
        down_ms: 0,
        retry_ms: 75,
        payload: 8,
    }
}

/// `GET path` on a new connection: status and whole body.
async fn get(harness: &Harness, path: &str, last_event_id: Option<&str>) -> (u16, String) {
    let mut connection = Http1Connection::connect(&harness.target(), &WireCounter::default())
        .await
        .unwrap();
    let headers: Vec<(&'static str, String)> = last_event_id
        .map(|id| vec![("last-event-id", id.to_owned())])
        .unwrap_or_default();
    let response = connection
        .request_with(
            Method::GET,
            path,
            Bytes::new(),
            "text/event-stream",
            &headers,
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[test]
fn the_sse_feed_sends_retry_resumes_after_last_event_id_and_ends_with_204() {
    let harness = Harness::start().unwrap();
    let plan = plan("e2e-sse-protocol", 20);
    let path = format!("/feed/sse?{}", plan.query());
    harness.runtime.block_on(async {
        let (status, body) = get(&harness, &path, Some("12")).await;
        assert_eq!(status, 200);
        assert!(body.starts_with("retry: 75\n\n"), "{body}");
        let ids: Vec<&str> = body
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .collect();
        let expected: Vec<String> = (13..=20).map(|i| i.to_string()).collect();
        assert_eq!(ids, expected, "{body}");
        assert!(body.ends_with("event: end\ndata: end\n\n"), "{body}");
        // Everything seen: 204, which tells an EventSource to stop reconnecting.
        let (status, body) = get(&harness, &path, Some("20")).await;
        assert_eq!((status, body.as_str()), (204, ""));
    });
}

#[test]
fn a_bad_feed_plan_is_refused_naming_the_field_and_fails_the_follower_for_good() {
    let harness = Harness::start().unwrap();
    let bad = FeedPlan {
        rate: 0,
        ..plan("e2e-bad", 10)
    };
    harness.runtime.block_on(async {
        let (status, body) = get(&harness, &format!("/feed/sse?{}", bad.query()), None).await;
        assert_eq!(status, 400);
        assert!(body.contains("rate = 0"), "{body}");
        // An EventSource does not retry a 4xx: neither does the SSE follower.
        let target = harness.target();
        let followed = SseDriver
            .follow(&target, &bad, true, &mut |_| {})
            .await
            .unwrap_err();
        assert!(followed.to_string().contains("400"), "{followed}");
    });
}

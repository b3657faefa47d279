//! The `reconnect` scenario: a live feed whose server drops every connection every K messages
//! (and, in a variant, refuses connections for D ms afterwards). Clients reconnect; with
//! resume (SSE `Last-Event-ID`, a WebSocket `after=` sequence number) the server replays what
//! they missed from a bounded buffer, without it they rejoin the live feed and miss what was
//! sent meanwhile. Every message is counted: lost, duplicated, out of order.
//!
//! ```
//! use pushbench_core::reconnect::FeedPlan;
//! let plan = FeedPlan { stream: "s1".into(), n: 100, rate: 1000, drop_every: 25, down_ms: 0, retry_ms: 50, payload: 16 };
//! assert!(plan.query().starts_with("stream=s1&n=100"));
//! assert!(plan.validate().is_ok());
//! ```

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use pushbench_schema::CaseResult;
use serde::{Deserialize, Serialize};

use crate::broadcast::unique_topic;
use crate::driver::{DriverError, Target};
use crate::runner::{Measurement, RunEvent, run_groups};
use crate::scenario::ReconnectConfig;
use crate::stats::LatencyHistogram;
use crate::study::{decode_reply, mono_ns};
use crate::transport::Transport;
use crate::wire::WireCounts;

/// Messages a feed keeps for replay. A client away longer than this many messages loses the
/// oldest ones even with resume (and the case says so).
pub const REPLAY_CAPACITY: usize = 4096;
/// Connection attempts in a row that may fail before a follower gives up.
pub const MAX_FAILED_ATTEMPTS: u32 = 200;

/// What a feed does; sent as the query of `GET /feed/sse` and `GET /feed/ws`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPlan {
    /// The feed's name; a new name starts a new feed (its producer starts at the first
    /// connection).
    pub stream: String,
    /// Messages the feed produces, sequence numbers 1..=n.
    pub n: u64,
    /// Messages produced per second, whether or not a client is connected (a live feed).
    pub rate: u64,
    /// The server drops each connection after delivering this many messages on it.
    pub drop_every: u64,
    /// After a drop the feed refuses connections for this long, ms (0: reconnect at once).
    #[serde(default)]
    pub down_ms: u64,
    /// The reconnection delay: SSE's `retry:` field, and the WebSocket client's wait.
    pub retry_ms: u64,
    /// Characters of data per message.
    pub payload: usize,
}

impl FeedPlan {
    /// The URL query that describes this feed.
    pub fn query(&self) -> String {
        format!(
            "stream={}&n={}&rate={}&drop_every={}&down_ms={}&retry_ms={}&payload={}",
            self.stream,
            self.n,
            self.rate,
            self.drop_every,
            self.down_ms,
            self.retry_ms,
            self.payload
        )
    }

    /// Checks the plan's numbers are ones a server should accept, naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            ("n", self.n, 1, 10_000_000),
            ("rate", self.rate, 1, 1_000_000),
            ("drop_every", self.drop_every, 1, u64::MAX),
            ("down_ms", self.down_ms, 0, 60_000),
            ("retry_ms", self.retry_ms, 0, 60_000),
            ("payload", self.payload as u64, 0, 1 << 20),
        ];
        for (name, value, min, max) in checks {
            if value < min || value > max {
                return Err(format!("feed {name} = {value} is outside {min}..={max}"));
            }
        }
        if self.stream.is_empty()
            || !self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "feed stream name {:?} must be non-empty ASCII letters, digits, - or _",
                self.stream
            ));
        }
        Ok(())
    }
}

/// What a follower reports while it follows a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// One feed message (its JSON), as received.
    Message(Bytes),
    /// The connection ended before the feed did (dropped, refused, or failed), with the reason.
    Dropped(String),
}

/// A client that follows a feed to its end, reconnecting as its transport's clients do.
pub trait Follower: Send + Sync {
    /// The transport this follower speaks.
    fn transport(&self) -> Transport;

    /// Follows `plan`'s feed until the server says it has ended; after every drop waits the
    /// retry delay and reconnects, resuming after the last message seen when `resume` is set.
    /// Returns the bytes its sockets moved.
    fn follow<'a>(
        &'a self,
        target: &'a Target,
        plan: &'a FeedPlan,
        resume: bool,
        on_event: &'a mut (dyn FnMut(FeedEvent) + Send),
    ) -> BoxFuture<'a, Result<WireCounts, DriverError>>;
}

/// Counts a failed connection attempt; past [`MAX_FAILED_ATTEMPTS`] in a row, the error to give
/// up with.
pub fn note_failure(failures: &mut u32, what: &str, reason: &str) -> Result<(), DriverError> {
    *failures += 1;
    if *failures > MAX_FAILED_ATTEMPTS {
        return Err(DriverError::Protocol(format!(
            "{what}: gave up after {MAX_FAILED_ATTEMPTS} failed reconnection attempts in a row; last: {reason}"
        )));
    }
    Ok(())
}

/// What one followed feed gave: every message's sequence number and latency, and how long
/// each drop took to recover.
#[derive(Debug, Default)]
struct FeedRecord {
    seqs: Vec<u64>,
    latency: LatencyHistogram,
    recoveries: LatencyHistogram,
    drops: u64,
    bad: Option<String>,
}

impl FeedRecord {
    fn observe(&mut self, event: FeedEvent, dropped_at: &mut Option<Instant>, payload: usize) {
        match event {
            FeedEvent::Dropped(_) => {
                // Refused attempts while down extend the same outage.
                if dropped_at.is_none() {
                    *dropped_at = Some(Instant::now());
                    self.drops += 1;
                }
            }
            FeedEvent::Message(bytes) => {
                if let Some(at) = dropped_at.take() {
                    self.recoveries.record(at.elapsed());
                }
                match decode_reply(&bytes, payload) {
                    Ok(meta) => {
                        self.seqs.push(meta.seq);
                        let now = mono_ns();
                        self.latency
                            .record(Duration::from_nanos(now.saturating_sub(meta.ts)));
                    }
                    Err(e) => {
                        self.bad.get_or_insert_with(|| e.to_string());
                    }
                }
            }
        }
    }
}

/// Integrity of a feed's messages 1..=n from the sequence numbers in the order received.
fn integrity(n: u64, seqs: &[u64]) -> pushbench_schema::Integrity {
    let mut seen = HashSet::with_capacity(seqs.len());
    let (mut duplicated, mut out_of_order, mut highest) = (0, 0, 0);
    for &seq in seqs {
        if !(1..=n).contains(&seq) || !seen.insert(seq) {
            duplicated += 1;
            continue;
        }
        if seq < highest {
            out_of_order += 1;
        }
        highest = highest.max(seq);
    }
    let received = seen.len() as u64;
    pushbench_schema::Integrity {
        sent: n,
        received,
        lost: n - received,
        duplicated,
        out_of_order,
        loss_by_design: false,
    }
}

/// Runs one reconnect case: one client follows a new feed to its end.
pub async fn run_reconnect_case(
    follower: &dyn Follower,
    target: &Target,
    plan: &FeedPlan,
    resume: bool,
    timeout: Duration,
) -> Measurement {
    let variant = if resume { "resume" } else { "no-resume" };
    let mut case = CaseResult::new("reconnect", follower.transport().id(), variant);
    case.params.n = Some(plan.n);
    case.params.rate = Some(plan.rate);
    case.params.payload_bytes = Some(plan.payload as u64);
    case.params.clients = Some(1);
    case.params.drop_every = Some(plan.drop_every);
    case.params.down_ms = Some(plan.down_ms);
    case.params.retry_ms = Some(plan.retry_ms);
    let mut record = FeedRecord::default();
    let mut dropped_at = None;
    let started = Instant::now();
    let followed = {
        let mut on_event = |event: FeedEvent| record.observe(event, &mut dropped_at, plan.payload);
        tokio::time::timeout(
            timeout,
            follower.follow(target, plan, resume, &mut on_event),
        )
        .await
    };
    let elapsed = started.elapsed();
    match followed {
        Ok(Ok(wire)) => {
            case.metrics.wire_bytes_up = Some(wire.up);
            case.metrics.wire_bytes_down = Some(wire.down);
        }
        Ok(Err(e)) => case.error = Some(e.to_string()),
        Err(_) => {
            case.error = Some(format!(
                "the feed did not end within {} ms",
                timeout.as_millis()
            ))
        }
    }
    if let Some(bad) = record.bad {
        case.error
            .get_or_insert(format!("malformed feed message: {bad}"));
    }
    case.integrity = integrity(plan.n, &record.seqs);
    // Without resume, what was sent while the client was away is lost by design: the
    // case shows it instead of failing on it.
    case.integrity.loss_by_design = !resume;
    let m = &mut case.metrics;
    m.elapsed_ms = Some(elapsed.as_secs_f64() * 1e3);
    m.msgs_per_s = Some(case.integrity.received as f64 / elapsed.as_secs_f64().max(1e-9));
    m.reconnects = Some(record.drops);
    if !record.recoveries.is_empty() {
        m.recovery_p50_ms = Some(record.recoveries.quantile_us(0.5) / 1e3);
        m.recovery_p99_ms = Some(record.recoveries.quantile_us(0.99) / 1e3);
        m.recovery_max_ms = Some(record.recoveries.quantile_us(1.0) / 1e3);
    }
    record.latency.fill(m);
    Measurement {
        case,
        latency: record.latency,
    }
}

/// Runs the `reconnect` scenario: per downtime and variant (resume, no-resume), every
/// transport in turn, `repeats` times (a repeated case keeps its median run's recovery
/// figures and sums the counts).
pub async fn run_reconnect(
    config: &ReconnectConfig,
    followers: &[&dyn Follower],
    target: &Target,
    on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
) -> Vec<CaseResult> {
    let groups: Vec<(u64, bool)> = config
        .down_ms
        .iter()
        .flat_map(|&down| {
            config
                .variants()
                .into_iter()
                .map(move |resume| (down, resume))
        })
        .collect();
    let label = |&(down, resume): &(u64, bool)| {
        let variant = if resume { "resume" } else { "no-resume" };
        format!("reconnect {variant} down={down}ms")
    };
    let run = async |&(down_ms, resume): &(u64, bool)| {
        let mut out = Vec::with_capacity(followers.len());
        for follower in followers {
            let plan = FeedPlan {
                stream: unique_topic("feed"),
                n: config.messages,
                rate: config.rate,
                drop_every: config.drop_every,
                down_ms,
                retry_ms: config.retry_ms,
                payload: config.payload_bytes,
            };
            let timeout = config.timeout_for(down_ms);
            out.push(run_reconnect_case(*follower, target, &plan, resume, timeout).await);
        }
        out
    };
    run_groups(&groups, config.repeats, label, run, on_event).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_counts_loss_duplicates_and_order() {
        let i = integrity(5, &[1, 2, 2, 4, 3]);
        assert_eq!(
            (i.sent, i.received, i.lost, i.duplicated, i.out_of_order),
            (5, 4, 1, 1, 1)
        );
        let clean = integrity(3, &[1, 2, 3]);
        assert!(clean.is_clean());
    }

    #[test]
    fn plan_validation_names_the_bad_number() {
        let plan = FeedPlan {
            stream: "a".into(),
            n: 10,
            rate: 0,
            drop_every: 5,
            down_ms: 0,
            retry_ms: 10,
            payload: 8,
        };
        let err = plan.validate().unwrap_err();
        assert!(err.contains("rate = 0"), "{err}");
        let bad_name = FeedPlan {
            stream: "a b".into(),
            rate: 10,
            ..plan
        };
        assert!(bad_name.validate().unwrap_err().contains("stream name"));
    }
}

//! Scenarios declared as data: ids, descriptions, and the study's configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::MAX_STREAMS_PER_CONNECTION;
use crate::study::Flush;
use crate::transport::Transport;

/// A scenario of the catalogue (`pushbench list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioInfo {
    /// Stable id: names result cases and CLI arguments.
    pub id: &'static str,
    /// What it measures.
    pub what: &'static str,
    /// Main figures.
    pub figures: &'static str,
    /// Whether this build can run it.
    pub implemented: bool,
}

/// The scenario catalogue of DESIGN.md, in order.
pub const CATALOGUE: &[ScenarioInfo] = &[
    ScenarioInfo {
        id: "study",
        what: "the published study: N sequential calls (blockSize 1000), connect included, per transport; plus all-at-once",
        figures: "total ms, calls/s, bytes loaded, bytes on wire",
        implemented: true,
    },
    ScenarioInfo {
        id: "push",
        what: "server streams N messages as fast as allowed (ticker, token stream), per flush policy",
        figures: "msgs/s, MB/s, CPU per msg",
        implemented: true,
    },
    ScenarioInfo {
        id: "latency",
        what: "server emits at a fixed rate to C clients; latency from the scheduled send time",
        figures: "p50/p90/p99/p99.9/max",
        implemented: true,
    },
    ScenarioInfo {
        id: "fanout",
        what: "one broadcast delivered to C clients (1 .. 10 000+)",
        figures: "delivery p50/p99, max clients under 100 ms p99",
        implemented: true,
    },
    ScenarioInfo {
        id: "roundtrip",
        what: "client -> server -> client (WS frames; SSE = POST + event; long poll = POST + poll), C clients at once",
        figures: "RTT percentiles",
        implemented: true,
    },
    ScenarioInfo {
        id: "connect",
        what: "time from TCP connect to first message; connection ramp rate",
        figures: "ms, conns/s",
        implemented: true,
    },
    ScenarioInfo {
        id: "reconnect",
        what: "server drops connections; SSE resumes by Last-Event-ID, WS by an app-level resume",
        figures: "recovery ms, lost/dup",
        implemented: true,
    },
    ScenarioInfo {
        id: "payload",
        what: "sizes 16 B .. 1 MiB, text vs binary",
        figures: "bytes on wire / payload byte",
        implemented: true,
    },
];

/// Looks up a scenario by id.
pub fn scenario(id: &str) -> Option<&'static ScenarioInfo> {
    CATALOGUE.iter().find(|s| s.id == id)
}

/// The study's variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StudyVariant {
    /// One transport at a time.
    Sequential,
    /// The three web transports concurrently, as the study's "all at once" button.
    AllAtOnce,
}

impl StudyVariant {
    /// The id written in results.
    pub fn id(self) -> &'static str {
        match self {
            StudyVariant::Sequential => "sequential",
            StudyVariant::AllAtOnce => "all-at-once",
        }
    }
}

/// Configuration of the `study` scenario; missing fields take the defaults (the study's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudyConfig {
    /// Call counts, one group of cases per count.
    pub calls: Vec<u64>,
    /// Characters of random data per reply.
    pub block_size: usize,
    /// Transports to measure.
    pub transports: Vec<Transport>,
    /// Also run the web transports concurrently.
    pub all_at_once: bool,
    /// Runs per case; the report shows the median and the range.
    pub repeats: u32,
    /// How long to wait for one reply before counting it lost.
    pub call_timeout_ms: u64,
}

impl Default for StudyConfig {
    fn default() -> Self {
        StudyConfig {
            calls: vec![100, 1_000, 10_000],
            block_size: 1000,
            transports: Transport::ALL.to_vec(),
            all_at_once: true,
            repeats: 3,
            call_timeout_ms: 10_000,
        }
    }
}

impl StudyConfig {
    /// The reduced set `--quick` runs: 100 and 1 000 calls, once each.
    pub fn quick() -> Self {
        StudyConfig {
            calls: vec![100, 1_000],
            repeats: 1,
            ..StudyConfig::default()
        }
    }

    /// Checks the values a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.calls.is_empty() || self.calls.contains(&0) {
            return Err(format!(
                "study.calls must be non-empty counts above 0, got {:?}",
                self.calls
            ));
        }
        if self.transports.is_empty() {
            return Err(
                "study.transports is empty: name at least one of ws, sse, longpoll, tcp".into(),
            );
        }
        if self.block_size > crate::study::MAX_BLOCK_SIZE {
            return Err(format!(
                "study.block_size {} exceeds {}",
                self.block_size,
                crate::study::MAX_BLOCK_SIZE
            ));
        }
        if self.repeats == 0 || self.call_timeout_ms == 0 {
            return Err("study.repeats and study.call_timeout_ms must be above 0".into());
        }
        Ok(())
    }

    /// The per-call timeout.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// The case groups in run order: per call count, the sequential transports, then
    /// all-at-once (web transports only; needs at least two of them).
    pub fn groups(&self) -> Vec<StudyGroup> {
        let web: Vec<Transport> = self
            .transports
            .iter()
            .copied()
            .filter(|t| t.is_web())
            .collect();
        let mut groups = Vec::new();
        for &n in &self.calls {
            groups.push(StudyGroup {
                n,
                variant: StudyVariant::Sequential,
                transports: self.transports.clone(),
            });
            if self.all_at_once && web.len() > 1 {
                groups.push(StudyGroup {
                    n,
                    variant: StudyVariant::AllAtOnce,
                    transports: web.clone(),
                });
            }
        }
        groups
    }
}

/// Configuration of the `push` scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Messages the server streams per case.
    pub messages: u64,
    /// Data characters per message.
    pub payload_bytes: usize,
    /// Transports to measure.
    pub transports: Vec<Transport>,
    /// Flush policies to measure, each a group of cases.
    pub flush: Vec<Flush>,
    /// Runs per case.
    pub repeats: u32,
    /// How long to wait for the next message before the case fails.
    pub timeout_ms: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            messages: 100_000,
            payload_bytes: 64,
            transports: Transport::ALL.to_vec(),
            flush: Flush::ALL.to_vec(),
            repeats: 3,
            timeout_ms: 10_000,
        }
    }
}

impl PushConfig {
    /// The reduced set `--quick` runs: 10 000 messages, once each.
    pub fn quick() -> Self {
        PushConfig {
            messages: 10_000,
            repeats: 1,
            ..PushConfig::default()
        }
    }

    /// Checks the values a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.messages == 0 || self.messages > crate::study::MAX_PUSH {
            return Err(format!(
                "push.messages must be 1..={}, got {}",
                crate::study::MAX_PUSH,
                self.messages
            ));
        }
        if self.payload_bytes > crate::study::MAX_BLOCK_SIZE {
            return Err(format!(
                "push.payload_bytes {} exceeds {}",
                self.payload_bytes,
                crate::study::MAX_BLOCK_SIZE
            ));
        }
        if self.transports.is_empty() || self.flush.is_empty() {
            return Err("push.transports and push.flush must name at least one each".into());
        }
        if self.repeats == 0 || self.timeout_ms == 0 {
            return Err("push.repeats and push.timeout_ms must be above 0".into());
        }
        Ok(())
    }

    /// The wait for the next message.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Configuration of the `roundtrip` scenario: C clients at once, each making sequential round
/// trips (a call of `payload_bytes` answered by a reply of the same size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoundtripConfig {
    /// Concurrent client counts, one group of cases per count.
    pub clients: Vec<u64>,
    /// Sequential round trips per client.
    pub round_trips: u64,
    /// Data characters per reply.
    pub payload_bytes: usize,
    /// Transports to measure.
    pub transports: Vec<Transport>,
    /// Runs per case.
    pub repeats: u32,
    /// How long to wait for one reply before counting it lost.
    pub timeout_ms: u64,
}

impl Default for RoundtripConfig {
    fn default() -> Self {
        RoundtripConfig {
            clients: vec![1, 100],
            round_trips: 200,
            payload_bytes: 64,
            transports: Transport::ALL.to_vec(),
            repeats: 3,
            timeout_ms: 10_000,
        }
    }
}

impl RoundtripConfig {
    /// The reduced set `--quick` runs: 50 round trips per client, once.
    pub fn quick() -> Self {
        RoundtripConfig {
            round_trips: 50,
            repeats: 1,
            ..RoundtripConfig::default()
        }
    }

    /// Checks the values a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients.is_empty()
            || self.clients.contains(&0)
            || self.clients.iter().any(|&c| c > 2_000)
        {
            return Err(format!(
                "roundtrip.clients must be counts from 1 to 2000 (each SSE or long-polling client holds two sockets), got {:?}",
                self.clients
            ));
        }
        if self.round_trips == 0
            || self.transports.is_empty()
            || self.repeats == 0
            || self.timeout_ms == 0
        {
            return Err("roundtrip.round_trips, transports, repeats and timeout_ms must be non-empty and above 0".into());
        }
        if self.payload_bytes > crate::study::MAX_BLOCK_SIZE {
            return Err(format!(
                "roundtrip.payload_bytes {} exceeds {}",
                self.payload_bytes,
                crate::study::MAX_BLOCK_SIZE
            ));
        }
        Ok(())
    }

    /// The wait for one reply.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Configuration of the `latency` scenario: the server broadcasts at `rate` msgs/s to C
/// clients for `duration_ms`; latency from each message's scheduled send time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyConfig {
    /// Client counts, one group of cases per count.
    pub clients: Vec<u64>,
    /// Messages per second the server emits (every client receives each one).
    pub rate: u64,
    /// How long the server emits, ms.
    pub duration_ms: u64,
    /// Data characters per message.
    pub payload_bytes: usize,
    /// Transports to measure.
    pub transports: Vec<Transport>,
    /// Runs per case.
    pub repeats: u32,
    /// How long a client waits for the next message before the case fails, ms.
    pub timeout_ms: u64,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            clients: vec![1, 100],
            rate: 1000,
            duration_ms: 5_000,
            payload_bytes: 64,
            transports: Transport::ALL.to_vec(),
            repeats: 1,
            timeout_ms: 10_000,
        }
    }
}

impl LatencyConfig {
    /// The reduced set `--quick` runs: half a second per case.
    pub fn quick() -> Self {
        LatencyConfig {
            duration_ms: 500,
            ..LatencyConfig::default()
        }
    }

    /// Messages per case: `rate × duration`.
    pub fn messages(&self) -> u64 {
        (self.rate * self.duration_ms / 1000).max(1)
    }

    /// Checks the values a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients.is_empty() || self.clients.contains(&0) {
            return Err(format!(
                "latency.clients must be counts above 0, got {:?}",
                self.clients
            ));
        }
        if self.rate == 0 || self.rate > 1_000_000 {
            return Err(format!(
                "latency.rate must be 1..=1000000 msgs/s, got {}",
                self.rate
            ));
        }
        if self.duration_ms == 0
            || self.transports.is_empty()
            || self.repeats == 0
            || self.timeout_ms == 0
        {
            return Err("latency.duration_ms, transports, repeats and timeout_ms must be non-empty and above 0".into());
        }
        check_payload("latency", self.payload_bytes)
    }
}

/// Configuration of the `fanout` scenario: `broadcasts` messages, one every `interval_ms`, to
/// C clients; above `in_process_max` clients the clients run in separate driver processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FanoutConfig {
    /// Client counts, one group of cases per count.
    pub clients: Vec<u64>,
    /// Broadcasts per case.
    pub broadcasts: u64,
    /// Interval between broadcasts, ms.
    pub interval_ms: u64,
    /// Data characters per broadcast.
    pub payload_bytes: usize,
    /// Transports to measure.
    pub transports: Vec<Transport>,
    /// The most clients run in the server's process (each holds two descriptors there).
    pub in_process_max: u64,
    /// The most clients per driver process above that.
    pub per_process: u64,
    /// After the listed counts, bisect between the largest count under 100 ms p99 and the
    /// smallest over it, this many steps.
    pub search_steps: u32,
    /// Runs per case.
    pub repeats: u32,
    /// How long a client waits for the next message before the case fails, ms.
    pub timeout_ms: u64,
    /// Also run every SSE case over HTTP/2 (variant `http2`), this many streams per
    /// connection; `None` runs HTTP/1.1 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2: Option<u32>,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            clients: vec![1, 10, 100, 1_000, 10_000],
            broadcasts: 20,
            interval_ms: 100,
            payload_bytes: 64,
            transports: Transport::ALL.to_vec(),
            in_process_max: 4_000,
            per_process: 5_000,
            search_steps: 3,
            repeats: 1,
            timeout_ms: 20_000,
            http2: None,
        }
    }
}

impl FanoutConfig {
    /// The reduced set `--quick` runs: up to 1 000 clients, 5 broadcasts 50 ms apart.
    pub fn quick() -> Self {
        FanoutConfig {
            clients: vec![1, 100, 1_000],
            broadcasts: 5,
            interval_ms: 50,
            search_steps: 0,
            ..FanoutConfig::default()
        }
    }

    /// Checks the values a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients.is_empty() || self.clients.contains(&0) {
            return Err(format!(
                "fanout.clients must be counts above 0, got {:?}",
                self.clients
            ));
        }
        if self.broadcasts == 0
            || self.transports.is_empty()
            || self.repeats == 0
            || self.timeout_ms == 0
        {
            return Err("fanout.broadcasts, transports, repeats and timeout_ms must be non-empty and above 0".into());
        }
        if self.per_process == 0 || self.in_process_max == 0 {
            return Err("fanout.per_process and fanout.in_process_max must be above 0".into());
        }
        if let Some(m) = self.http2 {
            if m == 0 || m > MAX_STREAMS_PER_CONNECTION {
                return Err(format!(
                    "fanout.http2 (streams per HTTP/2 connection) must be 1 to {MAX_STREAMS_PER_CONNECTION} (the server's SETTINGS_MAX_CONCURRENT_STREAMS), got {m}"
                ));
            }
            if !self.transports.contains(&Transport::Sse) {
                return Err(
                    "fanout.http2 compares SSE over HTTP/1.1 and HTTP/2: add sse to the transports"
                        .into(),
                );
            }
        }
        check_payload("fanout", self.payload_bytes)
    }

    /// Driver processes for `clients`: none (in-process) up to `in_process_max`.
    pub fn processes(&self, clients: u64) -> u64 {
        if clients <= self.in_process_max {
            0
        } else {
            clients.div_ceil(self.per_process)
        }
    }
}

/// Configuration of the `connect` scenario: `connections` made one after another (time to
/// first message each), and ramps of C connections opened at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectConfig {
    /// Sequential connections per transport.
    pub connections: u64,
    /// Ramp sizes: connections opened concurrently.
    pub ramp: Vec<u64>,
    /// Transports to measure.
    pub transports: Vec<Transport>,
    /// Runs per case.
    pub repeats: u32,
    /// How long one connection may take, ms.
    pub timeout_ms: u64,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        ConnectConfig {
            connections: 500,
            ramp: vec![1_000],
            transports: Transport::ALL.to_vec(),
            repeats: 1,
            timeout_ms: 10_000,
        }
    }
}

impl ConnectConfig {
    /// The reduced set `--quick` runs: 100 connections, a ramp of 200.
    pub fn quick() -> Self {
        ConnectConfig {
            connections: 100,
            ramp: vec![200],
            ..ConnectConfig::default()
        }
    }

    /// Checks the values a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0
            || self.transports.is_empty()
            || self.repeats == 0
            || self.timeout_ms == 0
        {
            return Err("connect.connections, transports, repeats and timeout_ms must be non-empty and above 0".into());
        }
        if self.ramp.contains(&0) || self.ramp.iter().any(|&c| c > 9_000) {
            return Err(format!(
                "connect.ramp sizes must be 1..=9000 (client and server share this process's 20 000 open files), got {:?}",
                self.ramp
            ));
        }
        Ok(())
    }
}

/// Configuration of the `payload` scenario: a push per size and kind (text, binary), with the
/// message count scaled so each case moves about `budget_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayloadConfig {
    /// Payload sizes, bytes.
    pub sizes: Vec<usize>,
    /// Measure binary payloads too (WS binary frames, base64 on SSE and long polling).
    pub binary: bool,
    /// Payload bytes per case (the message count is this over the size, within the bounds).
    pub budget_bytes: u64,
    /// The most messages per case.
    pub max_messages: u64,
    /// The fewest messages per case.
    pub min_messages: u64,
    /// Transports to measure.
    pub transports: Vec<Transport>,
    /// Runs per case.
    pub repeats: u32,
    /// How long to wait for the next message before the case fails, ms.
    pub timeout_ms: u64,
}

impl Default for PayloadConfig {
    fn default() -> Self {
        PayloadConfig {
            sizes: vec![16, 256, 4096, 65_536, 1_048_576],
            binary: true,
            budget_bytes: 64 << 20,
            max_messages: 20_000,
            min_messages: 32,
            transports: Transport::ALL.to_vec(),
            repeats: 1,
            timeout_ms: 10_000,
        }
    }
}

impl PayloadConfig {
    /// The reduced set `--quick` runs: 8 MiB per case, at most 2 000 messages.
    pub fn quick() -> Self {
        PayloadConfig {
            budget_bytes: 8 << 20,
            max_messages: 2_000,
            min_messages: 8,
            ..PayloadConfig::default()
        }
    }

    /// The form `cargo bench` times (each case about ten times): 16 MiB per case.
    pub fn bench() -> Self {
        PayloadConfig {
            budget_bytes: 16 << 20,
            max_messages: 10_000,
            min_messages: 16,
            ..PayloadConfig::default()
        }
    }

    /// Messages for one case of `size` bytes.
    pub fn messages(&self, size: usize) -> u64 {
        (self.budget_bytes / size.max(1) as u64).clamp(self.min_messages, self.max_messages)
    }

    /// Checks the values a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.sizes.is_empty() || self.sizes.contains(&0) {
            return Err(format!(
                "payload.sizes must be sizes above 0, got {:?}",
                self.sizes
            ));
        }
        if let Some(&big) = self
            .sizes
            .iter()
            .find(|&&s| s > crate::study::MAX_BLOCK_SIZE)
        {
            return Err(format!(
                "payload.sizes: {big} exceeds {}",
                crate::study::MAX_BLOCK_SIZE
            ));
        }
        if self.transports.is_empty()
            || self.repeats == 0
            || self.timeout_ms == 0
            || self.min_messages == 0
            || self.max_messages < self.min_messages
        {
            return Err("payload.transports, repeats, timeout_ms must be non-empty and above 0, and min_messages <= max_messages".into());
        }
        Ok(())
    }
}

fn check_payload(scenario: &str, payload: usize) -> Result<(), String> {
    if payload > crate::study::MAX_BLOCK_SIZE {
        return Err(format!(
            "{scenario}.payload_bytes {payload} exceeds {}",
            crate::study::MAX_BLOCK_SIZE
        ));
    }
    Ok(())
}

/// Cases that run together: one call count, one variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyGroup {
    /// Calls per transport.
    pub n: u64,
    /// Sequential (each alone) or all at once (concurrently).
    pub variant: StudyVariant,
    /// Transports in the group.
    pub transports: Vec<Transport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_studys_and_partial_config_fills_in() {
        let cfg: StudyConfig = serde_json::from_str(r#"{"calls": [5]}"#).unwrap();
        assert_eq!(cfg.calls, vec![5]);
        assert_eq!(cfg.block_size, 1000);
        let groups = cfg.groups();
        assert_eq!(groups.len(), 2);
        assert_eq!(
            groups[1].transports,
            vec![Transport::Ws, Transport::Sse, Transport::Longpoll]
        );
        assert!(serde_json::from_str::<StudyConfig>(r#"{"blocksize": 5}"#).is_err());
        assert!(
            StudyConfig {
                calls: vec![0],
                ..StudyConfig::default()
            }
            .validate()
            .is_err()
        );
        assert!(scenario("study").is_some_and(|s| s.implemented));
    }
}

/// Configuration of the `reconnect` scenario: a live feed of `messages` at `rate` per second
/// whose server drops each connection every `drop_every` messages, then (per `down_ms` entry)
/// refuses connections for that long; followed with and without resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectConfig {
    /// Messages per feed.
    pub messages: u64,
    /// Messages produced per second.
    pub rate: u64,
    /// The server drops each connection after this many messages.
    pub drop_every: u64,
    /// Downtimes after each drop, ms: one case per entry (0: back at once).
    pub down_ms: Vec<u64>,
    /// Reconnection delay (SSE `retry:` and the WebSocket client's wait), ms.
    pub retry_ms: u64,
    /// Characters of data per message.
    pub payload_bytes: usize,
    /// Also follow without resume, to show what a reconnect loses.
    pub no_resume: bool,
    /// Transports to measure (those with a follower: ws, sse).
    pub transports: Vec<Transport>,
    /// Runs per case.
    pub repeats: u32,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            messages: 2_000,
            rate: 1_000,
            drop_every: 250,
            down_ms: vec![0, 500],
            retry_ms: 100,
            payload_bytes: 64,
            no_resume: true,
            transports: vec![Transport::Ws, Transport::Sse],
            repeats: 1,
        }
    }
}

impl ReconnectConfig {
    /// The reduced set `--quick` runs: 500 messages, a drop every 100, down 0 or 200 ms.
    pub fn quick() -> Self {
        ReconnectConfig {
            messages: 500,
            drop_every: 100,
            down_ms: vec![0, 200],
            retry_ms: 50,
            ..ReconnectConfig::default()
        }
    }

    /// Resume first, then (if asked) without.
    pub fn variants(&self) -> Vec<bool> {
        if self.no_resume {
            vec![true, false]
        } else {
            vec![true]
        }
    }

    /// How long one feed may take before its case fails: its own length, every outage at its
    /// worst, and ten seconds of slack.
    pub fn timeout_for(&self, down_ms: u64) -> Duration {
        let feed_ms = self.messages * 1000 / self.rate.max(1);
        let outages = self.messages / self.drop_every.max(1) + 1;
        Duration::from_millis(feed_ms + outages * (down_ms + 2 * self.retry_ms) + 10_000)
    }

    /// Expected wall time of the whole scenario.
    pub fn expected(&self) -> Duration {
        let per_down: Duration = self
            .down_ms
            .iter()
            .map(|&d| {
                let outages = self.messages / self.drop_every.max(1);
                Duration::from_millis(
                    self.messages * 1000 / self.rate.max(1) + outages * (d + self.retry_ms),
                )
            })
            .sum();
        per_down * (self.variants().len() * self.transports.len()) as u32 * self.repeats
    }

    /// Checks the values a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.messages == 0 || self.rate == 0 || self.drop_every == 0 || self.repeats == 0 {
            return Err("reconnect.messages, rate, drop_every and repeats must be above 0".into());
        }
        if self.down_ms.is_empty() || self.down_ms.iter().any(|&d| d > 60_000) {
            return Err(format!(
                "reconnect.down_ms must list downtimes of 0..=60000 ms, got {:?}",
                self.down_ms
            ));
        }
        if let Some(t) = self
            .transports
            .iter()
            .find(|t| !matches!(t, Transport::Ws | Transport::Sse))
        {
            return Err(format!(
                "reconnect runs ws and sse (the transports with a resume protocol); {} has none here",
                t.id()
            ));
        }
        if self.transports.is_empty() {
            return Err("reconnect.transports must name ws, sse or both".into());
        }
        Ok(())
    }
}

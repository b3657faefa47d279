//! Scenarios declared as data: ids, descriptions, and the study's configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
        implemented: false,
    },
    ScenarioInfo {
        id: "fanout",
        what: "one broadcast delivered to C clients (1 .. 10 000+)",
        figures: "delivery p50/p99, max clients under 100 ms p99",
        implemented: false,
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
        implemented: false,
    },
    ScenarioInfo {
        id: "reconnect",
        what: "server drops connections; SSE resumes by Last-Event-ID, WS by an app-level resume",
        figures: "recovery ms, lost/dup",
        implemented: false,
    },
    ScenarioInfo {
        id: "payload",
        what: "sizes 16 B .. 1 MiB, text vs binary",
        figures: "bytes on wire / payload byte",
        implemented: false,
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

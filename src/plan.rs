//! A scenario with its configuration, ready to run on a [`Harness`]: what `pushbench run`
//! executes, one scenario or all of them.

use std::path::PathBuf;
use std::time::Duration;

use pushbench_core::reconnect::Follower;
use pushbench_core::{
    ConnectConfig, FanoutConfig, LatencyConfig, PayloadConfig, PushConfig, ReconnectConfig,
    RoundtripConfig, RunEvent, StudyConfig, Target, Transport,
};
use pushbench_driver_sse::SseDriver;
use pushbench_driver_ws::WsDriver;
use pushbench_schema::CaseResult;

use crate::Harness;

/// One scenario and its configuration.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The published study.
    Study(StudyConfig),
    /// Server streams N messages.
    Push(PushConfig),
    /// Paced broadcast, latency from the scheduled time.
    Latency(LatencyConfig),
    /// One broadcast to C clients, up to 10 000+.
    Fanout(FanoutConfig),
    /// Concurrent sequential round trips.
    Roundtrip(RoundtripConfig),
    /// Connect to first message, connection ramps.
    Connect(ConnectConfig),
    /// Payload sizes, text and binary.
    Payload(PayloadConfig),
    /// Dropped connections, resumed or not.
    Reconnect(ReconnectConfig),
}

impl Plan {
    /// Every scenario with its defaults (`quick`: the reduced forms), in catalogue order.
    pub fn all(quick: bool) -> Vec<Plan> {
        [
            "study",
            "push",
            "latency",
            "fanout",
            "roundtrip",
            "connect",
            "reconnect",
            "payload",
        ]
        .into_iter()
        .filter_map(|id| Plan::default_for(id, quick))
        .collect()
    }

    /// The scenario `id` with its default (or `--quick`) configuration.
    pub fn default_for(id: &str, quick: bool) -> Option<Plan> {
        fn pick<T>(quick: bool, reduced: T, full: T) -> T {
            if quick { reduced } else { full }
        }
        Some(match id {
            "study" => Plan::Study(pick(quick, StudyConfig::quick(), StudyConfig::default())),
            "push" => Plan::Push(pick(quick, PushConfig::quick(), PushConfig::default())),
            "latency" => Plan::Latency(pick(
                quick,
                LatencyConfig::quick(),
                LatencyConfig::default(),
            )),
            "fanout" => Plan::Fanout(pick(quick, FanoutConfig::quick(), FanoutConfig::default())),
            "roundtrip" => Plan::Roundtrip(pick(
                quick,
                RoundtripConfig::quick(),
                RoundtripConfig::default(),
            )),
            "connect" => Plan::Connect(pick(
                quick,
                ConnectConfig::quick(),
                ConnectConfig::default(),
            )),
            "reconnect" => Plan::Reconnect(pick(
                quick,
                ReconnectConfig::quick(),
                ReconnectConfig::default(),
            )),
            "payload" => Plan::Payload(pick(
                quick,
                PayloadConfig::quick(),
                PayloadConfig::default(),
            )),
            _ => return None,
        })
    }

    /// The scenario id.
    pub fn id(&self) -> &'static str {
        match self {
            Plan::Study(_) => "study",
            Plan::Push(_) => "push",
            Plan::Latency(_) => "latency",
            Plan::Fanout(_) => "fanout",
            Plan::Roundtrip(_) => "roundtrip",
            Plan::Connect(_) => "connect",
            Plan::Payload(_) => "payload",
            Plan::Reconnect(_) => "reconnect",
        }
    }

    /// Checks the configuration, naming the field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Plan::Study(c) => c.validate(),
            Plan::Push(c) => c.validate(),
            Plan::Latency(c) => c.validate(),
            Plan::Fanout(c) => c.validate(),
            Plan::Roundtrip(c) => c.validate(),
            Plan::Connect(c) => c.validate(),
            Plan::Payload(c) => c.validate(),
            Plan::Reconnect(c) => c.validate(),
        }
    }

    /// The configuration as recorded in run.json.
    pub fn config_value(&self) -> serde_json::Value {
        let value = match self {
            Plan::Study(c) => serde_json::to_value(c),
            Plan::Push(c) => serde_json::to_value(c),
            Plan::Latency(c) => serde_json::to_value(c),
            Plan::Fanout(c) => serde_json::to_value(c),
            Plan::Roundtrip(c) => serde_json::to_value(c),
            Plan::Connect(c) => serde_json::to_value(c),
            Plan::Payload(c) => serde_json::to_value(c),
            Plan::Reconnect(c) => serde_json::to_value(c),
        };
        value.unwrap_or_default()
    }

    /// Group runs in the plan, for a progress bar.
    pub fn total(&self) -> u64 {
        let r = |repeats: u32| u64::from(repeats);
        match self {
            Plan::Study(c) => c.groups().len() as u64 * r(c.repeats),
            Plan::Push(c) => c.flush.len() as u64 * r(c.repeats),
            Plan::Latency(c) => c.clients.len() as u64 * r(c.repeats),
            Plan::Fanout(c) => c.clients.len() as u64 * r(c.repeats),
            Plan::Roundtrip(c) => c.clients.len() as u64 * r(c.repeats),
            Plan::Connect(c) => (1 + c.ramp.len() as u64) * r(c.repeats),
            Plan::Payload(c) => c.sizes.len() as u64 * if c.binary { 2 } else { 1 } * r(c.repeats),
            Plan::Reconnect(c) => (c.down_ms.len() * c.variants().len()) as u64 * r(c.repeats),
        }
    }

    /// Runs per case.
    pub fn repeats(&self) -> u64 {
        u64::from(match self {
            Plan::Study(c) => c.repeats,
            Plan::Push(c) => c.repeats,
            Plan::Latency(c) => c.repeats,
            Plan::Fanout(c) => c.repeats,
            Plan::Roundtrip(c) => c.repeats,
            Plan::Connect(c) => c.repeats,
            Plan::Payload(c) => c.repeats,
            Plan::Reconnect(c) => c.repeats,
        })
    }

    /// A rough expected duration on a 2-core machine, from per-unit costs measured there
    /// (stated up front so a long run is not a surprise; the real time is in run.json).
    pub fn expected(&self) -> Duration {
        let secs = match self {
            // ~150 µs per call per transport, connect included.
            Plan::Study(c) => {
                let calls: u64 = c.calls.iter().sum();
                let groups = if c.all_at_once { 2.0 } else { 1.0 };
                calls as f64 * 150e-6 * c.transports.len() as f64 * groups * f64::from(c.repeats)
            }
            // ~2 µs per batched message, ~40 µs per per-message message (long polling).
            Plan::Push(c) => {
                c.messages as f64 * 25e-6 * c.transports.len() as f64 * f64::from(c.repeats)
            }
            Plan::Latency(c) => {
                (c.duration_ms as f64 / 1000.0 + 0.5)
                    * (c.clients.len() * c.transports.len()) as f64
                    * f64::from(c.repeats)
            }
            // The broadcasts, plus ~0.2 ms per client to connect, per transport.
            Plan::Fanout(c) => {
                let per: f64 = c
                    .clients
                    .iter()
                    .map(|&n| {
                        (c.broadcasts * c.interval_ms) as f64 / 1000.0 + n as f64 * 0.2e-3 + 0.2
                    })
                    .sum();
                let search = f64::from(c.search_steps) * 5.0;
                let http2 = if c.http2.is_some() { 1.0 } else { 0.0 };
                ((per + search) * c.transports.len() as f64 + per * http2) * f64::from(c.repeats)
            }
            Plan::Roundtrip(c) => {
                let trips: u64 = c.clients.iter().map(|&n| n * c.round_trips).sum();
                trips as f64 * 60e-6 * c.transports.len() as f64 * f64::from(c.repeats)
            }
            Plan::Connect(c) => {
                let conns = c.connections + c.ramp.iter().sum::<u64>();
                conns as f64 * 0.3e-3 * c.transports.len() as f64 * f64::from(c.repeats)
            }
            // ~1 GB/s of payload through every transport, plus setup per case.
            Plan::Payload(c) => {
                let kinds = if c.binary { 2.0 } else { 1.0 };
                let bytes: u64 = c.sizes.iter().map(|&s| c.messages(s) * s as u64).sum();
                (bytes as f64 / 2e8 + 0.1 * c.sizes.len() as f64)
                    * kinds
                    * c.transports.len() as f64
                    * f64::from(c.repeats)
            }
            Plan::Reconnect(c) => return c.expected(),
        };
        Duration::from_secs_f64(secs)
    }

    /// The transports the plan measures.
    pub fn transports(&self) -> &[Transport] {
        match self {
            Plan::Study(c) => &c.transports,
            Plan::Push(c) => &c.transports,
            Plan::Latency(c) => &c.transports,
            Plan::Fanout(c) => &c.transports,
            Plan::Roundtrip(c) => &c.transports,
            Plan::Connect(c) => &c.transports,
            Plan::Payload(c) => &c.transports,
            Plan::Reconnect(c) => &c.transports,
        }
    }

    /// Drops `transport` from the plan (a target without a raw-TCP floor skips `tcp`).
    pub fn without_transport(&mut self, transport: Transport) {
        let transports = match self {
            Plan::Study(c) => &mut c.transports,
            Plan::Push(c) => &mut c.transports,
            Plan::Latency(c) => &mut c.transports,
            Plan::Fanout(c) => &mut c.transports,
            Plan::Roundtrip(c) => &mut c.transports,
            Plan::Connect(c) => &mut c.transports,
            Plan::Payload(c) => &mut c.transports,
            Plan::Reconnect(c) => &mut c.transports,
        };
        transports.retain(|&t| t != transport);
    }

    /// Runs the plan on the harness's client runtime (call inside `block_on`). Every case is
    /// labelled with the server it measured ([`Harness::label_case`]) before `on_event` sees it.
    pub async fn run(
        &self,
        harness: &Harness,
        on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
    ) -> Vec<CaseResult> {
        self.run_on(harness, &harness.target(), on_event).await
    }

    /// Runs the plan against `target` (e.g. [`Harness::tls_target`]); cases say which server
    /// they measured (`params.server`) and, over TLS, so in `params.tls`.
    pub async fn run_on(
        &self,
        harness: &Harness,
        target: &Target,
        on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
    ) -> Vec<CaseResult> {
        let tls = target.tls.is_some();
        let mark = |case: &mut CaseResult| {
            harness.label_case(case);
            if tls {
                case.params.tls = Some(true);
            }
        };
        let mut marked = |event: RunEvent<'_>| match event {
            RunEvent::CaseMeasured { index, case } => {
                let mut case = case.clone();
                mark(&mut case);
                on_event(RunEvent::CaseMeasured { index, case: &case });
            }
            other => on_event(other),
        };
        let mut cases = self.run_unmarked(harness, target, &mut marked).await;
        cases.iter_mut().for_each(mark);
        cases
    }

    async fn run_unmarked(
        &self,
        harness: &Harness,
        target: &Target,
        on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
    ) -> Vec<CaseResult> {
        let target = target.clone();
        let d = &harness.drivers;
        match self {
            Plan::Study(c) => pushbench_core::run_study(c, d, &target, on_event).await,
            Plan::Push(c) => pushbench_core::run_push(c, d, &target, on_event).await,
            Plan::Latency(c) => pushbench_core::run_latency(c, d, &target, on_event).await,
            Plan::Fanout(c) => {
                let exe = harness.driver_exe.as_deref();
                pushbench_core::run_fanout(c, d, &target, exe, on_event).await
            }
            Plan::Roundtrip(c) => pushbench_core::run_roundtrip(c, d, &target, on_event).await,
            Plan::Connect(c) => pushbench_core::run_connect(c, d, &target, on_event).await,
            Plan::Payload(c) => pushbench_core::run_payload(c, d, &target, on_event).await,
            Plan::Reconnect(c) => {
                let followers: Vec<&dyn Follower> = c
                    .transports
                    .iter()
                    .filter_map(|t| match t {
                        Transport::Ws => Some(&WsDriver as &dyn Follower),
                        Transport::Sse => Some(&SseDriver as &dyn Follower),
                        _ => None,
                    })
                    .collect();
                pushbench_core::reconnect::run_reconnect(c, &followers, &target, on_event).await
            }
        }
    }
}

/// The pushbench executable that fan-out starts as driver processes: `PUSHBENCH_EXE`, else
/// the running executable if it is pushbench.
pub fn default_driver_exe() -> Option<PathBuf> {
    if let Some(exe) = std::env::var_os("PUSHBENCH_EXE") {
        return Some(PathBuf::from(exe));
    }
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_stem()?.to_string_lossy().into_owned();
    (name == "pushbench").then_some(exe)
}

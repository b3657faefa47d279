//! The heart of pushbench: transports, scenarios declared as data, the study's wire protocol,
//! the [`Driver`] trait every client implements, latency statistics, environment capture, and
//! the runner that benches, CLI and tests share.
//!
//! ```
//! use pushbench_core::{StudyConfig, Transport};
//! let quick = StudyConfig::quick();
//! assert_eq!(quick.calls, vec![100, 1000]);
//! assert_eq!("sse".parse::<Transport>().unwrap(), Transport::Sse);
//! ```

pub mod broadcast;
pub mod cpu;
pub mod driver;
pub mod env;
pub mod http;
pub mod reconnect;
pub mod runner;
pub mod scenario;
pub mod stats;
pub mod study;
pub mod tls;
pub mod transport;
pub mod wire;

pub use broadcast::{
    BroadcastSpec, merge_parts, run_broadcast_case, run_connect, run_fanout, run_latency,
};
pub use driver::{Driver, DriverError, OnMessage, Session, Target, connect_tcp, open_files_limit};
pub use env::capture_run_info;
pub use runner::{
    DriverSet, Measurement, RunEvent, combine, run_groups, run_payload, run_push, run_push_case,
    run_roundtrip, run_roundtrip_case, run_study, run_study_case, run_study_group,
};
pub use scenario::{
    CATALOGUE, ConnectConfig, FanoutConfig, LatencyConfig, PayloadConfig, PushConfig,
    ReconnectConfig, RoundtripConfig, ScenarioInfo, StudyConfig, StudyGroup, StudyVariant,
    scenario,
};
pub use stats::LatencyHistogram;
pub use study::{Flush, ProtocolError, PushRequest, StudyHub};
pub use tls::{ClientStream, TlsClient, TlsError, connect_stream};
pub use transport::Transport;
pub use wire::{CountingStream, WireCounter, WireCounts};

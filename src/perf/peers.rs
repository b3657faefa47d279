//! Against peers (issue 6, target 5): pushbench's server and drivers held against the Node.js
//! reference in one run, as ratios.
//!
//! - Server vs server: pushbench's own drivers against `pushbench serve --threads 1` and
//!   against the Node reference server (`scripts/reference/node/server.js`: Express 5 + `ws`,
//!   one event loop), both child processes: push (64 B, batched) msgs/s, pushbench's over
//!   Node's, and the broadcast fan-out p99 to a few hundred subscribers, Node's over pushbench's.
//! - Driver vs driver: pushbench's ws and sse drivers against the Node client
//!   (`scripts/reference/node/client.js`: `ws` and the `eventsource` package), both against the
//!   same `pushbench serve --threads 1`: push msgs/s, pushbench's over Node's.
//!
//! Every ratio is oriented so that > 1 means pushbench is better; the target is ≥ 1.0 (the issue
//! gives no bound: our server no slower than the typical Node server, and the harness's client
//! not the slower one). The sides alternate (A B A B ...) after one untimed warm-up run each (a
//! JIT needs it), and each figure is the ratio of the medians, so drift hits both sides. A run
//! that lost, duplicated or reordered a message, or failed, leaves its figure unmeasured with the
//! reason in the note. Without Node or the reference's `node_modules` every figure is present,
//! unmeasured, with a note saying how to enable it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use pushbench_core::broadcast::unique_topic;
use pushbench_core::{
    BroadcastSpec, DriverSet, Flush, PushRequest, Target, Transport, run_broadcast_case,
    run_push_case,
};
use pushbench_schema::{Bound, CaseResult, PerfTarget};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::memory::ServerChild;
use crate::Harness;

/// The bound of every peers ratio: pushbench at least as good as its Node peer.
pub const PEER_RATIO: f64 = 1.0;

/// The command that installs the Node reference's dependencies.
pub const ENABLE: &str = "(cd scripts/reference/node && npm ci)";

/// The npm packages the reference server and client need.
const MODULES: [&str; 3] = ["ws", "express", "eventsource"];

/// The transports compared.
const TRANSPORTS: [Transport; 2] = [Transport::Ws, Transport::Sse];

/// Sizes of the peers figure group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeersConfig {
    /// Messages per push run.
    pub push_messages: u64,
    /// Data characters per pushed and broadcast message.
    pub payload_bytes: usize,
    /// Subscribers of a fan-out run.
    pub fanout_clients: u64,
    /// Broadcasts per fan-out run.
    pub fanout_broadcasts: u64,
    /// Interval between broadcasts, ms.
    pub fanout_interval_ms: u64,
    /// Timed runs per side of each comparison.
    pub rounds: u32,
    /// One untimed run per side first.
    pub warm_up: bool,
    /// How long a run may wait for its next message, ms.
    pub timeout_ms: u64,
}

impl PeersConfig {
    /// The bench's sizes: 200 000 pushed messages, fan-out to 300, 5 rounds after a warm-up.
    pub fn full() -> Self {
        PeersConfig {
            push_messages: 200_000,
            payload_bytes: 64,
            fanout_clients: 300,
            fanout_broadcasts: 20,
            fanout_interval_ms: 50,
            rounds: 5,
            warm_up: true,
            timeout_ms: 10_000,
        }
    }

    /// `--test`: tiny sizes, one round, no warm-up; a smoke test, not figures.
    pub fn test() -> Self {
        PeersConfig {
            push_messages: 2_000,
            fanout_clients: 20,
            fanout_broadcasts: 3,
            fanout_interval_ms: 20,
            rounds: 1,
            warm_up: false,
            ..PeersConfig::full()
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// How the sides were run, for the notes.
    fn schedule(&self) -> String {
        let rounds = match self.rounds {
            1 => "1 round".to_owned(),
            n => format!("{n} alternating rounds"),
        };
        let warm_up = if self.warm_up {
            " after one untimed warm-up run per side"
        } else {
            ""
        };
        format!("{rounds}{warm_up}")
    }
}

/// The Node server's label in notes.
const NODE_SERVER: &str = "Node server (Express 5 + ws, one event loop)";
/// pushbench's server's label in notes.
const OUR_SERVER: &str = "pushbench serve --threads 1";

/// A usable Node reference: a `node` that runs and the npm packages installed.
#[derive(Debug, Clone)]
pub struct NodeReference {
    /// The `node` program.
    pub node: PathBuf,
    /// `scripts/reference/node`.
    pub dir: PathBuf,
    /// `node --version`.
    pub version: String,
}

impl NodeReference {
    /// Checks that `node` runs and `dir/node_modules` holds the reference's packages; the
    /// reason, with how to enable the figures, otherwise.
    pub fn find(node: &Path, dir: &Path) -> Result<NodeReference, String> {
        let output = std::process::Command::new(node)
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        let version = match output {
            Ok(out) if out.status.success() => {
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
            Ok(out) => {
                return Err(format!(
                    "`{} --version` failed ({}): install Node.js 20 or later, then {ENABLE}",
                    node.display(),
                    out.status
                ));
            }
            Err(e) => {
                return Err(format!(
                    "Node.js not found (`{}`: {e}): install Node.js 20 or later, then {ENABLE}",
                    node.display()
                ));
            }
        };
        let missing: Vec<&str> = MODULES
            .into_iter()
            .filter(|m| !dir.join("node_modules").join(m).is_dir())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} lacks {}: run {ENABLE}",
                dir.join("node_modules").display(),
                missing.join(", ")
            ));
        }
        Ok(NodeReference {
            node: node.to_owned(),
            dir: dir.to_owned(),
            version,
        })
    }
}

/// The JSON line `client.js` prints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeClientReport {
    /// The library that received: `ws 8.23.0` or `eventsource 4.1.1`.
    pub library: String,
    /// `process.version`.
    pub node: String,
    /// `ws` or `sse`.
    pub transport: String,
    /// Messages requested.
    pub messages: u64,
    /// Distinct messages received.
    pub received: u64,
    /// Requested but not received.
    pub lost: u64,
    /// Received again.
    pub duplicated: u64,
    /// Received after a later sequence number.
    pub out_of_order: u64,
    /// Messages that were not a pushed message of the right size.
    pub bad: u64,
    /// From the push request to the last message, seconds.
    pub elapsed_s: f64,
    /// `received / elapsed_s`; null when nothing was timed.
    pub msgs_per_s: Option<f64>,
    /// Why the run failed, or null.
    pub error: Option<String>,
}

impl NodeClientReport {
    /// Parses the last non-empty line of `client.js`'s stdout.
    pub fn parse(stdout: &str) -> anyhow::Result<NodeClientReport> {
        let line = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .context("the Node client printed nothing")?;
        serde_json::from_str(line)
            .with_context(|| format!("the Node client's output is not its JSON line: `{line}`"))
    }

    /// msgs/s of a run that received every message once, in order; the reason otherwise.
    pub fn rate(&self) -> Result<f64, String> {
        let counts = format!(
            "{} of {} received, {} lost, {} duplicated, {} out of order, {} bad",
            self.received, self.messages, self.lost, self.duplicated, self.out_of_order, self.bad
        );
        if let Some(e) = &self.error {
            return Err(format!("{e} ({counts})"));
        }
        if self.received != self.messages
            || self.lost + self.duplicated + self.out_of_order + self.bad > 0
        {
            return Err(counts);
        }
        self.msgs_per_s
            .filter(|r| *r > 0.0)
            .ok_or_else(|| format!("no msgs/s ({counts})"))
    }
}

/// Which figure of a run is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// msgs/s: higher is better; the ratio is pushbench's over the peer's.
    MsgsPerS,
    /// Delivery p99, ms: lower is better; the ratio is the peer's over pushbench's.
    P99Ms,
}

impl Figure {
    fn unit(self) -> &'static str {
        match self {
            Figure::MsgsPerS => "msgs/s",
            Figure::P99Ms => "ms p99",
        }
    }
}

/// One side's runs: the figure of each clean run, and what went wrong in the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Side {
    /// Who this side is, e.g. `pushbench serve --threads 1`.
    pub label: String,
    /// The figure of each clean timed run.
    pub values: Vec<f64>,
    /// One line per failed or lossy run (warm-up included).
    pub faults: Vec<String>,
}

impl Side {
    fn new(label: impl Into<String>) -> Self {
        Side {
            label: label.into(),
            ..Side::default()
        }
    }

    /// Records one run: its figure, or why it has none.
    fn record(&mut self, round: &str, run: Result<f64, String>) {
        match run {
            Ok(v) => self.values.push(v),
            Err(e) => self.faults.push(format!("{round}, {}: {e}", self.label)),
        }
    }

    fn median(&self) -> Option<f64> {
        median(&self.values)
    }

    fn summary(&self, figure: Figure) -> String {
        let (lo, hi) = self
            .values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let f = |v: f64| match figure {
            Figure::MsgsPerS => format!("{v:.0}"),
            Figure::P99Ms => format!("{v:.2}"),
        };
        format!(
            "{} {} {} (median of {}, {}..{})",
            self.label,
            f(self.median().unwrap_or(f64::NAN)),
            figure.unit(),
            self.values.len(),
            f(lo),
            f(hi)
        )
    }
}

/// The median of `values`; `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// A comparison: pushbench's side against its peer's, turned into one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Target id, e.g. `peers.server.push.ws`.
    pub id: String,
    /// What the ratio is.
    pub what: String,
    /// The compared figure.
    pub figure: Figure,
    /// pushbench's side.
    pub ours: Side,
    /// The Node side.
    pub peer: Side,
    /// How the runs were made (sizes, setup), for the note.
    pub how: String,
}

impl Comparison {
    /// The ratio of the medians, oriented so > 1 means pushbench is better, against ≥ 1.0; no
    /// value when any run of either side failed or lost a message, or a side has no runs.
    pub fn target(&self) -> PerfTarget {
        let target =
            |value| PerfTarget::new(&self.id, &self.what, "×", Bound::AtLeast, PEER_RATIO, value);
        let faults: Vec<&str> = self
            .ours
            .faults
            .iter()
            .chain(&self.peer.faults)
            .map(String::as_str)
            .collect();
        if !faults.is_empty() {
            return target(None).with_note(format!(
                "not measured: {} run(s) failed or lost messages, so no figure: {}",
                faults.len(),
                faults.join("; ")
            ));
        }
        let (Some(ours), Some(peer)) = (self.ours.median(), self.peer.median()) else {
            return target(None).with_note(format!("not measured: no runs ({})", self.how));
        };
        let ratio = match self.figure {
            Figure::MsgsPerS => ours / peer,
            Figure::P99Ms => peer / ours,
        };
        target(Some(ratio)).with_note(format!(
            "{} / {}; {}; target ≥ {PEER_RATIO}× (the issue gives no bound: pushbench no worse than its typical Node peer)",
            self.ours.summary(self.figure),
            self.peer.summary(self.figure),
            self.how
        ))
    }
}

/// The peers target ids, in the order [`targets`] appends them.
pub fn target_ids() -> Vec<String> {
    let mut ids = Vec::new();
    for kind in ["server.push", "server.fanout", "client.push"] {
        for t in TRANSPORTS {
            ids.push(format!("peers.{kind}.{t}"));
        }
    }
    ids
}

/// What each target id measures.
fn what(id: &str, config: &PeersConfig) -> String {
    let t = id.rsplit('.').next().unwrap_or("").to_uppercase();
    if id.starts_with("peers.server.push") {
        format!(
            "push {} B batched, {t}: pushbench server msgs/s over the Node server's (pushbench's driver)",
            config.payload_bytes
        )
    } else if id.starts_with("peers.server.fanout") {
        format!(
            "fan-out to {} {t} subscribers: Node server's delivery p99 over pushbench server's",
            config.fanout_clients
        )
    } else {
        format!(
            "push {} B batched, {t}: pushbench driver msgs/s over the Node client's (pushbench server)",
            config.payload_bytes
        )
    }
}

/// Every peers target, unmeasured, with `reason` as the note.
pub fn unmeasured(reason: &str, config: &PeersConfig) -> Vec<PerfTarget> {
    target_ids()
        .iter()
        .map(|id| {
            PerfTarget::new(id, &what(id, config), "×", Bound::AtLeast, PEER_RATIO, None)
                .with_note(format!("not measured: {reason}"))
        })
        .collect()
}

/// Measures every peers comparison and appends its targets to `out`; `exe` is the pushbench
/// binary, `node_dir` `scripts/reference/node`. Never panics: without Node every target is
/// present and unmeasured, saying how to enable it.
pub fn targets(
    harness: &Harness,
    exe: &Path,
    node_dir: &Path,
    config: &PeersConfig,
    out: &mut Vec<PerfTarget>,
) {
    let node = match NodeReference::find(Path::new("node"), node_dir) {
        Ok(node) => node,
        Err(reason) => {
            println!("pushbench: peers not measured: {reason}");
            out.extend(unmeasured(&reason, config));
            return;
        }
    };
    match harness
        .runtime
        .block_on(compare(&harness.drivers, exe, &node, config))
    {
        Ok(comparisons) => out.extend(comparisons.iter().map(Comparison::target)),
        Err(e) => out.extend(unmeasured(&format!("{e:#}"), config)),
    }
}

/// The Node reference server as a child process (`node server.js 0`), killed when dropped.
struct NodeServer {
    _child: Child,
    target: Target,
}

impl NodeServer {
    async fn start(node: &NodeReference) -> anyhow::Result<NodeServer> {
        let mut child = Command::new(&node.node)
            .args(["server.js", "0"])
            .current_dir(&node.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the Node reference server")?;
        let stdout = child.stdout.take().context("no stdout from node")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = async |key: &str| -> anyhow::Result<std::net::SocketAddr> {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .context("the Node server printed no address within 20 s")??
                .context("the Node server exited before printing its addresses")?;
            line.strip_prefix(key)
                .and_then(|a| a.strip_prefix(' '))
                .with_context(|| {
                    format!("expected `{key} ADDR` from the Node server, got `{line}`")
                })?
                .parse()
                .with_context(|| format!("bad address in `{line}`"))
        };
        let http = addr("http").await?;
        let tcp = addr("tcp").await?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(NodeServer {
            _child: child,
            target: Target::new(http, Some(tcp)),
        })
    }
}

/// A flagged case's reason; `None` for a clean one.
fn fault(case: &CaseResult) -> Option<String> {
    (!case.is_ok()).then(|| {
        let i = &case.integrity;
        format!(
            "{} ({} of {} received, {} lost, {} duplicated, {} out of order)",
            case.error.as_deref().unwrap_or("messages lost"),
            i.received,
            i.sent,
            i.lost,
            i.duplicated,
            i.out_of_order
        )
    })
}

/// One push through pushbench's driver: msgs/s, or why there is none.
async fn driver_push(
    drivers: &DriverSet,
    target: &Target,
    t: Transport,
    config: &PeersConfig,
) -> Result<f64, String> {
    let driver = drivers.get(t).ok_or_else(|| format!("no {t} driver"))?;
    let request = PushRequest {
        n: config.push_messages,
        payload: config.payload_bytes,
        flush: Flush::Batched,
        binary: false,
    };
    let case = run_push_case(driver, target, request, config.timeout())
        .await
        .case;
    if let Some(f) = fault(&case) {
        return Err(f);
    }
    case.metrics
        .msgs_per_s
        .ok_or_else(|| "no msgs/s".to_owned())
}

/// One push through the Node client (`node client.js`): msgs/s, or why there is none.
async fn node_client_push(
    node: &NodeReference,
    target: &Target,
    t: Transport,
    config: &PeersConfig,
) -> Result<f64, String> {
    let run = Command::new(&node.node)
        .arg("client.js")
        .arg(format!("http://{}", target.http))
        .arg(t.id())
        .arg(config.push_messages.to_string())
        .arg(config.payload_bytes.to_string())
        .arg("batched")
        .env("IDLE_TIMEOUT_MS", config.timeout_ms.to_string())
        .current_dir(&node.dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let limit = config.timeout() * 6;
    let output = match tokio::time::timeout(limit, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("cannot run node client.js: {e}")),
        Err(_) => return Err(format!("node client.js did not end within {limit:?}")),
    };
    let report =
        NodeClientReport::parse(&String::from_utf8_lossy(&output.stdout)).map_err(|e| {
            format!(
                "{e:#} (exit {}; stderr: {})",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })?;
    report.rate()
}

/// One broadcast fan-out through pushbench's driver: the delivery p99 in ms, or why none.
async fn fanout_p99(
    drivers: &DriverSet,
    target: &Target,
    t: Transport,
    config: &PeersConfig,
) -> Result<f64, String> {
    let driver = drivers.get(t).ok_or_else(|| format!("no {t} driver"))?;
    let spec = BroadcastSpec {
        scenario: "fanout".into(),
        variant: "broadcast".into(),
        topic: unique_topic("peers"),
        clients: config.fanout_clients,
        subscribers: config.fanout_clients,
        n: config.fanout_broadcasts,
        interval_us: config.fanout_interval_ms * 1000,
        payload: config.payload_bytes,
        timeout_ms: config.timeout_ms,
        ..BroadcastSpec::default()
    };
    let case = run_broadcast_case(driver, target, &spec).await.case;
    if let Some(f) = fault(&case) {
        return Err(f);
    }
    case.metrics
        .p99_us
        .map(|us| us / 1000.0)
        .ok_or_else(|| "no p99".to_owned())
}

/// Runs `a` then `b`, once untimed (with `warm_up`) and `rounds` times timed, into the sides.
async fn alternate(
    config: &PeersConfig,
    ours: &mut Side,
    peer: &mut Side,
    a: impl AsyncFn() -> Result<f64, String>,
    b: impl AsyncFn() -> Result<f64, String>,
) {
    if config.warm_up {
        if let Err(e) = a().await {
            ours.faults.push(format!("warm-up, {}: {e}", ours.label));
        }
        if let Err(e) = b().await {
            peer.faults.push(format!("warm-up, {}: {e}", peer.label));
        }
    }
    for round in 1..=config.rounds {
        let name = format!("round {round}");
        ours.record(&name, a().await);
        peer.record(&name, b().await);
    }
}

/// One comparison per transport: `ours` against `peer`, alternating (see [`alternate`]), as
/// target `peers.<kind with dots>.<t>`; `sides` names the two sides, `how` says how it ran.
async fn each_transport(
    config: &PeersConfig,
    (kind, figure): (&str, Figure),
    sides: impl Fn(Transport) -> (String, String),
    how: impl Fn(Transport) -> String,
    ours: impl AsyncFn(Transport) -> Result<f64, String>,
    peer: impl AsyncFn(Transport) -> Result<f64, String>,
) -> Vec<Comparison> {
    let mut out = Vec::new();
    for t in TRANSPORTS {
        println!("pushbench: peers {kind} {t}");
        let (a_label, b_label) = sides(t);
        let (mut a, mut b) = (Side::new(a_label), Side::new(b_label));
        alternate(
            config,
            &mut a,
            &mut b,
            async || ours(t).await,
            async || peer(t).await,
        )
        .await;
        let id = format!("peers.{}.{t}", kind.replace(' ', "."));
        out.push(Comparison {
            what: what(&id, config),
            id,
            figure,
            ours: a,
            peer: b,
            how: how(t),
        });
    }
    out
}

/// Starts `pushbench serve --threads 1` and the Node server, and runs every comparison.
async fn compare(
    drivers: &DriverSet,
    exe: &Path,
    node: &NodeReference,
    config: &PeersConfig,
) -> anyhow::Result<Vec<Comparison>> {
    let server = ServerChild::start(exe, 1).await?;
    let ours = Target::new(server.http, None);
    let peer = NodeServer::start(node).await?;
    let sizes = format!(
        "{} × {} B batched, {}",
        config.push_messages,
        config.payload_bytes,
        config.schedule()
    );
    let server_side = |_| (OUR_SERVER.to_owned(), NODE_SERVER.to_owned());
    let mut out = each_transport(
        config,
        ("server push", Figure::MsgsPerS),
        server_side,
        |t| format!("pushbench's {t} driver against each server, {sizes}"),
        async |t| driver_push(drivers, &ours, t, config).await,
        async |t| driver_push(drivers, &peer.target, t, config).await,
    )
    .await;
    out.extend(
        each_transport(
            config,
            ("server fanout", Figure::P99Ms),
            server_side,
            |t| {
                format!(
                    "pushbench's {t} driver (in-process subscribers), {} broadcasts of {} B {} ms apart, latency from the scheduled send time; {}",
                    config.fanout_broadcasts,
                    config.payload_bytes,
                    config.fanout_interval_ms,
                    config.schedule()
                )
            },
            async |t| fanout_p99(drivers, &ours, t, config).await,
            async |t| fanout_p99(drivers, &peer.target, t, config).await,
        )
        .await,
    );
    // The Node server has no part in the client comparison.
    drop(peer);
    let client_side = |t| {
        let library = match t {
            Transport::Ws => "ws",
            _ => "eventsource",
        };
        (
            format!("pushbench {t} driver"),
            format!("Node client ({library}, node {})", node.version),
        )
    };
    out.extend(
        each_transport(
            config,
            ("client push", Figure::MsgsPerS),
            client_side,
            |_| format!("both against {OUR_SERVER}, {sizes}"),
            async |t| driver_push(drivers, &ours, t, config).await,
            async |t| node_client_push(node, &ours, t, config).await,
        )
        .await,
    );
    drop(server);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(label: &str, values: &[f64]) -> Side {
        Side {
            label: label.to_owned(),
            values: values.to_vec(),
            faults: Vec::new(),
        }
    }

    fn comparison(figure: Figure, ours: Side, peer: Side) -> Comparison {
        Comparison {
            id: "peers.server.push.ws".into(),
            what: "x".into(),
            figure,
            ours,
            peer,
            how: "2000 × 64 B".into(),
        }
    }

    #[test]
    fn medians_of_odd_even_and_no_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn rates_compare_as_ours_over_the_peers_medians() {
        let c = comparison(
            Figure::MsgsPerS,
            side("ours", &[300.0, 100.0, 200.0]),
            side("node", &[50.0, 400.0, 100.0]),
        );
        let t = c.target();
        assert_eq!((t.value, t.met), (Some(2.0), true));
        assert_eq!(t.bound_text(), "≥ 1 ×");
        assert!(
            t.note.contains("ours 200 msgs/s (median of 3, 100..300)"),
            "{}",
            t.note
        );
        assert!(t.note.contains("node 100 msgs/s"), "{}", t.note);
        let slower = comparison(
            Figure::MsgsPerS,
            side("ours", &[50.0]),
            side("node", &[100.0]),
        );
        assert_eq!(
            (slower.target().value, slower.target().met),
            (Some(0.5), false)
        );
    }

    #[test]
    fn p99s_compare_as_the_peers_over_ours() {
        let c = comparison(Figure::P99Ms, side("ours", &[2.0]), side("node", &[5.0]));
        let t = c.target();
        assert_eq!((t.value, t.met), (Some(2.5), true));
        assert!(t.note.contains("ours 2.00 ms p99"), "{}", t.note);
    }

    #[test]
    fn a_lossy_or_failed_run_on_either_side_leaves_the_figure_unmeasured() {
        let mut peer = side("node", &[100.0, 100.0]);
        peer.record("round 3", Err("12 of 2000 received".into()));
        let t = comparison(Figure::MsgsPerS, side("ours", &[300.0, 300.0, 300.0]), peer).target();
        assert_eq!((t.value, t.met), (None, false));
        assert!(t.note.starts_with("not measured"), "{}", t.note);
        assert!(
            t.note.contains("round 3, node: 12 of 2000 received"),
            "{}",
            t.note
        );

        let mut ours = side("ours", &[300.0]);
        ours.record("round 1", Err("connect: refused".into()));
        let t = comparison(Figure::P99Ms, ours, side("node", &[1.0])).target();
        assert_eq!(t.value, None);
        assert!(
            t.note.contains("round 1, ours: connect: refused"),
            "{}",
            t.note
        );

        let t = comparison(Figure::MsgsPerS, side("ours", &[]), side("node", &[1.0])).target();
        assert_eq!(t.value, None);
        assert!(t.note.contains("no runs"), "{}", t.note);
    }

    #[test]
    fn without_node_every_peers_target_is_listed_unmeasured_saying_how_to_enable_it() {
        let dir = tempfile::tempdir().unwrap();
        let reason = NodeReference::find(Path::new("/nonexistent/node"), dir.path()).unwrap_err();
        assert!(reason.contains("Node.js not found"), "{reason}");
        assert!(reason.contains(ENABLE), "{reason}");
        let targets = unmeasured(&reason, &PeersConfig::full());
        let ids: Vec<&str> = targets.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "peers.server.push.ws",
                "peers.server.push.sse",
                "peers.server.fanout.ws",
                "peers.server.fanout.sse",
                "peers.client.push.ws",
                "peers.client.push.sse",
            ]
        );
        for t in &targets {
            assert_eq!((t.value, t.met), (None, false), "{}", t.id);
            assert!(t.note.contains("npm ci"), "{}", t.note);
        }
        assert!(targets[2].description.contains("300 WS subscribers"));
    }

    #[test]
    fn missing_node_modules_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/ws")).unwrap();
        // `true` stands in for a node that runs (prints nothing, exits 0).
        let reason = NodeReference::find(Path::new("true"), dir.path()).unwrap_err();
        assert!(reason.contains("lacks express, eventsource"), "{reason}");
        assert!(reason.contains(ENABLE), "{reason}");
        std::fs::create_dir_all(dir.path().join("node_modules/express")).unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/eventsource")).unwrap();
        assert!(NodeReference::find(Path::new("true"), dir.path()).is_ok());
        let reason = NodeReference::find(Path::new("false"), dir.path()).unwrap_err();
        assert!(reason.contains("--version` failed"), "{reason}");
    }

    const CLEAN: &str = r#"{"client":"node","library":"ws 8.23.0","node":"v20.20.2","transport":"ws","flush":"batched","payload":64,"messages":20000,"received":20000,"lost":0,"duplicated":0,"out_of_order":0,"bad":0,"elapsed_s":0.058843114,"msgs_per_s":339886.8387556783,"error":null}"#;

    #[test]
    fn the_node_clients_json_line_parses() {
        let report = NodeClientReport::parse(&format!("some log line\n{CLEAN}\n\n")).unwrap();
        assert_eq!(report.library, "ws 8.23.0");
        assert_eq!(report.transport, "ws");
        assert_eq!((report.messages, report.received), (20_000, 20_000));
        assert_eq!(report.rate(), Ok(339886.8387556783));
    }

    #[test]
    fn a_lossy_or_failed_node_client_run_has_no_rate() {
        let lossy = CLEAN
            .replace(r#""received":20000"#, r#""received":19990"#)
            .replace(r#""lost":0"#, r#""lost":10"#);
        let e = NodeClientReport::parse(&lossy).unwrap().rate().unwrap_err();
        assert!(e.contains("19990 of 20000 received, 10 lost"), "{e}");
        let dup = CLEAN.replace(r#""duplicated":0"#, r#""duplicated":1"#);
        assert!(NodeClientReport::parse(&dup).unwrap().rate().is_err());
        let failed = CLEAN.replace(r#""error":null"#, r#""error":"POST /rpc answered 404""#);
        let e = NodeClientReport::parse(&failed)
            .unwrap()
            .rate()
            .unwrap_err();
        assert!(e.starts_with("POST /rpc answered 404"), "{e}");
        let e = NodeClientReport::parse("").unwrap_err().to_string();
        assert!(e.contains("printed nothing"), "{e}");
        let e = format!(
            "{:#}",
            NodeClientReport::parse("client.js: usage").unwrap_err()
        );
        assert!(e.contains("not its JSON line: `client.js: usage`"), "{e}");
    }
}

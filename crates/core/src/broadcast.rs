//! Scenarios built on broadcast topics: `latency` (a paced stream to C clients), `fanout` (one
//! broadcast every interval to up to 10 000+ clients, in driver processes when one process's
//! open-files limit is not enough) and `connect` (time to first message, connection ramps).
//!
//! Every subscriber is one connection that receives the server's acknowledgement first; the
//! server stamps each broadcast message with its *scheduled* send time on the host's
//! `CLOCK_MONOTONIC`, so latency is measured without coordinated omission, in this process or
//! in a driver process on the same host.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, FuturesUnordered, StreamExt};
use http::Method;
use pushbench_schema::{CaseResult, Integrity, RunFile};

use crate::driver::{Driver, DriverError, Session, Target};
use crate::http::Http1Connection;
use crate::runner::{DriverSet, Measurement, RunEvent, run_groups};
use crate::scenario::{ConnectConfig, FanoutConfig, LatencyConfig};
use crate::stats::LatencyHistogram;
use crate::study::{BroadcastPlan, decode_reply, mono_ns};
use crate::transport::Transport;
use crate::wire::WireCounter;

/// Subscriptions opened at once while connecting clients (a ramp opens all at once).
const CONNECT_CONCURRENCY: usize = 256;
/// Descriptors a process needs besides its connections (runtime, listeners, files).
const FILES_SPARE: u64 = 64;
/// The 100 ms "instant" threshold fan-out is judged by.
pub const INSTANT_US: f64 = 100_000.0;

/// A topic name no other case of this host uses.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        mono_ns(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One broadcast case as a driver process (or this one) runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastSpec {
    /// Scenario id written in the result (`latency` or `fanout`).
    pub scenario: String,
    /// Variant written in the result.
    pub variant: String,
    /// The topic every process's clients join.
    pub topic: String,
    /// Clients this process runs.
    pub clients: u64,
    /// Clients over every process: the broadcast starts when this many have joined.
    pub subscribers: u64,
    /// Messages broadcast.
    pub n: u64,
    /// Scheduled interval between messages, µs.
    pub interval_us: u64,
    /// Data characters per message.
    pub payload: usize,
    /// How long a client waits for its next message, ms.
    pub timeout_ms: u64,
    /// Fault injection: the server's sender stops for `stall_ms` before this message.
    pub stall_before: Option<u64>,
    /// How long the sender stops, ms.
    pub stall_ms: u64,
}

impl BroadcastSpec {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The plan `POST /broadcast` carries for this spec.
    pub fn plan(&self) -> BroadcastPlan {
        BroadcastPlan {
            topic: self.topic.clone(),
            subscribers: self.subscribers,
            n: self.n,
            interval_us: self.interval_us,
            payload: self.payload,
            wait_ms: self.timeout_ms,
            stall_before: self.stall_before,
            stall_ms: self.stall_ms,
        }
    }

    /// The arguments of `pushbench drive` that run this spec's clients in another process.
    pub fn drive_args(&self, transport: Transport, target: &Target, out: &Path) -> Vec<String> {
        let mut args = vec![
            "drive".to_owned(),
            "--quiet".to_owned(),
            format!("--target={}://{}", target.http_scheme(), target.http),
            format!("--transport={transport}"),
            format!("--scenario={}", self.scenario),
            format!("--variant={}", self.variant),
            format!("--topic={}", self.topic),
            format!("--clients={}", self.clients),
            format!("--subscribers={}", self.subscribers),
            format!("--messages={}", self.n),
            format!("--interval-us={}", self.interval_us),
            format!("--payload-bytes={}", self.payload),
            format!("--timeout-ms={}", self.timeout_ms),
            format!("--out={}", out.display()),
        ];
        if let Some(tcp) = target.tcp {
            args.push(format!("--tcp-target={tcp}"));
        }
        if let Some(source) = target.source {
            args.push(format!("--source={source}"));
        }
        if target.tls.is_some() {
            // The child encrypts exactly as this process would; on loopback against the run's
            // own server, skipping the certificate check changes no cost.
            args.push("--insecure".to_owned());
        }
        args
    }
}

/// Clients that subscribed, and what connecting them took.
struct Subscribers {
    sessions: Vec<Box<dyn Session>>,
    /// Per connection: from starting the TCP connect to the acknowledgement.
    connect: LatencyHistogram,
    /// From the first connect to the last acknowledgement.
    all_live: Duration,
    error: Option<String>,
}

async fn subscribe_timed(
    driver: &dyn Driver,
    target: &Target,
    topic: &str,
    timeout: Duration,
) -> Result<(Box<dyn Session>, Duration), String> {
    let start = Instant::now();
    match tokio::time::timeout(timeout, driver.subscribe(target, topic)).await {
        Ok(Ok(session)) => Ok((session, start.elapsed())),
        Ok(Err(e)) => Err(format!("subscribe: {e}")),
        Err(_) => Err(format!(
            "subscribe: no acknowledgement within {} ms",
            timeout.as_millis()
        )),
    }
}

/// Subscribes `clients` connections to `topic`, `concurrency` at a time. Stops at the first
/// failure (an open-files limit, a refused connection) and says which.
async fn open_subscribers(
    driver: &dyn Driver,
    target: &Target,
    topic: &str,
    clients: u64,
    concurrency: usize,
    timeout: Duration,
) -> Subscribers {
    let start = Instant::now();
    let mut out = Subscribers {
        sessions: Vec::with_capacity(clients as usize),
        connect: LatencyHistogram::new(),
        all_live: Duration::ZERO,
        error: None,
    };
    let mut opened = stream::iter(0..clients)
        .map(|_| subscribe_timed(driver, target, topic, timeout))
        .buffer_unordered(concurrency.max(1));
    while let Some(result) = opened.next().await {
        match result {
            Ok((session, took)) => {
                out.connect.record(took);
                out.sessions.push(session);
            }
            Err(e) => {
                out.error = Some(format!(
                    "{e} (after {} of {clients} clients)",
                    out.sessions.len()
                ));
                break;
            }
        }
    }
    out.all_live = start.elapsed();
    out
}

/// Sends the broadcast plan (`POST /broadcast`); 202 starts it, 200 means another process did.
pub async fn post_plan(target: &Target, plan: &BroadcastPlan) -> Result<(), DriverError> {
    let mut connection = Http1Connection::connect(target, &WireCounter::default()).await?;
    let body = serde_json::to_vec(plan)
        .map_err(|e| DriverError::Protocol(format!("broadcast plan: {e}")))?;
    connection
        .exchange(Method::POST, "/broadcast", Bytes::from(body), &[200, 202])
        .await?;
    Ok(())
}

/// What one subscriber received.
struct Received {
    latencies_ns: Vec<u64>,
    integrity: Integrity,
    last_ns: u64,
    error: Option<String>,
}

async fn receive(
    session: &mut dyn Session,
    spec: &BroadcastSpec,
    first_wait: Duration,
) -> Received {
    let n = spec.n;
    let mut seen = vec![false; n as usize];
    let mut out = Received {
        latencies_ns: Vec::with_capacity(n as usize),
        integrity: Integrity {
            sent: n,
            ..Integrity::default()
        },
        last_ns: 0,
        error: None,
    };
    let mut highest: Option<u64> = None;
    while out.integrity.received < n {
        let wait = if highest.is_none() {
            first_wait
        } else {
            spec.timeout()
        };
        let message = match tokio::time::timeout(wait, session.recv()).await {
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => {
                out.error = Some(format!(
                    "server closed the subscription after {} of {n} messages",
                    out.integrity.received
                ));
                break;
            }
            Ok(Err(e)) => {
                out.error = Some(format!("receive: {e}"));
                break;
            }
            Err(_) => {
                out.error = Some(format!(
                    "no message for {} ms after {} of {n}",
                    wait.as_millis(),
                    out.integrity.received
                ));
                break;
            }
        };
        let now = mono_ns();
        let meta = match decode_reply(&message, spec.payload) {
            Ok(meta) => meta,
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        };
        let Some(slot) = seen.get_mut(meta.seq as usize) else {
            out.error = Some(format!(
                "message {} was never broadcast (n = {n})",
                meta.seq
            ));
            break;
        };
        if *slot {
            out.integrity.duplicated += 1;
            continue;
        }
        *slot = true;
        out.integrity.received += 1;
        if highest.is_some_and(|h| meta.seq < h) {
            out.integrity.out_of_order += 1;
        }
        highest = highest.max(Some(meta.seq));
        out.latencies_ns.push(now.saturating_sub(meta.ts));
        out.last_ns = now;
    }
    out.integrity.lost = out.integrity.sent - out.integrity.received;
    out
}

/// Runs this process's share of one broadcast case: subscribe `spec.clients` clients, send the
/// plan, receive every message on every client. Latency is from each message's scheduled send
/// time to its receipt by each client.
pub async fn run_broadcast_case(
    driver: &dyn Driver,
    target: &Target,
    spec: &BroadcastSpec,
) -> Measurement {
    let mut case = CaseResult::new(&spec.scenario, driver.transport().id(), &spec.variant);
    case.params.n = Some(spec.n);
    case.params.clients = Some(spec.clients);
    case.params.payload_bytes = Some(spec.payload as u64);
    case.params.interval_us = Some(spec.interval_us);
    case.params.processes = Some(1);
    case.params.rate = 1_000_000u64.checked_div(spec.interval_us);
    let mut subscribers = open_subscribers(
        driver,
        target,
        &spec.topic,
        spec.clients,
        CONNECT_CONCURRENCY,
        spec.timeout(),
    )
    .await;
    case.metrics.connect_ms = Some(ms(subscribers.all_live));
    case.integrity.sent = spec.n * spec.clients;
    case.integrity.lost = case.integrity.sent;
    let mut latency = LatencyHistogram::new();
    if let Some(error) = subscribers.error.take() {
        case.error = Some(error);
        close_all(subscribers.sessions, spec.timeout()).await;
        return Measurement { case, latency };
    }
    if let Err(e) = post_plan(target, &spec.plan()).await {
        case.error = Some(format!("POST /broadcast: {e}"));
        close_all(subscribers.sessions, spec.timeout()).await;
        return Measurement { case, latency };
    }
    let started = mono_ns();
    // The first message may wait for other processes' clients to join.
    let first_wait = spec.timeout() * 2;
    let received: Vec<Received> = subscribers
        .sessions
        .iter_mut()
        .map(|s| receive(s.as_mut(), spec, first_wait))
        .collect::<FuturesUnordered<_>>()
        .collect()
        .await;
    let (mut up, mut down) = (0, 0);
    let mut connections = Some(std::collections::HashSet::new());
    for session in &subscribers.sessions {
        let wire = session.wire();
        up += wire.up;
        down += wire.down;
        // Counted only when every session says which connection carries it.
        match (session.connection_id(), connections.as_mut()) {
            (Some(id), Some(ids)) => {
                ids.insert(id);
            }
            _ => connections = None,
        }
    }
    case.metrics.connections = connections.map(|ids| ids.len() as u64);
    close_all(subscribers.sessions, spec.timeout()).await;

    let mut integrity = Integrity::default();
    let mut last = started;
    for r in &received {
        integrity.add(&r.integrity);
        last = last.max(r.last_ns);
        for &ns in &r.latencies_ns {
            latency.record(Duration::from_nanos(ns));
        }
        if case.error.is_none() {
            case.error.clone_from(&r.error);
        }
    }
    case.integrity = integrity;
    let elapsed_ms = (last - started) as f64 / 1e6;
    let m = &mut case.metrics;
    m.elapsed_ms = Some(elapsed_ms);
    if elapsed_ms > 0.0 {
        m.msgs_per_s = Some(case.integrity.received as f64 / (elapsed_ms / 1000.0));
        m.bytes_per_s = Some(m.msgs_per_s.unwrap_or(0.0) * spec.payload as f64);
    }
    m.wire_bytes_up = Some(up);
    m.wire_bytes_down = Some(down);
    latency.fill(m);
    case.histogram = (!latency.is_empty()).then(|| latency.to_base64());
    Measurement { case, latency }
}

async fn close_all(sessions: Vec<Box<dyn Session>>, timeout: Duration) {
    let closing = sessions
        .into_iter()
        .map(|s| tokio::time::timeout(timeout, s.close()))
        .collect::<FuturesUnordered<_>>();
    closing.for_each(|_| async {}).await;
}

/// Combines the parts of one broadcast case measured by several processes: clients, counts
/// and wire bytes summed, histograms merged (percentiles recomputed from the merge), the
/// slowest process's times. Every part must carry its histogram.
pub fn merge_parts(parts: &[CaseResult]) -> Result<Measurement, String> {
    let first = parts.first().ok_or("nothing to merge")?;
    let mut case = first.clone();
    let mut latency = LatencyHistogram::new();
    let mut integrity = Integrity::default();
    let (mut clients, mut processes, mut up, mut down) = (0, 0, 0, 0);
    let (mut elapsed, mut connect, mut rate) = (0.0f64, 0.0f64, 0.0f64);
    case.error = None;
    for part in parts {
        if (&part.scenario, &part.transport, &part.variant)
            != (&first.scenario, &first.transport, &first.variant)
        {
            return Err(format!(
                "cannot merge {}/{}/{} with {}/{}/{}",
                part.scenario,
                part.transport,
                part.variant,
                first.scenario,
                first.transport,
                first.variant
            ));
        }
        if let Some(text) = &part.histogram {
            latency.merge(&LatencyHistogram::from_base64(text)?);
        } else if part.integrity.received > 0 {
            return Err(format!(
                "a {}/{} part has {} messages but no histogram: merging it would lose them",
                part.scenario, part.transport, part.integrity.received
            ));
        }
        integrity.add(&part.integrity);
        clients += part.params.clients.unwrap_or(0);
        processes += part.params.processes.unwrap_or(1);
        let m = &part.metrics;
        up += m.wire_bytes_up.unwrap_or(0);
        down += m.wire_bytes_down.unwrap_or(0);
        elapsed = elapsed.max(m.elapsed_ms.unwrap_or(0.0));
        connect = connect.max(m.connect_ms.unwrap_or(0.0));
        rate += m.msgs_per_s.unwrap_or(0.0);
        if case.error.is_none() {
            case.error.clone_from(&part.error);
        }
    }
    case.integrity = integrity;
    case.params.clients = Some(clients);
    case.params.processes = Some(processes);
    let payload = case.params.payload_bytes.unwrap_or(0) as f64;
    let m = &mut case.metrics;
    m.elapsed_ms = Some(elapsed);
    m.connect_ms = Some(connect);
    m.msgs_per_s = Some(rate);
    m.bytes_per_s = Some(rate * payload);
    m.wire_bytes_up = Some(up);
    m.wire_bytes_down = Some(down);
    (m.mean_us, m.p50_us, m.p90_us, m.p99_us, m.p999_us, m.max_us) =
        (None, None, None, None, None, None);
    latency.fill(m);
    case.histogram = (!latency.is_empty()).then(|| latency.to_base64());
    Ok(Measurement { case, latency })
}

/// Runs the `latency` scenario: per client count, every transport in turn.
pub async fn run_latency(
    config: &LatencyConfig,
    drivers: &DriverSet,
    target: &Target,
    on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
) -> Vec<CaseResult> {
    let label = |clients: &u64| format!("latency clients={clients} rate={}/s", config.rate);
    let run = async |&clients: &u64| {
        let mut out = Vec::with_capacity(config.transports.len());
        for &t in &config.transports {
            let spec = BroadcastSpec {
                scenario: "latency".into(),
                variant: "paced".into(),
                topic: unique_topic("latency"),
                clients,
                subscribers: clients,
                n: config.messages(),
                interval_us: 1_000_000 / config.rate,
                payload: config.payload_bytes,
                timeout_ms: config.timeout_ms,
                ..BroadcastSpec::default()
            };
            out.push(match drivers.get(t) {
                Some(d) => run_broadcast_case(d, target, &spec).await,
                None => crate::runner::missing(CaseResult::new("latency", t.id(), "paced")),
            });
        }
        out
    };
    run_groups(&config.clients, config.repeats, label, run, on_event).await
}

/// Runs one fan-out case in this process, or across driver processes (`exe drive ...`) when
/// `clients` is above what one process's open-files limit allows.
pub async fn run_fanout_case(
    driver: &dyn Driver,
    target: &Target,
    spec: &BroadcastSpec,
    processes: u64,
    exe: Option<&Path>,
) -> Measurement {
    let transport = driver.transport();
    let mut failed = CaseResult::new(&spec.scenario, transport.id(), &spec.variant);
    failed.params.clients = Some(spec.clients);
    failed.params.n = Some(spec.n);
    failed.params.processes = Some(processes.max(1));
    failed.integrity.sent = spec.clients * spec.n;
    failed.integrity.lost = failed.integrity.sent;
    // The server's end of every connection lives in this process (and, in-process, the
    // client's too): refuse up front rather than let connections time out one by one.
    let per_client = if processes == 0 { 2 } else { 1 };
    let needed = spec
        .clients
        .saturating_mul(per_client)
        .saturating_add(FILES_SPARE);
    let limit = crate::driver::open_files_limit();
    if target.http.ip().is_loopback() && needed > limit {
        let advice = if processes == 0 {
            "lower --in-process-max so driver processes take the clients, or raise `ulimit -n`"
        } else {
            "use fewer clients, raise `ulimit -n`, or run the server alone (`pushbench serve`) and the clients with `pushbench drive`"
        };
        failed.error = Some(format!(
            "{} clients need about {needed} open files in this process ({}), over its limit of {limit}: {advice}",
            spec.clients,
            if processes == 0 {
                "server and clients"
            } else {
                "the server's side"
            }
        ));
        return Measurement {
            case: failed,
            latency: LatencyHistogram::new(),
        };
    }
    if processes == 0 {
        return run_broadcast_case(driver, target, spec).await;
    }
    let Some(exe) = exe else {
        failed.error = Some(format!(
            "{} clients need {processes} driver processes, but no pushbench executable was given to run them",
            spec.clients
        ));
        return Measurement {
            case: failed,
            latency: LatencyHistogram::new(),
        };
    };
    match drive_processes(exe, transport, target, spec, processes).await {
        Ok(parts) => match merge_parts(&parts) {
            Ok(measurement) => measurement,
            Err(e) => {
                failed.error = Some(format!("merging driver processes: {e}"));
                Measurement {
                    case: failed,
                    latency: LatencyHistogram::new(),
                }
            }
        },
        Err(e) => {
            failed.error = Some(e);
            Measurement {
                case: failed,
                latency: LatencyHistogram::new(),
            }
        }
    }
}

/// A loopback source address per driver process, each with its own ephemeral ports; other
/// targets keep the kernel's choice.
fn source_for(target: &Target, process: u64) -> Option<IpAddr> {
    match target.http.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => Some(IpAddr::V4(loopback_source(process))),
        _ => target.source,
    }
}

/// The loopback address driver process `process` of this run connects from: 127.X.Y.(2 +
/// process), with X.Y taken from this process's id. A source address bound before `connect`
/// holds its port while the closed connection sits in TIME_WAIT (60 s), so two runs of 19 000
/// clients from the same addresses within a minute ran out of ports; each run gets fresh ones.
pub fn loopback_source(process: u64) -> std::net::Ipv4Addr {
    let [.., x, y] = std::process::id().to_be_bytes();
    std::net::Ipv4Addr::new(127, x, y, 2 + (process % 250) as u8)
}

/// Runs `processes` driver processes sharing `spec.clients`; each writes its part as a run
/// directory. The first process that fails stops the others (they are killed on drop) and its
/// error (the last line it printed) is returned.
async fn drive_processes(
    exe: &Path,
    transport: Transport,
    target: &Target,
    spec: &BroadcastSpec,
    processes: u64,
) -> Result<Vec<CaseResult>, String> {
    let dir = std::env::temp_dir().join(unique_topic("pushbench-drive"));
    let mut running = FuturesUnordered::new();
    let mut assigned = 0;
    for process in 0..processes {
        let clients = (spec.clients - assigned).div_ceil(processes - process);
        assigned += clients;
        let part = BroadcastSpec {
            clients,
            ..spec.clone()
        };
        let out: PathBuf = dir.join(format!("part-{process}"));
        let mut target = target.clone();
        target.source = source_for(&target, process);
        let child = tokio::process::Command::new(exe)
            .args(part.drive_args(transport, &target, &out))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start driver process {}: {e}", exe.display()))?;
        running.push(async move {
            let output = child.wait_with_output().await;
            (process, out, output)
        });
    }
    let mut parts = Vec::new();
    while let Some((process, out, output)) = running.next().await {
        let output = output.map_err(|e| format!("driver process {process}: {e}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!(
                "driver process {process} failed ({}): {last}",
                output.status
            ));
        }
        let file = RunFile::read(&out).map_err(|e| format!("driver process {process}: {e}"))?;
        parts.extend(file.cases);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(parts)
}

/// Runs the `fanout` scenario: per client count, every transport in turn (in driver processes
/// above `config.in_process_max`); then, per transport, bisects towards the largest client
/// count whose p99 stays under 100 ms (`variant: "search"`).
pub async fn run_fanout(
    config: &FanoutConfig,
    drivers: &DriverSet,
    target: &Target,
    exe: Option<&Path>,
    on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
) -> Vec<CaseResult> {
    let spec = |clients: u64, variant: &str| BroadcastSpec {
        scenario: "fanout".into(),
        variant: variant.into(),
        topic: unique_topic("fanout"),
        clients,
        subscribers: clients,
        n: config.broadcasts,
        interval_us: config.interval_ms * 1000,
        payload: config.payload_bytes,
        timeout_ms: config.timeout_ms,
        ..BroadcastSpec::default()
    };
    let one = async |t: Transport, clients: u64, variant: &str| match drivers.get(t) {
        Some(d) => {
            let processes = config.processes(clients);
            run_fanout_case(d, target, &spec(clients, variant), processes, exe).await
        }
        None => crate::runner::missing(CaseResult::new("fanout", t.id(), variant)),
    };
    let label = |clients: &u64| match config.processes(*clients) {
        0 => format!("fanout clients={clients}"),
        p => format!("fanout clients={clients} in {p} driver processes"),
    };
    let run = async |&clients: &u64| {
        let mut out = Vec::with_capacity(config.transports.len() + 1);
        for &t in &config.transports {
            let mut measured = one(t, clients, "broadcast").await;
            if let (Some(_), Transport::Sse) = (config.http2, t) {
                measured.case.params.http = Some("1.1".into());
                measured.case.params.streams_per_connection = Some(1);
            }
            out.push(measured);
        }
        if let Some(m) = config.http2 {
            out.push(run_http2_case(drivers, target, &spec(clients, "http2"), m).await);
        }
        out
    };
    let mut results = run_groups(&config.clients, config.repeats, label, run, on_event).await;
    for &t in &config.transports {
        let mut points: Vec<(u64, bool)> = results
            .iter()
            .filter(|c| c.transport == t.id() && c.variant != "http2")
            .filter_map(|c| Some((c.params.clients?, passes(c))))
            .collect();
        for _ in 0..config.search_steps {
            points.sort_unstable();
            let Some(next) = bisect(&points) else { break };
            on_event(RunEvent::GroupStarted {
                label: format!("fanout search {t} clients={next}"),
                done: 0,
                total: 0,
            });
            let measured = one(t, next, "search").await;
            points.push((next, passes(&measured.case)));
            results.push(measured.case);
            on_event(RunEvent::CaseMeasured {
                index: results.len() - 1,
                case: &results[results.len() - 1],
            });
        }
    }
    results
}

/// Runs one fan-out case of SSE over HTTP/2, `streams_per_connection` streams per connection,
/// in this process: its ceil(C / M) connections need few descriptors on either side.
async fn run_http2_case(
    drivers: &DriverSet,
    target: &Target,
    spec: &BroadcastSpec,
    streams_per_connection: u32,
) -> Measurement {
    let mut measured = match drivers
        .get(Transport::Sse)
        .and_then(|d| d.http2(streams_per_connection))
    {
        Some(driver) => run_broadcast_case(driver.as_ref(), target, spec).await,
        None => {
            let mut case = CaseResult::new(&spec.scenario, Transport::Sse.id(), &spec.variant);
            case.params.clients = Some(spec.clients);
            case.params.n = Some(spec.n);
            case.error = Some("the SSE driver of this run has no HTTP/2 mode".into());
            Measurement {
                case,
                latency: LatencyHistogram::new(),
            }
        }
    };
    measured.case.params.http = Some("2".into());
    measured.case.params.streams_per_connection = Some(u64::from(streams_per_connection));
    measured
}

/// True when a fan-out case delivered everything with a p99 under 100 ms.
pub fn passes(case: &CaseResult) -> bool {
    case.is_ok() && case.metrics.p99_us.is_some_and(|p99| p99 < INSTANT_US)
}

/// The next client count to try: between the largest passing count and the smallest failing
/// count above it (geometric middle), if they are far enough apart to matter.
fn bisect(points: &[(u64, bool)]) -> Option<u64> {
    let pass = points.iter().filter(|p| p.1).map(|p| p.0).max()?;
    let fail = points
        .iter()
        .filter(|p| !p.1 && p.0 > pass)
        .map(|p| p.0)
        .min()?;
    let next = ((pass as f64 * fail as f64).sqrt()).round() as u64;
    (fail - pass > pass / 10 && next > pass && next < fail).then_some(next)
}

/// Runs the `connect` scenario: per transport, `connections` made one after another (each
/// timed from TCP connect to the server's first message), then each ramp (C at once).
pub async fn run_connect(
    config: &ConnectConfig,
    drivers: &DriverSet,
    target: &Target,
    on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
) -> Vec<CaseResult> {
    // Group 0 is the sequential connections; then one group per ramp size.
    let groups: Vec<Option<u64>> = std::iter::once(None)
        .chain(config.ramp.iter().map(|&c| Some(c)))
        .collect();
    let label = |g: &Option<u64>| match g {
        None => format!("connect {} one after another", config.connections),
        Some(c) => format!("connect ramp of {c}"),
    };
    let timeout = Duration::from_millis(config.timeout_ms);
    let run = async |group: &Option<u64>| {
        let mut out = Vec::with_capacity(config.transports.len());
        for &t in &config.transports {
            let variant = if group.is_some() {
                "ramp"
            } else {
                "first-message"
            };
            let Some(driver) = drivers.get(t) else {
                out.push(crate::runner::missing(CaseResult::new(
                    "connect",
                    t.id(),
                    variant,
                )));
                continue;
            };
            let (clients, concurrency) = match *group {
                None => (config.connections, 1),
                Some(c) => (c, c as usize),
            };
            out.push(connect_case(driver, target, variant, clients, concurrency, timeout).await);
        }
        out
    };
    run_groups(&groups, config.repeats, label, run, on_event).await
}

async fn connect_case(
    driver: &dyn Driver,
    target: &Target,
    variant: &str,
    clients: u64,
    concurrency: usize,
    timeout: Duration,
) -> Measurement {
    let topic = unique_topic("connect");
    let mut case = CaseResult::new("connect", driver.transport().id(), variant);
    if concurrency > 1 {
        case.params.clients = Some(clients);
    } else {
        case.params.n = Some(clients);
    }
    let subscribers = if concurrency > 1 {
        open_subscribers(driver, target, &topic, clients, concurrency, timeout).await
    } else {
        // One at a time, each closed before the next: the cost of a fresh connection.
        let start = Instant::now();
        let mut one = Subscribers {
            sessions: Vec::new(),
            connect: LatencyHistogram::new(),
            all_live: Duration::ZERO,
            error: None,
        };
        for i in 0..clients {
            match subscribe_timed(driver, target, &topic, timeout).await {
                Ok((session, took)) => {
                    one.connect.record(took);
                    let _ = tokio::time::timeout(timeout, session.close()).await;
                }
                Err(e) => {
                    one.error = Some(format!("{e} (after {i} of {clients} connections)"));
                    break;
                }
            }
        }
        one.all_live = start.elapsed();
        one
    };
    let live = subscribers.connect.len();
    case.integrity = Integrity {
        sent: clients,
        received: live,
        lost: clients - live,
        ..Integrity::default()
    };
    case.error = subscribers.error;
    let m = &mut case.metrics;
    m.elapsed_ms = Some(ms(subscribers.all_live));
    if subscribers.all_live > Duration::ZERO {
        m.conns_per_s = Some(live as f64 / subscribers.all_live.as_secs_f64());
    }
    let mut up_down = (0, 0);
    for s in &subscribers.sessions {
        let w = s.wire();
        up_down = (up_down.0 + w.up, up_down.1 + w.down);
    }
    if !subscribers.sessions.is_empty() {
        (m.wire_bytes_up, m.wire_bytes_down) = (Some(up_down.0), Some(up_down.1));
    }
    subscribers.connect.fill(m);
    close_all(subscribers.sessions, timeout).await;
    // An empty broadcast ends the topic, so the server forgets these subscriptions.
    let _ = post_plan(
        target,
        &BroadcastPlan {
            topic,
            subscribers: 0,
            n: 0,
            interval_us: 0,
            payload: 0,
            wait_ms: 0,
            stall_before: None,
            stall_ms: 0,
        },
    )
    .await;
    Measurement {
        latency: subscribers.connect,
        case,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_processes_connect_from_distinct_loopback_addresses_other_than_the_servers() {
        let sources: Vec<_> = (0..250).map(loopback_source).collect();
        let distinct: std::collections::HashSet<_> = sources.iter().collect();
        assert_eq!(distinct.len(), 250);
        for ip in &sources {
            assert!(ip.is_loopback(), "{ip}");
            assert_ne!(*ip, std::net::Ipv4Addr::LOCALHOST);
        }
        // Every address binds here, as a driver process binds it before connecting.
        let socket = std::net::TcpListener::bind((sources[249], 0)).expect("bind");
        assert_eq!(socket.local_addr().expect("addr").ip(), sources[249]);
    }

    #[test]
    fn bisect_narrows_between_the_last_pass_and_the_first_fail() {
        assert_eq!(
            bisect(&[(100, true), (1000, true), (10_000, false)]),
            Some(3162)
        );
        assert_eq!(bisect(&[(100, true), (1000, true)]), None, "nothing failed");
        assert_eq!(bisect(&[(1, false), (10, false)]), None, "nothing passed");
        assert_eq!(bisect(&[(1000, true), (1050, false)]), None, "close enough");
    }

    #[test]
    fn merged_parts_sum_counts_and_merge_histograms() {
        let part = |clients: u64, us: &[u64]| {
            let mut case = CaseResult::new("fanout", "ws", "broadcast");
            case.params.clients = Some(clients);
            case.params.processes = Some(1);
            let mut h = LatencyHistogram::new();
            for &u in us {
                h.record(Duration::from_micros(u));
            }
            case.integrity = Integrity {
                sent: us.len() as u64,
                received: us.len() as u64,
                ..Integrity::default()
            };
            case.histogram = Some(h.to_base64());
            case
        };
        let merged = merge_parts(&[part(2, &[100, 200]), part(3, &[300, 400, 5000])]).unwrap();
        assert_eq!(merged.case.params.clients, Some(5));
        assert_eq!(merged.case.params.processes, Some(2));
        assert_eq!(merged.case.integrity.received, 5);
        assert_eq!(merged.latency.len(), 5);
        let max = merged.case.metrics.max_us.unwrap();
        assert!((max - 5000.0).abs() < 5.0, "{max}");
        let mut other = part(1, &[1]);
        other.transport = "sse".into();
        assert!(merge_parts(&[part(1, &[1]), other]).is_err());
        let mut bare = part(1, &[1]);
        bare.histogram = None;
        assert!(merge_parts(&[bare]).unwrap_err().contains("no histogram"));
    }
}

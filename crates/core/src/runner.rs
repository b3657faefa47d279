//! The runner: executes scenarios through [`Driver`]s and turns what it measured into schema
//! results. Benches, the CLI and tests all call these functions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::future::join_all;
use pushbench_schema::{CaseResult, Integrity};

use crate::cpu::{Threads, thread_cpu_seconds};
use crate::driver::{Driver, Session, Target};
use crate::scenario::{
    PayloadConfig, PushConfig, RoundtripConfig, StudyConfig, StudyGroup, StudyVariant,
};
use crate::stats::LatencyHistogram;
use crate::study::{
    Flush, PushRequest, decode_binary, decode_reply, encode_call, encode_push, mono_ns,
};
use crate::transport::Transport;

/// The drivers a run may use, one per transport.
#[derive(Clone, Default)]
pub struct DriverSet {
    drivers: Vec<Arc<dyn Driver>>,
}

impl DriverSet {
    /// A set holding `drivers`.
    pub fn new(drivers: Vec<Arc<dyn Driver>>) -> Self {
        DriverSet { drivers }
    }

    /// The set with every driver wrapped by `wrap` (to observe or alter what they do).
    pub fn map(&self, wrap: impl Fn(Arc<dyn Driver>) -> Arc<dyn Driver>) -> DriverSet {
        DriverSet {
            drivers: self.drivers.iter().cloned().map(wrap).collect(),
        }
    }

    /// The driver for `transport`, if the set has one.
    pub fn get(&self, transport: Transport) -> Option<&dyn Driver> {
        self.drivers
            .iter()
            .find(|d| d.transport() == transport)
            .map(|d| d.as_ref())
    }
}

/// One run of one case: the schema result plus the raw histogram, so repeats and processes can
/// be merged without loss.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The result, metrics filled from this run alone.
    pub case: CaseResult,
    /// Per-message latencies of this run.
    pub latency: LatencyHistogram,
}

impl Measurement {
    /// The case's wall time.
    pub fn elapsed(&self) -> Duration {
        Duration::from_secs_f64(self.case.metrics.elapsed_ms.unwrap_or(0.0) / 1000.0)
    }
}

/// Counts replies by sequence number: received, duplicated, out of order.
#[derive(Debug, Default)]
struct SeqTracker {
    seen: Vec<bool>,
    highest: Option<u64>,
    integrity: Integrity,
}

impl SeqTracker {
    fn sent(&mut self) {
        self.sent_many(1);
    }

    /// Records `n` messages sent.
    fn sent_many(&mut self, n: u64) {
        self.integrity.sent += n;
        self.seen.resize(self.seen.len() + n as usize, false);
    }

    /// Records a reply; an error for a sequence number that was never sent.
    fn observe(&mut self, seq: u64) -> Result<(), String> {
        let Some(seen) = self.seen.get_mut(seq as usize) else {
            return Err(format!("reply to call {seq}, which was never sent"));
        };
        if *seen {
            self.integrity.duplicated += 1;
            return Ok(());
        }
        *seen = true;
        self.integrity.received += 1;
        if self.highest.is_some_and(|h| seq < h) {
            self.integrity.out_of_order += 1;
        }
        self.highest = self.highest.max(Some(seq));
        Ok(())
    }

    fn finish(mut self) -> Integrity {
        self.integrity.lost = self.integrity.sent - self.integrity.received;
        self.integrity
    }
}

/// Consecutive unanswered calls after which a case gives up.
const MAX_CONSECUTIVE_TIMEOUTS: u32 = 3;

/// Runs one study case: connect, then `n` sequential calls, the clock started before connect
/// and stopped at the last reply. Never panics on a bad peer: failures land in `case.error`,
/// with everything measured up to that point.
pub async fn run_study_case(
    driver: &dyn Driver,
    target: &Target,
    n: u64,
    block_size: usize,
    call_timeout: Duration,
    variant: StudyVariant,
) -> Measurement {
    let mut case = CaseResult::new("study", driver.transport().id(), variant.id());
    case.params.n = Some(n);
    case.params.block_size = Some(block_size as u64);
    let mut latency = LatencyHistogram::new();
    let mut tracker = SeqTracker::default();
    let mut bytes_loaded = 0u64;

    let start = Instant::now();
    let session = match tokio::time::timeout(call_timeout, driver.connect(target)).await {
        Ok(Ok(session)) => Some(session),
        Ok(Err(e)) => {
            case.error = Some(format!("connect: {e}"));
            None
        }
        Err(_) => {
            case.error = Some(format!(
                "connect: no session within {} ms",
                call_timeout.as_millis()
            ));
            None
        }
    };
    let connect = start.elapsed();
    let mut wire = Default::default();
    if let Some(mut session) = session {
        let calls = StudyCalls {
            block_size,
            call_timeout,
            tracker: &mut tracker,
            latency: &mut latency,
        };
        let outcome = calls.run(session.as_mut(), n, &mut bytes_loaded).await;
        let elapsed = start.elapsed();
        wire = session.wire();
        // Closing is outside the clock (the study stops at the last reply) and its failure
        // does not change what was measured.
        let _ = tokio::time::timeout(call_timeout, session.close()).await;
        case.error = outcome.err();
        case.metrics.elapsed_ms = Some(ms(elapsed));
    } else {
        case.metrics.elapsed_ms = Some(ms(start.elapsed()));
    }

    case.integrity = tracker.finish();
    let m = &mut case.metrics;
    m.connect_ms = Some(ms(connect));
    let secs = m.elapsed_ms.unwrap_or(0.0) / 1000.0;
    if secs > 0.0 {
        m.calls_per_s = Some(case.integrity.received as f64 / secs);
    }
    m.bytes_loaded = Some(bytes_loaded);
    m.wire_bytes_up = Some(wire.up);
    m.wire_bytes_down = Some(wire.down);
    latency.fill(m);
    Measurement { case, latency }
}

struct StudyCalls<'a> {
    block_size: usize,
    call_timeout: Duration,
    tracker: &'a mut SeqTracker,
    latency: &'a mut LatencyHistogram,
}

impl StudyCalls<'_> {
    async fn run(
        self,
        session: &mut dyn Session,
        n: u64,
        bytes_loaded: &mut u64,
    ) -> Result<(), String> {
        let mut timeouts = 0u32;
        for seq in 0..n {
            let call = encode_call(seq, self.block_size);
            let sent_at = Instant::now();
            session
                .send(&call)
                .await
                .map_err(|e| format!("call {seq}: send: {e}"))?;
            self.tracker.sent();
            loop {
                let reply = match tokio::time::timeout(self.call_timeout, session.recv()).await {
                    Err(_) => {
                        timeouts += 1;
                        if timeouts >= MAX_CONSECUTIVE_TIMEOUTS {
                            return Err(format!(
                                "no reply to {timeouts} consecutive calls (up to call {seq}) within {} ms each",
                                self.call_timeout.as_millis()
                            ));
                        }
                        break;
                    }
                    Ok(Err(e)) => return Err(format!("call {seq}: receive: {e}")),
                    Ok(Ok(None)) => {
                        return Err(format!(
                            "server closed the session after {} of {n} replies",
                            self.tracker.integrity.received
                        ));
                    }
                    Ok(Ok(Some(reply))) => reply,
                };
                *bytes_loaded += reply.len() as u64;
                let meta = decode_reply(&reply, self.block_size)
                    .map_err(|e| format!("call {seq}: {e}"))?;
                self.tracker.observe(meta.seq)?;
                if meta.seq == seq {
                    self.latency.record(sent_at.elapsed());
                    timeouts = 0;
                    break;
                }
            }
        }
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs one repeat of a group: each transport alone in turn, or all at once concurrently.
/// A transport without a driver yields a case with an error.
pub async fn run_study_group(
    drivers: &DriverSet,
    target: &Target,
    group: &StudyGroup,
    config: &StudyConfig,
) -> Vec<Measurement> {
    let run = |t: Transport| async move {
        match drivers.get(t) {
            Some(d) => {
                run_study_case(
                    d,
                    target,
                    group.n,
                    config.block_size,
                    config.call_timeout(),
                    group.variant,
                )
                .await
            }
            None => missing_driver(t, group),
        }
    };
    match group.variant {
        StudyVariant::Sequential => {
            let mut out = Vec::with_capacity(group.transports.len());
            for &t in &group.transports {
                out.push(run(t).await);
            }
            out
        }
        StudyVariant::AllAtOnce => join_all(group.transports.iter().map(|&t| run(t))).await,
    }
}

fn missing_driver(t: Transport, group: &StudyGroup) -> Measurement {
    let mut case = CaseResult::new("study", t.id(), group.variant.id());
    case.params.n = Some(group.n);
    missing(case)
}

/// Merges repeats of one case: the median run's figures, the range of elapsed times, the
/// latency histograms merged and the integrity counts summed. The first error is kept.
pub fn combine(runs: &[Measurement]) -> Option<CaseResult> {
    let mut by_time: Vec<&Measurement> = runs.iter().collect();
    by_time.sort_by_key(|m| m.elapsed());
    let median = by_time.get(by_time.len().checked_sub(1)? / 2)?;
    let mut case = median.case.clone();
    let mut latency = LatencyHistogram::new();
    let mut integrity = Integrity::default();
    for run in runs {
        latency.merge(&run.latency);
        integrity.add(&run.case.integrity);
        if case.error.is_none() {
            case.error.clone_from(&run.case.error);
        }
    }
    case.integrity = integrity;
    case.params.repeats = Some(runs.len() as u64);
    case.metrics.elapsed_min_ms = by_time.first().and_then(|r| r.case.metrics.elapsed_ms);
    case.metrics.elapsed_max_ms = by_time.last().and_then(|r| r.case.metrics.elapsed_ms);
    latency.fill(&mut case.metrics);
    case.histogram = (!latency.is_empty()).then(|| latency.to_base64());
    Some(case)
}

/// Progress of a run, reported as it goes.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// A group repeat is starting; `done` of `total` group repeats have finished.
    GroupStarted {
        /// Human label, e.g. `study n=1000 sequential`.
        label: String,
        /// Group repeats finished so far.
        done: usize,
        /// Group repeats in the run.
        total: usize,
    },
    /// A case has a new run: `case` combines its runs so far and replaces any earlier
    /// version at `index` of the run's case list (so an interrupted run keeps every run).
    CaseMeasured {
        /// Position of the case in the run's case list.
        index: usize,
        /// The case, all runs so far combined.
        case: &'a CaseResult,
    },
}

/// Runs the whole study: every group, `repeats` times each (repeats of a group run back to
/// back, so drift affects all its transports alike), combined per case after every run.
pub async fn run_study(
    config: &StudyConfig,
    drivers: &DriverSet,
    target: &Target,
    on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
) -> Vec<CaseResult> {
    let groups = config.groups();
    let label = |g: &StudyGroup| format!("study n={} {}", g.n, g.variant.id());
    let run = async |g: &StudyGroup| run_study_group(drivers, target, g, config).await;
    run_groups(&groups, config.repeats, label, run, on_event).await
}

/// Runs the push scenario: per flush policy, every transport in turn, `repeats` times.
pub async fn run_push(
    config: &PushConfig,
    drivers: &DriverSet,
    target: &Target,
    on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
) -> Vec<CaseResult> {
    let label = |flush: &Flush| format!("push n={} {}", config.messages, flush.id());
    let run = async |flush: &Flush| {
        let request = PushRequest {
            n: config.messages,
            payload: config.payload_bytes,
            flush: *flush,
            binary: false,
        };
        let mut out = Vec::with_capacity(config.transports.len());
        for &t in &config.transports {
            out.push(match drivers.get(t) {
                Some(d) => run_push_case(d, target, request, config.timeout()).await,
                None => missing(CaseResult::new("push", t.id(), "stream")),
            });
        }
        out
    };
    run_groups(&config.flush, config.repeats, label, run, on_event).await
}

/// Runs the roundtrip scenario: per client count, every transport in turn, `repeats` times.
pub async fn run_roundtrip(
    config: &RoundtripConfig,
    drivers: &DriverSet,
    target: &Target,
    on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
) -> Vec<CaseResult> {
    let label = |clients: &u64| format!("roundtrip clients={clients}");
    let run = async |&clients: &u64| {
        let mut out = Vec::with_capacity(config.transports.len());
        for &t in &config.transports {
            out.push(match drivers.get(t) {
                Some(d) => run_roundtrip_case(d, target, clients, config).await,
                None => missing(CaseResult::new("roundtrip", t.id(), "concurrent")),
            });
        }
        out
    };
    run_groups(&config.clients, config.repeats, label, run, on_event).await
}

/// Runs one roundtrip case: `clients` sessions at once, each making `round_trips` sequential
/// calls (the study's call with a `payload_bytes` reply). Latency is each call's round trip;
/// the clock runs from the first connect to the last reply of the slowest client.
pub async fn run_roundtrip_case(
    driver: &dyn Driver,
    target: &Target,
    clients: u64,
    config: &RoundtripConfig,
) -> Measurement {
    let variant = StudyVariant::Sequential;
    let (n, payload, timeout) = (config.round_trips, config.payload_bytes, config.timeout());
    let runs = join_all(
        (0..clients).map(|_| run_study_case(driver, target, n, payload, timeout, variant)),
    )
    .await;
    let mut case = CaseResult::new("roundtrip", driver.transport().id(), "concurrent");
    case.params.n = Some(n);
    case.params.clients = Some(clients);
    case.params.payload_bytes = Some(payload as u64);
    let mut latency = LatencyHistogram::new();
    let (mut elapsed, mut connect, mut up, mut down) = (0.0f64, 0.0f64, 0, 0);
    for run in &runs {
        let m = &run.case.metrics;
        latency.merge(&run.latency);
        case.integrity.add(&run.case.integrity);
        elapsed = elapsed.max(m.elapsed_ms.unwrap_or(0.0));
        connect = connect.max(m.connect_ms.unwrap_or(0.0));
        up += m.wire_bytes_up.unwrap_or(0);
        down += m.wire_bytes_down.unwrap_or(0);
        if case.error.is_none() {
            case.error = run
                .case
                .error
                .clone()
                .map(|e| format!("a client failed: {e}"));
        }
    }
    let m = &mut case.metrics;
    m.elapsed_ms = Some(elapsed);
    m.connect_ms = Some(connect);
    if elapsed > 0.0 {
        m.msgs_per_s = Some(case.integrity.received as f64 / (elapsed / 1000.0));
    }
    m.wire_bytes_up = Some(up);
    m.wire_bytes_down = Some(down);
    latency.fill(m);
    Measurement { case, latency }
}

/// Runs each group `repeats` times; after every run, re-combines each of the group's cases
/// and reports it, so an interrupted run keeps every run that finished.
pub async fn run_groups<G>(
    groups: &[G],
    repeats: u32,
    label: impl Fn(&G) -> String,
    run: impl AsyncFn(&G) -> Vec<Measurement>,
    on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
) -> Vec<CaseResult> {
    let total = groups.len() * repeats as usize;
    let mut done = 0;
    let mut results: Vec<CaseResult> = Vec::new();
    for group in groups {
        let first = results.len();
        let mut per_case: Vec<Vec<Measurement>> = Vec::new();
        for _ in 0..repeats {
            on_event(RunEvent::GroupStarted {
                label: label(group),
                done,
                total,
            });
            let measured = run(group).await;
            per_case.resize_with(measured.len(), Vec::new);
            for (i, (runs, m)) in per_case.iter_mut().zip(measured).enumerate() {
                runs.push(m);
                let Some(case) = combine(runs) else { continue };
                let index = first + i;
                match results.get_mut(index) {
                    Some(slot) => *slot = case,
                    None => results.push(case),
                }
                on_event(RunEvent::CaseMeasured {
                    index,
                    case: &results[index],
                });
            }
            done += 1;
        }
    }
    results
}

/// Runs one push case: connect, ask for `request.n` messages, receive them all. The clock runs
/// from the request to the last message; latency is from the server's send to the client's
/// receipt (one process, one monotonic clock).
pub async fn run_push_case(
    driver: &dyn Driver,
    target: &Target,
    request: PushRequest,
    timeout: Duration,
) -> Measurement {
    let mut case = CaseResult::new("push", driver.transport().id(), "stream");
    case.params.n = Some(request.n);
    case.params.payload_bytes = Some(request.payload as u64);
    case.params.flush = Some(request.flush.id().to_owned());
    let mut latency = LatencyHistogram::new();
    let mut tracker = SeqTracker::default();
    let text_only = !driver.transport().carries_binary();
    let start = Instant::now();
    let session = match tokio::time::timeout(timeout, driver.connect(target)).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => return failed(case, format!("connect: {e}"), start),
        Err(_) => {
            return failed(
                case,
                format!("connect: no session within {} ms", timeout.as_millis()),
                start,
            );
        }
    };
    case.metrics.connect_ms = Some(ms(start.elapsed()));
    let mut session = session;
    let cpu_before = (
        thread_cpu_seconds(Threads::Server),
        thread_cpu_seconds(Threads::Client),
    );
    let started = Instant::now();
    // The receive loop runs as a task of the client runtime, on the worker that also drives
    // the connection's I/O task (HTTP drivers spawn one): each message is then a local wake,
    // not a cross-thread futex wake of the `block_on` thread, which cost SSE and long polling
    // ~30 µs of client CPU per message under per_message flushing.
    let receiving = tokio::spawn(async move {
        let outcome = receive_push(
            &mut *session,
            request,
            text_only,
            timeout,
            &mut tracker,
            &mut latency,
        )
        .await;
        (session, tracker, latency, outcome)
    });
    let (session, tracker, latency, outcome) = match receiving.await {
        Ok(done) => done,
        Err(e) => return failed(case, format!("receive task: {e}"), start),
    };
    let elapsed = started.elapsed();
    let cpu_after = (
        thread_cpu_seconds(Threads::Server),
        thread_cpu_seconds(Threads::Client),
    );
    let wire = session.wire();
    let _ = tokio::time::timeout(timeout, session.close()).await;

    case.error = outcome.err();
    case.integrity = tracker.finish();
    let received = case.integrity.received as f64;
    let secs = elapsed.as_secs_f64();
    let per_million = |before: Option<f64>, after: Option<f64>| {
        let spent = after? - before?;
        (received > 0.0).then(|| spent / received * 1e6)
    };
    let m = &mut case.metrics;
    m.elapsed_ms = Some(ms(elapsed));
    if secs > 0.0 {
        m.msgs_per_s = Some(received / secs);
        m.bytes_per_s = Some(received * request.payload as f64 / secs);
    }
    m.wire_bytes_up = Some(wire.up);
    m.wire_bytes_down = Some(wire.down);
    m.server_cpu_s_per_million = per_million(cpu_before.0, cpu_after.0);
    m.client_cpu_s_per_million = per_million(cpu_before.1, cpu_after.1);
    latency.fill(m);
    Measurement { case, latency }
}

/// Messages that share one clock read in [`receive_push`]: a batch handed over at once is
/// stamped with the time it arrived, refreshed every this many messages so that decoding a
/// long batch does not hide in the later messages' latencies (at ~0.1 µs a message, it bounds
/// that to a few µs).
const MESSAGES_PER_CLOCK_READ: u32 = 64;

/// Sends the push request and receives `request.n` messages, counting each in `tracker` and
/// recording its latency. Messages come in batches ([`Session::recv_batch`]: everything the
/// driver already holds); each is decoded, checked and counted on its own, and its latency
/// taken from a clock read when its batch was handed over (see [`MESSAGES_PER_CLOCK_READ`]).
async fn receive_push(
    session: &mut dyn Session,
    request: PushRequest,
    text_only: bool,
    timeout: Duration,
    tracker: &mut SeqTracker,
    latency: &mut LatencyHistogram,
) -> Result<(), String> {
    session
        .send(&encode_push(&request))
        .await
        .map_err(|e| format!("push request: {e}"))?;
    tracker.sent_many(request.n);
    let mut rejected: Option<String> = None;
    while tracker.integrity.received < request.n {
        let mut now = 0;
        let mut since_clock_read = MESSAGES_PER_CLOCK_READ;
        let mut on_message = |message: &[u8]| {
            if since_clock_read == MESSAGES_PER_CLOCK_READ {
                now = mono_ns();
                since_clock_read = 0;
            }
            since_clock_read += 1;
            let checked = decode_pushed(message, &request, text_only)
                .and_then(|meta| tracker.observe(meta.seq).map(|()| meta));
            match checked {
                Ok(meta) => {
                    latency.record(Duration::from_nanos(now.saturating_sub(meta.ts)));
                    true
                }
                Err(e) => {
                    rejected = Some(e);
                    false
                }
            }
        };
        let batch = tokio::time::timeout(timeout, session.recv_batch(&mut on_message)).await;
        if let Some(e) = rejected.take() {
            return Err(e);
        }
        match batch {
            Err(_) => {
                return Err(format!(
                    "no message for {} ms after {} of {}",
                    timeout.as_millis(),
                    tracker.integrity.received,
                    request.n
                ));
            }
            Ok(Err(e)) => return Err(format!("receive: {e}")),
            Ok(Ok(0)) => {
                return Err(format!(
                    "server closed the session after {} of {} messages",
                    tracker.integrity.received, request.n
                ));
            }
            Ok(Ok(_)) => {}
        }
    }
    Ok(())
}

/// Decodes one pushed message: JSON text, or binary (base64 text on the text-only transports).
fn decode_pushed(
    message: &[u8],
    request: &PushRequest,
    text_only: bool,
) -> Result<crate::study::ReplyMeta, String> {
    if !request.binary {
        return decode_reply(message, request.payload).map_err(|e| e.to_string());
    }
    let decoded;
    let bytes = if text_only {
        decoded = BASE64
            .decode(message)
            .map_err(|e| format!("binary message is not base64: {e}"))?;
        &decoded[..]
    } else {
        message
    };
    decode_binary(bytes, request.payload).map_err(|e| e.to_string())
}

/// Runs the payload scenario: per size and kind (text, binary), every transport in turn.
pub async fn run_payload(
    config: &PayloadConfig,
    drivers: &DriverSet,
    target: &Target,
    on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
) -> Vec<CaseResult> {
    let kinds: &[bool] = if config.binary {
        &[false, true]
    } else {
        &[false]
    };
    let groups: Vec<(usize, bool)> = config
        .sizes
        .iter()
        .flat_map(|&size| kinds.iter().map(move |&binary| (size, binary)))
        .collect();
    let kind = |binary: bool| if binary { "binary" } else { "text" };
    let label = |&(size, binary): &(usize, bool)| format!("payload {size} B {}", kind(binary));
    let run = async |&(size, binary): &(usize, bool)| {
        let request = PushRequest {
            n: config.messages(size),
            payload: size,
            flush: Flush::Batched,
            binary,
        };
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut out = Vec::with_capacity(config.transports.len());
        for &t in &config.transports {
            let mut m = match drivers.get(t) {
                Some(d) => run_push_case(d, target, request, timeout).await,
                None => missing(CaseResult::new("payload", t.id(), kind(binary))),
            };
            as_payload_case(&mut m, kind(binary));
            out.push(m);
        }
        out
    };
    run_groups(&groups, config.repeats, label, run, on_event).await
}

/// Relabels a push measurement as a payload case (`variant` text or binary) and adds the wire
/// bytes per payload byte delivered.
pub fn as_payload_case(m: &mut Measurement, kind: &str) {
    m.case.scenario = "payload".into();
    m.case.variant = kind.into();
    let size = m.case.params.payload_bytes.unwrap_or(0);
    let delivered = m.case.integrity.received * size;
    if let (Some(down), true) = (m.case.metrics.wire_bytes_down, delivered > 0) {
        m.case.metrics.wire_per_payload_byte = Some(down as f64 / delivered as f64);
    }
}

fn failed(mut case: CaseResult, error: String, start: Instant) -> Measurement {
    case.error = Some(error);
    case.metrics.elapsed_ms = Some(ms(start.elapsed()));
    Measurement {
        case,
        latency: LatencyHistogram::new(),
    }
}

pub(crate) fn missing(mut case: CaseResult) -> Measurement {
    case.error = Some(format!(
        "no driver for transport {} in this build",
        case.transport
    ));
    Measurement {
        case,
        latency: LatencyHistogram::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_counts_each_fault_once() {
        let mut t = SeqTracker::default();
        for _ in 0..5 {
            t.sent();
        }
        for seq in [0, 2, 1, 2] {
            t.observe(seq).unwrap();
        }
        assert!(t.observe(9).unwrap_err().contains("never sent"));
        let i = t.finish();
        assert_eq!(
            i,
            Integrity {
                sent: 5,
                received: 3,
                lost: 2,
                duplicated: 1,
                out_of_order: 1,
                loss_by_design: false,
            }
        );
    }

    fn run(elapsed: f64, us: u64, lost: u64) -> Measurement {
        let mut case = CaseResult::new("study", "ws", "sequential");
        case.metrics.elapsed_ms = Some(elapsed);
        case.integrity = Integrity {
            sent: 10,
            received: 10 - lost,
            lost,
            ..Integrity::default()
        };
        let mut latency = LatencyHistogram::new();
        latency.record(Duration::from_micros(us));
        Measurement { case, latency }
    }

    #[test]
    fn combine_takes_median_range_and_sums() {
        let case = combine(&[run(30.0, 300, 0), run(10.0, 100, 1), run(20.0, 200, 0)]).unwrap();
        assert_eq!(case.metrics.elapsed_ms, Some(20.0));
        assert_eq!(
            (case.metrics.elapsed_min_ms, case.metrics.elapsed_max_ms),
            (Some(10.0), Some(30.0))
        );
        assert_eq!(case.integrity.sent, 30);
        assert_eq!(case.integrity.lost, 1);
        assert_eq!(case.params.repeats, Some(3));
        let merged = LatencyHistogram::from_base64(case.histogram.as_deref().unwrap()).unwrap();
        assert_eq!(merged.len(), 3);
        assert!(combine(&[]).is_none());
    }
}

//! A real browser as a client: headless Chromium loads `/bench/browser.html` from the
//! in-process server, runs one case with its own `WebSocket`, `EventSource` and `fetch`, and
//! posts what it measured to `/bench/result`; the runner turns that into a case with
//! `params.client = "browser"`. Chromium runs in its own process group, killed (the whole
//! group, by the browser's PID) when the case ends, fails, times out or is interrupted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pushbench_core::broadcast::unique_topic;
use pushbench_core::{
    LatencyHistogram, Measurement, RunEvent, StudyVariant, Transport, run_groups,
};
use pushbench_schema::{CaseResult, Integrity};
use pushbench_server::{BrowserReport, RunningServer};

use crate::Plan;

/// The environment variable naming the Chromium binary to run (overrides the search).
pub const CHROMIUM_ENV: &str = "PUSHBENCH_CHROMIUM";

/// What to do when there is no Chromium.
pub const INSTALL_HINT: &str = "install it with scripts/install-browser.sh (the Debian package `chromium`), or set PUSHBENCH_CHROMIUM to a Chromium binary";

/// The label of browser cases in `params.client`.
pub const BROWSER_CLIENT: &str = "browser";

/// The label of pushbench's own drivers in `params.client` (set when a run names `--client`).
pub const RUST_CLIENT: &str = "rust";

/// The flags Chromium runs with: headless, no GPU, no QUIC (HTTP/1.1 to the server, as the
/// Rust drivers), nothing talking to the network on its own, a throwaway profile.
pub const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Why the browser client cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// No Chromium binary was found.
    #[error("no Chromium found (looked for {looked}); {INSTALL_HINT}")]
    NotFound {
        /// Where it looked.
        looked: String,
    },
}

/// Finds Chromium: `PUSHBENCH_CHROMIUM` if set (it must exist), else `/usr/bin/chromium`, else
/// `chromium` or `chromium-browser` on `PATH`.
pub fn find_chromium() -> Result<PathBuf, BrowserError> {
    if let Some(exe) = std::env::var_os(CHROMIUM_ENV) {
        let exe = PathBuf::from(exe);
        return if exe.is_file() {
            Ok(exe)
        } else {
            Err(BrowserError::NotFound {
                looked: format!("{CHROMIUM_ENV}={}", exe.display()),
            })
        };
    }
    let fixed = Path::new("/usr/bin/chromium");
    if fixed.is_file() {
        return Ok(fixed.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let exe = dir.join(name);
            if exe.is_file() {
                return Ok(exe);
            }
        }
    }
    Err(BrowserError::NotFound {
        looked: "/usr/bin/chromium, chromium and chromium-browser on PATH".into(),
    })
}

/// `chromium --version` (e.g. `Chromium 148.0.7778.96 ...`), for run.json; empty when it
/// does not answer within 10 s (the process group is then killed).
pub fn chromium_version(exe: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let Ok(mut child) = std::process::Command::new(exe)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
    else {
        return String::new();
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                return String::new();
            }
        }
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
    }
    out.trim().to_owned()
}

/// Runs cases in headless Chromium against the in-process server.
#[derive(Debug, Clone)]
pub struct BrowserClient {
    /// The Chromium binary.
    pub exe: PathBuf,
    /// How long one case may take, browser start included, before it fails.
    pub case_timeout: Duration,
}

/// Chromium running one case; dropping it kills its process group.
struct Chromium {
    child: tokio::process::Child,
    pid: Option<rustix::process::Pid>,
    profile: tempfile::TempDir,
}

impl Chromium {
    fn start(exe: &Path, url: &str) -> std::io::Result<Chromium> {
        let profile = tempfile::Builder::new()
            .prefix("pushbench-chromium-")
            .tempdir()?;
        let log = std::fs::File::create(profile.path().join("stderr.log"))?;
        let mut command = tokio::process::Command::new(exe);
        command
            .args(CHROMIUM_FLAGS)
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group, so that one kill reaches every process it forks, and a
            // Ctrl-C in the terminal reaches pushbench, which then kills the group.
            .process_group(0)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", exe.display())))?;
        let pid = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32));
        Ok(Chromium {
            child,
            pid,
            profile,
        })
    }

    /// The last lines Chromium wrote to stderr, for error messages.
    fn stderr_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.profile.path().join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        if tail.is_empty() {
            "nothing on stderr".into()
        } else {
            format!("its stderr ends: {tail}")
        }
    }

    fn kill_group(&mut self) {
        if let Some(pid) = self.pid.take() {
            // Gone already is fine: the group is what must not outlive the case.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.start_kill();
    }

    /// Kills the group and reaps the browser.
    async fn stop(mut self) {
        self.kill_group();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// One case for the page: what it runs and how the result is labelled.
#[derive(Debug, Clone)]
pub struct BrowserCase {
    /// The case's labels and parameters; metrics and integrity come from the page.
    pub template: CaseResult,
    /// The page's query string after `run=ID` (scenario, transport, workload).
    pub query: String,
}

impl BrowserCase {
    /// A short name for messages: `study ws sequential n=100`.
    pub fn name(&self) -> String {
        let t = &self.template;
        let n = t.params.n.map(|n| format!(" n={n}")).unwrap_or_default();
        let flush = t
            .params
            .flush
            .as_deref()
            .map(|f| format!(" {f}"))
            .unwrap_or_default();
        format!("{} {} {}{n}{flush}", t.scenario, t.transport, t.variant)
    }
}

static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

impl BrowserClient {
    /// A client running `exe` (see [`find_chromium`]), `case_timeout` per case.
    pub fn new(exe: PathBuf, case_timeout: Duration) -> Self {
        BrowserClient { exe, case_timeout }
    }

    /// Runs `case` in a fresh Chromium against `server`; a browser that fails to start, exits
    /// early or posts nothing within the case timeout gives a case with an error naming it.
    pub async fn run_case(&self, server: &RunningServer, case: &BrowserCase) -> Measurement {
        let run = format!(
            "{}-{}",
            std::process::id(),
            NEXT_RUN.fetch_add(1, Ordering::Relaxed)
        );
        let url = format!(
            "http://{}/bench/browser.html?run={run}&{}",
            server.http_addr, case.query
        );
        let waiting = server.browser.expect(&run);
        let outcome = match Chromium::start(&self.exe, &url) {
            Err(e) => Err(format!("cannot start the browser: {e}")),
            Ok(mut chromium) => {
                let limit = self.case_timeout;
                let outcome = tokio::select! {
                    report = tokio::time::timeout(limit, waiting) => match report {
                        Ok(Ok(report)) => Ok(report),
                        Ok(Err(_)) => Err("the result mailbox closed (server stopped?)".to_owned()),
                        Err(_) => Err(format!(
                            "no result from the browser ({}) within {} s; {}",
                            self.exe.display(),
                            limit.as_secs(),
                            chromium.stderr_tail()
                        )),
                    },
                    status = chromium.child.wait() => Err(format!(
                        "the browser ({}) exited ({}) before posting a result; {}",
                        self.exe.display(),
                        status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                        chromium.stderr_tail()
                    )),
                };
                chromium.stop().await;
                outcome
            }
        };
        server.browser.forget(&run);
        match outcome {
            Ok(report) => measurement(&case.template, &report),
            Err(e) => {
                let mut failed = case.template.clone();
                failed.error = Some(format!("{}: {e}", case.name()));
                Measurement {
                    case: failed,
                    latency: LatencyHistogram::new(),
                }
            }
        }
    }

    /// Runs the browser cases of `plan` (study, push, latency; others have none) against
    /// `server`, reporting each case as it is measured.
    pub async fn run_plan(
        &self,
        plan: &Plan,
        server: &RunningServer,
        on_event: &mut (dyn FnMut(RunEvent<'_>) + Send),
    ) -> Vec<CaseResult> {
        let groups = browser_groups(plan);
        let (repeats, label) = match plan {
            Plan::Study(c) => (c.repeats, "study"),
            Plan::Push(c) => (c.repeats, "push"),
            Plan::Latency(c) => (c.repeats, "latency"),
            _ => return Vec::new(),
        };
        let name = |g: &Vec<BrowserCase>| {
            let first = g.first().map(|c| c.name()).unwrap_or_default();
            format!("browser {label}: {first}")
        };
        // Repeats merge their latencies, so a case's clock bound is the widest of its runs'.
        let widest: std::sync::Mutex<std::collections::HashMap<String, f64>> = Default::default();
        let run = async |group: &Vec<BrowserCase>| {
            let mut out = Vec::with_capacity(group.len());
            for case in group {
                let measured = self.run_case(server, case).await;
                if let Some(us) = measured.case.metrics.clock_uncertainty_us {
                    let mut widest = widest.lock().unwrap_or_else(|e| e.into_inner());
                    let slot = widest.entry(case.name()).or_insert(us);
                    *slot = slot.max(us);
                }
                out.push(measured);
            }
            out
        };
        let widen = |case: &mut CaseResult| {
            let key = BrowserCase {
                template: case.clone(),
                query: String::new(),
            }
            .name();
            let widest = widest.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(&us) = widest.get(&key) {
                case.metrics.clock_uncertainty_us = Some(us);
            }
        };
        let mut widened = |event: RunEvent<'_>| match event {
            RunEvent::CaseMeasured { index, case } => {
                let mut case = case.clone();
                widen(&mut case);
                on_event(RunEvent::CaseMeasured { index, case: &case });
            }
            other => on_event(other),
        };
        let mut cases = run_groups(&groups, repeats, name, run, &mut widened).await;
        cases.iter_mut().for_each(widen);
        cases
    }
}

/// Whether `transport` has a browser client (browsers cannot open raw TCP).
pub fn has_browser_client(transport: Transport) -> bool {
    transport.is_web()
}

/// The browser cases of `plan`, grouped like the Rust runner's (per call count, per flush
/// policy, per client count): study's sequential variant, push's streams, latency with one
/// client. What a browser cannot run is left out: tcp, study's all-at-once, latency with
/// more than one client.
pub fn browser_groups(plan: &Plan) -> Vec<Vec<BrowserCase>> {
    let web = |transports: &[Transport]| -> Vec<Transport> {
        transports
            .iter()
            .copied()
            .filter(|&t| has_browser_client(t))
            .collect()
    };
    let template = |scenario: &str, t: Transport, variant: &str| {
        let mut case = CaseResult::new(scenario, t.id(), variant);
        case.params.client = Some(BROWSER_CLIENT.into());
        case
    };
    match plan {
        Plan::Study(c) => c
            .calls
            .iter()
            .map(|&n| {
                web(&c.transports)
                    .into_iter()
                    .map(|t| {
                        let mut template = template("study", t, StudyVariant::Sequential.id());
                        template.params.n = Some(n);
                        template.params.block_size = Some(c.block_size as u64);
                        BrowserCase {
                            template,
                            query: format!(
                                "scenario=study&transport={}&n={n}&block_size={}&timeout_ms={}",
                                t.id(),
                                c.block_size,
                                c.call_timeout_ms
                            ),
                        }
                    })
                    .collect()
            })
            .collect(),
        Plan::Push(c) => c
            .flush
            .iter()
            .map(|flush| {
                web(&c.transports)
                    .into_iter()
                    .map(|t| {
                        let mut template = template("push", t, "stream");
                        template.params.n = Some(c.messages);
                        template.params.payload_bytes = Some(c.payload_bytes as u64);
                        template.params.flush = Some(flush.id().into());
                        BrowserCase {
                            template,
                            query: format!(
                                "scenario=push&transport={}&n={}&payload={}&flush={}&timeout_ms={}",
                                t.id(),
                                c.messages,
                                c.payload_bytes,
                                flush.id(),
                                c.timeout_ms
                            ),
                        }
                    })
                    .collect()
            })
            .collect(),
        Plan::Latency(c) if c.clients.contains(&1) => {
            let interval_us = 1_000_000 / c.rate;
            let group = web(&c.transports)
                .into_iter()
                .map(|t| {
                    let mut template = template("latency", t, "paced");
                    template.params.n = Some(c.messages());
                    template.params.clients = Some(1);
                    template.params.rate = Some(c.rate);
                    template.params.payload_bytes = Some(c.payload_bytes as u64);
                    BrowserCase {
                        template,
                        query: format!(
                            "scenario=latency&transport={}&n={}&payload={}&interval_us={interval_us}&topic={}&timeout_ms={}",
                            t.id(),
                            c.messages(),
                            c.payload_bytes,
                            unique_topic("browser-latency"),
                            c.timeout_ms
                        ),
                    }
                })
                .collect();
            vec![group]
        }
        _ => Vec::new(),
    }
}

/// A rough expected duration of `plan`'s browser cases on a 2-core machine, from costs
/// measured there: about 1 s to start Chromium, 2 ms per study call (SSE and long polling pay
/// a `fetch` per call), 0.5 ms per pushed message (long polling per message is slower still).
pub fn expected(plan: &Plan) -> Duration {
    let cases: Vec<BrowserCase> = browser_groups(plan).into_iter().flatten().collect();
    let work: f64 = cases
        .iter()
        .map(|c| {
            let n = c.template.params.n.unwrap_or(0) as f64;
            1.0 + match c.template.scenario.as_str() {
                "study" => n * 2e-3,
                "push" => n * 0.5e-3,
                _ => n / c.template.params.rate.unwrap_or(1000).max(1) as f64 + 0.5,
            }
        })
        .sum();
    Duration::from_secs_f64(work * plan.repeats() as f64)
}

/// The case the page's report describes: its counts, the figures the scenario reads, and the
/// latencies it recorded.
fn measurement(template: &CaseResult, report: &BrowserReport) -> Measurement {
    let mut case = template.clone();
    case.integrity = Integrity {
        sent: report.sent,
        received: report.received,
        lost: report.sent.saturating_sub(report.received),
        duplicated: report.duplicated,
        out_of_order: report.out_of_order,
        loss_by_design: false,
    };
    case.error = report.error.clone();
    let m = &mut case.metrics;
    m.elapsed_ms = Some(report.elapsed_ms);
    m.connect_ms = Some(report.connect_ms);
    let secs = report.elapsed_ms / 1000.0;
    let received = report.received as f64;
    if secs > 0.0 {
        match case.scenario.as_str() {
            "study" => m.calls_per_s = Some(received / secs),
            _ => {
                m.msgs_per_s = Some(received / secs);
                let payload = case.params.payload_bytes.unwrap_or(0) as f64;
                m.bytes_per_s = Some(received * payload / secs);
            }
        }
    }
    if case.scenario == "study" {
        m.bytes_loaded = Some(report.bytes_loaded);
    }
    m.clock_uncertainty_us = report.clock_uncertainty_us;
    let mut latency = LatencyHistogram::new();
    for &us in &report.latencies_us {
        // A negative latency is the clock offset's error (latency scenario): counted as 0.
        latency.record(Duration::from_nanos((us.max(0.0) * 1000.0) as u64));
    }
    Measurement { case, latency }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_groups_leave_out_what_a_browser_cannot_run() {
        let plan = Plan::default_for("study", true).unwrap();
        let groups = browser_groups(&plan);
        assert_eq!(groups.len(), 2, "one group per call count");
        let transports: Vec<&str> = groups[0]
            .iter()
            .map(|c| c.template.transport.as_str())
            .collect();
        assert_eq!(transports, ["ws", "sse", "longpoll"]);
        assert!(groups[1][0].query.contains("n=1000&block_size=1000"));
        assert_eq!(
            groups[0][0].template.params.client.as_deref(),
            Some("browser")
        );

        let Plan::Latency(mut latency) = Plan::default_for("latency", true).unwrap() else {
            unreachable!()
        };
        latency.clients = vec![100];
        assert!(browser_groups(&Plan::Latency(latency)).is_empty());
    }

    #[test]
    fn a_report_becomes_a_case_with_its_loss_counted() {
        let template = CaseResult::new("push", "sse", "stream");
        let report = BrowserReport {
            user_agent: "test".into(),
            sent: 10,
            received: 7,
            duplicated: 1,
            out_of_order: 0,
            elapsed_ms: 2.0,
            connect_ms: 1.0,
            bytes_loaded: 0,
            latencies_us: vec![],
            clock_uncertainty_us: None,
            error: Some("cut".into()),
        };
        let m = measurement(&template, &report);
        assert_eq!(m.case.integrity.lost, 3);
        assert!(!m.case.is_ok());
        assert_eq!(m.case.metrics.msgs_per_s, Some(3500.0));
    }
}

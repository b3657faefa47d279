//! The `pushbench` command line: run scenarios, render reports, list what exists.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures_util::future::BoxFuture;
use indicatif::{ProgressBar, ProgressStyle};
use pushbench::browser::{self, BrowserClient};
use pushbench::{Harness, Plan, RunWriter, summary_table};
use pushbench_core::{
    CATALOGUE, Driver, DriverError, Flush, RunEvent, Session, Target, Transport, scenario,
};
use pushbench_schema::{CaseResult, RunFile};

mod distributed;
mod networked;

/// WebSockets or Server-Sent Events? Measures both (plus long polling and a raw-TCP floor)
/// on an in-process server and writes results a report can be regenerated from.
#[derive(Parser)]
#[command(
    name = "pushbench",
    version,
    about,
    after_help = "Examples:\n  pushbench run study --quick --out /tmp/x   # seconds\n  pushbench report /tmp/x                    # charts and REPORT.md\n  pushbench run all --quick --out /tmp/all   # every scenario, about 20 s (release)\n  pushbench run push --quick --tls=both      # plain, then over TLS: what encryption costs\n  pushbench list                             # the scenarios\n  pushbench run study --quick --target http://127.0.0.1:8080 --server-label mine\n                                             # another server (docs/PROTOCOL.md)\n  pushbench run fanout --quick --transports sse --http2\n                                             # SSE over HTTP/1.1 and HTTP/2\n  pushbench run study --quick --client both  # headless Chromium too (scripts/install-browser.sh)\n  pushbench run connect --quick --network rtt=50ms\n                                             # an emulated network (root; scripts/netns.sh)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and write DIR/run.json and DIR/cases.csv.
    Run(Box<RunArgs>),
    /// Render DIR/charts/*.svg|png and DIR/REPORT.md from DIR/run.json.
    Report {
        /// A run directory (holding run.json).
        dir: PathBuf,
    },
    /// List the scenarios.
    List,
    /// Run the server alone until Ctrl-C (for `drive` processes or another client).
    Serve(distributed::ServeArgs),
    /// Run broadcast clients (latency, fanout) against a server in another process; several
    /// at once combine with `merge`.
    Drive(distributed::DriveArgs),
    /// Combine run directories losslessly: histograms merged, counts summed.
    Merge(distributed::MergeArgs),
    /// The packet delay line of `scripts/netns.sh` (run inside its router namespace): reads
    /// each IP packet from a TUN device and writes it back after a fixed one-way delay.
    Delayline(networked::DelaylineArgs),
    /// Issue-6 performance targets measured on `pushbench serve` as a child process
    /// (`perf memory`: server memory per idle connection; `perf scale`: broadcast p99 to 19 000
    /// clients).
    Perf(PerfArgs),
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  pushbench perf memory --transports ws,sse --connections 10000\n  pushbench perf scale --transports ws,sse --clients 19000\n\nThe server is this binary's `serve` as a child process (1 worker thread). memory: the client\nsockets are held by this process, so both need N open files (ulimit -n). scale: the clients\nrun in `pushbench drive` child processes of at most 9 500 each, from their own loopback addresses (127.X.Y.2, .3, ...)"
)]
struct PerfArgs {
    /// Which measurement: `memory` holds N idle broadcast subscribers (WS upgraded, SSE headers
    /// received), checks the server holds them all (GET /stats), and prints the server's VmRSS
    /// growth per connection against the 32 KiB target. `scale` broadcasts --messages messages
    /// (100 ms apart) to --clients subscribers in driver processes and prints the delivery p99
    /// against the 100 ms target; any loss fails it.
    #[arg(value_parser = ["memory", "scale"])]
    what: String,
    /// Transports to measure, comma-separated: ws, sse.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "ws,sse"
    )]
    transports: Vec<String>,
    /// Idle connections held per transport (besides one warm-up connection).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    connections: u64,
    /// scale: subscribers over every driver process.
    #[arg(long, default_value_t = 19_000, value_name = "N")]
    clients: u64,
    /// scale: messages broadcast.
    #[arg(long, default_value_t = 10, value_name = "N")]
    messages: u64,
    /// scale: milliseconds between broadcast messages.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    interval_ms: u64,
    /// scale: worker threads of the server child (`pushbench serve --threads`).
    #[arg(long, default_value_t = 1, value_name = "N")]
    server_threads: usize,
}

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// Scenario id (see `pushbench list`), or `all` for every scenario in one run.
    scenario: String,
    /// Reduced set that runs in seconds (`run all --quick`: every scenario in about 20 s, release build).
    #[arg(long)]
    quick: bool,
    /// Output directory [default: results/<date>-<host>-<scenario>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Transports to measure, comma-separated [default: ws,sse,longpoll,tcp].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    transports: Option<Vec<Transport>>,
    /// Runs per case; the median is reported with the range [default: study, push, roundtrip
    /// 3; others 1; --quick: 1].
    #[arg(long)]
    repeats: Option<u32>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Measure over TLS: the server serves https, wss and the floor over TLS (rustls, a
    /// self-signed certificate generated at start, trusted by the drivers). `--tls=both`
    /// measures every case plain and over TLS in the same run, so the report shows what
    /// encryption costs each transport.
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "only",
        value_name = "WHICH"
    )]
    tls: Option<TlsRuns>,
    /// Measure the server at http://HOST:PORT instead of the in-process one: any server that
    /// speaks docs/PROTOCOL.md (e.g. `pushbench serve`, scripts/reference/node/server.js).
    /// Scenarios needing `POST /broadcast` (latency, fanout, connect), `/feed/*` (reconnect)
    /// fail per case, naming the endpoint, if the target lacks it.
    #[arg(long, value_name = "URL", help_heading = "Target")]
    target: Option<String>,
    /// The target's raw-TCP floor, HOST:PORT; without it tcp cases are skipped (with a note).
    #[arg(
        long,
        value_name = "ADDR",
        requires = "target",
        help_heading = "Target"
    )]
    tcp_target: Option<String>,
    /// Name of the target server in results (`params.server`, the cases.csv `server` column)
    /// [default: external; in-process: pushbench-axum].
    #[arg(
        long,
        value_name = "NAME",
        requires = "target",
        help_heading = "Target"
    )]
    server_label: Option<String>,
    /// Bearer token sent to a --target started with a token (`pushbench serve --token`).
    #[arg(long, value_name = "T", requires = "target", help_heading = "Target")]
    token: Option<String>,
    /// study: call counts, comma-separated [default: 100,1000,10000; --quick: 100,1000].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        help_heading = "Study"
    )]
    calls: Option<Vec<u64>>,
    /// study: characters of random data per reply [default: 1000].
    #[arg(long, help_heading = "Study")]
    block_size: Option<usize>,
    /// study: milliseconds to wait for one reply before counting it lost [default: 10000].
    #[arg(long, help_heading = "Study")]
    call_timeout_ms: Option<u64>,
    /// study: skip the all-at-once variant (web transports concurrently).
    #[arg(long, help_heading = "Study")]
    no_all_at_once: bool,
    /// push, reconnect: messages per case [default: push 100000, reconnect 2000; --quick:
    /// push 10000, reconnect 500].
    #[arg(long, help_heading = "Push")]
    messages: Option<u64>,
    /// push, latency, fanout, roundtrip: data characters per message [default: 64].
    #[arg(long, help_heading = "Push")]
    payload_bytes: Option<usize>,
    /// push: flush policies, comma-separated [default: per_message,batched].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        help_heading = "Push"
    )]
    flush: Option<Vec<Flush>>,
    /// latency, reconnect: messages per second the server emits [default: 1000].
    #[arg(long, help_heading = "Latency")]
    rate: Option<u64>,
    /// latency: how long the server emits, ms [default: 5000; --quick: 500].
    #[arg(long, help_heading = "Latency")]
    duration_ms: Option<u64>,
    /// latency, fanout, roundtrip: client counts, comma-separated [default: latency and
    /// roundtrip 1,100; fanout 1,10,100,1000,10000; --quick fanout: 1,100,1000].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        help_heading = "Latency"
    )]
    clients: Option<Vec<u64>>,
    /// fanout: broadcasts per case [default: 20; --quick: 5].
    #[arg(long, help_heading = "Fanout")]
    broadcasts: Option<u64>,
    /// fanout: milliseconds between broadcasts [default: 100; --quick: 50].
    #[arg(long, help_heading = "Fanout")]
    interval_ms: Option<u64>,
    /// fanout: the most clients run inside this process; above, driver processes
    /// (`pushbench drive`) run them, each from its own loopback address [default: 4000].
    #[arg(long, help_heading = "Fanout")]
    in_process_max: Option<u64>,
    /// fanout: the most clients per driver process [default: 5000].
    #[arg(long, help_heading = "Fanout")]
    per_process: Option<u64>,
    /// fanout: bisection steps towards the largest client count under 100 ms p99
    /// [default: 3; --quick: 0].
    #[arg(long, help_heading = "Fanout")]
    search_steps: Option<u32>,
    /// roundtrip: sequential round trips per client [default: 200; --quick: 50].
    #[arg(long, help_heading = "Roundtrip")]
    round_trips: Option<u64>,
    /// connect: connections made one after another [default: 500; --quick: 100].
    #[arg(long, help_heading = "Connect")]
    connections: Option<u64>,
    /// connect: ramp sizes, connections opened at once, comma-separated [default: 1000;
    /// --quick: 200].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        help_heading = "Connect"
    )]
    ramp: Option<Vec<u64>>,
    /// payload: sizes in bytes, comma-separated [default: 16,256,4096,65536,1048576].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        help_heading = "Payload"
    )]
    sizes: Option<Vec<usize>>,
    /// payload: text payloads only (skip binary).
    #[arg(long, help_heading = "Payload")]
    no_binary: bool,
    /// reconnect: the server drops each connection after this many messages [default: 250;
    /// --quick: 100].
    #[arg(long, help_heading = "Reconnect")]
    drop_every: Option<u64>,
    /// reconnect: how long the server refuses connections after a drop, ms, one case per
    /// value, comma-separated [default: 0,500; --quick: 0,200].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        help_heading = "Reconnect"
    )]
    down_ms: Option<Vec<u64>>,
    /// reconnect: the reconnection delay, sent to SSE clients as `retry:` and used by the
    /// WebSocket client, ms [default: 100; --quick: 50].
    #[arg(long, help_heading = "Reconnect")]
    retry_ms: Option<u64>,
    /// reconnect: skip the no-resume variant (which shows what a reconnect loses).
    #[arg(long, help_heading = "Reconnect")]
    resume_only: bool,
    /// fanout: also run each SSE case over HTTP/2 (variant `http2`): the clients' streams
    /// multiplexed M per connection (h2c with prior knowledge, or h2 by ALPN with --tls),
    /// beside HTTP/1.1's one connection per client. `--http2` alone means M = 100; at most
    /// 256 (the server's SETTINGS_MAX_CONCURRENT_STREAMS).
    #[arg(
        long,
        value_name = "M",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "100",
        help_heading = "HTTP/2"
    )]
    http2: Option<u32>,
    /// Who runs the clients: `rust` (pushbench's drivers), `browser` (headless Chromium
    /// loading /bench/browser.html from the in-process server and running the case with its
    /// own WebSocket, EventSource and fetch: study, push and latency over ws, sse and
    /// longpoll; install it with scripts/install-browser.sh), or `both` (the same cases by
    /// each client in one run, so the report compares them) [default: rust]. Cases record it in
    /// `params.client`.
    #[arg(long, value_enum, value_name = "WHO", help_heading = "Client")]
    client: Option<ClientRuns>,
    /// browser: seconds one browser case may take, Chromium's start included, before it fails
    /// naming the case [default: 120].
    #[arg(long, value_name = "S", help_heading = "Client")]
    browser_timeout_s: Option<u64>,
    /// Measure over an emulated network, e.g. `rtt=50ms,loss=1%,rate=10mbit` (keys optional:
    /// rtt 0ms, loss 0%, rate none). The server runs in namespace pb-server, the clients in
    /// pb-client, joined through pb-router (scripts/netns.sh, created before and removed
    /// after): every packet is held rtt/2 per direction by a userspace delay line (handshakes
    /// included), dropped with probability `loss` per direction (nftables), limited to
    /// `rate` per direction (tc tbf). Repeat the flag to measure several networks in one run;
    /// each case records its network in params.network. Needs root, iproute2 and /dev/net/tun.
    #[arg(
        long,
        value_name = "SPEC",
        help_heading = "Network",
        conflicts_with_all = ["target", "tls"]
    )]
    network: Vec<pushbench::network::NetworkSpec>,
}

/// Which clients `--client` runs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClientRuns {
    /// pushbench's Rust drivers.
    Rust,
    /// Headless Chromium.
    Browser,
    /// Both, the same cases by each.
    Both,
}

/// Which cases `--tls` measures over TLS.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TlsRuns {
    /// Every case over TLS only.
    Only,
    /// Every case plain, then over TLS.
    Both,
}

impl RunArgs {
    /// Applies the flags given on the command line to `plan`'s configuration.
    fn apply(&self, plan: &mut Plan) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        match plan {
            Plan::Study(c) => {
                set(&mut c.transports, &self.transports);
                set(&mut c.repeats, &self.repeats);
                set(&mut c.calls, &self.calls);
                set(&mut c.block_size, &self.block_size);
                set(&mut c.call_timeout_ms, &self.call_timeout_ms);
                c.all_at_once &= !self.no_all_at_once;
            }
            Plan::Push(c) => {
                set(&mut c.transports, &self.transports);
                set(&mut c.repeats, &self.repeats);
                set(&mut c.messages, &self.messages);
                set(&mut c.payload_bytes, &self.payload_bytes);
                set(&mut c.flush, &self.flush);
            }
            Plan::Latency(c) => {
                set(&mut c.transports, &self.transports);
                set(&mut c.repeats, &self.repeats);
                set(&mut c.clients, &self.clients);
                set(&mut c.rate, &self.rate);
                set(&mut c.duration_ms, &self.duration_ms);
                set(&mut c.payload_bytes, &self.payload_bytes);
            }
            Plan::Fanout(c) => {
                set(&mut c.transports, &self.transports);
                set(&mut c.repeats, &self.repeats);
                set(&mut c.clients, &self.clients);
                set(&mut c.broadcasts, &self.broadcasts);
                set(&mut c.interval_ms, &self.interval_ms);
                set(&mut c.payload_bytes, &self.payload_bytes);
                set(&mut c.in_process_max, &self.in_process_max);
                set(&mut c.per_process, &self.per_process);
                set(&mut c.search_steps, &self.search_steps);
                if self.http2.is_some() {
                    c.http2 = self.http2;
                }
            }
            Plan::Roundtrip(c) => {
                set(&mut c.transports, &self.transports);
                set(&mut c.repeats, &self.repeats);
                set(&mut c.clients, &self.clients);
                set(&mut c.round_trips, &self.round_trips);
                set(&mut c.payload_bytes, &self.payload_bytes);
            }
            Plan::Connect(c) => {
                set(&mut c.transports, &self.transports);
                set(&mut c.repeats, &self.repeats);
                set(&mut c.connections, &self.connections);
                set(&mut c.ramp, &self.ramp);
            }
            Plan::Payload(c) => {
                set(&mut c.transports, &self.transports);
                set(&mut c.repeats, &self.repeats);
                set(&mut c.sizes, &self.sizes);
                c.binary &= !self.no_binary;
            }
            Plan::Reconnect(c) => {
                if let Some(transports) = &self.transports {
                    // Only ws and sse have a resume protocol; `run all` passes the rest by.
                    c.transports = transports
                        .iter()
                        .copied()
                        .filter(|t| matches!(t, Transport::Ws | Transport::Sse))
                        .collect();
                }
                set(&mut c.repeats, &self.repeats);
                set(&mut c.messages, &self.messages);
                set(&mut c.rate, &self.rate);
                set(&mut c.payload_bytes, &self.payload_bytes);
                set(&mut c.drop_every, &self.drop_every);
                set(&mut c.down_ms, &self.down_ms);
                set(&mut c.retry_ms, &self.retry_ms);
                c.no_resume &= !self.resume_only;
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Report { dir } => report(dir),
        Command::List => {
            list();
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => distributed::serve(args),
        Command::Drive(args) => distributed::drive(args),
        Command::Merge(args) => distributed::merge(args),
        Command::Delayline(args) => networked::delayline(args),
        Command::Perf(args) => perf(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("pushbench: {e:#}");
        ExitCode::from(2)
    })
}

fn perf(args: PerfArgs) -> anyhow::Result<ExitCode> {
    use pushbench::perf::{PerfTransport, idle_memory};
    let transports = args
        .transports
        .iter()
        .map(|t| match t.as_str() {
            "ws" => Ok(PerfTransport::Ws),
            "sse" => Ok(PerfTransport::Sse),
            other => anyhow::bail!("--transports: `{other}` is not one of ws, sse"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let exe = std::env::current_exe()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut all_met = true;
    if args.what == "scale" {
        let work = tempfile::tempdir()?;
        for transport in transports {
            let dir = work.path().join(transport.name());
            let spec = pushbench::perf::ScaleSpec {
                clients: args.clients,
                messages: args.messages,
                interval_ms: args.interval_ms,
                server_threads: args.server_threads,
            };
            let m = runtime.block_on(pushbench::perf::scale(&exe, transport, &spec, &dir))?;
            let t = m.target();
            all_met &= t.met;
            println!(
                "{}: p99 {:.1} ms, p50 {:.1} ms ({} clients in {} driver processes, {}/{} delivered); target {} {}",
                t.id,
                m.p99_ms,
                m.p50_ms,
                m.spec.clients,
                m.drivers,
                m.received,
                m.spec.clients * m.spec.messages,
                t.bound_text(),
                if t.met { "met" } else { "MISSED" }
            );
        }
        return Ok(if all_met {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    for transport in transports {
        let m = runtime.block_on(idle_memory(&exe, transport, args.connections))?;
        let t = m.target();
        all_met &= t.met;
        println!(
            "{}: {:.1} KiB per connection ({} connections; server VmRSS {:.1} -> {:.1} MiB); target {} {}",
            t.id,
            m.bytes_per_connection / 1024.0,
            m.connections,
            m.baseline_rss as f64 / 1048576.0,
            m.loaded_rss as f64 / 1048576.0,
            t.bound_text(),
            if t.met { "met" } else { "MISSED" }
        );
    }
    Ok(if all_met {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn list() {
    for s in CATALOGUE {
        let status = if s.implemented {
            ""
        } else {
            "  (not implemented yet)"
        };
        println!(
            "{:<10} {}{status}\n{:<10} figures: {}",
            s.id, s.what, "", s.figures
        );
    }
}

fn report(dir: PathBuf) -> anyhow::Result<ExitCode> {
    let rendered = pushbench_report::render(&dir)?;
    for chart in &rendered.charts {
        println!("chart   {}", chart.display());
    }
    println!("report  {}", rendered.report.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn plans(args: &RunArgs) -> anyhow::Result<Vec<Plan>> {
    let mut plans = if args.scenario == "all" {
        Plan::all(args.quick)
    } else {
        let Some(info) = scenario(&args.scenario) else {
            let ids: Vec<_> = CATALOGUE.iter().map(|s| s.id).collect();
            anyhow::bail!(
                "unknown scenario `{}` (known: {}, or all)",
                args.scenario,
                ids.join(", ")
            );
        };
        let Some(plan) = Plan::default_for(info.id, args.quick) else {
            let ready: Vec<_> = CATALOGUE
                .iter()
                .filter(|s| s.implemented)
                .map(|s| s.id)
                .collect();
            anyhow::bail!(
                "scenario `{}` is not implemented in this build yet (implemented: {})",
                info.id,
                ready.join(", ")
            );
        };
        vec![plan]
    };
    if args.http2.is_some() && !plans.iter().any(|p| matches!(p, Plan::Fanout(_))) {
        anyhow::bail!(
            "--http2 compares SSE over HTTP/1.1 and HTTP/2 in the fanout scenario: use it with `run fanout` or `run all`"
        );
    }
    for plan in &mut plans {
        args.apply(plan);
        plan.validate().map_err(anyhow::Error::msg)?;
    }
    Ok(plans)
}

/// Wraps a driver so the progress bar names the transport being measured.
struct Announced {
    inner: std::sync::Arc<dyn Driver>,
    progress: Progress,
}

/// The progress bar and the label of the group running now.
#[derive(Clone)]
struct Progress {
    bar: ProgressBar,
    state: std::sync::Arc<std::sync::Mutex<(String, Option<Transport>)>>,
}

impl Progress {
    fn group(&self, label: String) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = (label, None);
        self.bar.set_message(state.0.clone());
    }

    fn transport(&self, t: Transport) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.1 != Some(t) {
            state.1 = Some(t);
            self.bar.set_message(format!("{} · {t}", state.0));
        }
    }
}

impl Driver for Announced {
    fn transport(&self) -> Transport {
        self.inner.transport()
    }

    fn connect<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        self.progress.transport(self.inner.transport());
        self.inner.connect(target)
    }

    fn subscribe<'a>(
        &'a self,
        target: &'a Target,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, DriverError>> {
        self.progress.transport(self.inner.transport());
        self.inner.subscribe(target, topic)
    }

    fn http2(&self, streams_per_connection: u32) -> Option<std::sync::Arc<dyn Driver>> {
        let inner = self.inner.http2(streams_per_connection)?;
        Some(std::sync::Arc::new(Announced {
            inner,
            progress: self.progress.clone(),
        }))
    }
}

/// The harness for `args`: the in-process server, or `--target` after checking that
/// something listens there. A target without `--tcp-target` drops tcp from `plans` (said on
/// stderr and in run.json, not silently).
fn harness(args: &RunArgs, plans: &mut [Plan]) -> anyhow::Result<(Harness, Vec<String>)> {
    let Some(url) = &args.target else {
        let tls = match args.tls {
            Some(_) => Some(pushbench_server::ServerTls::self_signed(None)?),
            None => None,
        };
        return Ok((Harness::start_with(tls)?, Vec::new()));
    };
    if args.tls.is_some() {
        anyhow::bail!(
            "--tls starts pushbench's own TLS server, so it does not go with --target; measure an https server with `pushbench drive --target https://... --tls-ca FILE`"
        );
    }
    let label = args
        .server_label
        .as_deref()
        .unwrap_or(pushbench::EXTERNAL_SERVER);
    if label.is_empty() || label.contains(|c: char| c.is_whitespace() || c == ',') {
        anyhow::bail!("--server-label `{label}`: expected a name without spaces or commas");
    }
    let tcp = match &args.tcp_target {
        Some(text) => Some(distributed::parse_addr("--tcp-target", text)?),
        None => None,
    };
    let (addr, https, _) = distributed::parse_target(url)?;
    if https {
        anyhow::bail!(
            "--target {url}: `run` measures http:// targets; for https use `pushbench drive --target {url} --tls-ca FILE`"
        );
    }
    let mut target = Target::new(addr, tcp);
    target.token = args.token.clone();
    let harness = Harness::external(target.clone(), label)?;
    harness.runtime.block_on(async {
        let probe = |addr| pushbench_core::driver::connect_tcp(addr, None);
        let timeout = Duration::from_secs(5);
        for (flag, text, addr) in [
            ("--target", url.clone(), Some(target.http)),
            (
                "--tcp-target",
                args.tcp_target.clone().unwrap_or_default(),
                target.tcp,
            ),
        ] {
            let Some(addr) = addr else { continue };
            match tokio::time::timeout(timeout, probe(addr)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => anyhow::bail!(
                    "{flag} {text}: nothing answers there ({e}); start the server first"
                ),
                Err(_) => anyhow::bail!(
                    "{flag} {text}: no TCP connection within {} s",
                    timeout.as_secs()
                ),
            }
        }
        Ok(())
    })?;
    let mut notes = Vec::new();
    if target.tcp.is_none() {
        if args
            .transports
            .as_ref()
            .is_some_and(|t| t.contains(&Transport::Tcp))
        {
            anyhow::bail!(
                "--transports includes tcp, but the target has no raw-TCP floor: give --tcp-target HOST:PORT or drop tcp"
            );
        }
        if plans
            .iter()
            .any(|p| p.transports().contains(&Transport::Tcp))
        {
            notes.push(format!(
                "tcp skipped: the target {url} has no raw-TCP floor (no --tcp-target); figures have no tcp floor to compare with"
            ));
            plans
                .iter_mut()
                .for_each(|p| p.without_transport(Transport::Tcp));
        }
    }
    for note in &notes {
        eprintln!("pushbench: note: {note}");
    }
    Ok((harness, notes))
}

/// The browser client `--client browser|both` asks for, after checking that it can run the
/// plans (`notes` says what it leaves to the Rust drivers); `None` for `--client rust`.
fn browser_client(
    args: &RunArgs,
    plans: &[Plan],
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<BrowserClient>> {
    let Some(which @ (ClientRuns::Browser | ClientRuns::Both)) = args.client else {
        return Ok(None);
    };
    if args.target.is_some() {
        anyhow::bail!(
            "--client browser loads its page from pushbench's in-process server, so it does not go with --target"
        );
    }
    if args.tls.is_some() {
        anyhow::bail!(
            "--client browser runs over plain HTTP (the browser would not trust the self-signed certificate); drop --tls"
        );
    }
    for plan in plans {
        if browser::browser_groups(plan).is_empty() {
            let why = match plan {
                Plan::Latency(_) => {
                    "a browser runs latency with one client only: include 1 in --clients"
                }
                _ => "the browser client runs study, push and latency",
            };
            match (which, args.scenario.as_str()) {
                (ClientRuns::Browser, "all") => {
                    notes.push(format!("{}: skipped ({why})", plan.id()));
                }
                (ClientRuns::Browser, _) => anyhow::bail!(
                    "--client browser: `{}` has no browser cases ({why})",
                    plan.id()
                ),
                _ => notes.push(format!("{}: Rust clients only ({why})", plan.id())),
            }
        }
    }
    notes.push(
        "browser cases: ws, sse and longpoll only (a browser cannot open raw TCP); study's sequential variant; latency with one client"
            .into(),
    );
    let exe = browser::find_chromium()?;
    let timeout = Duration::from_secs(args.browser_timeout_s.unwrap_or(120).max(1));
    Ok(Some(BrowserClient::new(exe, timeout)))
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !args.network.is_empty() {
        if matches!(args.client, Some(ClientRuns::Browser | ClientRuns::Both)) {
            anyhow::bail!(
                "--client browser runs against the in-process server, and --network measures a server in another namespace: use them in separate runs"
            );
        }
        return networked::run(&args);
    }
    let mut plans = plans(&args)?;
    let mut browser_notes = Vec::new();
    let browser = browser_client(&args, &plans, &mut browser_notes)?;
    let (mut harness, mut notes) = harness(&args, &mut plans)?;
    for note in &browser_notes {
        eprintln!("pushbench: note: {note}");
    }
    notes.extend(browser_notes);
    let runs_rust = args.client != Some(ClientRuns::Browser);
    let targets: Vec<Target> = match (args.tls, harness.tls_target()) {
        (Some(TlsRuns::Only), Some(tls)) => vec![tls],
        (Some(TlsRuns::Both), Some(tls)) => vec![harness.target(), tls],
        _ => vec![harness.target()],
    };
    let mut config = if let [plan] = plans.as_slice() {
        harness.run_config(plan.id(), &plan.config_value())
    } else {
        let all: serde_json::Map<String, serde_json::Value> = plans
            .iter()
            .map(|p| (p.id().to_owned(), p.config_value()))
            .collect();
        harness.run_config("all", &all)
    };
    if let Some(tls) = args.tls {
        config["tls_runs"] = serde_json::json!(match tls {
            TlsRuns::Only => "every case over TLS",
            TlsRuns::Both => "every case plain, then over TLS (params.tls marks the TLS cases)",
        });
    }
    if let Some(browser) = &browser {
        config["browser"] = serde_json::json!({
            "exe": browser.exe.display().to_string(),
            "version": browser::chromium_version(&browser.exe),
            "flags": browser::CHROMIUM_FLAGS,
            "profile": "a fresh --user-data-dir per case (temporary directory)",
            "page": "GET /bench/browser.html?run=ID&<case>; browser.js speaks docs/PROTOCOL.md with the browser's WebSocket, EventSource and fetch, times with performance.now(), posts its counts and latencies to POST /bench/result?run=ID",
            "one_browser_per_case": true,
            "case_timeout_s": browser.case_timeout.as_secs(),
            "latency": "study: send to reply on the page's clock; latency: receipt minus the server's scheduled time through a clock offset from 50 readings over a WebSocket to /bench/clock/ws (the one with the shortest round trip; half its round trip bounds the error, metrics.clock_uncertainty_us); push: none (throughput only)",
        });
    }
    if !notes.is_empty() {
        config["notes"] = serde_json::json!(notes);
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&args.scenario));
    let mut writer = RunWriter::create(&out, config)?;
    let expected: Duration = plans
        .iter()
        .map(|p| {
            if runs_rust {
                p.expected()
            } else {
                Duration::ZERO
            }
        })
        .sum::<Duration>()
        * targets.len() as u32
        + match &browser {
            Some(_) => plans.iter().map(browser::expected).sum(),
            None => Duration::ZERO,
        };
    let browser_groups = |plan: &Plan| match &browser {
        Some(_) => browser::browser_groups(plan).len() as u64 * plan.repeats(),
        None => 0,
    };
    let rust_groups = |plan: &Plan| if runs_rust { plan.total() } else { 0 };
    eprintln!(
        "pushbench: running {} (expected about {}; results in {})",
        plans.iter().map(Plan::id).collect::<Vec<_>>().join(", "),
        human(expected),
        out.display()
    );
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(
            plans.iter().map(rust_groups).sum::<u64>() * targets.len() as u64
                + plans.iter().map(browser_groups).sum::<u64>(),
        )
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {percent}% {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let progress = Progress {
        bar: bar.clone(),
        state: Default::default(),
    };
    harness.drivers = harness.drivers.map(|inner| {
        let progress = progress.clone();
        std::sync::Arc::new(Announced { inner, progress })
    });

    let mut write_error = None;
    let interrupted = harness.runtime.block_on(async {
        let mut finished_groups = 0;
        let jobs = plans
            .iter()
            .flat_map(|plan| targets.iter().map(move |t| (plan, t)));
        for (plan, target) in jobs {
            // The browser runs each plan once, over plain HTTP, after the Rust clients.
            let browser = browser.as_ref().filter(|_| target.tls.is_none());
            let sides = [runs_rust.then_some(None), browser.map(Some)];
            for side in sides.into_iter().flatten() {
                let offset = writer.file().cases.len();
                let over = if target.tls.is_some() { " (TLS)" } else { "" };
                let client = match (side, args.client) {
                    (Some(_), _) => Some(browser::BROWSER_CLIENT),
                    (None, Some(_)) => Some(browser::RUST_CLIENT),
                    (None, None) => None,
                };
                let mut on_event = |event: RunEvent<'_>| match event {
                    RunEvent::GroupStarted { label, done, .. } => {
                        bar.set_position((finished_groups + done) as u64);
                        progress.group(format!("{label}{over}"));
                    }
                    RunEvent::CaseMeasured { index, case } => {
                        let mut case = case.clone();
                        case.params.client = client.map(str::to_owned);
                        if let Err(e) = writer.set(offset + index, case) {
                            write_error.get_or_insert(e);
                        }
                    }
                };
                let groups = match side {
                    Some(_) => browser_groups(plan),
                    None => plan.total(),
                };
                let work: futures_util::future::LocalBoxFuture<'_, Vec<CaseResult>> =
                    match (side, &harness.server) {
                        (Some(browser), Some(server)) => {
                            Box::pin(browser.run_plan(plan, server, &mut on_event))
                        }
                        // browser_client() refuses --target, so the server is there.
                        (Some(_), None) => Box::pin(async { Vec::new() }),
                        (None, _) => Box::pin(plan.run_on(&harness, target, &mut on_event)),
                    };
                let stopped = tokio::select! {
                    _ = work => false,
                    _ = tokio::signal::ctrl_c() => true,
                    // A browser runs in its own process group: on SIGTERM too, stop the case
                    // (which kills the group) rather than die and leave it behind.
                    _ = terminated() => true,
                };
                if stopped {
                    return true;
                }
                finished_groups += groups as usize;
            }
        }
        false
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if interrupted {
        let file = writer.abandon()?;
        eprintln!(
            "interrupted: {} cases kept in {} (marked incomplete)",
            file.cases.len(),
            out.display()
        );
        print!("{}", summary_table(&file));
        return Ok(ExitCode::from(130));
    }
    let file = writer.finish()?;
    print!("{}", summary_table(&file));
    println!(
        "\nwrote {}/run.json and cases.csv; render with: pushbench report {}",
        out.display(),
        out.display()
    );
    Ok(flagged_exit(&file))
}

/// Resolves on SIGTERM (never, if the handler cannot be installed).
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// Exit 1 (and say so) when any case has an error or an integrity fault.
pub(crate) fn flagged_exit(file: &RunFile) -> ExitCode {
    let flagged = file.cases.iter().filter(|c| !c.is_ok()).count();
    if flagged > 0 {
        eprintln!(
            "pushbench: {flagged} case(s) flagged (error or integrity fault): see the status column"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 90 {
        format!("{secs} s")
    } else {
        format!("{} min", secs.div_ceil(60))
    }
}

pub(crate) fn default_out(scenario: &str) -> PathBuf {
    let date = pushbench_core::env::rfc3339_now();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    PathBuf::from("results").join(format!("{}-{}-{scenario}", &date[..10], host.trim()))
}

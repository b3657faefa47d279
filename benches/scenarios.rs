//! `cargo bench`: the published study through criterion (one group per call count, one function
//! per transport, `Throughput::Elements`), the push scenario (one group per flush policy), the
//! roundtrip scenario (one group per client count), connect (sequential connections and a
//! ramp) and payload (one group per size and kind, `Throughput::Bytes`); then `latency` and
//! `fanout` and `reconnect` through the runner alone, then study (one N) and push again over
//! TLS (a second in-process server serving https, wss and the floor over TLS), and every
//! measured run written as a pushbench result under `results/latest/` with its charts and
//! REPORT.md.
//!
//! Latency, fan-out and reconnect are not criterion functions: the server paces them (a fixed
//! rate, a broadcast every interval, a live feed), so their wall time is set by the schedule and criterion's
//! estimate would only restate it; their figures are latency distributions from the scheduled
//! send time, which the runner measures. They run once each, with their default configuration
//! (fan-out to 10 000 clients in driver processes of this build's `pushbench` binary).
//!
//! Every iteration criterion times is one whole study case from the shared runner (connect
//! included, clock stopped at the last reply); the same runs are combined into the result file,
//! so criterion's estimates and the report describe the same measurements.
//!
//! Criterion's target of 5 s per function is exceeded by the slow cases (10 000 calls, push
//! with a write per message): it warns and takes its minimum of 10 samples of one iteration,
//! which keeps the whole bench near 10 minutes on 2 cores.
//!
//! `cargo bench -- --test` (CI's quick mode) runs each function once and writes the result to
//! `target/pushbench-bench-test/` instead, leaving the committed reference run alone.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use pushbench::{Harness, Plan, RunWriter};
use pushbench_core::{
    ConnectConfig, DriverSet, FanoutConfig, Flush, LatencyConfig, Measurement, PayloadConfig,
    PushConfig, PushRequest, ReconnectConfig, RoundtripConfig, RunEvent, StudyConfig, StudyGroup,
    StudyVariant, Target, combine, run_connect, run_push_case, run_roundtrip_case, run_study_case,
    run_study_group,
};

/// Every timed run, grouped by case in the order the cases first ran.
#[derive(Default)]
struct Runs(Mutex<Vec<(CaseKey, Vec<Measurement>)>>);

/// Scenario, n, variant, flush policy or client count, payload bytes, transport.
type CaseKey = (String, u64, String, Option<String>, Option<u64>, String);

impl Runs {
    fn record(&self, m: Measurement) {
        let c = &m.case;
        let key = (
            c.scenario.clone(),
            c.params.n.unwrap_or(0),
            c.variant.clone(),
            c.params
                .flush
                .clone()
                .or_else(|| c.params.clients.map(|n| format!("clients={n}"))),
            c.params.payload_bytes,
            c.transport.clone(),
        );
        let mut runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match runs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(m),
            None => runs.push((key, vec![m])),
        }
    }

    fn into_cases(self) -> impl Iterator<Item = pushbench_schema::CaseResult> {
        let runs = self.0.into_inner().unwrap_or_else(|e| e.into_inner());
        runs.into_iter().filter_map(|(_, list)| combine(&list))
    }
}

fn main() {
    // plotters' text needs a registered font once ab_glyph is on; criterion's charts too.
    pushbench_report::register_font();
    let test_mode = std::env::args().any(|a| a == "--test");
    // Criterion's positional arguments filter the benchmarks: say so in the result.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let config = StudyConfig::default();
    // A second server serves TLS, for the TLS variants of study and push (run last).
    let tls = pushbench_server::ServerTls::self_signed(None).expect("generate a certificate");
    let mut harness = Harness::start_with(Some(tls)).expect("start the in-process servers");
    // Fan-out beyond one process runs driver processes of the pushbench binary of this build.
    harness.driver_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_pushbench")));
    let (latency, fanout, reconnect) = if test_mode {
        (
            LatencyConfig::quick(),
            FanoutConfig::quick(),
            ReconnectConfig::quick(),
        )
    } else {
        (
            LatencyConfig::default(),
            FanoutConfig::default(),
            ReconnectConfig::default(),
        )
    };
    let connect = ConnectConfig {
        connections: 100,
        ..ConnectConfig::default()
    };
    let payload = PayloadConfig::bench();
    let runs = Runs::default();

    let out = match std::env::var_os("PUSHBENCH_OUT") {
        Some(dir) => PathBuf::from(dir),
        None if test_mode => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pushbench-bench-test")
        }
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results/latest"),
    };
    let mut run_config = harness.run_config("study", &config);
    run_config["push"] = serde_json::to_value(PushConfig::default()).unwrap_or_default();
    run_config["roundtrip"] = serde_json::to_value(RoundtripConfig::default()).unwrap_or_default();
    run_config["connect"] = serde_json::to_value(&connect).unwrap_or_default();
    run_config["payload"] = serde_json::to_value(&payload).unwrap_or_default();
    run_config["latency"] = serde_json::to_value(&latency).unwrap_or_default();
    run_config["fanout"] = serde_json::to_value(&fanout).unwrap_or_default();
    run_config["reconnect"] = serde_json::to_value(&reconnect).unwrap_or_default();
    let tls_plans = tls_plans(test_mode);
    run_config["tls_runs"] = serde_json::json!({
        "what": "study and push again over TLS, through the runner (not criterion), after the paced scenarios; params.tls marks these cases",
        "plans": tls_plans.iter().map(|p| serde_json::json!({"scenario": p.id(), "config": p.config_value()})).collect::<Vec<_>>(),
    });
    let mut source = String::from(
        "cargo bench --bench scenarios: criterion sample_size 10, flat sampling; every iteration criterion ran \
         (warm-up included) is one run of its case",
    );
    if test_mode {
        source.push_str(" (--test: one iteration each)");
    }
    if !filters.is_empty() {
        source.push_str(&format!(" (filtered to: {})", filters.join(" ")));
    }
    run_config["source"] = serde_json::json!(source);
    // Created now so that started_at is the bench's start; cases are added when combined.
    let mut writer = RunWriter::create(&out, run_config).expect("create the result directory");
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let groups = config.groups();
    for &n in &config.calls {
        let mut bench = criterion.benchmark_group(format!("study/n={n}"));
        bench.throughput(Throughput::Elements(n));
        bench.sampling_mode(SamplingMode::Flat);
        for group in groups.iter().filter(|g| g.n == n) {
            bench_group(&mut bench, &harness, &config, group, &runs);
        }
        bench.finish();
    }
    let push = PushConfig::default();
    for flush in &push.flush {
        let mut bench = criterion.benchmark_group(format!("push/{}", flush.id()));
        bench.throughput(Throughput::Elements(push.messages));
        bench.sampling_mode(SamplingMode::Flat);
        let request = PushRequest {
            n: push.messages,
            payload: push.payload_bytes,
            flush: *flush,
            binary: false,
        };
        let (target, timeout, runs) = (harness.target(), push.timeout(), &runs);
        for &t in &push.transports {
            let Some(driver) = harness.drivers.get(t) else {
                continue;
            };
            bench_case(&mut bench, t.id(), &harness, runs, async || {
                vec![run_push_case(driver, &target, request, timeout).await]
            });
        }
        bench.finish();
    }
    let roundtrip = RoundtripConfig::default();
    for &clients in &roundtrip.clients {
        let mut bench = criterion.benchmark_group(format!("roundtrip/clients={clients}"));
        bench.throughput(Throughput::Elements(clients * roundtrip.round_trips));
        bench.sampling_mode(SamplingMode::Flat);
        let (target, config, runs) = (harness.target(), &roundtrip, &runs);
        for &t in &roundtrip.transports {
            let Some(driver) = harness.drivers.get(t) else {
                continue;
            };
            bench_case(&mut bench, t.id(), &harness, runs, async || {
                vec![run_roundtrip_case(driver, &target, clients, config).await]
            });
        }
        bench.finish();
    }
    bench_connect(&mut criterion, &harness, &connect, &runs);
    bench_payload(&mut criterion, &harness, &payload, &runs);
    criterion.final_summary();

    for mut case in runs.into_cases() {
        harness.label_case(&mut case);
        writer.push(case).expect("write results");
    }
    // Paced scenarios: once each through the runner (see the crate docs); then the TLS
    // variants of study and push.
    let plain = harness.target();
    let tls_target = harness.tls_target().expect("the TLS server");
    let jobs = [
        Plan::Latency(latency),
        Plan::Fanout(fanout),
        Plan::Reconnect(reconnect),
    ]
    .into_iter()
    .map(|plan| (plan, &plain))
    .chain(tls_plans.into_iter().map(|plan| (plan, &tls_target)));
    for (plan, target) in jobs {
        let over = if target.tls.is_some() {
            " over TLS"
        } else {
            ""
        };
        println!(
            "pushbench: {}{over} (expected about {:?})",
            plan.id(),
            plan.expected()
        );
        let mut on_event = writer.bench_events();
        harness
            .runtime
            .block_on(plan.run_on(&harness, target, &mut on_event));
    }
    let file = writer.finish().expect("write results");
    let rendered = pushbench_report::render(&out).expect("render the report");
    println!("\n{}", pushbench::summary_table(&file));
    println!(
        "pushbench: wrote {} and {} charts",
        rendered.report.display(),
        rendered.charts.len()
    );
}

/// The TLS variants: study at one N (sequential, the transports one after another) and push
/// under both flush policies, with the plain cases' parameters so the report can set them side
/// by side. Through the runner rather than criterion, to keep them near 15 s: push with a
/// write per message takes seconds per run over long polling and SSE.
fn tls_plans(test_mode: bool) -> Vec<Plan> {
    // The plain push cases above use the default message count in both modes: so do these.
    let messages = PushConfig::default().messages;
    let (calls, repeats) = if test_mode { (100, 1) } else { (1_000, 3) };
    let push = |flush: Flush, repeats: u32| {
        Plan::Push(PushConfig {
            messages,
            flush: vec![flush],
            repeats,
            ..PushConfig::default()
        })
    };
    vec![
        Plan::Study(StudyConfig {
            calls: vec![calls],
            all_at_once: false,
            repeats,
            ..StudyConfig::default()
        }),
        push(Flush::Batched, repeats),
        // One run: about 11 s here (over TLS: long polling 6.3 s, SSE 3.4 s, ws and tcp < 0.5 s).
        push(Flush::PerMessage, 1),
    ]
}

/// Criterion's minimum for the groups below: 10 samples of one iteration each, after one
/// warm-up iteration, so every case is measured about ten times whatever it costs.
fn minimal(bench: &mut BenchmarkGroup<'_, WallTime>) {
    bench.sampling_mode(SamplingMode::Flat);
    bench.warm_up_time(Duration::from_millis(1));
    bench.measurement_time(Duration::from_millis(10));
}

/// `connect/first-message` (sequential connections) and `connect/ramp=C`: every iteration is
/// one connect case of the runner.
fn bench_connect(
    criterion: &mut Criterion,
    harness: &Harness,
    config: &ConnectConfig,
    runs: &Runs,
) {
    let groups = std::iter::once(("first-message".to_owned(), None))
        .chain(config.ramp.iter().map(|&c| (format!("ramp={c}"), Some(c))));
    for (name, ramp) in groups {
        let mut bench = criterion.benchmark_group(format!("connect/{name}"));
        minimal(&mut bench);
        bench.throughput(Throughput::Elements(ramp.unwrap_or(config.connections)));
        for &t in &config.transports {
            let one = ConnectConfig {
                ramp: ramp.into_iter().collect(),
                transports: vec![t],
                ..config.clone()
            };
            let (drivers, target) = (&harness.drivers, harness.target());
            bench_case(&mut bench, t.id(), harness, runs, async || {
                connect_runs(&one, drivers, &target, ramp.is_some()).await
            });
        }
        bench.finish();
    }
}

/// The measurements of one connect group: the sequential connections, or the ramp.
async fn connect_runs(
    config: &ConnectConfig,
    drivers: &DriverSet,
    target: &Target,
    ramp: bool,
) -> Vec<Measurement> {
    let mut measured = Vec::new();
    let mut keep = |event: RunEvent<'_>| {
        if let RunEvent::CaseMeasured { case, .. } = event {
            if (case.variant == "ramp") == ramp {
                measured.push(case.clone());
            }
        }
    };
    let only = ConnectConfig {
        ramp: if ramp {
            config.ramp.clone()
        } else {
            Vec::new()
        },
        connections: if ramp { 1 } else { config.connections },
        ..config.clone()
    };
    run_connect(&only, drivers, target, &mut keep).await;
    measured
        .into_iter()
        .map(|case| {
            let latency = case
                .histogram
                .as_deref()
                .and_then(|h| pushbench_core::LatencyHistogram::from_base64(h).ok())
                .unwrap_or_default();
            Measurement { case, latency }
        })
        .collect()
}

/// `payload/{size}-{kind}`: every iteration is one push of the payload scenario's size.
fn bench_payload(
    criterion: &mut Criterion,
    harness: &Harness,
    config: &PayloadConfig,
    runs: &Runs,
) {
    let kinds: &[bool] = if config.binary {
        &[false, true]
    } else {
        &[false]
    };
    for &size in &config.sizes {
        for &binary in kinds {
            let kind = if binary { "binary" } else { "text" };
            let mut bench = criterion.benchmark_group(format!("payload/{size}-{kind}"));
            minimal(&mut bench);
            let n = config.messages(size);
            bench.throughput(Throughput::Bytes(n * size as u64));
            let request = PushRequest {
                n,
                payload: size,
                flush: Flush::Batched,
                binary,
            };
            let timeout = Duration::from_millis(config.timeout_ms);
            let target = harness.target();
            for &t in &config.transports {
                let Some(driver) = harness.drivers.get(t) else {
                    continue;
                };
                bench_case(&mut bench, t.id(), harness, runs, async || {
                    let mut m = run_push_case(driver, &target, request, timeout).await;
                    pushbench_core::runner::as_payload_case(&mut m, kind);
                    vec![m]
                });
            }
            bench.finish();
        }
    }
}

/// One criterion function per transport (sequential), or one for the concurrent group.
fn bench_group(
    bench: &mut BenchmarkGroup<'_, WallTime>,
    harness: &Harness,
    config: &StudyConfig,
    group: &StudyGroup,
    runs: &Runs,
) {
    let (n, target, timeout) = (group.n, harness.target(), config.call_timeout());
    match group.variant {
        StudyVariant::Sequential => {
            for &t in &group.transports {
                let Some(driver) = harness.drivers.get(t) else {
                    continue;
                };
                bench_case(bench, t.id(), harness, runs, async || {
                    vec![
                        run_study_case(
                            driver,
                            &target,
                            n,
                            config.block_size,
                            timeout,
                            group.variant,
                        )
                        .await,
                    ]
                });
            }
        }
        StudyVariant::AllAtOnce => {
            bench_case(bench, "all-at-once", harness, runs, async || {
                run_study_group(&harness.drivers, &target, group, config).await
            });
        }
    }
}

/// One criterion function: every iteration is one runner call, timed as its slowest case
/// (cases of one call run concurrently), and every case it measured is recorded in `runs`.
fn bench_case(
    bench: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    harness: &Harness,
    runs: &Runs,
    run: impl AsyncFn() -> Vec<Measurement>,
) {
    bench.bench_function(name, |b| {
        b.to_async(&harness.runtime).iter_custom(|iters| {
            let run = &run;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let measured = run().await;
                    total += measured
                        .iter()
                        .map(Measurement::elapsed)
                        .max()
                        .unwrap_or_default();
                    measured.into_iter().for_each(|m| runs.record(m));
                }
                total
            }
        });
    });
}

//! `cargo bench`: the published study through criterion (one group per call count, one function
//! per transport, `Throughput::Elements`), the push scenario (one group per flush policy) and
//! the roundtrip scenario (one group per client count),
//! then the measured runs written as a pushbench result under `results/latest/` with its charts
//! and REPORT.md.
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
use pushbench::{Harness, RunWriter};
use pushbench_core::{
    Measurement, PushConfig, PushRequest, RoundtripConfig, StudyConfig, StudyGroup, StudyVariant,
    combine, run_push_case, run_roundtrip_case, run_study_case, run_study_group,
};

/// Every timed run, grouped by case in the order the cases first ran.
#[derive(Default)]
struct Runs(Mutex<Vec<(CaseKey, Vec<Measurement>)>>);

/// Scenario, n, variant, flush policy or client count, transport.
type CaseKey = (String, u64, String, Option<String>, String);

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
    let harness = Harness::start().expect("start the in-process server");
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
    criterion.final_summary();

    for case in runs.into_cases() {
        writer.push(case).expect("write results");
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

//! The `pushbench` command line: run scenarios, render reports, list what exists.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pushbench::{Harness, RunWriter, summary_table};
use pushbench_core::{CATALOGUE, RunEvent, StudyConfig, Transport, scenario};

/// WebSockets or Server-Sent Events? Measures both (plus long polling and a raw-TCP floor)
/// on an in-process server and writes results a report can be regenerated from.
#[derive(Parser)]
#[command(
    name = "pushbench",
    version,
    about,
    after_help = "Examples:\n  pushbench run study --quick --out /tmp/x   # seconds\n  pushbench report /tmp/x                    # charts and REPORT.md\n  pushbench list                             # the scenarios"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and write DIR/run.json and DIR/cases.csv.
    Run(RunArgs),
    /// Render DIR/charts/*.svg|png and DIR/REPORT.md from DIR/run.json.
    Report {
        /// A run directory (holding run.json).
        dir: PathBuf,
    },
    /// List the scenarios.
    List,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenario id (see `pushbench list`).
    scenario: String,
    /// Reduced set that runs in seconds: 100 and 1000 calls, one repeat.
    #[arg(long)]
    quick: bool,
    /// Output directory [default: results/<date>-<host>-<scenario>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Transports to measure, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "ws,sse,longpoll,tcp"
    )]
    transports: Vec<Transport>,
    /// Call counts, comma-separated [default: 100,1000,10000; --quick: 100,1000].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    calls: Option<Vec<u64>>,
    /// Characters of random data per reply.
    #[arg(long, default_value_t = 1000)]
    block_size: usize,
    /// Runs per case; the median is reported with the range [default: 3; --quick: 1].
    #[arg(long)]
    repeats: Option<u32>,
    /// Milliseconds to wait for one reply before counting it lost.
    #[arg(long, default_value_t = 10_000)]
    call_timeout_ms: u64,
    /// Skip the all-at-once variant (web transports concurrently).
    #[arg(long)]
    no_all_at_once: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Report { dir } => report(dir),
        Command::List => {
            list();
            Ok(ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("pushbench: {e:#}");
        ExitCode::from(2)
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

fn study_config(args: &RunArgs) -> StudyConfig {
    let base = if args.quick {
        StudyConfig::quick()
    } else {
        StudyConfig::default()
    };
    StudyConfig {
        calls: args.calls.clone().unwrap_or(base.calls),
        block_size: args.block_size,
        transports: args.transports.clone(),
        all_at_once: !args.no_all_at_once,
        repeats: args.repeats.unwrap_or(base.repeats),
        call_timeout_ms: args.call_timeout_ms,
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let Some(info) = scenario(&args.scenario) else {
        let ids: Vec<_> = CATALOGUE.iter().map(|s| s.id).collect();
        anyhow::bail!(
            "unknown scenario `{}` (known: {})",
            args.scenario,
            ids.join(", ")
        );
    };
    if !info.implemented {
        anyhow::bail!(
            "scenario `{}` is not implemented in this build yet (implemented: study)",
            info.id
        );
    }
    let config = study_config(&args);
    config.validate().map_err(anyhow::Error::msg)?;

    let harness = Harness::start()?;
    let out = args.out.clone().unwrap_or_else(|| default_out(info.id));
    let mut writer = RunWriter::create(&out, harness.run_config(&config))?;
    let total = config.groups().len() as u64 * u64::from(config.repeats);
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {percent}% {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));

    let mut write_error = None;
    let interrupted = {
        let mut on_event = |event: RunEvent<'_>| match event {
            RunEvent::GroupStarted { label, done, .. } => {
                bar.set_position(done as u64);
                bar.set_message(label);
            }
            RunEvent::CaseMeasured { index, case } => {
                if let Err(e) = writer.set(index, case.clone()) {
                    write_error.get_or_insert(e);
                }
            }
        };
        let target = harness.target();
        harness.runtime.block_on(async {
            tokio::select! {
                _ = pushbench_core::run_study(&config, &harness.drivers, &target, &mut on_event) => false,
                _ = tokio::signal::ctrl_c() => true,
            }
        })
    };
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let file = if interrupted {
        let file = writer.abandon()?;
        eprintln!(
            "interrupted: {} finished cases kept in {} (marked incomplete)",
            file.cases.len(),
            out.display()
        );
        print!("{}", summary_table(&file));
        return Ok(ExitCode::from(130));
    } else {
        writer.finish()?
    };
    print!("{}", summary_table(&file));
    println!(
        "\nwrote {}/run.json and cases.csv; render with: pushbench report {}",
        out.display(),
        out.display()
    );
    let flagged = file.cases.iter().filter(|c| !c.is_ok()).count();
    if flagged > 0 {
        eprintln!(
            "pushbench: {flagged} case(s) flagged (error or integrity fault): see the status column"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn default_out(scenario: &str) -> PathBuf {
    let date = pushbench_core::env::rfc3339_now();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    PathBuf::from("results").join(format!("{}-{}-{scenario}", &date[..10], host.trim()))
}

//! The `pushbench` command line: run scenarios, render reports, list what exists.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pushbench::{Harness, RunWriter, summary_table};
use pushbench_core::{
    CATALOGUE, Flush, PushConfig, RoundtripConfig, RunEvent, StudyConfig, Transport, scenario,
};

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
    /// Reduced set that runs in seconds (study: 100 and 1000 calls; push: 10 000 messages;
    /// roundtrip: 50 round trips per client; one repeat).
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
    /// Runs per case; the median is reported with the range [default: 3; --quick: 1].
    #[arg(long)]
    repeats: Option<u32>,
    /// study: call counts, comma-separated [default: 100,1000,10000; --quick: 100,1000].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        help_heading = "Study"
    )]
    calls: Option<Vec<u64>>,
    /// study: characters of random data per reply.
    #[arg(long, default_value_t = 1000, help_heading = "Study")]
    block_size: usize,
    /// study: milliseconds to wait for one reply before counting it lost.
    #[arg(long, default_value_t = 10_000, help_heading = "Study")]
    call_timeout_ms: u64,
    /// study: skip the all-at-once variant (web transports concurrently).
    #[arg(long, help_heading = "Study")]
    no_all_at_once: bool,
    /// push: messages per case [default: 100000; --quick: 10000].
    #[arg(long, help_heading = "Push")]
    messages: Option<u64>,
    /// push, roundtrip: data characters per message.
    #[arg(long, default_value_t = 64, help_heading = "Push")]
    payload_bytes: usize,
    /// roundtrip: concurrent client counts, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "1,100",
        help_heading = "Roundtrip"
    )]
    clients: Vec<u64>,
    /// roundtrip: sequential round trips per client [default: 200; --quick: 50].
    #[arg(long, help_heading = "Roundtrip")]
    round_trips: Option<u64>,
    /// push: flush policies, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "per_message,batched",
        help_heading = "Push"
    )]
    flush: Vec<Flush>,
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

/// A scenario with its configuration, ready to run.
enum Plan {
    Study(StudyConfig),
    Push(PushConfig),
    Roundtrip(RoundtripConfig),
}

impl Plan {
    fn from_args(id: &str, args: &RunArgs) -> anyhow::Result<Plan> {
        let plan = match id {
            "study" => {
                let base = if args.quick {
                    StudyConfig::quick()
                } else {
                    StudyConfig::default()
                };
                let config = StudyConfig {
                    calls: args.calls.clone().unwrap_or(base.calls),
                    block_size: args.block_size,
                    transports: args.transports.clone(),
                    all_at_once: !args.no_all_at_once,
                    repeats: args.repeats.unwrap_or(base.repeats),
                    call_timeout_ms: args.call_timeout_ms,
                };
                config.validate().map_err(anyhow::Error::msg)?;
                Plan::Study(config)
            }
            "push" => {
                let base = if args.quick {
                    PushConfig::quick()
                } else {
                    PushConfig::default()
                };
                let config = PushConfig {
                    messages: args.messages.unwrap_or(base.messages),
                    payload_bytes: args.payload_bytes,
                    transports: args.transports.clone(),
                    flush: args.flush.clone(),
                    repeats: args.repeats.unwrap_or(base.repeats),
                    timeout_ms: base.timeout_ms,
                };
                config.validate().map_err(anyhow::Error::msg)?;
                Plan::Push(config)
            }
            "roundtrip" => {
                let base = if args.quick {
                    RoundtripConfig::quick()
                } else {
                    RoundtripConfig::default()
                };
                let config = RoundtripConfig {
                    clients: args.clients.clone(),
                    round_trips: args.round_trips.unwrap_or(base.round_trips),
                    payload_bytes: args.payload_bytes,
                    transports: args.transports.clone(),
                    repeats: args.repeats.unwrap_or(base.repeats),
                    timeout_ms: base.timeout_ms,
                };
                config.validate().map_err(anyhow::Error::msg)?;
                Plan::Roundtrip(config)
            }
            other => anyhow::bail!("scenario `{other}` is not implemented in this build yet"),
        };
        Ok(plan)
    }

    /// Group runs in the whole plan, for the progress bar.
    fn total(&self) -> u64 {
        match self {
            Plan::Study(c) => c.groups().len() as u64 * u64::from(c.repeats),
            Plan::Push(c) => c.flush.len() as u64 * u64::from(c.repeats),
            Plan::Roundtrip(c) => c.clients.len() as u64 * u64::from(c.repeats),
        }
    }

    fn config(&self, harness: &Harness) -> serde_json::Value {
        match self {
            Plan::Study(c) => harness.run_config("study", c),
            Plan::Push(c) => harness.run_config("push", c),
            Plan::Roundtrip(c) => harness.run_config("roundtrip", c),
        }
    }

    async fn run(&self, harness: &Harness, on_event: &mut (dyn FnMut(RunEvent<'_>) + Send)) {
        let target = harness.target();
        match self {
            Plan::Study(c) => {
                drop(pushbench_core::run_study(c, &harness.drivers, &target, on_event).await)
            }
            Plan::Push(c) => {
                drop(pushbench_core::run_push(c, &harness.drivers, &target, on_event).await)
            }
            Plan::Roundtrip(c) => {
                drop(pushbench_core::run_roundtrip(c, &harness.drivers, &target, on_event).await)
            }
        }
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
    }
    let plan = Plan::from_args(info.id, &args)?;

    let harness = Harness::start()?;
    let out = args.out.clone().unwrap_or_else(|| default_out(info.id));
    let mut writer = RunWriter::create(&out, plan.config(&harness))?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(plan.total())
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
        harness.runtime.block_on(async {
            tokio::select! {
                _ = plan.run(&harness, &mut on_event) => false,
                _ = tokio::signal::ctrl_c() => true,
            }
        })
    };
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

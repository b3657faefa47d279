//! `run --network`: the scenario measured between two network namespaces joined through an
//! emulated network (scripts/netns.sh), and `delayline`, the router's packet delay line.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use pushbench::network::{self, CLIENT_NS, Netns, NetworkSpec, SERVER_IP, SERVER_NS};
use pushbench_delayline::{DelayLine, open_tun};
use pushbench_schema::RunFile;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::RunArgs;

#[derive(clap::Args)]
pub struct DelaylineArgs {
    /// The TUN device to attach to (scripts/netns.sh creates `pbdelay` in pb-router).
    #[arg(long, default_value = "pbdelay", value_name = "NAME")]
    dev: String,
    /// One-way delay each packet is held, e.g. 25ms or 12500us (a round trip through the
    /// router gains twice this).
    #[arg(long, value_name = "DURATION", value_parser = parse_delay)]
    delay: Duration,
    /// Packets that may wait at once; a packet arriving at a full queue is dropped and counted.
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    queue: usize,
}

fn parse_delay(text: &str) -> Result<Duration, String> {
    let spec: NetworkSpec = format!("rtt={text}")
        .parse()
        .map_err(|_| format!("`{text}`: expected e.g. 25ms, 12500us or 1s"))?;
    Ok(Duration::from_micros(spec.rtt_us))
}

/// Runs the delay line until SIGTERM or Ctrl-C (or the device disappears), then prints its
/// packet counts on stderr.
pub fn delayline(args: DelaylineArgs) -> anyhow::Result<ExitCode> {
    let tun = open_tun(&args.dev)?;
    let line = DelayLine::new(args.delay, args.queue);
    let counters = line.counters();
    let forwarding = std::thread::spawn(move || line.run(tun));
    eprintln!(
        "delayline ready dev {} delay {}us queue {}",
        args.dev,
        args.delay.as_micros(),
        args.queue
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut ended = tokio::task::spawn_blocking(move || forwarding.join());
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            result = &mut ended => {
                if let Ok(Ok(Err(e))) = result {
                    eprintln!("delayline: {e}");
                }
            }
        }
        anyhow::Ok(())
    })?;
    eprintln!("delayline stopped: {}", counters.summary());
    // The forwarding thread may still block in read(); the process ends it.
    std::process::exit(0)
}

/// The arguments of this `run`, less `--network` and `--out`, to hand to the client process.
fn client_args() -> Vec<String> {
    let mut args = std::env::args().skip_while(|a| a != "run").skip(1);
    let mut kept = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--network" || arg == "--out" {
            args.next();
        } else if !(arg.starts_with("--network=") || arg.starts_with("--out=")) {
            kept.push(arg);
        }
    }
    kept
}

/// How one network's measurement ended.
enum Outcome {
    Finished,
    Interrupted,
}

/// `run` with `--network`: for each network, the namespaces up, `pushbench serve` in
/// pb-server, this run's scenario in pb-client against it, the namespaces down; then one
/// run.json with every case labelled by its network.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    // Bad scenarios and flags fail here, before anything is set up.
    crate::plans(args)?;
    network::check_host().map_err(anyhow::Error::msg)?;
    if Path::new(network::STATE_DIR).join("network").exists() {
        // `netns.sh up` replaces what is up: that would pull the network from under another run.
        anyhow::bail!(
            "an emulated network is already up ({}/network exists: another `run --network`?); wait for it, or remove it with `scripts/netns.sh down`",
            network::STATE_DIR
        );
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::default_out(&args.scenario));
    let parts = tempfile_dir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut merged: Option<RunFile> = None;
    let mut interrupted = false;
    for (i, &spec) in args.network.iter().enumerate() {
        eprintln!(
            "pushbench: network {spec} ({} of {})",
            i + 1,
            args.network.len()
        );
        let part = parts.join(format!("network-{i}"));
        let outcome = {
            let _netns = Netns::up(spec, &exe).map_err(anyhow::Error::msg)?;
            runtime.block_on(measure(&exe, &part))?
            // `_netns` drops here: scripts/netns.sh down, whatever happened.
        };
        if part.join(pushbench_schema::RUN_JSON).exists() {
            let mut file = RunFile::read(&part)?;
            for case in &mut file.cases {
                case.params.network = Some(spec.to_string());
            }
            match &mut merged {
                None => merged = Some(file),
                Some(all) => {
                    all.cases.append(&mut file.cases);
                    all.run.complete &= file.run.complete;
                    all.run.finished_at = file.run.finished_at;
                }
            }
        }
        if let Outcome::Interrupted = outcome {
            interrupted = true;
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&parts);
    let Some(mut file) = merged else {
        anyhow::bail!("the client process wrote no results");
    };
    let specs: Vec<String> = args.network.iter().map(NetworkSpec::to_string).collect();
    file.run.config["networks"] = serde_json::json!(specs);
    file.run.config["network_setup"] = serde_json::json!(
        "client in netns pb-client, `pushbench serve` in pb-server, joined through pb-router (scripts/netns.sh): a userspace delay line holds every packet rtt/2 per direction (FIFO), nftables drops `loss` per direction, tc tbf limits each direction to `rate`"
    );
    file.run.complete &= !interrupted;
    file.write(&out)?;
    print!("{}", pushbench::summary_table(&file));
    println!(
        "\nwrote {}/run.json and cases.csv; render with: pushbench report {}",
        out.display(),
        out.display()
    );
    if interrupted {
        return Ok(ExitCode::from(130));
    }
    Ok(crate::flagged_exit(&file))
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("pushbench-network-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// `pushbench serve` in pb-server, then this run's scenario in pb-client writing to `part`.
async fn measure(exe: &Path, part: &Path) -> anyhow::Result<Outcome> {
    let mut server = network::in_namespace(SERVER_NS, exe)
        .args(["serve", "--bind"])
        .arg(format!("{SERVER_IP}:0"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `pushbench serve` in pb-server")?;
    let stdout = server.stdout.take().context("serve's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut http, mut tcp) = (None, None);
    let read = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = line.strip_prefix("http ") {
                http = Some(addr.to_owned());
            } else if let Some(addr) = line.strip_prefix("tcp ") {
                tcp = Some(addr.to_owned());
                break;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .context("`pushbench serve` in pb-server printed no addresses within 10 s")??;
    let (Some(http), Some(tcp)) = (http, tcp) else {
        anyhow::bail!("`pushbench serve` in pb-server ended before printing its addresses");
    };
    let mut client = network::in_namespace(CLIENT_NS, exe)
        .arg("run")
        .args(client_args())
        .arg("--target")
        .arg(format!("http://{http}"))
        .args([
            "--tcp-target",
            &tcp,
            "--server-label",
            pushbench::IN_PROCESS_SERVER,
        ])
        .arg("--out")
        .arg(part)
        .stdin(Stdio::null())
        // Its summary table names a temporary directory; the merged one is printed at the end.
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the clients in pb-client")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let outcome = tokio::select! {
        status = client.wait() => {
            let status = status?;
            // Exit 1 is "some case flagged": the cases are in run.json and say so.
            if !status.success() && status.code() != Some(1) {
                eprintln!("pushbench: the clients in pb-client exited with {status}");
            }
            if status.code() == Some(130) { Outcome::Interrupted } else { Outcome::Finished }
        }
        _ = tokio::signal::ctrl_c() => Outcome::Interrupted,
        _ = term.recv() => Outcome::Interrupted,
    };
    if let Outcome::Interrupted = outcome {
        // Ctrl-C reached the client too; give it a moment to write what it measured.
        let _ = tokio::time::timeout(Duration::from_secs(5), client.wait()).await;
        let _ = client.kill().await;
    }
    let _ = server.kill().await;
    Ok(outcome)
}

//! Broadcast fan-out at the open-files limit: `pushbench serve` as a child process (the whole
//! per-process file limit for its sockets), the subscribers in `pushbench drive` child processes
//! from their own loopback source addresses (127.X.Y.2, 127.X.Y.3, ...: each its own ephemeral
//! ports and file limit), their results combined by `pushbench merge`, and the p99 of delivery
//! latency checked against issue 6's 100 ms. Zero loss is required: a lost, duplicated or
//! out-of-order message fails the measurement.

use std::path::Path;
use std::process::Stdio;

use anyhow::Context;
use pushbench_schema::{Bound, PerfTarget, RunFile};
use tokio::process::Command;

use super::PerfTransport;
use super::memory::ServerChild;

/// The issue-6 bound on the broadcast p99, ms.
pub const SCALE_TARGET_MS: f64 = 100.0;
/// Subscribers one driver process holds at most (its file limit is 20 000 here).
pub const CLIENTS_PER_DRIVER: u64 = 9_500;

/// What [`scale`] measures: how many subscribers, how many broadcasts how far apart, and how
/// many worker threads the server gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleSpec {
    /// Subscribers over every driver process.
    pub clients: u64,
    /// Messages broadcast.
    pub messages: u64,
    /// Milliseconds between broadcast messages.
    pub interval_ms: u64,
    /// Worker threads of the `pushbench serve` child.
    pub server_threads: usize,
}

/// What [`scale`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// The transport of the subscribers.
    pub transport: PerfTransport,
    /// What was measured.
    pub spec: ScaleSpec,
    /// Driver processes.
    pub drivers: u64,
    /// Messages delivered over every subscriber.
    pub received: u64,
    /// Delivery latency percentiles, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
}

impl Scale {
    /// The figure as an issue-6 target: `scale.fanout_<clients>.<transport>.p99_ms` ≤ 100 ms.
    pub fn target(&self) -> PerfTarget {
        let spec = &self.spec;
        scale_target(self.transport, spec, Some(self.p99_ms)).with_note(format!(
            "pushbench serve ({} worker thread{}) as a child, {} drive processes from their own loopback addresses, {} messages {} ms apart, {}/{} delivered; p50 {:.1} ms",
            spec.server_threads,
            if spec.server_threads == 1 { "" } else { "s" },
            self.drivers,
            spec.messages,
            spec.interval_ms,
            self.received,
            spec.clients * spec.messages,
            self.p50_ms
        ))
    }

    /// The target of a measurement that failed: no value, the error as its note.
    pub fn unmeasured(
        transport: PerfTransport,
        spec: &ScaleSpec,
        error: &anyhow::Error,
    ) -> PerfTarget {
        scale_target(transport, spec, None).with_note(format!("not measured: {error:#}"))
    }
}

fn scale_target(transport: PerfTransport, spec: &ScaleSpec, p99_ms: Option<f64>) -> PerfTarget {
    PerfTarget::new(
        &format!("scale.fanout_{}.{transport}.p99_ms", spec.clients),
        &format!(
            "broadcast delivery p99 to {} {} subscribers",
            spec.clients,
            transport.name().to_uppercase()
        ),
        "ms",
        Bound::AtMost,
        SCALE_TARGET_MS,
        p99_ms,
    )
}

/// Driver processes for `clients` subscribers: `ceil(clients / CLIENTS_PER_DRIVER)`.
pub fn drivers_for(clients: u64) -> u64 {
    clients.div_ceil(CLIENTS_PER_DRIVER).max(1)
}

/// Broadcasts `spec.messages` messages to `spec.clients` subscribers of `transport` and
/// returns the delivery latency; `exe` is the pushbench binary, `work` a directory for the
/// drivers' results.
pub async fn scale(
    exe: &Path,
    transport: PerfTransport,
    spec: &ScaleSpec,
    work: &Path,
) -> anyhow::Result<Scale> {
    let ScaleSpec {
        clients, messages, ..
    } = *spec;
    anyhow::ensure!(clients > 0, "--clients: expected at least 1");
    anyhow::ensure!(messages > 0, "--messages: expected at least 1");
    anyhow::ensure!(spec.interval_ms > 0, "--interval-ms: expected at least 1");
    anyhow::ensure!(
        spec.server_threads > 0,
        "--server-threads: expected at least 1"
    );
    let server = ServerChild::start(exe, spec.server_threads).await?;
    let drivers = drivers_for(clients);
    let topic = format!("scale-{}-{}", transport, std::process::id());
    let mut children = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..drivers {
        let share = clients / drivers + u64::from(i < clients % drivers);
        let dir = work.join(format!("driver-{i}"));
        let child = Command::new(exe)
            .arg("drive")
            .arg("--target")
            .arg(format!("http://{}", server.http))
            .args(["--transport", transport.name()])
            .arg("--source")
            .arg(pushbench_core::broadcast::loopback_source(i).to_string())
            .arg("--clients")
            .arg(share.to_string())
            .arg("--subscribers")
            .arg(clients.to_string())
            .arg("--messages")
            .arg(messages.to_string())
            .arg("--interval-us")
            .arg((spec.interval_ms * 1000).to_string())
            .arg("--topic")
            .arg(&topic)
            .arg("--out")
            .arg(&dir)
            .arg("-q")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start driver {i}"))?;
        children.push(child);
        dirs.push(dir);
    }
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().await?;
        anyhow::ensure!(
            out.status.success(),
            "driver {i} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let merged = work.join("merged");
    let out = Command::new(exe)
        .arg("merge")
        .args(&dirs)
        .arg("--out")
        .arg(&merged)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "merge failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    drop(server);
    let run = RunFile::read(&merged.join("run.json"))?;
    let case = run.cases.first().context("merged run has no case")?;
    let i = &case.integrity;
    anyhow::ensure!(
        i.lost == 0 && i.duplicated == 0 && i.out_of_order == 0,
        "{transport} fan-out to {clients}: {} lost, {} duplicated, {} out of order of {} sent",
        i.lost,
        i.duplicated,
        i.out_of_order,
        i.sent
    );
    let ms = |us: Option<f64>, what: &str| {
        us.map(|v| v / 1000.0)
            .with_context(|| format!("merged run has no {what}"))
    };
    Ok(Scale {
        transport,
        spec: *spec,
        drivers,
        received: i.received,
        p50_ms: ms(case.metrics.p50_us, "p50")?,
        p99_ms: ms(case.metrics.p99_us, "p99")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_split_at_the_per_process_share() {
        assert_eq!(drivers_for(1), 1);
        assert_eq!(drivers_for(9_500), 1);
        assert_eq!(drivers_for(9_501), 2);
        assert_eq!(drivers_for(19_000), 2);
    }
}

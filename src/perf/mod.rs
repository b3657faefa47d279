//! The figures of `cargo bench --bench perf` (issue 6): each figure group turns what a run
//! measured into [`PerfTarget`]s, a value checked against its bound, which the bench writes to
//! `RunFile::targets` and the report lists under "Performance targets".
//!
//! One module per figure group; each exposes a function that appends its targets to a
//! `&mut Vec<PerfTarget>`, so the bench gathers them in one list.

pub mod memory;
pub mod peers;
pub mod push;
pub mod scale;

pub use memory::{IdleMemory, PerfTransport, idle_memory};
pub use pushbench_schema::{Bound, PerfTarget};
pub use scale::{Scale, ScaleSpec, scale};

use pushbench_core::cpu::SERVER_THREADS;

/// Sizes of the figure groups measured against `pushbench serve` child processes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChildServerSizes {
    /// Idle connections held for the memory figure.
    pub idle_connections: u64,
    /// The fan-out measured for the scale figure.
    pub scale: ScaleSpec,
}

/// Server memory per idle connection and fan-out at scale, for ws and then sse, each against a
/// fresh `exe serve` child process (`work` holds the drivers' results), listed memory first
/// (measured scale first); a measurement that fails still gives its target, without a value
/// and with the error as its note.
pub async fn child_server_targets(
    exe: &std::path::Path,
    sizes: &ChildServerSizes,
    work: &std::path::Path,
    out: &mut Vec<PerfTarget>,
) {
    // Scale is measured first, though listed after memory: right after the memory step (whose
    // 20 000 connections are still closing) the ws fan-out p99 measured 264 ms, against 224-227
    // ms in runs of `perf scale` alone.
    let mut scale_targets = Vec::new();
    for transport in [PerfTransport::Ws, PerfTransport::Sse] {
        let dir = work.join(format!("scale-{transport}"));
        scale_targets.push(match scale(exe, transport, &sizes.scale, &dir).await {
            Ok(m) => m.target(),
            Err(e) => Scale::unmeasured(transport, &sizes.scale, &e),
        });
    }
    for transport in [PerfTransport::Ws, PerfTransport::Sse] {
        out.push(
            match idle_memory(exe, transport, sizes.idle_connections).await {
                Ok(m) => m.target(),
                Err(e) => IdleMemory::unmeasured(transport, sizes.idle_connections, &e),
            },
        );
    }
    out.extend(scale_targets);
}

/// CPU time of the client threads (every thread not named like the server's, as
/// [`pushbench_core::cpu::Threads::Client`] counts them), split by where it ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuSplit {
    /// Seconds in user space.
    pub user: f64,
    /// Seconds in the kernel.
    pub system: f64,
}

impl CpuSplit {
    /// The client threads' CPU so far, from `/proc/self/task/*/stat` (clock-tick resolution);
    /// `None` where `/proc` is not readable.
    pub fn client_now() -> Option<CpuSplit> {
        let tick = rustix::param::clock_ticks_per_second() as f64;
        let mut ticks = (0u64, 0u64);
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let Some((user, system)) = user_system_ticks(&stat) else {
                continue;
            };
            ticks.0 += user;
            ticks.1 += system;
        }
        Some(CpuSplit {
            user: ticks.0 as f64 / tick,
            system: ticks.1 as f64 / tick,
        })
    }

    /// The CPU spent from `before` to `self`, as the kernel's share of it; `None` when none was.
    pub fn kernel_share_since(&self, before: &CpuSplit) -> Option<f64> {
        let (user, system) = (self.user - before.user, self.system - before.system);
        (user + system > 0.0).then(|| system / (user + system))
    }
}

/// utime and stime (fields 14 and 15) of a client thread's `stat` line; `None` for a server
/// thread or a line that does not parse. The name (field 2) may hold spaces and parentheses,
/// so the fields are counted from its closing parenthesis.
fn user_system_ticks(stat: &str) -> Option<(u64, u64)> {
    let (head, rest) = stat.rsplit_once(") ")?;
    let (_, comm) = head.split_once(" (")?;
    if comm.starts_with(SERVER_THREADS) {
        return None;
    }
    let mut fields = rest.split_whitespace().skip(11);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// A terminal table of the targets: id | figure | target | met.
pub fn targets_table(targets: &[PerfTarget]) -> String {
    let width = targets.iter().map(|t| t.id.len()).max().unwrap_or(2).max(2);
    let mut out = format!(
        "{:<width$}  {:>14}  {:<12}  met\n",
        "id", "figure", "target"
    );
    for t in targets {
        let value = match t.value {
            Some(v) => format!("{v:.3} {}", t.unit),
            None => "not measured".to_owned(),
        };
        out.push_str(&format!(
            "{:<width$}  {:>14}  {:<12}  {}\n",
            t.id,
            value,
            t.bound_text(),
            if t.met { "yes" } else { "NO" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_user_and_system_ticks_of_client_threads_only() {
        let client = "42 (pushbench-c) l) S 1 2 3 4 5 6 7 8 9 10 170 30 0 0 20 0 1 0";
        assert_eq!(user_system_ticks(client), Some((170, 30)));
        let server = "43 (pushbench-serv) S 1 2 3 4 5 6 7 8 9 10 170 30 0 0 20 0 1 0";
        assert_eq!(user_system_ticks(server), None);
        assert_eq!(user_system_ticks("garbage"), None);
        let now = CpuSplit::client_now().expect("/proc is readable here");
        let before = CpuSplit {
            user: now.user - 3.0,
            system: now.system - 1.0,
        };
        let share = now.kernel_share_since(&before).expect("4 s of CPU");
        assert!((share - 0.25).abs() < 1e-9, "{share}");
        assert_eq!(now.kernel_share_since(&now), None);
    }

    #[test]
    fn the_table_has_a_row_per_target_saying_whether_it_was_met() {
        let table = targets_table(&[
            PerfTarget::new("a.long_id", "x", "×", Bound::AtLeast, 0.5, Some(0.75)),
            PerfTarget::new("b", "y", "GB/s", Bound::AtLeast, 1.0, None),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(
            lines[1].starts_with("a.long_id") && lines[1].contains("0.750 ×"),
            "{table}"
        );
        assert!(lines[1].ends_with("yes"), "{table}");
        assert!(
            lines[2].contains("not measured") && lines[2].ends_with("NO"),
            "{table}"
        );
    }
}

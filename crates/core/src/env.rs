//! Captures the environment a run measures in: commit, versions, host.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use pushbench_schema::{Host, RunInfo};

/// The run header for a run starting now with `config`; `finished_at` stays empty and
/// `complete` false until the runner finishes it.
pub fn capture_run_info(config: serde_json::Value) -> RunInfo {
    let host = capture_host();
    let started_at = rfc3339_now();
    RunInfo {
        id: format!("{}-{}", started_at.replace(':', ""), host.name),
        started_at,
        finished_at: String::new(),
        complete: false,
        git_commit: git_commit(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        rustc: env!("PUSHBENCH_RUSTC").to_owned(),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_owned(),
        crate_versions: crate_versions(),
        host,
        config,
    }
}

/// The current UTC time as RFC 3339, to the second.
pub fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn capture_host() -> Host {
    let read = |p: &str| {
        fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    Host {
        name: read("/proc/sys/kernel/hostname"),
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        kernel: read("/proc/sys/kernel/osrelease"),
        os,
    }
}

fn git_commit() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) => {
            // Result files written by the run itself do not make the tree dirty.
            let dirty = git(&["status", "--porcelain", "--", ".", ":!results"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        None => "unknown".to_owned(),
    }
}

fn crate_versions() -> BTreeMap<String, String> {
    env!("PUSHBENCH_CRATES")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_info_names_host_and_versions() {
        let info = capture_run_info(serde_json::json!({"scenario": "study"}));
        assert!(info.host.cores >= 1);
        assert!(info.rustc.starts_with("rustc "), "{}", info.rustc);
        assert!(
            info.crate_versions.contains_key("tokio"),
            "{:?}",
            info.crate_versions
        );
        assert!(!info.git_commit.is_empty());
        let t = &info.started_at;
        assert_eq!((t.len(), &t[4..5], &t[10..11]), (20, "-", "T"), "{t}");
        assert!(t.as_str() > "2024-01-01", "{t}");
    }
}

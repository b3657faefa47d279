//! The peers figure group of `cargo bench --bench perf` alone: pushbench against the Node.js
//! reference (src/perf/peers.rs), printed as a table.
//!
//! ```text
//! (cd scripts/reference/node && npm ci)
//! cargo build --release --bin pushbench && cargo run --release --example perf_peers [-- --test]
//! ```
//!
//! The `pushbench` binary is `PUSHBENCH_EXE`, else the one built beside this example.

use std::path::{Path, PathBuf};

use pushbench::Harness;
use pushbench::perf::{self, peers};

fn main() -> anyhow::Result<()> {
    let test_mode = std::env::args().any(|a| a == "--test");
    let exe = match std::env::var_os("PUSHBENCH_EXE") {
        Some(exe) => PathBuf::from(exe),
        None => {
            let own = std::env::current_exe()?;
            let profile = own
                .parent()
                .and_then(Path::parent)
                .ok_or_else(|| anyhow::anyhow!("no directory above {}", own.display()))?;
            profile.join("pushbench")
        }
    };
    anyhow::ensure!(
        exe.is_file(),
        "no pushbench binary at {}: run `cargo build --release --bin pushbench` first, or set PUSHBENCH_EXE",
        exe.display()
    );
    let config = if test_mode {
        peers::PeersConfig::test()
    } else {
        peers::PeersConfig::full()
    };
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference/node");
    let harness = Harness::start()?;
    let mut targets = Vec::new();
    peers::targets(&harness, &exe, &node_dir, &config, &mut targets);
    println!("\n{}", perf::targets_table(&targets));
    for t in &targets {
        println!("{}: {}", t.id, t.note);
    }
    Ok(())
}

#!/usr/bin/env bash
# Regenerates charts and REPORT.md of a run directory from its run.json alone.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -- report "${1:-results/latest}"

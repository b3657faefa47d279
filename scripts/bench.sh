#!/usr/bin/env bash
# The main job: criterion benches for the study and push scenarios, then results/latest/{run.json,cases.csv,
# charts/,REPORT.md}. Arguments go to criterion (e.g. a filter: scripts/bench.sh ws).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench scenarios -- "$@"
echo "report: results/latest/REPORT.md"

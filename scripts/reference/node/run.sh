#!/usr/bin/env bash
# Installs the reference server's locked dependencies (npm ci) and starts it:
#   scripts/reference/node/run.sh [PORT]    # HTTP on PORT (default 8090), raw TCP on PORT+1
# It prints `http ADDR` and `tcp ADDR` once listening; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null; then
    echo "run.sh: node is not installed (Node 20 or later is needed)" >&2
    exit 1
fi
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules ]]; then
    npm ci --no-audit --no-fund --loglevel=error >&2
fi
exec node server.js "${1:-8090}"

#!/usr/bin/env bash
# pushbench's axum server against the Node.js reference server (scripts/reference/node: Express
# 5 + ws), measured by the same drivers on study, push and fanout, in one report:
#
#   scripts/compare-servers.sh [quick|full] [OUT]    # default: quick, results/servers-<mode>
#
# Both servers run as their own processes on loopback, each with one thread (`pushbench serve
# --threads 1`; Node's event loop), each with its raw-TCP floor; the clients run in `pushbench
# run --target` (a release build). Scenarios alternate servers so drift affects both alike. The
# runs are combined with `pushbench merge` (cases of different servers stay apart) and rendered
# with `pushbench report`, whose "Servers compared" section holds the side-by-side figures.
# Needs Node 18+ and npm (the first run installs the locked dependencies with npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-quick}
case "$mode" in
quick) quick=(--quick) ;;
full) quick=() ;;
*)
    echo "usage: $0 [quick|full] [OUT]" >&2
    exit 2
    ;;
esac
out=${2:-results/servers-$mode}
scenarios=(study push fanout)

cargo build --release --locked --bin pushbench >&2
exe=target/release/pushbench

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Starts a server whose stdout prints `http ADDR` and `tcp ADDR`; waits for both lines.
start() {
    local name=$1
    shift
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    for _ in $(seq 1 300); do
        if grep -q '^tcp ' "$work/$name.out" 2>/dev/null; then
            return
        fi
        if ! kill -0 "${pids[-1]}" 2>/dev/null; then
            echo "$0: $name did not start:" >&2
            cat "$work/$name.err" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "$0: $name printed no addresses within 30 s" >&2
    exit 1
}
addr() { awk -v k="$2" '$1 == k { print $2 }' "$work/$1.out"; }

start pushbench-axum "$exe" serve --bind 127.0.0.1:0 --threads 1
start node-express-ws scripts/reference/node/run.sh 0

parts=()
rm -rf "$out"
mkdir -p "$out"
for scenario in "${scenarios[@]}"; do
    for server in pushbench-axum node-express-ws; do
        part="$work/parts/$server-$scenario"
        echo "== $scenario against $server (http $(addr "$server" http), tcp $(addr "$server" tcp))" >&2
        # A flagged case (exit 1) is kept and shown in the report; other failures stop the script.
        status=0
        "$exe" run "$scenario" "${quick[@]}" --quiet \
            --target "http://$(addr "$server" http)" --tcp-target "$(addr "$server" tcp)" \
            --server-label "$server" --out "$part" || status=$?
        if [[ $status -gt 1 ]]; then
            exit "$status"
        fi
        parts+=("$part")
    done
done

"$exe" merge "${parts[@]}" --out "$out" >/dev/null || [[ $? -eq 1 ]]
"$exe" report "$out"
echo "report: $out/REPORT.md" >&2

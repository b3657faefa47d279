#!/usr/bin/env bash
# Emulated network for pushbench: three network namespaces joined by veth pairs,
#
#   pb-client (10.77.1.2) ── pb-router ── pb-server (10.77.2.2)
#
# where pb-router forwards every packet through a userspace delay line (`pushbench
# delayline`, on the TUN device pbdelay), drops packets at random with nftables, and limits
# the rate of its two egress veths with tc tbf. This kernel has no netem, hence the delay line.
#
# Semantics:
#   --rtt R    each packet, both directions, is held R/2 in the router (FIFO, stamped when
#              read), so a round trip between client and server gains R; the delay line's own
#              cost comes on top (measure it with --rtt 0ms). It runs at real-time priority
#              (chrt --fifo 10) where allowed, so a busy machine delays its wake-ups less.
#   --loss P   each packet crossing the router is dropped with probability P, independently,
#              once per direction (nftables `numgen random`, 0.01 % steps). Installs the
#              Debian package nftables if `nft` is missing.
#   --rate R   each direction is limited to R (tc tbf on the router's egress veth; burst 10 ms
#              of R, at least 2 KiB; packets queued over 100 ms are dropped).
#
# Usage: scripts/netns.sh up [--rtt 50ms] [--loss 1%] [--rate 10mbit] [--bin PUSHBENCH]
#        scripts/netns.sh down       # removes the namespaces and stops the delay line
#        scripts/netns.sh status
# `up` first tears down what a previous `up` left, so both commands are idempotent. The delay
# line is `pushbench delayline` from --bin, else $PUSHBENCH_BIN, else `pushbench` on PATH,
# else target/{release,debug}/pushbench of this checkout. Needs root and iproute2
# (scripts/install-netns.sh installs it).
set -euo pipefail

CLIENT=pb-client ROUTER=pb-router SERVER=pb-server
CLIENT_IP=10.77.1.2 ROUTER_CLIENT_IP=10.77.1.1 ROUTER_SERVER_IP=10.77.2.1 SERVER_IP=10.77.2.2
TUN=pbdelay TABLE=100
STATE=/run/pushbench-netns

die() {
    echo "netns.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

need_root() {
    [ "$(id -u)" = 0 ] || die "needs root (it creates network namespaces, veth pairs and a TUN device): run it as root or with sudo"
    command -v ip >/dev/null || die "needs iproute2's \`ip\` (scripts/install-netns.sh installs it)"
    [ -c /dev/net/tun ] || die "needs /dev/net/tun (the tun kernel module) for the delay line"
}

# "50ms", "0.5s", "800us" -> microseconds
to_us() {
    local text=$1 number unit
    [[ $text =~ ^([0-9]+(\.[0-9]+)?)(us|ms|s)$ ]] || die "--rtt $text: expected a number with us, ms or s (e.g. 50ms)"
    number=${BASH_REMATCH[1]} unit=${BASH_REMATCH[3]}
    case $unit in
        us) awk -v n="$number" 'BEGIN { printf "%d", n }' ;;
        ms) awk -v n="$number" 'BEGIN { printf "%d", n * 1000 }' ;;
        s) awk -v n="$number" 'BEGIN { printf "%d", n * 1000000 }' ;;
    esac
}

# "1%", "0.5%" -> hundredths of a percent (0..10000)
to_basis() {
    local text=$1
    [[ $text =~ ^([0-9]+(\.[0-9]+)?)%$ ]] || die "--loss $text: expected a percentage (e.g. 1%)"
    awk -v n="${BASH_REMATCH[1]}" 'BEGIN { if (n > 100) exit 1; printf "%d", n * 100 + 0.5 }' ||
        die "--loss $text: more than 100%"
}

# "10mbit", "500kbit", "1gbit" -> bits per second
to_bps() {
    local text=$1
    [[ $text =~ ^([0-9]+)(kbit|mbit|gbit)$ ]] || die "--rate $text: expected a whole number with kbit, mbit or gbit (e.g. 10mbit)"
    case ${BASH_REMATCH[2]} in
        kbit) echo $((BASH_REMATCH[1] * 1000)) ;;
        mbit) echo $((BASH_REMATCH[1] * 1000000)) ;;
        gbit) echo $((BASH_REMATCH[1] * 1000000000)) ;;
    esac
}

find_bin() {
    local here
    here=$(cd "$(dirname "$0")/.." 2>/dev/null && pwd || true)
    for candidate in "${BIN:-}" "${PUSHBENCH_BIN:-}" "$(command -v pushbench || true)" \
        "$here/target/release/pushbench" "$here/target/debug/pushbench"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            echo "$candidate"
            return
        fi
    done
    die "cannot find the pushbench binary for the delay line: give --bin PATH or set PUSHBENCH_BIN"
}

down() {
    need_root
    local pid
    if [ -f "$STATE/delayline.pid" ]; then
        pid=$(cat "$STATE/delayline.pid")
        # Only our delay line: the pid file may be stale and the pid reused.
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q delayline; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        [ -f "$STATE/delayline.log" ] && tail -n 1 "$STATE/delayline.log" | sed 's/^/netns.sh: /' >&2
    fi
    for ns in $CLIENT $ROUTER $SERVER; do
        if ip netns list | grep -qw "^$ns"; then
            ip netns del "$ns"
        fi
    done
    rm -rf "$STATE"
}

up() {
    local rtt=0ms loss=0% rate=none
    while [ $# -gt 0 ]; do
        case $1 in
            --rtt) rtt=${2:?--rtt needs a value}; shift 2 ;;
            --loss) loss=${2:?--loss needs a value}; shift 2 ;;
            --rate) rate=${2:?--rate needs a value}; shift 2 ;;
            --bin) BIN=${2:?--bin needs a path}; shift 2 ;;
            *) die "up: unknown argument \`$1\` (expected --rtt, --loss, --rate or --bin)" ;;
        esac
    done
    local rtt_us loss_basis rate_bps=0 bin
    rtt_us=$(to_us "$rtt")
    loss_basis=$(to_basis "$loss")
    [ "$rate" = none ] || rate_bps=$(to_bps "$rate")
    need_root
    bin=$(find_bin)
    if [ "$loss_basis" -gt 0 ] && ! command -v nft >/dev/null; then
        echo "netns.sh: --loss needs nftables; installing the Debian package" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null ||
            die "--loss needs \`nft\`: apt-get install nftables failed"
    fi
    down 2>/dev/null
    mkdir -p "$STATE"
    trap 'echo "netns.sh: up failed; tearing down" >&2; down 2>/dev/null' ERR

    for ns in $CLIENT $ROUTER $SERVER; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    done
    ip -n $ROUTER link add pb-rc type veth peer name pb-c netns $CLIENT
    ip -n $ROUTER link add pb-rs type veth peer name pb-s netns $SERVER
    ip -n $CLIENT addr add $CLIENT_IP/24 dev pb-c
    ip -n $CLIENT link set pb-c up
    ip -n $CLIENT route add default via $ROUTER_CLIENT_IP
    ip -n $SERVER addr add $SERVER_IP/24 dev pb-s
    ip -n $SERVER link set pb-s up
    ip -n $SERVER route add default via $ROUTER_SERVER_IP
    ip -n $ROUTER addr add $ROUTER_CLIENT_IP/24 dev pb-rc
    ip -n $ROUTER addr add $ROUTER_SERVER_IP/24 dev pb-rs
    ip -n $ROUTER link set pb-rc up
    ip -n $ROUTER link set pb-rs up

    # The delay line: every packet forwarded in from either veth goes out into the TUN
    # (table 100); written back by the delay line, it comes in on the TUN and the main table
    # sends it to its veth.
    ip -n $ROUTER tuntap add dev $TUN mode tun
    ip -n $ROUTER link set $TUN up
    for key in ip_forward conf.all.rp_filter=0 conf.default.rp_filter=0 conf.$TUN.rp_filter=0 \
        conf.all.send_redirects=0 conf.$TUN.forwarding=1; do
        case $key in
            ip_forward) ip netns exec $ROUTER sysctl -qw net.ipv4.ip_forward=1 ;;
            *) ip netns exec $ROUTER sysctl -qw "net.ipv4.$key" ;;
        esac
    done
    # Real-time priority (SCHED_FIFO 10) where chrt allows it: on a busy machine an ordinary
    # thread can wake up tens of ms late, which would add to the delay. The line only sleeps and
    # blocks on the device, so it cannot starve the machine.
    local rt=()
    if command -v chrt >/dev/null && chrt --fifo 10 true 2>/dev/null; then
        rt=(chrt --fifo 10)
    fi
    ip netns exec $ROUTER "${rt[@]}" "$bin" delayline --dev $TUN --delay "$((rtt_us / 2))us" \
        >"$STATE/delayline.log" 2>&1 </dev/null &
    echo $! >"$STATE/delayline.pid"
    for _ in $(seq 100); do
        grep -q '^delayline ready' "$STATE/delayline.log" 2>/dev/null && break
        kill -0 "$(cat "$STATE/delayline.pid")" 2>/dev/null ||
            die "the delay line ($bin delayline) exited: $(cat "$STATE/delayline.log")"
        sleep 0.05
    done
    grep -q '^delayline ready' "$STATE/delayline.log" || die "the delay line did not start within 5 s"
    ip -n $ROUTER route add default dev $TUN table $TABLE
    ip -n $ROUTER rule add iif pb-rc lookup $TABLE pref 100
    ip -n $ROUTER rule add iif pb-rs lookup $TABLE pref 101

    if [ "$loss_basis" -gt 0 ]; then
        # Once per packet and direction: the hop into the TUN (the hop out of it is not counted).
        ip netns exec $ROUTER nft -f - <<EOF
table inet pushbench {
    chain forward {
        type filter hook forward priority 0; policy accept;
        oifname "$TUN" numgen random mod 10000 < $loss_basis counter drop
    }
}
EOF
    fi
    if [ "$rate_bps" -gt 0 ]; then
        local burst=$((rate_bps / 8 / 100))
        [ "$burst" -ge 2048 ] || burst=2048
        for dev in pb-rc pb-rs; do
            ip netns exec $ROUTER tc qdisc add dev $dev root tbf rate "${rate_bps}bit" \
                burst "$burst" latency 100ms
        done
    fi
    trap - ERR
    echo "rtt=$rtt,loss=$loss,rate=$rate" >"$STATE/network"
    echo "netns.sh: up: $CLIENT ($CLIENT_IP) -- $ROUTER (rtt $rtt, loss $loss, rate $rate) -- $SERVER ($SERVER_IP)" >&2
}

status() {
    if [ -f "$STATE/network" ]; then
        echo "up: $(cat "$STATE/network")"
        ip netns list
    else
        echo "down"
    fi
}

case ${1:-} in
    up) shift; up "$@" ;;
    down) shift; [ $# -eq 0 ] || die "down takes no arguments"; down ;;
    status) status ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac

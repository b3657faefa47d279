#!/usr/bin/env bash
# Installs what `pushbench run --network` and scripts/netns.sh need beyond cargo: iproute2's
# `ip` and `tc` (Debian package iproute2). nftables is installed by netns.sh itself, and only
# when --loss is asked for. Needs root; does nothing when `ip` and `tc` are already there.
set -euo pipefail
if command -v ip >/dev/null && command -v tc >/dev/null; then
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install-netns.sh: needs root to apt-get install iproute2" >&2; exit 2; }
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
command -v ip >/dev/null

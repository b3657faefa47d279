#!/usr/bin/env bash
# Installs headless Chromium (the Debian/Ubuntu package `chromium`) for
# `pushbench run ... --client browser|both`. Idempotent: does nothing when Chromium is already
# there (PUSHBENCH_CHROMIUM, /usr/bin/chromium, or chromium / chromium-browser on PATH).
# Uses sudo when not root. The core commands (cargo test --workspace, cargo bench) never need it.
set -euo pipefail

found() {
  if [[ -n "${PUSHBENCH_CHROMIUM:-}" ]]; then
    [[ -x "$PUSHBENCH_CHROMIUM" ]] && echo "$PUSHBENCH_CHROMIUM"
    return
  fi
  for exe in /usr/bin/chromium "$(command -v chromium || true)" "$(command -v chromium-browser || true)"; do
    if [[ -n "$exe" && -x "$exe" ]]; then
      echo "$exe"
      return
    fi
  done
}

if [[ -n "${PUSHBENCH_CHROMIUM:-}" && ! -x "$PUSHBENCH_CHROMIUM" ]]; then
  echo "install-browser: PUSHBENCH_CHROMIUM=$PUSHBENCH_CHROMIUM is not an executable file; unset it to install the package chromium" >&2
  exit 1
fi

if exe=$(found) && [[ -n "$exe" ]]; then
  echo "install-browser: Chromium already installed: $exe ($("$exe" --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "install-browser: no apt-get here; install Chromium with your package manager and set PUSHBENCH_CHROMIUM to its binary" >&2
  exit 1
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "install-browser: not root and no sudo: run as root, or install the package \`chromium\` yourself" >&2
    exit 1
  fi
  sudo=(sudo)
fi

echo "install-browser: installing the package chromium (apt-get, about 35 s)"
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
   ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; then
  echo "install-browser: apt-get could not install \`chromium\` (on Ubuntu it is a snap stub; see README, Browser clients)" >&2
  exit 1
fi

exe=$(found || true)
if [[ -z "$exe" ]]; then
  echo "install-browser: the package installed, but no chromium binary was found on PATH or at /usr/bin/chromium" >&2
  exit 1
fi
echo "install-browser: installed $exe ($("$exe" --version 2>/dev/null || echo 'version unknown'))"

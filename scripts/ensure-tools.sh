#!/usr/bin/env bash
# Make sure the ops test tools are installed: promtool and prometheus (Debian's `prometheus`
# package) and a headless browser (Debian's `chromium`). Idempotent: installs only what is missing.
set -euo pipefail

say() { echo "ensure-tools: $*"; }
die() { echo "ensure-tools: ERROR: $*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "installing packages needs root and sudo is missing"
    SUDO=(sudo)
fi

missing=()
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    missing+=(prometheus)
fi
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if ((${#missing[@]} == 0)); then
    say "promtool, prometheus and chromium are installed"
    exit 0
fi

say "installing ${missing[*]} from the distribution's packages"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
# --no-install-recommends: the prometheus package would otherwise pull node-exporter and friends
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${missing[@]}"
# Debian's prometheus package may start a service on :9090; these tests run their own server.
if command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null 2>&1 || die "promtool not on PATH after installing prometheus"
command -v chromium >/dev/null 2>&1 || die "chromium not on PATH after installing chromium"
say "installed: $(promtool --version 2>&1 | head -1); $(chromium --version 2>/dev/null)"

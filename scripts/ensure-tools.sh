#!/usr/bin/env bash
# Make sure the ops test tools are installed: promtool and prometheus (Debian's `prometheus`
# package), a headless browser (Debian's `chromium`), docker-compose (its `config` checks
# deploy/compose.yaml without a container engine), and RabbitMQ's Prometheus plugin.
# Idempotent: installs only what is missing.
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
# docker-compose 1.29 (Debian): `config` validates deploy/compose.yaml without an engine, and
# it ships the compose-spec JSON schema that tests/ops also checks the file against.
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)

# RabbitMQ's Prometheus endpoint (127.0.0.1:15692, the dashboard's rabbitmq_* metrics).
enable_rabbitmq_prometheus() {
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/15692" 2>/dev/null; then
        return 0
    fi
    export PATH="$PATH:/usr/sbin:/sbin"
    if command -v rabbitmq-plugins >/dev/null 2>&1; then
        say "enabling rabbitmq_prometheus"
        "${SUDO[@]}" timeout 120 rabbitmq-plugins enable rabbitmq_prometheus \
            || say "could not enable rabbitmq_prometheus (is RabbitMQ running? make rabbitmq)"
    fi
}

if ((${#missing[@]} == 0)); then
    say "promtool, prometheus, chromium and docker-compose are installed"
    enable_rabbitmq_prometheus
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
enable_rabbitmq_prometheus
say "installed: $(promtool --version 2>&1 | head -1); $(chromium --version 2>/dev/null)"

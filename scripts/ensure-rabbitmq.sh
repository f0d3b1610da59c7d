#!/usr/bin/env bash
# Make sure RabbitMQ answers on 127.0.0.1:5672, installing and starting it if needed.
# Idempotent: does nothing when the port already answers. Also checks PostgreSQL on
# 127.0.0.1:5432 and tries to start an installed cluster (never installs PostgreSQL).
set -euo pipefail

RABBIT_HOST=127.0.0.1
RABBIT_PORT=5672
PG_HOST=127.0.0.1
PG_PORT=5432
ENV_CONF=/etc/rabbitmq/rabbitmq-env.conf

say() { echo "ensure-rabbitmq: $*"; }
die() { echo "ensure-rabbitmq: ERROR: $*" >&2; exit 1; }

# port_open HOST PORT: true when something accepts a TCP connection (bash /dev/tcp; no nc here).
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# wait_port HOST PORT SECONDS
wait_port() {
    local deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        port_open "$1" "$2" && return 0
        sleep 1
    done
    return 1
}

SUDO=()
need_root() {
    if [[ $(id -u) -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        die "$1 needs root and sudo is not available; run this script as root"
    fi
}

check_postgres() {
    if port_open "$PG_HOST" "$PG_PORT"; then
        say "PostgreSQL answers on $PG_HOST:$PG_PORT"
        return 0
    fi
    if command -v pg_ctlcluster >/dev/null 2>&1 && [[ -d /etc/postgresql ]] \
        && [[ -n "$(ls /etc/postgresql 2>/dev/null)" ]]; then
        need_root "starting PostgreSQL"
        local version
        for version in $(ls /etc/postgresql); do
            say "starting PostgreSQL $version/main"
            "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        done
        if wait_port "$PG_HOST" "$PG_PORT" 30; then
            say "PostgreSQL answers on $PG_HOST:$PG_PORT"
            return 0
        fi
    fi
    cat >&2 <<MSG

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! WARNING: PostgreSQL is NOT answering on $PG_HOST:$PG_PORT.
!! The PostgreSQL tests do not skip: they WILL FAIL. Start a PostgreSQL server
!! on $PG_HOST:$PG_PORT (trust auth, a database named 'test') and run again.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

MSG
    return 0
}

ensure_rabbitmq() {
    if port_open "$RABBIT_HOST" "$RABBIT_PORT"; then
        say "RabbitMQ answers on $RABBIT_HOST:$RABBIT_PORT"
        return 0
    fi

    if ! command -v rabbitmq-server >/dev/null 2>&1 && [[ ! -x /usr/sbin/rabbitmq-server ]]; then
        need_root "installing rabbitmq-server"
        say "installing rabbitmq-server from the distribution's packages"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
    fi
    export PATH="$PATH:/usr/sbin:/sbin"

    need_root "starting rabbitmq-server"
    "${SUDO[@]}" mkdir -p "$(dirname "$ENV_CONF")"
    if ! "${SUDO[@]}" grep -qs '^NODE_IP_ADDRESS=127\.0\.0\.1$' "$ENV_CONF"; then
        say "adding NODE_IP_ADDRESS=127.0.0.1 to $ENV_CONF"
        local sep=""
        # Keep whatever is there; start on a fresh line if the file lacks a final newline.
        if [[ -s "$ENV_CONF" && -n "$("${SUDO[@]}" tail -c 1 "$ENV_CONF")" ]]; then sep=$'\n'; fi
        printf '%sNODE_IP_ADDRESS=127.0.0.1\n' "$sep" | "${SUDO[@]}" tee -a "$ENV_CONF" >/dev/null
    fi

    # The distribution's service start is refused on these machines: start the node directly.
    # (A failure here may just mean a node is already booting; the wait below decides.)
    say "starting rabbitmq-server -detached"
    "${SUDO[@]}" rabbitmq-server -detached || say "rabbitmq-server -detached returned non-zero"

    say "waiting up to 60 s for $RABBIT_HOST:$RABBIT_PORT"
    wait_port "$RABBIT_HOST" "$RABBIT_PORT" 60 \
        || die "RabbitMQ did not open $RABBIT_HOST:$RABBIT_PORT within 60 s (see /var/log/rabbitmq/)"
    timeout 60 "${SUDO[@]}" rabbitmqctl await_startup \
        || die "rabbitmqctl await_startup did not succeed within 60 s (see /var/log/rabbitmq/)"
    say "RabbitMQ is up on $RABBIT_HOST:$RABBIT_PORT"
}

ensure_rabbitmq
check_postgres

#!/usr/bin/env bash
# The real mirror tools of tests/mirror/ and bench/mirror.py, each in its own venv under
# .tools-venv/ (their dependencies conflict with the hub's and with each other's).
# Idempotent: a venv whose stamp matches its pinned requirement is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
ROOT=.tools-venv
mkdir -p "$ROOT"

install() {  # install <venv name> <requirement>...
    local name="$1"; shift
    local dir="$ROOT/$name" wanted="$*"
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$wanted" ]; then
        return 0
    fi
    echo "install-mirror-tools: $dir <- $wanted"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
    echo "$wanted" > "$dir/.stamp"
}

install devpi devpi-server==6.20.3 devpi-client==7.3.0
install proxpi proxpi==1.3.1 gunicorn
# bandersnatch 7.x and 8.x need Python 3.12+; 6.8.0 is the newest for Python 3.11.
install bandersnatch bandersnatch==6.8.0

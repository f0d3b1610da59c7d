"""``.bench-venv``: the benchmark's own virtualenv (flask-websub + Celery, uvloop for the servers).

Created once and re-used while ``bench/peer-requirements.txt`` is unchanged.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".bench-venv"
REQUIREMENTS = Path(__file__).resolve().parent / "peer-requirements.txt"


def ensure(log=print) -> Path | None:
    """The .bench-venv python, creating/updating the venv if needed; None if that failed."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".bench-stamp"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    log(f"setting up {VENV.name}/ (flask-websub 0.4.1, celery, gunicorn, aiohttp, uvloop) ...")
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-r", str(REQUIREMENTS)],
            check=True, timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"could not set up {VENV.name}/: {exc}")
        return None
    stamp.write_text(wanted + "\n")
    return python

"""Web metrics over several Granian workers: the multiprocess directory of prometheus_client,
wiped at start and cleaned of workers that died (docs/monitoring.md)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable

from prometheus_client import multiprocess, values

_DB_FILE = re.compile(r"^[a-z_]+_(\d+)\.db$")


def reset_multiprocess_dir(path: str) -> None:
    """Empty the multiprocess directory at start (files of an earlier run must not count) and
    make metrics created from now on write there. The caller has set
    ``PROMETHEUS_MULTIPROC_DIR`` to ``path``; prometheus_client chose its value class when it
    was first imported, which may have been before (the role registry imports metrics)."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path, exist_ok=True)
    values.ValueClass = values.get_value_class()


def clean_dead_processes(path: str, alive: Callable[[int], bool] | None = None) -> list[int]:
    """``mark_process_dead`` for every pid with files in ``path`` that no longer runs (a web
    worker that Granian restarted): its ``live*`` gauges stop counting. Returns those pids."""
    alive = alive or _pid_alive
    pids = set()
    for name in os.listdir(path) if os.path.isdir(path) else ():
        match = _DB_FILE.match(name)
        if match and name.startswith("gauge_live"):
            pids.add(int(match.group(1)))
    dead = sorted(pid for pid in pids if not alive(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)
    return dead


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

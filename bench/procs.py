"""Child processes: started in their own session, always killed at the end, RSS measured."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

_ALL: list[Proc] = []


class Proc:
    """One child process (and its process group), its log file, its peak RSS."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: str, logdir: Path):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid
        self.hwm_kb: dict[int, int] = {}  # pid -> last seen VmHWM, kept after a child exits
        _ALL.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def sample_rss(self) -> None:
        """Record VmHWM of the process and every descendant (gunicorn/celery children too)."""
        for pid in [self.pid, *descendants(self.pid)]:
            hwm = vm_hwm_kb(pid)
            if hwm:
                self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), hwm)

    def peak_rss_mb(self) -> dict[str, float]:
        self.sample_rss()
        values = list(self.hwm_kb.values()) or [0]
        return {"total_mb": sum(values) / 1024, "max_process_mb": max(values) / 1024,
                "processes": len(self.hwm_kb)}

    def cpu_seconds(self) -> float:
        """User+system CPU seconds of the process and its live descendants (+ reaped children)."""
        return sum(cpu_seconds(pid) for pid in [self.pid, *descendants(self.pid)])

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(Exception):
                self.sample_rss()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        # whatever is left of the group (children that outlived the leader too)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.popen.wait(5)
        self._log.close()
        if self in _ALL:
            _ALL.remove(self)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all() -> None:
    for proc in list(reversed(_ALL)):
        with contextlib.suppress(Exception):
            proc.stop(timeout=5)


atexit.register(stop_all)


def vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        # utime, stime, cutime, cstime (fields 14-17): children that exited are counted too
        return sum(int(x) for x in fields[11:15]) / _TICK
    except (OSError, ValueError, IndexError):
        return 0.0


def descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat.rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")

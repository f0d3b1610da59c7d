"""Run the fake servers and the hub as real subprocesses, with bounded waits everywhere."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
HUB_SCRIPT = BIN_DIR / "broker-hub"

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | None = None,
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Raises ``TimeoutError`` (naming ``message`` or the predicate) after ``timeout`` seconds.
    Exceptions from the predicate propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _stop_process(proc: subprocess.Popen[Any], timeout: float) -> int | None:
    """SIGTERM the process, wait, then SIGKILL its whole process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    # Children left behind (or a process that ignored SIGTERM): kill the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    return proc.returncode


# --- the fake servers --------------------------------------------------------------------------


@dataclass
class Server:
    """A fake server (``tests.support.subscriber`` / ``.publisher``) in its own process."""

    module: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 5.0) -> int | None:
        return _stop_process(self.proc, timeout)


def start_server(module: str, *, timeout: float = 15.0, port: int = 0) -> Server:
    """Start ``python -m <module> --port <port>``; wait (bounded) for its ``LISTENING`` line."""
    log_dir = Path(tempfile.mkdtemp(prefix="bh-server-"))
    log_path = log_dir / f"{module.rsplit('.', 1)[-1]}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    fd = proc.stdout.fileno()
    try:
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{module} did not print LISTENING within {timeout:g}s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"{module} exited (code {proc.poll()}) before LISTENING")
            buffer += chunk
        line = buffer.split(b"\n", 1)[0].decode(errors="replace").strip()
        word, _, number = line.partition(" ")
        if word != "LISTENING" or not number.isdigit():
            raise RuntimeError(f"{module} printed {line!r}, expected 'LISTENING <port>'")
    except BaseException as exc:
        _stop_process(proc, 2)
        if isinstance(exc, RuntimeError):
            raise RuntimeError(f"{exc}\n--- {log_path} ---\n{_tail(log_path)}") from None
        raise
    # Keep draining stdout so the server can never block on a full pipe.
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    return Server(module=module, port=int(number), proc=proc, log_path=log_path)


def _drain(stream: Any) -> None:
    with contextlib.suppress(OSError, ValueError):
        while stream.read(65536):
            pass


# --- the hub -----------------------------------------------------------------------------------


@dataclass
class HubProcess:
    """``broker-hub <command>`` running in its own process group, output in ``log_path``."""

    command: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    @property
    def base_url(self) -> str:
        """``http://<HUB_BIND>`` (no trailing slash) from the env it was started with."""
        return hub_base_url(self.env)

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def terminate(self) -> None:
        """SIGTERM to the main process only (what a graceful stop looks like)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the whole process group (a crash: nothing gets to clean up)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the group; returns the exit code."""
        return _stop_process(self.proc, timeout)


def hub_base_url(env: Mapping[str, str]) -> str:
    bind = env.get("HUB_BIND", "127.0.0.1:8080")
    return f"http://{bind}"


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def start_hub(
    command: str,
    env: Mapping[str, str],
    *,
    wait_health_url: str | None = None,
    wait_metrics_port: int | None = None,
    timeout: float = 20.0,
    log_dir: str | os.PathLike[str] | None = None,
    args: tuple[str, ...] = (),
) -> HubProcess:
    """Start ``broker-hub <command> *args`` with ``env`` merged onto ``os.environ``.

    Waits (bounded by ``timeout``) until ``wait_health_url`` answers 200 and/or
    ``http://127.0.0.1:<wait_metrics_port>/metrics`` answers 200. If the process exits or
    the wait times out, the process group is killed and ``RuntimeError`` carries the log tail.
    """
    if not HUB_SCRIPT.exists():
        raise RuntimeError(f"{HUB_SCRIPT} not found: is the package installed in this venv?")
    directory = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="bh-hub-"))
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"broker-hub-{command}-{time.time_ns()}.log"
    full_env = {**os.environ, **{k: str(v) for k, v in env.items()}}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [str(HUB_SCRIPT), command, *args],
            cwd=directory,  # a default ./var/ lands in the tmp dir, never in the repo
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    hub = HubProcess(command=command, env=dict(env), proc=proc, log_path=log_path)

    urls = []
    if wait_health_url is not None:
        urls.append(wait_health_url)
    if wait_metrics_port is not None:
        urls.append(f"http://127.0.0.1:{wait_metrics_port}/metrics")

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"broker-hub {command} exited with code {proc.returncode}")
        return all(_answers(url) for url in urls)

    if urls:
        try:
            wait_for(ready, timeout=timeout, interval=0.1, message=" and ".join(urls))
        except (RuntimeError, TimeoutError) as exc:
            hub.kill()
            raise RuntimeError(
                f"broker-hub {command} did not become ready: {exc}\n"
                f"--- {log_path} (tail) ---\n{hub.log_tail()}"
            ) from None
    return hub

"""The real mirror tools (devpi-server, proxpi, bandersnatch) from .tools-venv/, as subprocesses.

``scripts/install-mirror-tools.sh`` (run by ``make test``) creates the venvs; every start waits,
bounded, until the tool answers. Each returns a ``Tool`` whose ``stop()`` kills its group.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.processes import REPO_ROOT, free_port, wait_for

TOOLS = REPO_ROOT / ".tools-venv"


def tool(venv: str, script: str) -> Path:
    path = TOOLS / venv / "bin" / script
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run bash scripts/install-mirror-tools.sh")
    return path


@dataclass
class Tool:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def _spawn(name: str, argv: list[str], env: dict[str, str] | None = None,
           cwd: Path | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = Path(tempfile.mkdtemp(prefix=f"bh-{name}-")) / f"{name}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})}, cwd=cwd)
    return proc, log_path


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


def _wait_up(t: Tool, url: str, timeout: float = 60.0) -> None:
    def up() -> bool:
        if t.proc.poll() is not None:
            raise RuntimeError(f"{t.name} exited {t.proc.returncode}:\n{t.log()[-3000:]}")
        return _answers(url)

    try:
        wait_for(up, timeout=timeout, interval=0.2, message=f"{t.name} at {url}")
    except TimeoutError:
        t.stop()
        raise


def start_devpi(index_url: str, *, expiry: int = 1800) -> Tool:
    """devpi-server with ``root/pypi`` a mirror of ``<index_url>/simple/``; url: the index."""
    serverdir = Path(tempfile.mkdtemp(prefix="bh-devpi-data-"))
    subprocess.run([str(tool("devpi", "devpi-init")), "--serverdir", str(serverdir),
                    "--no-root-pypi", "--root-passwd", "root"], check=True, timeout=120,
                   capture_output=True)
    port = free_port()
    proc, log_path = _spawn("devpi", [
        str(tool("devpi", "devpi-server")), "--serverdir", str(serverdir), "--host", "127.0.0.1",
        "--port", str(port), "--mirror-cache-expiry", str(expiry)])
    base = f"http://127.0.0.1:{port}"
    t = Tool("devpi", f"{base}/root/pypi", proc, log_path)
    _wait_up(t, f"{base}/+api")
    client_dir = Path(tempfile.mkdtemp(prefix="bh-devpi-client-"))
    devpi = [str(tool("devpi", "devpi")), "--clientdir", str(client_dir)]
    for args in (["use", base], ["login", "root", "--password", "root"],
                 ["index", "-c", "root/pypi", "type=mirror", f"mirror_url={index_url}/simple/",
                  f"mirror_cache_expiry={expiry}"]):
        done = subprocess.run(devpi + args, capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            t.stop()
            raise RuntimeError(f"devpi {args[0]} failed: {done.stdout!r} {done.stderr!r}")
    return t


def start_proxpi(index_url: str, *, ttl: int = 1800) -> Tool:
    """proxpi (one gunicorn worker) caching ``<index_url>/simple/``; url: its base."""
    port = free_port()
    env = {"PROXPI_INDEX_URL": f"{index_url}/simple/", "PROXPI_INDEX_TTL": str(ttl),
           "PROXPI_CACHE_DIR": tempfile.mkdtemp(prefix="bh-proxpi-cache-")}
    proc, log_path = _spawn("proxpi", [
        str(tool("proxpi", "gunicorn")), "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--threads", "4", "proxpi.server:app"], env=env)
    t = Tool("proxpi", f"http://127.0.0.1:{port}", proc, log_path)
    _wait_up(t, f"{t.url}/index/")
    return t


def pip_download(project: str, version: str, index: str, dest: Path) -> subprocess.CompletedProcess:
    """``pip download <project>==<version> --index-url <index>`` (no deps, no cache)."""
    return subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "pip"), "download", f"{project}=={version}",
         "--index-url", index, "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
         "-d", str(dest), "--retries", "0", "--timeout", "15"],
        capture_output=True, timeout=120, check=False)


def spawn_listening(name: str, argv: list[str], timeout: float = 30.0) -> Tool:
    """Start ``argv`` (in the repo, PYTHONPATH set) and wait for its ``LISTENING <port>`` line."""
    log_path = Path(tempfile.mkdtemp(prefix=f"bh-{name}-")) / f"{name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=log_file, start_new_session=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        ready = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]
        chunk = os.read(proc.stdout.fileno(), 4096) if ready else b""
        if not chunk:
            t = Tool(name, "", proc, log_path)
            t.stop()
            raise RuntimeError(f"{name} did not print LISTENING:\n{t.log()[-3000:]}")
        buffer += chunk
    word, _, port = buffer.split(b"\n", 1)[0].decode().partition(" ")
    if word != "LISTENING" or not port.isdigit():
        raise RuntimeError(f"{name} printed {buffer!r}")
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    return Tool(name, f"http://127.0.0.1:{port}", proc, log_path)


def _drain(stream) -> None:
    with contextlib.suppress(OSError, ValueError):
        while stream.read(65536):
            pass

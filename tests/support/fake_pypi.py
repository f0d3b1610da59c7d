"""The fake PyPI-shaped index (``examples/fake_pypi``) for tests: start it as a subprocess.

    with running_fake_pypi() as (server, pypi):
        pypi.release("Foo_Bar", "1.0")          # FakePyPIClient
        server.url("/pypi")                     # the XML-RPC endpoint
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from examples.fake_pypi import ControlFailed, FakePyPIClient
from tests.support.processes import REPO_ROOT, Server, _drain, _stop_process, _tail

MODULE = "examples.fake_pypi"

__all__ = ["MODULE", "ControlFailed", "FakePyPIClient", "running_fake_pypi", "start_fake_pypi"]


def start_fake_pypi(*, state: Path | None = None, port: int = 0, timeout: float = 15.0) -> Server:
    """``python -m examples.fake_pypi --port <port> [--state <file>]``, once it said LISTENING."""
    log_path = Path(tempfile.mkdtemp(prefix="bh-fake-pypi-")) / "fake_pypi.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    args = [sys.executable, "-m", MODULE, "--port", str(port)]
    if state is not None:
        args += ["--state", str(state)]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=log_file, start_new_session=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        ready = select.select([proc.stdout], [], [], max(0.0, remaining))[0]
        chunk = os.read(proc.stdout.fileno(), 4096) if ready else b""
        if not chunk:
            _stop_process(proc, 2)
            raise RuntimeError(f"{MODULE} did not print LISTENING\n{_tail(log_path)}")
        buffer += chunk
    word, _, number = buffer.split(b"\n", 1)[0].decode().partition(" ")
    if word != "LISTENING" or not number.isdigit():
        _stop_process(proc, 2)
        raise RuntimeError(f"{MODULE} printed {buffer!r}\n{_tail(log_path)}")
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    return Server(module=MODULE, port=int(number), proc=proc, log_path=log_path)


@contextlib.contextmanager
def running_fake_pypi(*, state: Path | None = None) -> Iterator[tuple[Server, FakePyPIClient]]:
    server = start_fake_pypi(state=state)
    try:
        yield server, FakePyPIClient(server.url(""))
    finally:
        server.stop()

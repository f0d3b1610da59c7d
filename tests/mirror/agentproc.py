"""``broker-hub mirror`` as a real subprocess, and what tests read from its state file."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.mirror.tools import Tool, spawn_listening
from tests.support.processes import free_port, wait_for

BROKER_HUB = Path(sys.executable).parent / "broker-hub"


@dataclass
class AgentProc:
    tool: Tool
    state: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rows(self, sql: str, *params: object) -> list[tuple]:
        db = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def secret(self, topic: str) -> str:
        return self.rows("SELECT secret FROM subscriptions WHERE topic = ?", topic)[0][0]

    def token(self, topic: str) -> str:
        return self.rows("SELECT token FROM subscriptions WHERE topic = ?", topic)[0][0]

    def status(self) -> str:
        return requests.get(f"{self.url}/status", timeout=10).text.strip()

    def metric(self, name: str) -> float:
        """The sum of a metric's samples named exactly ``name`` (labels included) on /metrics."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def synced(self) -> bool:
        """Nothing left in the inbox or the queue (and no catch-up open)."""
        return (self.rows("SELECT count(*) FROM inbox")[0][0] == 0
                and self.rows("SELECT count(*) FROM pending")[0][0] == 0
                and self.rows("SELECT count(*) FROM cursors WHERE catchup_since IS NOT NULL"
                              )[0][0] == 0)

    def wait_synced(self, timeout: float = 60.0) -> None:
        wait_for(self.synced, timeout=timeout, interval=0.2,
                 message=f"the agent to sync everything ({self.log()[-2000:]})")

    def log(self) -> str:
        return self.tool.log()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.tool.proc.pid, signal.SIGKILL)
        self.tool.proc.wait(10)

    def stop(self) -> None:
        self.tool.stop()


def start_agent(state: Path, *args: str, port: int | None = None) -> AgentProc:
    port = port or free_port()
    argv = [str(BROKER_HUB), "mirror", "--state", str(state), "--bind", f"127.0.0.1:{port}",
            "--callback-url", f"http://127.0.0.1:{port}/", "--log-level", "DEBUG", *args]
    return AgentProc(spawn_listening("mirror-agent", argv), state, port)

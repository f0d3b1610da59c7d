"""Fixtures of the mirror tests: the fake index and devpi once per session (every test uses its
own project names), a stand-in hub and agents per test."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.mirror.agentproc import AgentProc, start_agent
from tests.mirror.tools import Tool, spawn_listening, start_devpi
from tests.support.fake_pypi import FakePyPIClient, start_fake_pypi
from tests.support.processes import Server, wait_for


@pytest.fixture(scope="session")
def fake_index() -> Iterator[Server]:
    server = start_fake_pypi()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def index_url(fake_index: Server) -> str:
    return fake_index.url("").rstrip("/")


@pytest.fixture
def pypi(index_url: str) -> FakePyPIClient:
    return FakePyPIClient(index_url)


@pytest.fixture(scope="session")
def devpi(index_url: str) -> Iterator[Tool]:
    tool = start_devpi(index_url)
    yield tool
    tool.stop()


class StandInHub:
    """Drives ``tests.mirror.standin_hub`` (the hub's PyPI side, until the bridge lands)."""

    def __init__(self, tool: Tool):
        self.tool = tool
        self.url = tool.url + "/"

    def control(self, op: str, **body: object) -> dict:
        answer = requests.post(f"{self.tool.url}/_control/{op}", json=body, timeout=60)
        answer.raise_for_status()
        return answer.json()

    def push(self, topic: str, since: int, until: int, **options: object) -> list[int]:
        return self.control("push", topic=topic, since=since, until=until, **options)["statuses"]

    def subscriptions(self) -> list[dict]:
        return requests.get(f"{self.tool.url}/_control/subscriptions", timeout=10).json()

    def wait_subscribed(self, count: int = 1) -> None:
        wait_for(lambda: len(self.subscriptions()) >= count, timeout=30, interval=0.1,
                 message=f"{count} verified subscription(s)")

    def firehose(self) -> str:
        return self.url + "pypi/changes"

    def project(self, normalized: str) -> str:
        return self.url + "pypi/project/" + normalized


@pytest.fixture
def hub(index_url: str) -> Iterator[StandInHub]:
    tool = spawn_listening("standin-hub", [sys.executable, "-m", "tests.mirror.standin_hub",
                                           "--port", "0", "--index", index_url])
    yield StandInHub(tool)
    tool.stop()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Callable[..., AgentProc]]:
    """``agent(*args, state=None)``: a running ``broker-hub mirror``; stopped after the test."""
    started: list[AgentProc] = []

    def start(*args: str, state: Path | None = None) -> AgentProc:
        proc = start_agent(state or tmp_path / "mirror.sqlite", *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        print(f"--- agent log {proc.tool.log_path} ---\n{proc.log()[-4000:]}")

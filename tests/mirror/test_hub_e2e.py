"""The agent against the real hub (``broker-hub run``): subscription and verification of intent.

Once the PyPI bridge is on main (``HUB_PYPI_URL``), the whole path is here too: a release in
the fake index -> the hub's poller -> the push -> the agent -> devpi serves the new version.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests

from tests.mirror.agentproc import BROKER_HUB
from tests.support.processes import wait_for


def test_the_real_hub_verifies_the_agent_subscription(hub_env, spawn_hub, agent, index_url,
                                                     tmp_path):
    env = hub_env()
    spawn_hub("run", env)
    mirror = agent("--hub", hub_env.hub_url, "--index", index_url, "--hook",
                   "http://127.0.0.1:9/unused", "--project", "Some_Project",
                   "--lease-seconds", "3600")
    topic = hub_env.hub_url + "pypi/project/some-project"
    wait_for(lambda: mirror.rows("SELECT verified_at FROM subscriptions WHERE topic = ?",
                                 topic)[0][0] is not None, timeout=30,
             message="the hub's verification of the agent's subscription")
    (expires, verified), = mirror.rows(
        "SELECT expires_at, verified_at FROM subscriptions WHERE topic = ?", topic)
    assert 3000 < expires - verified <= 3600
    assert mirror.status().startswith("subscriptions 1/1 active")
    out = subprocess.run([str(BROKER_HUB), "mirror", "status", "--state", str(mirror.state)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.startswith("subscriptions 1/1 active") and out.count("\n") == 1


def test_a_verification_the_agent_did_not_ask_for_is_refused(agent, index_url, hub_env):
    mirror = agent("--hub", "http://127.0.0.1:9/", "--index", index_url, "--hook",
                   "http://127.0.0.1:9/unused")
    topic = "http://127.0.0.1:9/pypi/changes"
    token = mirror.token(topic)
    query = {"hub.mode": "subscribe", "hub.topic": "http://127.0.0.1:9/pypi/project/other",
             "hub.challenge": "abc", "hub.lease_seconds": "60"}
    assert requests.get(f"{mirror.url}/callback/{token}", params=query, timeout=10
                        ).status_code == 404
    assert requests.get(f"{mirror.url}/callback/{token}",
                        params={**query, "hub.topic": topic}, timeout=10).text == "abc"


def test_bad_command_lines_get_a_clear_message(tmp_path: Path):
    state = str(tmp_path / "s.sqlite")
    cases = [
        (["--hub", "http://h/", "--callback-url", "http://c/"], "--devpi, --proxpi"),
        (["--hub", "http://h/", "--callback-url", "http://c/", "--hook", "http://x/",
          "--project=a;reboot"], "not valid project names"),
        (["--hub", "http://h/", "--callback-url", "http://c/", "--exec", "bandersnatch mirror"],
         "{projects}"),
        (["--hook", "http://x/"], "--hub and --callback-url"),
    ]
    for args, message in cases:
        done = subprocess.run([str(BROKER_HUB), "mirror", "--state", state, *args],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr

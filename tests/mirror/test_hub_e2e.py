"""The agent against the real hub (``broker-hub run``): subscription and verification of intent.

Once the PyPI bridge is on main (``HUB_PYPI_URL``), the whole path is here too: a release in
the fake index -> the hub's poller -> the push -> the agent -> devpi serves the new version.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests

from tests.mirror.agentproc import BROKER_HUB, start_agent
from tests.mirror.tools import pip_download
from tests.support.fake_pypi import FakePyPIClient
from tests.support.processes import free_port, wait_for


def test_the_real_hub_verifies_the_agent_subscription(hub_env, spawn_hub, agent, index_url,
                                                     tmp_path):
    pypi_hub(hub_env, spawn_hub, index_url)
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


# --- the whole path: fake index -> the hub's poller -> push -> agent -> devpi ---------------


def pypi_hub(hub_env, spawn_hub, index_url, **overrides):
    """``broker-hub run`` polling the fake index every 0.5 s; returns once its poller started."""
    env = hub_env(HUB_PYPI_URL=index_url, HUB_PYPI_POLL_INTERVAL="0.5", **overrides)
    hub = spawn_hub("run", env)
    last = FakePyPIClient(index_url).last_serial()

    def watching() -> bool:
        page = requests.get(hub_env.hub_url + "pypi/changes", timeout=10)
        return page.status_code == 200 and page.json()["until"] >= last

    wait_for(watching, timeout=30, message="the hub's poller to reach the index's serial")
    return hub


def hub_metric(hub_env, name: str) -> float:
    text = requests.get(hub_env.base_url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((name + " ", name + "{")))


def test_release_reaches_devpi_through_the_real_hub(hub_env, spawn_hub, agent, index_url, pypi,
                                                    devpi, tmp_path):
    for name in ("Through_Hub", "Not_Followed"):
        pypi.release(name, "1.0")
        requests.get(f"{devpi.url}/+simple/{name}/", timeout=30)  # devpi caches the page
    pypi_hub(hub_env, spawn_hub, index_url)
    mirror = agent("--hub", hub_env.hub_url, "--index", index_url, "--devpi", devpi.url,
                   "--project", "Through_Hub", "--coalesce-seconds", "0.2")
    wait_for(lambda: mirror.status().startswith("subscriptions 1/1 active"), timeout=30,
             message="the subscription")
    pypi.release("Not_Followed", "1.1")  # the control: no push reaches devpi for it
    pypi.release("Through_Hub", "1.1")
    wait_for(lambda: mirror.metric("broker_hub_mirror_syncs_total") >= 1, timeout=60,
             message=f"the sync ({mirror.log()[-2000:]})")
    mirror.wait_synced()
    index = devpi.url + "/+simple/"
    assert pip_download("through-hub", "1.1", index, tmp_path).returncode == 0
    assert pip_download("not-followed", "1.1", index, tmp_path).returncode != 0  # cached page
    ((sequence,),) = mirror.rows("SELECT sequence FROM cursors")
    assert sequence >= 1  # the hub's X-Hub-Sequence was read
    assert mirror.metric("broker_hub_mirror_gaps_total") == 0


def test_downtime_is_caught_up_from_the_real_hub(hub_env, spawn_hub, index_url, pypi, devpi,
                                                 tmp_path):
    pypi.release("Hub_Down", "1.0")
    # one delivery attempt: what the agent misses while down is parked, never redelivered
    pypi_hub(hub_env, spawn_hub, index_url, HUB_DELIVERY_MAX_ATTEMPTS="1")
    state, port = tmp_path / "agent.sqlite", free_port()
    args = ("--hub", hub_env.hub_url, "--index", index_url, "--devpi", devpi.url,
            "--coalesce-seconds", "0.2")
    first = start_agent(state, *args, port=port)
    try:
        wait_for(lambda: first.status().startswith("subscriptions 1/1 active"), timeout=30)
        pypi.release("Hub_Down", "1.1")
        wait_for(lambda: first.metric("broker_hub_mirror_syncs_total") >= 1, timeout=60)
        first.wait_synced()
    finally:
        first.kill()
    parked = hub_metric(hub_env, "broker_hub_parked_total")
    pypi.release("Hub_Down", "2.0")
    wait_for(lambda: hub_metric(hub_env, "broker_hub_parked_total") > parked, timeout=60,
             message="the hub to give up on the down agent")
    second = start_agent(state, *args, port=port)
    try:
        wait_for(lambda: second.metric("broker_hub_mirror_syncs_total") >= 1, timeout=60,
                 message=f"the catch-up sync ({second.log()[-2000:]})")
        second.wait_synced()
        assert pip_download("hub-down", "2.0", devpi.url + "/+simple/", tmp_path).returncode == 0
        text = requests.get(second.url + "/metrics", timeout=10).text
        assert 'broker_hub_mirror_catchups_total{outcome="ok"}' in text
    finally:
        second.stop()


def test_a_410_from_the_real_hub_runs_the_full_sync(hub_env, spawn_hub, index_url, pypi,
                                                    devpi, tmp_path):
    """Down longer than the hub retains (here: the hub came back with an empty database)."""
    marker = tmp_path / "full-sync-ran"
    pypi.release("Hub_Gone", "1.0")
    first_hub = pypi_hub(hub_env, spawn_hub, index_url,
                         HUB_DATABASE_URL=f"sqlite:///{tmp_path / 'hub-a.sqlite3'}")
    state, port = tmp_path / "agent.sqlite", free_port()
    args = ("--hub", hub_env.hub_url, "--index", index_url, "--devpi", devpi.url,
            "--coalesce-seconds", "0.2", "--full-sync", f"touch {marker}")
    first = start_agent(state, *args, port=port)
    try:
        wait_for(lambda: first.status().startswith("subscriptions 1/1 active"), timeout=30)
        pypi.release("Hub_Gone", "1.1")
        wait_for(lambda: first.metric("broker_hub_mirror_syncs_total") >= 1, timeout=60)
    finally:
        first.kill()
    first_hub.stop()
    pypi.release("Hub_Gone", "1.2")
    pypi_hub(hub_env, spawn_hub, index_url,
             HUB_DATABASE_URL=f"sqlite:///{tmp_path / 'hub-b.sqlite3'}")
    second = start_agent(state, *args, port=port)
    try:
        wait_for(marker.exists, timeout=60, message=f"the full sync ({second.log()[-2000:]})")
        text = requests.get(second.url + "/metrics", timeout=10).text
        assert 'broker_hub_mirror_catchups_total{outcome="gone"} 1.0' in text
        assert "keeps the journal only after serial" in second.log()  # the hub's explanation
        wait_for(lambda: "FULL SYNC NEEDED" not in second.status(), timeout=30)
        # the new hub never knew the agent: asked again on start, it follows the topic again;
        # its delivery ids restart too (the same id, another body: not a replay)
        pypi.release("Hub_Gone", "1.3")
        wait_for(lambda: second.metric("broker_hub_mirror_syncs_total") >= 1, timeout=60,
                 message=f"a sync through the new hub ({second.log()[-3000:]})")
    finally:
        second.stop()

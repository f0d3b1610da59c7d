"""End to end with a real devpi-server: a release in the fake index -> a signed push -> the
agent -> devpi serves the new version. Plus the faults: forged, replayed, gap, kill -9, 410.

The pushes come from ``standin_hub`` (the hub's PyPI side as the interface describes it) until
the bridge lands on main; see test_hub_e2e.py for the real hub.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.mirror.tools import pip_download
from tests.support.processes import wait_for


def devpi_args(devpi, index_url: str, hub, *more: str) -> tuple[str, ...]:
    return ("--hub", hub.url, "--index", index_url, "--devpi", devpi.url,
            "--coalesce-seconds", "0.2", *more)


def warm(devpi, normalized: str) -> None:
    """Let devpi cache what it knows of the project (as a client's first install would): its
    page, or, for a project newer than devpi's cached project list, a 404."""
    assert requests.get(f"{devpi.url}/+simple/{normalized}/", timeout=30).status_code in (200, 404)


def downloadable(devpi, project: str, version: str, tmp_path: Path) -> bool:
    return pip_download(project, version, devpi.url + "/+simple/", tmp_path).returncode == 0


def test_push_makes_devpi_serve_the_new_version(devpi, index_url, hub, pypi, agent, tmp_path):
    before = pypi.release("Alpha_One", "1.0")[-1]
    warm(devpi, "alpha-one")
    mirror = agent(*devpi_args(devpi, index_url, hub, "--project", "Alpha_One"))
    hub.wait_subscribed()
    until = pypi.release("Alpha_One", "1.1")[-1]
    assert not downloadable(devpi, "alpha-one", "1.1", tmp_path)  # devpi's cached page

    assert hub.push(hub.project("alpha-one"), before, until) == [202]
    mirror.wait_synced()
    assert downloadable(devpi, "alpha-one", "1.1", tmp_path)
    assert mirror.metric("broker_hub_mirror_syncs_total") == 1
    assert mirror.metric("broker_hub_mirror_push_to_synced_seconds_count") == 1
    assert 'project="alpha-one"' in requests.get(mirror.url + "/metrics", timeout=10).text
    assert "last sync alpha-one" in mirror.status()


def test_forged_signature_is_refused_and_nothing_synced(devpi, index_url, hub, pypi, agent,
                                                        tmp_path):
    before = pypi.release("Forged_Pkg", "1.0")[-1]
    warm(devpi, "forged-pkg")
    mirror = agent(*devpi_args(devpi, index_url, hub))
    hub.wait_subscribed()
    until = pypi.release("Forged_Pkg", "1.1")[-1]
    assert hub.push(hub.firehose(), before, until, forge=True) == [403]
    # no signature at all: 403 too
    token = mirror.token(hub.firehose())
    bare = requests.post(f"{mirror.url}/callback/{token}", data=b'{"entries": []}', timeout=10)
    assert bare.status_code == 403
    assert mirror.metric("broker_hub_mirror_notifications_total") == 2
    assert mirror.rows("SELECT count(*) FROM inbox")[0][0] == 0
    assert mirror.rows("SELECT count(*) FROM pending")[0][0] == 0
    assert "X-Hub-Signature" in mirror.log()
    assert not downloadable(devpi, "forged-pkg", "1.1", tmp_path)


def test_replayed_delivery_is_dropped(devpi, index_url, hub, pypi, agent):
    before = pypi.release("Replay_Pkg", "1.0")[-1]
    mirror = agent(*devpi_args(devpi, index_url, hub))
    hub.wait_subscribed()
    until = pypi.release("Replay_Pkg", "1.1")[-1]
    assert hub.push(hub.firehose(), before, until) == [202]
    mirror.wait_synced()
    assert hub.control("replay")["statuses"] == [200]
    mirror.wait_synced()
    text = requests.get(mirror.url + "/metrics", timeout=10).text
    assert 'broker_hub_mirror_notifications_total{outcome="duplicate"} 1.0' in text
    assert mirror.metric("broker_hub_mirror_syncs_total") == 1


def test_gap_is_bridged_by_catch_up(devpi, index_url, hub, pypi, agent, tmp_path):
    s0 = pypi.release("Gap_Start", "1.0")[-1]
    mirror = agent(*devpi_args(devpi, index_url, hub))
    hub.wait_subscribed()
    s1 = pypi.release("Gap_Start", "1.1")[-1]
    assert hub.push(hub.firehose(), s0, s1) == [202]
    mirror.wait_synced()
    pypi.release("Gap_Lost", "1.0")
    s2 = pypi.release("Gap_Lost", "1.1")[-1]
    hub.push(hub.firehose(), s1, s2, send=False)  # lost on the way: sequence 2 never arrives
    s3 = pypi.release("Gap_Next", "1.0")[-1]
    assert hub.push(hub.firehose(), s2, s3) == [202]
    mirror.wait_synced()
    assert mirror.metric("broker_hub_mirror_gaps_total") == 1
    text = requests.get(mirror.url + "/metrics", timeout=10).text
    assert 'broker_hub_mirror_catchups_total{outcome="ok"} 1.0' in text
    assert downloadable(devpi, "gap-lost", "1.1", tmp_path)  # only the catch-up named it
    assert downloadable(devpi, "gap-next", "1.0", tmp_path)


def test_killed_agent_loses_nothing_it_acknowledged(devpi, index_url, hub, pypi, agent,
                                                    tmp_path):
    state = tmp_path / "kill.sqlite"
    before = pypi.release("Kill_Pkg", "1.0")[-1]
    warm(devpi, "kill-pkg")
    first = agent(*devpi_args(devpi, index_url, hub, "--coalesce-seconds", "600"), state=state)
    hub.wait_subscribed()
    until = pypi.release("Kill_Pkg", "1.1")[-1]
    assert hub.push(hub.firehose(), before, until) == [202]
    wait_for(lambda: first.rows("SELECT count(*) FROM pending")[0][0] == 1, timeout=20)
    first.kill()
    assert not downloadable(devpi, "kill-pkg", "1.1", tmp_path)
    second = agent(*devpi_args(devpi, index_url, hub), state=state)
    second.wait_synced()
    assert downloadable(devpi, "kill-pkg", "1.1", tmp_path)


def test_downtime_is_caught_up_on_restart(devpi, index_url, hub, pypi, agent, tmp_path):
    state = tmp_path / "down.sqlite"
    s0 = pypi.release("Down_Start", "1.0")[-1]
    first = agent(*devpi_args(devpi, index_url, hub), state=state)
    hub.wait_subscribed()
    s1 = pypi.release("Down_Start", "1.1")[-1]
    assert hub.push(hub.firehose(), s0, s1) == [202]
    first.wait_synced()
    first.stop()
    pypi.release("Down_Missed", "1.0")
    s2 = pypi.release("Down_Missed", "2.0")[-1]
    hub.push(hub.firehose(), s1, s2, send=False)  # the hub's retries ran out while we were down
    second = agent(*devpi_args(devpi, index_url, hub), state=state)
    second.wait_synced()
    assert downloadable(devpi, "down-missed", "2.0", tmp_path)


def test_410_from_catch_up_runs_the_full_sync(devpi, index_url, hub, pypi, agent, tmp_path):
    marker = tmp_path / "full-sync-ran"
    s0 = pypi.release("Full_Start", "1.0")[-1]
    mirror = agent(*devpi_args(devpi, index_url, hub, "--full-sync", f"touch {marker}"))
    hub.wait_subscribed()
    s1 = pypi.release("Full_Start", "1.1")[-1]
    assert hub.push(hub.firehose(), s0, s1) == [202]
    mirror.wait_synced()
    s2 = pypi.release("Full_Lost", "1.0")[-1]
    hub.push(hub.firehose(), s1, s2, send=False)
    hub.control("retain", **{"from": s2 + 1})  # the hub no longer holds serial s1 onwards
    s3 = pypi.release("Full_Next", "1.0")[-1]
    assert hub.push(hub.firehose(), s2, s3) == [202]
    wait_for(marker.exists, timeout=30, message="the full-sync command")
    mirror.wait_synced()
    text = requests.get(mirror.url + "/metrics", timeout=10).text
    assert 'broker_hub_mirror_catchups_total{outcome="gone"} 1.0' in text
    assert 'broker_hub_mirror_full_syncs_total{outcome="ok"} 1.0' in text
    assert "full sync is needed" in mirror.log()
    assert "FULL SYNC NEEDED" not in mirror.status()


def test_agent_waits_until_the_index_serves_the_serial(devpi, index_url, hub, pypi, agent,
                                                       tmp_path):
    """A push beating the CDN purge: refreshing at once would cache the stale page again."""
    before = pypi.release("Lagging_Cdn", "1.0")[-1]
    warm(devpi, "lagging-cdn")
    mirror = agent(*devpi_args(devpi, index_url, hub))
    hub.wait_subscribed()
    pypi.cdn_lag(10)  # longer than the agent's re-trigger checks (0.25 + 0.5 + ... + 4 s)
    try:
        until = pypi.release("Lagging_Cdn", "1.1")[-1]
        assert hub.push(hub.firehose(), before, until) == [202]
        mirror.wait_synced(timeout=90)
    finally:
        pypi.cdn_lag(0)
    assert downloadable(devpi, "lagging-cdn", "1.1", tmp_path)
    assert mirror.metric("broker_hub_mirror_sync_failures_total") == 0

"""The one hub launcher (tests/support/hubs.py): its env, the split hub's roles, the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.fake_pypi import running_fake_pypi
from tests.support.hubs import DEFAULTS, HubCache, build_env, poll, split
from tests.support.processes import REPO_ROOT


def test_build_env_is_loopback_with_rate_limits_off_and_overridable():
    env = build_env(database_url="sqlite:////tmp/x.sqlite3", HUB_LEASE_MIN=5,
                    HUB_HTTP_TIMEOUT=None, HUB_RATE_LIMIT_PER_MINUTE="7")
    assert env["HUB_BIND"].startswith("127.0.0.1:")
    assert env["HUB_BROKER_URL"] == "memory://"
    assert env["HUB_NAMESPACE"].startswith("bht_")
    assert env["HUB_LEASE_MIN"] == "5" and "HUB_HTTP_TIMEOUT" not in env
    assert env["HUB_RATE_LIMIT_PER_MINUTE"] == "7"  # a test turns a limit on
    assert env["HUB_VERIFY_RATE_PER_HOST"] == env["HUB_FETCH_RATE_PER_HOST"] == "0"
    assert float(env["HUB_DELIVERY_BACKOFF_BASE"]) < 1
    other = build_env(database_url="sqlite:////tmp/x.sqlite3")
    assert other["HUB_BIND"] != env["HUB_BIND"]
    assert other["HUB_METRICS_PORT"] != env["HUB_METRICS_PORT"]
    assert {k: other[k] for k in DEFAULTS} == DEFAULTS


def test_every_launcher_reads_the_postgres_admin_url_from_one_variable():
    code = (
        "import tests.support.hubs, tests.integration.hubs as old, tests.support.postgres as pg;"
        "print(old.POSTGRES_ADMIN_URL, pg.POSTGRES_ADMIN_URL, pg.POSTGRES_BASE)"
    )
    env = {**os.environ, "BROKER_HUB_TEST_POSTGRES_URL": "postgresql://127.0.0.1:6543/admin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout.split()
    assert out == ["postgresql://127.0.0.1:6543/admin"] * 2 + ["postgresql://127.0.0.1:6543"]


def test_split_hub_starts_every_role_and_scrapes_each_metrics_port(tmp_path):
    with running_fake_pypi() as (index, _), split(
        tmp_path, roles=("fetcher", "deliverer", "verifier", "poller"),
        HUB_PYPI_URL=index.url(""), HUB_PYPI_POLL_INTERVAL="1",
    ) as hub:
        urls = hub.metrics_urls()
        assert set(urls) == {"front", "fetcher", "deliverer", "verifier", "poller"}
        assert len(set(urls.values())) == 5
        for role in ("fetcher", "deliverer", "verifier", "poller"):
            page = requests.get(urls[role], timeout=10)
            assert page.status_code == 200 and "broker_hub_handler_errors_total" in page.text
        source = f"127.0.0.1:{index.port}"
        poll(lambda: hub.metric("broker_hub_polls_total", source=source), lambda n: n >= 2,
             timeout=30, message="polls of the fake index, on the poller's metrics port")
        assert hub.metric("broker_hub_polls_total", outcome="started", source=source) == 1

        assert hub.stop("verifier") == 0
        assert "verifier" not in hub.metrics_urls() and "verifier" not in hub.processes
        old = hub.processes["fetcher"]
        hub.kill("fetcher")
        assert not old.alive()
        new = hub.start("fetcher")
        assert new.alive() and new.env["HUB_METRICS_PORT"] != old.env["HUB_METRICS_PORT"]
        assert hub.metrics_urls()["fetcher"].endswith(f":{new.env['HUB_METRICS_PORT']}/metrics")
        assert "broker_hub_handler_errors_total" in hub.metrics_text()


def test_hub_cache_keeps_one_hub_per_configuration_and_replaces_a_dead_one(tmp_path):
    dirs = iter(range(10))

    def make_dir() -> Path:
        path = tmp_path / str(next(dirs))
        path.mkdir()
        return path

    cache = HubCache(make_dir, HUB_HTTP_TIMEOUT="2")
    try:
        first = cache.get(HUB_LEASE_MIN="2")
        assert cache.get(HUB_LEASE_MIN=2) is first
        assert first.env["HUB_HTTP_TIMEOUT"] == "2" and first.healthy()
        assert first.subscribe("x", "y").status_code == 400  # left to the test: no assert
        first.process.kill()
        again = cache.get(HUB_LEASE_MIN="2")
        assert again is not first and again.healthy() and again.url != first.url
    finally:
        cache.close()
    assert not first.process.alive() and not again.process.alive()

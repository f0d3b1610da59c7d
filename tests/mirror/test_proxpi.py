"""End to end with a real proxpi: a release -> a signed push -> the agent -> proxpi serves it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.mirror.tools import Tool, pip_download, start_proxpi


@pytest.fixture(scope="module")
def proxpi(index_url: str) -> Iterator[Tool]:
    tool = start_proxpi(index_url)
    yield tool
    tool.stop()


def test_push_makes_proxpi_serve_the_new_version(proxpi, index_url, hub, pypi, agent, tmp_path):
    before = pypi.release("Prox_Pkg", "1.0")[-1]
    requests.delete(f"{proxpi.url}/cache/list", timeout=30)  # setup: proxpi learns the project
    # clients typed two spellings: proxpi caches each separately
    for spelling in ("prox-pkg", "Prox_Pkg"):
        assert requests.get(f"{proxpi.url}/index/{spelling}/", timeout=30).status_code == 200
    mirror = agent("--hub", hub.url, "--index", index_url, "--proxpi", proxpi.url,
                   "--coalesce-seconds", "0.2", "--project", "prox-pkg")
    hub.wait_subscribed()
    until = pypi.release("Prox_Pkg", "1.1")[-1]
    index = proxpi.url + "/index/"
    assert pip_download("prox-pkg", "1.1", index, tmp_path).returncode != 0  # cached page

    assert hub.push(hub.project("prox-pkg"), before, until) == [202]
    mirror.wait_synced()
    assert pip_download("prox-pkg", "1.1", index, tmp_path).returncode == 0
    assert "1.1" in requests.get(f"{proxpi.url}/index/Prox_Pkg/", timeout=30).text
    assert mirror.metric("broker_hub_mirror_syncs_total") == 1


def test_new_project_drops_the_project_list(proxpi, index_url, hub, pypi, agent, tmp_path):
    assert requests.get(f"{proxpi.url}/index/", timeout=30).status_code == 200  # list cached
    mirror = agent("--hub", hub.url, "--index", index_url, "--proxpi", proxpi.url,
                   "--coalesce-seconds", "0.2")
    hub.wait_subscribed()
    before = pypi.last_serial()
    until = pypi.release("Brand_New_Prox", "0.1")[-1]
    assert "brand-new-prox" not in requests.get(f"{proxpi.url}/index/", timeout=30).text
    assert hub.push(hub.firehose(), before, until) == [202]
    mirror.wait_synced()
    assert "brand-new-prox" in requests.get(f"{proxpi.url}/index/", timeout=30).text
    assert pip_download("brand-new-prox", "0.1", proxpi.url + "/index/", tmp_path).returncode == 0

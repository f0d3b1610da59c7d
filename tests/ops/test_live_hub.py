"""A split hub (web with 2 Granian workers, fetcher, deliverer on RabbitMQ and PostgreSQL)
with one healthy and one failing mirror, watched the way ops watch it: /status in a real
headless Chromium, /status.json, ``broker-hub status`` and ``parked`` filters, every metric
name the dashboard, rules and docs use exported by the running processes, and a real
Prometheus scraping them that raises the failing mirror's alert."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.integration.hubs import RunningHub, split_hub, wait_posts
from tests.support.fake_pypi import FakePyPIClient, start_fake_pypi
from tests.support.processes import (
    REPO_ROOT,
    HubProcess,
    Server,
    free_port,
    start_server,
    wait_for,
)
from tests.support.publisher import PublisherClient
from tests.support.subscriber import SubscriberClient

MONITORING = REPO_ROOT / "deploy" / "monitoring"
ATOM = (
    '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
    "<title>t</title><id>urn:t</id><updated>2026-11-24T00:00:00Z</updated>"
    "<entry><id>e1</id><title>one</title><updated>2026-11-24T00:00:00Z</updated></entry></feed>"
)
NOT_METRICS = {"rabbitmq_prometheus"}  # the plugin's name, mentioned in the docs
NAME = re.compile(r"\b((?:broker_hub|process|rabbitmq)_[a-z0-9_]*[a-z0-9])\b")


@dataclass
class Live:
    hub: RunningHub
    good: SubscriberClient
    bad: SubscriberClient
    topic: str
    bad_mirror: str
    good_mirror: str
    tmp: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("live")
    servers: list[Server] = [start_server("tests.support.publisher")]
    servers += [start_server("tests.support.subscriber") for _ in range(2)]
    servers.append(start_fake_pypi())
    pypi = FakePyPIClient(servers[3].url(""))
    publisher = PublisherClient(servers[0].url())
    good, bad = SubscriberClient(servers[1].url()), SubscriberClient(servers[2].url())
    try:
        with split_hub(tmp) as hub:  # HUB_WEB_WORKERS=2
            path = f"/feed-{uuid.uuid4().hex[:8]}"
            plain = publisher.set_topic(path, ATOM)
            topic = plain.replace("http://", "http://opsuser:topicpw@")  # userinfo: never shown
            bad.configure("/cb", deliver_default=503)
            hub.subscribe(topic, good.url("/cb?token=cbsecret"))
            hub.subscribe(topic, bad.url("/cb?token=cbsecret"))
            hub.subscribed(topic, good.url("/cb?token=cbsecret"))
            hub.subscribed(topic, bad.url("/cb?token=cbsecret"))
            # the PyPI bridge's poller, on a fake index: source_serial/source_lag are real
            hub.start("poller", HUB_PYPI_URL=servers[3].url("").rstrip("/"),
                      HUB_PYPI_POLL_INTERVAL="1")
            pypi.release("Ops_Demo", "1.0")
            hub.publish(topic)
            wait_posts(good, "/cb", 1, timeout=30)
            wait_posts(bad, "/cb", 4, timeout=60)  # HUB_DELIVERY_MAX_ATTEMPTS=4, then parked
            live = Live(hub, good, bad, topic, f"127.0.0.1:{servers[2].port}",
                        f"127.0.0.1:{servers[1].port}", tmp)
            # each web worker caches its snapshot for 5 s: wait until every worker shows it
            wait_for(lambda: all(_recorded(status_json(live), live) for _ in range(6)),
                     timeout=40, interval=0.5,
                     message="the failing mirror's delivery parked and its failures recorded")
            yield live
    finally:
        for server in servers:
            server.stop()


def _recorded(status: dict, live: Live) -> bool:
    return status["parked"] >= 1 and any(
        m["mirror"] == live.bad_mirror and m["consecutive_failures"] >= 4
        for m in status["mirrors"])


def status_json(live: Live) -> dict:
    response = requests.get(live.hub.url + "status.json", timeout=10)
    assert response.status_code == 200
    return response.json()


def test_status_json_shows_the_failing_mirror_and_no_secret(live: Live) -> None:
    status = status_json(live)
    mirrors = {m["mirror"]: m for m in status["mirrors"]}
    bad = mirrors[live.bad_mirror]
    assert bad["state"] in ("failing", "paused")
    assert bad["consecutive_failures"] >= 4
    assert bad["last_status"] == 503 and bad["last_error_class"] == "http_503"
    assert bad["backlog_oldest"] > 0
    assert mirrors[live.good_mirror]["state"] == "healthy"
    assert status["recent_failures"][0]["mirror"] == live.bad_mirror
    assert status["mirrors_by_state"]["healthy"] >= 1
    assert status["broker_ok"] is True
    queues = {(q["target"], q["state"]): q["messages"] for q in status["queues"]}
    assert queues[("deliver", "consumers")] >= 1
    text = json.dumps(status)
    for secret in ("topicpw", "opsuser", "cbsecret", "/cb"):
        assert secret not in text


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    chromium = shutil.which("chromium")
    assert chromium, "chromium missing: run `bash scripts/ensure-tools.sh` (make test does)"
    profile = tmp / f"profile-{uuid.uuid4().hex[:6]}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-quic", f"--user-data-dir={profile}"]
    return subprocess.run([chromium, *flags, *args], capture_output=True, text=True,
                          timeout=90, check=False)


def test_status_page_renders_in_chromium(live: Live) -> None:
    url = live.hub.url + "status"
    dom = _chromium("--dump-dom", url, tmp=live.tmp)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert "broker-hub status" in page
    row = re.search(r"<tr><td>" + re.escape(live.bad_mirror) + r"</td>(.*?)</tr>", page)
    assert row, page[:3000]
    assert re.search(r"class=\"state (failing|paused)\"", row.group(1)), row.group(1)
    assert "http_503" in row.group(1)
    for secret in ("topicpw", "opsuser", "cbsecret"):
        assert secret not in page
    shot = live.tmp / "status.png"
    result = _chromium(f"--screenshot={shot}", "--window-size=1280,900", url, tmp=live.tmp)
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    print(f"status page screenshot: {shot}")
    if os.environ.get("BROKER_HUB_SAVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["BROKER_HUB_SAVE_SCREENSHOT"])


def test_status_command_prints_the_summary(live: Live) -> None:
    result = live.hub.cli("status")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith(live.bad_mirror))
    assert re.search(r"\b(failing|paused)\b", line) and "http_503" in line
    assert "topicpw" not in result.stdout
    as_json = json.loads(live.hub.cli("status", "--json").stdout)
    assert live.bad_mirror in {m["mirror"] for m in as_json["mirrors"]}


def test_parked_filters_select_by_mirror_topic_and_age(live: Live) -> None:
    def listed(*args: str) -> list[dict]:
        result = live.hub.cli("parked", "list", *args)
        assert result.returncode == 0, result.stderr
        return [json.loads(x) for x in result.stdout.splitlines() if x.strip()]

    assert [p["mirror"] for p in listed("--mirror", live.bad_mirror)] == [live.bad_mirror]
    assert "topicpw" not in json.dumps(listed())
    assert listed("--mirror", live.good_mirror) == []
    assert len(listed("--topic", live.topic)) == 1
    assert listed("--topic", live.topic + "x") == []
    assert listed("--older-than", "1d") == []
    assert len(listed("--older-than", "0s", "--mirror", live.bad_mirror)) == 1
    bad_arg = live.hub.cli("parked", "list", "--older-than", "soon")
    assert bad_arg.returncode == 2 and "not an age" in bad_arg.stderr
    # replay by filter: nothing for another mirror, the failing mirror's one comes back
    assert "replayed 0" in live.hub.cli("parked", "replay", "--mirror", "x.example").stdout
    before = live.bad.count("/cb", "POST")
    assert "replayed 1" in live.hub.cli("parked", "replay", "--mirror", live.bad_mirror).stdout
    wait_for(lambda: live.bad.count("/cb", "POST") > before, timeout=30,
             message="the replayed delivery reached the mirror")


def _scrape_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name)
            if kind == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
            if kind == "counter":
                names.add(name.removesuffix("_total") + "_created")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _used_names() -> dict[str, set[str]]:
    files = [MONITORING / "rules.yml", MONITORING / "grafana" / "dashboards" / "broker-hub.json",
             REPO_ROOT / "docs" / "runbook.md", REPO_ROOT / "docs" / "monitoring.md"]
    used: dict[str, set[str]] = {}
    for path in files:
        for name in set(NAME.findall(path.read_text())) - NOT_METRICS:
            used.setdefault(name, set()).add(path.name)
    return used


def test_every_metric_name_in_dashboard_rules_and_docs_is_exported(live: Live) -> None:
    hub = live.hub
    poller = f"http://127.0.0.1:{hub.processes['poller'].env['HUB_METRICS_PORT']}/metrics"

    def poller_page() -> str | None:
        text = requests.get(poller, timeout=10).text
        return text if "broker_hub_source_serial{" in text else None

    page = wait_for(poller_page, timeout=30, message="the poller's source serial")
    exported = _scrape_names(hub.metrics_text() + "\n" + page)
    # RabbitMQ's own metrics (rabbitmq_prometheus, enabled by scripts/ensure-tools.sh)
    exported |= _scrape_names(
        requests.get("http://127.0.0.1:15692/metrics/per-object", timeout=20).text
    )
    used = _used_names()
    assert len(used) > 25  # the parse found the names
    missing = {name: files for name, files in used.items() if name not in exported}
    assert not missing, f"used but not exported by a running hub: {missing}"


def test_prometheus_scrapes_the_hub_and_raises_the_mirror_alert(live: Live) -> None:
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus missing: run `bash scripts/ensure-tools.sh`"
    hub, tmp = live.hub, live.tmp / "prometheus"
    tmp.mkdir()
    rules = (MONITORING / "rules.yml").read_text().replace("interval: 30s", "interval: 1s")
    (tmp / "rules.yml").write_text(rules)
    web = hub.env["HUB_BIND"]
    targets = {
        "broker-hub-web": web,
        "broker-hub-fetcher": f"127.0.0.1:{hub.processes['fetcher'].env['HUB_METRICS_PORT']}",
        "broker-hub-deliverer": f"127.0.0.1:{hub.processes['deliverer'].env['HUB_METRICS_PORT']}",
        "broker-hub-poller": f"127.0.0.1:{hub.processes['poller'].env['HUB_METRICS_PORT']}",
    }
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "rules.yml")],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                           for job, target in targets.items()],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [prometheus, f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for(lambda: _get(api + "/-/ready") == 200, timeout=60, message="prometheus ready")

        def targets_up() -> bool:
            data = requests.get(api + "/api/v1/targets", timeout=10).json()["data"]
            return len(data["activeTargets"]) == 4 and all(
                t["health"] == "up" for t in data["activeTargets"])

        wait_for(targets_up, timeout=60, interval=0.5, message="all four targets up")

        def mirror_alert() -> dict | None:
            alerts = requests.get(api + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
            for alert in alerts:
                labels = alert["labels"]
                if (labels["alertname"] == "BrokerHubMirrorFailing"
                        and labels.get("mirror") == live.bad_mirror):
                    return alert
            return None

        alert = wait_for(mirror_alert, timeout=90, interval=0.5,
                         message="BrokerHubMirrorFailing pending in Prometheus")
        assert alert["state"] in ("pending", "firing")
        assert alert["labels"]["severity"] == "warning"
        assert alert["annotations"]["runbook_url"] == "docs/runbook.md#mirror-failing"
        # the poller's series reach Prometheus too
        result = wait_for(lambda: requests.get(
            api + "/api/v1/query", params={"query": "max(broker_hub_source_serial)"},
            timeout=10).json()["data"]["result"], timeout=30, interval=0.5,
            message="broker_hub_source_serial in Prometheus")
        assert float(result[0]["value"][1]) > 0
        # the healthy mirror raises nothing
        alerts = requests.get(api + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        assert live.good_mirror not in {a["labels"].get("mirror") for a in alerts}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def _get(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0


def _workers(web: HubProcess) -> list[int]:
    """Granian's worker pids, in spawn order, from its log (it also has non-worker children)."""
    return [int(pid) for pid in re.findall(r"Spawning worker-\d+ with PID: (\d+)", web.log())]


def _web_gauge(url: str, name: str) -> float:
    text = requests.get(url + "metrics", timeout=10).text
    match = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert match, f"{name} not on /metrics: {text[:3000]}"
    return float(match.group(1))


def test_web_metrics_stay_right_after_a_worker_is_killed(live: Live) -> None:
    hub = live.hub
    web = hub.processes["web"]
    workers = wait_for(lambda: _workers(web) if len(_workers(web)) >= 2 else None,
                       timeout=20, message="two granian workers")
    for _ in range(6):
        assert _web_gauge(hub.url, "broker_hub_web_workers") == 2
    requests_before = _hub_requests(hub.url)
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(_workers(web)) >= 3, timeout=60,
             message="granian replaced the killed worker")
    wait_for(lambda: _get(hub.url + "healthz") == 200, timeout=30, message="web healthy")
    # A worker builds its app at its first request: scrape until the new worker answers one
    # (its process_start_time_seconds is after the kill); from then on the sum must be 2,
    # and 3 would mean the dead worker still counts.
    killed_at = time.time() - 1

    def new_worker_answered() -> bool:
        return _web_gauge(hub.url, "process_start_time_seconds") > killed_at

    wait_for(new_worker_answered, timeout=60, interval=0.1, message="the new worker answered")
    for _ in range(6):  # both workers answer scrapes; neither counts the dead one
        assert _web_gauge(hub.url, "broker_hub_web_workers") == 2
        assert _hub_requests(hub.url) >= requests_before  # counters never go back


def _hub_requests(url: str) -> float:
    text = requests.get(url + "metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^broker_hub_hub_requests_total{[^}]*} (\S+)$",
                                            text, re.M))

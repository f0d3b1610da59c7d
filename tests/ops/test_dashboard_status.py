"""The provisioned dashboard is the generated one and well formed; the status page escapes
what it shows (in-process, with a real SQLite storage)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

from broker_hub.config import Settings
from broker_hub.messaging import Messaging
from broker_hub.metrics import Metrics
from broker_hub.services import Services
from broker_hub.storage import MirrorResult, Storage
from tests.support.processes import REPO_ROOT
from web import create_app

GRAFANA = REPO_ROOT / "deploy" / "monitoring" / "grafana"


def _builder():
    path = REPO_ROOT / "deploy" / "monitoring" / "build_dashboard.py"
    spec = importlib.util.spec_from_file_location("build_dashboard", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_dashboard_file_is_generated_and_complete() -> None:
    committed = (GRAFANA / "dashboards" / "broker-hub.json").read_text()
    assert committed == _builder().render(), "run python deploy/monitoring/build_dashboard.py"
    board = json.loads(committed)
    titles = {p["title"] for p in board["panels"]}
    for wanted in ("Delivery latency (ping to 2xx), $mirror", "Throughput", "Failures by class",
                   "Backlog age", "Parked", "Fetch outcomes", "Source lag (PyPI bridge)",
                   "CPU per process", "RSS per process", "Queue depth (ready)"):
        assert wanted in titles
    heatmap = next(p for p in board["panels"] if p["type"] == "heatmap")
    assert heatmap["repeat"] == "mirror" and heatmap["targets"][0]["format"] == "heatmap"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "broker-hub.yaml")
                              .read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_status_page_escapes_and_hides_secrets(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}")
    storage = Storage.from_url(settings.database_url)
    storage.create_schema()
    topic = "https://u:pw@t.example/<script>alert(1)</script>?key=sekrit"
    storage.record_ping(topic, 1.0)
    storage.activate(topic, "https://m.example/cb?token=sekrit2", "shh", 3600, 2e9)
    storage.record_mirror_results([MirrorResult("m.example", False, 500, "http_5xx")], 2e9)
    messaging = Messaging(settings.broker_url, namespace=settings.namespace)
    app = create_app(services=Services(settings, storage, messaging, Metrics(process="web")))
    client = app.test_client()
    page = client.get("/status")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "&lt;script&gt;" in html
    for secret in ("u:pw", "sekrit", "shh", "/cb"):
        assert secret not in html
    assert "m.example" in html and "http_5xx" in html
    doc = client.get("/status.json").get_json()
    assert doc["mirrors"][0]["mirror"] == "m.example"
    assert doc["broker_ok"] is True  # memory broker: read in process
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'broker_hub_mirror_consecutive_failures{mirror="m.example"} 1.0' in metrics
    assert 'broker_hub_mirror_state{mirror="m.example",state="failing"} 1.0' in metrics
    assert "sekrit" not in metrics

"""Writes deploy/monitoring/grafana/dashboards/broker-hub.json (the provisioned dashboard).

Run: python deploy/monitoring/build_dashboard.py   (tests/ops checks the file is up to date)
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).parent / "grafana" / "dashboards" / "broker-hub.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
_ids = iter(range(1, 1000))


def target(expr: str, legend: str = "", fmt: str = "time_series") -> dict:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "format": fmt,
            "refId": chr(ord("A") + 0)}


def panel(title: str, kind: str, targets: list[dict], x: int, y: int, w: int = 8, h: int = 8,
          unit: str = "short", **extra: object) -> dict:
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    return {"id": next(_ids), "title": title, "type": kind, "datasource": DS,
            "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, **extra}


def row(title: str, y: int) -> dict:
    return {"id": next(_ids), "type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def stat(title: str, expr: str, x: int, y: int, unit: str = "short",
         red: float | None = None) -> dict:
    steps = [{"color": "green", "value": None}]
    if red is not None:
        steps.append({"color": "red", "value": red})
    p = panel(title, "stat", [target(expr)], x, y, w=4, h=4, unit=unit)
    p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": steps}
    p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
    return p


def build() -> dict:
    m = '{mirror=~"$mirror"}'
    panels = [
        row("Overview", 0),
        stat("Active subscriptions", 'max(broker_hub_subscriptions{state="active"})', 0, 1),
        stat("Mirrors failing", "count(broker_hub:mirror_failing:max == 1) or vector(0)", 4, 1,
             red=1),
        stat("Oldest undelivered", "broker_hub:backlog_oldest_seconds:max", 8, 1, "s", red=600),
        stat("Parked", "broker_hub:parked_messages:max", 12, 1, red=1),
        stat("Deliverers consuming", "broker_hub:deliver_consumers:max", 16, 1),
        stat("Deliveries / s", 'sum(rate(broker_hub_deliveries_total{outcome="delivered"}'
             f"[{RATE}]))", 20, 1, "reqps"),
        panel("Processes up", "table",
              [target("max by (process, version) (broker_hub_build_info)", fmt="table")],
              0, 5, w=8, h=6),
        panel("Mirrors by state", "timeseries",
              [target("sum by (state) (max by (mirror, state) (broker_hub_mirror_state))",
                      "{{state}}")], 8, 5, w=16, h=6),
        row("Delivery", 11),
        panel("Delivery latency (ping to 2xx), $mirror", "heatmap",
              [target(f"sum by (le) (rate(broker_hub_delivery_latency_seconds_bucket{m}"
                      f"[{RATE}]))", "{{le}}", "heatmap")],
              0, 12, w=12, h=8, unit="s", repeat="mirror", repeatDirection="h",
              maxPerRow=2, options={"calculate": False, "yAxis": {"unit": "s"},
                                    "cellGap": 1, "color": {"scheme": "Oranges"}}),
        panel("Delivery latency p95 by mirror", "timeseries",
              [target(f"broker_hub:delivery_latency_seconds:p95_5m{m}", "{{mirror}}")],
              12, 12, w=12, h=8, unit="s"),
        panel("Throughput", "timeseries",
              [target(f"sum by (outcome) (rate(broker_hub_deliveries_total[{RATE}]))",
                      "deliveries {{outcome}}"),
               target(f"sum(rate(broker_hub_pings_total[{RATE}]))", "pings")],
              0, 20, w=12, h=8, unit="ops"),
        panel("Failures by class", "timeseries",
              [target("sum by (error_class) (rate(broker_hub_delivery_failures_total"
                      f"{m}[{RATE}]))", "{{error_class}}"),
               target("sum by (outcome) (rate(broker_hub_deliveries_total"
                      f'{{outcome=~"failed|refused|parked|gone"}}[{RATE}]))', "{{outcome}}")],
              12, 20, w=12, h=8, unit="ops"),
        panel("Consecutive failures by mirror", "timeseries",
              [target("topk(10, max by (mirror) (broker_hub_mirror_consecutive_failures))",
                      "{{mirror}}")], 0, 28, w=12, h=8),
        panel("Time since last success by mirror", "timeseries",
              [target("topk(10, time() - max by (mirror) "
                      "(broker_hub_mirror_last_success_timestamp_seconds))", "{{mirror}}")],
              12, 28, w=12, h=8, unit="s"),
        row("Backlog and parked", 36),
        panel("Backlog age", "timeseries",
              [target("broker_hub:backlog_oldest_seconds:max", "hub"),
               target("topk(10, max by (mirror) (broker_hub_mirror_backlog_oldest_seconds))",
                      "{{mirror}}")], 0, 37, w=8, h=8, unit="s"),
        panel("Queued and retrying", "timeseries",
              [target("max by (target, state) (broker_hub_queue_messages)",
                      "{{target}} {{state}}")], 8, 37, w=8, h=8),
        panel("Parked", "timeseries",
              [target("broker_hub:parked_messages:max", "in the parking queue"),
               target(f"sum by (reason) (increase(broker_hub_parked_total[{RATE}]))",
                      "parked ({{reason}})")], 16, 37, w=8, h=8),
        row("Fetch and source", 45),
        panel("Fetch outcomes", "timeseries",
              [target("broker_hub:fetches:rate5m", "{{outcome}}")], 0, 46, w=8, h=8,
              unit="ops"),
        panel("Fetch duration p50 / p95 and fetch lag", "timeseries",
              [target("histogram_quantile(0.5, sum by (le) "
                      f"(rate(broker_hub_fetch_duration_seconds_bucket[{RATE}])))", "p50"),
               target("histogram_quantile(0.95, sum by (le) "
                      f"(rate(broker_hub_fetch_duration_seconds_bucket[{RATE}])))", "p95"),
               target("max(broker_hub_fetch_lag_seconds)", "fetch lag")],
              8, 46, w=8, h=8, unit="s"),
        panel("Source lag (PyPI bridge)", "timeseries",
              [target("max by (source) (broker_hub_source_lag_seconds)", "lag {{source}}"),
               target("max by (source) (deriv(broker_hub_source_serial[5m]))",
                      "serials/s {{source}}")], 16, 46, w=8, h=8, unit="s"),
        row("Processes and web", 54),
        panel("CPU per process", "timeseries",
              [target(f'rate(process_cpu_seconds_total{{job=~"broker-hub.*"}}[{RATE}])',
                      "{{job}} {{instance}}")], 0, 55, w=8, h=8, unit="percentunit"),
        panel("RSS per process", "timeseries",
              [target('process_resident_memory_bytes{job=~"broker-hub.*"}',
                      "{{job}} {{instance}}")], 8, 55, w=8, h=8, unit="bytes"),
        panel("Hub requests by status", "timeseries",
              [target("broker_hub:hub_requests:rate5m", "{{status}}"),
               target("max(broker_hub_web_workers)", "web workers")], 16, 55, w=8, h=8,
              unit="reqps"),
        row("RabbitMQ (rabbitmq_prometheus, /metrics/per-object)", 63),
        panel("Queue depth (ready)", "timeseries",
              [target('sum by (queue) (rabbitmq_queue_messages_ready{queue=~"$namespace\\\\..*"})',
                      "{{queue}}")], 0, 64, w=8, h=8),
        panel("Unacked", "timeseries",
              [target('sum by (queue) (rabbitmq_queue_messages_unacked'
                      '{queue=~"$namespace\\\\..*"})', "{{queue}}")], 8, 64, w=8, h=8),
        panel("Consumers", "timeseries",
              [target('sum by (queue) (rabbitmq_queue_consumers{queue=~"$namespace\\\\..*"})',
                      "{{queue}}")], 16, 64, w=8, h=8),
    ]
    variables = [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus",
         "current": {}, "hide": 0},
        {"name": "mirror", "type": "query", "datasource": DS, "label": "mirror",
         "query": {"query": "label_values(broker_hub_delivery_latency_seconds_bucket, mirror)",
                   "refId": "mirror"},
         "definition": "label_values(broker_hub_delivery_latency_seconds_bucket, mirror)",
         "multi": True, "includeAll": True, "refresh": 2, "current": {}, "hide": 0},
        {"name": "namespace", "type": "textbox", "label": "queue prefix (HUB_NAMESPACE)",
         "query": "broker_hub", "current": {"text": "broker_hub", "value": "broker_hub"},
         "hide": 0},
    ]
    return {
        "uid": "broker-hub", "title": "broker-hub", "tags": ["broker-hub", "websub"],
        "schemaVersion": 39, "version": 1, "editable": True, "timezone": "utc",
        "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables}, "annotations": {"list": []}, "panels": panels,
        "links": [{"title": "Runbook", "type": "link", "url": "docs/runbook.md"}],
    }


def render() -> str:
    global _ids
    _ids = iter(range(1, 1000))
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")

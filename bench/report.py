"""Turning raw benchmark runs into medians, ratios and the printed table."""

from __future__ import annotations

import statistics
from typing import Any


def _median(values: list[Any]) -> Any:
    values = [v for v in values if isinstance(v, int | float)]
    return statistics.median(values) if values else None


def size_figures(result: dict[str, Any]) -> dict[str, Any]:
    """One run, one size: medians over its publishes."""
    if "error" in result:
        return {}
    pubs = [p for p in result["publishes"] if "first_ms" in p]
    fig = {"subscriptions_per_s": result["subscribe"]["per_second"]}
    for key in ("first_ms", "median_ms", "p99_ms", "last_ms", "deliveries_per_s",
                "end_to_end_per_s", "cpu_us_per_delivery", "machine_busy_pct"):
        fig[key] = _median([p.get(key) for p in pubs])
    fig["lost"] = result["lost"]
    fig["duplicates"] = result["duplicates"]
    fig["bad_signatures"] = result["bad_signatures"]
    for role, mb in result["rss_mb"].items():
        fig[f"rss_{role}_mb"] = mb
    return fig


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over runs of every figure, per hub and size."""
    summary: dict[str, Any] = {}
    for label in ("broker-hub", "flask-websub", "broker-hub-2-deliverers"):
        per_size: dict[str, list[dict]] = {}
        pings = []
        for run in runs:
            hub = run.get(label)
            if not hub:
                continue
            for n, res in hub["sizes"].items():
                per_size.setdefault(n, []).append(size_figures(res))
            if "pings" in hub:
                pings.append(hub["pings"]["per_second"])
        if not per_size:
            continue
        summary[label] = {"sizes": {}, "pings_per_s": _median(pings)}
        for n, figs in per_size.items():
            keys = sorted({k for f in figs for k in f})
            summary[label]["sizes"][n] = {
                k: (max(f.get(k, 0) for f in figs) if k in ("lost", "duplicates",
                    "bad_signatures") else _median([f.get(k) for f in figs]))
                for k in keys
            }
    ratios = [r["two_deliverers_ratio"] for r in runs if r.get("two_deliverers_ratio")]
    if ratios:
        summary["two_deliverers_ratio"] = _median(ratios)
    return summary


FIGURES = [
    ("subscriptions_per_s", "subscriptions verified/s", "higher"),
    ("first_ms", "first delivery (ms after ping)", "lower"),
    ("median_ms", "median delivery (ms)", "lower"),
    ("p99_ms", "p99 delivery (ms)", "lower"),
    ("last_ms", "last delivery (ms)", "lower"),
    ("deliveries_per_s", "deliveries/s (first..last)", "higher"),
    ("end_to_end_per_s", "deliveries/s (ping..last)", "higher"),
    ("cpu_us_per_delivery", "deliverer/worker CPU us per delivery", "lower"),
    ("machine_busy_pct", "machine CPU busy, ping..last (% of all cores)", "lower"),
    ("lost", "lost (max over runs)", "lower"),
    ("duplicates", "duplicates (max over runs)", "lower"),
    ("bad_signatures", "bad signatures", "lower"),
]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}"


def print_table(summary: dict[str, Any]) -> None:
    bh = summary.get("broker-hub", {}).get("sizes", {})
    fw = summary.get("flask-websub", {}).get("sizes", {})
    rows = [("figure", "n", "broker-hub", "flask-websub", "bh/fw")]
    sizes = sorted({int(n) for n in bh} | {int(n) for n in fw})
    for key, title, _ in [*FIGURES, ("rss_web_mb", "peak RSS web (MB, +children)", "lower"),
                                    ("rss_fetcher_mb", "peak RSS fetcher (MB)", "lower"),
                                    ("rss_deliverer_mb", "peak RSS deliverer (MB)", "lower"),
                                    ("rss_worker_mb", "peak RSS celery worker (MB, +children)",
                                     "lower")]:
        for n in sizes:
            a = bh.get(str(n), {}).get(key)
            b = fw.get(str(n), {}).get(key)
            if a is None and b is None:
                continue
            ratio = f"{a / b:.2f}x" if isinstance(a, int | float) and isinstance(
                b, int | float) and b else "-"
            rows.append((title, f"{n:,}", _fmt(a), _fmt(b), ratio))
    a = summary.get("broker-hub", {}).get("pings_per_s")
    b = summary.get("flask-websub", {}).get("pings_per_s")
    rows.append(("pings accepted/s (web front)", "-", _fmt(a), _fmt(b),
                 f"{a / b:.2f}x" if a and b else "-"))
    if "two_deliverers_ratio" in summary:
        two = summary["broker-hub-2-deliverers"]["sizes"]
        n = next(iter(two))
        rows.append(("2 deliverers / 1 deliverer, deliveries/s", f"{int(n):,}",
                     f"{summary['two_deliverers_ratio']:.2f}x", "-", "-"))
        rows.append(("machine CPU busy with 2 deliverers (%)", f"{int(n):,}",
                     _fmt(two[n].get("machine_busy_pct")), "-", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j])
                        for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * w for w in widths))

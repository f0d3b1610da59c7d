"""The scale benchmark's summary: ratios against one process, per-process CPU, the table."""

from __future__ import annotations

import statistics
from typing import Any

TARGETS = {"deliverers": {2: 1.9, 4: 3.6}, "fetchers": {2: 1.8, 4: 3.2}, "web": {2: 1.8, 4: 3.2}}


def _ratios(runs: dict[str, dict], key: str, higher_is_better: bool = True) -> dict[str, float]:
    base = runs.get("1", {}).get(key)
    out = {}
    for k, run in runs.items():
        value = run.get(key)
        if base and value:
            out[k] = round(value / base if higher_is_better else base / value, 2)
    return out


def _median_us(per_process: dict[str, float | None]) -> float | None:
    values = [v for v in per_process.values() if isinstance(v, int | float)]
    return round(statistics.median(values), 1) if values else None


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    d = results.get("deliverers", {}).get("runs")
    if d:
        out["deliverers"] = {
            "deliveries_per_s": {k: r["deliveries_per_s"] for k, r in d.items()},
            "ratio": _ratios(d, "deliveries_per_s"),
            "cpu_us_per_delivery_median_process": {
                k: _median_us(r["cpu_us_per_delivery"]) for k, r in d.items()},
            "lost": {k: r["lost"] for k, r in d.items()},
            "duplicates": {k: r["duplicates"] for k, r in d.items()},
            "out_of_order": {k: r["out_of_order"] for k, r in d.items()},
            "machine_busy_pct": {k: r["machine_busy_pct"] for k, r in d.items()},
            "cap_used_pct": {k: r.get("cap_used_pct") for k, r in d.items()},
            "rabbitmq_per_delivery": {k: r.get("rabbitmq_per_delivery") for k, r in d.items()},
            "postgres_per_delivery": {k: r.get("postgres_per_delivery") for k, r in d.items()},
        }
    f = results.get("fetchers", {}).get("runs")
    if f:
        out["fetchers"] = {
            "seconds_to_last_delivery": {k: r["seconds_to_last_delivery"] for k, r in f.items()},
            "fetches_per_s": {k: r["fetches_per_s"] for k, r in f.items()},
            "seconds_to_last_fetch": {k: r.get("seconds_to_last_fetch") for k, r in f.items()},
            "fetch_ratio_to_last_fetch": _ratios(f, "fetches_per_s_to_last_fetch"),
            "ratio": _ratios(f, "fetches_per_s"),
            "cpu_us_per_fetch_median_process": {
                k: _median_us(r["cpu_us_per_fetch"]) for k, r in f.items()},
            "lost": {k: r["lost"] for k, r in f.items()},
            "duplicates": {k: r["duplicates"] for k, r in f.items()},
            "double_fetches": {k: r["double_fetches"] for k, r in f.items()},
            "machine_busy_pct": {k: r["machine_busy_pct"] for k, r in f.items()},
            "cap_used_pct": {k: r.get("cap_used_pct") for k, r in f.items()},
            "rabbitmq_per_delivery": {k: r.get("rabbitmq_per_delivery") for k, r in f.items()},
            "postgres_per_delivery": {k: r.get("postgres_per_delivery") for k, r in f.items()},
        }
    w = results.get("web", {}).get("runs")
    if w:
        out["web"] = {
            "pings_per_s": {k: r["pings_per_s"] for k, r in w.items()},
            "pings_ratio": _ratios(w, "pings_per_s"),
            "cpu_us_per_ping": {k: r["cpu_us_per_ping"] for k, r in w.items()},
            "verified_per_s": {k: r["verified_per_s"] for k, r in w.items()},
            "verified_ratio": _ratios(w, "verified_per_s"),
            "subscribes_accepted_per_s": {k: r["subscribes_accepted_per_s"] for k, r in w.items()},
            "accepted_ratio": _ratios(w, "subscribes_accepted_per_s"),
            "duplicate_verifications": {k: r["duplicate_verifications"] for k, r in w.items()},
            "ping_cap_used_pct": {k: r.get("ping_cap_used_pct") for k, r in w.items()},
            "subscribe_cap_used_pct": {k: r.get("subscribe_cap_used_pct") for k, r in w.items()},
        }
    c = results.get("chaos")
    if c and "error" not in c:
        out["chaos"] = {k: c.get(k) for k in (
            "restarts", "expected_deliveries", "delivered", "lost", "duplicate_deliveries",
            "out_of_order", "subscriptions_verified_twice", "double_fetches", "extra_gets",
            "notifications", "expected_notifications",
            "topics_notified_more_than_once_per_change", "database_deadlocks",
            "broker_interruptions")}
    m = results.get("million", {}).get("sizes")
    if m:
        out["million"] = {n: {
            "deliveries_per_s": [p["deliveries_per_s"] for p in s["publishes"]],
            "cpu_us_per_delivery": [p["cpu_us_per_delivery"] for p in s["publishes"]],
            "lost": sum(p["lost"] for p in s["publishes"]),
            "duplicates": sum(p["duplicates"] for p in s["publishes"]),
            "rss_mb": s["rss_mb"], "storage": s["storage"]} for n, s in m.items()}
    return out


def median_summary(summaries: list[Any]) -> Any:
    """Medians, figure by figure, of several runs' summaries (the first run's value where a
    figure is not a number)."""
    first = summaries[0]
    if len(summaries) == 1:
        return first
    if isinstance(first, dict):
        return {k: median_summary([s.get(k) for s in summaries if isinstance(s, dict)])
                for k in first}
    numbers = [v for v in summaries if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == len(summaries):
        return round(statistics.median(numbers), 2)
    return first


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_summary(summary: dict[str, Any], args: Any, markdown: bool = False) -> None:
    """The table (``markdown``: as rows for README's "Scaling out" table)."""
    rows: list[tuple[str, ...]] = [("scenario", "figure", "1", "2", "4", "target 2 / 4")]

    def row(scenario: str, title: str, figures: dict[str, Any], target: str = "") -> None:
        counts = [str(k) for k in (args.web_counts if scenario == "web" else args.counts)]
        cells = [_fmt(figures.get(k)) for k in counts][:3]
        rows.append((scenario, title, *cells, *([""] * (3 - len(cells))), target))

    d = summary.get("deliverers")
    if d:
        t = TARGETS["deliverers"]
        row("deliverers", "deliveries/s", d["deliveries_per_s"])
        row("deliverers", "ratio to 1", d["ratio"], f"{t[2]}x / {t[4]}x")
        row("deliverers", "CPU us/delivery (median process)",
            d["cpu_us_per_delivery_median_process"])
        row("deliverers", "lost / dup / out of order", {
            k: f"{d['lost'][k]}/{d['duplicates'][k]}/{d['out_of_order'][k]}" for k in d["lost"]})
        row("deliverers", "machine busy %", d["machine_busy_pct"])
        row("deliverers", "% of CPU cap used (median)", d["cap_used_pct"])
    f = summary.get("fetchers")
    if f:
        t = TARGETS["fetchers"]
        row("fetchers", "s to last delivery", f["seconds_to_last_delivery"])
        row("fetchers", "fetches/s", f["fetches_per_s"])
        row("fetchers", "ratio to 1", f["ratio"], f"{t[2]}x / {t[4]}x")
        row("fetchers", "s to last fetch (GET)", f["seconds_to_last_fetch"])
        row("fetchers", "ratio to 1, to last fetch", f["fetch_ratio_to_last_fetch"])
        row("fetchers", "CPU us/fetch (median process)", f["cpu_us_per_fetch_median_process"])
        row("fetchers", "lost / dup / double fetches", {
            k: f"{f['lost'][k]}/{f['duplicates'][k]}/{f['double_fetches'][k]}"
            for k in f["lost"]})
        row("fetchers", "machine busy %", f["machine_busy_pct"])
        row("fetchers", "% of CPU cap used (median)", f["cap_used_pct"])
    w = summary.get("web")
    if w:
        t = TARGETS["web"]
        row("web", "pings/s", w["pings_per_s"])
        row("web", "pings ratio to 1", w["pings_ratio"], f"{t[2]}x / {t[4]}x")
        row("web", "CPU us/ping (workers)", w["cpu_us_per_ping"])
        row("web", "% of CPU cap used, pings", w["ping_cap_used_pct"])
        row("web", "subscribes accepted/s", w["subscribes_accepted_per_s"])
        row("web", "verified subscriptions/s", w["verified_per_s"])
        row("web", "verified ratio to 1", w["verified_ratio"], f"{t[2]}x / {t[4]}x")
        row("web", "% of CPU cap used, subscribes", w["subscribe_cap_used_pct"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        if markdown:
            print("| " + " | ".join(r) + " |" + ("\n|" + "---|" * len(r) if i == 0 else ""))
            continue
        print("  ".join(c.ljust(widths[j]) if j < 2 else c.rjust(widths[j])
                        for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * x for x in widths))
    c = summary.get("chaos")
    if c:
        print("\nchaos (PostgreSQL, restarts during the run): " + ", ".join(
            f"{k} {v}" for k, v in c.items()))
    m = summary.get("million")
    if m:
        for n, s in m.items():
            subs = s["storage"].get("subscriptions", {})
            per_sub = subs.get("bytes_per_row", s["storage"].get("bytes_per_subscription"))
            print(f"\nmillion n={int(n):,}: deliveries/s {s['deliveries_per_s']}, CPU us/delivery "
                  f"{s['cpu_us_per_delivery']}, lost {s['lost']}, dup {s['duplicates']}, "
                  f"bytes/subscription {per_sub}, "
                  f"peak RSS MB {s['rss_mb']}")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.scale_report RESULT.json [--markdown]``: a saved run's table again."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m bench.scale_report")
    p.add_argument("result", help="bench/results/scale-<timestamp>.json")
    p.add_argument("--markdown", action="store_true", help="Markdown rows for the README")
    opts = p.parse_args(argv)
    data = json.loads(open(opts.result).read())  # noqa: SIM115 - a one-shot read
    args = argparse.Namespace(**data["args"])
    print_summary(data["summary"], args, markdown=opts.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

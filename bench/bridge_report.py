"""The PyPI bridge benchmark's arithmetic: latencies from the subscriber's delivery log,
medians over runs, the printed table."""

from __future__ import annotations

import re
import statistics
import time
from collections import defaultdict
from typing import Any

from bench.report import _fmt


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def coverage(log: list[list], targets: dict[str, list[tuple[int, float]]]) -> dict[str, Any]:
    """Latencies of (serial, changed at) targets per callback path.

    ``log``: the subscriber's ``[path, arrival, first serial, last serial, delivery id]``
    records. A target is reached by the first delivery to its path whose serials span it
    (a notification's entries are every journal entry of its round, so first..last holds it).
    A delivery whose span overlaps an earlier one of the same path, or repeats its delivery
    id, is a duplicate; a target no delivery reached is lost."""
    by_path: dict[str, list[tuple[int, int, float, str]]] = defaultdict(list)
    for path, arrival, first, last, delivery_id in log:
        by_path[path].append((first, last, arrival, delivery_id))
    latencies: list[float] = []
    arrivals: dict[float, list[float]] = defaultdict(list)  # per change (its time)
    lost = duplicates = 0
    for path, wants in targets.items():
        got = sorted(by_path.get(path, []))
        high, ids = -1, set()
        for first, last, _, delivery_id in got:
            if (first <= high and first >= 0) or (delivery_id and delivery_id in ids):
                duplicates += 1
            high = max(high, last)
            ids.add(delivery_id)
        for serial, at in wants:
            hits = [arrival for first, last, arrival, _ in got if first <= serial <= last]
            if hits:
                latencies.append(min(hits) - at)
                arrivals[at].append(min(hits))
            else:
                lost += 1
    latencies.sort()
    ms = [v * 1000 for v in latencies]
    # one change's fan-out (a release; the one backlog call that changed every project): its
    # first to its last mirror, median over the changes
    spans = [(max(a) - min(a)) * 1000 for a in arrivals.values()]
    span = statistics.median(spans) if spans else None
    return {
        "pairs": sum(len(w) for w in targets.values()),
        "deliveries": len(log),
        "stray_deliveries": sum(len(v) for p, v in by_path.items() if p not in targets),
        "first_ms": round(ms[0], 1) if ms else None,
        "median_ms": round(statistics.median(ms), 1) if ms else None,
        "p99_ms": round(_pct(ms, 0.99), 1) if ms else None,
        "last_ms": round(ms[-1], 1) if ms else None,
        "spread_ms": round(span, 1) if span is not None else None,
        "lost": lost,
        "duplicates": duplicates,
    }


ROUND_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*: serials (\d+)\.\.(\d+): ")


def poller_rounds(log_text: str) -> list[tuple[int, int, float]]:
    """(first serial, last serial, unix time) of each round the poller's log says it
    published (the log's local-time stamps, millisecond precision)."""
    out = []
    for line in log_text.splitlines():
        m = ROUND_LINE.match(line)
        if m:
            stamp = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))
            out.append((int(m.group(3)), int(m.group(4)), stamp + int(m.group(2)) / 1000))
    return out


def published(rounds: list[tuple[int, int, float]], changes: list[tuple[int, float]],
              ) -> dict[str, Any]:
    """How long from each change to the poller's log line for the round holding it (the
    poll's phase + reading the journal + storing and fanning out the round)."""
    ms = sorted((ts - at) * 1000 for serial, at in changes
                for first, last, ts in rounds if first <= serial <= last)
    if not ms:
        return {}
    return {"published_median_ms": round(statistics.median(ms), 1),
            "published_max_ms": round(ms[-1], 1), "rounds": len(rounds)}


FIGURES = [
    ("median_ms", "median, journal -> 2xx (ms)"),
    ("p99_ms", "p99 (ms)"),
    ("first_ms", "first (ms)"),
    ("last_ms", "last (ms)"),
    ("spread_ms", "one change, first..last mirror (ms)"),
    ("published_median_ms", "change -> poller's round logged, median (ms)"),
    ("published_max_ms", "change -> poller's round logged, max (ms)"),
    ("rounds", "poller rounds published"),
    ("pairs", "(change, mirror) pairs measured"),
    ("deliveries", "deliveries (notifications x mirrors)"),
    ("lost", "lost (max over runs)"),
    ("duplicates", "duplicates (max over runs)"),
    ("bad_signatures", "bad signatures (max over runs)"),
    ("subscriptions_per_s", "subscriptions verified/s"),
    ("machine_busy_pct", "machine CPU busy (% of all cores)"),
    ("loadavg", "load average (1 min) at start"),
]
MAXED = ("lost", "duplicates", "bad_signatures", "unsigned")


def _median(values: list[Any]) -> Any:
    values = [v for v in values if isinstance(v, int | float)]
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """{column: {figure: median over runs (max for losses)}} with a column per
    (scenario, poll interval)."""
    columns: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        if "error" in run:
            continue
        fig = dict(run)
        fig["subscriptions_per_s"] = run.get("subscribe", {}).get("per_second")
        columns[f"{run['scenario']} @ {run['interval']:g}s"].append(fig)
    out: dict[str, Any] = {}
    for column, figs in columns.items():
        keys = {k for f in figs for k in f if isinstance(f[k], int | float)}
        out[column] = {k: (max(f.get(k, 0) for f in figs) if k in MAXED
                           else _median([f.get(k) for f in figs])) for k in keys}
        out[column]["runs"] = len(figs)
        first = figs[0]
        out[column]["size"] = (f"{first['mirrors']:,} mirrors" if "mirrors" in first else
                               f"{first['projects']:,} x {first['mirrors_per_project']}")
        out[column]["interval"] = first["interval"]
        out[column]["scenario"] = first["scenario"]
    return out


def goals(column: dict[str, Any]) -> str:
    """The issue's goal for this column, and whether the median run met it."""
    if column["scenario"] == "firehose":
        limit = column["interval"] * 1000 + 500
        ok = column.get("median_ms") is not None and column["median_ms"] <= limit
        return f"median <= poll interval + 0.5 s ({limit:,.0f} ms): {'met' if ok else 'NOT met'}"
    ok = column.get("last_ms") is not None and column["last_ms"] <= 10_000
    return f"last delivery <= 10 s after the change: {'met' if ok else 'NOT met'}"


def print_table(summary: dict[str, Any]) -> None:
    columns = list(summary)
    rows = [("figure", *columns), ("size", *(summary[c]["size"] for c in columns))]
    for key, title in FIGURES:
        values = [summary[c].get(key) for c in columns]
        if all(v is None for v in values):
            continue
        rows.append((title, *(_fmt(v) for v in values)))
    rows.append(("runs", *(str(summary[c]["runs"]) for c in columns)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j])
                        for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for column in columns:
        print(f"  {column}: {goals(summary[column])}")

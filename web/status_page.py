"""The ``/status`` page: one screen an operator reads at a glance. Everything shown goes
through :func:`html.escape`; the snapshot holds no secret, userinfo, callback URL or body."""

from __future__ import annotations

import time
from html import escape

from broker_hub.opsview import MirrorView, Snapshot

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2228;background:#f6f7f9}
h1{font-size:1.4em;margin:0 0 .6em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.cards{display:flex;flex-wrap:wrap;gap:.6em}
.card{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:.5em .9em;min-width:9em}
.card b{display:block;font-size:1.5em}.card.bad{border-color:#d33;background:#fff1f1}
.card.warn{border-color:#e0a100;background:#fffaeb}
table{border-collapse:collapse;background:#fff;min-width:50%}
th,td{border:1px solid #d8dde3;padding:.25em .6em;text-align:left}th{background:#eef1f4}
.state{font-weight:600;border-radius:4px;padding:0 .4em}
.healthy{color:#136c2e;background:#e3f5e8}.failing{color:#8a5a00;background:#fff2cc}
.paused{color:#fff;background:#c62828}.muted{color:#68717b}
"""


def render(snap: Snapshot, now: float | None = None) -> str:
    now = snap.taken_at if now is None else now
    states = snap.mirrors_by_state()
    cards = [
        _card("active subscriptions", snap.subscriptions.get("active", 0)),
        _card("topics", snap.topics),
        _card("mirrors healthy", states["healthy"]),
        _card("mirrors failing", states["failing"], "warn" if states["failing"] else ""),
        _card("mirrors paused", states["paused"], "bad" if states["paused"] else ""),
        _card("oldest undelivered", _duration(snap.backlog_oldest),
              "warn" if snap.backlog_oldest > 300 else ""),
        _card("fetch lag", _duration(snap.fetch_lag), "warn" if snap.fetch_lag > 60 else ""),
        _card("parked", snap.parked, "bad" if snap.parked else ""),
        _card("broker", "ok" if snap.broker_ok else "unreachable",
              "" if snap.broker_ok else "bad"),
    ]
    mirror_rows = "".join(_mirror_row(m, now) for m in snap.mirrors) or _empty(8, "no mirrors")
    failure_rows = "".join(
        f"<tr><td>{escape(m.mirror)}</td><td>{_status(m.last_status)}</td>"
        f"<td>{escape(m.last_error_class or '')}</td><td>{_ago(m.last_failure_at, now)}</td>"
        f"<td>{m.consecutive_failures}</td></tr>"
        for m in snap.failures
    ) or _empty(5, "no failures")
    targets = sorted({t for t, _ in snap.queues})
    queue_rows = "".join(
        f"<tr><td>{escape(t)}</td>"
        + "".join(f"<td>{snap.queues.get((t, s), '-')}</td>"
                  for s in ("ready", "retrying", "consumers"))
        + "</tr>"
        for t in targets
    ) or _empty(4, "broker not read")
    topic_rows = "".join(
        f"<tr><td>{escape(t.topic)}</td><td>{t.subscriptions}</td>"
        f"<td>{_ago(t.last_fetch_at, now)}</td><td>{t.pending_pings}</td></tr>"
        for t in snap.topic_rows
    ) or _empty(4, "no topics with subscriptions")
    source_rows = "".join(
        f"<tr><td>{escape(v.source)}</td><td>{'-' if v.serial is None else v.serial}</td>"
        f"<td>{_duration(v.lag_seconds)}</td><td>{_ago(v.caught_up_at, now)}</td>"
        f"<td>{'failing' if v.failing_since else 'ok'}</td>"
        f"<td>{escape((v.last_error or '')[:120])}</td></tr>"
        for v in snap.sources
    )
    sources = (
        "<h2>Source index (PyPI bridge)</h2><table id=sources><tr><th>source</th>"
        "<th>journal serial</th><th>lag</th><th>caught up</th><th>journal</th>"
        f"<th>last error</th></tr>{source_rows}</table>"
        if snap.sources
        else ""
    )
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snap.taken_at))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="refresh" content="15">'
        f"<title>broker-hub status</title><style>{_STYLE}</style></head><body>"
        f"<h1>broker-hub status <span class=muted>{escape(stamp)}</span></h1>"
        f"<div class=cards>{''.join(cards)}</div>{sources}"
        "<h2>Mirrors</h2><table id=mirrors><tr><th>mirror</th><th>state</th>"
        "<th>subscriptions</th><th>consecutive failures</th><th>last status</th>"
        "<th>error class</th><th>last success</th><th>oldest undelivered</th></tr>"
        f"{mirror_rows}</table>"
        "<h2>Recent failures</h2><table id=failures><tr><th>mirror</th><th>status</th>"
        "<th>error class</th><th>when</th><th>in a row</th></tr>"
        f"{failure_rows}</table>"
        "<h2>Queues</h2><table id=queues><tr><th>target</th><th>ready</th><th>retrying</th>"
        f"<th>consumers</th></tr>{queue_rows}</table>"
        "<h2>Topics</h2><table id=topics><tr><th>topic</th><th>subscriptions</th>"
        f"<th>last fetch</th><th>pending pings</th></tr>{topic_rows}</table>"
        '<p class=muted>The same as JSON: <a href="status.json">status.json</a>. '
        'Metrics: <a href="metrics">metrics</a>.</p></body></html>'
    )


def render_text(snap: Snapshot, now: float | None = None) -> str:
    """The terminal summary of ``broker-hub status``."""
    now = snap.taken_at if now is None else now
    states = snap.mirrors_by_state()
    lines = [
        f"subscriptions  {snap.subscriptions.get('active', 0)} active, "
        f"{snap.subscriptions.get('expired', 0)} expired; topics {snap.topics}",
        f"mirrors        {states['healthy']} healthy, {states['failing']} failing, "
        f"{states['paused']} paused",
        f"backlog        oldest undelivered {_duration(snap.backlog_oldest)}, "
        f"fetch lag {_duration(snap.fetch_lag)}, parked {snap.parked}",
        f"broker         {'ok' if snap.broker_ok else 'unreachable'}"
        + "".join(f", {t}.{s}={n}" for (t, s), n in sorted(snap.queues.items())),
    ]
    for v in snap.sources:
        lines.append(
            f"source         {v.source}: serial {'-' if v.serial is None else v.serial}, "
            f"lag {_duration(v.lag_seconds)}, journal "
            f"{'failing: ' + (v.last_error or '')[:80] if v.failing_since else 'ok'}"
        )
    if snap.mirrors:
        lines.append("")
        lines.append(f"{'MIRROR':<32} {'STATE':<8} {'SUBS':>5} {'FAILS':>5} {'STATUS':>6} "
                     f"{'ERROR':<12} LAST SUCCESS")
        for m in snap.mirrors:
            lines.append(
                f"{m.mirror[:32]:<32} {m.state:<8} {m.subscriptions:>5} "
                f"{m.consecutive_failures:>5} {_status(m.last_status):>6} "
                f"{(m.last_error_class or '-')[:12]:<12} {_ago(m.last_success_at, now)}"
            )
    if snap.topic_rows:
        lines.append("")
        lines.append(f"{'TOPIC':<60} {'SUBS':>5} LAST FETCH")
        for t in snap.topic_rows:
            lines.append(f"{t.topic[:60]:<60} {t.subscriptions:>5} {_ago(t.last_fetch_at, now)}")
    return "\n".join(lines) + "\n"


def _card(label: str, value: object, kind: str = "") -> str:
    return f"<div class='card {kind}'><b>{escape(str(value))}</b>{escape(label)}</div>"


def _mirror_row(m: MirrorView, now: float) -> str:
    return (
        f"<tr><td>{escape(m.mirror)}</td>"
        f"<td><span class='state {escape(m.state)}'>{escape(m.state)}</span></td>"
        f"<td>{m.subscriptions}</td><td>{m.consecutive_failures}</td>"
        f"<td>{_status(m.last_status)}</td><td>{escape(m.last_error_class or '')}</td>"
        f"<td>{_ago(m.last_success_at, now)}</td><td>{_duration(m.backlog_oldest)}</td></tr>"
    )


def _empty(columns: int, text: str) -> str:
    return f"<tr><td colspan={columns} class=muted>{escape(text)}</td></tr>"


def _status(status: int | None) -> str:
    return "-" if status is None else str(int(status))


def _ago(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "never"
    return _duration(max(0.0, now - timestamp)) + " ago"


def _duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"

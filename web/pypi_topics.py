"""The PyPI bridge's topics, served by the hub itself: ``GET <hub>pypi/changes`` and
``GET <hub>pypi/project/<normalized>``.

A GET answers the latest changes (or, with ``?since=<serial>``, what the hub still holds after
that serial: the catch-up API) as JSON with ``Link: <hub>; rel="hub", <topic>; rel="self"``,
so any WebSub subscriber can discover the hub and subscribe as usual. PyPI's journal is public,
so these pages need no credentials.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, redirect, request

from broker_hub.pypi.names import is_valid_name, normalize
from broker_hub.pypi.notify import catchup_body
from broker_hub.pypi.topics import firehose_topic, project_topic, source_of
from web.state import web_state

blueprint = Blueprint("pypi_topics", __name__)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


def _text(body: str, status: int, **headers: str) -> Response:
    return Response(body + "\n", status=status, mimetype="text/plain", headers=headers)


@blueprint.route("/pypi/changes", methods=["GET", "HEAD"])
def firehose() -> Response:
    return _topic_page(None)


@blueprint.route("/pypi/project/<path:name>", methods=["GET", "HEAD"])
def project(name: str) -> Response:
    if not is_valid_name(name):
        return _text(f"404 Not Found: {name[:100]!r} is not a valid project name", 404)
    if normalize(name) != name:  # one project, one topic URL: its PEP 503 name
        settings = web_state().services.settings
        return redirect(project_topic(settings.public_url, name), code=301)  # type: ignore[return-value]
    return _topic_page(name)


def _number(name: str, default: int | None, lowest: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or int(raw) < lowest:
        raise ValueError(f"{name} must be an integer >= {lowest}")
    return int(raw)


def _topic_page(project_name: str | None) -> Response:
    services = web_state().services
    settings = services.settings
    if not settings.pypi_enabled:
        return _text("404 Not Found: this hub's PyPI bridge is off (HUB_PYPI_URL is empty)", 404)
    public = settings.public_url
    topic = firehose_topic(public) if project_name is None else project_topic(public, project_name)
    try:
        since = _number("since", None, 0)
        limit = min(_number("limit", DEFAULT_LIMIT, 1) or DEFAULT_LIMIT, MAX_LIMIT)
    except ValueError as exc:
        return _text(f"400 Bad Request: {exc}", 400)
    source = source_of(settings.pypi_url)
    state = services.storage.source_state(source)
    if state is None or state.last_serial is None:
        return _text("503 Service Unavailable: the poller has not read the journal yet", 503,
                     **{"Retry-After": "5"})  # fmt: skip
    retained = state.retained_from if state.retained_from is not None else state.last_serial
    if since is not None and since < retained:
        return _text(
            f"410 Gone: this hub keeps the journal only after serial {retained} "
            f"(HUB_PYPI_RETENTION = {settings.pypi_retention:g} s); since={since} is older. "
            "Do a full sync of your mirror, then follow the topic again from the serial it "
            "reached.",
            410,
        )
    storage = services.storage
    if since is None:
        rows = storage.entries_latest(source, project_name, limit)
        first = rows[0][0] if rows else state.last_serial + 1
        since = storage.serial_before(source, project_name, first)
        since = retained if since is None or since < retained else since
        more = False
    else:
        rows = storage.entries_after(source, project_name, since, limit)
        more = len(rows) == limit
    newest = rows[-1][0] if rows else since
    until = newest if more else max(newest, state.last_serial)
    next_url = f"{topic}?since={until}&limit={limit}" if more else None
    body = catchup_body(
        source=source,
        topic=topic,
        since=since,
        until=until,
        entries=[json.loads(entry) for _, entry in rows],
        next_url=next_url,
    )
    return Response(
        body,
        mimetype="application/json",
        headers={
            "Link": f'<{public}>; rel="hub", <{topic}>; rel="self"',
            "Cache-Control": "no-cache",
        },
    )

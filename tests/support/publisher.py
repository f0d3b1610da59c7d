"""A fake publisher serving topics. Run as ``python -m tests.support.publisher``.

Control API:

- ``PUT /_control/topic?path=/feed.xml`` — the request body and ``Content-Type`` (byte for byte)
  become what ``GET /feed.xml`` serves. Optional request headers: ``X-Set-ETag`` (sent as
  ``ETag``, quote it yourself: ``"v1"``), ``X-Set-Last-Modified`` (an HTTP date, sent as
  ``Last-Modified``), ``X-Set-Status`` (e.g. ``500``: served with the body instead of 200),
  ``X-Set-Delay`` (seconds to wait before answering),
  ``X-Set-Redirect`` (a location: GET answers ``302`` — or ``X-Set-Status`` when that is a
  3xx — with ``Location``). Each PUT replaces the topic whole. → 204
- ``DELETE /_control/topic?path=/feed.xml`` → 204 (the path then answers 404).
- ``GET /_control/fetches[?path=/feed.xml]`` → list of ``{"at", "path", "query", "headers",
  "status"}`` for every GET/HEAD received (headers: dict, lower-case names).
- ``POST /_control/reset`` → forget every topic and fetch.

Conditional GET: ``If-None-Match`` matching the ETag (weak comparison, ``*`` too) → 304;
otherwise, when there is no ``If-None-Match``, ``If-Modified-Since`` at or after
``Last-Modified`` → 304. Unknown paths answer 404 (and are recorded as fetches).

Use :class:`PublisherClient` from tests to drive it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from aiohttp import web

from tests.support.subscriber import ControlClient, parse_args, serve


@dataclass
class Topic:
    body: bytes
    content_type: str | None
    etag: str | None = None
    last_modified: str | None = None
    status: int = 200
    redirect: str | None = None
    delay: float = 0.0  # seconds to wait before answering a GET


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True

    def opaque(tag: str) -> str:
        tag = tag.strip()
        return tag[2:] if tag.startswith("W/") else tag

    return any(opaque(candidate) == opaque(etag) for candidate in header.split(","))


def _not_modified_since(header: str, last_modified: str) -> bool:
    try:
        return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False


class Publisher:
    def __init__(self) -> None:
        self.topics: dict[str, Topic] = {}
        self.fetches: list[dict[str, Any]] = []

    async def put_topic(self, request: web.Request) -> web.Response:
        path = request.query.get("path")
        if not path or not path.startswith("/"):
            return web.Response(status=400, text="path must start with /")
        h = request.headers
        try:
            status = int(h.get("X-Set-Status", "200"))
        except ValueError:
            return web.Response(status=400, text="X-Set-Status must be an integer")
        self.topics[path] = Topic(
            body=await request.read(),
            content_type=h.get("Content-Type"),
            etag=h.get("X-Set-ETag"),
            last_modified=h.get("X-Set-Last-Modified"),
            status=status,
            redirect=h.get("X-Set-Redirect"),
            delay=float(h.get("X-Set-Delay", "0") or 0),
        )
        return web.Response(status=204)

    async def delete_topic(self, request: web.Request) -> web.Response:
        self.topics.pop(request.query.get("path", ""), None)
        return web.Response(status=204)

    async def control_fetches(self, request: web.Request) -> web.Response:
        path = request.query.get("path")
        return web.json_response([f for f in self.fetches if path is None or f["path"] == path])

    async def control_reset(self, request: web.Request) -> web.Response:
        self.topics.clear()
        self.fetches.clear()
        return web.json_response({"ok": True})

    async def serve_topic(self, request: web.Request) -> web.Response:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        record: dict[str, Any] = {
            "at": time.time(),
            "path": request.path,
            "query": request.raw_path.partition("?")[2],
            "headers": headers,
            "status": None,
        }
        self.fetches.append(record)
        topic = self.topics.get(request.path)
        if topic is not None and topic.delay:
            await asyncio.sleep(topic.delay)
        response = self._respond(request)
        record["status"] = response.status
        return response

    def _respond(self, request: web.Request) -> web.Response:
        topic = self.topics.get(request.path)
        if topic is None:
            return web.Response(status=404, text="no such topic\n")
        if topic.redirect is not None:
            status = topic.status if 300 <= topic.status < 400 else 302
            return web.Response(status=status, headers={"Location": topic.redirect})
        validators: dict[str, str] = {}
        if topic.etag is not None:
            validators["ETag"] = topic.etag
        if topic.last_modified is not None:
            validators["Last-Modified"] = topic.last_modified
        if topic.status == 200:
            inm = request.headers.get("If-None-Match")
            ims = request.headers.get("If-Modified-Since")
            if inm is not None:
                if topic.etag is not None and _etag_matches(inm, topic.etag):
                    return web.Response(status=304, headers=validators)
            elif (
                ims is not None
                and topic.last_modified is not None
                and _not_modified_since(ims, topic.last_modified)
            ):
                return web.Response(status=304, headers=validators)
        headers = dict(validators)
        if topic.content_type is not None:
            headers["Content-Type"] = topic.content_type
        return web.Response(status=topic.status, body=topic.body, headers=headers)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_put("/_control/topic", self.put_topic)
        app.router.add_delete("/_control/topic", self.delete_topic)
        app.router.add_get("/_control/fetches", self.control_fetches)
        app.router.add_post("/_control/reset", self.control_reset)
        app.router.add_get("/{tail:.*}", self.serve_topic)  # HEAD included
        return app


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv, "fake WebSub publisher (topic server)")
    asyncio.run(serve(Publisher().app(), args.host, args.port))


class PublisherClient(ControlClient):
    """Drives a running fake publisher."""

    def set_topic(
        self,
        path: str,
        body: bytes | str,
        content_type: str | None = "application/atom+xml",
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        status: int | None = None,
        redirect: str | None = None,
        delay: float | None = None,
    ) -> str:
        """Serve ``body`` at ``path``; returns the topic's full URL."""
        headers: dict[str, str] = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        for name, value in (
            ("X-Set-ETag", etag),
            ("X-Set-Last-Modified", last_modified),
            ("X-Set-Status", None if status is None else str(status)),
            ("X-Set-Redirect", redirect),
            ("X-Set-Delay", None if delay is None else str(delay)),
        ):
            if value is not None:
                headers[name] = value
        data = body.encode() if isinstance(body, str) else body
        response = self.session.put(
            self.url("/_control/topic"),
            params={"path": path},
            data=data,
            headers=headers,
            timeout=10,
        )
        response.raise_for_status()
        return self.url(path)

    def delete_topic(self, path: str) -> None:
        response = self.session.delete(
            self.url("/_control/topic"), params={"path": path}, timeout=10
        )
        response.raise_for_status()

    def fetches(self, path: str | None = None) -> list[dict[str, Any]]:
        params = {} if path is None else {"path": path}
        response = self.session.get(self.url("/_control/fetches"), params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.session.post(self.url("/_control/reset"), timeout=10).raise_for_status()


if __name__ == "__main__":
    main()

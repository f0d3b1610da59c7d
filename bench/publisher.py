"""The publisher: Atom feeds on 127.0.0.1, one new entry per publish.

``POST /_topic/<id>?hub=<hub url>`` creates a feed (5 entries); ``POST /_publish/<id>`` adds an
entry and returns its sequence number; ``GET /feed/<id>`` serves the newest 10 entries with
ETag, ``Link: <hub>; rel="hub", <self>; rel="self"`` (flask-websub needs it) and 304 support.

Many topics, cheaply (``python -m bench.scale``): ``POST /_many?hub=<hub url>&n=<N>`` makes topics
``GET /t/<i>.xml`` for i in 0..N-1, all at version 0 (no per-topic state until one changes);
``POST /_bump?start=a&stop=b`` moves topics a..b-1 to their next version (one new entry each);
``GET /_many_stats`` counts what the hub fetched: GETs, 200s and 304s, how many topics were
fetched (answered 200) at their current version, and the changes fetched with a 200 more than
once (``double_fetches``: a change fetched twice), and GETs beyond the first of one version
(``extra_gets``, 304s included). Entry ids are ``urn:bench:entry:<v*10^7+i>``.

Run: python -m bench.publisher PORT
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import sys
import time

from aiohttp import web

KEEP = 10
SEQ = itertools.count(1)


def entry(topic_id: str, seq: int) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return (
        f"<entry><id>urn:bench:entry:{seq}</id><title>{topic_id} release {seq}</title>"
        f"<updated>{stamp}</updated><link href=\"https://example.org/{topic_id}/{seq}\"/>"
        f"<summary>Package {topic_id} version 1.{seq}.0 was uploaded; this summary pads the "
        f"entry to a realistic size for a package index feed item.</summary></entry>"
    )


class Feeds:
    def __init__(self) -> None:
        self.entries: dict[str, list[str]] = {}
        self.hubs: dict[str, str] = {}
        self.cache: dict[str, tuple[bytes, str]] = {}
        self.fetches = 0

    def render(self, topic_id: str, self_url: str) -> tuple[bytes, str]:
        cached = self.cache.get(topic_id)
        if cached is None:
            body = (
                '<?xml version="1.0" encoding="utf-8"?>\n'
                '<feed xmlns="http://www.w3.org/2005/Atom">'
                f"<id>urn:bench:feed:{topic_id}</id><title>bench {topic_id}</title>"
                f"<updated>2024-01-01T00:00:00Z</updated>"
                f'<link rel="self" href="{self_url}"/>'
                f'<link rel="hub" href="{self.hubs[topic_id]}"/>'
                + "".join(reversed(self.entries[topic_id][-KEEP:]))
                + "</feed>"
            ).encode()
            cached = self.cache[topic_id] = (body, '"' + hashlib.sha1(body).hexdigest() + '"')
        return cached


class ManyTopics:
    """Topics /t/<i>.xml: a version number each, the feed rendered from it on each GET."""

    def __init__(self) -> None:
        self.hub = ""
        self.n = 0
        self.version: dict[int, int] = {}
        self.ok: dict[tuple[int, int], int] = {}  # (topic, version) -> GETs answered 200
        self.got: dict[tuple[int, int], int] = {}  # (topic, version) -> GETs (200 or 304)
        self.gets = self.not_modified = 0
        self.last_get = 0.0  # time.time() of the newest GET

    def render(self, i: int, v: int, self_url: str) -> bytes:
        entries = "".join(
            f"<entry><id>urn:bench:entry:{k * 10_000_000 + i}</id><title>t{i} {k}</title>"
            f"<updated>2024-01-01T00:00:00Z</updated><link href=\"https://example.org/t/{i}/{k}\"/>"
            f"<summary>Package t{i} version 1.{k}.0 was uploaded.</summary></entry>"
            for k in range(v, max(-1, v - 5), -1))
        return ('<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
                f"<id>urn:bench:t:{i}</id><title>t{i}</title><updated>2024-01-01T00:00:00Z"
                f'</updated><link rel="self" href="{self_url}"/><link rel="hub" href="{self.hub}"/>'
                f"{entries}</feed>").encode()

    def stats(self) -> dict[str, float]:
        current = sum(1 for (i, v) in self.ok if self.version.get(i, 0) == v)
        return {"n": self.n, "gets": self.gets, "ok": sum(self.ok.values()),
                "not_modified": self.not_modified, "fetched_current": current,
                "double_fetches": sum(1 for c in self.ok.values() if c > 1),
                "extra_gets": sum(c - 1 for c in self.got.values() if c > 1),
                "last_get": self.last_get,
                "changed": len(self.version)}


def app() -> web.Application:
    feeds = Feeds()
    many = ManyTopics()

    async def create(request: web.Request) -> web.Response:
        topic_id = request.match_info["id"]
        feeds.hubs[topic_id] = request.query["hub"]
        feeds.entries[topic_id] = [entry(topic_id, next(SEQ)) for _ in range(5)]
        feeds.cache.pop(topic_id, None)
        return web.Response(status=204)

    async def publish(request: web.Request) -> web.Response:
        topic_id = request.match_info["id"]
        seq = next(SEQ)
        feeds.entries[topic_id].append(entry(topic_id, seq))
        del feeds.entries[topic_id][:-KEEP]
        feeds.cache.pop(topic_id, None)
        return web.json_response({"seq": seq})

    async def feed(request: web.Request) -> web.Response:
        topic_id = request.match_info["id"]
        if topic_id not in feeds.entries:
            return web.Response(status=404)
        feeds.fetches += 1
        self_url = str(request.url)
        body, etag = feeds.render(topic_id, self_url)
        headers = {
            "ETag": etag,
            "Link": f'<{feeds.hubs[topic_id]}>; rel="hub", <{self_url}>; rel="self"',
        }
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, headers=headers, content_type="application/atom+xml",
                            charset="utf-8")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"fetches": feeds.fetches})

    async def many_create(request: web.Request) -> web.Response:
        many.__init__()
        many.hub, many.n = request.query["hub"], int(request.query["n"])
        return web.Response(status=204)

    async def many_bump(request: web.Request) -> web.Response:
        for i in range(int(request.query["start"]), int(request.query["stop"])):
            many.version[i] = many.version.get(i, 0) + 1
        return web.Response(status=204)

    async def many_feed(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        i = int(name[:-4]) if name.endswith(".xml") and name[:-4].isdigit() else -1
        if not 0 <= i < many.n:
            return web.Response(status=404)
        many.gets += 1
        many.last_get = time.time()
        v = many.version.get(i, 0)
        many.got[(i, v)] = many.got.get((i, v), 0) + 1
        etag = f'"{i}-{v}"'
        self_url = str(request.url)
        headers = {"ETag": etag, "Link": f'<{many.hub}>; rel="hub", <{self_url}>; rel="self"'}
        if request.headers.get("If-None-Match") == etag:
            many.not_modified += 1
            return web.Response(status=304, headers=headers)
        many.ok[(i, v)] = many.ok.get((i, v), 0) + 1
        return web.Response(body=many.render(i, v, self_url), headers=headers,
                            content_type="application/atom+xml", charset="utf-8")

    async def many_stats(request: web.Request) -> web.Response:
        return web.json_response(many.stats())

    application = web.Application()
    application.router.add_post("/_topic/{id}", create)
    application.router.add_post("/_publish/{id}", publish)
    application.router.add_get("/feed/{id}", feed)
    application.router.add_get("/_stats", stats)
    application.router.add_post("/_many", many_create)
    application.router.add_post("/_bump", many_bump)
    application.router.add_get("/t/{name}", many_feed)
    application.router.add_get("/_many_stats", many_stats)
    return application


def main() -> None:
    port = int(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app(), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()

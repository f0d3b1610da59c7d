"""The publisher: Atom feeds on 127.0.0.1, one new entry per publish.

``POST /_topic/<id>?hub=<hub url>`` creates a feed (5 entries); ``POST /_publish/<id>`` adds an
entry and returns its sequence number; ``GET /feed/<id>`` serves the newest 10 entries with
ETag, ``Link: <hub>; rel="hub", <self>; rel="self"`` (flask-websub needs it) and 304 support.

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


def app() -> web.Application:
    feeds = Feeds()

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

    application = web.Application()
    application.router.add_post("/_topic/{id}", create)
    application.router.add_post("/_publish/{id}", publish)
    application.router.add_get("/feed/{id}", feed)
    application.router.add_get("/_stats", stats)
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

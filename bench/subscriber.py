"""N subscriber callbacks in one asyncio process (aiohttp low-level server, uvloop if present).

``/cb/<topic_id>/<i>``: GET answers verifications (echoes ``hub.challenge``); POST records a
delivery (arrival time, ``X-Hub-Delivery-Id``, the newest entry sequence in the body) and
checks ``X-Hub-Signature`` against the subscriber's secret. ``/_stats/<topic_id>`` and
``/_times/<topic_id>/<seq>`` report to the orchestrator.

Run: python -m bench.subscriber PORT SEED
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import sys
import time
from collections import defaultdict

from aiohttp import web, web_server

from bench.common import secret_for

SEQ = re.compile(rb"urn:bench:entry:(\d+)")
ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
              "sha512": hashlib.sha512}


class Topic:
    __slots__ = ("bad_sig", "deliveries", "unsigned", "unverified_modes", "verified")

    def __init__(self) -> None:
        self.verified: set[str] = set()
        self.unverified_modes: dict[str, int] = defaultdict(int)
        self.bad_sig = 0
        self.unsigned = 0
        # seq -> [count, set(paths), set(delivery ids), [arrival times]]
        self.deliveries: dict[int, list] = {}


class State:
    def __init__(self, seed: str):
        self.seed = seed
        self.topics: dict[str, Topic] = defaultdict(Topic)
        self.secrets: dict[str, bytes] = {}

    def secret(self, path: str) -> bytes:
        s = self.secrets.get(path)
        if s is None:
            s = self.secrets[path] = secret_for(self.seed, path).encode()
        return s


def make_handler(state: State):
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith("/cb/"):
            topic_id = path.split("/", 3)[2]
            topic = state.topics[topic_id]
            if request.method == "GET":
                q = request.query
                mode = q.get("hub.mode", "")
                challenge = q.get("hub.challenge")
                if mode in ("subscribe", "unsubscribe") and challenge is not None:
                    if mode == "subscribe":
                        topic.verified.add(path)
                    return web.Response(body=challenge.encode(), content_type="text/plain")
                topic.unverified_modes[mode] += 1
                return web.Response(status=200)
            if request.method == "POST":
                body = await request.read()
                now = time.time()
                sig = request.headers.get("X-Hub-Signature")
                if sig is None:
                    topic.unsigned += 1
                else:
                    algo, _, digest = sig.partition("=")
                    fn = ALGORITHMS.get(algo)
                    good = fn is not None and hmac.compare_digest(
                        hmac.new(state.secret(path), body, fn).hexdigest(), digest
                    )
                    if not good:
                        topic.bad_sig += 1
                seqs = SEQ.findall(body)
                seq = max(int(s) for s in seqs) if seqs else -1
                rec = topic.deliveries.get(seq)
                if rec is None:
                    rec = topic.deliveries[seq] = [0, set(), set(), []]
                rec[0] += 1
                rec[1].add(path)
                did = request.headers.get("X-Hub-Delivery-Id")
                if did is not None:
                    rec[2].add(did)
                rec[3].append(now)
                return web.Response(status=204)
        if path.startswith("/_stats/"):
            topic = state.topics.get(path.split("/")[2]) or Topic()
            out = {
                "verified": len(topic.verified),
                "other_modes": dict(topic.unverified_modes),
                "bad_signatures": topic.bad_sig,
                "unsigned": topic.unsigned,
                "seqs": {
                    str(seq): {"count": r[0], "distinct": len(r[1]), "delivery_ids": len(r[2])}
                    for seq, r in topic.deliveries.items()
                },
            }
            return web.json_response(out)
        if path.startswith("/_times/"):
            _, _, topic_id, seq = path.split("/")
            topic = state.topics.get(topic_id) or Topic()
            rec = topic.deliveries.get(int(seq))
            return web.Response(body=json.dumps(sorted(rec[3]) if rec else []).encode(),
                                content_type="application/json")
        if path.startswith("/_forget/"):  # free memory of a finished topic
            state.topics.pop(path.split("/")[2], None)
            return web.Response(status=204)
        if path == "/_health":
            return web.Response(text="ok")
        return web.Response(status=404)

    return handler


async def serve(port: int, seed: str) -> None:
    server = web_server.Server(make_handler(State(seed)), access_log=None,
                               keepalive_timeout=75)
    loop = asyncio.get_running_loop()
    await loop.create_server(server, "127.0.0.1", port, backlog=4096, reuse_address=True)
    print(f"subscriber server on 127.0.0.1:{port} (loop: {type(loop).__module__})", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    port, seed = int(sys.argv[1]), sys.argv[2]
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port, seed))
    else:
        uvloop.run(serve(port, seed))


if __name__ == "__main__":
    main()

"""N subscriber callbacks in one asyncio process: a raw HTTP/1.1 server (``asyncio.Protocol``
on uvloop if present), so that the load tool takes little CPU from the hub it measures.

Endpoints (the same as the aiohttp server this replaces, with the same JSON):

- ``GET /cb/<topic_id>/<i>?hub.mode=..&hub.challenge=..``: a verification. ``subscribe`` or
  ``unsubscribe`` with a challenge: the challenge is echoed (``text/plain``) and, for
  ``subscribe``, the path recorded as verified for the topic; any other mode is counted
  (``other_modes``) and answered ``200`` with no body. The query string is percent-decoded
  (``+`` is a space), the first of repeated parameters counts.
- ``POST /cb/<topic_id>/<i>``: a delivery, answered ``204``. Records its arrival time (when its
  last byte was read), ``X-Hub-Delivery-Id``, the largest ``urn:bench:entry:<seq>`` in the body
  (-1 if none), and checks ``X-Hub-Signature: <algo>=<hex>`` (sha1, sha256, sha384, sha512)
  against ``secret_for(seed, path)`` (a mismatch or an unknown algorithm: ``bad_signatures``;
  no header: ``unsigned``). A JSON body (the PyPI bridge's notifications, ``{...}``) is logged
  instead as (path, arrival, first and last ``"serial"`` of its entries, delivery id), and
  each callback's highest serial is kept (``/_stats``: ``json`` = deliveries, callbacks and
  the sum of their highest serials, so the orchestrator can wait without fetching the log).
- ``/_stats/<topic_id>``, ``/_times/<topic_id>/<seq>``, ``/_total/<topic_id>?min=<seq>`` (JSON
  for the orchestrator; ``out_of_order`` counts deliveries older than one the same callback had
  already, ``verify_requests`` every subscribe verification answered), ``/_log/<topic_id>``
  (the JSON deliveries), ``/_forget/<topic_id>`` (``204``; frees the topic), ``/_health``
  (``ok``); ``404`` otherwise, ``500`` if a handler fails (e.g. ``/_times/x/notanumber``).

HTTP/1.1 handling: ``bench/rawhttp.py``. The hot path (a delivery POST): the request line and
head are parsed with ``bytes`` operations, the head is lower-cased once (one C call) and only
the five headers used are looked up with ``bytes.find`` (no dict of all headers; ``bytes in
bytes`` is avoided, it first tries the needle as an int and builds a TypeError); each callback
path is resolved once (cached) to its topic id, its path string and its HMAC pads, so a
signature check is two C hash calls (``hmac.new`` / ``hmac.digest`` cost 2-4 µs more each here,
under OpenSSL 3); the ``204`` answer is a constant; the delivery is handled synchronously
inside ``data_received`` (no task, no future, no response object).

CPU per delivery POST (2-core VM, tick-based accounting, whole-feed bodies of ~3.3 KB; the
aiohttp server it replaces in brackets): ~11 µs in Python when warm, of which ~5 µs is the
body itself (HMAC-SHA256 ~2.4 µs, the ``urn:bench:entry`` regex ~2 µs); ~22 µs with the
kernel when saturated (many requests per event-loop wake-up) [65-70 µs]; 25-45 µs in
``python -m bench`` at n=10,000 [65-105 µs], where nearly every request is its own wake-up:
about half of that is the kernel (epoll wake-up, context switch, recv, send), which a
do-nothing uvloop server pays as well (~20-28 µs per request in the same conditions).

Run: python -m bench.subscriber PORT SEED
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import sys
import time
from collections import defaultdict
from urllib.parse import unquote_to_bytes

from bench import subscriber_control
from bench.common import secret_for
from bench.rawhttp import (
    H_CONNECTION,
    H_CONTENT_LENGTH,
    H_DELIVERY_ID,
    H_EXPECT,
    H_SIGNATURE,
    H_TRANSFER_ENCODING,
    IDLE_SECONDS,
    MAX_BODY,
    R204,
    BadRequest,
    HttpProtocol,
    dechunk,
    response,
)
from bench.subscriber_control import Topic

SEQ = re.compile(rb"urn:bench:entry:(\d+)")
SERIAL = re.compile(rb'"serial": ?(\d+)')  # the PyPI bridge's entries (compact JSON)
# X-Hub-Signature algorithm -> (hash constructor, HMAC block size)
HASHES = {b"sha1": (hashlib.sha1, 64), b"sha256": (hashlib.sha256, 64),
          b"sha384": (hashlib.sha384, 128), b"sha512": (hashlib.sha512, 128)}
IPAD = bytes(x ^ 0x36 for x in range(256))  # bytes.translate tables
OPAD = bytes(x ^ 0x5C for x in range(256))


class Server:
    """The recorded state, the request parser and the handlers (all synchronous)."""

    def __init__(self, seed: str):
        self.seed = seed
        self.topics: dict[str, Topic] = defaultdict(Topic)
        # raw POST target -> (topic id, path, ipad, opad, secret): resolved once per callback
        self.callbacks: dict[bytes, tuple[str, str, bytes, bytes, bytes]] = {}
        self.connections: set[HttpProtocol] = set()

    def protocol(self) -> HttpProtocol:
        return HttpProtocol(self)

    def callback(self, target: bytes) -> tuple[str, str, bytes, bytes, bytes]:
        raw = target.partition(b"?")[0]
        path = (unquote_to_bytes(raw) if b"%" in raw else raw).decode("utf-8", "replace")
        secret = secret_for(self.seed, path).encode()
        key = secret.ljust(64, b"\0")  # secrets are 32 bytes: no hashing of long keys here
        cb = (path.split("/", 3)[2], path, key.translate(IPAD), key.translate(OPAD), secret)
        self.callbacks[target] = cb
        return cb

    def request(self, data: bytes, pos: int, now: float):
        """Parse (and answer) the request starting at ``data[pos]``.

        Returns None if its head is incomplete; its end offset if its body is incomplete
        (negated if the client waits for ``100 Continue``); else (answer, end offset, close).
        """
        while data.startswith(b"\r\n", pos):  # stray CRLFs between requests are allowed
            pos += 2
        head_end = data.find(b"\r\n\r\n", pos)
        if head_end < 0:
            return None
        line_end = data.find(b"\r\n", pos)
        try:
            method, target, version = data[pos:line_end].split(b" ")
        except ValueError:
            raise BadRequest() from None
        if version == b"HTTP/1.1":
            keep_alive = True
        elif version == b"HTTP/1.0":
            keep_alive = False
        else:
            raise BadRequest()
        # the head from the request line's CRLF to the last header's CRLF, lower-cased once;
        # low[i] is data[line_end + i]
        low = data[line_end:head_end + 2].lower()
        body_start = head_end + 4

        i = low.find(H_TRANSFER_ENCODING)  # (``bytes in bytes`` costs more: it tries int first)
        if i >= 0:
            i += 20
            if not low[i:low.find(b"\r\n", i)].strip().endswith(b"chunked"):
                raise BadRequest(501)
            chunked = dechunk(data, body_start)
            if chunked is None:  # re-parsed on the next read
                if len(data) == body_start and self._expects_continue(low):
                    return -(body_start + 1)
                return len(data) + 1
            body, end = chunked
        else:
            i = low.find(H_CONTENT_LENGTH)
            if i < 0:
                end = body_start
            else:
                i += 17
                value = low[i:low.find(b"\r\n", i)].strip()
                if not value.isdigit():
                    raise BadRequest()
                end = body_start + int(value)
                if end - body_start > MAX_BODY:
                    raise BadRequest(413)
                if end > len(data):
                    if len(data) == body_start and self._expects_continue(low):
                        return -end
                    return end
            body = data[body_start:end]

        i = low.find(H_CONNECTION)
        if i < 0:
            close = not keep_alive
        else:
            i += 13
            value = low[i:low.find(b"\r\n", i)]
            close = b"close" in value or (not keep_alive and b"keep-alive" not in value)
        connection = b"close" if close else b"" if keep_alive else b"keep-alive"

        try:
            if method == b"POST" and target.startswith(b"/cb/"):
                # -- a delivery: the hot path ---------------------------------------------
                cb = self.callbacks.get(target) or self.callback(target)
                topic = self.topics[cb[0]]
                i = low.find(H_SIGNATURE)
                if i < 0:
                    topic.unsigned += 1
                else:
                    i += 18
                    algo, _, digest = data[line_end + i:line_end + low.find(b"\r\n", i)] \
                        .strip().partition(b"=")
                    fn, block = HASHES.get(algo, (None, 0))
                    if block == 64:
                        ipad, opad = cb[2], cb[3]
                    elif fn is not None:
                        key = cb[4].ljust(block, b"\0")
                        ipad, opad = key.translate(IPAD), key.translate(OPAD)
                    if fn is None or not hmac.compare_digest(
                            fn(opad + fn(ipad + body).digest()).hexdigest().encode(), digest):
                        topic.bad_sig += 1
                i = low.find(H_DELIVERY_ID)
                delivery_id = (data[line_end + i + 20:line_end + low.find(b"\r\n", i + 20)]
                               .strip() if i >= 0 else b"")
                if body[:1] == b"{":  # JSON: a PyPI bridge notification
                    serials = SERIAL.findall(body)  # entries are oldest first
                    first, last = (int(serials[0]), int(serials[-1])) if serials else (-1, -1)
                    topic.json_log.append((cb[1], now, first, last, delivery_id.decode()))
                    high = topic.json_max.get(cb[1], 0)
                    if last > high:
                        topic.json_max[cb[1]] = last
                        topic.json_sum += last - high
                else:
                    seqs = SEQ.findall(body)
                    seq = (int(seqs[0]) if len(seqs) == 1 else max(map(int, seqs))) if seqs else -1
                    rec = topic.deliveries.get(seq)
                    if rec is None:
                        rec = topic.deliveries[seq] = [0, set(), set(), []]
                    rec[0] += 1
                    rec[1].add(cb[1])
                    if seq < topic.last.get(cb[1], -1):
                        topic.out_of_order += 1
                    else:
                        topic.last[cb[1]] = seq
                    if delivery_id:
                        rec[2].add(delivery_id)
                    rec[3].append(now)
                answer = R204 if not connection else response(204, connection=connection)
            else:
                answer = self.handle(method, target, connection)
        except Exception as exc:  # noqa: BLE001 - a 500, as aiohttp answered
            print(f"error handling {method!r} {target!r}: {exc!r}", file=sys.stderr, flush=True)
            answer = response(500, connection=connection)
        return answer, end, close

    @staticmethod
    def _expects_continue(low: bytes) -> bool:
        i = low.find(H_EXPECT)
        return i >= 0 and low[i + 9:low.find(b"\r\n", i + 9)].strip() == b"100-continue"

    def handle(self, method: bytes, target: bytes, connection: bytes) -> bytes:
        """Everything but deliveries (bench/subscriber_control.py)."""
        return subscriber_control.handle(self, method, target, connection)


    async def close_idle(self) -> None:
        while True:
            await asyncio.sleep(IDLE_SECONDS / 5)
            limit = time.time() - IDLE_SECONDS
            for conn in [c for c in self.connections if c.last < limit]:
                if conn.transport is not None:
                    conn.transport.close()


async def serve(port: int, seed: str) -> None:
    server = Server(seed)
    loop = asyncio.get_running_loop()
    await loop.create_server(server.protocol, "127.0.0.1", port, backlog=4096,
                             reuse_address=True)
    print(f"subscriber server on 127.0.0.1:{port} (raw HTTP/1.1, loop: "
          f"{type(loop).__module__})", flush=True)
    await server.close_idle()


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

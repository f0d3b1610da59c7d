"""``python -m bench.http_parsers``: CPU per response of the outbound client's parser choices.

Run by hand (not part of ``make bench``); figures are medians of ``--runs`` runs, in µs of
process CPU time (``time.process_time``), so a busy machine inflates them less than wall time.

1. parse only: one response (as bytes already received) parsed into status, headers and body
   by today's parser (``workers/http11_wire.py`` as of commit LEGACY, the hand-written one),
   h11, httptools (llhttp) with bare callbacks, and the new ``workers.http11_wire``
   (httptools plus the strictness checks and the body limits, through its coroutine).
2. end to end: the client process's CPU per request, ``--requests`` POSTs (1 KiB body, 32 at a
   time, keep-alive) to a tiny raw HTTP/1.1 server in another process on 127.0.0.1, through
   the legacy client, the new one, and aiohttp's ``ClientSession``; uvloop as in the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import multiprocessing
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h11
import httptools

REPO = Path(__file__).resolve().parent.parent
LEGACY = "e516729"  # the last commit with the hand-written parser

SAMPLES = {
    "delivery 202": (
        b"HTTP/1.1 202 Accepted\r\nDate: Thu, 03 Dec 2026 15:00:00 GMT\r\nServer: nginx\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
    ),
    "feed 20 KB, Content-Length": (
        b'HTTP/1.1 200 OK\r\nContent-Type: application/atom+xml\r\nETag: "abc"\r\n'
        b"Last-Modified: Thu, 03 Dec 2026 15:00:00 GMT\r\nContent-Length: 20480\r\n\r\n"
        + b"x"
        * 20480
    ),
    "feed 20 KB, chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/atom+xml\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"1000\r\n"
        + b"x" * 4096
        + b"\r\n"
        + (b"1000\r\n" + b"x" * 4096 + b"\r\n") * 4
        + b"0\r\n\r\n"
    ),
}


def load_legacy() -> Any | None:
    """Today's (pre-llhttp) wire and client modules, from git, as package ``legacy_http``."""
    target = Path(tempfile.mkdtemp(prefix="legacy-http-")) / "legacy_http"
    target.mkdir()
    (target / "__init__.py").write_text("")
    for name in ("http11_wire", "http11"):
        try:
            text = subprocess.run(
                ["git", "-C", str(REPO), "show", f"{LEGACY}:workers/{name}.py"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        except (subprocess.CalledProcessError, OSError):
            return None
        (target / f"{name}.py").write_text(
            text.replace("workers.http11_wire", "legacy_http.http11_wire")
        )
    sys.path.insert(0, str(target.parent))
    return importlib.import_module("legacy_http.http11")


# --- 1. parse only ---------------------------------------------------------------------------


def parse_legacy(wire: Any) -> Callable[[bytes], Any]:
    async def one(raw: bytes) -> Any:
        conn = wire.Connection()
        conn.data_received(raw)
        status, _, headers = wire.parse_head(
            await conn.read_until(b"\r\n\r\n", wire.MAX_HEAD_BYTES)
        )
        return status, headers, await wire.read_body(conn, status, headers, 1 << 20)

    return one


_CONN: Any = None


async def parse_new(raw: bytes) -> Any:
    """One pooled connection reading one response after another, as the client does."""
    global _CONN
    from workers import http11_wire

    if _CONN is None:
        _CONN = http11_wire.Connection()
    _CONN.begin(1 << 20, 1 << 20, True)
    _CONN.data_received(raw)
    reading = await _CONN.response()
    return reading.status, reading.headers, bytes(reading.body)


class _Callbacks:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


async def parse_httptools(raw: bytes) -> Any:
    cb = _Callbacks()
    parser = httptools.HttpResponseParser(cb)
    parser.feed_data(raw)
    assert cb.done
    return parser.get_status_code(), cb.headers, bytes(cb.body)


H11_REQUEST = h11.Request(
    method="POST", target="/cb", headers=[("Host", "x"), ("Content-Length", "0")]
)


async def parse_h11(raw: bytes) -> Any:
    conn = h11.Connection(h11.CLIENT)
    conn.send(H11_REQUEST)
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    status, headers, body = 0, {}, bytearray()
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
            headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, headers, bytes(body)
        else:
            raise RuntimeError(f"unexpected {event!r}")


def time_parse(fn: Callable[[bytes], Any], raw: bytes, n: int) -> float:
    async def loop() -> float:
        expected = await fn(raw)
        assert expected[0] in (200, 202), expected
        started = time.process_time()
        for _ in range(n):
            await fn(raw)
        return (time.process_time() - started) / n * 1e6

    return asyncio.run(loop())


# --- 2. end to end ---------------------------------------------------------------------------


def serve(sock: socket.socket) -> None:
    """A raw keep-alive server: every request (Content-Length bodies) answered with a 202."""
    answer = SAMPLES["delivery 202"]

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport, self.buf = transport, bytearray()

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while (end := self.buf.find(b"\r\n\r\n")) >= 0:
                head = bytes(self.buf[:end]).lower()
                at = head.find(b"content-length:")
                size = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
                if len(self.buf) < end + 4 + size:
                    return
                del self.buf[: end + 4 + size]
                self.transport.write(answer)

    import uvloop

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Proto, sock=sock)
        await server.serve_forever()

    uvloop.run(main())


async def drive(request: Callable[[str], Any], url: str, total: int, concurrency: int) -> None:
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await request(url)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def e2e(name: str, url: str, total: int, legacy: Any | None) -> float | None:
    body = b"b" * 1024
    headers = {"Content-Type": "application/atom+xml", "User-Agent": "bench"}

    async def main() -> float | None:
        if name == "aiohttp":
            import aiohttp

            session = aiohttp.ClientSession(auto_decompress=False)

            async def request(u: str) -> None:
                async with session.post(u, data=body, headers=headers) as r:
                    await r.read()

            close: Callable[[], Any] = session.close
        else:
            module = legacy if name == "legacy" else importlib.import_module("workers.http11")
            if module is None:
                return None
            client = module.Client(allow_private=True, connect_timeout=5.0)

            async def request(u: str) -> None:
                await client.request("POST", u, headers, body, 100)

            async def close() -> None:
                client.close()

        await drive(request, url, 200, 32)  # warm up: connections made
        started = time.process_time()
        await drive(request, url, total, 32)
        spent = time.process_time() - started
        await close()
        return spent / total * 1e6

    import uvloop

    return uvloop.run(main())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.http_parsers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--n", type=int, default=20000, help="responses parsed per run")
    p.add_argument("--runs", type=int, default=5, help="runs; the median is shown")
    p.add_argument("--requests", type=int, default=5000, help="requests per end-to-end run")
    args = p.parse_args(argv)
    legacy = load_legacy()
    legacy_wire = importlib.import_module("legacy_http.http11_wire") if legacy else None

    parsers: dict[str, Callable[[bytes], Any]] = {}
    if legacy_wire is not None:
        parsers[f"today's parser ({LEGACY})"] = parse_legacy(legacy_wire)
    parsers["h11 " + h11.__version__] = parse_h11
    parsers["httptools " + httptools.__version__ + " (bare)"] = parse_httptools
    parsers["workers.http11_wire (httptools)"] = parse_new
    print(f"1. parse only: µs CPU per response, median of {args.runs} runs of {args.n}")
    print(f"{'parser':40s}" + "".join(f"{s:>28s}" for s in SAMPLES))
    for label, fn in parsers.items():
        cells = [
            statistics.median(time_parse(fn, raw, args.n) for _ in range(args.runs))
            for raw in SAMPLES.values()
        ]
        print(f"{label:40s}" + "".join(f"{c:28.1f}" for c in cells), flush=True)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/cb"
    server = multiprocessing.get_context("fork").Process(target=serve, args=(sock,), daemon=True)
    server.start()
    try:
        print(
            f"\n2. end to end: µs client CPU per POST, median of {args.runs} runs of "
            f"{args.requests} (32 concurrent, keep-alive)"
        )
        for name in ("legacy", "builtin", "aiohttp"):
            figures = [e2e(name, url, args.requests, legacy) for _ in range(args.runs)]
            if None in figures:
                print(f"{name:40s}  unavailable (no git history)")
                continue
            print(f"{name:40s}{statistics.median(figures):10.1f}", flush=True)
    finally:
        server.terminate()
        server.join(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Real loopback servers and helpers shared by the HTTP client tests (no mocks)."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from broker_hub.config import Settings
from broker_hub.retry import Attempt
from workers import http11
from workers.http_engine import HttpEngine

TEST_SECONDS = 5.0


# --- helpers ---------------------------------------------------------------------------------


def async_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test function in a fresh event loop, bounded by TEST_SECONDS."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            async with asyncio.timeout(TEST_SECONDS):
                await fn(*args, **kwargs)

        asyncio.run(main())

    return wrapper


@dataclass
class Req:
    conn: int  # 1-based number of the server connection it arrived on
    seq: int  # 1-based number of the request on that connection
    method: str
    target: bytes
    version: str
    headers: list[tuple[bytes, bytes]]  # lower-case names, values as sent
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> bytes | None:
        values = [v for n, v in self.headers if n == name.lower().encode()]
        assert len(values) <= 1, f"repeated header {name}"
        return values[0] if values else None


async def read_request(reader: asyncio.StreamReader, conn: int, seq: int) -> Req | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head[:-4].split(b"\r\n")
    method, target, version = lines[0].split(b" ")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        assert sep, f"malformed request header line {line!r}"
        headers.append((name.strip().lower(), value.strip()))
    length = int(dict(headers).get(b"content-length", b"0"))
    body = await reader.readexactly(length)
    return Req(conn, seq, method.decode(), target, version.decode(), headers, body, head)


def http_response(
    status: int = 200,
    body: bytes = b"",
    headers: tuple[str, ...] = (),
    *,
    version: str = "HTTP/1.1",
    content_length: bool = True,
) -> bytes:
    lines = [f"{version} {status} Whatever", *headers]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


Handler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """An ``asyncio.start_server`` server that counts connections and records requests."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1"):
        self.handler = handler
        self.host = host
        self.port = 0
        self.connections = 0
        self.open = 0  # server-side connections not yet closed by either side
        self.requests: list[Req] = []
        self.answered: list[Req] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._on_conn, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        number = self.connections
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        try:
            await self.handler(self, reader, writer, number)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # torn down by __aexit__; ending quietly keeps asyncio from logging it
        finally:
            self.open -= 1
            writer.close()

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"


def answering(make: Callable[[Req], bytes | None]) -> Handler:
    """A keep-alive handler: each request answered with ``make(req)``; None closes silently."""

    async def handler(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> None:
        seq = 0
        while True:
            seq += 1
            req = await read_request(reader, conn, seq)
            if req is None:
                return
            server.requests.append(req)
            out = make(req)
            if out is None:
                return  # close without answering
            writer.write(out)
            await writer.drain()
            server.answered.append(req)

    return handler


@contextmanager
def client(*, allow_private: bool = True) -> Iterator[http11.Client]:
    """A client whose pooled connections are closed when the block ends."""
    c = http11.Client(allow_private=allow_private, connect_timeout=2.0)
    try:
        yield c
    finally:
        c.close()


async def settle() -> None:
    """Give FINs/EOFs in flight on the loopback interface a moment to arrive."""
    await asyncio.sleep(0.05)


# --- through HttpEngine -------------------------------------------------------------------------


class ThreadedServer:
    """A RawServer on its own event loop thread (the engine has its own loop too)."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1"):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = RawServer(handler, host)

    def __enter__(self) -> RawServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self.loop).result(5)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.__aexit__(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@contextmanager
def running_engine(*, allow_private: bool = True, **settings: Any) -> Iterator[HttpEngine]:
    settings.setdefault("http_timeout", 1.0)
    engine = HttpEngine(Settings(allow_private_addresses=allow_private, **settings))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def engine_request(engine: HttpEngine, *args: Any, **kwargs: Any) -> tuple[Attempt, bytes]:
    return engine.submit(engine.request(*args, **kwargs)).result(timeout=5)

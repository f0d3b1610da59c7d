"""The web front under Granian: request bodies are read on the event loop, then Flask runs.

Under Granian's WSGI interface a WSGI thread is taken when the head arrives and is held while
the body trickles in: ``HUB_WEB_WORKERS x HUB_WEB_THREADS`` connections that declare a body and
send a byte now and then starve every other request (issue 15). This front speaks RSGI, so a
request holds no thread until its whole body is here: the body is read on Granian's event loop
within ``HUB_WEB_BODY_TIMEOUT`` seconds (else 408) and at most ``HUB_MAX_REQUEST_BYTES + 1``
bytes are kept (the hub answers 413 past the limit); only then is the Flask app called, on a
pool of ``HUB_WEB_THREADS`` threads, with the body in memory. A slow client costs a socket and
a buffer, never a thread.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from broker_hub.config import Settings

logger = logging.getLogger(__name__)
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_PLAIN = [("content-type", "text/plain; charset=utf-8")]


class BodyFirstFront:
    """An RSGI application that buffers the request body, then calls a WSGI app in a thread."""

    def __init__(self, app: WSGIApp, *, threads: int, body_timeout: float, max_body: int):
        self.app = app
        self.body_timeout = body_timeout
        self.keep = max_body + 1  # one byte over the limit: enough for the app to say 413
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="web")

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        headers = _joined(scope.headers.items())
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.keep:
            body = b""  # the app refuses it from the header alone: no need to read it
        else:
            try:
                body = await asyncio.wait_for(self._read(protocol), self.body_timeout)
            except TimeoutError:
                protocol.response_bytes(
                    408,
                    [*_PLAIN, ("connection", "close")],
                    f"408 Request Timeout: the request body did not arrive within "
                    f"{self.body_timeout:g} s\n".encode(),
                )
                return
            declared = str(len(body))
        environ = _environ(scope, headers, body, declared)
        loop = asyncio.get_running_loop()
        status, out_headers, payload = await loop.run_in_executor(self.pool, self._call, environ)
        protocol.response_bytes(status, out_headers, payload)

    async def _read(self, protocol: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in protocol:
            chunks.append(chunk)
            size += len(chunk)
            if size >= self.keep:
                break
        return b"".join(chunks)[: self.keep]

    def _call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            started[:] = [status, headers]
            return lambda data: None

        result = self.app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return int(started[0].split(" ", 1)[0]), list(started[1]), payload


def _joined(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _split_address(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), port) if host else (address, "")


def _environ(scope: Any, headers: dict[str, str], body: bytes, length: str) -> dict[str, Any]:
    server_host, server_port = _split_address(scope.server)
    client_host, client_port = _split_address(scope.client)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(scope.path, encoding="latin-1"),
        "QUERY_STRING": scope.query_string,
        "SERVER_NAME": server_host,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
        "REMOTE_ADDR": client_host,
        "REMOTE_PORT": client_port,
        "CONTENT_LENGTH": length,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        if name in ("content-length", "transfer-encoding"):
            continue  # the body is here, whole: its length is CONTENT_LENGTH
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    return environ


def create_front() -> BodyFirstFront:
    """Granian's factory (``web.rsgi:create_front``): the app and its front, from ``HUB_*``."""
    from web.app import create_app

    settings = Settings.from_env(os.environ)
    return BodyFirstFront(
        create_app(settings),
        threads=settings.web_threads,
        body_timeout=settings.web_body_timeout,
        max_body=settings.max_request_bytes,
    )

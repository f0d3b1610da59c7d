"""A fake mirror: every path is a WebSub callback. Run as ``python -m tests.support.subscriber``.

Verification of intent (GET with ``hub.challenge``) answers per the path's ``verify`` mode;
content distribution (POST) answers the path's queued ``deliver_statuses`` then
``deliver_default``. Every request to a non-control path is recorded in memory.

Control API (JSON):

- ``POST /_control/config`` ``{"path": "/cb1", "verify": "echo"|"wrong"|"404"|"redirect"|"slow",
  "deliver_statuses": [500, 200], "deliver_default": 200, "delay": 0.0, "retry_after": 1}``
  → ``{"path": ..., "config": {...}}``. Fields given replace the path's current ones; absent
  fields are kept (defaults for a new path: echo, [], 200, 0.0, null).
- ``GET /_control/requests[?path=/cb1][&method=POST]`` → list of
  ``{"method", "path", "query", "headers", "body_b64", "at", "status"}``.
- ``GET /_control/count[?path=/cb1][&method=POST]`` → ``{"count": n}`` (cheap, for load tests).
- ``POST /_control/reset`` → forget every config and recording.

Use :class:`SubscriberClient` from tests to drive it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

VERIFY_MODES = ("echo", "wrong", "404", "redirect", "slow")
SLOW_DEFAULT_SECONDS = 60.0
REDIRECT_PREFIX = "/_redirected"


@dataclass
class PathConfig:
    verify: str = "echo"
    deliver_statuses: list[int] = field(default_factory=list)
    deliver_default: int = 200
    delay: float = 0.0
    retry_after: float | int | None = None


class Subscriber:
    def __init__(self) -> None:
        self.configs: dict[str, PathConfig] = {}
        self.records: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.configs.clear()
        self.records.clear()

    def config_for(self, path: str) -> PathConfig:
        config = self.configs.get(path)
        if config is None:
            config = self.configs[path] = PathConfig()
        return config

    # --- control ---------------------------------------------------------------------------

    async def control_config(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            return web.Response(status=400, text="body must be JSON")
        path = data.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            return web.Response(status=400, text="path must start with /")
        config = self.config_for(path)
        if "verify" in data:
            if data["verify"] not in VERIFY_MODES:
                return web.Response(status=400, text=f"verify must be one of {VERIFY_MODES}")
            config.verify = data["verify"]
        if "deliver_statuses" in data:
            config.deliver_statuses = [int(s) for s in data["deliver_statuses"]]
        if "deliver_default" in data:
            config.deliver_default = int(data["deliver_default"])
        if "delay" in data:
            config.delay = float(data["delay"])
        if "retry_after" in data:
            config.retry_after = data["retry_after"]
        return web.json_response({"path": path, "config": asdict(config)})

    def _select(self, request: web.Request) -> list[dict[str, Any]]:
        path = request.query.get("path")
        method = request.query.get("method")
        return [
            r
            for r in self.records
            if (path is None or r["path"] == path) and (method is None or r["method"] == method)
        ]

    async def control_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self._select(request))

    async def control_count(self, request: web.Request) -> web.Response:
        return web.json_response({"count": len(self._select(request))})

    async def control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    # --- callbacks -------------------------------------------------------------------------

    async def callback(self, request: web.Request) -> web.StreamResponse:
        at = time.time()
        body = await request.read()
        raw_path = request.raw_path
        path = request.path
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        record: dict[str, Any] = {
            "method": request.method,
            "path": path,
            "query": raw_path.partition("?")[2],
            "headers": headers,
            "body_b64": base64.b64encode(body).decode("ascii"),
            "at": at,
            "status": None,
        }
        self.records.append(record)

        if path.startswith(REDIRECT_PREFIX + "/"):
            # Target of the "redirect" verify mode and of 3xx deliveries: a hub that follows
            # redirects (it must not) would get a success here.
            config = PathConfig()
            challenge = request.query.get("hub.challenge")
            response = web.Response(status=200, text=challenge if challenge is not None else "")
        elif request.method == "POST":
            config = self.config_for(path)
            status = (
                config.deliver_statuses.pop(0)
                if config.deliver_statuses
                else config.deliver_default
            )
            response = self._status_response(status, config, raw_path)
        elif request.method in ("GET", "HEAD") and "hub.challenge" in request.query:
            config = self.config_for(path)
            response = await self._verify_response(request, config, raw_path)
        else:
            config = self.config_for(path)
            response = web.Response(status=200, text="fake subscriber\n")

        record["status"] = response.status
        if config.delay > 0:
            await asyncio.sleep(config.delay)
        return response

    @staticmethod
    def _redirect_location(raw_path: str) -> str:
        return REDIRECT_PREFIX + raw_path

    def _status_response(self, status: int, config: PathConfig, raw_path: str) -> web.Response:
        headers: dict[str, str] = {}
        if not 200 <= status < 300 and config.retry_after is not None:
            headers["Retry-After"] = str(config.retry_after)
        if 300 <= status < 400:
            headers["Location"] = self._redirect_location(raw_path)
        body = b"" if status in (204, 304) else f"status {status}\n".encode()
        return web.Response(status=status, body=body, headers=headers)

    async def _verify_response(
        self, request: web.Request, config: PathConfig, raw_path: str
    ) -> web.Response:
        challenge = request.query["hub.challenge"]
        mode = config.verify
        if mode == "echo":
            return web.Response(status=200, text=challenge, content_type="text/plain")
        if mode == "wrong":
            return web.Response(status=200, text=challenge + "-wrong", content_type="text/plain")
        if mode == "404":
            return web.Response(status=404, text="no such subscription\n")
        if mode == "redirect":
            return web.Response(status=302, headers={"Location": self._redirect_location(raw_path)})
        # "slow": the right answer, late: after `delay` seconds (applied by the caller, like
        # for every response), or after SLOW_DEFAULT_SECONDS when the path has no delay.
        if config.delay <= 0:
            await asyncio.sleep(SLOW_DEFAULT_SECONDS)
        return web.Response(status=200, text=challenge, content_type="text/plain")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/_control/config", self.control_config)
        app.router.add_get("/_control/requests", self.control_requests)
        app.router.add_get("/_control/count", self.control_count)
        app.router.add_post("/_control/reset", self.control_reset)
        app.router.add_route("*", "/{tail:.*}", self.callback)
        return app


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM/SIGINT; print ``LISTENING <port>`` once bound."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1]
    sys.stdout.write(f"LISTENING {bound}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv, "fake WebSub subscriber (mirror)")
    asyncio.run(serve(Subscriber().app(), args.host, args.port))


class ControlClient:
    """Drives a running fake server through its control API (``requests``, blocking)."""

    def __init__(self, base_url: str) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.server: Any = None  # the processes.Server, when a fixture started it

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def url(self, path: str = "/") -> str:
        return self.base_url + path


class SubscriberClient(ControlClient):
    """Drives a running fake subscriber."""

    def configure(self, path: str, **config: Any) -> dict[str, Any]:
        response = self.session.post(
            self.url("/_control/config"), json={"path": path, **config}, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def requests(self, path: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("path", path), ("method", method)) if v is not None}
        response = self.session.get(self.url("/_control/requests"), params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def count(self, path: str | None = None, method: str | None = None) -> int:
        params = {k: v for k, v in (("path", path), ("method", method)) if v is not None}
        response = self.session.get(self.url("/_control/count"), params=params, timeout=10)
        response.raise_for_status()
        return response.json()["count"]

    def posts(self, path: str | None = None) -> list[dict[str, Any]]:
        """Content distributions received (POSTs), oldest first."""
        return self.requests(path, "POST")

    def verifications(self, path: str | None = None) -> list[dict[str, Any]]:
        """Verification-of-intent GETs received, oldest first."""
        return [r for r in self.requests(path, "GET") if "hub.challenge=" in r["query"]]

    def reset(self) -> None:
        self.session.post(self.url("/_control/reset"), timeout=10).raise_for_status()

    @staticmethod
    def body(record: dict[str, Any]) -> bytes:
        return base64.b64decode(record["body_b64"])


if __name__ == "__main__":
    main()

"""``FakePyPIClient``: drive a running fake index from tests or scripts (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ControlFailed(Exception):
    """The fake index refused a control request (``status`` and its ``error`` text)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"{status}: {error}")
        self.status = status
        self.error = error


class FakePyPIClient:
    """``FakePyPIClient("http://127.0.0.1:8100").release("Foo_Bar", "1.0")``."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def control(self, operation: str, /, **fields: Any) -> dict[str, Any]:
        data = json.dumps({k: v for k, v in fields.items() if v is not None}).encode()
        request = urllib.request.Request(
            f"{self.url}/_control/{operation}", data=data, method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                error = json.loads(body).get("error", "")
            except ValueError:
                error = body.decode(errors="replace")
            raise ControlFailed(exc.code, error) from None

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_control/stats", timeout=self.timeout) as answer:
            return json.loads(answer.read())

    def last_serial(self) -> int:
        return int(self.stats()["last_serial"])

    # --- changes (each returns the serials the journal got) ---------------------------------

    def release(self, name: str, version: str, files: list[Any] | None = None, *,
                requires_python: str | None = None, summary: str | None = None) -> list[int]:
        return self.control("release", name=name, version=version, files=files,
                            requires_python=requires_python, summary=summary)["serials"]

    def add_file(self, name: str, version: str, kind: str = "wheel",
                 tag: str = "py2.py3-none-any") -> list[int]:
        return self.control("add_file", name=name, version=version, kind=kind, tag=tag)["serials"]

    def yank(self, name: str, version: str, reason: str | None = None) -> list[int]:
        return self.control("yank", name=name, version=version, reason=reason)["serials"]

    def unyank(self, name: str, version: str) -> list[int]:
        return self.control("unyank", name=name, version=version)["serials"]

    def remove_file(self, name: str, version: str, filename: str) -> list[int]:
        return self.control("remove_file", name=name, version=version,
                            filename=filename)["serials"]

    def remove_release(self, name: str, version: str) -> list[int]:
        return self.control("remove_release", name=name, version=version)["serials"]

    def remove_project(self, name: str) -> list[int]:
        return self.control("remove_project", name=name)["serials"]

    def quarantine(self, name: str, cleared: bool = False) -> list[int]:
        op = "clear_quarantine" if cleared else "quarantine"
        return self.control(op, name=name)["serials"]

    def role(self, name: str, user: str, role: str = "Maintainer", op: str = "add",
             to: str | None = None) -> list[int]:
        return self.control("role", name=name, user=user, role=role, op=op, to=to)["serials"]

    def backlog(self, count: int, projects: int | None = None, prefix: str = "backlog") -> int:
        return self.control("backlog", count=count, projects=projects, prefix=prefix)["written"]

    # --- faults ----------------------------------------------------------------------------

    def fault(self, count: int = 1, *, code: int | None = None, text: str | None = None,
              rate_limit: bool = False) -> None:
        self.control("fault", count=count, code=code, text=text, rate_limit=rate_limit or None)

    def outage(self, on: bool = True, *, rss: bool = False) -> None:
        """XML-RPC answers 503 (and the RSS feeds too with ``rss=True``) until ``outage(False)``."""
        self.control("outage", on=on, rss=rss or None)

    def garbage(self, mode: str, count: int = 1, size: int | None = None) -> None:
        self.control("garbage", mode=mode, count=count, size=size)

    def ratelimit(self, limit: int, window: int = 60) -> None:
        self.control("ratelimit", limit=limit, window=window)

    def cdn_lag(self, seconds: float) -> None:
        self.control("cdn_lag", seconds=seconds)

    def reset(self) -> None:
        self.control("reset")

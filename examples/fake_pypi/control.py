"""``POST /_control/<op>``: how tests (and people trying the hub) change the fake index."""

from __future__ import annotations

import time
from typing import Any

from . import rpc
from .model import ControlError, Index


def _str(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise ControlError(f"{key!r} must be a non-empty string")
    return value


def _int(request: dict[str, Any], key: str, default: int, low: int = 0, high: int = 10**7) -> int:
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ControlError(f"{key!r} must be an integer between {low} and {high}")
    return value


def dispatch(index: Index, faults: rpc.Faults, op: str, request: dict[str, Any]) -> dict[str, Any]:
    """Apply one control operation; answers ``{"serials": [...], "last_serial": n, "at": t}``
    (``at``: the fake's wall clock just after the change, for latency measurements)."""
    serials: list[int] = []
    extra: dict[str, Any] = {}
    if op == "release":
        files = request.get("files")
        if files is not None and not isinstance(files, list):
            raise ControlError("'files' must be a list of 'wheel' / 'sdist' / {kind, tag}")
        serials = index.release(
            _str(request, "name"), _str(request, "version"), files,
            summary=request.get("summary") or "A fake project",
            requires_python=request.get("requires_python"),
        )
    elif op == "add_file":
        spec = request.get("file", {"kind": request.get("kind", "wheel"),
                                    "tag": request.get("tag", "py3-none-any")})
        serials = index.add_file(_str(request, "name"), _str(request, "version"), spec)
    elif op in ("yank", "unyank"):
        serials = index.yank(_str(request, "name"), _str(request, "version"), op == "yank",
                             request.get("reason"))
    elif op == "remove_file":
        serials = index.remove_file(_str(request, "name"), _str(request, "version"),
                                    _str(request, "filename"))
    elif op == "remove_release":
        serials = index.remove_release(_str(request, "name"), _str(request, "version"))
    elif op == "remove_project":
        serials = index.remove_project(_str(request, "name"))
    elif op in ("quarantine", "clear_quarantine"):
        serials = index.quarantine(_str(request, "name"), op == "quarantine")
    elif op == "role":
        serials = index.role(_str(request, "name"), request.get("op", "add"),
                             _str(request, "user"), request.get("role", "Maintainer"),
                             request.get("to"))
    elif op == "backlog":
        extra["written"] = index.backlog(
            _int(request, "count", 0, 1, 1_000_000),
            request.get("projects"), request.get("prefix", "backlog"))
    elif op == "fault":
        count = _int(request, "count", 1, 0, 10_000)
        if request.get("rate_limit"):
            entry = (-32500, rpc.RATE_LIMIT_TEXT)
        else:
            entry = (_int(request, "code", -32500, -(2**31), 2**31 - 1),
                     request.get("text") or "RuntimeError: the fake index was told to fail")
        faults.faults.clear()
        faults.faults.extend([entry] * count)
    elif op == "outage":
        on = bool(request.get("on", True))
        faults.outage = on
        faults.rss_outage = on and bool(request.get("rss", False))
    elif op == "garbage":
        mode = request.get("mode")
        count = _int(request, "count", 1, 1, 10_000)
        if mode in rpc.RSS_GARBAGE_MODES:
            faults.rss_garbage.extend([mode] * count)
            return {"serials": [], "last_serial": index.serial, "at": time.time()}
        if mode not in rpc.GARBAGE_MODES:
            modes = rpc.GARBAGE_MODES + rpc.RSS_GARBAGE_MODES
            raise ControlError(f"mode must be one of {', '.join(modes)}")
        size = _int(request, "size", 32 << 20, 0, 1 << 30)
        faults.garbage.extend([(mode, size)] * count)
    elif op == "ratelimit":
        faults.limit = _int(request, "limit", 1000, 0, 10**9)
        faults.window = float(_int(request, "window", 60, 1, 86_400))
        faults.used = 0
    elif op == "cdn_lag":
        seconds = request.get("seconds", 0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ControlError("'seconds' must be a number >= 0")
        index.cdn_lag = float(seconds)
        if not seconds:
            index.stale.clear()
    elif op == "reset":
        index.reset()
        fresh = rpc.Faults()
        for name in fresh.__dataclass_fields__:
            setattr(faults, name, getattr(fresh, name))
    else:
        raise ControlError(f"unknown control operation {op!r}", 404)
    return {"serials": serials, "last_serial": index.serial, "at": time.time(), **extra}

"""What the scale scenarios share: the run's environment, bulk subscribes and pings, waits."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench import cgroup, loadclient
from bench.common import callback_path, secret_for
from bench.hubs import Context
from bench.scalehub import ScaleHub
from bench.scenario import LOAD_ERRORS, Servers, busy_pct, machine_jiffies


@dataclass
class Env:
    """One ``python -m bench.scale`` invocation."""

    args: Any
    ctx: Context
    servers: Servers
    groups: cgroup.Groups
    session: aiohttp.ClientSession
    log: Callable[[str], None]
    capped: bool  # False: the cgroup quota could not be set (figures are then uncapped)
    results: dict[str, Any] = field(default_factory=dict)
    suffix: str = ""  # "r<k>" in run k of several: hub names (and so buckets) stay unique

    def hub(self, name: str, **kw: Any) -> ScaleHub:
        tunables = {"HUB_DELIVERY_CONCURRENCY": "512", "HUB_DELIVERY_PER_HOST": "512"}
        for item in self.args.hub_env:
            key, _, value = item.partition("=")
            tunables[key.strip()] = value
        tunables.update(kw.pop("tunables", {}))
        return ScaleHub(self.ctx, name=name + self.suffix, groups=self.groups, db=self.args.db,
                        tunables=tunables, **kw)

    @property
    def cpus(self) -> float | None:
        return self.args.cpus if self.capped else None


async def get_json(env: Env, url: str) -> Any:
    async with env.session.get(url) as resp:
        return await resp.json()


async def post(env: Env, url: str, **params: Any) -> int:
    async with env.session.post(url, params={k: str(v) for k, v in params.items()}) as resp:
        await resp.read()
        return resp.status


async def bulk_post(url: str, bodies: list[bytes], concurrency: int, timeout: float
                    ) -> tuple[dict[int, int], float]:
    """POST pre-encoded form bodies (up to 3 tries on 5xx / connection errors): statuses and
    the seconds it took."""
    client = loadclient.LoadClient(url, concurrency)
    requests = [client.form_request(b) for b in bodies]
    statuses: dict[int, int] = {}
    it = iter(requests)

    async def worker() -> None:
        for request in it:
            for attempt in range(3):
                try:
                    status = await client.send(request)
                except LOAD_ERRORS:
                    status = -1
                statuses[status] = statuses.get(status, 0) + 1
                if 0 < status < 500:
                    break
                await asyncio.sleep(0.1 * (attempt + 1))

    started = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), timeout)
    finally:
        await client.close()
    return statuses, time.monotonic() - started


def subscribe_bodies(env: Env, bucket: str, topics: list[str], per_topic: int,
                     offset: int = 0) -> list[bytes]:
    """Form bodies subscribing callbacks /cb/<bucket>/<offset+i*per_topic+j> to topics[i]."""
    out = []
    for i, topic in enumerate(topics):
        for j in range(per_topic):
            path = callback_path(bucket, offset + i * per_topic + j)
            out.append(loadclient.form({
                "hub.mode": "subscribe", "hub.topic": topic, "hub.callback": env.servers.sub + path,
                "hub.secret": secret_for(env.servers.seed, path)}))
    return out


def ping_bodies(topics: list[str]) -> list[bytes]:
    return [loadclient.form({"hub.mode": "publish", "hub.url": t}) for t in topics]


def active_total(hub: ScaleHub) -> int:
    sql = "SELECT COUNT(*) FROM subscriptions WHERE expires_at > {p}"
    if hub.db == "postgres":
        import psycopg

        with psycopg.connect(hub.db_url, connect_timeout=5) as conn:
            return conn.execute(sql.format(p="%s"), (time.time(),)).fetchone()[0]
    with contextlib.closing(sqlite3.connect(hub.db_url.removeprefix("sqlite:///"))) as conn:
        return conn.execute(sql.format(p="?"), (time.time(),)).fetchone()[0]


def sql_value(hub: ScaleHub, sql: str) -> Any:
    """One value from the hub's database (``sql`` without parameters)."""
    if hub.db == "postgres":
        import psycopg

        with psycopg.connect(hub.db_url, connect_timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    with contextlib.closing(sqlite3.connect(hub.db_url.removeprefix("sqlite:///"))) as conn:
        return conn.execute(sql).fetchone()[0]


async def wait_until(check: Callable[[], Awaitable[tuple[bool, Any]]], timeout: float,
                     stall: float = 30.0, interval: float = 0.1) -> bool:
    """Poll ``check`` until it says done, ``timeout`` passes, or its value stops changing for
    ``stall`` seconds."""
    deadline = time.monotonic() + timeout
    last, changed = None, time.monotonic()
    while time.monotonic() < deadline:
        done, value = await check()
        if done:
            return True
        if value != last:
            last, changed = value, time.monotonic()
        elif time.monotonic() - changed > stall:
            return False
        await asyncio.sleep(interval)
    return False


async def subscribe_all(env: Env, hub: ScaleHub, bucket: str, topics: list[str],
                        per_topic: int, offset: int = 0) -> dict[str, Any]:
    """Subscribe ``per_topic`` callbacks to each topic; wait until all are verified and active."""
    n = len(topics) * per_topic
    bodies = subscribe_bodies(env, bucket, topics, per_topic, offset)
    before = active_total(hub)
    verified_before = (await get_json(env, f"{env.servers.sub}/_total/{bucket}"))["verified"]
    started = time.monotonic()
    statuses, posted = await bulk_post(hub.hub_url, bodies, env.args.client_concurrency,
                                       120 + n / 100)
    bodies.clear()

    async def check() -> tuple[bool, Any]:
        seen = (await get_json(env, f"{env.servers.sub}/_total/{bucket}"))["verified"]
        seen -= verified_before
        if seen < n:
            return False, seen
        active = await asyncio.to_thread(active_total, hub)
        return active - before >= n, seen + active

    complete = await wait_until(check, 120 + n / 100)
    elapsed = time.monotonic() - started
    total = await get_json(env, f"{env.servers.sub}/_total/{bucket}")
    return {"n": n, "statuses": {str(k): v for k, v in statuses.items()},
            "post_seconds": round(posted, 2), "seconds": round(elapsed, 2),
            "complete": complete, "per_second": round(n / elapsed, 1),
            "verify_requests": total["verify_requests"], "verified": total["verified"]}


class Busy:
    """How busy the whole machine was (all cores, every process) between start and stop."""

    def __init__(self) -> None:
        self.before = machine_jiffies()

    def pct(self) -> float | None:
        return busy_pct(self.before, machine_jiffies())


def cpu_per(deltas: dict[str, dict[str, float]], key: str) -> dict[str, float | None]:
    """Per process: CPU microseconds per unit of ``key`` (deliveries, fetches, ...)."""
    return {name: (round(d["cpu_s"] / d[key] * 1e6, 1) if d.get(key) else None)
            for name, d in deltas.items()}

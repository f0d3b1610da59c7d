"""One scenario against one hub: subscribe N, publish k times, measure; and the ping rate."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench import loadclient
from bench.common import callback_path, secret_for
from bench.hubs import Hub

# what a failed bulk POST raises (counted as status -1)
LOAD_ERRORS = (loadclient.ClientError, OSError, TimeoutError)


class Servers:
    """Where the publisher and subscriber servers listen, and the run's secret seed."""

    def __init__(self, publisher_port: int, subscriber_port: int, seed: str, subscriber=None):
        self.subscriber = subscriber  # its Proc, for CPU accounting
        self.pub = f"http://127.0.0.1:{publisher_port}"
        self.sub = f"http://127.0.0.1:{subscriber_port}"
        self.seed = seed


async def _pool(count: int, concurrency: int, fn: Callable[[int], Awaitable[None]],
                deadline: float) -> None:
    """Run fn(0..count-1) with at most ``concurrency`` at once, all before ``deadline``."""
    it = iter(range(count))

    async def worker() -> None:
        for i in it:
            if time.monotonic() > deadline:
                return
            await fn(i)

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))),
                           max(1.0, deadline - time.monotonic()))


async def _wait(progress: Callable[[], Awaitable[tuple[bool, float]]], timeout: float,
                stall: float = 30.0, interval: float = 0.02) -> bool:
    """Poll until done, the timeout, or no progress for ``stall`` seconds."""
    deadline = time.monotonic() + timeout
    last_value, last_change = None, time.monotonic()
    while time.monotonic() < deadline:
        done, value = await progress()
        if done:
            return True
        if value != last_value:
            last_value, last_change = value, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return False
        await asyncio.sleep(interval)
    return False


def _cpu(hub: Hub, servers: Servers) -> dict[str, float]:
    cpu = hub.cpu()
    if servers.subscriber is not None:
        cpu["subscriber-server"] = servers.subscriber.cpu_seconds()
    return cpu


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat (0, 0 elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def busy_pct(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Share of all cores' time spent busy between two machine_jiffies() readings."""
    total = after[1] - before[1]
    return round(100.0 * (after[0] - before[0]) / total, 1) if total > 0 else None


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 3) for k in after}


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def run_size(session: aiohttp.ClientSession, hub: Hub, servers: Servers, topic_id: str,
                   n: int, publishes: int, *, client_concurrency: int, log) -> dict[str, Any]:
    """Subscribe ``n`` callbacks to a fresh topic, then publish ``publishes`` times."""
    result: dict[str, Any] = {"n": n, "loadavg_before": os.getloadavg()[0]}
    async with session.post(f"{servers.pub}/_topic/{topic_id}", params={"hub": hub.hub_url}) as r:
        assert r.status == 204, r.status
    topic = f"{servers.pub}/feed/{topic_id}"

    # -- subscriptions ---------------------------------------------------------------------
    verified_before = hub.verified_count()
    statuses: dict[int, int] = {}
    # the POSTs go through the cheap raw client (bench/loadclient.py), encoded before the clock
    client = loadclient.LoadClient(hub.hub_url, client_concurrency)
    requests = []
    for i in range(n):
        path = callback_path(topic_id, i)
        requests.append(client.form_request(loadclient.form({
            "hub.mode": "subscribe", "hub.topic": topic, "hub.callback": servers.sub + path,
            "hub.secret": secret_for(servers.seed, path)})))

    async def subscribe(i: int) -> None:
        request = requests[i]
        for attempt in range(3):
            try:
                status = await client.send(request)
                statuses[status] = statuses.get(status, 0) + 1
                if status < 500:
                    return
            except LOAD_ERRORS:
                statuses[-1] = statuses.get(-1, 0) + 1
            await asyncio.sleep(0.1 * (attempt + 1))

    timeout = 60 + n / 100
    cpu0 = _cpu(hub, servers)
    started = time.monotonic()
    try:
        await _pool(n, client_concurrency, subscribe, started + timeout)
        posted = time.monotonic() - started
    finally:
        await client.close()
        requests.clear()

    async def sub_progress() -> tuple[bool, float]:
        async with session.get(f"{servers.sub}/_stats/{topic_id}") as resp:
            seen = (await resp.json())["verified"]
        if seen < n:
            return False, seen
        # the subscriber saw them all: now the hub must have recorded them
        hub.check_alive()
        counted = hub.verified_count()
        if counted is not None and counted - verified_before < n:
            return False, seen + counted
        active = await asyncio.to_thread(hub.active_count, topic)
        return active >= n, seen + active

    complete = await _wait(sub_progress, timeout - posted)
    elapsed = time.monotonic() - started
    async with session.get(f"{servers.sub}/_stats/{topic_id}") as resp:
        verified_seen = (await resp.json())["verified"]
    active = await asyncio.to_thread(hub.active_count, topic)
    result["subscribe"] = {
        "statuses": {str(k): v for k, v in statuses.items()},
        "post_seconds": round(posted, 3),
        "seconds": round(elapsed, 3),
        "verified_seen": verified_seen,
        "active": active,
        "complete": complete,
        "per_second": round(n / elapsed, 1) if complete else round(active / elapsed, 1),
        "cpu_seconds": _cpu_delta(cpu0, _cpu(hub, servers)),
    }
    log(f"    {hub.label} n={n}: {active}/{n} subscriptions active in {elapsed:.2f}s "
        f"({result['subscribe']['per_second']:.0f}/s)")

    # -- publishes -------------------------------------------------------------------------
    result["publishes"] = []
    for k in range(publishes):
        async with session.post(f"{servers.pub}/_publish/{topic_id}") as resp:
            seq = (await resp.json())["seq"]
        await asyncio.sleep(0.2)  # quiet the system between publishes
        cpu0 = _cpu(hub, servers)
        machine0 = machine_jiffies()
        t0 = time.time()
        async with session.post(hub.hub_url, data={"hub.mode": "publish",
                                                   hub.ping_param: topic}) as resp:
            ping_status = resp.status
            await resp.read()
        ping_ms = (time.time() - t0) * 1000

        async def delivered(seq: int = seq) -> tuple[bool, float]:
            async with session.get(f"{servers.sub}/_stats/{topic_id}") as resp:
                stats = await resp.json()
            got = stats["seqs"].get(str(seq), {}).get("distinct", 0)
            return got >= n, got

        ok = await _wait(delivered, 60 + n / 50, stall=20, interval=0.01)
        machine_busy = busy_pct(machine0, machine_jiffies())  # all cores, ping to the last one
        if not ok:
            hub.check_alive()
        async with session.get(f"{servers.sub}/_times/{topic_id}/{seq}") as resp:
            times = [t - t0 for t in await resp.json()]
        cpu = _cpu_delta(cpu0, _cpu(hub, servers))
        one: dict[str, Any] = {"seq": seq, "ping_status": ping_status,
                               "ping_ms": round(ping_ms, 2), "complete": ok,
                               "received": len(times), "cpu_seconds": cpu,
                               "machine_busy_pct": machine_busy}
        for role in ("deliverer", "worker"):
            if role in cpu and times:
                one["cpu_us_per_delivery"] = round(cpu[role] / len(times) * 1e6, 1)
        if times:
            span = times[-1] - times[0]
            one.update({
                "first_ms": round(times[0] * 1000, 1),
                "median_ms": round(statistics.median(times) * 1000, 1),
                "p99_ms": round(_pct(times, 0.99) * 1000, 1),
                "last_ms": round(times[-1] * 1000, 1),
                "deliveries_per_s": round(len(times) / span, 1) if span > 0 else None,
                "end_to_end_per_s": round(len(times) / times[-1], 1) if times[-1] > 0 else None,
            })
        result["publishes"].append(one)
        hub.sample_rss()
        log(f"    {hub.label} n={n} publish {k + 1}: {len(times)}/{n} delivered, first "
            f"{one.get('first_ms')} ms, last {one.get('last_ms')} ms, "
            f"{one.get('deliveries_per_s')}/s")

    # -- late arrivals: duplicates, losses, signatures ------------------------------------
    await asyncio.sleep(1.0)
    async with session.get(f"{servers.sub}/_stats/{topic_id}") as resp:
        stats = await resp.json()
    lost = dup = dup_ids = 0
    for one in result["publishes"]:
        rec = stats["seqs"].get(str(one["seq"]), {"count": 0, "distinct": 0, "delivery_ids": 0})
        one["lost"] = n - rec["distinct"]
        one["duplicates"] = rec["count"] - rec["distinct"]
        lost += one["lost"]
        dup += one["duplicates"]
        if rec["delivery_ids"]:
            dup_ids += rec["count"] - rec["delivery_ids"]
    expected = {str(one["seq"]) for one in result["publishes"]}
    stray = sum(r["count"] for s, r in stats["seqs"].items() if s not in expected)
    result["lost"] = lost
    result["duplicates"] = dup
    result["duplicate_delivery_ids"] = dup_ids
    result["other_content_deliveries"] = stray  # e.g. a whole-feed first delivery
    result["bad_signatures"] = stats["bad_signatures"]
    result["unsigned"] = stats["unsigned"]
    result["rss_mb"] = hub.rss()
    result["loadavg_after"] = os.getloadavg()[0]
    async with session.post(f"{servers.sub}/_forget/{topic_id}") as resp:
        await resp.read()
    return result


async def ping_rate(session: aiohttp.ClientSession, hub: Hub, servers: Servers, topic_id: str,
                    m: int, concurrency: int) -> dict[str, Any]:
    """M concurrent pings for one topic (no subscribers): accepted per second."""
    async with session.post(f"{servers.pub}/_topic/{topic_id}", params={"hub": hub.hub_url}) as r:
        assert r.status == 204
    topic = f"{servers.pub}/feed/{topic_id}"
    statuses: dict[int, int] = {}
    client = loadclient.LoadClient(hub.hub_url, concurrency)
    request = client.form_request(loadclient.form({"hub.mode": "publish",
                                                   hub.ping_param: topic}))

    async def ping(i: int) -> None:
        try:
            status = await client.send(request)
            statuses[status] = statuses.get(status, 0) + 1
        except LOAD_ERRORS:
            statuses[-1] = statuses.get(-1, 0) + 1

    started = time.monotonic()
    try:
        await _pool(m, concurrency, ping, started + 120)
        elapsed = time.monotonic() - started
    finally:
        await client.close()
    accepted = sum(v for k, v in statuses.items() if 200 <= k < 300)
    return {"m": m, "seconds": round(elapsed, 3), "statuses": {str(k): v for k, v in
            statuses.items()}, "accepted": accepted, "per_second": round(accepted / elapsed, 1)}

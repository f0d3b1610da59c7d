"""The PyPI bridge's two scenarios against one running hub (with its poller) and fake index.

- firehose: ``mirrors`` callbacks subscribe to ``<hub>pypi/changes``; ``releases`` releases are
  made one after another at random gaps; each (release, mirror) pair is timed from the fake
  index's ``at`` (its clock right after the journal got the release) to the arrival of the
  notification whose entries hold the release's last serial.
- projects: 2 callbacks subscribe to each of ``projects`` project topics
  ``<hub>pypi/project/bp-<i>``; one ``backlog`` control call changes every project at once;
  each mirror is timed from that call's ``at`` to the arrival of the notification that holds
  its project's newest serial.

Both measure on the subscriber server's clock (``bench/subscriber.py`` logs every JSON delivery
with the first and last serial of its entries); :mod:`bench.bridge_report` does the arithmetic.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
import urllib.request
import xmlrpc.client
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench import loadclient
from bench.bridge_report import coverage, poller_rounds, published
from bench.common import callback_path, secret_for
from bench.hubs import BrokerHub
from bench.scenario import LOAD_ERRORS, busy_pct, machine_jiffies

PROJECT_PREFIX = "bp"


@dataclass
class Rig:
    """What one scenario runs against."""

    hub: BrokerHub
    index_url: str  # the fake index, http://127.0.0.1:<port>
    subscriber_url: str  # the subscriber server
    seed: str
    session: aiohttp.ClientSession
    log: Any = print
    client_concurrency: int = 64

    def control(self, op: str, **fields: Any) -> dict[str, Any]:
        """A fake index control call (blocking; run it in a thread)."""
        import json

        request = urllib.request.Request(
            f"{self.index_url}/_control/{op}", data=json.dumps(fields).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:  # loopback only
            return json.loads(answer.read())

    async def stats(self, label: str) -> dict[str, Any]:
        async with self.session.get(f"{self.subscriber_url}/_stats/{label}") as resp:
            return await resp.json()

    async def delivery_log(self, label: str) -> list[list]:
        async with self.session.get(f"{self.subscriber_url}/_log/{label}") as resp:
            return await resp.json()

    async def forget(self, label: str) -> None:
        async with self.session.post(f"{self.subscriber_url}/_forget/{label}") as resp:
            await resp.read()


def metric(port: int, name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels on a worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def wait_poller_started(hub: BrokerHub, timeout: float = 60.0) -> None:
    """Until the poller has read the index's newest serial (changes after it are published)."""
    port = hub.role_ports["poller"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hub.check_alive()
        with contextlib.suppress(OSError, ValueError):
            if await asyncio.to_thread(metric, port, "broker_hub_polls_total", outcome="started"):
                return
        await asyncio.sleep(0.2)
    raise TimeoutError("the poller did not start watching the journal")


def active_subscriptions(hub: BrokerHub, prefix: str) -> int:
    """Active subscriptions whose topic starts with ``prefix``, read from the hub's database."""
    sql = "SELECT COUNT(*) FROM subscriptions WHERE topic LIKE {p} AND expires_at > {p}"
    args = (prefix + "%", time.time())
    if hub.db == "postgres":
        import psycopg

        with psycopg.connect(hub.db_url, connect_timeout=5) as conn:
            return conn.execute(sql.format(p="%s"), args).fetchone()[0]
    path = hub.db_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
        return conn.execute(sql.format(p="?"), args).fetchone()[0]


async def subscribe(rig: Rig, label: str, pairs: list[tuple[str, int]], topic_prefix: str,
                    ) -> dict[str, Any]:
    """Subscribe callback ``/cb/<label>/<i>`` to each (topic, i); wait until all are verified
    by the subscriber server and active in the hub's database."""
    n = len(pairs)
    client = loadclient.LoadClient(rig.hub.hub_url, rig.client_concurrency)
    sub = rig.subscriber_url
    requests = []
    for topic, i in pairs:
        path = callback_path(label, i)
        requests.append(client.form_request(loadclient.form({
            "hub.mode": "subscribe", "hub.topic": topic, "hub.callback": sub + path,
            "hub.secret": secret_for(rig.seed, path)})))
    statuses: dict[int, int] = {}
    todo = iter(requests)

    async def worker() -> None:
        for request in todo:
            for attempt in range(3):
                try:
                    status = await client.send(request)
                    statuses[status] = statuses.get(status, 0) + 1
                    if status < 500:
                        break
                except LOAD_ERRORS:
                    statuses[-1] = statuses.get(-1, 0) + 1
                await asyncio.sleep(0.1 * (attempt + 1))

    started = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(rig.client_concurrency))),
                               120 + n / 50)
    finally:
        await client.close()
    posted = time.monotonic() - started
    deadline, last, last_change = started + 180 + n / 20, -1, time.monotonic()
    verified = active = 0
    while time.monotonic() < deadline and time.monotonic() - last_change < 60:
        rig.hub.check_alive()
        verified = (await rig.stats(label))["verified"]
        if verified >= n:
            active = await asyncio.to_thread(active_subscriptions, rig.hub, topic_prefix)
            if active >= n:
                break
        if verified + active != last:
            last, last_change = verified + active, time.monotonic()
        await asyncio.sleep(0.25)
    elapsed = time.monotonic() - started
    rig.log(f"    {active}/{n} subscriptions active in {elapsed:.1f}s "
            f"(statuses {statuses})")
    if active < n:
        raise RuntimeError(f"only {active}/{n} subscriptions became active")
    return {"n": n, "statuses": {str(k): v for k, v in statuses.items()},
            "post_seconds": round(posted, 2), "seconds": round(elapsed, 2),
            "per_second": round(n / elapsed, 1)}


async def wait_delivered(rig: Rig, label: str, callbacks: int, expected_sum: int,
                         timeout: float, stall: float = 30.0) -> bool:
    """Until every callback's highest serial adds up to ``expected_sum`` (or no progress)."""
    deadline, last, last_change = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        got = (await rig.stats(label))["json"]
        if got["callbacks"] >= callbacks and got["sum_max"] >= expected_sum:
            return True
        if got != last:
            last, last_change = got, time.monotonic()
        elif time.monotonic() - last_change > stall:
            rig.hub.check_alive()
            return False
        await asyncio.sleep(0.05)
    return False


async def _finish(rig: Rig, label: str, targets: dict[str, list[tuple[int, float]]],
                  result: dict[str, Any], cpu0: dict[str, float], machine0,
                  changes: list[tuple[int, float]]) -> dict[str, Any]:
    result["machine_busy_pct"] = busy_pct(machine0, machine_jiffies())
    cpu = rig.hub.cpu()
    result["cpu_seconds"] = {k: round(cpu[k] - cpu0.get(k, 0.0), 2) for k in cpu}
    await asyncio.sleep(1.0)  # late duplicates
    stats = await rig.stats(label)
    result.update(coverage(await rig.delivery_log(label), targets))
    result["bad_signatures"] = stats["bad_signatures"]
    result["unsigned"] = stats["unsigned"]
    result["rss_mb"] = rig.hub.rss()
    poller_log = rig.hub.procs["poller"][0].log_path.read_text(errors="replace")
    result.update(published(poller_rounds(poller_log), changes))
    await rig.forget(label)
    return result


async def firehose(rig: Rig, label: str, mirrors: int, releases: int,
                   gap: tuple[float, float]) -> dict[str, Any]:
    """Scenario A: ``mirrors`` on the firehose, ``releases`` releases at random gaps."""
    topic = rig.hub.hub_url + "pypi/changes"
    result: dict[str, Any] = {"mirrors": mirrors, "releases": releases}
    result["subscribe"] = await subscribe(rig, label, [(topic, i) for i in range(mirrors)],
                                          topic)
    await asyncio.sleep(1.0)
    cpu0, machine0 = rig.hub.cpu(), machine_jiffies()
    made: list[tuple[int, float]] = []
    rng = random.Random()
    for k in range(releases):
        await asyncio.sleep(rng.uniform(*gap))
        answer = await asyncio.to_thread(rig.control, "release", name=f"Mirror_Bench.{k}",
                                         version="1.0")
        made.append((max(answer["serials"]), answer["at"]))
    last_serial = made[-1][0]
    complete = await wait_delivered(rig, label, mirrors, mirrors * last_serial,
                                    timeout=120 + mirrors / 20)
    result["complete"] = complete
    result["serials"] = made
    paths = [callback_path(label, i) for i in range(mirrors)]
    targets = {p: made for p in paths}
    result = await _finish(rig, label, targets, result, cpu0, machine0, made)
    rig.log(f"    firehose: {result['pairs']} (release, mirror) pairs, median "
            f"{result['median_ms']} ms, p99 {result['p99_ms']} ms, lost {result['lost']}, "
            f"duplicates {result['duplicates']}")
    return result


async def projects(rig: Rig, label: str, count: int, per_project: int = 2) -> dict[str, Any]:
    """Scenario B: ``per_project`` mirrors on each of ``count`` project topics, all changed
    by one backlog call."""
    base = rig.hub.hub_url + "pypi/project/"
    result: dict[str, Any] = {"projects": count, "mirrors_per_project": per_project}
    pairs = [(f"{base}{PROJECT_PREFIX}-{p}", p * per_project + m)
             for p in range(count) for m in range(per_project)]
    result["subscribe"] = await subscribe(rig, label, pairs, base + PROJECT_PREFIX + "-")
    await asyncio.sleep(1.0)
    cpu0, machine0 = rig.hub.cpu(), machine_jiffies()
    answer = await asyncio.to_thread(rig.control, "backlog", count=3 * count, projects=count,
                                     prefix=PROJECT_PREFIX)
    at = answer["at"]
    result["written"] = answer.get("written")
    rpc = xmlrpc.client.ServerProxy(f"{rig.index_url}/pypi")
    newest: dict[str, int] = await asyncio.to_thread(rpc.list_packages_with_serial)
    serial_of = [newest[f"{PROJECT_PREFIX}-{p}"] for p in range(count)]
    complete = await wait_delivered(rig, label, len(pairs), per_project * sum(serial_of),
                                    timeout=120 + count / 20)
    result["complete"] = complete
    targets = {callback_path(label, i): [(serial_of[i // per_project], at)]
               for _, i in pairs}
    changes = [(serial, at) for serial in serial_of]
    result = await _finish(rig, label, targets, result, cpu0, machine0, changes)
    rig.log(f"    projects: {result['pairs']} mirrors, median {result['median_ms']} ms, "
            f"p99 {result['p99_ms']} ms, last {result['last_ms']} ms, lost {result['lost']}, "
            f"duplicates {result['duplicates']}")
    return result

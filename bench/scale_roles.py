"""The per-role scaling scenarios: 1 / 2 / 4 capped deliverers and fetchers (web: scale_web.py)."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from bench.scale_common import (
    Busy,
    Env,
    bulk_post,
    cpu_per,
    get_json,
    ping_bodies,
    post,
    subscribe_all,
    wait_until,
)
from bench.scalehub import ScaleHub, deltas, median_cap_used
from bench.sharedcost import Tap, per, pg_counters

VERSION_STEP = 10_000_000  # the publisher's entry id: version * VERSION_STEP + topic index


async def _ping(env: Env, hub: ScaleHub, topic: str) -> int:
    async with env.session.post(hub.hub_url, data={"hub.mode": "publish",
                                                   "hub.url": topic}) as resp:
        await resp.read()
        return resp.status


async def _fetches(env: Env) -> int:
    return (await get_json(env, f"{env.servers.pub}/_stats"))["fetches"]


async def _publish_and_ping(env: Env, hub: ScaleHub, tid: str, topic: str,
                            wait_fetch: bool) -> int:
    """Add an entry, ping; with ``wait_fetch`` return only once the hub has fetched it, so
    that the next publish is a notification of its own."""
    async with env.session.post(f"{env.servers.pub}/_publish/{tid}") as resp:
        seq = (await resp.json())["seq"]
    before = await _fetches(env)
    await _ping(env, hub, topic)
    if wait_fetch:
        async def fetched() -> tuple[bool, Any]:
            count = await _fetches(env)
            return count > before, count
        await wait_until(fetched, 30, interval=0.005)
        await asyncio.sleep(0.05)  # the notification is stored and its batches sent
    return seq


async def _delivered(env: Env, bucket: str, min_seq: int, expected: int, timeout: float
                     ) -> dict[str, Any]:
    async def check() -> tuple[bool, Any]:
        total = await get_json(env, f"{env.servers.sub}/_total/{bucket}?min={min_seq}")
        return total["distinct"] >= expected, total["distinct"]

    complete = await wait_until(check, timeout, stall=30, interval=0.05)
    total = await get_json(env, f"{env.servers.sub}/_total/{bucket}?min={min_seq}")
    total["complete"] = complete
    return total


PG_FLUSH_WAIT = 11.0  # PostgreSQL 15 backends flush their statistics within ~10 s when idle


def _pg_start(env: Env, hub: ScaleHub, measure: bool) -> dict[str, int]:
    """pg_stat_database before a step, once what came before has been flushed."""
    if not measure or hub.db != "postgres":
        return {}
    time.sleep(PG_FLUSH_WAIT)
    return pg_counters(hub.db_url, hub._pg_db)


def _shared_cost(env: Env, hub: ScaleHub, tap: Tap | None, pg0: dict, deliveries: int
                 ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["broker_interruptions"] = hub.log_count("broker connection lost")
    out["database_deadlocks"] = hub.log_count("DeadlockDetected")
    if tap is not None:
        try:
            counted = tap.drain()
        except Exception as exc:  # noqa: BLE001 - e.g. the broker was restarted meanwhile
            out["rabbitmq"] = {"error": repr(exc)}
            counted = None
        if counted is not None:
            out["rabbitmq"] = counted
            keys = [v for k, v in counted.items() if k != "deliver_example"]
            msgs = sum(v["messages"] for v in keys)
            body = sum(v["bytes"] for v in keys)
            out["rabbitmq_per_delivery"] = {"messages": round(msgs / deliveries, 5),
                                            "body_bytes": round(body / deliveries, 3)}
    if pg0:
        time.sleep(PG_FLUSH_WAIT)
        pg1 = pg_counters(hub.db_url, hub._pg_db)
        out["postgres_per_delivery"] = per({k: pg1[k] - pg0[k] for k in pg1}, deliveries)
    return out


async def deliverers(env: Env) -> dict[str, Any]:
    """N subscribers on one topic; P publishes in quick succession, delivered by k capped
    deliverers (the fetcher and the web front uncapped)."""
    args, log = env.args, env.log
    n, publishes = args.subscribers, args.publishes
    hub = env.hub("sd", tunables={"HUB_DELIVERY_BATCH_SIZE": str(args.batch_size)}
                  if args.batch_size else {})
    out: dict[str, Any] = {"n": n, "publishes": publishes, "runs": {}}
    try:
        hub.start()
        hub.add("fetcher")
        hub.scale("deliverer", max(args.counts))
        tid, pub = f"{hub.name}-d", env.servers.pub
        bucket = tid
        await post(env, f"{pub}/_topic/{tid}", hub=hub.hub_url)
        topic = f"{pub}/feed/{tid}"
        out["subscribe"] = await subscribe_all(env, hub, bucket, [topic], n)
        log(f"  deliverers: {n} subscribed in {out['subscribe']['seconds']}s")
        for k in args.counts:
            hub.scale("deliverer", k)
            hub.cap("deliverer", env.cpus)
            warm = await _publish_and_ping(env, hub, tid, topic, wait_fetch=True)
            await _delivered(env, bucket, warm, n, 60 + n / 100)
            await asyncio.sleep(0.5)
            tap = Tap(env.ctx.rabbit_url, hub.namespace)
            pg0 = await asyncio.to_thread(_pg_start, env, hub, k == args.counts[-1])
            before = await get_json(env, f"{env.servers.sub}/_total/{bucket}")
            snap0, busy, t0 = hub.snapshot("deliverer"), Busy(), time.time()
            seqs = [await _publish_and_ping(env, hub, tid, topic, wait_fetch=j < publishes - 1)
                    for j in range(publishes)]
            total = await _delivered(env, bucket, seqs[0], n * publishes,
                                     60 + n * publishes / 200)
            machine = busy.pct()
            busy_snap = hub.snapshot("deliverer")
            await asyncio.sleep(1.0)  # late duplicates arrive, the counters catch up
            procs = deltas(snap0, hub.snapshot("deliverer"), env.cpus)
            for name, fig in deltas(snap0, busy_snap, env.cpus).items():  # busy part only
                if "cap_used_pct" in fig:
                    procs[name]["cap_used_pct"] = fig["cap_used_pct"]
            late = await get_json(env, f"{env.servers.sub}/_total/{bucket}?min={seqs[0]}")
            expected = n * publishes
            span = (total["last"] or 0) - (total["first"] or 0)
            run = {
                "deliverers": k, "cpus_each": env.cpus, "complete": total["complete"],
                "deliveries": late["distinct"], "lost": expected - late["distinct"],
                "duplicates": late["count"] - late["distinct"],
                "out_of_order": late["out_of_order"] - before["out_of_order"],
                "first_ms": round(((total["first"] or t0) - t0) * 1000, 1),
                "last_ms": round(((total["last"] or t0) - t0) * 1000, 1),
                "deliveries_per_s": round(expected / span, 1) if span > 0 else None,
                "end_to_end_per_s": round(expected / ((total["last"] or t0) - t0), 1)
                if total["last"] else None,
                "machine_busy_pct": machine, "processes": procs,
                "cap_used_pct": median_cap_used(procs),
                "cpu_us_per_delivery": cpu_per(procs, "deliveries"),
                "cpu_us_per_delivery_all": round(
                    sum(p["cpu_s"] for p in procs.values()) / expected * 1e6, 1),
            }
            run.update(await asyncio.to_thread(_shared_cost, env, hub, tap, pg0, expected))
            tap.close()
            out["runs"][str(k)] = run
            log(f"  deliverers={k}: {run['deliveries']}/{expected} delivered, "
                f"{run['deliveries_per_s']}/s, lost {run['lost']}, dup {run['duplicates']}, "
                f"out of order {run['out_of_order']}, {run['cpu_us_per_delivery_all']} us/delivery"
                f", cap used {run['cap_used_pct']}%, machine {machine}% busy"
                + (f"; {run['database_deadlocks']} database deadlock(s), "
                   f"{run['broker_interruptions']} reconnect(s) in the hub's logs"
                   if run["database_deadlocks"] or run["broker_interruptions"] else ""))
    finally:
        out["rss_mb"] = hub.rss_by_process()
        hub.stop()
        hub.cleanup()
    return out


async def fetchers(env: Env) -> dict[str, Any]:
    """T topics, 2 subscribers each; every topic changes and is pinged once in a burst while
    the k capped fetchers are paused (SIGSTOP); the clock runs from their SIGCONT to the last
    delivery (web and 2 deliverers uncapped)."""
    args, log, pub = env.args, env.log, env.servers.pub
    t = args.topics
    hub = env.hub("sf")
    out: dict[str, Any] = {"topics": t, "subscribers_per_topic": 2, "runs": {}}
    try:
        hub.start()
        hub.scale("fetcher", max(args.counts))  # uncapped for the set-up; scaled down after
        hub.scale("deliverer", args.fetch_deliverers)
        await post(env, f"{pub}/_many", hub=hub.hub_url, n=t)
        topics = [f"{pub}/t/{i}.xml" for i in range(t)]
        pings = ping_bodies(topics)
        bucket = f"{hub.name}-f"
        out["subscribe"] = await subscribe_all(env, hub, bucket, topics, 2)
        # the first fetch of each topic (nothing to compare with: the whole feed is delivered)
        await bulk_post(hub.hub_url, pings, args.client_concurrency, 120 + t / 50)
        await _delivered(env, bucket, 0, 2 * t, 120 + t / 20)
        log(f"  fetchers: {2 * t} subscribed to {t} topics in {out['subscribe']['seconds']}s, "
            "each topic fetched once")
        for version, k in enumerate(args.counts, start=1):
            hub.scale("fetcher", k)
            hub.cap("fetcher", env.cpus)
            pg0 = await asyncio.to_thread(_pg_start, env, hub, k == args.counts[-1])
            await post(env, f"{pub}/_bump", start=0, stop=t)
            tap = Tap(env.ctx.rabbit_url, hub.namespace)  # the fetch messages count too
            snap0 = hub.snapshot("fetcher")  # (a paused process cannot answer /metrics)
            hub.signal_role("fetcher", signal.SIGSTOP)
            try:
                statuses, ping_s = await bulk_post(hub.hub_url, pings, args.client_concurrency,
                                                   120 + t / 50)
            finally:
                busy, t0, resumed = Busy(), time.time(), time.monotonic()
                hub.signal_role("fetcher", signal.SIGCONT)
                for fig in snap0.values():  # the cap's share is counted from the resume
                    fig["wall_s"] = resumed
            log(f"  fetchers={k}: {t} pings in {ping_s:.1f}s, fetchers resumed")
            total = await _delivered(env, bucket, version * VERSION_STEP, 2 * t, 120 + t / 10)
            machine = busy.pct()
            busy_snap = hub.snapshot("fetcher")
            await asyncio.sleep(1.0)
            procs = deltas(snap0, hub.snapshot("fetcher"), env.cpus)
            for name, fig in deltas(snap0, busy_snap, env.cpus).items():
                if "cap_used_pct" in fig:
                    procs[name]["cap_used_pct"] = fig["cap_used_pct"]
            late = await get_json(
                env, f"{env.servers.sub}/_total/{bucket}?min={version * VERSION_STEP}")
            fetched = await get_json(env, f"{pub}/_many_stats")
            seconds = (total["last"] or t0) - t0
            run = {
                "fetchers": k, "cpus_each": env.cpus, "complete": total["complete"],
                "ping_statuses": {str(s): c for s, c in statuses.items()},
                "pings_per_s_uncapped_web": round(t / ping_s, 1),
                "seconds_to_last_delivery": round(seconds, 3),
                "fetches_per_s": round(t / seconds, 1) if seconds > 0 else None,
                # the fetchers' own pace: to the last GET the publisher answered
                "seconds_to_last_fetch": round(fetched["last_get"] - t0, 3),
                "fetches_per_s_to_last_fetch": round(t / (fetched["last_get"] - t0), 1)
                if fetched["last_get"] > t0 else None,
                "deliveries": late["distinct"], "lost": 2 * t - late["distinct"],
                "duplicates": late["count"] - late["distinct"],
                "double_fetches": fetched["double_fetches"], "extra_gets": fetched["extra_gets"],
                "machine_busy_pct": machine, "processes": procs,
                "cap_used_pct": median_cap_used(procs),
                "cpu_us_per_fetch": cpu_per(procs, "fetches"),
                "cpu_us_per_fetch_all": round(sum(p["cpu_s"] for p in procs.values()) / t * 1e6),
            }
            run.update(await asyncio.to_thread(_shared_cost, env, hub, tap, pg0, 2 * t))
            tap.close()
            out["runs"][str(k)] = run
            log(f"  fetchers={k}: last fetch {run['seconds_to_last_fetch']}s, last delivery "
                f"{seconds:.2f}s after resume, "
                f"{run['fetches_per_s']} fetches/s, lost {run['lost']}, dup {run['duplicates']}, "
                f"double fetches {run['double_fetches']}, {run['cpu_us_per_fetch_all']} us/fetch"
                f", cap used {run['cap_used_pct']}%, machine {machine}% busy"
                + (f"; {run['database_deadlocks']} database deadlock(s), "
                   f"{run['broker_interruptions']} reconnect(s) in the hub's logs"
                   if run["database_deadlocks"] or run["broker_interruptions"] else ""))
    finally:
        out["rss_mb"] = hub.rss_by_process()
        hub.stop()
        hub.cleanup()
    return out

"""Scale scenarios beyond one role: every role several times with restarts (``chaos``), and
1,000,000 subscribers on one topic (``million``)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import sqlite3
import time
from typing import Any

from bench.common import callback_path, secret_for
from bench.scale_common import (
    Busy,
    Env,
    bulk_post,
    get_json,
    ping_bodies,
    post,
    sql_value,
    subscribe_all,
)
from bench.scale_roles import VERSION_STEP, _delivered, _publish_and_ping
from bench.scalehub import ScaleHub, deltas
from bench.sharedcost import pg_sizes


async def _churn(env: Env, hub: ScaleHub, interval: float, events: list[dict]) -> None:
    """Every ``interval`` s: SIGTERM the oldest fetcher or deliverer (in turn), start a new one."""
    for role in itertools.cycle(("deliverer", "fetcher")):
        await asyncio.sleep(interval)
        if not hub.members[role]:
            continue
        victim = hub.members[role][0]
        took = await asyncio.to_thread(hub.stop_member, victim)
        await asyncio.to_thread(hub.add, role)
        events.append({"at": round(time.time(), 2), "stopped": victim.name,
                       "exit_seconds": round(took, 2), "role": role})
        env.log(f"    churn: {victim.name} stopped (SIGTERM, {took:.1f}s), a new {role} started")


async def chaos(env: Env) -> dict[str, Any]:
    """3 fetchers, 3 deliverers, 2 web workers on PostgreSQL; T topics x 2 subscribers
    subscribed, then R rounds of one change + one ping per topic, while a fetcher or a
    deliverer is stopped (SIGTERM) and a new one started every few seconds."""
    args, log, pub = env.args, env.log, env.servers.pub
    t, rounds = args.chaos_topics, args.chaos_rounds
    hub = env.hub("sc", web_workers=2)
    hub.db = "postgres"  # several writers at once: the deployment this models
    out: dict[str, Any] = {"topics": t, "rounds": rounds, "events": [], "rounds_detail": []}
    churn = None
    try:
        hub.start()
        hub.scale("fetcher", 3)
        hub.scale("deliverer", 3)
        await post(env, f"{pub}/_many", hub=hub.hub_url, n=t)
        topics = [f"{pub}/t/{i}.xml" for i in range(t)]
        pings = ping_bodies(topics)
        churn = asyncio.create_task(_churn(env, hub, args.churn_interval, out["events"]))
        bucket = f"{hub.name}-c"
        out["subscribe"] = await subscribe_all(env, hub, bucket, topics, 2)
        # the first fetch of each topic (the whole feed goes out)
        await bulk_post(hub.hub_url, pings, args.client_concurrency, 120 + t / 50)
        await _delivered(env, bucket, 0, 2 * t, 180 + t / 10)
        for r in range(1, rounds + 1):
            await post(env, f"{pub}/_bump", start=0, stop=t)
            started = time.time()
            statuses, _ = await bulk_post(hub.hub_url, pings, args.client_concurrency, 300)
            total = await _delivered(env, bucket, r * VERSION_STEP, 2 * t, 180 + t / 10)
            out["rounds_detail"].append({
                "round": r, "ping_statuses": {str(k): v for k, v in statuses.items()},
                "complete": total["complete"], "delivered": total["distinct"],
                "seconds": round((total["last"] or started) - started, 2)})
            log(f"  chaos round {r}: {total['distinct']}/{2 * t} delivered")
        churn.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await churn
        churn = None
        await asyncio.sleep(3.0)  # late duplicates, if any, arrive
        late = await get_json(env, f"{env.servers.sub}/_total/{bucket}?min={VERSION_STEP}")
        fetched = await get_json(env, f"{pub}/_many_stats")
        notifications = sql_value(hub, "SELECT count(*) FROM notifications")
        twice = sql_value(hub, "SELECT count(*) FROM (SELECT topic FROM notifications GROUP BY "
                               f"topic HAVING count(*) > {rounds + 1}) AS x")
        out.update({
            "expected_deliveries": 2 * t * rounds, "delivered": late["distinct"],
            "lost": 2 * t * rounds - late["distinct"],
            "duplicate_deliveries": late["count"] - late["distinct"],
            "out_of_order": late["out_of_order"],
            "subscriptions_verified_twice": late["verify_requests"] - late["verified"],
            "double_fetches": fetched["double_fetches"], "extra_gets": fetched["extra_gets"],
            "notifications": notifications, "expected_notifications": t * (rounds + 1),
            "topics_notified_more_than_once_per_change": twice,
            "restarts": len(out["events"]),
            "database_deadlocks": hub.log_count("DeadlockDetected"),
            "broker_interruptions": hub.log_count("broker connection lost"),
        })
        log(f"  chaos: {out['restarts']} restarts; lost {out['lost']}, duplicate deliveries "
            f"{out['duplicate_deliveries']}, verified twice "
            f"{out['subscriptions_verified_twice']}, double fetches {out['double_fetches']} "
            f"(extra GETs {out['extra_gets']}), notifications {notifications}/"
            f"{out['expected_notifications']}")
    finally:
        if churn is not None:
            churn.cancel()
        out["rss_mb"] = hub.rss_by_process()
        hub.stop()
        hub.cleanup()
    return out


def _seed(env: Env, hub: ScaleHub, topic: str, bucket: str, start: int, stop: int) -> float:
    """Insert subscriptions start..stop-1 straight into the database (what a verified
    subscribe stores); the seconds it took."""
    began = time.monotonic()
    now = time.time()
    host = env.servers.sub.removeprefix("http://")
    lease = 864000
    rows = ((topic, env.servers.sub + callback_path(bucket, i), host,
             secret_for(env.servers.seed, callback_path(bucket, i)), lease, now + lease, now, 0)
            for i in range(start, stop))
    columns = ("topic, callback, callback_host, secret, lease_seconds, expires_at, created_at, "
               "delivered_upto")
    if hub.db == "postgres":
        import psycopg

        with psycopg.connect(hub.db_url, connect_timeout=5) as conn:
            with conn.cursor().copy(f"COPY subscriptions ({columns}) FROM STDIN") as copy:
                buf = io.StringIO()
                for k, row in enumerate(rows):
                    buf.write("\t".join(map(str, row)) + "\n")
                    if k % 50_000 == 49_999:
                        copy.write(buf.getvalue())
                        buf = io.StringIO()
                copy.write(buf.getvalue())
            conn.execute("ANALYZE subscriptions")
    else:
        with contextlib.closing(sqlite3.connect(hub.db_url.removeprefix("sqlite:///"))) as conn:
            conn.executemany(f"INSERT INTO subscriptions ({columns}) VALUES (?,?,?,?,?,?,?,?)",
                             rows)
            conn.commit()
    return time.monotonic() - began


async def million(env: Env) -> dict[str, Any]:
    """One topic, 10,000 then 1,000,000 subscribers (seeded into the database, or subscribed
    through the hub with --million-via-hub), publishes one at a time."""
    args, log, pub = env.args, env.log, env.servers.pub
    sizes = [args.million_small, args.million_size]
    hub = env.hub("sm")
    out: dict[str, Any] = {"sizes": {}, "seeded": not args.million_via_hub}
    try:
        hub.start()
        hub.add("fetcher")
        hub.scale("deliverer", args.million_deliverers)
        hub.cap("deliverer", env.cpus if args.million_capped else None)
        tid = f"{hub.name}-m"
        bucket = tid
        await post(env, f"{pub}/_topic/{tid}", hub=hub.hub_url)
        topic = f"{pub}/feed/{tid}"
        have = 0
        for n in sizes:
            if args.million_via_hub:
                sub = await subscribe_all(env, hub, bucket, [topic], n - have, offset=have)
                log(f"  million: {n - have} subscribed through the hub in {sub['seconds']}s")
            else:
                seconds = await asyncio.to_thread(_seed, env, hub, topic, bucket, have, n)
                log(f"  million: seeded {n - have} subscriptions in {seconds:.1f}s")
            if not have:  # the topic's first fetch: the whole feed, not measured
                seq = await _publish_and_ping(env, hub, tid, topic, wait_fetch=False)
                await _delivered(env, bucket, seq, n, 120 + n / 1000)
            have = n
            runs = []
            for _ in range(args.million_publishes):
                snap0, busy, t0 = hub.snapshot("deliverer"), Busy(), time.time()
                seq = await _publish_and_ping(env, hub, tid, topic, wait_fetch=False)
                total = await _delivered(env, bucket, seq, n, 120 + n / 1000)
                procs = deltas(snap0, hub.snapshot("deliverer"))
                span = (total["last"] or t0) - (total["first"] or t0)
                cpu = sum(p["cpu_s"] for p in procs.values())
                runs.append({"delivered": total["distinct"], "lost": n - total["distinct"],
                             "duplicates": total["count"] - total["distinct"],
                             "last_s": round((total["last"] or t0) - t0, 2),
                             "deliveries_per_s": round(n / span, 1) if span > 0 else None,
                             "cpu_us_per_delivery": round(cpu / max(1, n) * 1e6, 1),
                             "machine_busy_pct": busy.pct(), "processes": procs})
                log(f"  million n={n}: {total['distinct']}/{n} in {runs[-1]['last_s']}s, "
                    f"{runs[-1]['deliveries_per_s']}/s, {runs[-1]['cpu_us_per_delivery']} us each")
            size: dict[str, Any] = {"publishes": runs, "rss_mb": hub.rss_by_process(),
                                    "subscriber_server_rss_mb": _rss_mb(env)}
            if hub.db == "postgres":
                size["storage"] = pg_sizes(hub.db_url)
            else:
                path = hub.db_url.removeprefix("sqlite:///")
                size["storage"] = {"database_bytes": os.path.getsize(path),
                                   "bytes_per_subscription": round(os.path.getsize(path) / n, 1)}
            out["sizes"][str(n)] = size
    finally:
        hub.stop()
        hub.cleanup()
    return out


def _rss_mb(env: Env) -> float:
    proc = env.servers.subscriber
    return round(proc.peak_rss_mb()["total_mb"], 1) if proc is not None else 0.0

"""The web front's scaling scenario: 1 / 2 / 4 Granian workers, each in its own capped group."""

from __future__ import annotations

from typing import Any

from bench.scale_common import Busy, Env, bulk_post, ping_bodies, post, subscribe_all
from bench.scalehub import deltas, median_cap_used


async def web(env: Env) -> dict[str, Any]:
    """1 / 2 / 4 Granian workers of one ``broker-hub web``, each worker in its own capped
    group: verified subscriptions/s (one per topic, 1 uncapped deliverer verifies), then
    pings/s, one per subscribed topic (no fetcher runs, so each ping queues a fetch)."""
    args, log, pub = env.args, env.log, env.servers.pub
    out: dict[str, Any] = {"pings": args.pings, "subscribes": args.web_subscribes, "runs": {}}
    for w in args.web_counts:
        hub = env.hub(f"sw{w}", web_workers=w)
        try:
            hub.start()
            hub.add("deliverer")
            hub.cap("web", env.cpus)
            count = max(args.pings, args.web_subscribes)
            await post(env, f"{pub}/_many", hub=hub.hub_url, n=count)
            topics = [f"{pub}/t/{i}.xml" for i in range(count)]
            snap0 = hub.snapshot("web")
            sub = await subscribe_all(env, hub, f"{hub.name}-s", topics[:args.web_subscribes], 1)
            sub_procs = deltas(snap0, hub.snapshot("web"), env.cpus)
            # one ping per subscribed topic (no fetcher runs: each queues a fetch message)
            bodies = ping_bodies([topics[i % args.web_subscribes] for i in range(args.pings)])
            snap0, busy = hub.snapshot("web"), Busy()
            statuses, secs = await bulk_post(hub.hub_url, bodies, args.client_concurrency, 300)
            ping_procs = deltas(snap0, hub.snapshot("web"), env.cpus)
            ping_busy = busy.pct()
            accepted = sum(c for s, c in statuses.items() if 200 <= s < 300)
            run = {
                "workers": w, "cpus_each": env.cpus,
                "ping_statuses": {str(s): c for s, c in statuses.items()},
                "pings_per_s": round(accepted / secs, 1), "ping_machine_busy_pct": ping_busy,
                "ping_processes": ping_procs, "ping_cap_used_pct": median_cap_used(ping_procs),
                "subscribe_cap_used_pct": median_cap_used(sub_procs),
                "cpu_us_per_ping": round(sum(p["cpu_s"] for p in ping_procs.values())
                                         / max(1, accepted) * 1e6, 1),
                "subscribe": sub, "subscribe_processes": sub_procs,
                "subscribes_accepted_per_s": round(sub["n"] / sub["post_seconds"], 1),
                "verified_per_s": sub["per_second"],
                "duplicate_verifications": sub["verify_requests"] - sub["verified"],
            }
            out["runs"][str(w)] = run
            log(f"  web workers={w}: {run['pings_per_s']} pings/s, "
                f"{run['subscribes_accepted_per_s']} subscribes accepted/s, "
                f"{run['verified_per_s']} verified/s, {run['cpu_us_per_ping']} us/ping, cap used "
                f"{run['ping_cap_used_pct']}% / {run['subscribe_cap_used_pct']}%")
        finally:
            out.setdefault("rss_mb", {}).update(hub.rss_by_process())
            hub.stop()
            hub.cleanup()
    return out

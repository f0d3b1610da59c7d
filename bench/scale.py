"""``python -m bench.scale`` (or ``python -m bench --scale``): does broker-hub scale out?

Each hub process runs in its own cgroup v1 ``cpu`` group capped at ``--cpus`` of one core
(0.25 by default), so that 1, 2 and 4 processes of a role never have the two cores as their
limit; RabbitMQ, PostgreSQL and the load tools (publisher, subscriber server, this
orchestrator) are not capped. Scenarios (``--only``, comma-separated; all by default):

- ``deliverers``: N subscribers (10,000) on one topic, P publishes in quick succession, with
  1 / 2 / 4 capped deliverers: deliveries/s, lost, duplicated, out of order per callback;
  RabbitMQ messages and bytes and PostgreSQL work per delivery.
- ``fetchers``: T topics (10,000) with 2 subscribers each, one change and one ping per topic
  in a burst, 1 / 2 / 4 capped fetchers: time from their start to the last delivery.
- ``web``: 1 / 2 / 4 Granian workers, each capped: pings/s, verified subscriptions/s.
- ``chaos``: 3 fetchers, 3 deliverers, 2 web workers on PostgreSQL while a fetcher or a
  deliverer is stopped (SIGTERM) and replaced every few seconds: nothing fanned out, verified
  or fetched twice.
- ``million`` (only with ``--million``): 10,000 then 1,000,000 subscribers on one topic.

See bench/README.md ("Scaling") and docs/scaling.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import cgroup, procs
from bench.hubs import Context
from bench.scale_common import Busy, Env
from bench.scale_extra import chaos, million
from bench.scale_report import median_summary, print_summary, summarize
from bench.scale_roles import deliverers, fetchers
from bench.scale_web import web
from bench.scenario import Servers

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = {"deliverers": deliverers, "fetchers": fetchers, "web": web, "chaos": chaos,
             "million": million}


def log(msg: str) -> None:
    print(msg, flush=True)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="deliverers,fetchers,web,chaos",
                   help="scenarios to run (deliverers,fetchers,web,chaos,million)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: small sizes (1,000 subscribers, 300 topics, ...)")
    p.add_argument("--million", action="store_true", help="add the 1,000,000-subscriber run")
    p.add_argument("--cpus", type=float, default=0.25, help="CPU cap of each hub process")
    p.add_argument("--counts", default="1,2,4", help="deliverer / fetcher counts")
    p.add_argument("--web-counts", default="1,2,4", help="Granian worker counts")
    p.add_argument("--subscribers", type=int, default=10_000, help="deliverers: subscribers")
    p.add_argument("--publishes", type=int, default=3, help="deliverers: publishes per count")
    p.add_argument("--batch-size", type=int, default=0,
                   help="deliverers: HUB_DELIVERY_BATCH_SIZE (0: the hub's default, 500)")
    p.add_argument("--topics", type=int, default=10_000, help="fetchers: distinct topics")
    p.add_argument("--fetch-deliverers", type=int, default=2,
                   help="fetchers: uncapped deliverers delivering what they fetch")
    p.add_argument("--pings", type=int, default=5_000, help="web: pings per worker count")
    p.add_argument("--web-subscribes", type=int, default=3_000,
                   help="web: subscriptions per worker count")
    p.add_argument("--chaos-topics", type=int, default=2_000, help="chaos: topics (x2 subs)")
    p.add_argument("--chaos-rounds", type=int, default=3, help="chaos: changes per topic")
    p.add_argument("--churn-interval", type=float, default=3.0,
                   help="chaos: seconds between two restarts")
    p.add_argument("--million-small", type=int, default=10_000,
                   help="million: the smaller size it is compared with")
    p.add_argument("--million-size", type=int, default=0,
                   help="million: the large size (default 1,000,000; 20,000 with --quick)")
    p.add_argument("--million-publishes", type=int, default=2)
    p.add_argument("--million-deliverers", type=int, default=1)
    p.add_argument("--million-capped", action="store_true",
                   help="million: cap the deliverers too (default: uncapped)")
    p.add_argument("--million-via-hub", action="store_true",
                   help="million: subscribe through the hub (~10 min) instead of seeding the "
                        "database")
    p.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--client-concurrency", type=int, default=64)
    p.add_argument("--hub-env", action="append", default=[], metavar="HUB_X=V")
    p.add_argument("--runs", type=int, default=1,
                   help="repeat the scenarios; the summary shows medians over the runs")
    p.add_argument("--keep-workdir", action="store_true")
    p.add_argument("--wait-quiet", type=float, default=60.0,
                   help="before each scenario, wait up to this many seconds until the whole "
                        "machine is under --quiet-pct busy (0: do not wait)")
    p.add_argument("--quiet-pct", type=float, default=15.0)
    if p.parse_args(argv).quick:  # smaller defaults; options given still win
        p.set_defaults(subscribers=1_000, publishes=2, topics=300, pings=1_000,
                       web_subscribes=500, chaos_topics=300, chaos_rounds=2, churn_interval=1.5,
                       million_small=1_000,
                       batch_size=100)  # 10 batches of 100: work for 4 deliverers
    args = p.parse_args(argv)
    args.counts, args.web_counts = _ints(args.counts), _ints(args.web_counts)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if args.million and "million" not in args.only:
        args.only.append("million")
    args.million_size = args.million_size or (20_000 if args.quick else 1_000_000)
    unknown = [s for s in args.only if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}")
    return args


async def _run(args: argparse.Namespace, env_parts: dict[str, Any]) -> list[dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=60)
    runs = []
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for r in range(args.runs):
            env = Env(session=session, **env_parts, args=args, log=log,
                      suffix=f"r{r}" if args.runs > 1 else "")
            runs.append(await _run_once(env, args, r))
    return runs


async def _run_once(env: Env, args: argparse.Namespace, r: int) -> dict[str, Any]:
    for name in args.only:
        log(f"{name}{f' (run {r + 1} of {args.runs})' if args.runs > 1 else ''}:")
        quiet = await _wait_quiet(args.wait_quiet, args.quiet_pct)
        started = time.monotonic()
        load = os.getloadavg()[0]
        try:
            env.results[name] = await SCENARIOS[name](env)
        except Exception as exc:  # noqa: BLE001 - reported, the next scenario runs
            log(f"  {name} FAILED: {exc!r}")
            env.results[name] = {"error": repr(exc)}
        env.results[name]["seconds"] = round(time.monotonic() - started, 1)
        env.results[name]["machine_busy_pct_before"] = quiet
        env.results[name]["loadavg_before"] = load
    return env.results


async def _wait_quiet(longest: float, below: float) -> float | None:
    """Wait until the machine (all cores, every process) is under ``below`` % busy over 2 s,
    ``longest`` seconds at most; the last reading."""
    deadline = time.monotonic() + longest
    while True:
        busy = Busy()
        await asyncio.sleep(2.0)
        pct = busy.pct()
        if pct is None or pct < below or time.monotonic() >= deadline:
            if pct is not None and pct >= below:
                log(f"  note: the machine is {pct:.0f}% busy (other work): figures will be noisy")
            return pct


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    cgroup.sweep_stale()
    why_not = cgroup.available()
    if why_not:
        log(f"NOTE: no CPU caps ({why_not}): every process runs uncapped, the ratios then show "
            "what the machine's cores allow, not what the design allows")
    run_id = dt.datetime.now().strftime("%H%M%S") + secrets.token_hex(2)
    groups = cgroup.Groups(f"bench-scale-{run_id}", enabled=why_not is None)
    workdir = Path(tempfile.mkdtemp(prefix=f"broker-hub-scale-{run_id}-"))
    (workdir / "logs").mkdir()
    ctx = Context(repo=REPO, workdir=workdir, tools_python=sys.executable, run_id=run_id, log=log)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(REPO)
    seed = secrets.token_hex(8)
    started = time.time()
    load = os.getloadavg()
    log(f"broker-hub scale bench {run_id}: {', '.join(args.only)}; cap {args.cpus} CPU per hub "
        f"process{'' if why_not is None else ' (NOT APPLIED)'}; db={args.db}; load average "
        f"{load[0]:.2f} (under ~0.5 is a quiet machine); logs in {workdir}/logs")
    try:
        pub_port, sub_port = procs.free_port(), procs.free_port()
        logdir = workdir / "logs"
        publisher = procs.Proc("publisher", [sys.executable, "-m", "bench.publisher",
                                             str(pub_port)], env=env, cwd=str(REPO), logdir=logdir)
        subscriber = procs.Proc("subscriber", [sys.executable, "-m", "bench.subscriber",
                                               str(sub_port), seed], env=env, cwd=str(REPO),
                                logdir=logdir)
        procs.wait_port(pub_port, 30, publisher)
        procs.wait_port(sub_port, 30, subscriber)
        parts = {"ctx": ctx, "servers": Servers(pub_port, sub_port, seed, subscriber),
                 "groups": groups, "capped": why_not is None}
        try:
            import uvloop

            runs = uvloop.run(_run(args, parts))
        except ImportError:
            runs = asyncio.run(_run(args, parts))
        summary = median_summary([summarize(results) for results in runs])
        results = runs[0] if len(runs) == 1 else {"runs": runs}
        print()
        print_summary(summary, args)
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"scale-{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps({
            "args": vars(args), "run_id": run_id, "started": started,
            "seconds": round(time.time() - started, 1), "capped": why_not is None,
            "cap_note": why_not, "machine": {"cpus": os.cpu_count(), "loadavg_at_start": load,
                                             "loadavg_at_end": os.getloadavg()},
            "subscriber_server_rss_mb": subscriber.peak_rss_mb()["total_mb"],
            "summary": summary, "results": results}, indent=1, default=str))
        log(f"\nresults: {out.relative_to(REPO)}  ({time.time() - started:.0f}s)")
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.stop_all()
        left = groups.remove_all()
        if left:
            log(f"could not remove cgroups: {left}")
        if not args.keep_workdir:
            with contextlib.suppress(Exception):
                shutil.rmtree(workdir)


if __name__ == "__main__":
    sys.exit(main())

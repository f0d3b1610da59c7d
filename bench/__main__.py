"""``python -m bench``: broker-hub vs flask-websub 0.4.1, black-box, on 127.0.0.1.

See bench/README.md. Every process started here is killed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import procs, toolenv
from bench.hubs import BrokerHub, Context, FlaskWebSub, Hub
from bench.report import aggregate, print_table, size_figures
from bench.scenario import Servers, busy_pct, machine_jiffies, ping_rate, run_size

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(msg, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100,1000,5000,10000",
                   help="subscriber counts (comma-separated)")
    p.add_argument("--publishes", type=int, default=3, help="publishes per size")
    p.add_argument("--runs", type=int, default=3, help="repeat everything; medians reported")
    p.add_argument("--skip-peer", action="store_true", help="do not run flask-websub")
    p.add_argument("--large", action="store_true",
                   help="add a 100,000-subscriber size (broker-hub only)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: sizes 50,200, 2 publishes, 1 run, 300 pings")
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite",
                   help="broker-hub storage (flask-websub always uses its SQLite store)")
    p.add_argument("--pings", type=int, default=3000, help="pings in the ping-rate step")
    p.add_argument("--client-concurrency", type=int, default=64,
                   help="concurrent subscribe/ping POSTs from the load client")
    p.add_argument("--no-two-deliverers", action="store_true",
                   help="skip the two-deliverer run")
    p.add_argument("--two-deliverers-size", type=int, default=0,
                   help="size for the 1-vs-2 deliverer comparison (default: largest <= 10000)")
    p.add_argument("--peer-concurrency", type=int, default=8,
                   help="flask-websub Celery worker processes (prefork)")
    p.add_argument("--peer-max-size", type=int, default=10000,
                   help="largest size run against flask-websub")
    p.add_argument("--hub-env", action="append", default=[], metavar="HUB_X=V",
                   help="extra broker-hub environment (tunables), repeatable")
    p.add_argument("--client", choices=["builtin", "aiohttp"], default="builtin",
                   help="broker-hub's outbound HTTP client (HUB_HTTP_CLIENT): deliveries and "
                        "verifications through workers/http11.py or aiohttp's ClientSession")
    p.add_argument("--broker-hub", metavar="EXE", default="",
                   help="the broker-hub executable to bench (default: this checkout's); e.g. "
                        "another checkout's .venv/bin/broker-hub, for a before/after comparison "
                        "through the same harness")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and databases")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.publishes, args.runs, args.pings = "50,200", 2, 1, 300
    args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if args.large and 100000 not in args.sizes:
        args.sizes.append(100000)
    return args


def _hub_tunables(args: argparse.Namespace) -> dict[str, str]:
    # All subscribers share one host:port here, so per-host concurrency is raised to the global
    # concurrency (the default 64 per host would model 1 mirror, not N).
    env = {"HUB_DELIVERY_CONCURRENCY": "512", "HUB_DELIVERY_PER_HOST": "512",
           "HUB_HTTP_CLIENT": args.client}
    for item in args.hub_env:
        key, _, value = item.partition("=")
        env[key.strip()] = value
    return env


async def _quiet(log, busy_below: float = 10.0, longest: float = 20.0) -> float | None:
    """Wait until the machine is quiet (the last hub's processes gone, the broker idle):
    under ``busy_below`` % of all cores over half a second, or ``longest`` seconds at most."""
    deadline = time.monotonic() + longest
    while True:
        before = machine_jiffies()
        await asyncio.sleep(0.5)
        busy = busy_pct(before, machine_jiffies())
        if busy is None or busy < busy_below or time.monotonic() > deadline:
            if busy is not None and busy >= busy_below:
                log(f"  note: the machine is still {busy:.0f}% busy before the next hub")
            return busy


async def _run_hub(hub: Hub, servers: Servers, sizes: list[int], args, run: int,
                   do_ping: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": {}}
    out["quiet_before_pct"] = await _quiet(log)
    hub.start()
    log(f"  {hub.label} ({getattr(hub, 'name', '')}) up at {hub.hub_url}")
    connector = aiohttp.TCPConnector(limit=args.client_concurrency + 8)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for n in sizes:
            topic_id = f"{hub.name}-r{run}-n{n}"
            try:
                out["sizes"][str(n)] = await run_size(
                    session, hub, servers, topic_id, n, args.publishes,
                    client_concurrency=args.client_concurrency, log=log)
            except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on
                log(f"    {hub.label} n={n} FAILED: {exc!r}")
                out["sizes"][str(n)] = {"n": n, "error": repr(exc)}
                hub.check_alive()
        if do_ping:
            out["pings"] = await ping_rate(session, hub, servers, f"{hub.name}-r{run}-ping",
                                           args.pings, args.client_concurrency)
            log(f"    {hub.label} pings: {out['pings']['accepted']}/{args.pings} accepted, "
                f"{out['pings']['per_second']:.0f}/s, statuses {out['pings']['statuses']}")
    out["rss_mb"] = hub.rss()
    return out


async def bench(args: argparse.Namespace, ctx: Context, servers: Servers) -> list[dict]:
    runs: list[dict[str, Any]] = []
    tunables = _hub_tunables(args)
    two_size = args.two_deliverers_size or max(
        [n for n in args.sizes if n <= 10000] or [args.sizes[0]])
    for run in range(args.runs):
        log(f"run {run + 1}/{args.runs}")
        record: dict[str, Any] = {}
        runs.append(record)
        hubs: list[tuple[str, Hub, list[int]]] = [
            ("broker-hub", BrokerHub(ctx, name=f"bh{run}", db=args.db, tunables=tunables,
                                       exe=args.broker_hub),
             args.sizes)]
        if not args.skip_peer:
            hubs.append(("flask-websub", FlaskWebSub(ctx, name=f"fw{run}",
                                                     concurrency=args.peer_concurrency),
                         [n for n in args.sizes if n <= args.peer_max_size]))
        for label, hub, sizes in hubs:
            try:
                record[label] = await _run_hub(hub, servers, sizes, args, run)
            except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on
                log(f"  {label} FAILED: {exc!r}")
                record[label] = {"sizes": {}, "error": repr(exc)}
            finally:
                hub.stop()
                hub.cleanup()
        if args.no_two_deliverers:
            continue
        hub2 = BrokerHub(ctx, name=f"bh{run}d2", deliverers=2, db=args.db, tunables=tunables,
                         exe=args.broker_hub)
        try:
            record["broker-hub-2-deliverers"] = await _run_hub(hub2, servers, [two_size], args,
                                                               run, do_ping=False)
            one = size_figures(record["broker-hub"]["sizes"].get(str(two_size), {"error": 1}))
            two = size_figures(record["broker-hub-2-deliverers"]["sizes"][str(two_size)])
            if one.get("deliveries_per_s") and two.get("deliveries_per_s"):
                record["two_deliverers_ratio"] = two["deliveries_per_s"] / one["deliveries_per_s"]
                log(f"  2 deliverers / 1: {record['two_deliverers_ratio']:.2f}x at n={two_size}")
        except Exception as exc:  # noqa: BLE001
            log(f"  two deliverers FAILED: {exc!r}")
        finally:
            hub2.stop()
            hub2.cleanup()
    return runs


def _run_loop(coro):
    """The orchestrator's event loop: uvloop if installed (less CPU per request), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--scale" in argv:  # the scale-out benchmark: bench/scale.py
        from bench.scale import main as scale_main

        return scale_main([a for a in argv if a != "--scale"])
    args = _parse(argv)

    def on_signal(signum, frame):  # turn SIGTERM into the same clean-up path as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    tools_python = toolenv.ensure(log)
    if tools_python is None:
        if not args.skip_peer:
            log("flask-websub unavailable: running broker-hub only (--skip-peer)")
            args.skip_peer = True
        tools_python = Path(sys.executable)
    run_id = dt.datetime.now().strftime("%H%M%S") + secrets.token_hex(2)
    workdir = Path(tempfile.mkdtemp(prefix=f"broker-hub-bench-{run_id}-"))
    (workdir / "logs").mkdir()
    ctx = Context(repo=REPO, workdir=workdir, tools_python=str(tools_python), run_id=run_id,
                  log=log)
    seed = secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(REPO)
    started = time.time()
    load = os.getloadavg()[0]
    if load > 1.0:
        log(f"note: load average is {load:.1f} before starting: other work on this machine "
            "will skew the figures (see cpu_seconds in the JSON)")
    log(f"broker-hub bench {run_id}: sizes {args.sizes}, {args.publishes} publishes, "
        f"{args.runs} run(s), db={args.db}, peer={'no' if args.skip_peer else 'flask-websub 0.4.1'}"
        f"; logs in {workdir}/logs")
    if args.broker_hub:
        log(f"broker-hub executable: {args.broker_hub}")
    try:
        pub_port, sub_port = procs.free_port(), procs.free_port()
        publisher = procs.Proc("publisher", [str(tools_python), "-m", "bench.publisher",
                                             str(pub_port)], env=env, cwd=str(REPO),
                               logdir=workdir / "logs")
        subscriber = procs.Proc("subscriber", [str(tools_python), "-m", "bench.subscriber",
                                               str(sub_port), seed], env=env, cwd=str(REPO),
                                logdir=workdir / "logs")
        procs.wait_port(pub_port, 30, publisher)
        procs.wait_port(sub_port, 30, subscriber)
        runs = _run_loop(bench(args, ctx, Servers(pub_port, sub_port, seed, subscriber)))
        subscriber.sample_rss()
        summary = aggregate(runs)
        print()
        print_table(summary)
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps({
            "args": {k: v for k, v in vars(args).items()},
            "run_id": run_id, "started": started, "seconds": round(time.time() - started, 1),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                        "loadavg_at_end": os.getloadavg()},
            "hub_tunables": _hub_tunables(args),
            "subscriber_server_rss_mb": subscriber.peak_rss_mb()["total_mb"],
            "summary": summary, "runs": runs,
        }, indent=1, default=str))
        log(f"\nresults: {out.relative_to(REPO)}  ({time.time() - started:.0f}s)")
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.stop_all()
        if not args.keep_workdir:
            import shutil

            with contextlib.suppress(Exception):
                shutil.rmtree(workdir)


if __name__ == "__main__":
    sys.exit(main())

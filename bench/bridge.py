"""``python -m bench.bridge``: the PyPI bridge, from a journal entry to the mirror's 2xx.

Starts the fake index (``python -m examples.fake_pypi``), broker-hub in split mode (``web``,
``fetcher``, ``deliverer``, ``poller`` with ``HUB_PYPI_URL`` at the fake index) on the real
RabbitMQ, and the subscriber server holding every mirror's callback, then runs two scenarios
(``bench/bridge_scenarios.py``), each on a fresh index and hub:

- firehose: 1,000 mirrors on ``<hub>pypi/changes``, releases at random gaps of a few seconds;
- projects: 10,000 project topics with 2 mirrors each, all 10,000 projects changed at once.

See bench/README.md ("The PyPI bridge"). Every process started here is killed at the end.
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

from bench import bridge_report, bridge_scenarios, procs, toolenv
from bench.hubs import BrokerHub, Context
from bench.scenario import busy_pct, machine_jiffies

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(msg, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.bridge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="repeat each scenario; medians reported")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 50 mirrors, 5 releases, 200 projects, 1 run")
    p.add_argument("--intervals", default="5",
                   help="HUB_PYPI_POLL_INTERVAL values to run (comma-separated, e.g. 5,1)")
    p.add_argument("--scenarios", default="firehose,projects",
                   help="which scenarios (firehose, projects)")
    p.add_argument("--mirrors", type=int, default=1000, help="firehose subscribers")
    p.add_argument("--releases", type=int, default=20, help="releases per firehose run")
    p.add_argument("--gap", default="1,4", help="seconds between releases: MIN,MAX (uniform)")
    p.add_argument("--projects", type=int, default=10000, help="project topics (2 mirrors each)")
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite",
                   help="the hub's storage")
    p.add_argument("--hub-env", action="append", default=[], metavar="HUB_X=V",
                   help="extra broker-hub environment, repeatable")
    p.add_argument("--client-concurrency", type=int, default=64,
                   help="concurrent subscribe POSTs")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and databases")
    args = p.parse_args(argv)
    if args.quick:
        args.mirrors, args.releases, args.projects, args.runs = 50, 5, 200, 1
    args.intervals = [float(v) for v in args.intervals.split(",") if v.strip()]
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - {"firehose", "projects"}
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    low, _, high = args.gap.partition(",")
    args.gap = (float(low), float(high or low))
    return args


def _tunables(args: argparse.Namespace, index_url: str, interval: float) -> dict[str, str]:
    # All callbacks share one host:port here: the per-host cap (64, one mirror's worth) is
    # raised to the global concurrency, as in python -m bench. Rate limits are off in hubs.py.
    env = {"HUB_DELIVERY_CONCURRENCY": "512", "HUB_DELIVERY_PER_HOST": "512",
           "HUB_PYPI_URL": index_url, "HUB_PYPI_POLL_INTERVAL": f"{interval:g}",
           "HUB_PYPI_USER_AGENT": "broker-hub bench (python -m bench.bridge)"}
    for item in args.hub_env:
        key, _, value = item.partition("=")
        env[key.strip()] = value
    return env


async def _quiet(busy_below: float = 15.0, longest: float = 15.0) -> float | None:
    """Wait (a while at most) until the machine is quiet: the last hub's leftovers gone."""
    deadline = time.monotonic() + longest
    while True:
        before = machine_jiffies()
        await asyncio.sleep(0.5)
        busy = busy_pct(before, machine_jiffies())
        if busy is None or busy < busy_below or time.monotonic() > deadline:
            return busy


async def _one(args, ctx: Context, subscriber_url: str, seed: str, scenario: str,
               interval: float, run: int) -> dict[str, Any]:
    """A fresh fake index and hub, one scenario, everything stopped after."""
    tag = f"{scenario[0]}{run}i{interval:g}".replace(".", "_")
    record: dict[str, Any] = {"scenario": scenario, "interval": interval, "run": run}
    record["quiet_before_pct"] = await _quiet()
    record["loadavg"] = round(os.getloadavg()[0], 2)
    index_port = procs.free_port()
    index = procs.Proc(f"fake-pypi-{tag}", [sys.executable, "-m", "examples.fake_pypi",
                                            "--port", str(index_port)],
                       env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=str(REPO),
                       logdir=ctx.workdir / "logs")
    hub = BrokerHub(ctx, name=f"br{tag}", db=args.db, extra_roles=("poller",),
                    tunables=_tunables(args, f"http://127.0.0.1:{index_port}", interval))
    try:
        procs.wait_port(index_port, 30, index)
        hub.start()
        await bridge_scenarios.wait_poller_started(hub)
        log(f"  {scenario}, poll interval {interval:g}s, run {run + 1}: hub at {hub.hub_url}")
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            rig = bridge_scenarios.Rig(hub, f"http://127.0.0.1:{index_port}", subscriber_url,
                                       seed, session, log, args.client_concurrency)
            if scenario == "firehose":
                out = await bridge_scenarios.firehose(rig, tag, args.mirrors, args.releases,
                                                      args.gap)
            else:
                out = await bridge_scenarios.projects(rig, tag, args.projects)
        record.update(out)
    except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on
        log(f"  {scenario} run {run + 1} FAILED: {exc!r}")
        record["error"] = repr(exc)
    finally:
        hub.stop()
        hub.cleanup()
        index.stop()
    return record


async def bench(args, ctx: Context, subscriber_url: str, seed: str) -> list[dict[str, Any]]:
    runs = []
    for interval in args.intervals:
        for run in range(args.runs):
            for scenario in args.scenarios:
                runs.append(await _one(args, ctx, subscriber_url, seed, scenario, interval,
                                       run))
    return runs


def _run_loop(coro):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)

    def on_signal(signum, frame):  # SIGTERM takes the Ctrl-C clean-up path
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    tools_python = toolenv.ensure(log) or Path(sys.executable)
    run_id = dt.datetime.now().strftime("%H%M%S") + secrets.token_hex(2)
    workdir = Path(tempfile.mkdtemp(prefix=f"broker-hub-bridge-{run_id}-"))
    (workdir / "logs").mkdir()
    ctx = Context(repo=REPO, workdir=workdir, tools_python=str(tools_python), run_id=run_id,
                  log=log)
    seed = secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(REPO)
    started, load = time.time(), os.getloadavg()
    log(f"broker-hub bridge bench {run_id}: {args.scenarios}, intervals {args.intervals}, "
        f"{args.runs} run(s), {args.mirrors} firehose mirrors x {args.releases} releases, "
        f"{args.projects} projects x 2, db={args.db}; load average {load[0]:.1f}; "
        f"logs in {workdir}/logs")
    try:
        sub_port = procs.free_port()
        subscriber = procs.Proc("subscriber", [str(tools_python), "-m", "bench.subscriber",
                                               str(sub_port), seed], env=env, cwd=str(REPO),
                                logdir=workdir / "logs")
        procs.wait_port(sub_port, 30, subscriber)
        runs = _run_loop(bench(args, ctx, f"http://127.0.0.1:{sub_port}", seed))
        summary = bridge_report.summarize(runs)
        print()
        bridge_report.print_table(summary)
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"bridge-{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps({
            "args": vars(args), "run_id": run_id, "started": started,
            "seconds": round(time.time() - started, 1),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                        "loadavg_at_start": load, "loadavg_at_end": os.getloadavg()},
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

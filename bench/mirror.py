"""``python -m bench.mirror``: a release appears in the fake index -> devpi serves it.

The path measured is the whole product: the fake PyPI-shaped index (``examples/fake_pypi``)
-> the hub's PyPI poller (``HUB_PYPI_URL``, every ``--poll-interval`` s) -> the signed push
-> ``broker-hub mirror`` -> ``POST /+simple/<p>/refresh`` on a real devpi-server -> devpi's
simple page lists the new file (then a ``pip download`` of the last release checks it).
Beside it, the polling baselines as configured: devpi's ``--mirror-cache-expiry`` (1800 s
default) and bandersnatch's cron interval (2 minutes in its README).

When the hub has no PyPI bridge (``GET <hub>/pypi/changes`` is not JSON), it says so and
measures the mirror side only: ``tests/mirror/standin_hub.py`` pushes right after each release
(``--hub standin`` forces that mode). Every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.mirror.agentproc import AgentProc, start_agent
from tests.mirror.tools import Tool, pip_download, spawn_listening, start_devpi
from tests.support.fake_pypi import FakePyPIClient, start_fake_pypi
from tests.support.processes import HubProcess, free_port, start_hub, wait_for

REPO = Path(__file__).resolve().parent.parent
DEVPI_EXPIRY = 1800
BANDERSNATCH_CRON = 120
PROJECT = "Bench_Mirror_Pkg"


def log(msg: str) -> None:
    print(msg, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.mirror", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--releases", type=int, default=30, help="releases measured")
    p.add_argument("--poll-interval", type=float, default=1.0, help="HUB_PYPI_POLL_INTERVAL")
    p.add_argument("--hub", choices=["auto", "real", "standin"], default="auto")
    p.add_argument("--pause", type=float, default=None,
                   help="seconds between releases (default: random in [0, poll interval], so "
                   "releases do not lock onto the poller's phase)")
    return p.parse_args(argv)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _real_hub(index_url: str, poll: float) -> HubProcess | None:
    port = free_port()
    env = {"HUB_BIND": f"127.0.0.1:{port}", "HUB_BROKER_URL": "memory://",
           "HUB_DATABASE_URL": f"sqlite:///{tempfile.mkdtemp(prefix='bh-bench-mirror-')}/h.db",
           "HUB_ALLOW_PRIVATE_ADDRESSES": "true", "HUB_PYPI_URL": index_url,
           "HUB_PYPI_POLL_INTERVAL": str(poll), "HUB_METRICS_PORT": str(free_port()),
           "HUB_RATE_LIMIT_PER_MINUTE": "0", "HUB_VERIFY_RATE_PER_HOST": "0",
           "HUB_FETCH_RATE_PER_HOST": "0", "HUB_LOG_LEVEL": "WARNING"}
    hub = start_hub("run", env, wait_health_url=f"http://127.0.0.1:{port}/healthz")
    deadline = time.monotonic() + 30  # the topic answers once the poller read the index once
    what = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = requests.get(f"http://127.0.0.1:{port}/pypi/changes", timeout=10)
            if answer.headers.get("Content-Type", "").startswith("application/json"):
                return hub
            what = f"GET /pypi/changes: {answer.status_code}"
        except requests.RequestException as exc:
            what = str(exc)
        time.sleep(0.5)
    log(f"the hub has no PyPI bridge ({what})")
    hub.stop()
    return None


def _lists(devpi: Tool, version: str) -> bool:
    """devpi's simple page (PEP 691 JSON) lists a wheel of ``version``."""
    answer = requests.get(f"{devpi.url}/+simple/bench-mirror-pkg/", timeout=10,
                          headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    prefix = f"bench_mirror_pkg-{version}-"
    return answer.status_code == 200 and any(
        f.get("filename", "").startswith(prefix) for f in answer.json().get("files", []))


def run(args: argparse.Namespace) -> dict:
    subprocess.run(["bash", str(REPO / "scripts" / "install-mirror-tools.sh")], check=True)
    stack = contextlib.ExitStack()
    with stack:
        index = start_fake_pypi()
        stack.callback(index.stop)
        index_url = index.url("").rstrip("/")
        pypi = FakePyPIClient(index_url)
        pypi.release(PROJECT, "0.0")
        devpi = start_devpi(index_url, expiry=DEVPI_EXPIRY)
        stack.callback(devpi.stop)
        hub = None if args.hub == "standin" else _real_hub(index_url, args.poll_interval)
        if hub is None and args.hub == "real":
            raise SystemExit("--hub real: the hub has no PyPI bridge")
        standin: Tool | None = None
        if hub is not None:
            stack.callback(hub.stop)
            hub_url, mode = hub.url("/"), "real hub (poller -> push)"
        else:
            standin = spawn_listening("standin-hub", [
                sys.executable, "-m", "tests.mirror.standin_hub", "--index", index_url])
            stack.callback(standin.stop)
            hub_url, mode = standin.url + "/", "stand-in hub (push right after the release)"
        state = Path(tempfile.mkdtemp(prefix="bh-bench-agent-")) / "agent.sqlite"
        agent: AgentProc = start_agent(state, "--hub", hub_url, "--index", index_url,
                                       "--devpi", devpi.url, "--project", PROJECT,
                                       "--coalesce-seconds", "0.1")
        stack.callback(agent.stop)
        wait_for(lambda: agent.status().startswith("subscriptions 1/1"), timeout=60,
                 message="the agent's subscription")
        requests.get(f"{devpi.url}/+simple/bench-mirror-pkg/", timeout=30)  # devpi caches it
        topic = hub_url + "pypi/project/bench-mirror-pkg"
        latencies = []
        for i in range(1, args.releases + 1):
            version = f"1.{i}"
            before = pypi.last_serial()
            t0 = time.monotonic()
            until = pypi.release(PROJECT, version, files=["wheel"])[-1]
            if standin is not None:
                requests.post(f"{standin.url}/_control/push", timeout=30,
                              json={"topic": topic, "since": before, "until": until})
            wait_for(lambda v=version: _lists(devpi, v), timeout=120, interval=0.02,
                     message=f"devpi to list {PROJECT} {version}")
            latencies.append(time.monotonic() - t0)
            time.sleep(args.pause if args.pause is not None
                       else random.uniform(0, args.poll_interval))
        last = f"1.{args.releases}"
        ok = pip_download("bench-mirror-pkg", last, devpi.url + "/+simple/",
                          Path(tempfile.mkdtemp())).returncode == 0
        return {"mode": mode, "releases": len(latencies), "poll_interval": args.poll_interval,
                "median": statistics.median(latencies), "p99": _pct(latencies, 0.99),
                "max": max(latencies), "pip_download_last": ok,
                "devpi_expiry": DEVPI_EXPIRY, "bandersnatch_cron": BANDERSNATCH_CRON}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    result = run(args)
    log(f"\nrelease in the fake index -> downloadable from devpi ({result['mode']}, "
        f"{result['releases']} releases, hub poll interval {result['poll_interval']:g} s):")
    log(f"  push path:      median {result['median']:.2f} s   p99 {result['p99']:.2f} s   "
        f"max {result['max']:.2f} s   (pip download of the last: "
        f"{'ok' if result['pip_download_last'] else 'FAILED'})")
    log(f"  devpi expiry:   median {result['devpi_expiry'] / 2:.0f} s   worst "
        f"{result['devpi_expiry']} s   (--mirror-cache-expiry {result['devpi_expiry']})")
    log(f"  bandersnatch:   median {result['bandersnatch_cron'] / 2:.0f} s   worst "
        f"{result['bandersnatch_cron']} s   (cron every {result['bandersnatch_cron']} s, "
        f"plus PyPI's ~30 min CDN cache of /simple/)")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "mirror.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["pip_download_last"] else 1


if __name__ == "__main__":
    sys.exit(main())

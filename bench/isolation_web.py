"""What the web front's body-first RSGI adapter costs (issue 15): pings per second.

    .venv/bin/python -m bench.isolation_web [--seconds 5] [--clients 8]

Starts ``broker-hub web`` (one Granian worker, RabbitMQ, SQLite) and sends publish pings
of a topic nobody subscribes (204; the cheapest hub POST) from ``--clients`` keep-alive
clients for ``--seconds``; prints requests/s and the web process's CPU seconds per 1,000
requests. Run it on two commits to compare the WSGI and the RSGI front.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from tests.support.processes import free_port, start_hub


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / ticks


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bh-web-"))
    env = {
        "HUB_BIND": f"127.0.0.1:{free_port()}",
        "HUB_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        "HUB_NAMESPACE": f"bench_web_{os.getpid()}",
        "HUB_DATABASE_URL": f"sqlite:///{tmp / 'hub.sqlite3'}",
        "HUB_RATE_LIMIT_PER_MINUTE": "0",
        "HUB_WEB_WORKERS": "1",
        "HUB_LOG_LEVEL": "WARNING",
    }
    url = f"http://{env['HUB_BIND']}/"
    proc = start_hub("web", env, wait_health_url=url + "healthz", log_dir=tmp)
    counts = [0] * args.clients
    stop = time.time() + args.seconds
    data = {"hub.mode": "publish", "hub.url": "https://example.org/nobody"}

    def client(i: int) -> None:
        with requests.Session() as session:
            while time.time() < stop:
                session.post(url, data=data, timeout=10).raise_for_status()
                counts[i] += 1

    try:
        pids = [int(p) for p in os.popen(f"pgrep -g {proc.proc.pid}").read().split()]
        before = sum(_cpu(p) for p in pids)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.time() - started
        cpu = sum(_cpu(p) for p in pids) - before
        total = sum(counts)
        print(f"{total / took:.0f} pings/s, {cpu / total * 1000:.2f} s of web CPU per 1,000")
    finally:
        proc.stop()


if __name__ == "__main__":
    main(sys.argv[1:])

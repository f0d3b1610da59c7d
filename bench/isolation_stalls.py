"""The honest party's delay with N hostile peers hanging (issue 15).

    .venv/bin/python -m bench.isolation_stalls [N ...]     (default: 0 100 500)

For each N, a fresh embedded hub (``broker-hub run``: memory broker, SQLite; default settings
except ``HUB_HTTP_TIMEOUT=2``, ``HUB_DELIVERY_BACKOFF_BASE=0.5`` so that the hanging deliveries
retry while we measure, ``HUB_DELIVERY_BATCH_SIZE=N+1`` so that the honest callback shares the
hostile ones' batch, and loopback allowed) and two loopback parties: a hostile one on
127.0.0.2 (N callbacks that verify, then never answer a POST; then N more that never answer
at all) and an honest mirror on 127.0.0.1. Printed, in seconds from the ping (or subscribe)
to the honest request's arrival:

- same batch: the honest callback subscribed after the N hanging ones, to the same topic;
- unrelated: another topic, published while the hanging deliveries retry;
- verification: an honest subscribe sent after N subscribes whose callbacks never answer.

A benchmark, not a test: nothing here asserts. ``--http-timeout`` changes the 2 s.
"""

from __future__ import annotations

import argparse
import http.server
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from broker_hub.storage import Storage
from tests.security.hanging import HangingPeer
from tests.support.processes import free_port, start_hub


class _Topics(http.server.BaseHTTPRequestHandler):
    body = b"v1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def _wait(predicate, timeout: float, what: str) -> float:
    started = time.time()
    while time.time() - started < timeout:
        if predicate():
            return time.time() - started
        time.sleep(0.02)
    raise SystemExit(f"gave up after {timeout:.0f} s waiting for {what}")


def run(n: int, http_timeout: float, workdir: Path) -> dict[str, float]:
    topics = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Topics)
    threading.Thread(target=topics.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{topics.server_address[1]}"
    hostile = HangingPeer("127.0.0.2", hang="post")
    silent = HangingPeer("127.0.0.2", hang="all")
    honest = HangingPeer("127.0.0.1", hang="none")
    env = {
        "HUB_BIND": f"127.0.0.1:{free_port()}",
        "HUB_DATABASE_URL": f"sqlite:///{workdir / f'hub-{n}.sqlite3'}",
        "HUB_ALLOW_PRIVATE_ADDRESSES": "true",
        "HUB_HTTP_TIMEOUT": str(http_timeout),
        "HUB_DELIVERY_BACKOFF_BASE": "0.5",
        "HUB_DELIVERY_BATCH_SIZE": str(n + 1),
        "HUB_RATE_LIMIT_PER_MINUTE": "0",
        "HUB_VERIFY_RATE_PER_HOST": "0",
        "HUB_FETCH_RATE_PER_HOST": "0",
        "HUB_LOG_LEVEL": "WARNING",
    }
    hub_url = f"http://{env['HUB_BIND']}/"
    proc = start_hub("run", env, wait_health_url=hub_url + "healthz", log_dir=workdir)
    storage = Storage.from_url(env["HUB_DATABASE_URL"])
    session = requests.Session()

    def post(**form: str) -> None:
        data = {f"hub.{k}": v for k, v in form.items()}
        session.post(hub_url, data=data, timeout=30).raise_for_status()

    def arrived(method: str, path: str) -> bool:
        return any(m == method and p == path for _, m, p in honest.arrivals)

    try:
        shared, other = f"{base}/shared", f"{base}/other"
        for i in range(n):
            post(mode="subscribe", topic=shared, callback=hostile.url(f"/h{i}"))
        post(mode="subscribe", topic=shared, callback=honest.url("/same"))
        post(mode="subscribe", topic=other, callback=honest.url("/other"))
        _wait(lambda: storage.count_for_topic(shared, time.time()) >= n + 1, 300, "verified")
        _wait(lambda: storage.count_for_topic(other, time.time()) >= 1, 60, "verified")
        figures: dict[str, float] = {}
        post(mode="publish", url=shared)
        figures["same batch"] = _wait(lambda: arrived("POST", "/same"), 600, "the delivery")
        time.sleep(http_timeout + 1)  # the hanging deliveries time out and retry
        post(mode="publish", url=other)
        figures["unrelated"] = _wait(lambda: arrived("POST", "/other"), 600, "the delivery")
        for i in range(n):
            post(mode="subscribe", topic=f"{base}/v", callback=silent.url(f"/v{i}"))
        time.sleep(0.5)
        post(mode="subscribe", topic=f"{base}/v", callback=honest.url("/verify"))
        figures["verification"] = _wait(lambda: arrived("GET", "/verify"), 600, "verification")
        return figures
    finally:
        session.close()
        proc.stop()
        storage.close()
        for peer in (hostile, silent, honest):
            peer.close()
        topics.shutdown()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[0, 100, 500])
    parser.add_argument("--http-timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bh-isolation-"))
    print(f"honest party's delay, seconds (HUB_HTTP_TIMEOUT={args.http_timeout:g}; "
          f"logs in {workdir})")
    print(f"{'hostile N':>10} {'same batch':>11} {'unrelated':>10} {'verification':>13}")
    for n in args.sizes:
        f = run(n, args.http_timeout, workdir)
        print(f"{n:>10} {f['same batch']:>11.2f} {f['unrelated']:>10.2f} "
              f"{f['verification']:>13.2f}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(sys.argv[1:])

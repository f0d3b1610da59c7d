"""``python -m examples.fake_pypi [--host H] [--port P] [--state FILE]``: the fake index."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .server import FakePyPIServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.fake_pypi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 picks a free port")
    parser.add_argument("--state", type=Path, help="JSON file that keeps the index across runs")
    args = parser.parse_args(argv)
    server = FakePyPIServer((args.host, args.port), state_path=args.state)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sys.stdout.write(f"LISTENING {server.server_address[1]}\n")
    sys.stdout.flush()
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

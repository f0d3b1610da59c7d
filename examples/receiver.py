"""A minimal WebSub subscriber callback for trying the hub: echoes challenges, prints deliveries.

    python3 examples/receiver.py --port 8002 [--secret change-me]

Standard library only. It checks ``X-Hub-Signature`` when given the subscription's secret.
"""

from __future__ import annotations

import argparse
import hmac
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def make_handler(secret: str | None) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            mode = query.get("hub.mode", [""])[0]
            challenge = query.get("hub.challenge", [""])[0].encode()
            print(f"verification: mode={mode} topic={query.get('hub.topic', [''])[0]}", flush=True)
            self.send_response(200)
            self.send_header("Content-Length", str(len(challenge)))
            self.end_headers()
            self.wfile.write(challenge)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            print(f"delivery to {self.path}:", flush=True)
            for name in ("Content-Type", "Link", "X-Hub-Signature", "X-Hub-Delivery-Id",
                         "X-Hub-Sequence"):
                if self.headers.get(name):
                    print(f"  {name}: {self.headers[name]}", flush=True)
            if secret is not None:
                algorithm, _, given = self.headers.get("X-Hub-Signature", "=").partition("=")
                expected = hmac.new(secret.encode(), body, algorithm or "sha256").hexdigest()
                print(f"  signature valid: {hmac.compare_digest(expected, given)}", flush=True)
            print(body.decode("utf-8", "replace"), flush=True)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Receiver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--secret", default=None)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.secret))
    print(f"receiving on http://127.0.0.1:{args.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""A stand-in for the hub's PyPI side, a real HTTP server in its own process, for the agent's
fault tests: subscriptions with verification of intent, pushes built from the fake index's
journal (signed, with X-Hub-Sequence and X-Hub-Delivery-Id as the interface gives them), and
the catch-up API ``GET <topic>?since=<serial>`` (410 before a settable retention point).

    python -m tests.mirror.standin_hub --port 0 --index http://127.0.0.1:<fake pypi>

Control (JSON POSTs): ``/_control/push`` {"topic", "since", "until", "send": true, "forge":
false} -> the statuses of the callbacks; ``/_control/replay`` (the last push again, same id);
``/_control/retain`` {"from": serial}; GET ``/_control/subscriptions``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import urllib.parse
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from broker_hub.pypi.changes import classify
from broker_hub.pypi.names import normalize
from broker_hub.signing import signature_header


def entry(raw: list) -> dict:
    name, version, timestamp, action, serial = raw
    kind, filename = classify(action)
    return {"serial": serial, "project": name, "normalized": normalize(name),
            "version": version, "action": action, "kind": kind, "filename": filename,
            "timestamp": timestamp}


class StandIn:
    def __init__(self, index: str, base: str):
        self.index = index
        self.base = base
        self.subscriptions: dict[tuple[str, str], dict] = {}
        self.sequence: dict[str, int] = {}
        self.retain_from = 0
        self.last_push: list[tuple[str, bytes, dict]] = []
        self.lock = threading.Lock()

    def journal(self, since: int) -> list[dict]:
        rpc = xmlrpc.client.ServerProxy(self.index + "/pypi")
        return [entry(e) for e in rpc.changelog_since_serial(since)]

    def entries_for(self, topic: str, since: int, until: int | None = None) -> list[dict]:
        found = [e for e in self.journal(since) if until is None or e["serial"] <= until]
        prefix = self.base + "pypi/project/"
        if topic.startswith(prefix):
            found = [e for e in found if e["normalized"] == topic[len(prefix):]]
        return found

    def verify(self, mode: str, topic: str, callback: str, secret: str, lease: int) -> None:
        challenge = secrets.token_hex(8)
        query = urllib.parse.urlencode({"hub.mode": mode, "hub.topic": topic,
                                        "hub.challenge": challenge, "hub.lease_seconds": lease})
        try:
            answer = requests.get(f"{callback}?{query}", timeout=10)
        except requests.RequestException:
            return
        if answer.status_code == 200 and answer.text == challenge:
            with self.lock:
                if mode == "subscribe":
                    self.subscriptions[(topic, callback)] = {
                        "topic": topic, "callback": callback, "secret": secret, "lease": lease}
                else:
                    self.subscriptions.pop((topic, callback), None)

    def push(self, topic: str, since: int, until: int, send: bool, forge: bool) -> list[int]:
        body = json.dumps({"source": "fake", "topic": topic, "since": since, "until": until,
                           "degraded": False, "previous_serial": None,
                           "entries": self.entries_for(topic, since, until)}).encode()
        with self.lock:
            self.sequence[topic] = self.sequence.get(topic, 0) + 1
            sequence = self.sequence[topic]
            targets = [s for s in self.subscriptions.values() if s["topic"] == topic]
        statuses = []
        self.last_push = []
        for sub in targets:
            secret = "not-the-secret" if forge else sub["secret"]
            headers = {"Content-Type": "application/json", "X-Hub-Sequence": str(sequence),
                       "X-Hub-Delivery-Id": f"{secrets.token_hex(6)}.{sequence}",
                       "X-Hub-Signature": signature_header(secret, body),
                       "Link": f'<{self.base}>; rel="hub", <{topic}>; rel="self"'}
            self.last_push.append((sub["callback"], body, headers))
            if send:
                statuses.append(requests.post(sub["callback"], data=body, headers=headers,
                                              timeout=30).status_code)
        return statuses

    def replay(self) -> list[int]:
        return [requests.post(cb, data=body, headers=headers, timeout=30).status_code
                for cb, body, headers in self.last_push]


def handler(hub: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: object, ctype: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/_control/subscriptions":
                with hub.lock:
                    return self._answer(200, list(hub.subscriptions.values()))
            query = urllib.parse.parse_qs(url.query)
            topic = hub.base + url.path.lstrip("/")
            since = int(query.get("since", ["0"])[0])
            if since < hub.retain_from:
                return self._answer(410, f"only serials after {hub.retain_from} are retained: "
                                    "do a full sync".encode(), "text/plain")
            limit = int(query.get("limit", ["1000"])[0])
            found = hub.entries_for(topic, since)
            page = found[:limit]
            until = page[-1]["serial"] if page else since
            more = len(found) > limit
            self._answer(200, {"source": "fake", "topic": topic, "since": since, "until": until,
                               "entries": page,
                               "next": f"{topic}?since={until}&limit={limit}" if more else None})

        def do_POST(self) -> None:
            if self.path == "/":
                form = dict(urllib.parse.parse_qsl(self._body().decode()))
                args = (form["hub.mode"], form["hub.topic"], form["hub.callback"],
                        form.get("hub.secret", ""), int(form.get("hub.lease_seconds") or 3600))
                threading.Thread(target=hub.verify, args=args, daemon=True).start()
                return self._answer(202, b"", "text/plain")
            data = json.loads(self._body() or b"{}")
            if self.path == "/_control/push":
                statuses = hub.push(data["topic"], data["since"], data["until"],
                                    data.get("send", True), data.get("forge", False))
                return self._answer(200, {"statuses": statuses})
            if self.path == "/_control/replay":
                return self._answer(200, {"statuses": hub.replay()})
            if self.path == "/_control/retain":
                hub.retain_from = int(data["from"])
                return self._answer(200, {})
            self._answer(404, {"error": "unknown"})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--index", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), None)  # type: ignore[arg-type]
    port = server.server_address[1]
    server.RequestHandlerClass = handler(StandIn(args.index.rstrip("/"),
                                                 f"http://127.0.0.1:{port}/"))
    print(f"LISTENING {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""The subscriber server's side other than deliveries: verifications of intent and the
orchestrator's JSON endpoints (see bench/subscriber.py for what each answers)."""

from __future__ import annotations

import json
from collections import defaultdict
from urllib.parse import parse_qsl, unquote

from bench.rawhttp import JSON_UTF8, TEXT_UTF8, response


class Topic:
    __slots__ = ("bad_sig", "deliveries", "json_log", "json_max", "json_sum", "last",
                 "out_of_order", "unsigned", "unverified_modes", "verified", "verify_requests")

    def __init__(self) -> None:
        self.verified: set[str] = set()
        self.unverified_modes: dict[str, int] = defaultdict(int)
        self.bad_sig = 0
        self.unsigned = 0
        self.verify_requests = 0  # subscribe verifications answered (a repeat counts again)
        self.last: dict[str, int] = {}  # callback path -> newest seq delivered to it
        self.out_of_order = 0  # deliveries older than one the same callback already had
        # seq -> [count, set(paths), set(delivery ids), [arrival times]]
        self.deliveries: dict[int, list] = {}
        # JSON bodies (the PyPI bridge): [(path, arrival, first serial, last serial, delivery
        # id)], and per path the highest serial seen (and their sum)
        self.json_log: list[tuple[str, float, int, int, str]] = []
        self.json_max: dict[str, int] = {}
        self.json_sum = 0


def handle(server, method: bytes, target: bytes, connection: bytes) -> bytes:
    """Everything but deliveries: verification GETs and the orchestrator's JSON endpoints."""
    raw_path, _, query = target.partition(b"?")
    path = (unquote(raw_path.decode("utf-8", "replace")) if b"%" in raw_path
            else raw_path.decode("utf-8", "replace"))
    if path.startswith("/cb/") and method == b"GET":
        topic = server.topics[path.split("/", 3)[2]]
        params: dict[str, str] = {}
        for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            params.setdefault(k, v)
        mode = params.get("hub.mode", "")
        challenge = params.get("hub.challenge")
        if mode in ("subscribe", "unsubscribe") and challenge is not None:
            if mode == "subscribe":
                topic.verified.add(path)
                topic.verify_requests += 1
            return response(200, challenge.encode(), b"text/plain", connection)
        topic.unverified_modes[mode] += 1
        return response(200, connection=connection)
    head_only = method == b"HEAD"
    if path.startswith("/_stats/"):
        topic = server.topics.get(path.split("/")[2]) or Topic()
        out = {
            "verified": len(topic.verified),
            "other_modes": dict(topic.unverified_modes),
            "bad_signatures": topic.bad_sig,
            "unsigned": topic.unsigned,
            "verify_requests": topic.verify_requests,
            "out_of_order": topic.out_of_order,
            "seqs": {
                str(seq): {"count": r[0], "distinct": len(r[1]), "delivery_ids": len(r[2])}
                for seq, r in topic.deliveries.items()
            },
            "json": {"deliveries": len(topic.json_log), "callbacks": len(topic.json_max),
                     "sum_max": topic.json_sum},
        }
        return response(200, json.dumps(out).encode(), JSON_UTF8, connection, head_only)
    if path.startswith("/_times/"):
        _, _, topic_id, seq = path.split("/")
        topic = server.topics.get(topic_id) or Topic()
        rec = topic.deliveries.get(int(seq))
        return response(200, json.dumps(sorted(rec[3]) if rec else []).encode(),
                        b"application/json", connection, head_only)
    if path.startswith("/_total/"):  # deliveries of entries >= ?min=<seq>, cheaply
        topic = server.topics.get(path.split("/")[2]) or Topic()
        low_seq = int(dict(parse_qsl(query.decode())).get("min", "-1"))
        recs = [r for seq, r in topic.deliveries.items() if seq >= low_seq]
        out = {"count": sum(r[0] for r in recs), "distinct": sum(len(r[1]) for r in recs),
               "first": min((r[3][0] for r in recs if r[3]), default=None),
               "last": max((r[3][-1] for r in recs if r[3]), default=None),  # appended in order
               "seqs": len(recs), "out_of_order": topic.out_of_order,
               "verify_requests": topic.verify_requests, "verified": len(topic.verified)}
        return response(200, json.dumps(out).encode(), JSON_UTF8, connection, head_only)
    if path.startswith("/_log/"):  # the JSON deliveries
        topic = server.topics.get(path.split("/")[2]) or Topic()
        return response(200, json.dumps(topic.json_log).encode(), JSON_UTF8, connection,
                        head_only)
    if path.startswith("/_forget/"):  # free the memory of a finished topic
        topic_id = path.split("/")[2]
        server.topics.pop(topic_id, None)
        server.callbacks = {k: v for k, v in server.callbacks.items() if v[0] != topic_id}
        return response(204, connection=connection)
    if path == "/_health":
        return response(200, b"ok", TEXT_UTF8, connection, head_only)
    return response(404, connection=connection)

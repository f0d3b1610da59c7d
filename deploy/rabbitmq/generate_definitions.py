"""Writes deploy/rabbitmq/definitions.json: the hub's exchange, queues and bindings as
:mod:`broker_hub.topology` declares them, for RabbitMQ's ``load_definitions``.

Run: python deploy/rabbitmq/generate_definitions.py [--namespace broker_hub]
     [--queue-type classic|quorum] [--delivery-limit 20] [--out PATH]
tests/ops checks that the committed file is what this writes, and that the broker accepts the
hub's own declarations over it unchanged.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from broker_hub import topology

OUT = Path(__file__).parent / "definitions.json"
USER, PASSWORD = "hub", "hub"  # compose's default; change it (and HUB_BROKER_URL) for real use
SALT = b"bhub"  # fixed, so the file is reproducible; the hash is rabbit_password_hashing_sha256


def password_hash(password: str, salt: bytes = SALT) -> str:
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(namespace: str = "broker_hub", queue_type: str = topology.CLASSIC,
                delivery_limit: int = topology.DEFAULT_DELIVERY_LIMIT) -> dict[str, Any]:
    vhost = "/"
    queues, bindings = [], []
    for target in topology.TARGETS:
        q = topology.queue(namespace, target, queue_type, delivery_limit)
        queues.append({"name": q.name, "vhost": vhost, "durable": True, "auto_delete": False,
                       "arguments": q.queue_arguments or {}})
        bindings.append({"source": namespace, "vhost": vhost, "destination": q.name,
                         "destination_type": "queue", "routing_key": target, "arguments": {}})
    for target in (topology.FETCH, topology.VERIFY, topology.DELIVER):
        for rung in topology.DELAY_LADDER_MS:
            q = topology.delay_queue(namespace, target, rung)
            queues.append({"name": q.name, "vhost": vhost, "durable": True,
                           "auto_delete": False, "arguments": q.queue_arguments})
    return {
        "rabbit_version": "3.13.0",
        "users": [{"name": USER, "password_hash": password_hash(PASSWORD),
                   "hashing_algorithm": "rabbit_password_hashing_sha256",
                   "tags": ["administrator"]}],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": USER, "vhost": vhost, "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "exchanges": [{"name": namespace, "vhost": vhost, "type": "direct", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "queues": queues,
        "bindings": bindings,
    }


def render(**kwargs: Any) -> str:
    return json.dumps(definitions(**kwargs), indent=2, sort_keys=True) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="broker_hub")
    parser.add_argument("--queue-type", default=topology.CLASSIC,
                        choices=[topology.CLASSIC, topology.QUORUM])
    parser.add_argument("--delivery-limit", type=int, default=topology.DEFAULT_DELIVERY_LIMIT)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.write_text(render(namespace=args.namespace, queue_type=args.queue_type,
                               delivery_limit=args.delivery_limit))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""flask-websub 0.4.1's hub, set up as its README shows: a Flask app + Celery tasks + SQLite.

Runs in ``.bench-venv`` (not the product's virtualenv):
  web:    gunicorn -k gthread -w 2 --threads 8 bench.peers.flask_websub_hub:app
  worker: celery -A bench.peers.flask_websub_hub:celery worker -Q $FW_QUEUE -c 8
Environment: FW_BROKER_URL (amqp), FW_QUEUE (unique per run), FW_DB (SQLite path).
The hub endpoint is ``/hub``; ``hub.mode=publish`` is enabled (PUBLISH_SUPPORTED) so the same
publisher ping works; deliveries are signed with sha256 so the subscriber server can check them.
"""

from __future__ import annotations

import os

from celery import Celery
from flask import Flask
from flask_websub.hub import Hub, SQLite3HubStorage

QUEUE = os.environ.get("FW_QUEUE", "bench-flask-websub")

celery = Celery("flask_websub_bench", broker=os.environ["FW_BROKER_URL"])
celery.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_ignore_result=True,
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

app = Flask(__name__)
app.config["PUBLISH_SUPPORTED"] = True
hub = Hub(
    SQLite3HubStorage(os.environ["FW_DB"]),
    celery,
    SIGNATURE_ALGORITHM="sha256",
    REQUEST_TIMEOUT=10,
)
app.register_blueprint(hub.build_blueprint(url_prefix="/hub"))


@app.get("/healthz")
def healthz() -> str:
    return "ok"

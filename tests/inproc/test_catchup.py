"""Catch-up in process: generic topics by sequence (with the subscriber's proof), PyPI topics
by serial (public), 410 past retention, 400 for bad numbers."""

from __future__ import annotations

import base64
import dataclasses
import json

from flask.testing import FlaskClient

from broker_hub.services import Services
from web import create_app
from web.catchup import catchup_token

TOPIC = "https://feeds.example/feed.xml"
CALLBACK = "https://mirror.example/cb"


def test_generic_topic_catch_up_by_sequence(client: FlaskClient, services: Services) -> None:
    storage = services.storage
    storage.activate(TOPIC, CALLBACK, "s3cret", 3600, services.clock())
    for i in range(5):
        storage.add_notification(TOPIC, "text/plain", f"n{i}".encode(), 1.0, services.clock())
    query = {"hub.topic": TOPIC, "hub.callback": CALLBACK, "since": "2", "limit": "2"}
    auth = {"Authorization": f"Bearer {catchup_token('s3cret', TOPIC)}"}
    page = client.get("/catchup", query_string=query, headers=auth).get_json()
    assert [n["sequence"] for n in page["notifications"]] == [3, 4] and page["more"] is True
    assert base64.b64decode(page["notifications"][0]["body_base64"]) == b"n2"
    assert client.get("/catchup", query_string=query).status_code == 403  # no proof
    wrong = {"Authorization": f"Bearer {catchup_token('other', TOPIC)}"}
    assert client.get("/catchup", query_string=query, headers=wrong).status_code == 403
    bad = client.get("/catchup", query_string={**query, "since": "-1"}, headers=auth)
    assert bad.status_code == 400
    storage.delete_notifications_before(services.clock() + 1)  # retention ran
    storage.add_notification(TOPIC, "text/plain", b"n5", 1.0, services.clock())
    gone = client.get("/catchup", query_string=query, headers=auth)
    assert gone.status_code == 410 and "sequence 6" in gone.get_data(as_text=True)


def test_pypi_topic_catch_up_by_serial_and_410(client: FlaskClient, services: Services) -> None:
    settings = dataclasses.replace(services.settings, pypi_url="https://pypi.example")
    client = create_app(services=dataclasses.replace(services, settings=settings)).test_client()
    storage, source = services.storage, "pypi.example"
    assert client.get("/pypi/changes").status_code == 503  # not polled yet
    storage.claim_source(source, "me", 0.0, 60)
    storage.start_source(source, 100, 0.0)
    entries = [
        (s, p, json.dumps({"serial": s, "normalized": p}))
        for s, p in ((101, "a"), (103, "b"), (104, "a"), (107, "c"))
    ]
    storage.store_entries(source, entries, services.clock())
    storage.advance_source(source, 107, services.clock(), caught_up=True)
    page = client.get("/pypi/changes?since=101&limit=2").get_json()
    assert [e["serial"] for e in page["entries"]] == [103, 104]
    assert page["until"] == 104 and page["next"].endswith("since=104&limit=2")
    assert client.get(page["next"]).get_json()["entries"] == [{"serial": 107, "normalized": "c"}]
    project = client.get("/pypi/project/a?since=100").get_json()
    assert [e["serial"] for e in project["entries"]] == [101, 104] and project["until"] == 107
    latest = client.get("/pypi/changes?limit=1").get_json()
    assert latest["since"] == 104 and latest["entries"][0]["serial"] == 107
    gone = client.get("/pypi/changes?since=99")
    assert gone.status_code == 410 and "full sync" in gone.get_data(as_text=True)
    assert client.get("/pypi/changes?since=ten").status_code == 400

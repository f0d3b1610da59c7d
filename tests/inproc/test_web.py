"""The hub endpoint in process: Flask's test client, the memory transport, SQLite."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from broker_hub import topology
from broker_hub.messages import FetchTopic, VerifyIntent
from broker_hub.services import Services
from tests.inproc.conftest import take

TOPIC = "http://127.0.0.1:9/feed.xml"
CALLBACK = "http://127.0.0.1:9/cb?x=1"


def test_subscribe_queues_one_verification(client: FlaskClient, services: Services) -> None:
    response = client.post(
        "/", data={"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": CALLBACK,
                   "hub.secret": "s3cret", "hub.lease_seconds": "120"},
    )  # fmt: skip
    assert response.status_code == 202
    [(intent, _)] = take(services, topology.VERIFY)
    assert isinstance(intent, VerifyIntent)
    assert (intent.mode, intent.topic, intent.callback) == ("subscribe", TOPIC, CALLBACK)
    assert (intent.secret, intent.lease_seconds) == ("s3cret", 120)


def test_publish_queues_one_fetch_for_a_burst(client: FlaskClient, services: Services) -> None:
    for _ in range(3):
        response = client.post("/", data={"hub.mode": "publish", "hub.url": TOPIC})
        assert response.status_code == 204
    fetches = take(services, topology.FETCH)
    assert [type(m) for m, _ in fetches] == [FetchTopic]  # coalesced: one fetch for the burst
    assert services.storage.topic_state(TOPIC).ping_seq == 3


@pytest.mark.parametrize("name", ["hub.secret", "hub.topic", "hub.callback"])
def test_invalid_utf8_in_a_parameter_is_a_400_naming_it(
    client: FlaskClient, services: Services, name: str
) -> None:
    fields = {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": CALLBACK}
    body = "&".join(f"{k}={v}" for k, v in fields.items() if k != name) + f"&{name}=%FF%FE"
    response = client.post(
        "/", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert name in response.get_data(as_text=True)
    assert take(services, topology.VERIFY) == []  # nothing accepted


def test_healthz_and_metrics(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    body = client.get("/metrics").get_data(as_text=True)
    assert "broker_hub_subscriptions" in body

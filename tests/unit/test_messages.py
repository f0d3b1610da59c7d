"""Unit tests for broker_hub.messages: JSON round-trips, decoding errors, secrets kept out."""

from __future__ import annotations

import json

import pytest

from broker_hub.messages import (
    SCHEMA_VERSION,
    DeliverBatch,
    DeliverOne,
    FetchTopic,
    MessageError,
    Parked,
    VerifyIntent,
    as_record,
    from_body,
    to_body,
)

SECRET = "hunter2-very-secret"

SAMPLES = [
    FetchTopic(topic="https://pypi.example/simple/foo/", seq=7, pinged_at=1700000000.5, attempt=2),
    VerifyIntent(
        mode="subscribe",
        topic="https://pypi.example/t",
        callback="https://mirror.example/cb?x=1",
        requested_at=1700000001.25,
        secret=SECRET,
        lease_seconds=3600,
        attempt=3,
    ),
    VerifyIntent(
        mode="denied",
        topic="https://pypi.example/t",
        callback="https://mirror.example/cb",
        requested_at=1.0,
        reason="topic not allowed",
    ),
    DeliverBatch(
        notification_id=42, topic="https://pypi.example/t", first_id=1, last_id=500, pinged_at=2.5
    ),
    DeliverOne(
        notification_id=42, subscription_id=9, pinged_at=2.5, attempt=4, last_error="HTTP 503"
    ),
    Parked(
        reason="attempts exhausted",
        original={"type": "deliver_one", "notification_id": 42, "nested": [1, "ü"]},
        parked_at=3.0,
        mirror="mirror.example",
        topic="https://pypi.example/t",
        attempts=8,
    ),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: f"{m.kind}")
def test_round_trip_text_bytes_and_dict(message) -> None:
    body = to_body(message)
    assert isinstance(body, str)
    payload = json.loads(body)
    assert payload["type"] == message.kind
    assert payload["v"] == SCHEMA_VERSION
    assert from_body(body) == message
    assert from_body(body.encode("utf-8")) == message
    assert from_body(bytearray(body.encode("utf-8"))) == message
    assert from_body(payload) == message
    assert type(from_body(body)) is type(message)


def test_kinds_are_distinct() -> None:
    kinds = {m.kind for m in SAMPLES}
    assert kinds == {"fetch", "verify", "deliver_batch", "deliver_one", "parked"}


def test_defaults_filled_when_optional_fields_absent() -> None:
    msg = from_body({"v": 1, "type": "fetch", "topic": "t", "seq": 1, "pinged_at": 0.0})
    assert msg == FetchTopic(topic="t", seq=1, pinged_at=0.0, attempt=1)


def test_unknown_extra_fields_are_ignored() -> None:
    msg = from_body(
        {"v": 1, "type": "fetch", "topic": "t", "seq": 1, "pinged_at": 0.0, "future": "x"}
    )
    assert msg == FetchTopic(topic="t", seq=1, pinged_at=0.0)


def test_secret_travels_in_body() -> None:
    # The verifier needs the secret, so the broker body carries it.
    assert json.loads(to_body(SAMPLES[1]))["secret"] == SECRET


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "{",
        b"\xff\xfe\x00garbage",
        "[1, 2]",
        '"a string"',
        "42",
        "null",
    ],
)
def test_undecodable_bodies_raise_message_error(body) -> None:
    with pytest.raises(MessageError):
        from_body(body)


def test_non_dict_object_raises_message_error() -> None:
    with pytest.raises(MessageError, match="not a JSON object"):
        from_body([1, 2])


@pytest.mark.parametrize("version", [None, 0, 2, "1"])
def test_wrong_schema_version_raises(version) -> None:
    payload = json.loads(to_body(SAMPLES[0]))
    if version is None:
        del payload["v"]
    else:
        payload["v"] = version
    with pytest.raises(MessageError, match="schema version"):
        from_body(json.dumps(payload))


@pytest.mark.parametrize("kind", ["pickle", "", None, "FETCH"])
def test_unknown_type_raises(kind) -> None:
    payload = json.loads(to_body(SAMPLES[0]))
    if kind is None:
        del payload["type"]
    else:
        payload["type"] = kind
    with pytest.raises(MessageError, match="unknown message type"):
        from_body(json.dumps(payload))


@pytest.mark.parametrize("kind", [[], {}, ["fetch"]])
def test_unhashable_type_field_raises_message_error(kind) -> None:
    # A hostile or corrupt body must be rejected as a MessageError, not crash with TypeError.
    with pytest.raises(MessageError):
        from_body(json.dumps({"v": 1, "type": kind}))


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: f"{m.kind}")
def test_missing_required_field_raises(message) -> None:
    payload = json.loads(to_body(message))
    required = {
        "fetch": "seq",
        "verify": "callback",
        "deliver_batch": "last_id",
        "deliver_one": "attempt",
        "parked": "original",
    }[message.kind]
    del payload[required]
    with pytest.raises(MessageError, match=f"bad {message.kind} message"):
        from_body(json.dumps(payload))


def test_secret_absent_from_record_and_repr() -> None:
    msg = SAMPLES[1]
    record = as_record(msg)
    assert "secret" not in record
    assert SECRET not in json.dumps(record)
    assert record["type"] == "verify"
    assert record["callback"] == msg.callback
    assert record["lease_seconds"] == 3600
    assert SECRET not in repr(msg)
    assert SECRET not in str(msg)
    assert "v" not in record


def test_record_of_message_without_secret_keeps_every_field() -> None:
    record = as_record(SAMPLES[4])
    assert record == {
        "type": "deliver_one",
        "notification_id": 42,
        "subscription_id": 9,
        "pinged_at": 2.5,
        "attempt": 4,
        "last_error": "HTTP 503",
    }


def test_messages_are_frozen() -> None:
    with pytest.raises(AttributeError):
        SAMPLES[0].seq = 99  # type: ignore[misc]


def test_body_is_compact_json() -> None:
    assert " " not in to_body(FetchTopic(topic="t", seq=1, pinged_at=0.0))

"""The hub endpoint's parameter parsing and validation (pure, no Flask)."""

from __future__ import annotations

import pytest

from broker_hub.config import Settings
from broker_hub.errors import BadRequest, Forbidden
from broker_hub.protocol import (
    PublishRequest,
    SubscriptionRequest,
    parse_form,
    parse_hub_request,
)

FORM = "application/x-www-form-urlencoded"
OPEN = Settings(allow_private_addresses=True)
CLOSED = Settings()
SUB = [
    ("hub.mode", "subscribe"),
    ("hub.topic", "http://t.example/f"),
    ("hub.callback", "http://c.example/cb"),
]


def test_parse_form_body_and_bodiless_query() -> None:
    assert parse_form(FORM + "; charset=utf-8", b"a=1&b=&a=2") == [
        ("a", "1"),
        ("b", ""),
        ("a", "2"),
    ]
    assert parse_form(None, b"", b"hub.mode=publish") == [("hub.mode", "publish")]


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain", ""])
def test_parse_form_refuses_other_bodies_with_415(content_type: str | None) -> None:
    with pytest.raises(BadRequest) as info:
        parse_form(content_type, b"hub.mode=publish")
    assert info.value.status == 415


def test_parse_form_refuses_bad_utf8_and_too_many_fields() -> None:
    with pytest.raises(BadRequest):
        parse_form(FORM, b"hub.mode=\xff\xfe")
    with pytest.raises(BadRequest) as info:
        parse_form(FORM, b"&".join(b"p%d=1" % i for i in range(500)))
    assert info.value.status == 413


def test_subscription_request_keeps_secret_out_of_repr() -> None:
    parsed = parse_hub_request([*SUB, ("hub.secret", "hush"), ("hub.lease_seconds", "60")], OPEN)
    assert parsed == SubscriptionRequest(
        "subscribe", "http://t.example/f", "http://c.example/cb", "hush", 60
    )
    assert "hush" not in repr(parsed)


def test_huge_lease_is_accepted_and_bounded() -> None:
    parsed = parse_hub_request([*SUB, ("hub.lease_seconds", "0" * 10 + "9" * 5000)], OPEN)
    assert isinstance(parsed, SubscriptionRequest)
    assert parsed.lease_seconds == 10**12


@pytest.mark.parametrize("lease", ["0", "00", "-1", "1.0", "x", "\u0661"])
def test_bad_lease_is_refused(lease: str) -> None:
    with pytest.raises(BadRequest, match=r"hub.lease_seconds"):
        parse_hub_request([*SUB, ("hub.lease_seconds", lease)], OPEN)


def test_publish_collects_unique_topics_from_url_and_topic() -> None:
    parsed = parse_hub_request(
        [
            ("hub.mode", "publish"),
            ("hub.url", "http://a.example/"),
            ("hub.topic", "http://b.example/"),
            ("hub.url[]", "http://a.example/"),
        ],
        OPEN,
    )
    assert parsed == PublishRequest(("http://a.example/", "http://b.example/"))


def test_forbidden_addresses_are_403_naming_the_parameter() -> None:
    with pytest.raises(Forbidden, match=r"hub.callback"):
        parse_hub_request([*SUB[:2], ("hub.callback", "http://[::ffff:127.0.0.1]/")], CLOSED)
    with pytest.raises(Forbidden, match=r"hub.url"):
        parse_hub_request([("hub.mode", "publish"), ("hub.url", "http://10.0.0.1/")], CLOSED)


def test_allowlist_names_the_parameter() -> None:
    settings = Settings(topic_allowlist=("https://pypi.example/",))
    with pytest.raises(Forbidden, match=r"hub.url.*HUB_TOPIC_ALLOWLIST"):
        parse_hub_request(
            [("hub.mode", "publish"), ("hub.url", "https://pypi.example.evil/")], settings
        )
    parsed = parse_hub_request(
        [("hub.mode", "publish"), ("hub.url", "https://pypi.example/x")], settings
    )
    assert isinstance(parsed, PublishRequest)


@pytest.mark.parametrize(
    "callback", ["http://[v1.x]/", "http://\u00e4.example/", "http://a..b/", "http://[::1%25x]/"]
)
def test_odd_hosts_are_accepted_or_refused_never_crash(callback: str) -> None:
    try:
        parse_hub_request([*SUB[:2], ("hub.callback", callback)], CLOSED)
    except BadRequest as exc:
        assert "hub.callback" in str(exc)


@pytest.mark.parametrize("name", ["hub.secret", "hub.topic", "hub.callback", "hub.mode", "x"])
def test_parse_form_refuses_percent_encoded_bytes_that_are_not_utf8(name: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_form(FORM, f"hub.mode=subscribe&{name}=%FF%FE".encode())
    assert err.value.status == 400
    assert name in str(err.value) and "UTF-8" in str(err.value)


def test_parse_form_refuses_a_name_that_is_not_utf8() -> None:
    with pytest.raises(BadRequest, match="parameter name"):
        parse_form(FORM, b"hub.mode=publish&%C3%28=1")


def test_parse_form_decodes_plus_and_percent_escapes_like_parse_qsl() -> None:
    from urllib.parse import parse_qsl

    body = "a=%E2%9C%93+b&b=x%2By&c&=v&d=%zz"
    assert parse_form(FORM, body.encode()) == parse_qsl(body, keep_blank_values=True)

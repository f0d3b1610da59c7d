"""The bad-input table, against the running hub: right status, plain text naming the parameter."""

from __future__ import annotations

import pytest
import requests

from tests.security.helpers import FORM
from tests.support.hubs import Hub


@pytest.fixture(scope="module")
def hub(hub_factory) -> Hub:
    return hub_factory(HUB_ALLOW_PRIVATE_ADDRESSES="true")


@pytest.fixture(scope="module")
def callback(subscriber_server) -> str:
    """A real callback (the fake mirror), for the requests that must be accepted."""
    return subscriber_server.url("/bad-input-cb")


TOPIC = "http://example.invalid/feed"
SUB = [("hub.mode", "subscribe"), ("hub.topic", TOPIC)]
OK = "CALLBACK"  # replaced by the real callback URL


def _pairs(pairs: list[tuple[str, str]], callback: str) -> list[tuple[str, str]]:
    return [(k, callback if v == OK else v) for k, v in pairs]


BAD = [
    ("no parameters", [], 400, "hub.mode"),
    ("hub.mode missing", [("hub.topic", TOPIC), ("hub.callback", OK)], 400, "hub.mode"),
    ("hub.mode empty", [("hub.mode", ""), ("hub.topic", TOPIC)], 400, "hub.mode"),
    ("hub.mode unknown", [("hub.mode", "subscribed"), ("hub.topic", TOPIC)], 400, "hub.mode"),
    ("hub.mode wrong case", [("hub.mode", "SUBSCRIBE")], 400, "hub.mode"),
    ("hub.topic missing", [("hub.mode", "subscribe"), ("hub.callback", OK)], 400, "hub.topic"),
    ("hub.topic empty", [*SUB[:1], ("hub.topic", ""), ("hub.callback", OK)], 400, "hub.topic"),
    (
        "hub.topic ftp",
        [*SUB[:1], ("hub.topic", "ftp://x/f"), ("hub.callback", OK)],
        400,
        "hub.topic",
    ),
    (
        "hub.topic relative",
        [*SUB[:1], ("hub.topic", "/feed"), ("hub.callback", OK)],
        400,
        "hub.topic",
    ),
    (
        "hub.topic no host",
        [*SUB[:1], ("hub.topic", "http:///f"), ("hub.callback", OK)],
        400,
        "hub.topic",
    ),
    (
        "hub.topic fragment",
        [*SUB[:1], ("hub.topic", "http://example.invalid/f#x"), ("hub.callback", OK)],
        400,
        "hub.topic",
    ),
    (
        "hub.topic bad port",
        [*SUB[:1], ("hub.topic", "http://example.invalid:99999/"), ("hub.callback", OK)],
        400,
        "hub.topic",
    ),
    ("hub.callback missing", SUB, 400, "hub.callback"),
    ("hub.callback empty", [*SUB, ("hub.callback", "")], 400, "hub.callback"),
    (
        "hub.callback javascript",
        [*SUB, ("hub.callback", "javascript:alert(1)")],
        400,
        "hub.callback",
    ),
    ("hub.callback mailto", [*SUB, ("hub.callback", "mailto:a@b.c")], 400, "hub.callback"),
    ("hub.callback fragment", [*SUB, ("hub.callback", OK + "#frag")], 400, "hub.callback"),
    (
        "hub.callback whitespace",
        [*SUB, ("hub.callback", "http://exa mple.invalid/")],
        400,
        "hub.callback",
    ),
    *[
        (
            f"hub.lease_seconds={value!r}",
            [*SUB, ("hub.callback", OK), ("hub.lease_seconds", value)],
            400,
            "hub.lease_seconds",
        )
        for value in ("0", "-5", "000", "abc", "1.5", "1e3", "+60", " 60", "\u0663")
    ],
    (
        "hub.secret 200 bytes",
        [*SUB, ("hub.callback", OK), ("hub.secret", "s" * 200)],
        400,
        "hub.secret",
    ),
    (
        "hub.secret 200 UTF-8 bytes",
        [*SUB, ("hub.callback", OK), ("hub.secret", "\u00e9" * 100)],
        400,
        "hub.secret",
    ),
    *[
        (
            f"{name} twice, different",
            [*SUB, ("hub.callback", OK), (name, first), (name, second)],
            400,
            name,
        )
        for name, first, second in (
            ("hub.mode", "subscribe", "unsubscribe"),
            ("hub.topic", TOPIC, TOPIC + "2"),
            ("hub.callback", "http://a.invalid/", "http://b.invalid/"),
            ("hub.secret", "one", "two"),
            ("hub.lease_seconds", "60", "61"),
        )
    ],
    ("publish without hub.url", [("hub.mode", "publish")], 400, "hub.url"),
    ("publish hub.url ftp", [("hub.mode", "publish"), ("hub.url", "ftp://x/")], 400, "hub.url"),
    ("publish hub.url empty", [("hub.mode", "publish"), ("hub.url", "")], 400, "hub.url"),
    (
        "publish hub.topic fragment",
        [("hub.mode", "publish"), ("hub.topic", "http://x.invalid/#f")],
        400,
        "hub.topic",
    ),
]


@pytest.mark.parametrize(
    ("pairs", "status", "named"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_parameters_are_refused_naming_the_parameter(hub, callback, pairs, status, named):
    response = hub.post(_pairs(pairs, callback), headers=FORM)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    assert named in response.text


GOOD = [
    ("subscribe", [*SUB, ("hub.callback", OK)], 202),
    ("unsubscribe", [("hub.mode", "unsubscribe"), ("hub.topic", TOPIC), ("hub.callback", OK)], 202),
    (
        "unknown parameters ignored",
        [*SUB, ("hub.callback", OK), ("foo", "bar"), ("hub.foo", "x"), ("hub.verify", "sync")],
        202,
    ),
    ("huge lease is clamped", [*SUB, ("hub.callback", OK), ("hub.lease_seconds", "9" * 6000)], 202),
    (
        "lease ignored on unsubscribe",
        [
            ("hub.mode", "unsubscribe"),
            ("hub.topic", TOPIC),
            ("hub.callback", OK),
            ("hub.lease_seconds", "-1"),
        ],
        202,
    ),
    ("hub.secret 199 bytes", [*SUB, ("hub.callback", OK), ("hub.secret", "s" * 199)], 202),
    ("same value twice", [*SUB, *SUB, ("hub.callback", OK)], 202),
    ("publish", [("hub.mode", "publish"), ("hub.url", TOPIC), ("hub.url", TOPIC + "2")], 204),
    ("publish with hub.topic", [("hub.mode", "publish"), ("hub.topic", TOPIC)], 204),
]


@pytest.mark.parametrize(
    ("pairs", "status"), [case[1:] for case in GOOD], ids=[case[0] for case in GOOD]
)
def test_good_requests_are_accepted(hub, callback, pairs, status):
    response = hub.post(_pairs(pairs, callback), headers=FORM)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/x-www-form-urlencodedx",
    ],
)
def test_body_not_form_encoded_is_415(hub, callback, content_type):
    body = f"hub.mode=subscribe&hub.topic={TOPIC}&hub.callback={callback}".encode()
    response = hub.post(body, headers={"Content-Type": content_type})
    assert response.status_code == 415, response.text
    assert "Content-Type" in response.text


def test_body_without_content_type_is_415(hub):
    response = requests.post(
        hub.url, data=b"hub.mode=publish&hub.url=http://x.invalid/", timeout=10
    )
    assert response.status_code == 415
    assert "Content-Type" in response.text


def test_form_with_charset_parameter_is_accepted(hub, callback):
    body = f"hub.mode=subscribe&hub.topic={TOPIC}&hub.callback={callback}"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
    assert hub.post(body, headers=headers).status_code == 202


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(hub, method):
    response = requests.request(method, hub.url, data="hub.mode=publish", headers=FORM, timeout=10)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_get_is_an_information_page(hub):
    response = requests.get(hub.url, timeout=10)
    assert response.status_code == 200
    assert "hub.mode" in response.text
    assert requests.head(hub.url, timeout=10).status_code == 200


def test_request_body_size_is_bounded(hub, callback):
    body = f"hub.mode=subscribe&hub.topic={TOPIC}&hub.callback={callback}&pad=" + "x" * 70_000
    response = hub.post(body, headers=FORM)
    assert response.status_code == 413
    assert hub.healthy()


@pytest.mark.parametrize("name", ["hub.topic", "hub.callback"])
def test_url_length_is_bounded(hub, callback, name):
    long_url = "http://example.invalid/" + "a" * 2100
    values = {"hub.topic": TOPIC, "hub.callback": callback, name: long_url}
    response = hub.post({"hub.mode": "subscribe", **values}, headers=FORM)
    assert response.status_code == 414, response.text
    assert name in response.text


def test_too_many_parameters_are_refused(hub):
    body = "hub.mode=publish&hub.url=http://x.invalid/&" + "&".join(f"p{i}=1" for i in range(500))
    response = hub.post(body, headers=FORM)
    assert response.status_code == 413
    assert "parameters" in response.text

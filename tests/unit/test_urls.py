"""Unit tests for broker_hub.urls: validate_url, with_query, host_label and display_url."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from broker_hub.errors import BadRequest
from broker_hub.urls import display_url, host_label, validate_url, with_query

# --- validate_url --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "https://example.com",
        "HTTPS://Example.COM/path?q=1&r=2",
        "http://127.0.0.1:8080/cb",
        "http://[::1]:8080/cb",
        "https://user:pw@example.com:443/x",
        "http://example.com:65535/",
    ],
)
def test_valid_urls_returned_unchanged(url: str) -> None:
    assert validate_url("hub.callback", url, max_length=2048) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "hub.callback is empty"),
        ("http://example.com/ path", "hub.callback contains whitespace or control characters"),
        ("http://example.com/\tx", "hub.callback contains whitespace or control characters"),
        ("http://example.com/\nx", "hub.callback contains whitespace or control characters"),
        ("http://example.com/\x00", "hub.callback contains whitespace or control characters"),
        ("http://example.com/\x1b", "hub.callback contains whitespace or control characters"),
        (" http://example.com/", "hub.callback contains whitespace or control characters"),
        ("http://example.com:notaport/", "hub.callback is not a valid URL"),
        ("http://example.com:70000/", "hub.callback is not a valid URL"),
        ("http://[::1/", "hub.callback is not a valid URL"),
        ("ftp://example.com/", "hub.callback must be an http or https URL"),
        ("javascript:alert(1)", "hub.callback must be an http or https URL"),
        ("example.com/path", "hub.callback must be an http or https URL"),
        ("/relative/path", "hub.callback must be an http or https URL"),
        ("http:///path", "hub.callback has no host"),
        ("http://", "hub.callback has no host"),
        ("http://example.com/#frag", "hub.callback must not contain a fragment"),
        ("http://example.com/#", "hub.callback must not contain a fragment"),
        ("http://example.com:0/", "hub.callback has an invalid port"),
    ],
)
def test_rejections_name_the_parameter(url: str, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        validate_url("hub.callback", url, max_length=2048)
    assert str(info.value) == message
    assert info.value.status == 400


def test_parameter_name_is_the_one_given() -> None:
    with pytest.raises(BadRequest, match=r"^hub\.topic must be an http or https URL$"):
        validate_url("hub.topic", "gopher://x/", max_length=100)


def test_too_long_is_414() -> None:
    url = "http://example.com/" + "a" * 100
    assert validate_url("hub.topic", url, max_length=len(url)) == url
    with pytest.raises(BadRequest) as info:
        validate_url("hub.topic", url, max_length=len(url) - 1)
    assert info.value.status == 414
    assert str(info.value) == f"hub.topic is longer than {len(url) - 1} characters"


def test_delete_character_is_a_control_character() -> None:
    # DEL (0x7f) is an ASCII control character and is not allowed in a URL (RFC 3986).
    with pytest.raises(BadRequest, match="control characters"):
        validate_url("hub.callback", "http://example.com/\x7f", max_length=2048)


# --- with_query ----------------------------------------------------------------------------------

PARAMS = {"hub.mode": "subscribe", "hub.topic": "https://t.example/a?b=c&d", "hub.challenge": "x y"}


def test_with_query_without_own_query() -> None:
    url = with_query("https://m.example/cb", PARAMS)
    parts = urlsplit(url)
    assert url.startswith("https://m.example/cb?")
    assert url.count("?") == 1
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == PARAMS


def test_with_query_keeps_callback_query_verbatim() -> None:
    url = with_query("https://m.example/cb?token=a%2Fb&x=1", {"hub.mode": "denied"})
    assert url == "https://m.example/cb?token=a%2Fb&x=1&hub.mode=denied"


@pytest.mark.parametrize("callback", ["https://m.example/cb?", "https://m.example/cb?x=1&"])
def test_with_query_trailing_separator(callback: str) -> None:
    url = with_query(callback, {"hub.mode": "unsubscribe"})
    assert url == callback + "hub.mode=unsubscribe"
    assert "?&" not in url
    assert "&&" not in url


def test_with_query_escapes_values() -> None:
    url = with_query("http://m/cb", {"hub.topic": "http://t/?a=1&b=2"})
    assert url == "http://m/cb?hub.topic=http%3A%2F%2Ft%2F%3Fa%3D1%26b%3D2"


# --- host_label ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://example.com/cb?secret=1", "example.com"),
        ("https://Example.COM:8443/cb", "example.com:8443"),
        ("http://user:pw@example.com:81/", "example.com:81"),
        ("http://127.0.0.1:8080/x", "127.0.0.1:8080"),
        ("http://[::1]:8080/x", "[::1]:8080"),
        ("http://[2001:db8::1]/x", "[2001:db8::1]"),
        ("not a url", "unknown"),
    ],
)
def test_host_label(url: str, label: str) -> None:
    assert host_label(url) == label


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@example.com/feed", "http://example.com/feed"),
        ("https://tok@example.com:8443/a?b=c", "https://example.com:8443/a"),
        ("http://example.com/cb?secret=s3cr3t#frag", "http://example.com/cb"),
        ("http://[::1]:80/x", "http://[::1]:80/x"),
        ("http://example.com:99999/", "<invalid URL>"),
        ("http://Example.COM/Feed", "http://example.com/Feed"),
    ],
)
def test_display_url_drops_userinfo_and_query(url: str, shown: str) -> None:
    assert display_url(url) == shown
    assert "pw" not in display_url(url) and "secret" not in display_url(url)

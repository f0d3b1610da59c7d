"""The hub endpoint's requests: parse and validate form-encoded WebSub parameters (no Flask)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from broker_hub import netguard
from broker_hub.config import Settings
from broker_hub.errors import BadRequest, Forbidden
from broker_hub.pypi.topics import PYPI_PREFIX, parse_topic
from broker_hub.urls import validate_url

FORM_TYPE = "application/x-www-form-urlencoded"
SECRET_MAX_BYTES = 200
MAX_FIELDS = 100
LEASE_DIGITS = 12
SINGLE_VALUED = ("hub.mode", "hub.topic", "hub.callback", "hub.secret", "hub.lease_seconds")


@dataclass(frozen=True)
class SubscriptionRequest:
    """A subscribe or unsubscribe request, validated."""

    mode: str
    topic: str
    callback: str
    secret: str | None = field(default=None, repr=False)
    lease_seconds: int | None = None


@dataclass(frozen=True)
class PublishRequest:
    """A publish ping naming one or more topics."""

    topics: tuple[str, ...]


def parse_form(content_type: str | None, body: bytes, query: bytes = b"") -> list[tuple[str, str]]:
    """Decode the form body (or, for a bodiless POST, the query string) into pairs."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if not body and not mimetype and query:
        body = query
    elif mimetype != FORM_TYPE:
        shown = mimetype or "none"
        raise BadRequest(f"Content-Type must be {FORM_TYPE} (got {shown})", status=415)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None
    return _pairs(text)


def _pairs(text: str) -> list[tuple[str, str]]:
    """``application/x-www-form-urlencoded`` pairs, strictly: a name or value whose
    percent-decoding is not UTF-8 is refused (400 naming it), never replaced by U+FFFD (a
    secret silently changed would make every signature wrong)."""
    items = [item for item in text.split("&") if item]
    if len(items) > MAX_FIELDS:
        raise BadRequest(f"too many parameters (at most {MAX_FIELDS})", status=413)
    pairs = []
    for item in items:
        raw_name, _, raw_value = item.partition("=")
        name = _decode(raw_name, None)
        pairs.append((name, _decode(raw_value, name)))
    return pairs


def _decode(raw: str, name: str | None) -> str:
    try:
        return unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        if name is not None:
            what = f"the value of {name[:60]}"
        else:
            what = f"the parameter name {unquote_to_bytes(raw).decode('utf-8', 'replace')[:60]!r}"
        raise BadRequest(f"{what} is not valid UTF-8 once percent-decoded") from None


def _single(pairs: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in SINGLE_VALUED:
            continue
        if name in values and values[name] != value:
            raise BadRequest(f"{name} is given more than once with different values")
        values[name] = value
    return values


def is_hub_topic(topic: str, settings: Settings, name: str = "hub.topic") -> bool:
    """True for a topic this hub publishes itself (the PyPI bridge's); such a topic is never
    fetched, so the allowlist and the address policy do not apply to it. A URL under the
    bridge's prefix that is not one of its topics is a 400 saying what is."""
    base = settings.public_url if settings.public_url.endswith("/") else settings.public_url + "/"
    if not topic.startswith(base + PYPI_PREFIX):
        return False
    if not settings.pypi_enabled:
        raise BadRequest(f"{name} is a PyPI topic of this hub, but its PyPI bridge is off")
    if parse_topic(settings.public_url, topic) is None:
        raise BadRequest(
            f"{name} is not a PyPI topic of this hub: use {base}pypi/changes or "
            f"{base}pypi/project/<normalized name> (PEP 503: lower case, runs of -_. as -)"
        )
    return True


def check_topic_policy(topic: str, settings: Settings, name: str = "hub.topic") -> None:
    """Refuse (403) a topic outside the allowlist or on a forbidden address."""
    if is_hub_topic(topic, settings, name):
        return
    if settings.topic_allowlist and not topic.startswith(settings.topic_allowlist):
        raise Forbidden(f"{name} is not served by this hub (not in HUB_TOPIC_ALLOWLIST)")
    _check_address(name, topic, settings)


def _check_address(name: str, url: str, settings: Settings) -> None:
    try:
        netguard.check_url_host(url, allow_private=settings.allow_private_addresses)
    except netguard.ForbiddenAddress as exc:
        raise Forbidden(f"{name} points to a forbidden address: {exc}") from None
    except (ValueError, UnicodeError):
        raise BadRequest(f"{name} has a host the hub cannot read") from None


def parse_hub_request(
    pairs: list[tuple[str, str]], settings: Settings
) -> SubscriptionRequest | PublishRequest:
    """Validate the parameters of one hub request; raise BadRequest naming what is wrong."""
    values = _single(pairs)
    mode = values.get("hub.mode")
    if mode is None:
        raise BadRequest("hub.mode is missing")
    if mode == "publish":
        return _publish(pairs, settings)
    if mode not in ("subscribe", "unsubscribe"):
        raise BadRequest(f"hub.mode {mode[:40]!r} is not one of subscribe, unsubscribe, publish")
    limit = settings.max_url_length
    if "hub.topic" not in values:
        raise BadRequest("hub.topic is missing")
    if "hub.callback" not in values:
        raise BadRequest("hub.callback is missing")
    topic = validate_url("hub.topic", values["hub.topic"], max_length=limit)
    callback = validate_url("hub.callback", values["hub.callback"], max_length=limit)
    secret = values.get("hub.secret") or None
    if secret is not None and len(secret.encode("utf-8")) >= SECRET_MAX_BYTES:
        raise BadRequest(f"hub.secret must be shorter than {SECRET_MAX_BYTES} bytes")
    lease = None
    if mode == "subscribe" and values.get("hub.lease_seconds", "") != "":
        raw = values["hub.lease_seconds"]
        if not raw.isascii() or not raw.isdigit() or not raw.strip("0"):
            raise BadRequest("hub.lease_seconds must be a positive integer")
        # Any positive integer is valid (it is clamped to HUB_LEASE_MAX later); never ask int()
        # for thousands of digits (Python refuses more than 4300).
        digits = raw.lstrip("0")
        lease = int(digits) if len(digits) <= LEASE_DIGITS else 10**LEASE_DIGITS
    check_topic_policy(topic, settings)
    _check_address("hub.callback", callback, settings)
    return SubscriptionRequest(mode, topic, callback, secret, lease)


def _publish(pairs: list[tuple[str, str]], settings: Settings) -> PublishRequest:
    topics: list[str] = []
    for name, value in pairs:
        if name in ("hub.url", "hub.url[]", "hub.topic", "hub.topic[]"):
            label = name.rstrip("[]")
            topic = validate_url(label, value, max_length=settings.max_url_length)
            if is_hub_topic(topic, settings, label):
                continue  # the poller publishes the hub's own topics: a ping changes nothing
            check_topic_policy(topic, settings, label)
            if topic not in topics:
                topics.append(topic)
    if not topics and not any(n.rstrip("[]") in ("hub.url", "hub.topic") for n, _ in pairs):
        raise BadRequest("hub.url (or hub.topic) is missing")
    return PublishRequest(tuple(topics))

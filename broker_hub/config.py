"""Settings: every ``HUB_*`` environment variable, its coercer and its default, in one table."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SIGNATURE_ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")
HTTP_CLIENTS = ("builtin", "aiohttp")  # the outbound HTTP client (workers/http_engine.py)


class ConfigError(ValueError):
    """An environment variable has a value the hub cannot use."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _prefixes(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _algorithm(value: str) -> str:
    value = value.strip().lower()
    if value not in SIGNATURE_ALGORITHMS:
        raise ValueError(f"must be one of {', '.join(SIGNATURE_ALGORITHMS)}")
    return value


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError("must be a positive finite number")
    return number


def _queue_type(value: str) -> str:
    value = value.strip().lower()
    if value not in ("classic", "quorum"):
        raise ValueError("must be classic or quorum")
    return value


def _http_client(value: str) -> str:
    value = value.strip().lower()
    if value not in HTTP_CLIENTS:
        raise ValueError(f"must be one of {', '.join(HTTP_CLIENTS)}")
    return value


def _index_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL such as https://pypi.org, or empty (off)")
    return value


def _bind(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("must be host:port")
    return value


# env var -> (field name, coercer). Defaults live on the dataclass fields below.
_TABLE: dict[str, tuple[str, Callable[[str], Any]]] = {
    "HUB_BIND": ("bind", _bind),
    "HUB_PUBLIC_URL": ("public_url", str),
    "HUB_BROKER_URL": ("broker_url", str),
    "HUB_DATABASE_URL": ("database_url", str),
    "HUB_ALLOW_PRIVATE_ADDRESSES": ("allow_private_addresses", _bool),
    "HUB_TOPIC_ALLOWLIST": ("topic_allowlist", _prefixes),
    "HUB_LEASE_MIN": ("lease_min", _positive_int),
    "HUB_LEASE_DEFAULT": ("lease_default", _positive_int),
    "HUB_LEASE_MAX": ("lease_max", _positive_int),
    "HUB_DELIVERY_MAX_ATTEMPTS": ("delivery_max_attempts", _positive_int),
    "HUB_DELIVERY_BACKOFF_BASE": ("delivery_backoff_base", _positive_float),
    "HUB_FETCH_MAX_ATTEMPTS": ("fetch_max_attempts", _positive_int),
    "HUB_FETCH_BACKOFF_BASE": ("fetch_backoff_base", _positive_float),
    "HUB_VERIFY_MAX_ATTEMPTS": ("verify_max_attempts", _positive_int),
    "HUB_VERIFY_BACKOFF_BASE": ("verify_backoff_base", _positive_float),
    "HUB_RETRY_AFTER_CAP": ("retry_after_cap", _positive_float),
    "HUB_HTTP_TIMEOUT": ("http_timeout", _positive_float),
    "HUB_HTTP_CLIENT": ("http_client", _http_client),
    "HUB_SIGNATURE_ALGORITHM": ("signature_algorithm", _algorithm),
    "HUB_METRICS_PORT": ("metrics_port", int),
    "HUB_FETCH_MAX_BYTES": ("fetch_max_bytes", _positive_int),
    "HUB_FETCH_MAX_REDIRECTS": ("fetch_max_redirects", int),
    "HUB_FETCH_CONCURRENCY": ("fetch_concurrency", _positive_int),
    "HUB_FETCH_PER_HOST": ("fetch_per_host", _positive_int),
    "HUB_MAX_REQUEST_BYTES": ("max_request_bytes", _positive_int),
    "HUB_MAX_URL_LENGTH": ("max_url_length", _positive_int),
    "HUB_DELIVERY_CONCURRENCY": ("delivery_concurrency", _positive_int),
    "HUB_DELIVERY_PER_HOST": ("delivery_per_host", _positive_int),
    "HUB_DELIVERY_BATCH_SIZE": ("delivery_batch_size", _positive_int),
    "HUB_PREFETCH": ("prefetch", _positive_int),
    "HUB_VERIFY_PREFETCH": ("verify_prefetch", _positive_int),
    "HUB_FETCH_PREFETCH": ("fetch_prefetch", _positive_int),
    "HUB_NOTIFICATION_RETENTION": ("notification_retention", _positive_float),
    "HUB_WEB_WORKERS": ("web_workers", _positive_int),
    "HUB_WEB_THREADS": ("web_threads", _positive_int),
    "HUB_PUBLISH_TOKEN": ("publish_token", str),
    "HUB_MAX_SUBSCRIPTIONS_PER_TOPIC": ("max_subscriptions_per_topic", int),
    "HUB_MAX_SUBSCRIPTIONS_PER_HOST": ("max_subscriptions_per_host", int),
    "HUB_RATE_LIMIT_PER_MINUTE": ("rate_limit_per_minute", int),
    "HUB_VERIFY_RATE_PER_HOST": ("verify_rate_per_host", int),
    "HUB_FETCH_RATE_PER_HOST": ("fetch_rate_per_host", int),
    "HUB_TRUSTED_PROXIES": ("trusted_proxies", int),
    "HUB_PYPI_URL": ("pypi_url", _index_url),
    "HUB_PYPI_POLL_INTERVAL": ("pypi_poll_interval", _positive_float),
    "HUB_PYPI_USER_AGENT": ("pypi_user_agent", str),
    "HUB_PYPI_TIMEOUT": ("pypi_timeout", _positive_float),
    "HUB_PYPI_FALLBACK_AFTER": ("pypi_fallback_after", _positive_float),
    "HUB_PYPI_RETENTION": ("pypi_retention", _positive_float),
    "HUB_PYPI_START_SERIAL": ("pypi_start_serial", int),
    "HUB_NAMESPACE": ("namespace", str),
    "HUB_QUEUE_TYPE": ("queue_type", _queue_type),
    "HUB_QUEUE_DELIVERY_LIMIT": ("queue_delivery_limit", _positive_int),
    "HUB_MIRROR_LABELS_MAX": ("mirror_labels_max", _positive_int),
    "HUB_LOG_LEVEL": ("log_level", str),
}


@dataclass(frozen=True)
class Settings:
    """The hub's whole configuration. Build it with :meth:`from_env` at an entry point."""

    bind: str = "127.0.0.1:8080"
    public_url: str = ""  # empty: http://<bind>/
    broker_url: str = "memory://"
    database_url: str = "sqlite:///var/broker-hub.sqlite3"
    allow_private_addresses: bool = False
    topic_allowlist: tuple[str, ...] = ()
    lease_min: int = 60
    lease_default: int = 864000
    lease_max: int = 2592000
    delivery_max_attempts: int = 8
    delivery_backoff_base: float = 30.0
    # fetch and verification retries: 0 means "as HUB_DELIVERY_MAX_ATTEMPTS / _BACKOFF_BASE"
    fetch_max_attempts: int = 0
    fetch_backoff_base: float = 0.0
    verify_max_attempts: int = 0
    verify_backoff_base: float = 0.0
    retry_after_cap: float = 3600.0
    http_timeout: float = 10.0  # one total deadline per request: connect, head and body
    http_client: str = "builtin"  # or "aiohttp" (the benchmark's comparison)
    signature_algorithm: str = "sha256"
    metrics_port: int = 0  # 0: the worker picks its documented default
    fetch_max_bytes: int = 10 * 1024 * 1024
    fetch_max_redirects: int = 5
    fetch_concurrency: int = 64  # topic fetches in flight in all (HttpEngine.fetch)
    fetch_per_host: int = 8  # topic fetches in flight per topic host
    max_request_bytes: int = 64 * 1024
    max_url_length: int = 2048
    delivery_concurrency: int = 512
    delivery_per_host: int = 64
    delivery_batch_size: int = 500
    prefetch: int = 8
    verify_prefetch: int = 256
    fetch_prefetch: int = 64  # fetch messages taken at once: the fetches that may run together
    notification_retention: float = 7 * 86400.0
    web_workers: int = 2
    web_threads: int = 8
    publish_token: str = field(default="", repr=False)
    max_subscriptions_per_topic: int = 0  # 0: unlimited
    max_subscriptions_per_host: int = 0  # 0: unlimited
    rate_limit_per_minute: int = 600  # hub POSTs per client address per minute; 0: unlimited
    verify_rate_per_host: int = 600  # verification/denial GETs per callback host per minute
    fetch_rate_per_host: int = 600  # topic fetches per topic host per minute; 0: unlimited
    trusted_proxies: int = 0  # reverse proxies whose X-Forwarded-For names the client; 0: none
    pypi_url: str = ""  # the index whose journal the poller watches (https://pypi.org); "": off
    pypi_poll_interval: float = 5.0
    pypi_user_agent: str = "broker-hub PyPI bridge (set HUB_PYPI_USER_AGENT to your contact)"
    pypi_timeout: float = 60.0  # one XML-RPC call, connect to last byte (a page is <= 50,000)
    pypi_fallback_after: float = 120.0  # journal failing this long: RSS updates.xml, degraded
    pypi_retention: float = 7 * 86400.0  # journal entries kept for catch-up
    pypi_start_serial: int = -1  # the first poll starts here; < 0: at the index's newest serial
    namespace: str = "broker_hub"  # prefix of every exchange and queue name
    queue_type: str = "classic"  # work queues: classic, or quorum (replicated)
    queue_delivery_limit: int = 20  # quorum: redeliveries before a message is dead-lettered
    mirror_labels_max: int = 50  # mirrors with their own `mirror` label; the rest: other
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not (self.lease_min <= self.lease_default <= self.lease_max):
            raise ConfigError("need HUB_LEASE_MIN <= HUB_LEASE_DEFAULT <= HUB_LEASE_MAX")
        for prefix in ("fetch", "verify"):
            if not getattr(self, f"{prefix}_max_attempts"):
                object.__setattr__(self, f"{prefix}_max_attempts", self.delivery_max_attempts)
            if not getattr(self, f"{prefix}_backoff_base"):
                object.__setattr__(self, f"{prefix}_backoff_base", self.delivery_backoff_base)
        if not self.public_url:
            object.__setattr__(self, "public_url", f"http://{self.bind}/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Read the ``HUB_*`` variables; unknown or empty variables keep their defaults."""
        values: dict[str, Any] = {}
        for name, (attr, coerce) in _TABLE.items():
            raw = environ.get(name)
            if raw is None or (raw == "" and attr not in ("topic_allowlist", "publish_token")):
                continue
            try:
                values[attr] = coerce(raw)
            except ValueError as exc:
                raise ConfigError(f"{name}={raw!r}: {exc}") from None
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def pypi_enabled(self) -> bool:
        return bool(self.pypi_url)

    @property
    def host(self) -> str:
        return self.bind.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rpartition(":")[2])


def documented_variables() -> list[tuple[str, str, Any]]:
    """(variable, field, default) rows, for the README and ``broker-hub --help``."""
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    return [(name, attr, defaults[attr]) for name, (attr, _) in _TABLE.items()]

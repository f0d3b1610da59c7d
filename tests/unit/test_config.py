"""Unit tests for broker_hub.config: Settings.from_env, its coercers and its checks."""

from __future__ import annotations

import dataclasses

import pytest

from broker_hub.config import ConfigError, Settings, documented_variables


def test_defaults_from_empty_environment() -> None:
    s = Settings.from_env({})
    assert s.bind == "127.0.0.1:8080"
    assert s.public_url == "http://127.0.0.1:8080/"
    assert s.broker_url == "memory://"
    assert s.database_url == "sqlite:///var/broker-hub.sqlite3"
    assert s.allow_private_addresses is False
    assert s.topic_allowlist == ()
    assert (s.lease_min, s.lease_default, s.lease_max) == (60, 864000, 2592000)
    assert s.delivery_max_attempts == 8
    assert s.delivery_backoff_base == 30.0
    assert s.retry_after_cap == 3600.0
    assert s.http_timeout == 10.0
    assert s.signature_algorithm == "sha256"
    assert s.metrics_port == 0
    assert s.fetch_max_bytes == 10 * 1024 * 1024
    assert s.fetch_max_redirects == 5
    assert s.publish_token == ""
    assert s.namespace == "broker_hub"
    assert s.log_level == "INFO"
    assert s.host == "127.0.0.1"
    assert s.port == 8080


def test_unrelated_and_empty_variables_keep_defaults() -> None:
    s = Settings.from_env({"HUB_LEASE_MIN": "", "HUB_BIND": "", "PATH": "/bin", "HUB_NOPE": "x"})
    assert s.lease_min == 60
    assert s.bind == "127.0.0.1:8080"


def test_every_documented_variable_is_read() -> None:
    rows = documented_variables()
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names))
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert {attr for _, attr, _ in rows} == fields
    assert ("HUB_LEASE_MIN", "lease_min", 60) in rows


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        (" TRUE ", True),
        ("yes", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_bool_coercer(raw: str, expected: bool) -> None:
    assert Settings.from_env({"HUB_ALLOW_PRIVATE_ADDRESSES": raw}).allow_private_addresses is (
        expected
    )


def test_positive_int_and_float_coercers() -> None:
    s = Settings.from_env(
        {
            "HUB_DELIVERY_MAX_ATTEMPTS": "3",
            "HUB_DELIVERY_BACKOFF_BASE": "0.25",
            "HUB_HTTP_TIMEOUT": "2",
            "HUB_PREFETCH": "17",
        }
    )
    assert s.delivery_max_attempts == 3
    assert isinstance(s.delivery_max_attempts, int)
    assert s.delivery_backoff_base == 0.25
    assert s.http_timeout == 2.0
    assert isinstance(s.http_timeout, float)
    assert s.prefetch == 17


def test_plain_int_coercer_allows_zero() -> None:
    s = Settings.from_env({"HUB_METRICS_PORT": "9100", "HUB_MAX_SUBSCRIPTIONS_PER_TOPIC": "0"})
    assert s.metrics_port == 9100
    assert s.max_subscriptions_per_topic == 0


def test_algorithm_coercer_normalises_case() -> None:
    assert Settings.from_env({"HUB_SIGNATURE_ALGORITHM": " SHA512 "}).signature_algorithm == (
        "sha512"
    )


def test_prefix_list_coercer() -> None:
    s = Settings.from_env({"HUB_TOPIC_ALLOWLIST": " https://a.example/ , ,https://b.example/x,"})
    assert s.topic_allowlist == ("https://a.example/", "https://b.example/x")


def test_empty_topic_allowlist_is_empty_tuple() -> None:
    assert Settings.from_env({"HUB_TOPIC_ALLOWLIST": ""}).topic_allowlist == ()
    assert Settings.from_env({"HUB_TOPIC_ALLOWLIST": " , "}).topic_allowlist == ()


def test_bind_coercer_and_derived_host_port() -> None:
    s = Settings.from_env({"HUB_BIND": "0.0.0.0:9000"})
    assert (s.host, s.port) == ("0.0.0.0", 9000)
    v6 = Settings.from_env({"HUB_BIND": "[::1]:8081"})
    assert (v6.host, v6.port) == ("::1", 8081)
    assert v6.public_url == "http://[::1]:8081/"


def test_public_url_default_follows_bind_and_explicit_wins() -> None:
    assert Settings.from_env({"HUB_BIND": "10.0.0.1:1234"}).public_url == "http://10.0.0.1:1234/"
    s = Settings.from_env({"HUB_BIND": "10.0.0.1:1234", "HUB_PUBLIC_URL": "https://hub.example/"})
    assert s.public_url == "https://hub.example/"


def test_publish_token_read_and_hidden_from_repr() -> None:
    s = Settings.from_env({"HUB_PUBLISH_TOKEN": "s3cr3t-token"})
    assert s.publish_token == "s3cr3t-token"
    assert "s3cr3t-token" not in repr(s)


def test_overrides_win_over_environment() -> None:
    s = Settings.from_env({"HUB_NAMESPACE": "from_env"}, namespace="override")
    assert s.namespace == "override"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("HUB_ALLOW_PRIVATE_ADDRESSES", "maybe"),
        ("HUB_LEASE_MIN", "abc"),
        ("HUB_LEASE_MIN", "0"),
        ("HUB_LEASE_MAX", "-5"),
        ("HUB_DELIVERY_MAX_ATTEMPTS", "1.5"),
        ("HUB_DELIVERY_BACKOFF_BASE", "0"),
        ("HUB_DELIVERY_BACKOFF_BASE", "-1.0"),
        ("HUB_HTTP_TIMEOUT", "soon"),
        ("HUB_SIGNATURE_ALGORITHM", "md5"),
        ("HUB_METRICS_PORT", "ninety"),
        ("HUB_BIND", "localhost"),
        ("HUB_BIND", ":8080"),
        ("HUB_BIND", "localhost:http"),
        ("HUB_FETCH_MAX_REDIRECTS", "x"),
    ],
)
def test_bad_values_raise_config_error_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: raw})
    assert name in str(info.value)
    assert repr(raw) in str(info.value)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    "env",
    [
        {"HUB_LEASE_MIN": "100", "HUB_LEASE_DEFAULT": "50"},
        {"HUB_LEASE_DEFAULT": "3000000"},  # above the default max
        {"HUB_LEASE_MAX": "30"},  # below the default min
    ],
)
def test_lease_ordering_is_checked(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="HUB_LEASE_MIN <= HUB_LEASE_DEFAULT <= HUB_LEASE_MAX"):
        Settings.from_env(env)


def test_equal_leases_are_allowed() -> None:
    s = Settings.from_env({"HUB_LEASE_MIN": "5", "HUB_LEASE_DEFAULT": "5", "HUB_LEASE_MAX": "5"})
    assert (s.lease_min, s.lease_default, s.lease_max) == (5, 5, 5)


def test_replace_rechecks_and_keeps_other_fields() -> None:
    s = Settings.from_env({"HUB_NAMESPACE": "ns1"})
    t = s.replace(lease_default=120)
    assert t.lease_default == 120
    assert t.namespace == "ns1"
    assert s.lease_default == 864000
    with pytest.raises(ConfigError):
        s.replace(lease_min=10**9)


@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_positive_float_rejects_non_finite(raw: str) -> None:
    # A NaN or infinite timeout/backoff is not a usable positive number.
    with pytest.raises(ConfigError, match="HUB_HTTP_TIMEOUT"):
        Settings.from_env({"HUB_HTTP_TIMEOUT": raw})


def test_pypi_url_is_checked_and_trimmed() -> None:
    assert Settings.from_env({"HUB_PYPI_URL": "https://pypi.org/"}).pypi_url == "https://pypi.org"
    assert not Settings.from_env({}).pypi_enabled
    with pytest.raises(ConfigError, match="HUB_PYPI_URL"):
        Settings.from_env({"HUB_PYPI_URL": "pypi.org"})

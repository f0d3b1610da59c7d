"""Token buckets: the web front's limiter and the workers' pacer (clock injected)."""

from __future__ import annotations

import pytest

from broker_hub.ratelimit import (
    AddressCache,
    Pacer,
    RateLimiter,
    address_key,
    client_key,
    host_key,
    retry_after_header,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_allows_a_minute_at_once_then_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(6, clock=clock)
    assert [limiter.acquire("a") for _ in range(6)] == [0.0] * 6
    assert limiter.acquire("a") == pytest.approx(10.0)
    assert limiter.acquire("b") == 0.0  # keys are independent
    clock.now += 10
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(10.0)


def test_limiter_refusals_take_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.acquire("a") == 0.0
    for _ in range(5):
        assert limiter.acquire("a") == pytest.approx(60.0)
    clock.now += 60
    assert limiter.acquire("a") == 0.0


def test_zero_means_unlimited() -> None:
    assert not RateLimiter(0).enabled
    assert all(RateLimiter(0).acquire("a") == 0.0 for _ in range(1000))
    assert all(Pacer(0).delay("h", str(i)) == 0.0 for _ in range(1000) for i in range(1))


def test_pacer_reserves_slots_and_honours_them_once() -> None:
    clock = Clock()
    pacer = Pacer(60, clock=clock)
    assert [pacer.delay("h", f"m{i}") for i in range(60)] == [0.0] * 60
    waits = [pacer.delay("h", f"late{i}") for i in range(3)]
    assert waits == [pytest.approx(1.0), pytest.approx(2.0), pytest.approx(3.0)]
    # Back too early (a delay queue rounding down): wait for the rest, the slot is kept.
    clock.now += 0.5
    assert pacer.delay("h", "late0") == pytest.approx(0.5)
    clock.now += 0.5
    assert pacer.delay("h", "late0") == 0.0
    # The same message again is new work: it gets a new slot at the end of the line.
    assert pacer.delay("h", "late0") == pytest.approx(3.0)
    clock.now += 2
    assert pacer.delay("h", "late1") == 0.0
    assert pacer.delay("other", "late2") == 0.0  # another host


def test_keys() -> None:
    assert client_key("192.0.2.1") == "192.0.2.1"
    assert client_key("2001:db8:1:2:3:4:5:6") == client_key("2001:db8:1:2:ffff::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key(None) == "unknown"
    assert host_key("https://Mirror.Example.org:8443/cb?x=1") == "mirror.example.org"
    assert host_key("http://example.org./") == "example.org"
    assert host_key("http://[::1/") == "unknown"
    assert retry_after_header(0.01) == "1" and retry_after_header(11.2) == "12"


# -- issue 15: pacing counts addresses, not spellings ------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/cb",
        "http://127.1/cb",
        "http://2130706433:8080/cb",
        "http://0x7f.1/cb",
        "http://0x7f000001/",
        "http://127.0.0.01/cb",
        "http://0177.0.0.1/cb",
        "http://[::ffff:127.0.0.1]/cb",
        "http://[::ffff:7f00:1]:9/cb",
        "http://localhost/cb",  # a name: resolved (through /etc/hosts)
    ],
)
def test_every_spelling_of_loopback_has_one_key(url: str) -> None:
    assert address_key(url) == "127.0.0.1"


def test_a_public_address_has_one_key_whatever_the_spelling() -> None:
    spellings = ["93.184.216.34", "93.184.55330", "1572395042", "0x5d.0xb8.0xd8.0x22"]
    assert {address_key(f"http://{s}/") for s in spellings} == {"93.184.216.34"}
    # IPv6: one /64 is one site
    assert address_key("http://[2001:db8::1]/") == address_key("http://[2001:db8::ffff]:81/")
    assert address_key("http://[2001:db8::1]/") == "2001:db8::/64"


def test_names_are_resolved_once_and_cached_briefly() -> None:
    clock, calls = Clock(), []

    def resolve(name: str) -> list[str]:
        calls.append(name)
        return ["10.0.0.9", "10.0.0.7"] if name == "victim.example" else []

    cache = AddressCache(ttl=60, clock=clock, resolve=resolve)
    assert address_key("http://Victim.Example./a", cache=cache) == "10.0.0.7"
    assert address_key("http://victim.example:8080/b", cache=cache) == "10.0.0.7"
    assert calls == ["victim.example"]
    clock.now += 61
    address_key("http://victim.example/", cache=cache)
    assert calls == ["victim.example"] * 2
    assert address_key("http://nowhere.example/", cache=cache) == "nowhere.example"


def test_a_pacer_keyed_by_address_paces_all_spellings_together() -> None:
    pacer = Pacer(3, clock=Clock())
    urls = [f"http://{h}/cb" for h in ("127.1", "2130706433", "0x7f.1", "127.0.0.01")] * 3
    waits = [pacer.delay(address_key(u), u + str(i)) for i, u in enumerate(urls)]
    assert sum(1 for w in waits if w == 0) == 3  # a limit of 3 lets 3 through, not 12

"""Property-based fuzzing of the hub endpoint: thousands of odd requests, never a 5xx.

The hub runs with its defaults (private addresses refused), so accepted requests can only
make it try hosts that do not resolve here; nothing generated reaches a real service.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.hubs import Hub

NAMES = [
    "hub.mode",
    "hub.topic",
    "hub.callback",
    "hub.secret",
    "hub.lease_seconds",
    "hub.url",
    "hub.url[]",
    "hub.topic[]",
    "hub.token",
    "hub.verify",
    "hub.foo",
    "",
    "hub",
    "hub.mode[]",
]
MODES = ["subscribe", "unsubscribe", "publish", "denied", "", "SUBSCRIBE", "publish\x00", "é"]
SCHEMES = ["http", "https", "HTTP", "ftp", "javascript", "file", "", "http:", "gopher"]
HOSTS = [
    "example.invalid",
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "localhost",
    "LOCALHOST.",
    "a.localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[fe80::1%25eth0]",
    "[64:ff9b::a9fe:a9fe]",
    "169.254.169.254",
    "[fd00:ec2::254]",
    "0",
    "0.0.0.0",
    "10.0.0.1",
    "xn--nxasmq6b.invalid",
    "\u00e4\u00f6\u00fc.invalid",
    "user:pass@example.invalid",
    "exa mple.invalid",
    "[",
    "]",
    "[::1",
    "a" * 300 + ".invalid",
    "%31%32%37.0.0.1",
    "example.invalid.",
    "@",
    "",
]
PORTS = ["", ":80", ":0", ":65535", ":65536", ":99999999999", ":-1", ":abc", ":", ":8\u0661"]
TAILS = ["/", "", "/feed?x=1", "/#frag", "/%zz", "/%00", "/\u2028", "/?" + "q" * 3000, "\\..\\"]

odd_urls = st.one_of(
    st.builds(
        lambda s, h, p, t: f"{s}://{h}{p}{t}",
        st.sampled_from(SCHEMES),
        st.sampled_from(HOSTS),
        st.sampled_from(PORTS),
        st.sampled_from(TAILS),
    ),
    st.text(max_size=80),
)
values = st.one_of(
    odd_urls,
    st.sampled_from(MODES),
    st.integers(-(10**30), 10**30).map(str),
    st.text(max_size=300),
    st.integers(190, 210).map(lambda n: "s" * n),
    st.integers(1, 70_000).map(lambda n: "x" * n),
)
pairs = st.lists(
    st.tuples(st.one_of(st.sampled_from(NAMES), st.text(max_size=20)), values), max_size=12
)

good_urls = st.builds(
    lambda h, t: f"http://{h}/{t}",
    st.sampled_from(["example.invalid", "feeds.invalid:8080", "xn--nxasmq6b.invalid"]),
    st.text(alphabet="abc/?=&%", max_size=20),
)
any_url = st.one_of(good_urls, good_urls, odd_urls)
structured = st.builds(
    lambda mode, topic, callback, extra, dup: [
        ("hub.mode", mode),
        ("hub.url" if mode == "publish" else "hub.topic", topic),
        ("hub.callback", callback),
        *extra,
        *dup,
    ],
    st.sampled_from(["subscribe", "unsubscribe", "publish", "publish", *MODES]),
    any_url,
    any_url,
    st.lists(
        st.tuples(st.sampled_from(["hub.secret", "hub.lease_seconds", "x", "hub.foo"]), values),
        max_size=3,
    ),
    st.lists(st.tuples(st.sampled_from(NAMES[:6]), any_url), max_size=2),
)
pairs = st.one_of(pairs, structured, structured)


def _form(items: list[tuple[str, str]], encoding: str) -> bytes:
    return "&".join(
        f"{quote(k, safe='', encoding=encoding, errors='replace')}="
        f"{quote(v, safe='', encoding=encoding, errors='replace')}"
        for k, v in items
    ).encode("ascii")


bodies = st.one_of(
    st.builds(_form, pairs, st.sampled_from(["utf-8", "latin-1", "utf-16"])),
    st.builds(
        lambda items: "&".join(f"{k}={v}" for k, v in items).encode("utf-8", "replace"), pairs
    ),
    st.binary(max_size=2000),
    st.just(b""),
    st.integers(60_000, 80_000).map(lambda n: b"hub.mode=publish&hub.url=" + b"a" * n),
)
CONTENT_TYPES = [
    None,
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded; charset=latin-1",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/json",
    "multipart/form-data; boundary=zz",
    "text/plain",
    "",
    ";",
    "application/x-www-form-urlencoded;;;=",
]
FORM = "application/x-www-form-urlencoded"
SUBSCRIBE = (
    b"hub.mode=subscribe&hub.topic=http%3A%2F%2Fexample.invalid%2Ff"
    b"&hub.callback=http%3A%2F%2Fexample.invalid%2Fcb&hub.secret=s&hub.lease_seconds=60"
)
METHODS = ["POST"] * 6 + ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"]


@pytest.fixture(scope="module")
def hub(hub_factory) -> Hub:
    return hub_factory(HUB_DELIVERY_MAX_ATTEMPTS="1", HUB_HTTP_TIMEOUT="1")


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def test_fuzz_hub_endpoint_never_5xx(hub, session):
    seen: dict[int, int] = {}

    @settings(
        max_examples=1500,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        request=st.one_of(
            st.tuples(
                st.sampled_from(METHODS),
                st.sampled_from(CONTENT_TYPES),
                bodies,
                st.one_of(st.just(b""), st.builds(_form, pairs, st.just("utf-8"))),
            ),
            # Close to valid: the paths past parsing (address policy, queueing) get exercised.
            st.tuples(
                st.just("POST"),
                st.sampled_from(CONTENT_TYPES[1:3]),
                st.builds(_form, structured, st.just("utf-8")),
                st.just(b""),
            ),
        ),
        chunked=st.booleans(),
    )
    @example(request=("POST", FORM, SUBSCRIBE, b""), chunked=False)  # 202
    @example(
        request=("POST", FORM, b"hub.mode=publish&hub.url=http://a.invalid/", b""), chunked=True
    )
    @example(
        request=("POST", FORM, SUBSCRIBE.replace(b"example.invalid", b"[::1]"), b""), chunked=False
    )
    @example(request=("POST", FORM, b"x=" + b"a" * 70_000, b""), chunked=True)  # 413
    @example(request=("POST", "application/json", b"{}", b""), chunked=False)  # 415
    @example(request=("PATCH", FORM, SUBSCRIBE, b""), chunked=False)  # 405
    @example(request=("POST", None, b"", SUBSCRIBE), chunked=False)  # bodiless, query string
    def one(request, chunked):
        method, content_type, body, query = request
        headers = {} if content_type is None else {"Content-Type": content_type}
        url = hub.url + ("?" + query.decode() if query else "")
        data = iter([body]) if chunked and body else body  # an iterator is sent chunked
        response = session.request(method, url, data=data, headers=headers, timeout=10)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, response.text[:300])

    one()
    assert sum(seen.values()) >= 1000
    assert {202, 204, 400, 403, 405, 413, 415} <= set(seen), seen
    assert hub.healthy()
    assert requests.get(hub.url, timeout=10).status_code == 200
    response = hub.post({"hub.mode": "publish"})
    assert response.status_code == 400

from __future__ import annotations

from broker_hub.pypi.journal import RateLimit


def test_rate_limit_headers_parse_defensively() -> None:
    assert RateLimit.from_headers({"RateLimit-Limit": "100", "RateLimit-Remaining": "3",
                                   "RateLimit-Reset": "2.5"}) == RateLimit(100, 3, 2.5)
    for junk in ("inf", "nan", "-1", "soon", ""):
        assert RateLimit.from_headers({"RateLimit-Limit": junk, "RateLimit-Remaining": junk,
                                       "RateLimit-Reset": junk}) == RateLimit(None, None, None)

"""Unit tests for broker_hub.signing against an independent hashlib/hmac computation."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from broker_hub.config import SIGNATURE_ALGORITHMS
from broker_hub.signing import signature_header, verify_signature

BODY = b'<?xml version="1.0"?><feed>\x00\xff caf\xc3\xa9</feed>'
SECRET = "s\u00e9cret-\u2603"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_signature_matches_independent_hmac(algorithm: str) -> None:
    expected = hmac.new(SECRET.encode("utf-8"), BODY, algorithm).hexdigest()
    header = signature_header(SECRET, BODY, algorithm)
    assert header == f"{algorithm}={expected}"
    assert len(expected) == hashlib.new(algorithm).digest_size * 2
    assert verify_signature(SECRET, BODY, header)


def test_default_algorithm_is_sha256() -> None:
    expected = hmac.new(b"k", b"body", hashlib.sha256).hexdigest()
    assert signature_header("k", b"body") == f"sha256={expected}"


def test_known_vector() -> None:
    # RFC 4231 test case 2.
    header = signature_header("Jefe", b"what do ya want for nothing?", "sha256")
    assert header == ("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_configured_algorithms_all_supported() -> None:
    for algorithm in SIGNATURE_ALGORITHMS:
        assert verify_signature("k", b"b", signature_header("k", b"b", algorithm))


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_tampered_body_rejected(algorithm: str) -> None:
    header = signature_header(SECRET, BODY, algorithm)
    assert not verify_signature(SECRET, BODY + b" ", header)
    assert not verify_signature(SECRET, BODY[:-1], header)
    flipped = bytes([BODY[0] ^ 1]) + BODY[1:]
    assert not verify_signature(SECRET, flipped, header)


def test_wrong_secret_rejected() -> None:
    header = signature_header("right", BODY)
    assert not verify_signature("wrong", BODY, header)


def test_tampered_digest_rejected() -> None:
    header = signature_header(SECRET, BODY)
    last = header[-1]
    bad = header[:-1] + ("0" if last != "0" else "1")
    assert not verify_signature(SECRET, BODY, bad)


@pytest.mark.parametrize(
    "header",
    ["", "sha256", "sha256=", "=abc", "md5=" + hashlib.md5(b"x").hexdigest(), "garbage"],
)
def test_malformed_headers_rejected(header: str) -> None:
    assert not verify_signature(SECRET, BODY, header)


def test_algorithm_mismatch_rejected() -> None:
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    assert not verify_signature(SECRET, BODY, f"sha256={digest}")

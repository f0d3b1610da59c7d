"""``X-Hub-Signature``: an HMAC of the exact body with the subscriber's secret."""

from __future__ import annotations

import hashlib
import hmac


def signature_header(secret: str, body: bytes, algorithm: str = "sha256") -> str:
    """The header value, ``<algorithm>=<hex digest>``."""
    digest = hmac.new(secret.encode("utf-8"), body, getattr(hashlib, algorithm)).hexdigest()
    return f"{algorithm}={digest}"


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """True when ``header`` is a valid signature of ``body`` (constant-time comparison)."""
    algorithm, _, given = header.partition("=")
    if algorithm not in ("sha1", "sha256", "sha384", "sha512") or not given:
        return False
    return hmac.compare_digest(signature_header(secret, body, algorithm), f"{algorithm}={given}")

"""Project names: PEP 503 normalization and the PEP 508 validity rule."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[-_.]+")
_VALID = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)
MAX_NAME_LENGTH = 200  # PyPI's own limit is lower; this only bounds what we store


def normalize(name: str) -> str:
    """PEP 503: runs of ``-``, ``_`` and ``.`` become one ``-``; lowercase."""
    return _SEPARATORS.sub("-", name).lower()


def is_valid_name(name: object) -> bool:
    """True when ``name`` is a string PEP 508 accepts as a project name (ASCII only)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and name.isascii()
        and _VALID.match(name) is not None
    )

"""Project names: PEP 503 normalisation and the validity check for names put on a command line."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

_RUNS = re.compile(r"[-_.]+")
# PEP 508 names: letters, digits, and . _ - inside (never first or last).
_VALID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?$")


def normalize(name: str) -> str:
    """The PEP 503 normalized form: lower case, every run of ``-_.`` one ``-``."""
    return _RUNS.sub("-", name).lower()


def is_valid(name: str) -> bool:
    """True for a valid project name (safe as one command-line argument: never starts with -)."""
    return bool(_VALID.match(name))


class NameFilter:
    """The operator's allow/deny patterns (shell-style, on normalized names).

    No allow pattern: everything is allowed. A deny pattern wins over an allow pattern.
    """

    def __init__(self, allow: Sequence[str] = (), deny: Sequence[str] = ()):
        self.allow = tuple(normalize(p) for p in allow)
        self.deny = tuple(normalize(p) for p in deny)

    def __call__(self, normalized: str) -> bool:
        if any(fnmatch.fnmatchcase(normalized, p) for p in self.deny):
            return False
        return not self.allow or any(fnmatch.fnmatchcase(normalized, p) for p in self.allow)

"""Project names (the core's PEP 503 / PEP 508 helpers) and the operator's allow/deny filter."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from broker_hub.pypi.names import is_valid_name as is_valid
from broker_hub.pypi.names import normalize

__all__ = ["NameFilter", "is_valid", "normalize"]


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

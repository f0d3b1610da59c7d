"""The hub's PyPI topic URLs: ``<hub>pypi/changes`` and ``<hub>pypi/project/<normalized>``."""

from __future__ import annotations

from urllib.parse import urlsplit

from broker_hub.pypi.names import is_valid_name, normalize

PYPI_PREFIX = "pypi/"
FIREHOSE_PATH = "pypi/changes"
PROJECT_PREFIX = "pypi/project/"


def _base(public_url: str) -> str:
    return public_url if public_url.endswith("/") else public_url + "/"


def firehose_topic(public_url: str) -> str:
    return _base(public_url) + FIREHOSE_PATH


def project_topic(public_url: str, name: str) -> str:
    """The project's topic URL (the name is normalized first); ValueError for invalid names."""
    if not is_valid_name(name):
        raise ValueError(f"{name!r:.100} is not a valid project name")
    return _base(public_url) + PROJECT_PREFIX + normalize(name)


def parse_topic(public_url: str, topic: str) -> tuple[str, str | None] | None:
    """``("firehose", None)``, ``("project", normalized)`` or None (not a PyPI topic of this hub).

    A project topic must be spelled normalized: ``.../pypi/project/Foo_Bar`` is None, so one
    project has exactly one topic URL.
    """
    base = _base(public_url)
    path = topic.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith(base):
        return None
    rest = path[len(base):]
    if rest == FIREHOSE_PATH:
        return "firehose", None
    if rest.startswith(PROJECT_PREFIX):
        name = rest[len(PROJECT_PREFIX):]
        if is_valid_name(name) and normalize(name) == name:
            return "project", name
    return None


def source_of(index_url: str) -> str:
    """The ``source`` field of notifications: the host of the index URL (``pypi.org``)."""
    host = urlsplit(index_url).hostname or ""
    port = urlsplit(index_url).port
    return f"{host}:{port}" if port else host

"""A small PyPI-shaped index for trying broker-hub offline (and for its tests).

Standard library only. It answers like pypi.org: XML-RPC ``changelog_last_serial()`` and
``changelog_since_serial(n)`` at ``POST /pypi`` (with ``RateLimit-*`` headers), RSS without
``<guid>`` (``/rss/updates.xml``, ``/rss/packages.xml``, ``/rss/project/<name>/releases.xml``,
ETag + ``If-None-Match`` -> 304), the JSON API (``/pypi/<name>/json``,
``/pypi/<name>/<version>/json``), the simple index (PEP 503 HTML and PEP 691 JSON with
``Accept: application/vnd.pypi.simple.v1+json``) with ``X-PyPI-Last-Serial``, and real small
wheels and sdists under ``/packages/...``, so ``pip download`` works against it.

Start it (from the repository root)::

    python -m examples.fake_pypi --port 8100          # prints "LISTENING 8100"
    python -m examples.fake_pypi --port 8100 --state var/fake-pypi.json   # keeps its state

Add a release, then look at what PyPI's clients would see::

    curl -s -XPOST localhost:8100/_control/release -d '{"name": "Foo_Bar", "version": "1.0"}'
    curl -s localhost:8100/pypi/Foo_Bar/json | python -m json.tool
    curl -s -H 'Accept: application/vnd.pypi.simple.v1+json' localhost:8100/simple/foo-bar/
    python -c 'import xmlrpc.client as x; print(x.ServerProxy("http://localhost:8100/pypi")
        .changelog_since_serial(0))'
    pip download foo-bar==1.0 --no-deps --index-url http://localhost:8100/simple/

Then point the hub at it: ``HUB_PYPI_URL=http://127.0.0.1:8100 make run``.

Control API (``POST /_control/<op>``, JSON object body; answers
``{"serials": [...], "last_serial": n, "at": <unix time after the change>}``, or 4xx
``{"error": "..."}``):

- ``release`` ``{"name", "version", "files": ["wheel", "sdist"] (default both; or
  {"kind": "wheel", "tag": "py3-none-any"}), "requires_python", "summary"}``: a new project
  journals ``create`` and ``add Owner fake-owner`` first, then ``new release`` and one
  ``add py3 file <f>`` / ``add source file <f>`` per file.
- ``add_file`` ``{"name", "version", "kind": "wheel"|"sdist", "tag"}``: a late file.
- ``yank`` / ``unyank`` ``{"name", "version", "reason"}``; ``remove_file``
  ``{"name", "version", "filename"}``; ``remove_release`` ``{"name", "version"}``;
  ``remove_project`` ``{"name"}``; ``quarantine`` / ``clear_quarantine`` ``{"name"}``;
  ``role`` ``{"name", "user", "role": "Owner"|"Maintainer", "op": "add"|"remove"|"change",
  "to"}``.
- ``backlog`` ``{"count", "projects", "prefix"}``: at least ``count`` journal entries spread
  over ``projects`` projects named ``<prefix>-<i>`` (answers ``written``); a new project takes
  3 entries (create, add Owner, new release), so ``{"count": 30000, "projects": 10000}``
  changes 10,000 projects in one go.
- ``fault`` ``{"count", "code", "text"}`` or ``{"count", "rate_limit": true}``: the next
  ``count`` XML-RPC calls answer an XML-RPC Fault.
- ``outage`` ``{"on": true|false, "rss": false}``: XML-RPC (and with ``rss`` the RSS feeds)
  answers 503 with an HTML page until cleared.
- ``garbage`` ``{"mode", "count", "size"}``: the next answers are ``malformed_xml``,
  ``html_200``, ``serial_backwards``, ``invalid_name``, ``huge`` (``size`` bytes) or
  ``entity``; ``rss_html``, ``rss_entity``, ``rss_malformed``
  spoil the next ``/rss/updates.xml`` answers instead.
- ``ratelimit`` ``{"limit", "window"}``: calls per window before 429 + a rate-limit Fault.
- ``cdn_lag`` ``{"seconds"}``: project pages serve the state before a change for that long
  after it (PyPI's journal commits before its CDN purge).
- ``reset`` ``{}``. ``GET /_control/stats``: serial, counts, recent XML-RPC User-Agents.

From Python: ``FakePyPIClient(url).release("Foo_Bar", "1.0")``.
"""

from .client import ControlFailed, FakePyPIClient
from .server import FakePyPIServer

__all__ = ["ControlFailed", "FakePyPIClient", "FakePyPIServer"]

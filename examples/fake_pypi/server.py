"""The HTTP side: routes PyPI's URLs and the ``/_control/`` API onto the index."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from . import artifacts, pages, persist, rpc
from .control import dispatch
from .model import ControlError, Index, Release

MAX_BODY = 1 << 20


class FakePyPIServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], *, state_path: Path | None = None) -> None:
        super().__init__(address, Handler)
        self.index = Index(state_path=state_path)
        if state_path is not None and state_path.exists():
            persist.load(self.index, json.loads(state_path.read_text()))
        self.faults = rpc.Faults()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakePyPIServer
    server_version = "fake-pypi/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: a 60,000-entry backlog test must not write megabytes of access log

    # --- plumbing --------------------------------------------------------------------------

    @property
    def base(self) -> str:
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return f"http://{host}"

    def _send(self, status: int, body: bytes | Iterator[bytes] = b"",
              headers: dict[str, str] | None = None, content_type: str = "text/plain") -> None:
        headers = dict(headers or {})
        headers.setdefault("Content-Type", content_type)
        if isinstance(body, bytes):
            headers["Content-Length"] = str(len(body))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if isinstance(body, bytes):
            self.wfile.write(body)
        else:
            for chunk in body:
                self.wfile.write(chunk)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers, "application/json")

    def _redirect(self, location: str) -> None:
        self._send(301, b"", {"Location": location})

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            self._send(413 if length.isdigit() else 411, b"body missing or too large\n")
            return None
        return self.rfile.read(int(length))

    # --- GET -------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        index = self.server.index
        real, self.wfile = self.wfile, io.BytesIO()  # render under the lock, send after it
        try:
            with index.lock:
                try:
                    self._get(index, url.path, parts, parse_qs(url.query))
                except ControlError as exc:
                    self._send(exc.status, f"{exc}\n".encode())
            real.write(self.wfile.getvalue())
        finally:
            self.wfile = real

    def _get(self, index: Index, path: str, parts: list[str], query: dict[str, list[str]]) -> None:
        if parts[:1] == ["simple"]:
            return self._simple(index, path, parts, query)
        if parts[:1] == ["pypi"] and len(parts) in (3, 4) and parts[-1] == "json":
            return self._json_api(index, parts[1], parts[2] if len(parts) == 4 else None)
        if parts[:1] == ["rss"]:
            return self._rss(index, parts)
        if parts[:1] == ["packages"]:
            return self._file(index, path)
        if parts[:1] == ["project"] and len(parts) in (2, 3):
            project = index.visible(artifacts.normalize(parts[1]))
            if project is None or project.quarantined:
                return self._send(404, b"not found\n")
            return self._send(200, f"<html><body><h1>{project.name}</h1></body></html>".encode(),
                              content_type="text/html; charset=utf-8")
        if path == "/_control/stats":
            faults = self.server.faults
            return self._json(200, {
                "last_serial": index.serial, "projects": len(index.projects),
                "journal": len(index.journal), "xmlrpc_calls": faults.calls,
                "methods": faults.methods, "user_agents": list(faults.user_agents),
                "outage": faults.outage, "cdn_lag": index.cdn_lag,
            })
        if path == "/":
            return self._send(200, b"fake PyPI: /simple/, /pypi/<name>/json, /rss/\n")
        self._send(404, b"not found\n")

    def _simple(self, index: Index, path: str, parts: list[str], query: dict) -> None:
        accept = self.headers.get("Accept", "")
        fmt = query.get("format", [""])[0]
        as_json = pages.SIMPLE_JSON in accept or fmt == pages.SIMPLE_JSON
        ctype = pages.SIMPLE_JSON if as_json else (
            pages.SIMPLE_HTML if pages.SIMPLE_HTML in accept else "text/html; charset=utf-8")
        headers = {"Vary": "Accept"}
        if len(parts) == 1:
            if not path.endswith("/"):
                return self._redirect("/simple/")
            headers["X-PyPI-Last-Serial"] = str(index.serial)
            return self._send(200, pages.simple_root(index, as_json), headers, ctype)
        if len(parts) != 2:
            return self._send(404, b"not found\n")
        normalized = artifacts.normalize(parts[1])
        if parts[1] != normalized or not path.endswith("/"):
            return self._redirect(f"/simple/{quote(normalized)}/")
        project = index.visible(normalized)
        if project is None or project.quarantined:
            return self._send(404, b"not found\n")
        headers["X-PyPI-Last-Serial"] = str(project.last_serial)
        self._send(200, pages.simple_project(index, project, self.base, as_json), headers, ctype)

    def _json_api(self, index: Index, name: str, version: str | None) -> None:
        project = index.visible(artifacts.normalize(name))
        if project is None or project.quarantined:
            return self._json(404, {"message": "Not Found"})
        if name != project.name:  # like PyPI: redirect to the project's own spelling
            tail = f"{quote(version)}/json" if version else "json"
            return self._redirect(f"/pypi/{quote(project.name)}/{tail}")
        if version is not None and version not in project.releases:
            return self._json(404, {"message": "Not Found"})
        body = pages.project_json(index, project, self.base, version)
        self._json(200, body, {"X-PyPI-Last-Serial": str(project.last_serial)})

    def _rss(self, index: Index, parts: list[str]) -> None:
        faults = self.server.faults
        if faults.rss_outage:
            return self._send(503, rpc.OUTAGE_PAGE, content_type="text/html; charset=utf-8")
        if parts == ["rss", "updates.xml"] and faults.rss_garbage:
            mode = faults.rss_garbage.popleft()
            return self._send(200, rpc.RSS_GARBAGE[mode], content_type=(
                "text/html; charset=utf-8" if mode == "rss_html" else "text/xml; charset=utf-8"))
        if parts == ["rss", "updates.xml"]:
            body = pages.rss_updates(index, self.base)
        elif parts == ["rss", "packages.xml"]:
            body = pages.rss_packages(index, self.base)
        elif len(parts) == 4 and parts[1] == "project" and parts[3] == "releases.xml":
            project = index.visible(artifacts.normalize(parts[2]))
            if project is None or project.quarantined:
                return self._send(404, b"not found\n")
            body = pages.rss_project(project, self.base)
        else:
            return self._send(404, b"not found\n")
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        headers = {"ETag": etag, "Last-Modified": formatdate(index_mtime(index), usegmt=True),
                   "Cache-Control": "max-age=60, public"}
        match = self.headers.get("If-None-Match")
        if match is not None:
            if etag in [t.strip() for t in match.split(",")]:
                return self._send(304, b"", headers)
        elif _not_modified_since(self.headers.get("If-Modified-Since"), index_mtime(index)):
            return self._send(304, b"", headers)
        self._send(200, body, headers, "text/xml; charset=utf-8")

    def _file(self, index: Index, path: str) -> None:
        metadata = path.endswith(".metadata")
        found = index.files.get(path[: -len(".metadata")] if metadata else path)
        if found is None:
            return self._send(404, b"not found\n")
        normalized, version, file = found
        project = index.projects.get(normalized)
        release = project.releases.get(version) if project else None
        if project is None or release is None:  # removed since: rebuild from what we know
            release = Release(version, file.upload_time)
        name = project.name if project else normalized
        if metadata:
            if file.kind != "wheel":
                return self._send(404, b"not found\n")
            body = artifacts.metadata(name, version, release.requires_python, release.summary)
            return self._send(200, body, content_type="text/plain")
        self._send(200, file.content(name, release), content_type="application/octet-stream")

    # --- POST ------------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if body is None:
            return
        index = self.server.index
        if path in ("/pypi", "/pypi/", "/RPC2"):
            with index.lock:
                status, headers, answer = rpc.handle(
                    index, self.server.faults, body, self.headers.get("User-Agent", ""))
            return self._send(status, answer, headers)
        if path.startswith("/_control/"):
            try:
                request = json.loads(body or b"{}")
                if not isinstance(request, dict):
                    raise ControlError("the body must be a JSON object")
                with index.lock:
                    result = dispatch(index, self.server.faults, path[len("/_control/"):],
                                      request)
                    persist.save(index)
                return self._json(200, result)
            except json.JSONDecodeError as exc:
                return self._json(400, {"error": f"body is not JSON: {exc}"})
            except ControlError as exc:
                return self._json(exc.status, {"error": str(exc)})
            except (KeyError, TypeError, ValueError) as exc:
                return self._json(400, {"error": f"bad control request: {exc!r}"})
        self._send(404, b"not found\n")


def _not_modified_since(header: str | None, mtime: float) -> bool:
    if not header:
        return False
    try:
        return int(mtime) <= parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return False


def index_mtime(index: Index) -> float:
    return index.journal[-1][2] if index.journal else time.time()

"""Rendering: the JSON API, the simple index (PEP 503 HTML, PEP 691 JSON) and the RSS feeds."""

from __future__ import annotations

import hashlib
import html
import json
import time
from email.utils import formatdate
from typing import Any

from . import artifacts
from .model import File, Index, Project, Release, package_path

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def _file_info(index: Index, project: Project, release: Release, file: File, base: str) -> dict:
    data = file.content(project.name, release)
    return {
        "comment_text": "",
        "digests": {
            "blake2b_256": hashlib.blake2b(data, digest_size=32).hexdigest(),
            "md5": hashlib.md5(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "downloads": -1,
        "filename": file.filename,
        "has_sig": False,
        "md5_digest": hashlib.md5(data).hexdigest(),
        "packagetype": "bdist_wheel" if file.kind == "wheel" else "sdist",
        "python_version": artifacts.python_tag(file.kind, file.tag),
        "requires_python": release.requires_python,
        "size": len(data),
        "upload_time": _iso(file.upload_time),
        "upload_time_iso_8601": _iso(file.upload_time) + ".000000Z",
        "url": base + package_path(file.filename),
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason,
    }


def latest_version(project: Project) -> str | None:
    live = [v for v, r in project.releases.items() if not r.yanked] or list(project.releases)
    return max(live, key=artifacts.version_key) if live else None


def project_json(index: Index, project: Project, base: str, version: str | None = None) -> dict:
    """``/pypi/<name>/json`` (``version`` None) or ``/pypi/<name>/<version>/json``."""
    shown = version or latest_version(project)
    release = project.releases.get(shown) if shown else None
    info = {
        "name": project.name,
        "version": shown,
        "summary": release.summary if release else "",
        "requires_python": release.requires_python if release else None,
        "author": "Fake Author", "license": "MIT", "home_page": None, "classifiers": [],
        "requires_dist": None, "project_urls": None,
        "package_url": f"{base}/project/{project.name}/",
        "project_url": f"{base}/project/{project.name}/",
        "release_url": f"{base}/project/{project.name}/{shown}/",
        "yanked": release.yanked if release else False,
        "yanked_reason": release.yanked_reason if release else None,
    }
    urls = [_file_info(index, project, release, f, base) for f in release.files] if release else []
    body: dict[str, Any] = {"info": info, "last_serial": project.last_serial, "urls": urls,
                            "vulnerabilities": []}
    if version is None:
        body["releases"] = {
            v: [_file_info(index, project, r, f, base) for f in r.files]
            for v, r in sorted(project.releases.items(),
                               key=lambda kv: artifacts.version_key(kv[0]))
        }
    return body


def _simple_files(index: Index, project: Project, base: str) -> list[dict[str, Any]]:
    out = []
    for version in sorted(project.releases, key=artifacts.version_key):
        release = project.releases[version]
        for file in release.files:
            data = file.content(project.name, release)
            entry: dict[str, Any] = {
                "filename": file.filename,
                "url": base + package_path(file.filename),
                "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                "requires-python": release.requires_python,
                "yanked": (release.yanked_reason or True) if release.yanked else False,
                "size": len(data),
                "upload-time": _iso(file.upload_time) + ".000000Z",
            }
            if file.kind == "wheel":
                meta = artifacts.metadata(
                    project.name, version, release.requires_python, release.summary)
                entry["core-metadata"] = {"sha256": hashlib.sha256(meta).hexdigest()}
                entry["data-dist-info-metadata"] = entry["core-metadata"]
            out.append(entry)
    return out


def simple_project(index: Index, project: Project, base: str, as_json: bool) -> bytes:
    files = _simple_files(index, project, base)
    normalized = artifacts.normalize(project.name)
    if as_json:
        body = {"meta": {"api-version": "1.1", "_last-serial": project.last_serial},
                "name": normalized, "files": files,
                "versions": sorted(project.releases, key=artifacts.version_key)}
        return json.dumps(body).encode()
    lines = []
    for f in files:
        attrs = f' href="{html.escape(f["url"])}#sha256={f["hashes"]["sha256"]}"'
        if f["requires-python"]:
            attrs += f' data-requires-python="{html.escape(f["requires-python"])}"'
        if f["yanked"] is not False:
            reason = "" if f["yanked"] is True else f["yanked"]
            attrs += f' data-yanked="{html.escape(reason)}"'
        if "core-metadata" in f:
            meta = f"sha256={f['core-metadata']['sha256']}"
            attrs += f' data-dist-info-metadata="{meta}" data-core-metadata="{meta}"'
        lines.append(f"    <a{attrs}>{html.escape(f['filename'])}</a><br />")
    return _simple_page(f"Links for {normalized}", lines)


def simple_root(index: Index, as_json: bool) -> bytes:
    names = sorted(p.name for p in index.projects.values() if not p.quarantined)
    if as_json:
        body = {"meta": {"api-version": "1.1", "_last-serial": index.serial},
                "projects": [{"name": n, "_last-serial": index.projects[
                    artifacts.normalize(n)].last_serial} for n in names]}
        return json.dumps(body).encode()
    lines = [f'    <a href="/simple/{artifacts.normalize(n)}/">{html.escape(n)}</a>' for n in names]
    return _simple_page("Simple index", lines)


def _simple_page(title: str, lines: list[str]) -> bytes:
    return (
        '<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" '
        f'content="1.1">\n    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n'
        f"    <h1>{html.escape(title)}</h1>\n" + "\n".join(lines) + "\n  </body>\n</html>\n"
    ).encode()


# --- RSS (no <guid>: PyPI's items are identified by <link>) ---------------------------------


def _rss(title: str, link: str, description: str,
         items: list[tuple[str, str, str, float]]) -> bytes:
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0">',
        "  <channel>",
        f"    <title>{html.escape(title)}</title>",
        f"    <link>{html.escape(link)}</link>",
        f"    <description>{html.escape(description)}</description>",
        "    <language>en</language>",
    ]
    for item_title, item_link, item_description, ts in items:
        out += [
            "    <item>",
            f"      <title>{html.escape(item_title)}</title>",
            f"      <link>{html.escape(item_link)}</link>",
            f"      <description>{html.escape(item_description)}</description>",
            "      <author>fake@example.invalid</author>",
            f"      <pubDate>{formatdate(ts, usegmt=True)}</pubDate>",
            "    </item>",
        ]
    out += ["  </channel>", "</rss>", ""]
    return "\n".join(out).encode()


def _releases(index: Index) -> list[tuple[Project, Release]]:
    pairs = [(p, r) for p in index.projects.values() if not p.quarantined
             for r in p.releases.values()]
    return sorted(pairs, key=lambda pr: pr[1].created, reverse=True)


def rss_updates(index: Index, base: str) -> bytes:
    items = [(f"{p.name} {r.version}", f"{base}/project/{p.name}/{r.version}/", r.summary,
              r.created) for p, r in _releases(index)[:100]]
    return _rss("PyPI recent updates", f"{base}/", "Latest updates", items)


def rss_packages(index: Index, base: str) -> bytes:
    projects = sorted((p for p in index.projects.values() if not p.quarantined),
                      key=lambda p: p.created, reverse=True)[:40]
    items = [(f"{p.name} added to PyPI", f"{base}/project/{p.name}/", "A fake project", p.created)
             for p in projects]
    return _rss("PyPI newest packages", f"{base}/", "Latest packages", items)


def rss_project(project: Project, base: str) -> bytes:
    releases = sorted(project.releases.values(), key=lambda r: r.created, reverse=True)[:40]
    items = [(r.version, f"{base}/project/{project.name}/{r.version}/", r.summary, r.created)
             for r in releases]
    return _rss(f"PyPI recent updates for {project.name}", f"{base}/project/{project.name}/",
                "Recent updates", items)

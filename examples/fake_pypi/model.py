"""The fake index's state: projects, releases, files and the journal PyPI's XML-RPC exposes.

Every change appends journal entries ``[name, version, timestamp, action, serial]`` exactly as
PyPI's warehouse writes them; serials grow by 1 or 2 (PyPI's serials skip numbers too).
Callers hold ``Index.lock`` around every use (the HTTP server is threaded).
"""

from __future__ import annotations

import copy
import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import artifacts

DEFAULT_OWNER = "fake-owner"


class ControlError(Exception):
    """A control request names something wrong; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class File:
    filename: str
    kind: str  # "wheel" | "sdist"
    tag: str
    upload_time: float
    _content: bytes | None = field(default=None, repr=False, compare=False)

    def content(self, name: str, release: Release) -> bytes:
        if self._content is None:
            if self.kind == "wheel":
                self._content = artifacts.build_wheel(
                    name, release.version, self.tag, release.requires_python, release.summary
                )
            else:
                self._content = artifacts.build_sdist(
                    name, release.version, release.requires_python, release.summary
                )
        return self._content


@dataclass
class Release:
    version: str
    created: float
    summary: str = "A fake project"
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    files: list[File] = field(default_factory=list)


@dataclass
class Project:
    name: str
    created: float
    last_serial: int = 0
    quarantined: bool = False
    roles: dict[str, str] = field(default_factory=dict)
    releases: dict[str, Release] = field(default_factory=dict)


def package_path(filename: str) -> str:
    """``/packages/<aa>/<bb>/<rest>/<filename>``: PyPI's layout (bandersnatch needs /packages)."""
    digest = hashlib.blake2b(filename.encode(), digest_size=32).hexdigest()
    return f"/packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/{filename}"


class Index:
    """Projects and journal; every mutating method returns the serials it wrote."""

    def __init__(self, *, state_path: Path | None = None, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self.state_path = state_path
        self._seed = seed
        self.cdn_lag = 0.0
        self.reset()

    def reset(self) -> None:
        self.projects: dict[str, Project] = {}
        self.journal: list[list[Any]] = []
        self.serial = 0
        self.files: dict[str, tuple[str, str, File]] = {}  # path -> (normalized, version, file)
        self.stale: dict[str, tuple[float, Project | None]] = {}
        self.cdn_lag = 0.0
        self._rng = random.Random(self._seed)

    # --- journal ---------------------------------------------------------------------------

    def _log(self, project: Project, version: str | None, action: str) -> int:
        self.serial += self._rng.choice((1, 1, 2))
        self.journal.append([project.name, version, int(time.time()), action, self.serial])
        project.last_serial = self.serial
        return self.serial

    def since(self, serial: int, limit: int = 50_000) -> list[list[Any]]:
        """Journal entries with serial > ``serial``, ascending, at most ``limit``."""
        low, high = 0, len(self.journal)
        while low < high:
            mid = (low + high) // 2
            if self.journal[mid][4] <= serial:
                low = mid + 1
            else:
                high = mid
        return self.journal[low : low + limit]

    # --- the CDN: pages may lag behind the journal -----------------------------------------

    def _touch(self, normalized: str) -> None:
        """Before a change: keep the old view of the project visible for ``cdn_lag`` seconds."""
        if self.cdn_lag <= 0:
            return
        now = time.monotonic()
        pending = self.stale.get(normalized)
        if pending is None or pending[0] <= now:
            self.stale[normalized] = (now, copy.deepcopy(self.projects.get(normalized)))
            pending = self.stale[normalized]
        self.stale[normalized] = (now + self.cdn_lag, pending[1])

    def visible(self, normalized: str) -> Project | None:
        """The project as the CDN currently serves it (None: not found)."""
        pending = self.stale.get(normalized)
        if pending is not None:
            if pending[0] > time.monotonic():
                return pending[1]
            del self.stale[normalized]
        return self.projects.get(normalized)

    # --- lookups ---------------------------------------------------------------------------

    def project(self, name: str) -> Project:
        project = self.projects.get(artifacts.normalize(name))
        if project is None:
            raise ControlError(f"no project {name!r}", 404)
        return project

    def release_of(self, name: str, version: str) -> tuple[Project, Release]:
        project = self.project(name)
        release = project.releases.get(version)
        if release is None:
            raise ControlError(f"project {project.name!r} has no version {version!r}", 404)
        return project, release

    # --- changes ---------------------------------------------------------------------------

    def release(
        self,
        name: str,
        version: str,
        files: list[Any] | None = None,
        *,
        summary: str = "A fake project",
        requires_python: str | None = None,
    ) -> list[int]:
        if not artifacts.VALID_NAME.match(name):
            raise ControlError(f"not a valid project name: {name!r}")
        if not version or any(ch.isspace() or ch in "/#?" for ch in version):
            raise ControlError(f"not a usable version: {version!r}")
        normalized = artifacts.normalize(name)
        self._touch(normalized)
        serials = []
        project = self.projects.get(normalized)
        if project is None:
            project = self.projects[normalized] = Project(name=name, created=time.time())
            serials.append(self._log(project, None, "create"))
            project.roles[DEFAULT_OWNER] = "Owner"
            serials.append(self._log(project, None, f"add Owner {DEFAULT_OWNER}"))
        if version in project.releases:
            raise ControlError(f"{project.name} {version} already exists", 409)
        project.releases[version] = Release(
            version, time.time(), summary=summary, requires_python=requires_python
        )
        serials.append(self._log(project, version, "new release"))
        for spec in ["wheel", "sdist"] if files is None else files:
            serials.extend(self._add_file(project, version, spec))
        return serials

    def add_file(self, name: str, version: str, spec: Any) -> list[int]:
        project, _ = self.release_of(name, version)
        self._touch(artifacts.normalize(name))
        return self._add_file(project, version, spec)

    def _add_file(self, project: Project, version: str, spec: Any) -> list[int]:
        kind, tag = (spec, "py3-none-any") if isinstance(spec, str) else (
            spec.get("kind"), spec.get("tag", "py3-none-any"))
        if kind == "wheel":
            filename = artifacts.wheel_filename(project.name, version, tag)
        elif kind == "sdist":
            filename = artifacts.sdist_filename(project.name, version)
        else:
            raise ControlError(f"file kind must be 'wheel' or 'sdist', not {kind!r}")
        release = project.releases[version]
        if any(f.filename == filename for f in release.files):
            raise ControlError(f"{filename} already exists", 409)
        file = File(filename, kind, tag, time.time())
        release.files.append(file)
        normalized = artifacts.normalize(project.name)
        self.files[package_path(filename)] = (normalized, version, file)
        action = f"add {artifacts.python_tag(kind, tag)} file {filename}"
        return [self._log(project, version, action)]

    def yank(self, name: str, version: str, yanked: bool, reason: str | None = None) -> list[int]:
        project, release = self.release_of(name, version)
        self._touch(artifacts.normalize(name))
        release.yanked, release.yanked_reason = yanked, (reason if yanked else None)
        return [self._log(project, version, "yank release" if yanked else "unyank release")]

    def remove_file(self, name: str, version: str, filename: str) -> list[int]:
        project, release = self.release_of(name, version)
        matches = [f for f in release.files if f.filename == filename]
        if not matches:
            raise ControlError(f"{project.name} {version} has no file {filename!r}", 404)
        self._touch(artifacts.normalize(name))
        release.files.remove(matches[0])
        return [self._log(project, version, f"remove file {filename}")]

    def remove_release(self, name: str, version: str) -> list[int]:
        project, _ = self.release_of(name, version)
        self._touch(artifacts.normalize(name))
        del project.releases[version]
        return [self._log(project, version, "remove release")]

    def remove_project(self, name: str) -> list[int]:
        project = self.project(name)
        self._touch(artifacts.normalize(name))
        del self.projects[artifacts.normalize(name)]
        return [self._log(project, None, "remove project")]

    def quarantine(self, name: str, on: bool) -> list[int]:
        project = self.project(name)
        self._touch(artifacts.normalize(name))
        project.quarantined = on
        return [self._log(project, None, "project quarantined" if on else
                          "project quarantine cleared")]

    def role(self, name: str, op: str, user: str, role: str, to: str | None = None) -> list[int]:
        project = self.project(name)
        if not user or any(ch.isspace() for ch in user) or role not in ("Owner", "Maintainer"):
            raise ControlError("role needs a user without spaces and role Owner or Maintainer")
        if op == "add":
            project.roles[user] = role
            action = f"add {role} {user}"
        elif op == "remove":
            project.roles.pop(user, None)
            action = f"remove {role} {user}"
        elif op == "change" and to in ("Owner", "Maintainer"):
            project.roles[user] = to
            action = f"change {role} {user} to {to}"
        else:
            raise ControlError("op must be add, remove or change (with to=Owner|Maintainer)")
        return [self._log(project, None, action)]

    def backlog(self, count: int, projects: int | None = None, prefix: str = "backlog") -> int:
        """Append ``count`` journal entries over ``projects`` projects (create, release, file)."""
        if not 0 < count <= 1_000_000:
            raise ControlError("count must be between 1 and 1000000")
        width = max(1, projects or count // 4)
        written = 0
        round_ = 0
        while written < count:
            for i in range(width):
                if written >= count:
                    break
                name = f"{prefix}-{i}"
                project = self.projects.get(name)
                if project is None:
                    written += len(self.release(name, "1.0", []))  # create, add Owner, release
                    continue
                version = f"1.{round_}"
                if version not in project.releases:
                    written += len(self.release(name, version, []))
                elif not project.releases[version].files:
                    written += len(self._add_file(project, version, "wheel"))
            round_ += 1
        return written

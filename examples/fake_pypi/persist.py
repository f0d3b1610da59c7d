"""``--state <file>``: the index as JSON (file bytes are rebuilt from their description)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .model import File, Index, Project, Release, package_path


def save(index: Index) -> None:
    """Write the index to ``index.state_path`` atomically (nothing without a path)."""
    if index.state_path is None:
        return
    projects = {
        key: {**asdict(p), "releases": {
            v: {**asdict(r), "files": [
                {k: x for k, x in asdict(f).items() if k != "_content"} for f in r.files]}
            for v, r in p.releases.items()}}
        for key, p in index.projects.items()
    }
    state = {"serial": index.serial, "journal": index.journal, "projects": projects}
    tmp = index.state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(index.state_path)


def load(index: Index, state: dict[str, Any]) -> None:
    index.serial = state["serial"]
    index.journal = state["journal"]
    for key, raw in state["projects"].items():
        releases = raw.pop("releases")
        project = index.projects[key] = Project(**raw)
        for version, rel in releases.items():
            files = [File(**f) for f in rel.pop("files")]
            project.releases[version] = Release(**rel, files=files)
            for file in files:
                index.files[package_path(file.filename)] = (key, version, file)

"""A command template, e.g. ``--exec 'bandersnatch -c /etc/bandersnatch.conf sync {projects}'``.

The template is split with shlex once; ``{projects}`` (a whole argument) becomes one argument
per project; ``{project}`` (anywhere in an argument) runs the command once per project. It runs
as an argument list, never through a shell, and only validated normalized names reach it.
"""

from __future__ import annotations

import logging
import shlex
import subprocess

import requests

from mirror.adapters import SyncError, page_lists
from mirror.names import is_valid
from mirror.state import Change

logger = logging.getLogger(__name__)


def split_template(template: str) -> list[str]:
    """The template's arguments; ValueError when it cannot be used."""
    argv = shlex.split(template)
    if not argv:
        raise ValueError("the command template is empty")
    if "{projects}" not in argv and not any("{project}" in a for a in argv):
        raise ValueError("the command template needs a {projects} argument or {project}")
    return argv


class CommandAdapter:
    name = "exec"

    def __init__(self, template: str, *, timeout: float = 600.0, verify_url: str | None = None,
                 session: requests.Session | None = None):
        self.argv = split_template(template)
        self.timeout = timeout
        self.verify_url = verify_url  # e.g. http://mirror/simple/{project}/
        self.session = session or requests.Session()

    def commands(self, changes: list[Change]) -> list[list[str]]:
        names = [c.normalized for c in changes]
        bad = [n for n in names if not is_valid(n)]
        if bad:
            raise SyncError(f"refusing invalid project names {bad!r}")
        if "{projects}" in self.argv:
            i = self.argv.index("{projects}")
            return [self.argv[:i] + names + self.argv[i + 1:]]
        return [[a.replace("{project}", name) for a in self.argv] for name in names]

    def trigger(self, changes: list[Change]) -> None:
        for argv in self.commands(changes):
            logger.info("running %s", shlex.join(argv))
            try:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                      timeout=self.timeout, check=False)
            except (OSError, subprocess.SubprocessError) as exc:
                raise SyncError(f"{argv[0]} could not run: {exc}") from None
            if done.returncode != 0:
                tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
                raise SyncError(f"{argv[0]} exited {done.returncode}: {' | '.join(tail)}")

    def listed(self, change: Change) -> bool | None:
        if not self.verify_url or not change.filename:
            return None
        url = self.verify_url.replace("{project}", change.normalized)
        return page_lists(self.session, url, change.filename, 30.0)

"""Source indexes the hub watches itself (PyPI's journal): position, lease, retained entries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from broker_hub.storage.backends import Backend
from broker_hub.storage.records import ProjectMark, SourceState

_STATE = "name, last_serial, retained_from, caught_up_at, failing_since, last_error, rss_state"
_CHUNK = 500  # names per IN (...) list


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class SourceQueries:
    """The ``sources``, ``source_entries`` and ``source_projects`` tables' queries."""

    backend: Backend

    def source_state(self, name: str) -> SourceState | None:
        row = self.backend.execute(
            f"SELECT {_STATE} FROM sources WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        return SourceState(
            name=row[0],
            last_serial=row[1],
            retained_from=row[2],
            caught_up_at=row[3],
            failing_since=row[4],
            last_error=row[5],
            rss_state=row[6],
        )

    def claim_source(self, name: str, holder: str, now: float, ttl: float) -> bool:
        """Take or renew the source's poll lease: True when ``holder`` holds it until now+ttl.
        One poller per source polls; the others wait for the lease to run out."""
        self.backend.execute(
            "INSERT INTO sources (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (name,)
        )
        row = self.backend.execute(
            "UPDATE sources SET lease_holder = ?, lease_until = ? "
            "WHERE name = ? AND (lease_holder = ? OR lease_until < ? OR lease_holder IS NULL) "
            "RETURNING name",
            (holder, now + ttl, name, holder, now),
        ).fetchone()
        return row is not None

    def release_source(self, name: str, holder: str) -> None:
        self.backend.execute(
            "UPDATE sources SET lease_until = 0 WHERE name = ? AND lease_holder = ?",
            (name, holder),
        )

    def start_source(self, name: str, serial: int, now: float) -> None:
        """A source polled for the first time starts at ``serial`` (nothing before it kept)."""
        self.backend.execute(
            "UPDATE sources SET last_serial = ?, retained_from = ?, caught_up_at = ? "
            "WHERE name = ? AND last_serial IS NULL",
            (serial, serial, now, name),
        )

    def store_entries(
        self, name: str, entries: Iterable[tuple[int, str, str]], now: float
    ) -> None:
        """Keep journal entries (serial, normalized project, entry JSON) for catch-up; an entry
        stored before (a page read again after a crash) is kept as it was."""
        rows = [(name, serial, project, entry, now) for serial, project, entry in entries]
        if rows:
            with self.backend.transaction():
                self.backend.executemany(
                    "INSERT INTO source_entries (source, serial, project, entry, created_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, serial) DO NOTHING",
                    rows,
                )

    def advance_source(self, name: str, until: int, now: float, *, caught_up: bool) -> None:
        """Everything up to ``until`` is published: the next poll asks from there."""
        self.backend.execute(
            "UPDATE sources SET last_serial = CASE WHEN last_serial > ? THEN last_serial ELSE ? "
            "END, failing_since = NULL, last_error = NULL, "
            "caught_up_at = CASE WHEN ? THEN ? ELSE caught_up_at END WHERE name = ?",
            (until, until, caught_up, now, name),
        )

    def source_failed(self, name: str, error: str, now: float) -> None:
        self.backend.execute(
            "UPDATE sources SET failing_since = COALESCE(failing_since, ?), last_error = ? "
            "WHERE name = ?",
            (now, error[:500], name),
        )

    def save_rss_state(self, name: str, state: str) -> None:
        self.backend.execute("UPDATE sources SET rss_state = ? WHERE name = ?", (state, name))

    def project_marks(self, name: str, projects: Iterable[str]) -> dict[str, ProjectMark]:
        marks: dict[str, ProjectMark] = {}
        for chunk in _chunks(sorted(set(projects))):
            rows = self.backend.execute(
                "SELECT project, last_serial, notified_until FROM source_projects "
                f"WHERE source = ? AND project IN ({', '.join('?' * len(chunk))})",
                (name, *chunk),
            ).fetchall()
            marks.update({r[0]: ProjectMark(int(r[1]), r[2]) for r in rows})
        return marks

    def save_project_marks(
        self, name: str, newest: Mapping[str, int], notified_until: int | None, notified: set[str]
    ) -> None:
        """Record each project's newest serial, and ``notified_until`` for those notified."""
        rows = [
            (name, p, s, notified_until if p in notified else None) for p, s in newest.items()
        ]
        if rows:
            with self.backend.transaction():
                self.backend.executemany(
                    "INSERT INTO source_projects (source, project, last_serial, notified_until) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (source, project) DO UPDATE SET "
                    "last_serial = excluded.last_serial, notified_until = "
                    "COALESCE(excluded.notified_until, source_projects.notified_until)",
                    rows,
                )

    def entries_after(
        self, name: str, project: str | None, since: int, limit: int
    ) -> list[tuple[int, str]]:
        """(serial, entry JSON) with a serial above ``since``, oldest first."""
        where, params = self._where(name, project)
        return [
            (int(r[0]), r[1])
            for r in self.backend.execute(
                f"SELECT serial, entry FROM source_entries WHERE {where} AND serial > ? "
                "ORDER BY serial LIMIT ?",
                (*params, since, limit),
            ).fetchall()
        ]

    def entries_latest(self, name: str, project: str | None, limit: int) -> list[tuple[int, str]]:
        """The newest ``limit`` entries, oldest first."""
        where, params = self._where(name, project)
        rows = self.backend.execute(
            f"SELECT serial, entry FROM source_entries WHERE {where} "
            "ORDER BY serial DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [(int(r[0]), r[1]) for r in reversed(rows)]

    def serial_before(self, name: str, project: str | None, serial: int) -> int | None:
        where, params = self._where(name, project)
        row = self.backend.execute(
            f"SELECT MAX(serial) FROM source_entries WHERE {where} AND serial < ?",
            (*params, serial),
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def purge_source_entries(self, name: str, created_before: float) -> int:
        """Drop entries past retention; what is kept then starts after the newest dropped."""
        with self.backend.transaction():
            row = self.backend.execute(
                "SELECT MAX(serial) FROM source_entries WHERE source = ? AND created_at < ?",
                (name, created_before),
            ).fetchone()
            if row is None or row[0] is None:
                return 0
            cur = self.backend.execute(
                "DELETE FROM source_entries WHERE source = ? AND serial <= ?", (name, row[0])
            )
            self.backend.execute(
                "UPDATE sources SET retained_from = ? WHERE name = ? AND "
                "(retained_from IS NULL OR retained_from < ?)",
                (row[0], name, row[0]),
            )
            return cur.rowcount or 0

    @staticmethod
    def _where(name: str, project: str | None) -> tuple[str, tuple]:
        if project is None:
            return "source = ?", (name,)
        return "source = ? AND project = ?", (name, project)

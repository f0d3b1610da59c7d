"""CPU caps for the hub's processes: one cgroup v1 ``cpu`` group per process (CFS quota).

Each capped process gets its own group ``/sys/fs/cgroup/cpu/<prefix>-<name>`` with
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` set to the wanted share of one CPU, and a twin in
the ``cpuacct`` hierarchy (when it is mounted) whose ``cpuacct.usage`` counts the group's CPU
time in nanoseconds, threads and children included. A process joins its groups *before* it
starts (``wrap()`` puts a tiny shell in front of the command: it writes its own pid to each
group's ``cgroup.procs`` and then execs the command), so children it forks (Granian's workers)
start inside as well; a running process can be moved with :meth:`Group.add`.

The quota can be lifted and set again while the process runs (:meth:`Group.set_cpus`), so that
the set-up steps of a scenario run uncapped and only the measured step is capped.
``cpu.stat``'s ``nr_throttled`` tells whether the cap was what held a process back.

Where the cgroup files are not writable, :func:`available` says why and the scenarios fall back
to no cap (and say so in their output).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

CPU_ROOT = Path("/sys/fs/cgroup/cpu")
ACCT_ROOT = Path("/sys/fs/cgroup/cpuacct")
PERIOD_US = 100_000


def available() -> str | None:
    """None if per-process CPU quotas can be set here, else the reason they cannot."""
    if not (CPU_ROOT / "cpu.cfs_quota_us").exists():
        return f"no cgroup v1 cpu controller at {CPU_ROOT}"
    probe = CPU_ROOT / f"bench-probe-{os.getpid()}"
    try:
        probe.mkdir()
        (probe / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (probe / "cpu.cfs_quota_us").write_text(str(PERIOD_US // 4))
    except OSError as exc:
        return f"cannot create a cpu cgroup under {CPU_ROOT}: {exc}"
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()
    return None


class Group:
    """One process's CPU group (and its cpuacct twin)."""

    def __init__(self, name: str, cpus: float | None):
        self.name = name
        self.cpu_dir = CPU_ROOT / name
        self.acct_dir = ACCT_ROOT / name if (ACCT_ROOT / "cpuacct.usage").exists() else None
        self.cpu_dir.mkdir(exist_ok=True)
        if self.acct_dir is not None:
            self.acct_dir.mkdir(exist_ok=True)
        (self.cpu_dir / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        self.cpus: float | None = None
        self.set_cpus(cpus)

    def set_cpus(self, cpus: float | None) -> None:
        """Cap the group at ``cpus`` CPUs (0.25 = a quarter of one core); None: no cap."""
        quota = -1 if cpus is None else max(1000, int(cpus * PERIOD_US))
        (self.cpu_dir / "cpu.cfs_quota_us").write_text(str(quota))
        self.cpus = cpus

    def procs_files(self) -> list[Path]:
        dirs = [self.cpu_dir] + ([self.acct_dir] if self.acct_dir is not None else [])
        return [d / "cgroup.procs" for d in dirs]

    def add(self, pid: int) -> None:
        """Move a running process (all its threads) into the group."""
        for path in self.procs_files():
            path.write_text(str(pid))

    def pids(self) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(x) for x in (self.cpu_dir / "cgroup.procs").read_text().split()]
        return []

    def usage_seconds(self) -> float | None:
        """CPU time of everything that ran in the group (cpuacct), None without cpuacct."""
        if self.acct_dir is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            return int((self.acct_dir / "cpuacct.usage").read_text()) / 1e9
        return None

    def throttled(self) -> dict[str, float]:
        """``cpu.stat``: periods, throttled periods and throttled seconds so far."""
        out: dict[str, float] = {}
        with contextlib.suppress(OSError, ValueError):
            for line in (self.cpu_dir / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key in ("nr_periods", "nr_throttled"):
                    out[key] = int(value)
                elif key == "throttled_time":
                    out["throttled_s"] = int(value) / 1e9
        return out

    def remove(self, timeout: float = 10.0) -> bool:
        """Move whatever is left to the root groups, then delete the groups."""
        deadline = time.monotonic() + timeout
        ok = True
        for directory, root in ((self.cpu_dir, CPU_ROOT), (self.acct_dir, ACCT_ROOT)):
            if directory is None:
                continue
            while directory.exists():
                with contextlib.suppress(OSError, ValueError):
                    for pid in (directory / "cgroup.procs").read_text().split():
                        with contextlib.suppress(OSError):
                            (root / "cgroup.procs").write_text(pid)
                try:
                    directory.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        ok = False
                        break
                    time.sleep(0.05)
        return ok


class Groups:
    """Every group a scenario made (named ``<prefix>-<name>``), removed together at the end."""

    def __init__(self, prefix: str, enabled: bool = True):
        self.prefix = prefix
        self.enabled = enabled
        self.groups: dict[str, Group] = {}

    def get(self, name: str, cpus: float | None) -> Group | None:
        if not self.enabled:
            return None
        full = f"{self.prefix}-{name}"
        group = self.groups.get(full)
        if group is None:
            group = self.groups[full] = Group(full, cpus)
        else:
            group.set_cpus(cpus)
        return group

    def wrap(self, group: Group | None, argv: list[str]) -> list[str]:
        """``argv`` started inside ``group`` (joined before exec, so children start inside)."""
        if group is None:
            return argv
        joins = " && ".join(f'echo $$ > "{p}"' for p in group.procs_files())
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "cgexec", *argv]

    def set_all(self, cpus: float | None, names: list[str] | None = None) -> None:
        """Cap (or uncap, with None) every group, or those whose names end with ``names``."""
        for full, group in self.groups.items():
            if names is None or full.removeprefix(self.prefix + "-") in names:
                group.set_cpus(cpus)

    def remove_all(self) -> list[str]:
        """Delete every group; the names of those that could not be removed."""
        left = [name for name, group in self.groups.items() if not group.remove()]
        self.groups.clear()
        return left


def sweep_stale(prefix: str = "bench-scale") -> int:
    """Remove empty groups left by an earlier run that was killed (their names start with
    ``prefix``); groups with live processes are left alone."""
    removed = 0
    for root in (CPU_ROOT, ACCT_ROOT):
        with contextlib.suppress(OSError):
            for directory in root.iterdir():
                if directory.is_dir() and directory.name.startswith(prefix):
                    with contextlib.suppress(OSError):
                        if not (directory / "cgroup.procs").read_text().split():
                            directory.rmdir()
                            removed += 1
    return removed

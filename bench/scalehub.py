"""broker-hub as N processes of each role, each hub process in its own CPU-capped cgroup.

Driven only through the CLI (``broker-hub web|fetcher|deliverer``, the ``HUB_*`` environment)
and HTTP, like :class:`bench.hubs.BrokerHub`, whose database and clean-up it reuses. Processes
of a role can be added, stopped (SIGTERM, graceful) and paused (SIGSTOP/SIGCONT) while the hub
runs; the CPU time of stopped processes is kept, so a role's CPU covers its whole run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from bench import cgroup
from bench.hubs import BrokerHub, Context, _clean_env, _get
from bench.procs import Proc, cpu_seconds, descendants, free_port, wait_port

ROLES = ("web", "fetcher", "deliverer")


FETCHED = ('"changed"', '"unchanged"', '"not_modified"', '"refused"', '"failed"')  # GETs made


def metric_sum(text: str, name: str, *labels: str, any_of: tuple[str, ...] = ()) -> float:
    """Sum of a Prometheus counter's samples whose label set contains every ``labels`` item
    (and one of ``any_of``, if given)."""
    total = 0.0
    for line in text.splitlines():
        if (line.startswith(name + "{") and all(label in line for label in labels)
                and (not any_of or any(label in line for label in any_of))):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Member:
    """One hub process: its Proc, its CPU group(s) and its metrics port."""

    def __init__(self, role: str, index: int, proc: Proc, group: cgroup.Group | None,
                 metrics_port: int = 0):
        self.role, self.index, self.proc = role, index, proc
        self.group = group
        self.metrics_port = metrics_port
        self.worker_groups: dict[int, cgroup.Group] = {}  # web: Granian worker pid -> group

    @property
    def name(self) -> str:
        return self.proc.name

    def pids(self) -> list[int]:
        return [self.proc.pid, *descendants(self.proc.pid)]

    def metrics(self) -> str:
        if not self.metrics_port:
            return ""
        with contextlib.suppress(Exception):
            return _get(f"http://127.0.0.1:{self.metrics_port}/metrics").decode()
        return ""


class ScaleHub(BrokerHub):
    """A split broker-hub whose process counts change during the run."""

    def __init__(self, ctx: Context, *, name: str, groups: cgroup.Groups, db: str = "postgres",
                 tunables: dict[str, str] | None = None, web_workers: int = 2):
        super().__init__(ctx, name=name, deliverers=0, db=db, tunables=tunables)
        self.groups = groups
        self.web_workers = web_workers
        self.members: dict[str, list[Member]] = {role: [] for role in ROLES}
        self.gone_cpu: dict[str, float] = {role: 0.0 for role in ROLES}
        self._counter = 0
        self._base: dict[str, str] = {}
        self.exe = ""

    # -- starting and stopping processes ----------------------------------------------------
    def start(self) -> None:
        exe = Path(sys.prefix) / "bin" / "broker-hub"
        self.exe = str(exe) if exe.exists() else "broker-hub"
        port = free_port()
        self.hub_url = f"http://127.0.0.1:{port}/"
        self.db_url = self._database()
        self._base = _clean_env()
        self._base.update({
            "HUB_BROKER_URL": self.ctx.rabbit_url, "HUB_DATABASE_URL": self.db_url,
            "HUB_ALLOW_PRIVATE_ADDRESSES": "true", "HUB_BIND": f"127.0.0.1:{port}",
            "HUB_NAMESPACE": self.namespace, "HUB_LOG_LEVEL": "WARNING",
            "HUB_RATE_LIMIT_PER_MINUTE": "0", "HUB_VERIFY_RATE_PER_HOST": "0",
            "HUB_FETCH_RATE_PER_HOST": "0", "HUB_WEB_WORKERS": str(self.web_workers),
        })
        self._base.update(self.tunables)
        self.add("web")

    def add(self, role: str) -> Member:
        """Start one more process of ``role`` in its own (uncapped for now) CPU group."""
        self._counter += 1
        index = self._counter
        name = f"{self.name}-{role}{index}"
        group = self.groups.get(f"{self.name}-{role}{index}", None)
        env = dict(self._base)
        metrics_port = 0
        if role != "web":
            metrics_port = free_port()
            env["HUB_METRICS_PORT"] = str(metrics_port)
        argv = self.groups.wrap(group, [self.exe, role])
        proc = Proc(name, argv, env=env, cwd=str(self.ctx.workdir),
                    logdir=self.ctx.workdir / "logs")
        member = Member(role, index, proc, group, metrics_port)
        self.members[role].append(member)
        self.procs.setdefault(role, []).append(proc)
        if role == "web":
            wait_port(int(self._base["HUB_BIND"].rsplit(":", 1)[1]), 60, proc)
            self._wait_health()
            self._web_worker_groups(member)
        else:
            wait_port(metrics_port, 60, proc)
        self.metrics_ports = [m.metrics_port for m in self.members["deliverer"]]
        return member

    def _web_worker_groups(self, member: Member) -> None:
        """Give each Granian worker process (a child of ``broker-hub web``) its own group."""
        deadline = time.monotonic() + 30
        children: list[int] = []
        while time.monotonic() < deadline:
            children = [p for p in descendants(member.proc.pid) if _ppid(p) == member.proc.pid]
            if len(children) >= self.web_workers:
                break
            time.sleep(0.2)
        for k, pid in enumerate(sorted(children)):
            group = self.groups.get(f"{member.name}-w{k + 1}", None)
            if group is not None:
                group.add(pid)
                member.worker_groups[pid] = group

    def stop_member(self, member: Member, graceful: bool = True) -> float:
        """SIGTERM (graceful) or SIGKILL one process; the seconds it took to exit."""
        started = time.monotonic()
        cpu = member.proc.cpu_seconds()
        if graceful and member.proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(member.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 40
            while member.proc.alive() and time.monotonic() < deadline:
                cpu = max(cpu, member.proc.cpu_seconds())
                time.sleep(0.05)
        member.proc.stop(timeout=5)
        self.gone_cpu[member.role] += cpu
        self.members[member.role].remove(member)
        self.procs[member.role].remove(member.proc)
        self.metrics_ports = [m.metrics_port for m in self.members["deliverer"]]
        return time.monotonic() - started

    def scale(self, role: str, count: int) -> None:
        """Start or stop processes of ``role`` until ``count`` run."""
        while len(self.members[role]) < count:
            self.add(role)
        while len(self.members[role]) > count:
            self.stop_member(self.members[role][-1])

    def signal_role(self, role: str, signum: int) -> None:
        """SIGSTOP / SIGCONT every process of a role (and its children)."""
        for member in self.members[role]:
            for pid in member.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    # -- caps and accounting -----------------------------------------------------------------
    def capped_groups(self, role: str) -> list[cgroup.Group]:
        """The groups of a role's processes (for web: Granian's main process and each of its
        workers, one group each)."""
        out = []
        for member in self.members[role]:
            if member.group is not None:
                out.append(member.group)
            if role == "web":
                out.extend(member.worker_groups.values())
        return out

    def cap(self, role: str, cpus: float | None) -> None:
        for group in self.capped_groups(role):
            group.set_cpus(cpus)

    def snapshot(self, role: str) -> dict[str, dict[str, float]]:
        """Per working process of a role: CPU seconds, cgroup throttling, counters.

        ``proc_cpu_s`` is utime+stime from /proc/<pid>/stat (clock ticks); ``cpu_s`` is the
        group's ``cpuacct.usage`` (nanoseconds, threads included) where there is one, else
        the /proc figure."""
        out: dict[str, dict[str, float]] = {}
        now = time.monotonic()
        for member in self.members[role]:
            if role == "web":
                for pid, group in member.worker_groups.items():
                    ticks = cpu_seconds(pid)
                    out[f"{member.name}-{group.name.rsplit('-', 1)[1]}"] = {
                        "cpu_s": _precise(group, ticks), "proc_cpu_s": ticks, "wall_s": now,
                        **group.throttled()}
                continue
            text = member.metrics()
            ticks = member.proc.cpu_seconds()
            one = {"cpu_s": _precise(member.group, ticks), "proc_cpu_s": ticks, "wall_s": now,
                   "deliveries": metric_sum(text, "broker_hub_deliveries_total"),
                   "fetches": metric_sum(text, "broker_hub_fetches_total", any_of=FETCHED),
                   "fetch_messages": metric_sum(text, "broker_hub_fetches_total"),
                   "verifications": metric_sum(text, "broker_hub_verifications_total",
                                               '"verified"')}
            if member.group is not None:
                one.update(member.group.throttled())
            out[member.name] = one
        return out

    def log_count(self, text: str) -> int:
        """Lines containing ``text`` in the logs of every process this hub started."""
        count = 0
        for path in (self.ctx.workdir / "logs").glob(f"{self.name}-*.log"):
            with contextlib.suppress(OSError):
                count += path.read_text(errors="replace").count(text)
        return count

    def rss_by_process(self) -> dict[str, float]:
        """Peak RSS (VmHWM, MB) of every hub process seen so far, Granian workers one by one."""
        out = {}
        for members in self.members.values():
            for member in members:
                member.proc.sample_rss()
                for pid, kb in member.proc.hwm_kb.items():
                    key = member.name if pid == member.proc.pid else f"{member.name}-pid{pid}"
                    out[key] = round(kb / 1024, 1)
        return out


def _precise(group: cgroup.Group | None, fallback: float) -> float:
    usage = group.usage_seconds() if group is not None else None
    return fallback if usage is None else usage


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def deltas(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]],
           cpus: float | None = None) -> dict[str, dict[str, float]]:
    """Per process, ``after - before`` of every figure (processes that started in between:
    from zero), and with a cap of ``cpus``: ``cap_used_pct``, the share of its cap it used
    (well under 100 % with the work not done: the machine, not the cap, held it back)."""
    out = {}
    for name, fig in after.items():
        old = before.get(name, {})
        one = {k: round(v - old.get(k, 0.0), 4) for k, v in fig.items() if k in old or
               k != "wall_s"}
        if cpus and one.get("wall_s"):
            one["cap_used_pct"] = round(100 * one["cpu_s"] / one["wall_s"] / cpus, 1)
        out[name] = one
    return out


def median_cap_used(procs: dict[str, dict[str, float]]) -> float | None:
    values = sorted(p["cap_used_pct"] for p in procs.values() if "cap_used_pct" in p)
    return values[len(values) // 2] if values else None

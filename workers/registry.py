"""Every role, by name: ``broker-hub <role>`` and ``broker-hub run`` find them here.

Adding a role is one module that defines a ``SPEC`` (:class:`~workers.role.RoleSpec`) and one
line in :data:`ROLES`.
"""

from __future__ import annotations

from broker_hub.config import Settings
from workers import deliverer, fetcher, janitor, poller, verifier
from workers.context import WorkerContext
from workers.role import RoleSpec
from workers.worker import Worker

ROLES: dict[str, RoleSpec] = {
    spec.name: spec
    for spec in (
        fetcher.SPEC,
        janitor.SPEC,
        deliverer.SPEC,
        verifier.SPEC,
        poller.SPEC,
    )
}


def process_roles(name: str) -> list[RoleSpec]:
    """The roles ``broker-hub <name>`` runs: the role itself and those it brings along."""
    spec = ROLES[name]
    return [spec, *(ROLES[other] for other in spec.with_roles)]


def embedded_processes(settings: Settings) -> list[str]:
    """The processes ``broker-hub run`` runs as threads: every enabled role that no other
    role brings along (the fetcher brings the janitor, the deliverer the verifier)."""
    brought = {other for spec in ROLES.values() for other in spec.with_roles}
    return [
        name for name, spec in ROLES.items() if name not in brought and spec.enabled(settings)
    ]


def build_worker(context: WorkerContext, name: str) -> Worker:
    """The worker of process ``name``: its roles on one consume loop."""
    services = context.services
    specs = process_roles(name)
    roles = [spec.build(context) for spec in specs]
    tick = min(spec.tick_interval for spec in specs)
    busy = [
        (role, spec.busy_tick_interval)
        for role, spec in zip(roles, specs, strict=True)
        if spec.busy_tick_interval is not None
    ]
    return Worker(
        services.messaging,
        roles,
        metrics=services.metrics,
        name=name,
        tick_interval=tick,
        busy_ticks=busy,
    )

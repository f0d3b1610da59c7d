"""The one-line status of an agent, read from its state file."""

from __future__ import annotations

import time

from mirror.state import State


def status_line(state: State, now: float | None = None) -> str:
    now = time.time() if now is None else now
    subs = state.subscriptions()
    active = [s for s in subs if s.wanted == "subscribe" and s.verified_at is not None
              and (s.expires_at is None or s.expires_at > now)]
    ends = [s.expires_at for s in active if s.expires_at is not None]
    lease = f", first lease ends in {min(ends) - now:.0f}s" if ends else ""
    last = state.get("last_sync")
    if last:
        at, project, serial = last.split(" ", 2)
        last_text = f"last sync {project} (serial {serial}) {now - float(at):.0f}s ago"
    else:
        last_text = "no sync yet"
    full = state.get("full_sync")
    parts = [
        f"subscriptions {len(active)}/{len([s for s in subs if s.wanted == 'subscribe'])} "
        f"active{lease}",
        f"inbox {state.count('inbox')}",
        f"pending {state.count('pending')}",
        f"failed {state.count('failed')}",
        f"catch-ups {len(state.catchups())} open",
        last_text,
    ]
    if full:
        parts.append(f"FULL SYNC NEEDED ({full})")
    return "; ".join(parts)

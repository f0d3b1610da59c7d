"""In-process rate limits: token buckets keyed by a client address or a remote address.

Each key gets a bucket of ``per_minute`` tokens refilled continuously at ``per_minute / 60``
per second (GCRA: one "theoretical arrival time" per key), so a key may make up to
``per_minute`` requests at once and then ``per_minute`` per minute. State lives in the
process: with several web worker processes or several workers, each enforces the limit
on its own (the effective limit is the per-process limit times the number of processes).

:class:`RateLimiter` answers "now, or retry after N seconds" (the web front's 429).
:class:`Pacer` never refuses: it reserves the next free slot and says how long to wait, so a
worker can re-queue the work with that delay and nothing accepted is ever lost.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import ipaddress
import math
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

_PRUNE_EVERY = 1024  # calls between sweeps of idle keys
_TICKET_GRACE = 3600.0  # a reservation nobody came back for is forgotten after this long
_EARLY = 0.05  # seconds early a reserved slot may be used


class _Buckets:
    """GCRA state: key -> theoretical arrival time; idle keys are pruned."""

    def __init__(self, per_minute: int, clock: Callable[[], float]):
        self.enabled = per_minute > 0
        self.interval = 60.0 / per_minute if self.enabled else 0.0
        self.tolerance = self.interval * (per_minute - 1) if self.enabled else 0.0
        self.clock = clock
        self.lock = threading.Lock()
        self._tat: dict[str, float] = {}
        self._calls = 0

    def _sweep(self, now: float) -> None:
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self._tat = {k: t for k, t in self._tat.items() if t > now}


class RateLimiter(_Buckets):
    """``per_minute`` requests per key and minute (0: unlimited). Thread-safe."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic):
        super().__init__(per_minute, clock)

    def acquire(self, key: str) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one is free (nothing taken)."""
        if not self.enabled:
            return 0.0
        with self.lock:
            now = self.clock()
            self._sweep(now)
            tat = max(self._tat.get(key, now), now)
            earliest = tat - self.tolerance
            if earliest > now:
                return earliest - now
            self._tat[key] = tat + self.interval
            return 0.0


class Pacer(_Buckets):
    """Spaces out work per key at ``per_minute`` (0: unlimited), delaying, never dropping.

    :meth:`delay` reserves a slot for a piece of work identified by ``ticket`` (for a broker
    message: its body) and returns how long to wait. Work that comes back on (or after) its
    reserved slot goes through without taking a second slot; work that comes back early (a
    delay queue that rounds down, a redelivery) is told to wait for the rest.
    """

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic):
        super().__init__(per_minute, clock)
        self._tickets: dict[bytes, float] = {}

    def delay(self, key: str, ticket: str | bytes) -> float:
        """0.0: go now. Otherwise re-queue the work for that many seconds."""
        if not self.enabled:
            return 0.0
        digest = hashlib.sha256(ticket.encode() if isinstance(ticket, str) else ticket).digest()
        with self.lock:
            now = self.clock()
            self._sweep(now)
            if self._calls % _PRUNE_EVERY == 0:
                self._tickets = {
                    t: due for t, due in self._tickets.items() if due + _TICKET_GRACE > now
                }
            due = self._tickets.get(digest)
            if due is not None:
                if due - now > _EARLY:
                    return due - now
                del self._tickets[digest]
                return 0.0
            tat = max(self._tat.get(key, now), now)
            slot = max(now, tat - self.tolerance)
            self._tat[key] = tat + self.interval
            if slot - now <= _EARLY:
                return 0.0
            self._tickets[digest] = slot
            return slot - now


def retry_after_header(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def client_key(address: str | None) -> str:
    """The rate-limit key of a client address: IPv4 as is, IPv6 by its /64 (one site)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def host_key(url: str) -> str:
    """The rate-limit key of a remote URL: :func:`address_key` (kept for existing callers)."""
    return address_key(url)


def _address_of(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """IPv4 as is; IPv6 by its /64 (one site), an IPv4-mapped one by its IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(ip.packed)  # drop any %scope
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def literal_address(host: str) -> str | None:
    """The address key of an IP literal in any spelling a resolver accepts (``127.1``,
    ``2130706433``, ``0x7f.1``, ``0177.0.0.01``, ``[::ffff:7f00:1]``); None for a name."""
    host = host.strip("[]")
    try:
        return _address_of(ipaddress.ip_address(host))
    except ValueError:
        pass
    if ":" in host or not host or any(c.isspace() for c in host):
        return None
    try:  # the BSD forms that getaddrinfo (and so every HTTP client) accepts for IPv4
        return str(ipaddress.IPv4Address(socket.inet_aton(host)))
    except OSError:
        return None


class AddressCache:
    """Host name -> address key, resolved through ``getaddrinfo`` and kept ``ttl`` seconds.

    A name that does not resolve is keyed by the name itself (its request fails anyway), and
    so is one whose lookup takes longer than ``timeout`` (until the lookup ends).
    One lookup per name at a time; at most ``max_names`` names are kept.
    """

    def __init__(
        self,
        *,
        ttl: float = 60.0,
        timeout: float = 2.0,
        max_names: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        resolve: Callable[[str], list[str]] | None = None,
    ):
        self.ttl, self.timeout, self.max_names, self.clock = ttl, timeout, max_names, clock
        self._resolve = resolve or _getaddrinfo
        self._names: dict[str, tuple[float, str]] = {}
        self._pending: dict[str, concurrent.futures.Future[str]] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="resolve")

    def key(self, name: str, wait: float | None = None) -> str:
        """The name's address key; ``wait`` (default ``timeout``) bounds the wait for a lookup
        not cached yet (it goes on in the background and fills the cache)."""
        with self._lock:
            cached = self._names.get(name)
            if cached is not None and cached[0] > self.clock():
                return cached[1]
            pending = self._pending.get(name)  # one lookup per name at a time
            if pending is None:
                pending = self._pending[name] = self._pool.submit(self._lookup, name)
        try:
            return pending.result(timeout=self.timeout if wait is None else wait)
        except concurrent.futures.TimeoutError:
            return name  # slow DNS: keyed by name until the lookup ends

    def _lookup(self, name: str) -> str:
        try:
            addresses = self._resolve(name)
        except (OSError, UnicodeError):
            addresses = []
        keys = sorted({k for a in addresses if (k := literal_address(a)) is not None})
        key = keys[0] if keys else name
        now = self.clock()
        with self._lock:
            if len(self._names) >= self.max_names:
                self._names = {n: v for n, v in self._names.items() if v[0] > now}
                if len(self._names) >= self.max_names:
                    self._names.clear()
            self._names[name] = (now + self.ttl, key)
            self._pending.pop(name, None)
        return key


def _getaddrinfo(name: str) -> list[str]:
    infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


_CACHE = AddressCache()


def address_key(url: str, *, cache: AddressCache | None = None, wait: float | None = None) -> str:
    """The pacing key of a remote URL: the address it reaches, whatever the spelling.

    IP literals in every legacy form, and names (through ``getaddrinfo``, cached briefly),
    map to one address (IPv6: its /64); the port is ignored. So ``http://127.1/``,
    ``http://2130706433/`` and a name resolving to 127.0.0.1 share one bucket.
    """
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        return "unknown"
    host = host.rstrip(".").lower()
    literal = literal_address(host)
    if literal is not None:
        return literal
    return (cache or _CACHE).key(host, wait)

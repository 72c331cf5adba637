"""Failed-login limits: a user, or a source address, that keeps giving wrong passwords is locked for a while.

Every password check (the API's login, HTTP Basic, the console's form) asks
`locked_for` first and reports its result with `failed` or `succeeded`. After
`max_failures` failures a user or an address is locked for `first_lock_s`; each
further failure after a lock ends doubles the lock, up to `max_lock_s`. A
success resets the user and the address it came from; failures are forgotten
after `forget_s` without one. Locks are answered before any password is checked,
so a locked user's right password is refused too: otherwise a guesser would
learn it was right.

The counts live in this process's memory only: they are not replicated to the
other servers of a pair or triad, and a restart forgets them. Memory is bounded:
at most `max_entries` users and as many addresses are remembered; beyond that the
one that failed least recently is dropped. An IPv6 client counts by its /64
network, since one host usually holds a whole /64.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_FAILURES = 5
FIRST_LOCK_S = 30.0
MAX_LOCK_S = 900.0
FORGET_S = 3600.0
MAX_ENTRIES = 10_000
USERNAME_KEY_CHARS = 64  # longer names cannot exist; keys stay small whatever a guesser sends


def address_key(host: str) -> str:
    """The source address as the limits count it: IPv4 as is, IPv6 by its /64, a mapped IPv4 as IPv4."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass
class _Failures:
    count: int = 0
    last_at: float = 0.0
    locked_until: float = 0.0


@dataclass(frozen=True)
class Lock:
    """A lock just imposed, for the log."""

    kind: str  # "user" or "address"
    key: str
    seconds: float
    failures: int
    username: str
    address: str

    def sentence(self) -> str:
        if self.kind == "user":
            return (
                f"Locked logins for user {self.key!r} for {self.seconds:.0f} seconds after {self.failures} "
                f"failed attempts (the last from {self.address})."
            )
        return (
            f"Locked logins from address {self.key} for {self.seconds:.0f} seconds after {self.failures} "
            f"failed attempts (the last for user {self.username[:USERNAME_KEY_CHARS]!r})."
        )


class _Table:
    """Failures by key (a user name or an address), least recently failed first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, _Failures] = OrderedDict()

    def get(self, key: str, now: float, forget_s: float) -> _Failures | None:
        entry = self.entries.get(key)
        if entry is not None and entry.locked_until <= now and now - entry.last_at > forget_s:
            del self.entries[key]
            return None
        return entry

    def touch(self, key: str, now: float, forget_s: float) -> _Failures:
        entry = self.get(key, now, forget_s)
        if entry is None:
            entry = self.entries[key] = _Failures()
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)
        else:
            self.entries.move_to_end(key)
        return entry


class LoginLimits:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_failures: int = MAX_FAILURES,
        first_lock_s: float = FIRST_LOCK_S,
        max_lock_s: float = MAX_LOCK_S,
        forget_s: float = FORGET_S,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.first_lock_s = first_lock_s
        self.max_lock_s = max_lock_s
        self.forget_s = forget_s
        self._tables = {"user": _Table(max_entries), "address": _Table(max_entries)}
        # Counters for the metrics (licentia.api.metrics).
        self.locks = {"user": 0, "address": 0}
        self.failures = 0
        self.refused_while_locked = 0

    def _keys(self, username: str, address: str) -> dict[str, str]:
        return {"user": username[:USERNAME_KEY_CHARS], "address": address_key(address)}

    def locked_for(self, username: str, address: str) -> float:
        """Seconds until this user may try from this address again; 0 when neither is locked."""
        now = self.clock()
        wait = 0.0
        for kind, key in self._keys(username, address).items():
            entry = self._tables[kind].get(key, now, self.forget_s)
            if entry is not None:
                wait = max(wait, entry.locked_until - now)
        return wait

    def refused(self) -> None:
        """A login was refused because of a lock (counted for the metrics)."""
        self.refused_while_locked += 1

    def failed(self, username: str, address: str) -> list[Lock]:
        """Count a wrong password; the locks this failure imposes (none, or the user's and/or the address's)."""
        now = self.clock()
        self.failures += 1
        locks = []
        for kind, key in self._keys(username, address).items():
            entry = self._tables[kind].touch(key, now, self.forget_s)
            entry.count += 1
            entry.last_at = now
            if entry.count >= self.max_failures:
                seconds = min(self.max_lock_s, self.first_lock_s * 2 ** min(entry.count - self.max_failures, 32))
                entry.locked_until = now + seconds
                self.locks[kind] += 1
                locks.append(Lock(kind, key, seconds, entry.count, username, address))
        return locks

    def succeeded(self, username: str, address: str) -> None:
        """A right password: the user and the address start again from zero."""
        for kind, key in self._keys(username, address).items():
            self._tables[kind].entries.pop(key, None)

    def entries(self) -> int:
        return sum(len(table.entries) for table in self._tables.values())

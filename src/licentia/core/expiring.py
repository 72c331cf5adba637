"""A set whose members each expire at a known time (seats held, printers in their window).

A member is put with a time, and expires `offset` seconds after it: a lease with the time it expires
(offset 0), a printer with the time it was last used, the printer window being its license's set's offset
(its own float then, not a float made per printer for the end of its window: ~10 MB at 300,000 printers).
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Sequence
from operator import attrgetter

import msgspec


class _Filed(msgspec.Struct, gc=False, order=True):
    """An entry while a heap is built by `heapq.heapify` (in C: far faster than sorting the two arrays by time,
    whose gathers read the members' times and keys in random order); the arrays are read from these after."""

    at: float
    key: str


_AT, _KEY = attrgetter("at"), attrgetter("key")


class ExpiringSet:
    """Counts live members in amortized O(log n) without scanning every member.

    Every member has a heap entry at or before its time. A member put again with a later time (a lease renewed,
    a printer used again: by far the most puts) only has its time changed; its entry stays where it was and is
    filed again at the member's time when it comes due (`live_count`). So a renewal costs a dictionary write,
    and the heap does not grow by one entry per renewal (it was rebuilt each time it reached twice the members:
    ~50 ms at 300,000 leases, every 300,000 renewals, while a command was applied).

    The heap is two parallel arrays, the times filed (8 bytes each) and the keys (the member's own string, a
    reference), ordered by time: 16 bytes an entry. An entry was a record of its own (32 bytes, and 8 for the
    list's reference: ~14 MB more at 300,000 leases and 300,000 printers). Members due at the same time come out
    in any order: nothing counted depends on it.

    With `lapsed`, each member `live_count` finds expired is also added to that set: a license's seats set notes
    there the leases that ran out, for the state to reclaim them without a pass over every lease."""

    __slots__ = ("_expiry", "_keys", "_times", "lapsed", "offset")

    def __init__(self, offset: float = 0.0, lapsed: set[str] | None = None) -> None:
        self.offset = offset  # a member expires this long after the time it was put with
        self.lapsed = lapsed
        self._expiry: dict[str, float] = {}  # each member's time (its expiry minus the offset)
        self._times: array[float] = array("d")  # the heap: entry i is (_times[i], _keys[i])
        self._keys: list[str] = []

    def put(self, key: str, at: float) -> None:
        """`key` is a member until `at` + the offset."""
        before = self._expiry.get(key)
        self._expiry[key] = at
        if before is None or at < before:  # else its entry, at or before `before`, is at or before `at` too
            self._push(at, key)
            self._drop_stale_entries()

    def fill(self, times: Sequence[float], keys: Sequence[str]) -> None:
        """Put many members in at once, member i at `times[i]` (the heap built at once: far faster than one put at
        a time). Counts and membership come out as if each had been `put` in this order."""
        if len(times) != len(keys):
            raise ValueError("fill needs one time per key")
        self._expiry.update(zip(keys, times, strict=True))
        if self._keys:
            times, keys = [*self._times, *times], [*self._keys, *keys]
        self._file(times, keys)
        self._drop_stale_entries()

    def entries(self) -> list[tuple[float, str]]:
        """The heap's entries (time filed, key), in heap order: what `live_count` will look at."""
        return list(zip(self._times, self._keys, strict=True))

    def _file(self, times: Sequence[float], keys: Sequence[str]) -> None:
        """The heap made of these entries."""
        entries = list(map(_Filed, times, keys))
        heapq.heapify(entries)
        self._times = array("d", map(_AT, entries))
        self._keys = list(map(_KEY, entries))

    def _drop_stale_entries(self) -> None:
        """Rebuild the heap from the members once most of its entries are stale (members gone, or put again
        earlier)."""
        if len(self._keys) > 2 * len(self._expiry) + 64:
            self._file(list(self._expiry.values()), list(self._expiry))

    def _push(self, at: float, key: str) -> None:
        times, keys = self._times, self._keys
        i = len(keys)
        times.append(at)
        keys.append(key)
        while i:
            parent = (i - 1) >> 1
            if times[parent] <= at:
                break
            times[i], keys[i] = times[parent], keys[parent]
            i = parent
        times[i], keys[i] = at, key

    def _replace_first(self, at: float, key: str) -> None:
        """The first entry replaced by (`at`, `key`), sifted down to its place."""
        times, keys = self._times, self._keys
        n, i, child = len(keys), 0, 1
        while child < n:
            if child + 1 < n and times[child + 1] < times[child]:
                child += 1
            if at <= times[child]:
                break
            times[i], keys[i] = times[child], keys[child]
            i, child = child, 2 * child + 1
        times[i], keys[i] = at, key

    def _drop_first(self) -> None:
        last_at, last_key = self._times.pop(), self._keys.pop()
        if self._keys:
            self._replace_first(last_at, last_key)

    def discard(self, key: str) -> None:
        self._expiry.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._expiry

    def live_count(self, now: float) -> int:
        """Drops the members expired at `now`: call it only where every replica calls it alike (when applying)."""
        times, keys, expiry, offset = self._times, self._keys, self._expiry, self.offset
        while keys and times[0] + offset <= now:
            key, filed = keys[0], times[0]
            at = expiry.get(key)
            if at is not None and at >= filed and at + offset > now:
                self._replace_first(at, key)  # put again later meanwhile: filed at its time now
                continue
            if at is not None and at >= filed:
                del expiry[key]  # expired (else gone, or filed again at an earlier time: that entry speaks for it)
                if self.lapsed is not None:
                    self.lapsed.add(key)
            self._drop_first()
        return len(expiry)

    def count_live(self, now: float) -> int:
        """The live members at `now`, changing nothing: for reads at a local clock, outside the log."""
        return len(self._expiry) - len(self.expired_by(now))

    def expired_by(self, now: float) -> set[str]:
        """The members expired at `now` that no `live_count` dropped yet, changing nothing. It looks at the heap's
        entries due by `now` only (each member expired by then has one), or at every member's time when those
        entries are more (members gone in numbers, whose entries nothing applied has dropped yet)."""
        return self._expired_due(now, stop_at_first=False)

    def any_expired_by(self, now: float) -> bool:
        """Whether a member expired at `now` that no `live_count` dropped yet (the same look as `expired_by`,
        stopping at the first)."""
        return bool(self._expired_due(now, stop_at_first=True))

    def _expired_due(self, now: float, stop_at_first: bool) -> set[str]:
        times, keys, expiry, offset = self._times, self._keys, self._expiry, self.offset
        expired: set[str] = set()
        stack = [0] if keys and times[0] + offset <= now else []
        looked, n = 0, len(keys)
        while stack:
            looked += 1
            if looked > len(expiry):
                return {key for key, at in expiry.items() if at + offset <= now}
            i = stack.pop()
            key = keys[i]
            at = expiry.get(key)
            if at is not None and at + offset <= now:
                expired.add(key)
                if stop_at_first:
                    return expired
            for child in (2 * i + 1, 2 * i + 2):
                if child < n and times[child] + offset <= now:
                    stack.append(child)
        return expired

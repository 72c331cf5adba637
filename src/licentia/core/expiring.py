"""A set whose members each expire at a known time (seats held, printers in their window).

A member is put with a time, and expires `offset` seconds after it: a lease with the time it expires
(offset 0), a printer with the time it was last used, the printer window being its license's set's offset
(its own float then, not a float made per printer for the end of its window: ~10 MB at 300,000 printers).
"""

from __future__ import annotations

import heapq

import msgspec


class Due(msgspec.Struct, gc=False, order=True):
    """A heap entry: a member's time and key, ordered as the tuple (at, key) is. 32 bytes, where a tuple
    takes 64 with the cycle collector's header (~38 MB at 300,000 leases and printers)."""

    at: float
    key: str


class ExpiringSet:
    """Counts live members in amortized O(log n) without scanning every member."""

    __slots__ = ("_expiry", "_heap", "offset")

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset  # a member expires this long after the time it was put with
        self._expiry: dict[str, float] = {}  # each member's time (its expiry minus the offset)
        self._heap: list[Due] = []

    def put(self, key: str, at: float) -> None:
        """`key` is a member until `at` + the offset."""
        self._expiry[key] = at
        heapq.heappush(self._heap, Due(at, key))
        self._drop_stale_entries()

    def fill(self, members: list[Due]) -> None:
        """Put many members in at once (the heap built once: far faster than one at a time; the entries become
        the heap's). Counts and membership come out as if each had been `put` in this order."""
        expiry = self._expiry
        for due in members:
            expiry[due.key] = due.at
        self._heap.extend(members)
        heapq.heapify(self._heap)
        self._drop_stale_entries()

    def _drop_stale_entries(self) -> None:
        """Rebuild the heap from the members once most of its entries are stale (members put again or gone)."""
        if len(self._heap) > 2 * len(self._expiry) + 64:
            self._heap = [Due(at, k) for k, at in self._expiry.items()]
            heapq.heapify(self._heap)

    def discard(self, key: str) -> None:
        self._expiry.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._expiry

    def live_count(self, now: float) -> int:
        """Drops the members expired at `now`: call it only where every replica calls it alike (when applying)."""
        heap, expiry, offset = self._heap, self._expiry, self.offset
        while heap and heap[0].at + offset <= now:
            due = heapq.heappop(heap)
            if expiry.get(due.key) == due.at:
                del expiry[due.key]
        return len(expiry)

    def count_live(self, now: float) -> int:
        """The live members at `now`, changing nothing: for reads at a local clock, outside the log."""
        offset = self.offset
        if not self._heap or self._heap[0].at + offset > now:
            return len(self._expiry)  # every member has a heap entry at its expiry, and none is due yet
        return sum(1 for at in self._expiry.values() if at + offset > now)

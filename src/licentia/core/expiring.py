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
    """Counts live members in amortized O(log n) without scanning every member.

    Every member has a heap entry at or before its time. A member put again with a later time (a lease renewed,
    a printer used again: by far the most puts) only has its time changed; its entry stays where it was and is
    filed again at the member's time when it comes due (`live_count`). So a renewal costs a dictionary write,
    and the heap does not grow by one entry per renewal (it was rebuilt each time it reached twice the members:
    ~50 ms at 300,000 leases, every 300,000 renewals, while a command was applied)."""

    __slots__ = ("_expiry", "_heap", "offset")

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset  # a member expires this long after the time it was put with
        self._expiry: dict[str, float] = {}  # each member's time (its expiry minus the offset)
        self._heap: list[Due] = []

    def put(self, key: str, at: float) -> None:
        """`key` is a member until `at` + the offset."""
        before = self._expiry.get(key)
        self._expiry[key] = at
        if before is None or at < before:  # else its entry, at or before `before`, is at or before `at` too
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
        """Rebuild the heap from the members once most of its entries are stale (members gone, or put again
        earlier)."""
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
            at = expiry.get(due.key)
            if at is None or at < due.at:
                continue  # gone, or filed again at an earlier time (that entry speaks for it)
            if at + offset <= now:
                del expiry[due.key]
            elif at != due.at:
                heapq.heappush(heap, Due(at, due.key))  # put again later meanwhile: filed at its time now
        return len(expiry)

    def count_live(self, now: float) -> int:
        """The live members at `now`, changing nothing: for reads at a local clock, outside the log. It looks at
        the heap's entries due by `now` only (each member expired by then has one), or at every member's time
        when those entries are more (members gone in numbers, whose entries nothing applied has dropped yet)."""
        heap, expiry, offset = self._heap, self._expiry, self.offset
        expired: set[str] = set()
        stack = [0] if heap and heap[0].at + offset <= now else []
        looked = 0
        while stack:
            looked += 1
            if looked > len(expiry):
                return sum(1 for at in expiry.values() if at + offset > now)
            i = stack.pop()
            due = heap[i]
            at = expiry.get(due.key)
            if at is not None and at + offset <= now:
                expired.add(due.key)
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(heap) and heap[child].at + offset <= now:
                    stack.append(child)
        return len(expiry) - len(expired)

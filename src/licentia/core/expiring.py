"""A set whose members each expire at a known time (seats held, printers in their window)."""

from __future__ import annotations

import heapq


class ExpiringSet:
    """Counts live members in amortized O(log n) without scanning every member."""

    __slots__ = ("_expiry", "_heap")

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def put(self, key: str, expires_at: float) -> None:
        self._expiry[key] = expires_at
        heapq.heappush(self._heap, (expires_at, key))
        if len(self._heap) > 2 * len(self._expiry) + 64:
            self._heap = [(at, k) for k, at in self._expiry.items()]
            heapq.heapify(self._heap)

    def fill(self, members: list[tuple[float, str]]) -> None:
        """Put many (expires_at, key) members in at once (the heap built once: far faster than one at a time).
        Counts and membership come out as if each had been `put` in this order."""
        for expires_at, key in members:
            self._expiry[key] = expires_at
        self._heap.extend(members)
        heapq.heapify(self._heap)
        if len(self._heap) > 2 * len(self._expiry) + 64:
            self._heap = [(at, k) for k, at in self._expiry.items()]
            heapq.heapify(self._heap)

    def discard(self, key: str) -> None:
        self._expiry.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._expiry

    def live_count(self, now: float) -> int:
        """Drops the members expired at `now`: call it only where every replica calls it alike (when applying)."""
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if expiry.get(key) == at:
                del expiry[key]
        return len(expiry)

    def count_live(self, now: float) -> int:
        """The live members at `now`, changing nothing: for reads at a local clock, outside the log."""
        if not self._heap or self._heap[0][0] > now:
            return len(self._expiry)  # every member has a heap entry at its expiry, and none is due yet
        return sum(1 for at in self._expiry.values() if at > now)

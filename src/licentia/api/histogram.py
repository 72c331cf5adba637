"""A Prometheus-style histogram without locks: only the event loop's thread observes and scrapes it."""

from __future__ import annotations

from bisect import bisect_left


class Histogram:
    """Counts of observations by upper bound (`buckets`, ascending; one more count for +Inf) and their sum."""

    __slots__ = ("buckets", "counts", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """(upper bound, observations up to it) for each bucket and +Inf, as a histogram metric wants them."""
        out = []
        total = 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return out

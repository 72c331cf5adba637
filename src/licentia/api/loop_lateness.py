"""How late the server's event loop runs a timer: the time it answered nothing.

A 10 ms timer, set again each time it fires, is late by however long the loop (or the whole process) was
kept from running callbacks: a handler that held it, a collector's pass, a process the machine did not
schedule. Each lateness goes into a histogram (`licentia_event_loop_lateness_seconds` in `/metrics`), the
longest into a gauge. A probe outside the server that sees a gap in its answers can tell from these whether
the server's loop was the one that stopped (bench/scale.py reads them for each phase).
"""

from __future__ import annotations

import asyncio

from licentia.api.histogram import Histogram

TICK_S = 0.010
# Seconds of lateness; under 5 ms is a loop at work, 50 ms is the large-site target's stall (issue #14).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLateness:
    """The lateness of each tick of a `TICK_S` timer on the running loop (`histogram`), and the longest."""

    def __init__(self) -> None:
        self.histogram = Histogram(BUCKETS)
        self.longest = 0.0

    def observe(self, late: float) -> None:
        late = max(0.0, late)
        self.histogram.observe(late)
        self.longest = max(self.longest, late)

    async def run(self) -> None:
        """Tick until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            self.observe(loop.time() - due)

"""The server's event loop reports how long it answered nothing (`licentia_event_loop_lateness_seconds`)."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from licentia.api.loop_lateness import BUCKETS, LoopLateness


def test_a_loop_held_for_120_ms_is_counted_late_by_about_that_long_and_a_free_one_is_not() -> None:
    lateness = LoopLateness()

    async def hold_the_loop() -> None:
        ticking = asyncio.create_task(lateness.run())
        await asyncio.sleep(0.2)
        time.sleep(0.12)  # a handler that keeps the loop for 120 ms
        await asyncio.sleep(0.1)
        ticking.cancel()

    asyncio.run(hold_the_loop())

    counts = lateness.histogram.counts
    over_100_ms = sum(counts[BUCKETS.index(0.1) + 1:])
    assert over_100_ms == 1  # the one tick the held loop ran late
    assert 0.1 <= lateness.longest < 0.5
    assert sum(counts) >= 15  # ~30 ticks in 0.3 s free, however slow the machine
    assert sum(counts[: BUCKETS.index(0.05) + 1]) == sum(counts) - 1  # every other tick within 50 ms


def test_a_running_server_exposes_its_loop_lateness_in_metrics(server) -> None:
    def scrape() -> dict[str, float]:
        text = httpx.get(f"{server.url}/metrics", timeout=5).text
        return {sample.name: sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name.startswith("licentia_event_loop_lateness")
                and not sample.labels.get("le")}

    first = scrape()
    time.sleep(0.3)
    second = scrape()
    ticks = "licentia_event_loop_lateness_seconds_count"
    assert second[ticks] - first[ticks] >= 10  # the timer ticks every 10 ms while the server runs
    assert 0 <= second["licentia_event_loop_lateness_max_seconds"] < 5

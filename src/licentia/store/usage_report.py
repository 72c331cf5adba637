"""Peak use and denials per hour or day, computed from usage-log records.

Pure: records and the time range come in, buckets go out; no SQLite, no clock.
The journal (`SqliteJournal.report_inputs`) chooses which records to read; this
module decides what they mean:

- a granted print check puts its printer in use from then until the printer
  window (`printer_window_s`) later; overlapping windows of one printer merge,
  so a printer counts once;
- a seat lease is in use from its granted checkout to its first end record
  (kind "checkin": checked in, revoked, reclaimed after expiry, license removed);
  a lease with no end record ends `lease_ttl_s` after its last granted record
  (successful heartbeats are not logged), unless it is held now (`held`);
  an end record without its checkout means the lease started before the records;
- nothing is in use after `as_of` (the caller's "now"): buckets from then on are
  left out rather than shown as zero.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

import msgspec

from licentia.core.model import Lease, UsageRecord

Bucket = Literal["hour", "day"]
BUCKET_SECONDS: dict[str, float] = {"hour": 3600.0, "day": 86400.0}
Interval = tuple[float, float]


class DenialCount(msgspec.Struct, frozen=True):
    """`count` refusals for `reason`, the first of them at `at` (the journal counts them per bucket)."""

    at: float
    reason: str
    count: int = 1


class ReportBucket(msgspec.Struct):
    start: float
    end: float
    printers: int
    seats_total: int
    seats: dict[str, int]
    denials_total: int
    denials: dict[str, int]


class UsageReport(msgspec.Struct):
    since: float
    until: float
    bucket: str
    bucket_s: float
    as_of: float
    products: list[str]
    denial_reasons: list[str]
    buckets: list[ReportBucket]


def bucket_count(since: float, until: float, bucket_s: float) -> int:
    return max(0, math.ceil((until - since) / bucket_s))


def printer_intervals(prints: Iterable[UsageRecord], window_s: float) -> list[Interval]:
    """One interval per stretch a printer was in use: overlapping windows of the same printer merge."""
    times: dict[str, list[float]] = defaultdict(list)
    for record in prints:
        if record.kind == "print" and record.granted:
            times[record.printer_id].append(record.at)
    merged: list[Interval] = []
    for uses in times.values():
        uses.sort()
        start, end = uses[0], uses[0] + window_s
        for at in uses[1:]:
            if at > end:
                merged.append((start, end))
                start = at
            end = at + window_s
        merged.append((start, end))
    return merged


def lease_intervals(
    records: Iterable[UsageRecord], held: Iterable[Lease], lease_ttl_s: float
) -> dict[str, list[Interval]]:
    """Seat-lease intervals by product (see the module docstring for where a lease starts and ends)."""
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    last_granted: dict[str, float] = {}
    product: dict[str, str] = {}
    for record in records:
        lease_id = record.lease_id
        if not lease_id:
            continue
        if record.product:
            product.setdefault(lease_id, record.product)
        if record.kind == "checkout" and record.granted:
            started[lease_id] = min(started.get(lease_id, record.at), record.at)
        elif record.kind == "checkin":
            ended[lease_id] = min(ended.get(lease_id, record.at), record.at)
        if record.granted:
            last_granted[lease_id] = max(last_granted.get(lease_id, record.at), record.at)
    held_now = {lease.lease_id: lease for lease in held}
    by_product: dict[str, list[Interval]] = defaultdict(list)
    for lease_id in started.keys() | ended.keys():
        lease = held_now.pop(lease_id, None)
        start = started.get(lease_id, -math.inf)
        if lease_id in ended:
            end = ended[lease_id]
        elif lease is not None:
            end = lease.expires_at
        else:
            end = last_granted.get(lease_id, start) + lease_ttl_s
        if end > start:
            by_product[product.get(lease_id, lease.product if lease else "")].append((start, end))
    for lease in held_now.values():  # checked out before the records the caller read
        by_product[lease.product].append((lease.granted_at, lease.expires_at))
    return by_product


def peaks(intervals: Iterable[Interval], edges: list[float]) -> list[int]:
    """The most intervals [start, end) overlapping at any one moment of each bucket [edges[i], edges[i+1])."""
    # At equal times -1 sorts first: an interval ending when another starts does not overlap it.
    events = sorted(event for start, end in intervals if end > start for event in ((start, 1), (end, -1)))
    result: list[int] = []
    current = 0
    i = 0
    for low, high in itertools.pairwise(edges):
        while i < len(events) and events[i][0] <= low:
            current += events[i][1]
            i += 1
        peak = current
        while i < len(events) and events[i][0] < high:
            current += events[i][1]
            peak = max(peak, current)
            i += 1
        result.append(peak)
    return result


def usage_report(
    records: Iterable[UsageRecord],
    denials: Iterable[DenialCount],
    held: Iterable[Lease],
    *,
    since: float,
    until: float,
    bucket: Bucket,
    as_of: float,
    printer_window_s: float,
    lease_ttl_s: float,
) -> UsageReport:
    """Peak printers and seats in use, and denials by reason, per bucket of [since, until) up to `as_of`."""
    bucket_s = BUCKET_SECONDS[bucket]
    stop = min(until, as_of)
    edges = [min(since + i * bucket_s, until) for i in range(bucket_count(since, stop, bucket_s) + 1)]
    records = list(records)

    def clipped(intervals: Iterable[Interval]) -> list[Interval]:
        return [(start, min(end, as_of)) for start, end in intervals]

    printers = peaks(clipped(printer_intervals(records, printer_window_s)), edges)
    leases = {name: clipped(spans) for name, spans in lease_intervals(records, held, lease_ttl_s).items()}
    seats = {name: peaks(spans, edges) for name, spans in sorted(leases.items())}
    seats_total = peaks([span for spans in leases.values() for span in spans], edges)
    refused: list[dict[str, int]] = [defaultdict(int) for _ in edges[1:]]
    for denial in denials:
        index = math.floor((denial.at - since) / bucket_s)
        if 0 <= index < len(refused) and denial.at < edges[-1]:
            refused[index][denial.reason] += denial.count
    return assemble_report(since, until, bucket, bucket_s, as_of, edges, printers, seats_total, seats, refused)


def assemble_report(
    since: float,
    until: float,
    bucket: str,
    bucket_s: float,
    as_of: float,
    edges: list[float],
    printers: list[int],
    seats_total: list[int],
    seats: dict[str, list[int]],
    refused: list[dict[str, int]],
) -> UsageReport:
    """The report from its per-bucket figures (computed from the rows here, or from the rollups)."""
    buckets = [
        ReportBucket(
            start=low,
            end=high,
            printers=printers[i],
            seats_total=seats_total[i],
            seats={name: counts[i] for name, counts in seats.items()},
            denials_total=sum(refused[i].values()),
            denials=dict(sorted(refused[i].items())),
        )
        for i, (low, high) in enumerate(itertools.pairwise(edges))
    ]
    return UsageReport(
        since=since,
        until=until,
        bucket=bucket,
        bucket_s=bucket_s,
        as_of=as_of,
        products=sorted(seats),
        denial_reasons=sorted({reason for counts in refused for reason in counts}),
        buckets=buckets,
    )

"""The usage report: peak printers and seats in use and denials per bucket, from usage-log records."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from licentia.core import commands as c
from licentia.core.model import ClientInfo, Lease, UsageRecord
from licentia.store.journal import SqliteJournal
from licentia.store.usage_report import DenialCount, UsageReport, usage_report

T0 = 1_700_006_400.0  # a UTC midnight
HOUR = 3600.0
DAY = 86400.0
WINDOW = 1 * DAY
TTL = 120.0
LOST_HEARTBEAT = ("heartbeat", "lease_expired")  # refused, but not a denial


def granted_print(at: float, printer: str) -> UsageRecord:
    return UsageRecord(at=at, kind="print", granted=True, reason="ok", product="LabelStudio", printer_id=printer)


def checkout(at: float, lease_id: str, product: str = "CAD") -> UsageRecord:
    return UsageRecord(at=at, kind="checkout", granted=True, reason="ok", product=product, lease_id=lease_id)


def checkin(at: float, lease_id: str, product: str = "CAD", reason: str = "ok") -> UsageRecord:
    return UsageRecord(at=at, kind="checkin", granted=reason == "ok", reason=reason, product=product, lease_id=lease_id)


def held(lease_id: str, granted_at: float, expires_at: float, product: str = "CAD") -> Lease:
    return Lease(lease_id, f"req-{lease_id}", "SEAT", product, None, ClientInfo(), "", granted_at, expires_at, TTL)


def report(
    records: list[UsageRecord],
    denials: list[DenialCount] = (),  # type: ignore[assignment]
    leases: list[Lease] = (),  # type: ignore[assignment]
    *,
    hours: int = 6,
    as_of: float = T0 + 100 * DAY,
) -> UsageReport:
    return usage_report(
        records,
        denials,
        leases,
        since=T0,
        until=T0 + hours * HOUR,
        bucket="hour",
        as_of=as_of,
        printer_window_s=WINDOW,
        lease_ttl_s=TTL,
    )


def printers(result: UsageReport) -> list[int]:
    return [b.printers for b in result.buckets]


def seats(result: UsageReport, product: str | None = None) -> list[int]:
    return [b.seats_total if product is None else b.seats.get(product, 0) for b in result.buckets]


def test_a_printer_used_again_inside_its_window_counts_once():
    result = report([granted_print(T0 + 60, "P1"), granted_print(T0 + 2 * HOUR, "P1"), granted_print(T0 + 90, "P2")])
    assert printers(result) == [2, 2, 2, 2, 2, 2]


def test_a_printer_stays_in_use_for_the_window_after_its_last_print_then_frees_its_seat():
    result = usage_report(
        [granted_print(T0 + 30 * 60, "P1")],
        [],
        [],
        since=T0,
        until=T0 + 3 * DAY,
        bucket="day",
        as_of=T0 + 100 * DAY,
        printer_window_s=WINDOW,
        lease_ttl_s=TTL,
    )
    # In use from 00:30 on day 1 to 00:30 on day 2: both days show it at their peak, day 3 does not.
    assert printers(result) == [1, 1, 0]


def test_a_print_before_the_range_still_counts_while_its_window_lasts():
    result = report([granted_print(T0 - WINDOW + 2 * HOUR + 1, "P1")])
    assert printers(result) == [1, 1, 1, 0, 0, 0]


def test_denied_print_checks_put_no_printer_in_use():
    denied = UsageRecord(at=T0 + 60, kind="print", granted=False, reason="printer_blocked", printer_id="P1")
    assert printers(report([denied])) == [0] * 6


def test_a_lease_is_in_use_from_checkout_to_checkin():
    result = report([checkout(T0 + HOUR + 10, "L1"), checkin(T0 + 3 * HOUR - 10, "L1")])
    assert seats(result) == [0, 1, 1, 0, 0, 0]
    assert seats(result, "CAD") == [0, 1, 1, 0, 0, 0]


def test_seat_peaks_are_per_product_and_the_total_is_the_peak_of_the_sum():
    records = [
        checkout(T0 + 60, "A1", "CAD"),
        checkin(T0 + 120, "A1", "CAD"),
        checkout(T0 + 600, "B1", "Render"),  # same hour, after A1 ended: never two at once
        checkin(T0 + 900, "B1", "Render"),
        checkout(T0 + HOUR + 60, "A2", "CAD"),
        checkout(T0 + HOUR + 120, "B2", "Render"),  # overlaps A2
        checkin(T0 + HOUR + 180, "A2", "CAD"),
        checkin(T0 + HOUR + 240, "B2", "Render"),
    ]
    result = report(records, hours=2)
    assert seats(result, "CAD") == [1, 1]
    assert seats(result, "Render") == [1, 1]
    assert seats(result) == [1, 2]
    assert result.products == ["CAD", "Render"]


def test_a_lease_ending_when_another_starts_does_not_overlap_it():
    records = [checkout(T0 + 60, "L1"), checkin(T0 + 600, "L1"), checkout(T0 + 600, "L2"), checkin(T0 + 900, "L2")]
    assert seats(report(records, hours=1)) == [1]


def test_a_lease_without_an_end_record_ends_one_ttl_after_its_checkout():
    result = report([checkout(T0 + HOUR - TTL / 2, "L1")], hours=3)
    assert seats(result) == [1, 1, 0]  # runs TTL/2 into the second hour, not for ever


def test_a_lease_still_held_now_counts_until_its_current_expiry():
    result = report([checkout(T0 + 60, "L1")], leases=[held("L1", T0 + 60, T0 + 2 * HOUR + 60)], hours=4)
    assert seats(result) == [1, 1, 1, 0]


def test_a_lease_held_since_before_the_records_counts_from_its_checkout():
    result = report([], leases=[held("OLD", T0 - 30 * DAY, T0 + HOUR + 60)], hours=3)
    assert seats(result) == [1, 1, 0]


def test_an_end_record_without_its_checkout_means_the_lease_was_held_since_before_the_range():
    result = report([checkin(T0 + HOUR + 60, "L1", reason="revoked")], hours=3)
    assert seats(result) == [1, 1, 0]


def test_denials_are_counted_per_bucket_and_reason():
    denials = [
        DenialCount(T0 + 10, "limit_exceeded", 3),
        DenialCount(T0 + 20, "printer_blocked"),
        DenialCount(T0 + 2 * HOUR, "limit_exceeded", 2),
        DenialCount(T0 + 6 * HOUR, "limit_exceeded", 50),  # after the range: not counted
    ]
    result = report([], denials)
    assert [b.denials_total for b in result.buckets] == [4, 0, 2, 0, 0, 0]
    assert result.buckets[0].denials == {"limit_exceeded": 3, "printer_blocked": 1}
    assert result.denial_reasons == ["limit_exceeded", "printer_blocked"]


def test_nothing_is_in_use_after_as_of_and_later_buckets_are_left_out():
    records = [granted_print(T0 + 60, "P1"), checkout(T0 + 60, "L1")]
    result = report(records, leases=[held("L1", T0 + 60, T0 + 5 * HOUR)], as_of=T0 + 2 * HOUR + 5)
    assert [b.start for b in result.buckets] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert printers(result) == [1, 1, 1] and seats(result) == [1, 1, 1]
    assert report(records, as_of=T0 + 2 * HOUR).buckets[-1].start == T0 + HOUR  # a bucket starting at as_of is out


def test_the_last_bucket_ends_at_until_when_the_range_is_not_a_whole_number_of_buckets():
    result = usage_report(
        [],
        [],
        [],
        since=T0,
        until=T0 + 90 * 60,
        bucket="hour",
        as_of=T0 + DAY,
        printer_window_s=WINDOW,
        lease_ttl_s=TTL,
    )
    assert [(b.start, b.end) for b in result.buckets] == [(T0, T0 + HOUR), (T0 + HOUR, T0 + 90 * 60)]


def test_the_journal_reads_few_rows_yet_gives_the_report_the_raw_log_gives(tmp_path: Path):
    rng = random.Random(7)
    since, until = T0, T0 + 2 * DAY
    records = [granted_print(since - WINDOW + rng.uniform(0, 3 * DAY), f"P{rng.randrange(6)}") for _ in range(600)]
    for n in range(40):
        start = since - 2 * DAY + rng.uniform(0, 4 * DAY)
        records.append(checkout(start, f"L{n}", rng.choice(["CAD", "Render"])))
        if n % 3:
            records.append(checkin(start + rng.uniform(60, 8 * HOUR), f"L{n}", reason=rng.choice(["ok", "revoked"])))
    denied = [
        UsageRecord(at=since + rng.uniform(0, 2 * DAY), kind=kind, granted=False, reason=reason)
        for kind, reason in (("print", "printer_blocked"), ("checkout", "limit_exceeded"), LOST_HEARTBEAT)
        for _ in range(50)
    ]
    kwargs = {"since": since, "until": until, "bucket": "hour", "as_of": T0 + 10 * DAY}
    kwargs |= {"printer_window_s": WINDOW, "lease_ttl_s": TTL}

    async def from_journal() -> tuple[UsageReport, int]:
        journal = SqliteJournal(tmp_path / "journal.db")
        log = sorted(records + denied, key=lambda r: r.at)
        await journal.append(c.CreatePrinterGroup(name="Dock"), T0, log)
        await journal.barrier()
        rows, denials = await journal.report_inputs(since, until, HOUR, WINDOW)
        await journal.close()
        return usage_report(rows, denials, [], **kwargs), len(rows) + len(denials)

    thinned, rows_read = asyncio.run(from_journal())
    raw_denials = [DenialCount(r.at, r.reason) for r in denied if r.kind != "heartbeat"]
    assert thinned == usage_report(records, raw_denials, [], **kwargs)
    assert sum(b.denials_total for b in thinned.buckets) == 100  # lost heartbeats are not denials
    assert max(b.printers for b in thinned.buckets) == 6
    assert rows_read < len(records) / 3

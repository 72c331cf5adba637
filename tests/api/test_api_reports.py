"""The usage report endpoints: peaks from real print checks and checkouts, CSV, and refused parameters."""

from __future__ import annotations

import csv
import io
import time

import pytest
from api_support import assert_error, assert_log_clean, install_ok
from harness import wait_for

R = "/api/v1/admin/reports/usage"


@pytest.fixture
def used(server, issuer, admin):
    """Two printers used, one seat held, one checkout refused (the seat license has one seat)."""
    install_ok(admin, issuer.license_bytes(license_id="PRN", unit="printers"))
    install_ok(admin, issuer.license_bytes(license_id="SEAT", product="CADStudio", unit="seats", count=1))
    for name in ("Zebra 1", "Zebra 2", "Zebra 1"):
        assert admin.post("/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": name}}).is_success
    assert admin.post("/api/v1/leases", json={"product": "CADStudio"}).status_code == 201
    assert admin.post("/api/v1/leases", json={"product": "CADStudio"}).status_code == 409
    return admin


def test_report_shows_peak_printers_seats_and_denials_of_the_current_hour(used):
    body = used.get(R, params={"bucket": "hour"}).json()
    assert len(body["buckets"]) == 24 and body["bucket_s"] == 3600
    now = body["buckets"][-1]
    assert now["start"] <= time.time() < now["end"]
    assert (now["printers"], now["seats_total"], now["seats"]) == (2, 1, {"CADStudio": 1})
    assert now["denials"] == {"limit_exceeded": 1} and body["denial_reasons"] == ["limit_exceeded"]
    assert all(b["printers"] == 0 for b in body["buckets"][:-1])


def test_report_csv_has_one_row_per_bucket_and_a_column_per_product_and_reason(used):
    since = time.time() // 86400 * 86400
    answer = used.get(f"{R}.csv", params={"bucket": "day", "since": since, "until": since + 86400})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "licentia-usage-report-day.csv" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == [
        "start",
        "end",
        "printers_peak",
        "seats_peak",
        "seats_peak:CADStudio",
        "denials",
        "denials:limit_exceeded",
    ]
    assert len(rows) == 2 and rows[1][2:] == ["2", "1", "1", "1", "1"]
    assert rows[1][0].endswith("T00:00:00Z")


@pytest.mark.parametrize(
    "params",
    [
        {"bucket": "week"},
        {"since": "nan"},
        {"until": "inf"},
        {"since": "-5"},
        {"since": "1e300"},
        {"since": "yesterday"},
        {"since": "2000", "until": "1000"},
        {"bucket": "hour", "since": "0", "until": "86400000"},  # far more than the bucket limit
        {"colour": "red"},
    ],
)
def test_bad_report_parameters_are_refused_with_422(server, admin, params):
    for path in (R, f"{R}.csv"):
        assert_error(admin.get(path, params=params), 422, "invalid_request")
    assert_log_clean(server)


def test_report_needs_a_login(server, client):
    assert_error(client.get(R), 401, "unauthorized")


def _store_as_rows_without_rollups(data, records) -> None:
    """`records` as usage rows of the stopped server's database, its rollups unknown (as before rollups)."""
    import sqlite3

    from licentia.store.usage_rows import USAGE_FIELDS

    columns = ("origin", "idx", "seq", *USAGE_FIELDS)
    with sqlite3.connect(data / "licentia.db") as conn:
        conn.execute("DELETE FROM meta WHERE key LIKE 'usage_rollup_%'")
        conn.executemany(
            f"INSERT INTO usage ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [("old", n, 0, *(getattr(record, f) for f in USAGE_FIELDS)) for n, record in enumerate(records)],
        )


def test_a_database_from_before_rollups_builds_them_on_first_start_and_reports_the_rows_numbers(tmp_path):
    """Rows written without rollups (as by an earlier version): the first start builds them once, says so
    in the log, and a report from them gives the numbers computed from the rows themselves."""
    import math
    import random

    from harness import ServerProcess

    from licentia.core.model import UsageRecord
    from licentia.store.usage_report import usage_report

    data = tmp_path / "server"
    ServerProcess(data).start().stop()
    rng = random.Random(14)
    now = time.time()
    start = now - 20 * 86400
    records: list[UsageRecord] = []
    for n in range(3000):
        at = start + n * 240 + rng.uniform(0, 200)
        roll = rng.random()
        if roll < 0.4:
            printer = f"P{rng.randrange(40)}"
            records.append(UsageRecord(at=at, kind="print", granted=True, reason="ok", printer_id=printer))
        elif roll < 0.6:
            records += [UsageRecord(at=at, kind="checkout", granted=True, reason="ok", product="CAD", lease_id=f"L{n}"),
                        UsageRecord(at=at + rng.uniform(60, 9 * 3600), kind="checkin", granted=True, reason="ok",
                                    product="CAD", lease_id=f"L{n}")]
        else:
            records.append(UsageRecord(at=at, kind="checkout", granted=False, reason="limit_exceeded", count=2))
    records.sort(key=lambda record: record.at)
    _store_as_rows_without_rollups(data, records)
    server = ServerProcess(data).start()
    try:
        built = f"Built the usage report's hourly and daily rollups from {len(records)} usage rows in "
        wait_for(lambda: built in server.log_path.read_text(), timeout=30, what="the rollups built")
        since = math.floor(start / 3600) * 3600 - 86400
        with server.admin() as admin:
            # On whole hours, and off them (edges cut hours: the rows of those hours are read)
            for bucket, low, until in (("hour", since, since + 30 * 86400), ("day", since, since + 25 * 86400 + 0.5),
                                       ("hour", since + 2 * 86400 + 1234.5, since + 9 * 86400 + 77.0),
                                       ("day", since + 1800.5, since + 25 * 86400 + 4000.25)):
                body = admin.get(R, params={"bucket": bucket, "since": low, "until": until}).json()
                expected = usage_report(records, [], [], since=low, until=until, bucket=bucket,
                                        as_of=body["as_of"], printer_window_s=7 * 86400, lease_ttl_s=120)
                denials = [(record.at, record.count) for record in records if not record.granted]
                assert [b["printers"] for b in body["buckets"]] == [b.printers for b in expected.buckets]
                assert [b["seats"] for b in body["buckets"]] == [b.seats for b in expected.buckets]
                assert [b["denials_total"] for b in body["buckets"]] == [
                    sum(count for at, count in denials if b.start <= at < b.end) for b in expected.buckets
                ]
                assert max(b["printers"] for b in body["buckets"]) > 10
        server.stop()
        server = ServerProcess(data).start()  # built once: a restart does not build them again
        assert server.log_path.read_text().count("Built the usage report's") == 1  # (the empty one's is quiet)
    finally:
        server.kill()


def test_rollups_without_quarter_hours_are_rebuilt_once_and_a_report_in_a_half_hour_zone_gives_the_rows_numbers(
    tmp_path,
):
    """A data directory whose rollups have no quarter hours (as an earlier version left it): the next start
    rebuilds them once and says so; the console's report in a zone 5 h 30 min from UTC (day buckets from local
    midnights) then gives the numbers computed from the rows."""
    import math
    import random
    import sqlite3

    from harness import ServerProcess

    from licentia.core.model import UsageRecord
    from licentia.store.usage_report import usage_report

    data = tmp_path / "server"
    ServerProcess(data).start().stop()
    rng = random.Random(15)
    now = time.time()
    start = now - 20 * 86400
    records: list[UsageRecord] = []
    for n in range(2000):
        at = start + n * 860 + rng.uniform(0, 800)
        if rng.random() < 0.5:
            printer = f"P{rng.randrange(30)}"
            records.append(UsageRecord(at=at, kind="print", granted=True, reason="ok", printer_id=printer))
        else:
            records += [UsageRecord(at=at, kind="checkout", granted=True, reason="ok", product="CAD", lease_id=f"L{n}"),
                        UsageRecord(at=at + rng.uniform(60, 5 * 3600), kind="checkin", granted=True, reason="ok",
                                    product="CAD", lease_id=f"L{n}")]
    records.sort(key=lambda record: record.at)
    _store_as_rows_without_rollups(data, records)
    server = ServerProcess(data).start()
    try:
        wait_for(lambda: "Built the usage report's" in server.log_path.read_text(), timeout=30,
                 what="the rollups built")
        server.stop()
        with sqlite3.connect(data / "licentia.db") as conn:  # as an earlier version leaves its rollups
            conn.execute("DROP TABLE usage_quarter")
            conn.execute("DELETE FROM meta WHERE key = 'usage_rollup_quarters_from'")
        server = ServerProcess(data).start()
        rebuilt = "with quarter hours, once, from "
        wait_for(lambda: rebuilt in server.log_path.read_text(), timeout=30, what="the rollups rebuilt")
        zone = 5.5 * 3600
        until = math.floor((now + zone) / 86400) * 86400 + 86400 - zone  # tomorrow's local midnight
        with server.admin() as admin:
            body = admin.get(R, params={"bucket": "day", "since": until - 19 * 86400, "until": until}).json()
        expected = usage_report(records, [], [], since=until - 19 * 86400, until=until, bucket="day",
                                as_of=body["as_of"], printer_window_s=7 * 86400, lease_ttl_s=120)
        assert [b["printers"] for b in body["buckets"]] == [b.printers for b in expected.buckets]
        assert [b["seats"] for b in body["buckets"]] == [b.seats for b in expected.buckets]
        assert max(b["printers"] for b in body["buckets"]) > 10
        server.stop()
        server = ServerProcess(data).start()  # rebuilt once: a restart does not rebuild them again
        assert server.log_path.read_text().count(rebuilt) == 1
    finally:
        server.kill()

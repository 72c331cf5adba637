"""The usage report endpoints: peaks from real print checks and checkouts, CSV, and refused parameters."""

from __future__ import annotations

import csv
import io
import time

import pytest
from api_support import assert_error, assert_log_clean, install_ok

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

"""Usage Reports: charts of peak printers and seats and of denials from real requests, and the CSV downloads."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from harness import ADMIN_PASSWORD
from playwright.sync_api import Page, expect

from .console_support import CONSOLE, install, log_in, screenshot

REPORTS = f"{CONSOLE}/reports"


@pytest.fixture(scope="module")
def traffic(console_server, admin: httpx.Client, console_issuer) -> None:
    """Two printers used, one seat held and a second checkout refused, one print check for an unlicensed product."""
    install(admin, console_issuer.license_bytes(product="LabelStudio", count=5))
    install(admin, console_issuer.license_bytes(product="CADStudio", unit="seats", count=1))
    with httpx.Client(base_url=console_server.url, timeout=10) as app:
        for printer in ("Zebra Report 1", "Zebra Report 2", "Zebra Report 1"):
            body = {"product": "LabelStudio", "printer": {"name": printer}, "client": {"host": "pc-7"}}
            assert app.post("/api/v1/print-checks", json=body).status_code == 200
        assert app.post("/api/v1/print-checks", json={"product": "Nope", "printer": {"name": "X"}}).status_code == 404
        assert app.post("/api/v1/leases", json={"product": "CADStudio", "client": {"host": "cad-1"}}).status_code == 201
        assert app.post("/api/v1/leases", json={"product": "CADStudio", "client": {"host": "cad-2"}}).status_code == 409


def points(page: Page, chart: str, series: str):
    return page.locator(f'#{chart} [data-series="{series}"][data-value]')


def test_reports_page_charts_the_peaks_of_real_print_checks_checkouts_and_denials(page: Page, traffic):
    page.goto(REPORTS)
    printers = points(page, "chart-printers", "Printers")
    expect(printers).to_have_count(24)
    expect(printers.last).to_have_attribute("data-value", "2")
    expect(points(page, "chart-seats", "CADStudio").last).to_have_attribute("data-value", "1")
    # the hour the fixture ran in (the last, or the one before); each reason in words, in a legend
    for reason in ("Over the license's limit", "No valid license for the product"):
        expect(page.locator(f'#chart-denials [data-series="{reason}"][data-value="1"]')).to_have_count(1)
        expect(page.locator("#chart-denials .chart-legend")).to_contain_text(reason)
    expect(page.locator("#chart-denials .chart-legend")).not_to_contain_text("no_license")
    chart = page.get_by_role("img", name="Printers in use (peak per hour)", exact=False)
    expect(chart).to_have_attribute("aria-label", "Printers in use (peak per hour): 24 points, " + _label_range(page))
    expect(page.locator("#chart-printers table.chart-data caption")).to_have_text("Printers in use (peak per hour)")
    expect(page.locator('[data-summary="printers"]')).to_have_text("2")
    expect(page.locator('[data-summary="denials"]')).to_have_text("2")
    screenshot(page, "usage-reports")


def _label_range(page: Page) -> str:
    """The chart's own first and last x labels, and its peak: what its aria-label summarises."""
    labels = page.locator('#chart-printers [data-series="Printers"][data-value]')
    first, last = labels.first.get_attribute("data-label"), labels.last.get_attribute("data-label")
    return f"{first} to {last}; Printers peaks at 2"


def test_report_csv_download_has_the_report_header_and_this_hours_peaks(page: Page, traffic, tmp_path: Path):
    page.goto(REPORTS)
    expect(points(page, "chart-printers", "Printers")).to_have_count(24)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download report CSV").click()
    path = tmp_path / "report.csv"
    download.value.save_as(path)
    rows = list(csv.reader(path.open()))
    assert rows[0] == [
        "start",
        "end",
        "printers_peak",
        "seats_peak",
        "seats_peak:CADStudio",
        "denials",
        "denials:limit_exceeded",
        "denials:no_license",
    ]
    assert len(rows) == 25 and rows[-1][2:5] == ["2", "1", "1"]
    assert [sum(int(row[i]) for row in rows[1:]) for i in (5, 6, 7)] == [2, 1, 1]
    screenshot(page, "usage-reports-csv")


def test_usage_log_csv_download_applies_the_kind_and_refused_only_filters(page: Page, traffic, tmp_path: Path):
    page.goto(REPORTS)
    page.get_by_label("Kind of request", exact=True).select_option("print")
    page.get_by_label("Refused only", exact=True).check()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download usage log CSV").click()
    path = tmp_path / "usage.csv"
    download.value.save_as(path)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0])[:5] == ["id", "at", "kind", "granted", "reason"]
    assert [(r["kind"], r["granted"], r["reason"]) for r in rows] == [("print", "False", "no_license")]
    screenshot(page, "usage-reports-usage-csv")


def test_a_browser_half_an_hour_off_utc_gets_the_peaks_of_its_own_hours(browser, console_server, traffic):
    """In India (UTC+5:30) the console asks for local hours, each cut by a UTC hour: the server answers them
    from the rollups and the rows of the hours cut, with the same peaks."""
    profile = browser.new_context(base_url=console_server.url, timezone_id="Asia/Kolkata",
                                  viewport={"width": 1280, "height": 900})
    try:
        page = log_in(profile.new_page(), "admin", ADMIN_PASSWORD)
        with page.expect_request(re.compile(r"/api/v1/admin/reports/usage\?")) as asked:
            page.goto(REPORTS)
        query = parse_qs(urlsplit(asked.value.url).query)
        assert float(query["since"][0]) % 3600 == 1800 and float(query["until"][0]) % 3600 == 1800
        expect(points(page, "chart-printers", "Printers")).to_have_count(24)
        expect(page.locator('[data-summary="printers"]')).to_have_text("2")
        expect(page.locator('[data-summary="seats"]')).to_have_text("1")
        expect(page.locator('[data-summary="denials"]')).to_have_text("2")
    finally:
        profile.close()


def test_the_usage_log_csv_link_asks_for_every_row_of_the_range_with_no_cut_off(page: Page, traffic):
    """The page promises every request in the range: its link sets the range and no row limit, and the
    export streams every row it is asked for (tests/api/test_api_usage_log.py: past 100,000 rows)."""
    page.goto(REPORTS)
    expect(points(page, "chart-printers", "Printers")).to_have_count(24)
    page.get_by_label("Show", exact=True).select_option(label="Last 90 days")
    link = page.get_by_role("link", name="Download usage log CSV")
    expect(link).to_have_attribute("href", re.compile(r"since="))
    query = parse_qs(urlsplit(link.get_attribute("href") or "").query)
    assert set(query) == {"since", "until"}, query
    assert float(query["until"][0]) - float(query["since"][0]) >= 90 * 86400


@pytest.mark.expected_resource_failures(422)
def test_a_range_with_too_many_hourly_buckets_shows_the_apis_refusal(page: Page, traffic):
    page.goto(REPORTS)
    expect(points(page, "chart-printers", "Printers")).to_have_count(24)
    page.get_by_label("Show", exact=True).select_option(label="Last 90 days")
    page.get_by_label("Peak per", exact=True).select_option("hour")
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page.locator("#report-form .form-message")).to_contain_text("at most 1000 buckets")
    page.get_by_label("Peak per", exact=True).select_option("day")
    page.get_by_role("button", name="Show", exact=True).click()
    expect(points(page, "chart-printers", "Printers")).to_have_count(90)
    expect(points(page, "chart-printers", "Printers").last).to_have_attribute("data-value", "2")
    screenshot(page, "usage-reports-90-days")

"""Printer Usage: recent print checks, the failed-only filter, group change and blocking, groups, mapping rules."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from .console_support import CONSOLE, fetch_from_page, install, screenshot

ACTIVITY = f"{CONSOLE}/printers"
PERMISSIONS = f"{CONSOLE}/printers?tab=permissions"


@pytest.fixture(scope="module")
def licensed(admin: httpx.Client, console_issuer) -> None:
    install(admin, console_issuer.license_bytes(product="LabelStudio", count=10))


def client_print_check(server, printer: str, product: str = "LabelStudio", host: str = "pc-12") -> httpx.Response:
    """A print check as an application makes it: the client API, no login."""
    body = {"product": product, "printer": {"name": printer}, "client": {"host": host, "user": "ann"}}
    return httpx.post(f"{server.url}/api/v1/print-checks", json=body, timeout=10)


def printer_row(page: Page, name: str):
    return page.locator("#printers-table tbody tr").filter(has=page.get_by_text(name, exact=True))


def test_activity_lists_a_print_check_made_through_the_client_api(page: Page, console_server, licensed):
    assert client_print_check(console_server, "Zebra Activity", host="pc-activity").status_code == 200
    page.goto(ACTIVITY)
    row = page.locator("#requests-table tbody tr").first
    expect(row).to_contain_text("Zebra Activity")
    expect(row).to_contain_text("pc-activity")
    expect(row.locator(".badge")).to_have_text("Granted")
    expect(printer_row(page, "Zebra Activity")).to_contain_text("LIC-")
    screenshot(page, "printer-usage-activity")


def test_failed_only_filter_hides_granted_rows(page: Page, console_server, licensed):
    assert client_print_check(console_server, "Zebra Granted").status_code == 200
    assert client_print_check(console_server, "Zebra Unlicensed", product="NoSuchStudio").status_code == 404
    page.goto(ACTIVITY)
    rows = page.locator("#requests-table tbody tr")
    expect(rows.filter(has_text="Zebra Granted")).not_to_have_count(0)
    page.get_by_label("Show failed requests only").check()
    page.wait_for_url("**/printers?failed=1")
    expect(rows.filter(has_text="Zebra Unlicensed")).to_have_count(1)
    expect(rows.filter(has_text="Zebra Unlicensed")).to_contain_text("no valid printer license")
    expect(rows.filter(has_text="Zebra Granted")).to_have_count(0)
    assert page.locator('#requests-table tr[data-granted="true"]').count() == 0
    export = page.get_by_role("link", name="Export CSV")
    expect(export).to_have_attribute("href", "/api/v1/admin/usage.csv?kind=print&failed_only=true")
    screenshot(page, "printer-usage-failed-only")


def test_a_clients_repeated_refusals_show_as_one_row_with_their_count(page: Page, console_server, licensed):
    for _ in range(5):
        answer = client_print_check(console_server, "Zebra Retried", product="NoSuchStudio", host="pc-retry")
        assert answer.status_code == 404
    page.goto(f"{ACTIVITY}?failed=1")
    rows = page.locator("#requests-table tbody tr").filter(has_text="pc-retry")
    expect(rows).to_have_count(1)
    expect(rows.locator(".repeat-count")).to_have_text("5 times")


def test_change_group_then_block_printer_denies_its_next_print_check(page: Page, console_server, admin, licensed):
    assert admin.post("/api/v1/admin/printer-groups", json={"name": "Dock"}).status_code == 201
    assert client_print_check(console_server, "Zebra Dock").status_code == 200
    page.goto(ACTIVITY)
    row = printer_row(page, "Zebra Dock")
    row.get_by_label("Printer group of Zebra Dock", exact=True).select_option("Dock")
    row.get_by_role("button", name="Change printer group of Zebra Dock").click()
    expect(row).to_have_attribute("data-group", "Dock")
    printers = {p["identity"]["name"]: p for p in admin.get("/api/v1/admin/printers").json()["printers"]}
    assert printers["Zebra Dock"]["group"] == "Dock"

    row.get_by_role("button", name="Block Zebra Dock").click()
    page.get_by_role("button", name="Yes, block printer", exact=True).click()
    expect(row).to_have_attribute("data-group", "Blocked")
    expect(row.get_by_role("button", name="Unblock Zebra Dock")).to_be_visible()
    denied = client_print_check(console_server, "Zebra Dock")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "printer_blocked"
    latest = page.locator("#requests-table tbody tr").first
    expect(latest).to_have_attribute("data-reason", "printer_blocked")  # the live table shows it by itself
    expect(latest.locator(".badge")).to_have_text("Denied")
    screenshot(page, "printer-usage-blocked")


@pytest.mark.expected_resource_failures(403)
def test_groups_are_created_renamed_and_deleted_while_default_and_blocked_stay_protected(page: Page, admin):
    page.goto(PERMISSIONS)
    for builtin in ("Default", "Blocked"):
        row = page.locator(f'#groups-table tr[data-group="{builtin}"]')
        expect(row.locator(".badge")).to_have_text("Protected")
        expect(row.get_by_role("button")).to_have_count(0)
    page.get_by_label("New group").fill("Lab 2")
    page.get_by_role("button", name="Create group").click()
    lab = page.locator('#groups-table tr[data-group="Lab 2"]')
    expect(lab).to_be_visible()

    lab.get_by_label("New name for Lab 2").fill("Lab Two")
    lab.get_by_role("button", name="Rename Lab 2").click()
    expect(page.locator('#groups-table tr[data-group="Lab Two"]')).to_be_visible()
    expect(lab).to_have_count(0)

    page.get_by_role("button", name="Delete Lab Two").click()
    page.get_by_role("button", name="Yes, delete", exact=True).click()
    expect(page.locator('#groups-table tr[data-group="Lab Two"]')).to_have_count(0)
    names = [g["name"] for g in admin.get("/api/v1/admin/printer-groups").json()["groups"]]
    assert "Lab Two" not in names and "Lab 2" not in names

    # No controls for the built-in groups, and the API refuses anyway.
    renamed = fetch_from_page(page, "PUT", "/api/v1/admin/printer-groups/Default", {"name": "Standard"})
    deleted = fetch_from_page(page, "DELETE", "/api/v1/admin/printer-groups/Blocked")
    assert (renamed["status"], renamed["body"]["error"]["code"]) == (403, "group_protected")
    assert (deleted["status"], deleted["body"]["error"]["code"]) == (403, "group_protected")
    screenshot(page, "printer-usage-groups")


def test_mapping_rules_are_added_moved_edited_and_deleted_in_order(page: Page, admin, console_server, licensed):
    assert admin.post("/api/v1/admin/printer-groups", json={"name": "Labels"}).status_code == 201
    page.goto(PERMISSIONS)
    form = page.locator("#mapping-form")
    for field, pattern, group in (("name", "^Zebra", "Labels"), ("driver", "ZDesigner", "Blocked")):
        form.get_by_label("Field").select_option(field)
        form.get_by_label("Pattern (regular expression)").fill(pattern)
        form.get_by_label("Group").select_option(group)
        form.get_by_role("button", name="Add rule").click()
        expect(page.locator(f'#rules-table tr[data-pattern="{pattern}"]')).to_be_visible()

    def rules() -> list[tuple[str, str, str]]:
        listed = admin.get("/api/v1/admin/printer-groups").json()["mapping_rules"]
        return [(r["field"], r["pattern"], r["group"]) for r in listed]

    assert rules() == [("name", "^Zebra", "Labels"), ("driver", "ZDesigner", "Blocked")]
    page.get_by_role("button", name="Move rule 2 up").click()
    expect(page.locator("#rules-table tbody tr").first).to_have_attribute("data-pattern", "ZDesigner")
    assert rules() == [("driver", "ZDesigner", "Blocked"), ("name", "^Zebra", "Labels")]

    page.get_by_role("button", name="Edit rule 2").click()
    form.get_by_label("Pattern (regular expression)").fill("^Zebra ZT")
    form.get_by_role("button", name="Save rule").click()
    expect(page.locator("#rules-table tbody tr").nth(1)).to_have_attribute("data-pattern", "^Zebra ZT")
    # The rules place a printer seen for the first time: the first match wins.
    assert client_print_check(console_server, "Zebra ZT230").json()["group"] == "Labels"

    page.get_by_role("button", name="Delete rule 1").click()
    page.get_by_role("button", name="Yes, delete", exact=True).click()
    expect(page.locator("#rules-table tbody tr")).to_have_count(1)
    assert rules() == [("name", "^Zebra ZT", "Labels")]
    screenshot(page, "printer-usage-mapping-rules")


def test_a_viewer_sees_printer_usage_without_change_controls(page_as, licensed):
    viewer = page_as("viewer")
    viewer.goto(PERMISSIONS)
    expect(viewer.locator("#groups-table")).to_be_visible()
    expect(viewer.get_by_role("button", name="Create group")).to_have_count(0)
    expect(viewer.locator("#mapping-form")).to_have_count(0)
    viewer.goto(ACTIVITY)
    expect(viewer.locator("#printers-table")).to_be_visible()
    expect(viewer.locator("#printers-table").get_by_role("button")).to_have_count(0)
    screenshot(viewer, "printer-usage-viewer")


def test_a_groups_printer_count_matches_the_printers_listed_when_one_was_only_refused(
    page: Page, console_server, licensed
):
    assert client_print_check(console_server, "Zebra Counted").status_code == 200
    refused = client_print_check(console_server, "Zebra Refused", product="NoSuchStudio")
    assert refused.status_code != 200, refused.text
    page.goto(ACTIVITY)
    expect(printer_row(page, "Zebra Counted")).to_be_visible()
    listed = page.locator('#printers-table tbody tr[data-group="Default"]').count()
    assert listed >= 1
    page.goto(PERMISSIONS)
    count = page.locator('#groups-table tr[data-group="Default"] td[data-label="Printers"]')
    expect(count).to_contain_text(str(listed))
    assert count.inner_text().split()[0] == str(listed), count.inner_text()
    # A refused print check records no printer at all (issue 13, finding 7): nothing is counted unlisted.
    expect(count).not_to_contain_text("known")


def test_a_print_check_granted_over_the_limit_reads_granted_in_limited_use_grace_once(page: Page, console_server,
                                                                                       admin, console_issuer):
    install(admin, console_issuer.license_bytes(product="GraceStudio", count=1))
    assert client_print_check(console_server, "grace-first", product="GraceStudio").json()["granted"] is True
    over = client_print_check(console_server, "grace-second", product="GraceStudio").json()
    assert over["granted"] is True and over["status"] == "grace", over  # one printer over: limited-use grace
    page.goto(ACTIVITY)
    row = page.locator("#requests-table tbody tr").filter(has=page.get_by_text("grace-second", exact=True))
    expect(row).to_have_attribute("data-reason", "grace")
    result = row.locator('td[data-label="Result"]')
    expect(result).to_have_text("Granted in limited-use grace")  # not "Granted granted in limited-use grace"
    expect(result.locator(".badge")).to_have_class("badge badge-grace")
    first = page.locator("#requests-table tbody tr").filter(has=page.get_by_text("grace-first", exact=True))
    expect(first.locator('td[data-label="Result"]')).to_have_text("Granted")
    screenshot(page, "printer-usage-grace")

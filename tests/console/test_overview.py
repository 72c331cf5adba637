"""The Licensing overview: licenses with use and status colours, the live status strip, narrow and keyboard use."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from .console_support import CONSOLE, expect_no_horizontal_scroll, install, print_check, screenshot

YELLOW = "rgb(255, 241, 194)"
RED = "rgb(253, 230, 230)"
GREEN = "rgb(227, 243, 231)"


@pytest.fixture(scope="module")
def licenses(admin, console_issuer) -> dict[str, str]:
    """An expired license, one within its limit, and one over its limit in limited-use grace."""
    expired = install(admin, console_issuer.license_bytes(product="OldStudio", count=3, expires=time.time() + 3))
    fine = install(admin, console_issuer.license_bytes(product="LabelStudio", count=5))
    grace = install(admin, console_issuer.license_bytes(product="GraceStudio", count=1, grace_days=30))
    print_check(admin, "LabelStudio", "Zebra ZT410")
    for printer in ("Zebra A", "Zebra B"):
        assert print_check(admin, "GraceStudio", printer)["granted"] is True
    time.sleep(max(0.0, expired["expires"] - time.time() + 0.1))
    return {"expired": expired["license_id"], "ok": fine["license_id"], "grace": grace["license_id"]}


def _background(page: Page, selector: str) -> str:
    return page.locator(selector).evaluate("element => getComputedStyle(element).backgroundColor")


def test_overview_shows_each_license_with_used_total_and_status_colour(page: Page, licenses):
    page.goto(f"{CONSOLE}/")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    ok_row = page.locator(f'tr[data-license-id="{licenses["ok"]}"]')
    expect(ok_row).to_contain_text("1 / 5")
    expect(ok_row.locator(".badge")).to_have_text("OK")
    assert _background(page, f'tr[data-license-id="{licenses["ok"]}"] .badge') == GREEN

    grace_badge = page.locator(f'tr[data-license-id="{licenses["grace"]}"] .badge')
    expect(page.locator(f'tr[data-license-id="{licenses["grace"]}"]')).to_contain_text("2 / 1")
    expect(grace_badge).to_have_text("Grace: 30 days left")
    expect(grace_badge).to_have_attribute("title", "Over its limit: limited-use grace period, 30 days left")
    assert _background(page, f'tr[data-license-id="{licenses["grace"]}"] .badge') == YELLOW

    expired_badge = page.locator(f'tr[data-license-id="{licenses["expired"]}"] .badge')
    expect(expired_badge).to_have_text("Expired")
    assert _background(page, f'tr[data-license-id="{licenses["expired"]}"] .badge') == RED
    expect(page.locator("#status-strip")).to_contain_text("1 in grace")
    screenshot(page, "overview")


def test_status_strip_and_license_table_update_live_without_reload(page: Page, licenses, admin, console_issuer):
    page.goto(f"{CONSOLE}/")
    ok_pill = page.locator('#status-strip [data-status="ok"]')
    expect(ok_pill).to_have_text("1 OK")
    page.evaluate("window.notReloaded = true")
    added = install(admin, console_issuer.license_bytes(product="LiveStudio", count=7))
    expect(ok_pill).to_have_text("2 OK")
    expect(page.locator(f'tr[data-license-id="{added["license_id"]}"]')).to_contain_text("0 / 7")
    assert page.evaluate("window.notReloaded") is True
    admin.delete(f"/api/v1/admin/licenses/{added['license_id']}")
    expect(ok_pill).to_have_text("1 OK")
    expect(page.locator(f'tr[data-license-id="{added["license_id"]}"]')).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "overview-live")


def test_overview_fits_a_narrow_window_without_horizontal_scroll(page: Page, licenses):
    page.set_viewport_size({"width": 400, "height": 860})
    page.goto(f"{CONSOLE}/")
    expect(page.locator(f'tr[data-license-id="{licenses["grace"]}"]')).to_be_visible()
    expect_no_horizontal_scroll(page)
    screenshot(page, "overview-narrow")


def test_keyboard_reaches_skip_link_and_navigation_with_visible_focus(page: Page, licenses):
    page.goto(f"{CONSOLE}/")
    page.keyboard.press("Tab")
    focused = page.locator(":focus")
    expect(focused).to_have_text("Skip to main content")
    assert focused.bounding_box()["y"] >= 0
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('nav') !== null"):
            break
    else:
        pytest.fail("Tab never reached the navigation")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    nav_link = page.locator("nav a:focus")
    expect(nav_link).to_have_count(1)
    screenshot(page, "overview-keyboard")
    page.keyboard.press("Tab")
    expect(page.locator("nav a:focus")).to_have_text("License Setup")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{CONSOLE}/licenses")


@pytest.mark.parametrize("path", ["/licenses", "/this-server", "/seats", "/users"])
def test_other_pages_fit_a_narrow_window_too(page: Page, licenses, path):
    page.set_viewport_size({"width": 400, "height": 860})
    page.goto(f"{CONSOLE}{path}")
    expect(page.locator("main h1")).to_be_visible()
    expect_no_horizontal_scroll(page)
    screenshot(page, f"narrow-{path.strip('/')}")

"""Seats and Clients: the leases held now (live), revoking one as a manager, and the client registry."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .console_support import CONSOLE, install, screenshot


@pytest.fixture(scope="module")
def seats(admin, console_issuer) -> str:
    return install(admin, console_issuer.license_bytes(product="CADStudio", unit="seats", count=3))["license_id"]


def _checkout(admin, user: str, host: str) -> str:
    client = {"host": host, "user": user, "application": "CAD", "version": "9.1"}
    answer = admin.post("/api/v1/leases", json={"product": "CADStudio", "client": client})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["lease_id"]


def _held(admin) -> set[str]:
    return {lease["lease_id"] for lease in admin.get("/api/v1/admin/leases").json()["leases"]}


def test_a_manager_revokes_a_lease_and_its_seat_is_freed(page_as, admin, seats):
    kept = _checkout(admin, "ann", "ws-1")
    revoked = _checkout(admin, "bob", "ws-2")
    page = page_as("manager")
    page.goto(f"{CONSOLE}/seats")
    row = page.locator(f'tr[data-lease-id="{revoked}"]')
    expect(row).to_contain_text("bob @ ws-2")
    expect(row).to_contain_text("CAD")
    screenshot(page, "seats")
    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("button", name="Yes, revoke", exact=True).click()
    expect(page.locator(f'tr[data-lease-id="{revoked}"]')).to_have_count(0)
    message = page.locator("#leases").locator("..").locator(".form-message")
    expect(message).to_have_text("Lease revoked; the seat is free.")
    assert revoked not in _held(admin) and kept in _held(admin)
    assert admin.get(f"/api/v1/admin/licenses/{seats}").json()["used"] == 1
    admin.post(f"/api/v1/admin/leases/{kept}/revoke")


def test_the_lease_table_shows_new_leases_without_reload(page: Page, admin, seats):
    page.goto(f"{CONSOLE}/seats")
    page.evaluate("window.notReloaded = true")
    lease = _checkout(admin, "cyd", "ws-3")
    expect(page.locator(f'tr[data-lease-id="{lease}"]')).to_contain_text("cyd @ ws-3")
    screenshot(page, "seats-live")
    admin.post(f"/api/v1/admin/leases/{lease}/revoke")
    expect(page.locator(f'tr[data-lease-id="{lease}"]')).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True


def test_clients_that_asked_for_licenses_are_listed(page: Page, admin, seats):
    lease = _checkout(admin, "dee", "ws-clients")
    admin.post(f"/api/v1/admin/leases/{lease}/revoke")
    registry = admin.get("/api/v1/admin/clients").json()["clients"]
    client = next(c for c in registry if c["info"]["host"] == "ws-clients")
    page.goto(f"{CONSOLE}/seats")
    row = page.locator(f'tr[data-client-id="{client["client_id"]}"]')
    expect(row).to_contain_text("ws-clients")
    expect(row).to_contain_text("dee")
    expect(row).to_contain_text("CAD 9.1")
    screenshot(page, "seats-clients")

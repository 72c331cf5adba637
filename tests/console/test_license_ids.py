"""A license an earlier version let in with a path as its id: the console links to it and removes it by
that id, sent as one URL path segment, and touches nothing the path would otherwise name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import Issuer, ServerProcess, plant_license
from playwright.sync_api import Page, expect

from .console_support import CONSOLE, put_user

ODD_ID = "../users/admin2"


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory, console_issuer: Issuer) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("console-ids") / "server"
    console_issuer.trust_in(data_dir)
    plant_license(data_dir, console_issuer.terms(license_id=ODD_ID, product="OddStudio"))
    server = ServerProcess(data_dir)
    try:
        yield server.start()
    finally:
        server.kill()


def test_a_license_with_a_path_as_its_id_is_shown_and_removed_by_that_id(page: Page, admin):
    put_user(admin, "admin2", "admin2-password", "viewer")
    page.goto(f"{CONSOLE}/licenses")
    row = page.locator(f'tr[data-license-id="{ODD_ID}"]')
    link = row.get_by_role("link", name=ODD_ID)
    expect(link).to_have_attribute("href", f"{CONSOLE}/licenses/..%2Fusers%2Fadmin2")
    link.click()
    expect(page.locator("#terms-heading")).to_contain_text("OddStudio")
    expect(page.locator("dl.details")).to_contain_text(f"License{ODD_ID}")

    page.get_by_role("button", name="Remove license").click()
    page.get_by_role("button", name="Yes, remove license", exact=True).click()
    page.wait_for_url(f"**{CONSOLE}/licenses")
    expect(page.locator("tr[data-license-id]")).to_have_count(0)
    assert admin.get("/api/v1/admin/licenses").json()["licenses"] == []
    assert "admin2" in [user["username"] for user in admin.get("/api/v1/admin/users").json()["users"]]

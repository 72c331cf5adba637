"""The overview of a server in a backup pair: two license servers, in the order an admin chooses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ADMIN_PASSWORD, BackupPairProcesses, Issuer
from playwright.sync_api import Browser, Page, expect

from .console_support import CONSOLE, install, log_in, screenshot


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupPairProcesses]:
    processes = BackupPairProcesses(Path(tmp_path_factory.mktemp("pair")), Issuer())
    try:
        yield processes.start()
    finally:
        processes.stop()


@pytest.fixture
def main_page(browser: Browser, pair: BackupPairProcesses) -> Iterator[Page]:
    context = browser.new_context(base_url=pair.main.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8000)
    yield log_in(context.new_page(), "admin", ADMIN_PASSWORD)
    context.close()


def _order(page: Page) -> list[str]:
    return page.locator("[data-server-key]").evaluate_all("cards => cards.map(card => card.dataset.serverKey)")


def test_a_backup_pair_shows_both_servers_and_an_admin_reorders_them(main_page: Page, pair):
    with pair.main.admin() as admin:
        lic = install(admin, pair.issuer.license_bytes(product="LabelStudio", count=5))
        page = main_page
        page.goto(f"{CONSOLE}/")
        expect(page.locator("[data-server-key]")).to_have_count(2)
        assert _order(page) == ["main", "backup"]
        main_card = page.locator('[data-server-key="main"]')
        expect(main_card).to_contain_text("Main server, backup relationship B1")
        expect(main_card.locator(f'tr[data-license-id="{lic["license_id"]}"]')).to_contain_text("0 / 5")
        expect(page.locator('[data-server-key="backup"]')).to_contain_text("hosted on that server")

        page.get_by_role("button", name="Move backup up").click()
        expect(page.locator("[data-server-key]").first).to_have_attribute("data-server-key", "backup")
        assert admin.get("/api/v1/admin/settings").json()["settings"]["console_server_order"] == ["backup", "main"]
        expect(page.locator(":focus")).to_have_attribute("aria-label", "Move backup down")
        page.reload()
        assert _order(page) == ["backup", "main"]
        screenshot(page, "overview-backup-pair")
        page.get_by_role("button", name="Move backup down").click()
        expect(page.locator("[data-server-key]").first).to_have_attribute("data-server-key", "main")
        assert admin.get("/api/v1/admin/settings").json()["settings"]["console_server_order"] == ["main", "backup"]

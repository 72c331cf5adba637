"""The backup relationship's status on the Redundancy page, as an administrator reads it while the backup is down."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ADMIN_PASSWORD, BackupPairProcesses, Issuer
from playwright.sync_api import Browser, Page, expect

from .console_support import CONSOLE, install, log_in, print_check, screenshot


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


def test_the_backup_table_shows_each_servers_status_icon_in_its_row(main_page: Page, pair: BackupPairProcesses) -> None:
    page = main_page
    page.goto(f"{CONSOLE}/redundancy")
    rows = page.locator("#rel-backup tbody[data-field=members] tr")
    expect(rows).to_have_count(2)
    for name in ("main", "backup"):
        status = page.locator(f'#rel-backup tr[data-member="{name}"] td[data-label="Status"]')
        expect(status.locator("svg.pair-icon")).to_have_attribute("data-state", "connected_synchronized",
                                                                  timeout=15000)
        expect(status).to_have_text("Connected and synchronized")
    screenshot(page, "backup-table-status-icons")


def test_an_administrator_never_reads_synchronized_while_changes_wait_for_a_stopped_backup(
    main_page: Page, pair: BackupPairProcesses
) -> None:
    with pair.main.admin() as admin:
        install(admin, pair.issuer.license_bytes(product="LabelStudio", count=5))
        page = main_page
        page.goto(f"{CONSOLE}/redundancy")
        state = page.locator("#rel-backup [data-field=state]")
        expect(state).to_contain_text("Connected and synchronized", timeout=15000)

        pair.backup.kill()
        expect(state).to_contain_text("Not connected", timeout=15000)
        for number in range(3):
            print_check(admin, "LabelStudio", f"prn-{number}")
        waiting = page.locator("#rel-backup [data-field=to-partner]")
        expect(waiting).not_to_have_text("0 changes, 0 usage rows", timeout=4000)
        # The panel says changes wait, so its state must not call the pair synchronized at the same moment.
        expect(state).to_have_text("Not connected, not synchronized", timeout=1500)
        assert "not synchronized" in state.inner_text()
        # Each row's icon says the same as the panel: the backup is not connected and changes wait.
        row_status = page.locator('#rel-backup tr[data-member="backup"] td[data-label="Status"]')
        expect(row_status.locator("svg.pair-icon")).to_have_attribute("data-state", "not_connected_not_synchronized")
        # The timeline names the lost backup and since when it cannot be reached.
        events = page.locator("#rel-events")
        expect(events.locator('li[data-kind="unreachable"]')).to_contain_text("Lost contact with backup.")
        expect(events.locator('[data-field="outages"]')).to_contain_text(
            re.compile(r"backup unreachable since \d{1,2}:\d{2}:\d{2}"))
        screenshot(page, "redundancy-backup-events")

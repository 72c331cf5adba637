"""The backup relationship's status on the Redundancy page, as an administrator reads it while the backup is down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ADMIN_PASSWORD, BackupPairProcesses, Issuer
from playwright.sync_api import Browser, Page, expect

from .console_support import CONSOLE, install, log_in, print_check


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

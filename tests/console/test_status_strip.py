"""The status strip at the top of every page, as an administrator watches it while the server goes away."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from harness import ServerProcess
from playwright.sync_api import Page, expect

from .console_support import CONSOLE

TIME_OF_DAY = re.compile(r"^\d{1,2}:\d{2}:\d{2}(\s?[AP]M)?$")


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """This module's own server: its test stops it."""
    server = ServerProcess(tmp_path_factory.mktemp("strip") / "server")
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.mark.expected_resource_failures("net::ERR_CONNECTION_REFUSED")
def test_the_strip_shows_updated_in_one_format_and_no_green_pill_once_the_connection_is_lost(
    page: Page, console_server: ServerProcess
) -> None:
    page.goto(f"{CONSOLE}/")
    strip = page.locator("#status-strip")
    updated = strip.locator('[data-status="at"]')
    pill = strip.locator('[data-status="active"]')
    first = updated.inner_text().strip()
    assert TIME_OF_DAY.match(first), f"the strip first shows Updated as {first!r}"
    expect(updated).not_to_have_text(first, timeout=3000)  # a poll answered
    assert TIME_OF_DAY.match(updated.inner_text().strip())
    expect(pill).to_have_text("Active")

    console_server.kill()
    expect(strip.locator('[data-status="offline"]')).to_be_visible(timeout=5000)
    expect(pill).not_to_have_text("Active")
    expect(pill).not_to_have_class(re.compile(r"pill-ok"))

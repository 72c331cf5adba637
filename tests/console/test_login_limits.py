"""The console's login form is limited like every other login: after a few wrong passwords it says to wait."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ADMIN_PASSWORD, ServerProcess
from playwright.sync_api import Browser, Page, expect

from .console_support import CONSOLE, screenshot


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of its own: the lock these tests provoke must not reach other tests."""
    server = ServerProcess(tmp_path / "limits")
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture
def login_page(browser: Browser, own_server: ServerProcess) -> Iterator[Page]:
    context = browser.new_context(base_url=own_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8000)
    page = context.new_page()
    page.goto(f"{CONSOLE}/login")
    yield page
    context.close()


def _submit(page: Page, password: str) -> int:
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    with page.expect_response(f"**{CONSOLE}/login") as posted:
        page.get_by_role("button", name="Log in").click()
    return posted.value.status


@pytest.mark.expected_resource_failures(401, 429)
def test_after_five_wrong_passwords_the_form_refuses_even_the_right_one_and_says_when_to_retry(login_page: Page):
    page = login_page
    for _ in range(5):
        assert _submit(page, "not-the-password") == 401
        expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    assert _submit(page, ADMIN_PASSWORD) == 429
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"^Too many failed logins\. Try again in \d+ seconds\.$")
    )
    assert not any(c["name"].startswith("licentia_session_") for c in page.context.cookies())
    screenshot(page, "login-locked")

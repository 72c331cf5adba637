"""First start: the login page points to the generated password, and the console makes the admin replace it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import ServerProcess
from playwright.sync_api import Browser, Page, expect

from .console_support import CONSOLE, screenshot

NEW_PASSWORD = "my-own-admin-password"


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server started without LICENTIA_ADMIN_PASSWORD: it generates the admin password."""
    server = ServerProcess(tmp_path / "fresh", admin_password=None)
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture
def fresh_page(browser: Browser, fresh_server: ServerProcess) -> Iterator[Page]:
    context = browser.new_context(base_url=fresh_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8000)
    yield context.new_page()
    context.close()


def _can_log_in(server: ServerProcess, password: str) -> bool:
    answer = httpx.post(f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": password})
    return answer.status_code == 200


def test_first_login_forces_a_new_password_and_then_deletes_the_hint_file(fresh_page: Page, fresh_server):
    page = fresh_page
    hint = fresh_server.data_dir / "initial-admin-password"
    generated = hint.read_text().strip()
    page.goto(f"{CONSOLE}/")
    expect(page.locator("#first-start")).to_contain_text("initial-admin-password")
    screenshot(page, "login-first-start")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(generated)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{CONSOLE}/password")
    # Every console page leads back here until the password is changed.
    page.goto(f"{CONSOLE}/licenses")
    page.wait_for_url(f"**{CONSOLE}/password")
    expect(page.get_by_role("heading", name="Set your password")).to_be_visible()

    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill("something-else")
    page.get_by_role("button", name="Set password").click()
    expect(page.locator(".form-message")).to_have_text("The two passwords differ. Type the same password twice.")
    assert _can_log_in(fresh_server, generated)
    screenshot(page, "set-password")

    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(re.compile(r"/console/login\?changed=password$"))
    expect(page.get_by_role("status")).to_have_text("Your password was changed. Log in with the new password.")
    expect(page.locator("#first-start")).to_have_count(0)
    assert not hint.exists()
    assert not _can_log_in(fresh_server, generated)

    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{CONSOLE}/")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()

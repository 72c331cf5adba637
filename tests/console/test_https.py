"""An administrator opens the console of a server that answers over HTTPS with its own certificate."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import ADMIN_PASSWORD, Issuer, ServerProcess
from playwright.sync_api import Browser, expect

from .console_support import CONSOLE, log_in


@pytest.fixture
def https_server(tmp_path: Path, console_issuer: Issuer):
    data_dir = tmp_path / "lic-tls"
    console_issuer.trust_in(data_dir)
    server = ServerProcess(data_dir, tls=True)
    try:
        yield server.start()
    finally:
        server.kill()


def test_over_https_the_console_shows_the_certificate_fingerprint_and_its_cookie_is_secure(
    browser: Browser, https_server: ServerProcess
):
    # The administrator accepted the self-signed certificate in the browser (after comparing its
    # fingerprint with the one the server printed at start).
    profile = browser.new_context(base_url=https_server.url, ignore_https_errors=True)
    errors: list[str] = []
    try:
        page = profile.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        log_in(page, "admin", ADMIN_PASSWORD)
        cookies = [c for c in profile.cookies() if c["name"].startswith("licentia_session")]
        assert cookies and all(c["secure"] for c in cookies)
        page.goto(f"{CONSOLE}/this-server")
        expect(page.get_by_role("heading", name="Connection security")).to_be_visible()
        expect(page.locator("#tls-fingerprint")).to_have_text(https_server.fingerprint)
    finally:
        profile.close()
    assert errors == []

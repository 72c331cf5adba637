"""An administrator opens the console of a server that answers over HTTPS with its own certificate."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import ADMIN_PASSWORD, Issuer, ServerProcess
from playwright.sync_api import Browser, expect

from .console_support import CONSOLE, log_in


@pytest.fixture
def start_https(tmp_path: Path, console_issuer: Issuer):
    """Start servers that answer over HTTPS with their own self-signed certificates; stopped after the test."""
    started: list[ServerProcess] = []

    def start(name: str) -> ServerProcess:
        data_dir = tmp_path / name
        console_issuer.trust_in(data_dir)
        started.append(ServerProcess(data_dir, tls=True))
        return started[-1].start()

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def https_server(start_https) -> ServerProcess:
    return start_https("lic-tls")


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


@pytest.fixture
def https_partner(start_https) -> ServerProcess:
    return start_https("lic-tls-2")


@pytest.mark.expected_resource_failures(409)  # the check refuses until the certificate is confirmed
def test_the_wizard_pairs_two_https_servers_once_the_administrator_confirms_the_partners_certificate(
    browser: Browser, https_server: ServerProcess, https_partner: ServerProcess
):
    profile = browser.new_context(base_url=https_server.url, ignore_https_errors=True,
                                  viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    try:
        page = profile.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        log_in(page, "admin", ADMIN_PASSWORD)
        page.goto(f"{CONSOLE}/redundancy")
        page.get_by_role("button", name="Setup Server Redundancy").click()
        dialog = page.get_by_role("dialog", name="Redundancy Setup")
        dialog.get_by_label("Backup relationship").check()
        dialog.get_by_label("Name of the relationship").fill("Plant-S")
        dialog.get_by_role("button", name="Next").click()
        dialog.get_by_label("This server's name").fill("lic1")
        dialog.get_by_label("Other server's name").fill("lic2")
        dialog.get_by_label("Other server's API URL").fill(https_partner.url)
        dialog.get_by_role("button", name="Next").click()
        dialog.get_by_label("Administrator password").fill(ADMIN_PASSWORD)
        dialog.get_by_role("button", name="Check").click()
        result = dialog.locator("#wizard-check-result")
        # Only the partner is asked about: this server's own certificate is the one this page came over.
        certificates = result.locator(".certificate-list li")
        expect(certificates).to_have_count(1)
        expect(certificates).to_have_attribute("data-server", "lic2")
        expect(certificates.locator("code")).to_have_text(https_partner.fingerprint)
        dialog.get_by_role("button", name="Next").click()  # not before the check passes
        expect(dialog.locator("#wizard-message")).to_contain_text("The check must pass")
        certificates.get_by_role("checkbox").check()
        dialog.get_by_role("button", name="Check again").click()
        expect(result).to_contain_text("Each server's access rules allow the others.", timeout=15000)
        dialog.get_by_role("button", name="Next").click()
        dialog.get_by_role("button", name="Next").click()
        expect(dialog.locator("#wizard-summary")).to_contain_text(https_partner.fingerprint)
        expect(dialog.locator("#wizard-summary")).to_contain_text(https_server.fingerprint)
        dialog.get_by_role("button", name="Finish").click()
        expect(dialog.locator("#wizard-result")).to_contain_text("Backup relationship Plant-S is set up",
                                                                 timeout=20000)
        dialog.get_by_role("button", name="Close").click()
        state = page.locator('#rel-backup [data-field="state"]')
        expect(state).to_have_attribute("data-state", "connected_synchronized", timeout=20000)
    finally:
        profile.close()
    # The first check is refused with 409 (the page shows why); Chromium logs every 4xx fetch as a failed
    # resource. Nothing else may reach the browser's console.
    assert [e for e in errors if "status of 409" not in e] == []
    assert len(errors) <= 1

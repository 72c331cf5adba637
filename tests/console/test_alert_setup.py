"""Alert Setup: recipients, thresholds and kinds saved with the version guard; a test alert through real SMTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from alert_sinks import SmtpSink, alerts_config
from harness import Issuer, ServerProcess, free_port, wait_for
from playwright.sync_api import Page, expect

from .console_support import CONSOLE, screenshot

ALERTS = f"{CONSOLE}/alerts"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory, console_issuer: Issuer, smtp: SmtpSink):
    """This module's server sends its alert mail through `smtp` (its [alerts] configuration)."""
    data_dir = tmp_path_factory.mktemp("alert-setup") / "server"
    console_issuer.trust_in(data_dir)
    server = ServerProcess(data_dir, extra_args=["--config", str(alerts_config(data_dir.parent, smtp))])
    try:
        yield server.start()
    finally:
        server.kill()


def saved(admin: httpx.Client) -> dict:
    return admin.get("/api/v1/admin/alerts").json()


def test_alert_setup_saves_recipients_thresholds_and_muted_kinds(page: Page, admin: httpx.Client, smtp: SmtpSink):
    version = saved(admin)["version"]
    page.goto(ALERTS)
    expect(page.locator("#smtp-details")).to_contain_text(f"127.0.0.1:{smtp.port}")
    expect(page.locator("#smtp-details")).to_contain_text("password set")
    page.get_by_label("Email recipients").fill("ops@example.test\nlead@example.test")
    page.get_by_label("Alert when this many requests are refused (0: never)").fill("7")
    page.get_by_label("failover and failback").uncheck()
    page.get_by_role("button", name="Save alert setup").click()
    expect(page.locator("#alert-form .form-message")).to_have_text(f"Alert setup saved (version {version + 1}).")

    body = saved(admin)
    assert body["version"] == version + 1
    assert body["settings"]["recipients"] == ["ops@example.test", "lead@example.test"]
    assert body["settings"]["denials_threshold"] == 7 and body["settings"]["muted_kinds"] == ["failover"]
    page.reload()
    expect(page.get_by_label("Email recipients")).to_have_value("ops@example.test\nlead@example.test")
    expect(page.get_by_label("failover and failback")).not_to_be_checked()
    screenshot(page, "alert-setup")


@pytest.mark.expected_resource_failures(409)
def test_a_page_loaded_before_another_change_cannot_overwrite_it(page: Page, admin: httpx.Client):
    page.goto(ALERTS)
    current = saved(admin)
    newer = {**current["settings"], "recipients": ["newer@example.test"], "expected_version": current["version"]}
    assert admin.put("/api/v1/admin/alerts", json=newer).status_code == 200
    page.get_by_label("Email recipients").fill("stale@example.test")
    page.get_by_role("button", name="Save alert setup").click()
    message = page.locator("#alert-form .form-message")
    expect(message).to_contain_text("Someone else changed the alert setup")
    expect(message).to_have_attribute("role", "alert")
    assert saved(admin)["settings"]["recipients"] == ["newer@example.test"]
    screenshot(page, "alert-setup-version-conflict")


@pytest.mark.expected_resource_failures(502)
def test_test_alert_reaches_a_real_smtp_server_and_a_failed_channel_is_reported(page: Page, smtp: SmtpSink):
    page.goto(ALERTS)
    page.get_by_label("Email recipients").fill("oncall@example.test")
    page.get_by_label("Webhook URL").fill("")
    page.get_by_role("button", name="Send a test alert").click()
    result = page.locator("#test-result")
    expect(result).to_have_text("Test alert delivered: email to oncall@example.test.")
    wait_for(lambda: [e for e in smtp.envelopes if e[1] == ["oncall@example.test"]], what="the test alert mail")
    assert smtp.matching("Test alert")
    expect(page.locator('#deliveries-table tr[data-ok="true"]').first).to_contain_text("oncall@example.test")

    page.get_by_label("Webhook URL").fill(f"http://127.0.0.1:{free_port()}/hook")
    page.get_by_role("button", name="Send a test alert").click()
    expect(result).to_contain_text("The test alert was not delivered: webhook to http://127.0.0.1:")
    expect(result).to_have_attribute("role", "alert")
    screenshot(page, "alert-setup-test-alert")

"""Alerts of a standalone server, delivered to a real SMTP server and a webhook: once per incident, once on recovery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alert_sinks import SMTP_PASSWORD, SmtpSink, WebhookSink, alerts_config
from harness import ADMIN_PASSWORD, Issuer, wait_for

JSON = {"Content-Type": "application/json"}
QUIET = 0.8  # seconds (four evaluations) in which nothing more may arrive


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    yield sink
    sink.stop()


def set_alerts(admin: httpx.Client, **settings) -> dict:
    response = admin.put("/api/v1/admin/alerts", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


def print_check(url: str, printer: str, product: str = "LabelStudio") -> httpx.Response:
    return httpx.post(f"{url}/api/v1/print-checks", json={"product": product, "printer": {"name": printer}})


def printer_id(admin: httpx.Client, name: str) -> str:
    return next(p["printer_id"] for p in admin.get("/api/v1/admin/printers").json()["printers"]
                if p["identity"]["name"] == name)


def test_grace_alert_once_per_incident_and_once_on_recovery(start_server, issuer: Issuer, smtp, webhook,
                                                             tmp_path: Path):
    config = alerts_config(tmp_path, smtp)
    server = start_server(extra_args=["--config", str(config)])
    with server.admin() as admin:
        lic = admin.post("/api/v1/admin/licenses", headers=JSON,
                         content=issuer.license_bytes(unit="printers", count=2, grace_days=30)).json()
        set_alerts(admin, recipients=["ops@example.com", "lead@example.com"], webhook_url=webhook.url,
                   expiring_within_days=0, denials_threshold=0)
        for name in ("P1", "P2"):
            assert print_check(server.url, name).json()["status"] == "ok"
        time.sleep(QUIET)
        assert smtp.messages == [] and webhook.posts == []

        assert print_check(server.url, "P3").json()["status"] == "grace"
        opened = wait_for(lambda: smtp.matching("[Licentia ALERT]", lic["license_id"]), what="the grace alert")
        message = opened[0]
        assert "limited-use grace" in message.get_content() and "30 day(s) left" in message.get_content()
        assert smtp.envelopes[0] == ("licentia@example.test", ["ops@example.com", "lead@example.com"], True)
        wait_for(lambda: webhook.events("license_grace"), what="the grace webhook")

        # The same incident goes on (another printer over the count, more prints): nothing new is sent.
        for name in ("P4", "P3", "P4", "P1"):
            assert print_check(server.url, name).status_code == 200

    # Nor after a restart: open incidents are kept in the data directory.
    server.stop()
    server.start()
    time.sleep(QUIET)
    assert len(smtp.messages) == 1, smtp.subjects()
    assert webhook.events() == [("opened", f"license_grace:{lic['license_id']}")]

    with server.admin() as admin:
        for name in ("P3", "P4"):
            assert admin.post(f"/api/v1/admin/printers/{printer_id(admin, name)}/block").status_code == 200
        resolved = wait_for(lambda: smtp.matching("[Licentia RESOLVED]", lic["license_id"]), what="the recovery")
        assert "back within its count" in resolved[0].get_content()
        time.sleep(QUIET)
        assert len(smtp.messages) == 2, smtp.subjects()
        key = f"license_grace:{lic['license_id']}"
        assert webhook.events() == [("opened", key), ("resolved", key)]
        post = webhook.posts[0]
        assert post["severity"] == "warning" and post["details"]["grace_days_left"] == 30
        assert post["server"] == "Licentia" and post["reported_by"].startswith("server ")
        assert admin.get("/api/v1/admin/alerts").json()["incidents"] == []


def test_expiring_license_and_denial_rate_alerts(start_server, issuer: Issuer, smtp, tmp_path: Path):
    server = start_server(extra_args=["--config", str(alerts_config(tmp_path, smtp))])
    with server.admin() as admin:
        admin.post("/api/v1/admin/licenses", headers=JSON, content=issuer.license_bytes(license_id="LIC-LONG"))
        soon = admin.post("/api/v1/admin/licenses", headers=JSON,
                          content=issuer.license_bytes(license_id="LIC-SOON", expires=time.time() + 5 * 86400))
        assert soon.status_code == 201
        set_alerts(admin, recipients=["ops@example.com"], expiring_within_days=30, denials_threshold=3,
                   denials_window_s=60)
        expiring = wait_for(lambda: smtp.matching("LIC-SOON", "expires on"), what="the expiry alert")
        assert "LIC-LONG" not in expiring[0]["Subject"]
        assert "4.9 day(s) left" in expiring[0].get_content() or "5.0 day(s) left" in expiring[0].get_content()

        for number in range(3):
            assert print_check(server.url, f"X{number}", product="NoSuchProduct").status_code == 404
        time.sleep(QUIET)
        assert smtp.matching("refused") == []  # three is the threshold, not above it
        for number in range(3, 8):
            print_check(server.url, f"X{number}", product="NoSuchProduct")
        denials = wait_for(lambda: smtp.matching("[Licentia ALERT]", "license requests were refused"),
                           what="the denial alert")
        assert "no_license" in denials[0]["Subject"]
        for number in range(8, 14):
            print_check(server.url, f"X{number}", product="NoSuchProduct")

        assert admin.delete("/api/v1/admin/licenses/LIC-SOON").status_code == 200
        wait_for(lambda: smtp.matching("[Licentia RESOLVED]", "LIC-SOON", "was removed"), what="the expiry recovery")
        time.sleep(QUIET)
        assert len(smtp.messages) == 3, smtp.subjects()
        incidents = admin.get("/api/v1/admin/alerts").json()["incidents"]
        assert [i["key"] for i in incidents] == ["denials"] and incidents[0]["told"]


def test_alert_settings_api_validates_and_changes_nothing_on_refusal(start_server, smtp, tmp_path: Path):
    server = start_server(extra_args=["--config", str(alerts_config(tmp_path, smtp))])
    with server.admin() as admin:
        good = set_alerts(admin, recipients=["ops@example.com"], member_down_after_s=10)
        assert good["version"] == 2
        bad_bodies = [
            ({"recipients": ["not-an-address"]}, 422, "invalid_alert_settings"),
            ({"recipients": ["ops@example.com", "OPS@example.com"]}, 422, "invalid_alert_settings"),
            ({"recipients": ["a@example.com"] * 21}, 422, "invalid_request"),
            ({"member_down_after_s": 0}, 422, "invalid_alert_settings"),
            ({"denials_threshold": -1}, 422, "invalid_alert_settings"),
            ({"denials_window_s": 5}, 422, "invalid_alert_settings"),
            ({"expiring_within_days": 1000}, 422, "invalid_alert_settings"),
            ({"denials_threshold": "many"}, 422, "invalid_request"),
            ({"webhook_url": "ftp://example.com/hook"}, 422, "invalid_alert_settings"),
            ({"muted_kinds": ["earthquake"]}, 422, "invalid_request"),
            ({"smtp_password": "x"}, 422, "invalid_request"),
            ({"recipients": ["ops@example.com"], "expected_version": 1}, 409, "version_conflict"),
        ]
        for body, status, code in bad_bodies:
            response = admin.put("/api/v1/admin/alerts", json=body)
            assert response.status_code == status, (body, response.text)
            assert response.json()["error"]["code"] == code, (body, response.text)
        after = admin.get("/api/v1/admin/alerts").json()
        assert after["settings"] == good["settings"] and after["version"] == 2

        # The SMTP server is shown, its password never: only whether one is set.
        assert after["smtp"] == {"configured": True, "host": "127.0.0.1", "port": smtp.port, "tls": "none",
                                 "user": smtp.user, "password_set": True, "from": "licentia@example.test"}
        assert SMTP_PASSWORD not in admin.get("/api/v1/admin/alerts").text
        assert httpx.get(f"{server.url}/api/v1/admin/alerts").status_code == 401
        assert admin.put("/api/v1/admin/alerts", json={"expected_version": 2, "recipients": []}).status_code == 200


def test_test_alert_endpoint(start_server, smtp, webhook, tmp_path: Path):
    server = start_server(extra_args=["--config", str(alerts_config(tmp_path, smtp))])
    with server.admin() as admin:
        refused = admin.post("/api/v1/admin/alerts/test", json={})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_alert_destination"
        bad = admin.post("/api/v1/admin/alerts/test", json={"recipients": ["nobody"]})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_alert_settings"

        # To destinations given in the body, before they are saved.
        sent = admin.post("/api/v1/admin/alerts/test", json={"recipients": ["try@example.com"],
                                                             "webhook_url": webhook.url})
        assert sent.status_code == 200, sent.text
        assert {r["channel"] for r in sent.json()["results"]} == {"email", "webhook"}
        assert smtp.envelopes == [("licentia@example.test", ["try@example.com"], True)]
        assert "[Licentia TEST]" in smtp.messages[0]["Subject"]
        assert webhook.posts[0]["event"] == "test"
        assert admin.get("/api/v1/admin/alerts").json()["settings"]["recipients"] == []

        # To the saved ones; a failing webhook is reported, the mail still goes.
        set_alerts(admin, recipients=["ops@example.com"], webhook_url=webhook.url)
        webhook.status = 500
        failed = admin.post("/api/v1/admin/alerts/test", json={})
        assert failed.status_code == 502, failed.text
        assert failed.json()["error"]["code"] == "alert_delivery_failed"
        assert "HTTP 500" in failed.json()["error"]["message"]
        assert len(smtp.messages) == 2 and smtp.envelopes[1][1] == ["ops@example.com"]
        recent = admin.get("/api/v1/admin/alerts").json()["recent_deliveries"]
        assert [(r["channel"], r["ok"]) for r in recent[-2:]] in ([("email", True), ("webhook", False)],
                                                                 [("webhook", False), ("email", True)])


def test_wrong_smtp_password_is_reported_without_revealing_it(start_server, smtp, tmp_path: Path):
    wrong = "Wrong-smtp-pass-77e1"
    server = start_server(extra_args=["--config", str(alerts_config(tmp_path, smtp, password=wrong))])
    with server.admin() as admin:
        failed = admin.post("/api/v1/admin/alerts/test", json={"recipients": ["ops@example.com"]})
        assert failed.status_code == 502, failed.text
        assert "SMTPAuthenticationError" in failed.json()["error"]["message"]
        assert wrong not in failed.text and wrong not in admin.get("/api/v1/admin/alerts").text
    assert smtp.messages == []
    log = server.log_path.read_text()
    assert "SMTPAuthenticationError" in log
    assert wrong not in log and ADMIN_PASSWORD not in log

"""Delivery on its own: the email's content, retries of a failing channel, and the password scrubbed from errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import msgspec
import pytest
from alert_sinks import SmtpSink, WebhookSink

from licentia.alerts.delivery import Alert, Dispatcher, render_email
from licentia.config import AlertConfig

ALERT = Alert(event="opened", kind="member_down", key="member_down:T1:a", severity="critical",
              summary="Triad T1: member a (primary, http://a:8470) is down: b has not reached it for 31 s.",
              server="Plant 4", reported_by="b (secondary of T1)", at=1_767_225_600.0, opened_at=1_767_225_600.0,
              details={"member": "a", "relationship": "T1"})


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    yield sink
    sink.stop()


def test_email_says_what_happened_in_the_subject_and_the_details_in_the_body():
    message = render_email(ALERT, "licentia@example.net", ["ops@example.com", "lead@example.com"])
    assert message["Subject"] == f"[Licentia ALERT] Plant 4: {ALERT.summary}"
    assert message["To"] == "ops@example.com, lead@example.com" and message["From"] == "licentia@example.net"
    body = message.get_content()
    assert body.startswith(ALERT.summary)
    assert "Event:        opened (critical)" in body and "Opened at:    2026-01-01 00:00:00 UTC" in body
    assert "  member: a" in body and "reported by b (secondary of T1)" in body
    resolved = msgspec.structs.replace(ALERT, event="resolved", severity="info", summary="Member a is back.")
    assert render_email(resolved, "x@example.net", ["y@example.com"])["Subject"] == (
        "[Licentia RESOLVED] Plant 4: Member a is back.")
    long = msgspec.structs.replace(ALERT, summary="x" * 300)
    assert len(render_email(long, "x@example.net", ["y@example.com"])["Subject"]) < 200


def test_a_failing_channel_is_retried_and_the_other_is_not_held_back(webhook):
    webhook.fail_next = 2
    dispatcher = Dispatcher(AlertConfig(), retry_delays=(0.05, 0.05))
    results = asyncio.run(dispatcher.deliver(ALERT, [], webhook.url, retries=True))
    assert [(r.channel, r.ok, r.attempt) for r in results] == [("webhook", True, 3)]
    assert [(r.ok, r.attempt) for r in dispatcher.recent] == [(False, 1), (False, 2), (True, 3)]
    assert "HTTP 503" in dispatcher.recent[0].error
    assert len(webhook.posts) == 3 and all(post == webhook.posts[0] for post in webhook.posts)

    webhook.fail_next = 5
    (result,) = asyncio.run(dispatcher.deliver(ALERT, [], webhook.url, retries=True))
    assert not result.ok and result.attempt == 3  # given up after two retries


def test_smtp_errors_never_carry_the_password():
    smtp = SmtpSink().start()
    try:
        password = "Pw-that-must-not-leak-19"
        config = AlertConfig(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none", smtp_user=smtp.user,
                             smtp_password=password, smtp_timeout_s=5)
        dispatcher = Dispatcher(config, retry_delays=())
        (result,) = asyncio.run(dispatcher.deliver(ALERT, ["ops@example.com"], ""))
        assert not result.ok and "SMTPAuthenticationError" in result.error
        assert dispatcher._scrub(f"server said: {password}") == "server said: ***"
        assert smtp.messages == []

        good = AlertConfig(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none", smtp_user=smtp.user,
                           smtp_password=smtp.password, smtp_from="alerts@example.net")
        (result,) = asyncio.run(Dispatcher(good).deliver(ALERT, ["ops@example.com"], ""))
        assert result.ok and smtp.envelopes == [("alerts@example.net", ["ops@example.com"], True)]
    finally:
        smtp.stop()


def test_without_an_smtp_server_email_fails_with_a_clear_reason():
    (result,) = asyncio.run(Dispatcher(AlertConfig()).deliver(ALERT, ["ops@example.com"], ""))
    assert not result.ok and "no SMTP server is configured" in result.error

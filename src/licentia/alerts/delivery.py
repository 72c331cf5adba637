"""Delivering alerts: email through the configured SMTP server, and an optional webhook (JSON POST).

Mail is sent with the standard library's smtplib in a worker thread, so a slow
mail server never blocks the event loop. Alerts are queued and delivered in
order by one task; a channel that fails is retried twice (after 2 s and 10 s),
and every attempt's outcome is kept for the admin API. The SMTP password is
read only when a message is sent, and scrubbed from any error text.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import msgspec

from licentia import __version__
from licentia.config import AlertConfig, ConfigError
from licentia.outbound_http import http_client_imported

log = logging.getLogger("licentia.alerts")

RETRY_DELAYS_S = (2.0, 10.0)
WEBHOOK_TIMEOUT_S = 10.0
LABELS = {"opened": "ALERT", "resolved": "RESOLVED", "test": "TEST"}


class Alert(msgspec.Struct):
    """What is sent: the webhook's JSON body, and the content of the email."""

    event: str
    kind: str
    key: str
    severity: str
    summary: str
    server: str
    reported_by: str
    at: float
    opened_at: float
    details: dict[str, Any] = {}


class DeliveryResult(msgspec.Struct):
    at: float
    key: str
    event: str
    channel: str
    ok: bool
    target: str
    error: str = ""
    attempt: int = 1


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_email(alert: Alert, sender: str, recipients: list[str]) -> EmailMessage:
    message = EmailMessage()
    summary = alert.summary if len(alert.summary) <= 160 else alert.summary[:157] + "..."
    message["Subject"] = f"[Licentia {LABELS.get(alert.event, alert.event.upper())}] {alert.server}: {summary}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(alert.at)
    message["Message-ID"] = make_msgid("licentia")
    message["X-Licentia-Alert"] = f"{alert.event}; key={alert.key}; severity={alert.severity}"
    lines = [
        alert.summary,
        "",
        f"Event:        {alert.event} ({alert.severity})",
        f"Kind:         {alert.kind}",
        f"Server:       {alert.server} (reported by {alert.reported_by})",
        f"Opened at:    {_utc(alert.opened_at)}",
        f"Reported at:  {_utc(alert.at)}",
    ]
    if alert.details:
        lines += ["", "Details:"] + [f"  {key}: {value}" for key, value in sorted(alert.details.items())]
    lines += [
        "",
        "Each incident is announced once when it opens and once when it is resolved.",
        f"-- Licentia {__version__}",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


def send_email_sync(config: AlertConfig, recipients: list[str], alert: Alert) -> None:
    """Send one alert to `recipients` through the configured SMTP server (blocking; run it in a thread)."""
    if not config.email_configured:
        raise RuntimeError("no SMTP server is configured (smtp_host in the [alerts] table)")
    message = render_email(alert, config.sender, recipients)
    context = ssl.create_default_context()
    if config.smtp_tls == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            config.smtp_host, config.port, timeout=config.smtp_timeout_s, context=context
        )
    else:
        smtp = smtplib.SMTP(config.smtp_host, config.port, timeout=config.smtp_timeout_s)
    with smtp:
        smtp.ehlo()
        if config.smtp_tls == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.smtp_user:
            smtp.login(config.smtp_user, config.password())
        smtp.send_message(message, from_addr=config.sender, to_addrs=recipients)


async def post_webhook(url: str, alert: Alert, timeout: float = WEBHOOK_TIMEOUT_S) -> None:
    await http_client_imported()  # off the loop: a standalone server loads httpx (~5 MB) only to send a webhook
    import httpx

    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        response = await http.post(
            url,
            content=msgspec.json.encode(alert),
            headers={"Content-Type": "application/json", "User-Agent": f"licentia/{__version__}"},
        )
    if response.status_code >= 300:
        raise RuntimeError(f"the webhook answered HTTP {response.status_code}")


class Dispatcher:
    """Queues alerts and delivers them in order; keeps the outcome of recent attempts."""

    def __init__(self, config: AlertConfig, retry_delays: tuple[float, ...] = RETRY_DELAYS_S) -> None:
        self.config = config
        self.retry_delays = retry_delays
        self.recent: collections.deque[DeliveryResult] = collections.deque(maxlen=50)
        self._queue: asyncio.Queue[tuple[Alert, list[str], str]] | None = None

    def submit(self, alert: Alert, recipients: list[str], webhook_url: str) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._queue.put_nowait((alert, list(recipients), webhook_url))

    async def run(self) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
        while True:
            alert, recipients, webhook_url = await self._queue.get()
            try:
                await self.deliver(alert, recipients, webhook_url, retries=True)
            except Exception:
                log.exception("Delivering alert %s hit an unexpected error.", alert.key)

    async def deliver(
        self, alert: Alert, recipients: list[str], webhook_url: str, *, retries: bool = False
    ) -> list[DeliveryResult]:
        """Send on every configured channel at once; the last result of each channel."""
        jobs = []
        if recipients:
            jobs.append(self._channel("email", ", ".join(recipients), alert, retries,
                                      lambda: asyncio.to_thread(send_email_sync, self.config, recipients, alert)))
        if webhook_url:
            jobs.append(self._channel("webhook", webhook_url, alert, retries, lambda: post_webhook(webhook_url, alert)))
        return list(await asyncio.gather(*jobs))

    async def _channel(self, channel: str, target: str, alert: Alert, retries: bool, send: Any) -> DeliveryResult:
        delays = self.retry_delays if retries else ()
        attempt = 0
        while True:
            attempt += 1
            try:
                await send()
            except Exception as exc:
                result = DeliveryResult(
                    at=alert.at, key=alert.key, event=alert.event, channel=channel, ok=False, target=target,
                    error=self._scrub(f"{type(exc).__name__}: {exc}"), attempt=attempt,
                )
                self.recent.append(result)
                if attempt > len(delays):
                    log.error(
                        "Could not deliver alert %s [%s] by %s to %s: %s.",
                        alert.key, alert.event, channel, target, result.error,
                    )
                    return result
                log.warning(
                    "Delivering alert %s [%s] by %s to %s failed (%s); retrying in %g s.",
                    alert.key, alert.event, channel, target, result.error, delays[attempt - 1],
                )
                await asyncio.sleep(delays[attempt - 1])
                continue
            result = DeliveryResult(
                at=alert.at, key=alert.key, event=alert.event, channel=channel, ok=True, target=target,
                attempt=attempt,
            )
            self.recent.append(result)
            log.info("Delivered alert %s [%s] by %s to %s.", alert.key, alert.event, channel, target)
            return result

    def _scrub(self, text: str) -> str:
        """Never let the SMTP password into an error message (and so into a log line or an API answer)."""
        with contextlib.suppress(ConfigError):
            password = self.config.password()
            if password:
                text = text.replace(password, "***")
        return text[:500]

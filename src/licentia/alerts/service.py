"""The alert loop of one server: gather its view every few seconds, apply the rules, deliver what they say.

Started by `LicenseServer.start`. Open incidents are kept in
`DATA/alerts-state.json`, so a restart neither repeats an alert nor forgets to
announce a recovery. Alerts are evaluated only while they are enabled and have
somewhere to go (recipients or a webhook); switching them on announces what is
wrong at that moment, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, Protocol

import msgspec

from licentia.alerts.delivery import Alert, DeliveryResult, Dispatcher
from licentia.alerts.rules import (
    AlertView,
    Incident,
    Notice,
    Teller,
    conditions,
    step,
    track_down_since,
    track_no_active_since,
    who_tells,
)
from licentia.cluster.relationship_status import RelationshipStatus
from licentia.config import Config, ConfigError
from licentia.core.state import LicenseState
from licentia.core.views import license_status
from licentia.store import data_directory
from licentia.store.data_directory import write_private
from licentia.store.journal import SqliteJournal

log = logging.getLogger("licentia.alerts")

STATE_FILE = data_directory.ALERTS_STATE.name
_incidents_type = dict[str, Incident]


class AlertHost(Protocol):
    """What the alerts need of the server: its state, clock, journal (refusals), relationship and identity."""

    config: Config
    state: LicenseState
    journal: SqliteJournal
    server_id: str

    def now(self) -> float: ...

    def relationship(self) -> RelationshipStatus | None: ...


class AlertService:
    def __init__(self, server: AlertHost) -> None:
        self.server = server
        self.config = server.config.alerts
        self.dispatcher = Dispatcher(self.config)
        self.incidents: dict[str, Incident] = {}
        self.down_since: dict[str, float] = {}
        self.no_active_since: float | None = None
        self.teller: Teller = "me"
        self.last_evaluated_at: float | None = None

    # -- persistence ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.server.config.data_dir / STATE_FILE

    def load(self) -> None:
        try:
            self.incidents = msgspec.json.decode(self.path.read_bytes(), type=_incidents_type)
        except FileNotFoundError:
            self.incidents = {}
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("Ignored %s (%s): open incidents may be announced again.", self.path, exc)
            self.incidents = {}

    def save(self) -> None:
        write_private(self.path, msgspec.json.encode(self.incidents))

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        self.load()
        worker = asyncio.create_task(self.dispatcher.run())
        try:
            while True:
                await asyncio.sleep(self.config.interval_s)
                try:
                    await self.evaluate()
                except Exception:
                    log.exception("Evaluating alerts hit an unexpected error.")
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def gather(self, now: float) -> AlertView:
        settings = self.server.state.alert_settings
        refusals: dict[str, int] = {}
        if settings.denials_threshold > 0 and "denials" not in settings.muted_kinds:
            refusals = await self.server.journal.refusals_since(now - settings.denials_window_s)
        relationship = self.server.relationship()
        self.down_since = track_down_since(self.down_since, relationship, now)
        self.no_active_since = track_no_active_since(self.no_active_since, relationship, now)
        state = self.server.state
        return AlertView(
            licenses=[license_status(state, lic, now) for lic in state.licenses.values()],
            relationship=relationship,
            refusals=refusals,
            down_since=dict(self.down_since),
            no_active_since=self.no_active_since,
        )

    async def evaluate(self) -> list[Notice]:
        """One evaluation: update the open incidents and queue the alerts they call for."""
        settings = self.server.state.alert_settings
        now = self.server.now()
        self.last_evaluated_at = now
        if not settings.enabled or not (settings.recipients or settings.webhook_url):
            if self.incidents:
                self.incidents = {}
                self.save()
            self.down_since, self.no_active_since = {}, None
            return []
        view = await self.gather(now)
        settings = self.server.state.alert_settings
        current = conditions(view, settings, now, set(self.incidents))
        self.teller = who_tells(view, settings, now)
        incidents, notices = step(self.incidents, current, view, settings, now)
        if incidents != self.incidents:
            self.incidents = incidents
            self.save()
        reporter = self.reporter(view.relationship)
        for notice in notices:
            if notice.event == "opened":
                log.warning("Alert (%s): %s", notice.severity, notice.summary)
            else:
                log.warning("Alert resolved: %s", notice.summary)
            alert = Alert(
                event=notice.event,
                kind=notice.kind,
                key=notice.key,
                severity=notice.severity,
                summary=notice.summary,
                server=self.server.state.settings.server_name,
                reported_by=reporter,
                at=notice.at,
                opened_at=notice.opened_at,
                details=notice.details,
            )
            self.dispatcher.submit(alert, settings.recipients, settings.webhook_url)
        return notices

    def reporter(self, relationship: RelationshipStatus | None) -> str:
        if relationship is not None and relationship.me:
            return f"{relationship.me} ({relationship.my_role} of {relationship.name})"
        return f"server {self.server.server_id}"

    # -- the admin API --------------------------------------------------------------------------

    async def send_test(self, recipients: list[str], webhook_url: str) -> list[DeliveryResult]:
        now = self.server.now()
        name = self.server.state.settings.server_name
        relationship = self.server.relationship()
        alert = Alert(
            event="test",
            kind="test",
            key="test",
            severity="info",
            summary=f"Test alert from {name}: alerts from this server reach you.",
            server=name,
            reported_by=self.reporter(relationship),
            at=now,
            opened_at=now,
        )
        return await self.dispatcher.deliver(alert, recipients, webhook_url)

    def smtp_view(self) -> dict[str, Any]:
        """The SMTP configuration as the API shows it: whether a password is set, never the password."""
        config = self.config
        try:
            password_set = bool(config.password())
        except ConfigError:
            password_set = False
        return {
            "configured": config.email_configured,
            "host": config.smtp_host,
            "port": config.port,
            "tls": config.smtp_tls,
            "user": config.smtp_user,
            "password_set": password_set,
            "from": config.smtp_from or None,
        }

    def status(self) -> dict[str, Any]:
        return {
            "smtp": self.smtp_view(),
            "interval_s": self.config.interval_s,
            "last_evaluated_at": self.last_evaluated_at,
            "this_member_tells": self.teller == "me",
            "incidents": [msgspec.to_builtins(incident) for incident in self.incidents.values()],
            "recent_deliveries": [msgspec.to_builtins(result) for result in list(self.dispatcher.recent)[-20:]],
        }

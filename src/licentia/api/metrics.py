"""Prometheus metrics (`GET /metrics`) and health endpoints for load balancers (`GET /health/...`).

Each server has its own `CollectorRegistry` (not prometheus-client's global
one), so several servers can run in one process, as they do in tests.

Almost everything is computed at scrape time from the server's state by
`LicentiaCollector`; the request path pays only for two cheap things:

- `LicenseServer.execute` adds one to `server.outcomes[(command type, outcome code)]`
  (a dict increment), which the collector turns into counters;
- `ClientLatencyMiddleware` times the client API (`/api/v1/...`, not the admin
  API) into `Histogram`s: a `bisect` and two additions per request, no
  lock (everything runs on the event loop's thread);
- `LoopLateness` (`api.loop_lateness`) times a 10 ms timer on the loop: how long it answered nothing.

Metrics and health need no login: they expose counts, timings, license ids and
products and the relationship layout (member names, roles); never a key, a
token, a password or who the clients are. See docs/operations.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from licentia import __version__
from licentia.api.histogram import Histogram
from licentia.api.licensing_first import is_client_request
from licentia.api.loop_lateness import LoopLateness
from licentia.api.this_server import this_server
from licentia.cluster.relationship_status import BackupPairStatus
from licentia.core.views import license_status

if TYPE_CHECKING:
    from licentia.api.routing import Endpoint
    from licentia.server import LicenseServer

# Seconds; license requests usually take 1-5 ms (they wait for a durable commit).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)



def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class ClientLatencyMiddleware:
    """Times the client API's requests (`/api/v1/...` outside `/api/v1/admin`) by method and route template.

    The router records the matched route in the scope (`scope["route"]`), so the
    template is read after the call: no second matching. Requests that matched no
    client endpoint (404, 405, auth, admin) are not recorded.
    """

    def __init__(self, app: ASGIApp, histograms: dict[tuple[str, str], Histogram]) -> None:
        self.app = app
        self.histograms = histograms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not is_client_request(path):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            if route is not None:
                histogram = self.histograms.get((scope["method"], route.path))
                if histogram is not None:
                    histogram.observe(time.perf_counter() - started)


def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


class LicentiaCollector(Collector):
    """Every Licentia metric, computed from the server's state when Prometheus scrapes."""

    def __init__(self, server: LicenseServer, latency: dict[tuple[str, str], Histogram],
                 loop_lateness: LoopLateness) -> None:
        self.server = server
        self.latency = latency
        self.loop_lateness = loop_lateness
        self._names: dict[type, str] = {}

    def describe(self) -> list[Metric]:
        return []  # metrics are only known at scrape time; do not collect at registration

    def collect(self) -> Iterator[Metric]:
        server = self.server
        if getattr(server, "state", None) is None or not server.server_id:
            return
        now = server.now()
        yield from self._server_metrics(server)
        yield from self._license_metrics(server, now)
        yield from self._outcome_metrics(server)
        yield from self._login_metrics(server)
        yield from self._latency_metrics()
        yield from self._loop_metrics()
        yield from self._relationship_metrics(server, now)

    # -- groups -------------------------------------------------------------------------------

    def _server_metrics(self, server: LicenseServer) -> Iterator[Metric]:
        info = _gauge(
            "licentia_server_info", "This server: id, name and version (always 1)", ["server_id", "name", "version"]
        )
        info.add_metric([server.server_id, server.state.settings.server_name or "", __version__], 1)
        yield info
        yield GaugeMetricFamily(
            "licentia_server_start_time_seconds", "Unix time this server process started", value=server.started_at
        )
        yield GaugeMetricFamily(
            "licentia_ready", "1 when /health/ready answers 200", value=1 if is_ready(server) else 0
        )
        yield GaugeMetricFamily(
            "licentia_active",
            "1 on the server that currently serves licenses (standalone: always; triad: the active member)",
            value=1 if is_active(server) else 0,
        )

    def _license_metrics(self, server: LicenseServer, now: float) -> Iterator[Metric]:
        state = server.state
        labels = ["license_id", "product", "unit"]
        units = _gauge("licentia_license_units", "Units (seats or printers) a license allows", labels)
        used = _gauge("licentia_license_used", "Units of a license in use now", labels)
        grace = _gauge(
            "licentia_license_grace_remaining_seconds", "Seconds of over-use grace a license has left", labels
        )
        expiry = _gauge("licentia_license_expiry_timestamp_seconds", "Unix time a license expires", labels)
        status = _gauge(
            "licentia_license_status",
            "1 for a license's current status (ok, full, grace, exhausted, expired, not_yet_valid)",
            [*labels, "status"],
        )
        for lic in state.licenses.values():
            view = license_status(state, lic, now)
            values = [lic.id, lic.terms.product, lic.terms.unit]
            units.add_metric(values, lic.terms.count)
            used.add_metric(values, view["used"])
            grace.add_metric(values, round(lic.grace_seconds_left(now), 1))
            expiry.add_metric(values, lic.terms.expires)
            status.add_metric([*values, view["status"]], 1)
        yield from (units, used, grace, expiry, status)
        yield GaugeMetricFamily(
            "licentia_leases_active",
            "Seat leases held now (not yet expired)",
            value=len(state.leases) - len(state.expired_leases(now)),  # no pass over every lease
        )
        yield GaugeMetricFamily(
            "licentia_clients", "Client machines/users/applications known", value=len(state.clients)
        )
        yield GaugeMetricFamily("licentia_printers", "Printers known", value=len(state.printers))

    def _outcome_metrics(self, server: LicenseServer) -> Iterator[Metric]:
        commands = CounterMetricFamily(
            "licentia_commands",
            "Commands this server executed, by command and outcome code (ok or the refusal reason)",
            labels=["command", "outcome"],
        )
        checkouts = CounterMetricFamily(
            "licentia_checkouts", "Seat checkouts granted or denied, by reason", labels=["result", "reason"]
        )
        prints = CounterMetricFamily(
            "licentia_print_checks", "Print checks granted or denied, by reason", labels=["result", "reason"]
        )
        for (kind, code), value in list(server.outcomes.items()):
            name = self._names.get(kind)
            if name is None:
                name = self._names[kind] = _snake(kind.__name__)
            commands.add_metric([name, code], value)
            if name in ("checkout", "print_check"):
                target = checkouts if name == "checkout" else prints
                target.add_metric(["granted" if code == "ok" else "denied", code], value)
        yield from (commands, checkouts, prints)

    @staticmethod
    def _login_metrics(server: LicenseServer) -> Iterator[Metric]:
        """Admin password checks: failures, locks (licentia.api.login_limits) and refusals while locked."""
        limits = server.login_limits
        yield CounterMetricFamily(
            "licentia_login_failures", "Admin logins refused for a wrong user name or password", value=limits.failures
        )
        locks = CounterMetricFamily(
            "licentia_login_locks",
            "Times a user or a source address was locked after repeated failed logins",
            labels=["kind"],
        )
        for kind, value in limits.locks.items():
            locks.add_metric([kind], value)
        yield locks
        yield CounterMetricFamily(
            "licentia_logins_refused_while_locked",
            "Admin logins refused without a password check because the user or the address was locked",
            value=limits.refused_while_locked,
        )
        yield GaugeMetricFamily(
            "licentia_revoked_tokens", "Logged-out tokens not yet expired (refused until then)",
            value=len(server.revoked_tokens),
        )

    def _loop_metrics(self) -> Iterator[Metric]:
        lateness = self.loop_lateness
        family = HistogramMetricFamily(
            "licentia_event_loop_lateness_seconds",
            "How late the event loop ran a 10 ms timer: how long it answered nothing (a handler, a collector pass, "
            "the process not scheduled)",
        )
        family.add_metric([], lateness.histogram.cumulative(), lateness.histogram.sum)
        yield family
        yield GaugeMetricFamily(
            "licentia_event_loop_lateness_max_seconds", "The longest the event loop was late since the server started",
            value=lateness.longest,
        )

    def _latency_metrics(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "licentia_request_duration_seconds",
            "Time to answer client API requests, by method and route",
            labels=["method", "route"],
        )
        for (method, route), histogram in self.latency.items():
            family.add_metric([method, route], histogram.cumulative(), histogram.sum)
        yield family

    @staticmethod
    def _backup_metrics(pair: BackupPairStatus) -> Iterator[Metric]:
        """A backup pair as this server sees it: the Redundancy page's two flags, the last sync, the backlog."""
        partner = [pair.partner]
        for name, help_text, value in (
            ("licentia_backup_connected", "1 when this server reached its backup partner on the last try",
             pair.connected),
            ("licentia_backup_synchronized", "1 when each server of the pair holds everything of the other",
             pair.synchronized),
            ("licentia_backup_peer_reachable", "1 when the partner can be reached (same as connected)",
             pair.connected),
        ):
            gauge = _gauge(name, help_text, ["partner"])
            gauge.add_metric(partner, int(bool(value)))
            yield gauge
        if pair.last_sync_at is not None:
            gauge = _gauge(
                "licentia_backup_last_sync_timestamp_seconds", "When the partner last answered a sync", ["partner"]
            )
            gauge.add_metric(partner, pair.last_sync_at)
            yield gauge
        failovers = CounterMetricFamily(
            "licentia_backup_failovers",
            "Times this server lost contact with its partner since it started (on the backup: takeovers of the "
            "main's clients)",
            labels=["partner"],
        )
        failovers.add_metric(partner, pair.contact_losses)
        yield failovers
        pending = _gauge(
            "licentia_backup_pending",
            "Not yet synchronized: usage rows and change sequence numbers (an upper bound), by direction",
            ["partner", "direction", "what"],
        )
        for direction, counts in (("to_partner", pair.pending.to_partner), ("from_partner", pair.pending.from_partner)):
            for what, waiting in (("changes", counts.changes), ("usage_rows", counts.usage_rows)):
                if waiting is not None:
                    pending.add_metric([pair.partner, direction, what], waiting)
        yield pending

    def _relationship_metrics(self, server: LicenseServer, now: float) -> Iterator[Metric]:
        info = _gauge(
            "licentia_relationship_info",
            "This server's place: type standalone, triad or backup; its name; member name and role (always 1)",
            ["type", "triad", "member", "role"],
        )
        status = server.relation.status()  # a dissolved triad still counts here until this member has left it
        if isinstance(status, BackupPairStatus):
            info.add_metric(["backup", status.name, status.me, status.my_role], 1)
            yield info
            yield from self._backup_metrics(status)
            return
        if status is None:
            info.add_metric(["standalone", "", server.server_id, "standalone"], 1)
            yield info
            return
        me = status.me
        info.add_metric(["triad", status.name, me, status.my_role], 1)
        yield info
        member_active = _gauge(
            "licentia_triad_member_active", "1 for the member this server sees as active", ["member", "role"]
        )
        reachable = _gauge(
            "licentia_triad_peer_reachable",
            "1 when the peer holds a live etcd lease (it reaches a majority)",
            ["peer", "role"],
        )
        replication = _gauge(
            "licentia_triad_replication_lag_entries",
            "etcd revisions of the log a peer has not applied yet (as it last reported)",
            ["peer", "role"],
        )
        peers_up = 0
        for member in status.members:
            member_active.add_metric([member.name, member.role], 1 if member.active else 0)
            if member.name == me:
                continue
            reachable.add_metric([member.name, member.role], 1 if member.reachable else 0)
            peers_up += bool(member.reachable)
            if member.log_behind is not None:
                replication.add_metric([member.name, member.role], member.log_behind)
        yield from (member_active, reachable, replication)
        yield GaugeMetricFamily("licentia_triad_peers_reachable", "Peers that hold a live etcd lease", value=peers_up)
        yield GaugeMetricFamily(
            "licentia_triad_has_quorum", "1 when this member reaches a majority", value=int(status.has_quorum)
        )
        yield GaugeMetricFamily(
            "licentia_triad_raft_leader",
            "1 when this member's etcd is the etcd (Raft) leader",
            value=int(any(m.raft_leader for m in status.members if m.name == me)),
        )
        yield GaugeMetricFamily("licentia_triad_epoch", "Epoch of the active record", value=status.epoch)
        if status.commit_index is not None:
            yield GaugeMetricFamily(
                "licentia_triad_commit_index",
                "etcd revision of the newest committed log entry",
                value=status.commit_index,
            )
            yield GaugeMetricFamily(
                "licentia_triad_sync_lag_entries",
                "etcd revisions committed to the log that this member has not applied yet",
                value=max(0, status.commit_index - status.applied_index),
            )
        yield GaugeMetricFamily(
            "licentia_triad_applied_index",
            "etcd revision of the last log entry applied here",
            value=status.applied_index,
        )
        yield CounterMetricFamily(
            "licentia_triad_etcd_restarts",
            "Times this member's supervisor restarted its etcd",
            value=status.etcd_restarts,
        )
        watchdog = CounterMetricFamily(
            "licentia_triad_watchdog_events",
            "What the watchdog found and did: etcd_silent, etcd_killed, apply_restarted",
            labels=["event"],
        )
        for event in ("etcd_silent", "etcd_killed", "apply_restarted"):
            watchdog.add_metric([event], status.watchdog_events.get(event, 0))
        yield watchdog
        switches = CounterMetricFamily(
            "licentia_triad_etcd_route_switches",
            "Times this member started talking to etcd through another member's etcd (to=another_member, its own "
            "cannot reach etcd's leader) or through its own again (to=own)",
            labels=["to"],
        )
        for to in ("another_member", "own"):
            switches.add_metric([to], status.etcd_route_switches.get(to, 0))
        yield switches
        if status.in_sync_at is not None:
            yield GaugeMetricFamily(
                "licentia_triad_last_sync_timestamp_seconds",
                "Unix time this member was last seen caught up with the triad's log (looked at twice a second)",
                value=status.in_sync_at,
            )
        failovers = CounterMetricFamily(
            "licentia_triad_failovers", "Changes of the active member this member saw since it started"
        )
        failovers.add_metric([], status.failovers_seen)
        yield failovers


# -- health ------------------------------------------------------------------------------------


def is_ready(server: LicenseServer) -> bool:
    """State loaded and durable storage working; in a triad also its etcd answering, a majority reached, the
    apply loop alive and caught up (see the triad's watchdog)."""
    if getattr(server, "state", None) is None or not server.started_at:
        return False
    return server.relation.is_ready()


def is_active(server: LicenseServer) -> bool:
    """Is this the server that serves licenses now? Standalone: yes; in a triad: only the active member;
    in a backup pair: the main, and the backup only while it cannot reach the main (it has taken over)."""
    if getattr(server, "state", None) is None:
        return False
    return server.relation.is_active()


def _status(ok: bool) -> Response:
    return Response(b"ok\n" if ok else b"unavailable\n", 200 if ok else 503, media_type="text/plain")


async def health_live(request: Request) -> Response:
    return Response(b"ok\n", 200, media_type="text/plain")


async def health_ready(request: Request) -> Response:
    return _status(is_ready(this_server(request)))


async def health_active(request: Request) -> Response:
    return _status(is_active(this_server(request)))


# -- wiring ------------------------------------------------------------------------------------


class Metrics:
    """One server's registry, latency histograms and the routes that expose them."""

    def __init__(self, server: LicenseServer, client_endpoints: Iterable[Endpoint]) -> None:
        self.server = server
        self.latency = {(e.method, e.path): Histogram(LATENCY_BUCKETS) for e in client_endpoints}
        self.loop_lateness = LoopLateness()  # its ticks run while the app does (`api.app`'s lifespan)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LicentiaCollector(server, self.latency, self.loop_lateness))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    async def endpoint(self, request: Request) -> Response:
        # Runs on the event loop's thread, like every change of the state it reads.
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(self.registry), media_type=content_type)

    def routes(self) -> list[Route]:
        return [
            Route("/metrics", self.endpoint, methods=["GET"], name="metrics"),
            Route("/health/live", health_live, methods=["GET"], name="health_live"),
            Route("/health/ready", health_ready, methods=["GET"], name="health_ready"),
            Route("/health/active", health_active, methods=["GET"], name="health_active"),
        ]

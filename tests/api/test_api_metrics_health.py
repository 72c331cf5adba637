"""Prometheus metrics (/metrics) and health endpoints (/health/...) of a real standalone server.

The metrics follow what clients do: checkouts and print checks granted and
denied by reason, leases held, license use, request latency. The health
endpoints answer with the status code alone. Neither needs a login.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from api_support import install_ok
from harness import ADMIN_PASSWORD
from metrics_lint import promtool_problems
from prometheus_client.parser import text_string_to_metric_families

from licentia.api.app import create_app
from licentia.config import Config
from licentia.server import LicenseServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


def value(samples: Samples, name: str, default: float | None = None, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    if key not in samples:
        if default is not None:
            return default
        raise AssertionError(f"no sample {name}{labels}; have {sorted(k for k in samples if k[0] == name)}")
    return samples[key]


def checkout(client: httpx.Client, product: str, host: str = "ws-1") -> httpx.Response:
    return client.post("/api/v1/leases", json={"product": product, "client": {"host": host, "user": "ana"}})


def print_check(client: httpx.Client, product: str, printer: str) -> httpx.Response:
    body = {"product": product, "printer": {"name": printer}, "client": {"host": "ws-1", "user": "ana"}}
    return client.post("/api/v1/print-checks", json=body)


def test_health_endpoints_on_a_standalone_server(server):
    for path in ("/health/live", "/health/ready", "/health/active"):
        answer = httpx.get(f"{server.url}{path}", timeout=5)
        assert answer.status_code == 200, (path, answer.text)
        assert len(answer.content) < 32  # the status code is the answer; the body is minimal
        assert httpx.head(f"{server.url}{path}", timeout=5).status_code == 200
        assert httpx.post(f"{server.url}{path}", timeout=5).status_code == 405

    samples = scrape(server.url)
    assert value(samples, "licentia_ready") == 1
    assert value(samples, "licentia_active") == 1
    info = [labels for (name, labels) in samples if name == "licentia_relationship_info"]
    assert len(info) == 1 and dict(info[0])["type"] == "standalone" and dict(info[0])["role"] == "standalone"
    assert not any(name.startswith("licentia_triad_") for name, _ in samples)


def test_checkout_metrics_follow_grants_denials_and_checkins(server, issuer, admin, client):
    lic = install_ok(admin, issuer.license_bytes(product="CADStudio", unit="seats", count=2))
    labels = {"license_id": lic["license_id"], "product": "CADStudio", "unit": "seats"}
    before = scrape(server.url)
    assert value(before, "licentia_license_units", **labels) == 2
    assert value(before, "licentia_license_used", **labels) == 0
    assert value(before, "licentia_license_grace_remaining_seconds", **labels) == 30 * 86400
    assert value(before, "licentia_license_status", **labels, status="ok") == 1
    assert value(before, "licentia_leases_active") == 0
    assert value(before, "licentia_checkouts_total", 0, result="granted", reason="ok") == 0

    leases = []
    for host in ("ws-1", "ws-2"):
        answer = checkout(client, "CADStudio", host)
        assert answer.status_code == 201, answer.text
        leases.append(answer.json()["lease_id"])
    assert checkout(client, "CADStudio", "ws-3").status_code == 409  # both seats taken
    assert checkout(client, "NoSuchProduct").status_code == 404

    after = scrape(server.url)
    assert value(after, "licentia_checkouts_total", result="granted", reason="ok") == 2
    assert value(after, "licentia_checkouts_total", result="denied", reason="limit_exceeded") == 1
    assert value(after, "licentia_checkouts_total", result="denied", reason="no_license") == 1
    assert value(after, "licentia_commands_total", command="checkout", outcome="ok") == 2
    assert value(after, "licentia_leases_active") == 2
    assert value(after, "licentia_license_used", **labels) == 2
    assert value(after, "licentia_license_status", **labels, status="full") == 1
    assert value(after, "licentia_clients") == 2  # ws-1, ws-2: refused requests (ws-3's) record no client
    route = {"method": "POST", "route": "/api/v1/leases"}
    assert value(after, "licentia_request_duration_seconds_count", **route) == 4
    assert value(after, "licentia_request_duration_seconds_bucket", **route, le="+Inf") == 4
    assert value(after, "licentia_request_duration_seconds_sum", **route) > 0
    # Only the client API is timed, not the admin API nor these endpoints.
    timed = {dict(labels)["route"] for name, labels in after if name == "licentia_request_duration_seconds_count"}
    assert timed and all(r.startswith("/api/v1/") and not r.startswith("/api/v1/admin") for r in timed)

    assert client.delete(f"/api/v1/leases/{leases[0]}").status_code == 200
    final = scrape(server.url)
    assert value(final, "licentia_leases_active") == 1
    assert value(final, "licentia_license_used", **labels) == 1
    assert value(final, "licentia_commands_total", command="checkin", outcome="ok") == 1
    assert (
        value(final, "licentia_request_duration_seconds_count", method="DELETE", route="/api/v1/leases/{lease_id}") == 1
    )


def test_print_check_metrics_by_reason_and_grace(server, issuer, admin, client):
    strict = install_ok(admin, issuer.license_bytes(product="Strict", unit="printers", count=1, grace_days=0))
    lenient = install_ok(admin, issuer.license_bytes(product="Lenient", unit="printers", count=1, grace_days=2))

    assert print_check(client, "Strict", "P1").status_code == 200
    assert print_check(client, "Strict", "P2").status_code == 409  # over the count, no grace
    assert print_check(client, "Unknown", "P1").status_code == 404
    assert print_check(client, "Lenient", "L1").status_code == 200
    second = print_check(client, "Lenient", "L2")  # over the count: granted in grace
    assert second.status_code == 200 and second.json()["status"] == "grace", second.text

    samples = scrape(server.url)
    assert value(samples, "licentia_print_checks_total", result="granted", reason="ok") == 3
    assert value(samples, "licentia_print_checks_total", result="denied", reason="limit_exceeded") == 1
    assert value(samples, "licentia_print_checks_total", result="denied", reason="no_license") == 1
    strict_labels = {"license_id": strict["license_id"], "product": "Strict", "unit": "printers"}
    lenient_labels = {"license_id": lenient["license_id"], "product": "Lenient", "unit": "printers"}
    assert value(samples, "licentia_license_used", **strict_labels) == 1
    assert value(samples, "licentia_license_used", **lenient_labels) == 2
    assert value(samples, "licentia_license_status", **lenient_labels, status="grace") == 1
    assert 1.99 * 86400 <= value(samples, "licentia_license_grace_remaining_seconds", **lenient_labels) <= 2 * 86400
    assert value(samples, "licentia_license_grace_remaining_seconds", **strict_labels) == 0
    assert value(samples, "licentia_printers") == 3  # P1, L1, L2: the refused P2 is not recorded
    assert value(samples, "licentia_request_duration_seconds_count", method="POST", route="/api/v1/print-checks") == 5


def test_promtool_finds_nothing_to_fix_in_the_metrics(server, issuer, admin, client):
    """Every family has samples (licenses of both units, a lease, a print check, a failed login) when checked."""
    install_ok(admin, issuer.license_bytes(product="CADStudio", unit="seats", count=2))
    install_ok(admin, issuer.license_bytes(product="LabelStudio", unit="printers", count=1))
    assert checkout(client, "CADStudio").status_code == 201
    assert print_check(client, "LabelStudio", "P1").status_code == 200
    assert print_check(client, "LabelStudio", "P2").status_code == 200  # over the count: in grace
    assert client.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong-pw"}).status_code == 401
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert "licentia_license_used{" in text and "licentia_checkouts_total{" in text
    assert promtool_problems(text) == ""


def test_metrics_and_health_need_no_login_and_show_no_secrets(server):
    anonymous = httpx.get(f"{server.url}/metrics", timeout=5)
    assert anonymous.status_code == 200
    text = anonymous.text
    assert "licentia_server_info" in text and "process_cpu_seconds_total" in text
    token = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    ).json()["token"]
    for secret in (ADMIN_PASSWORD, token, (server.data_dir / "token.key").read_bytes().hex()):
        assert secret not in text
    # OpenMetrics for scrapers that ask for it.
    openmetrics = httpx.get(f"{server.url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=5)
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_every_server_in_one_process_has_its_own_registry(tmp_path: Path):
    """Metrics live in a per-server registry, so several servers (as in tests) do not clash."""

    async def run() -> list[str]:
        bodies = []
        servers = []
        try:
            for name in ("one", "two"):
                server = LicenseServer(Config.load(data_dir=tmp_path / name))
                server.open()
                servers.append(server)
                app = create_app(server, manage_lifecycle=False)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                    assert (await http.get("/health/live")).status_code == 200
                    bodies.append((await http.get("/metrics")).text)
        finally:
            for server in servers:
                await server.journal.close(server.state)
                server.release()
        return bodies

    one, two = asyncio.run(run())
    ids = []
    for text in (one, two):
        info = [labels for name, labels in parse(text) if name == "licentia_server_info"]
        assert len(info) == 1
        ids.append(dict(info[0])["server_id"])
    assert ids[0] != ids[1]


@pytest.mark.parametrize("path", ["/metrics", "/health/live", "/health/ready", "/health/active"])
def test_not_in_the_openapi_document(server, path):
    """They are plain routes for monitoring, not part of the JSON API."""
    assert path not in httpx.get(f"{server.url}/openapi.json", timeout=5).json()["paths"]

"""Routing: unknown routes and methods answer in the JSON error shape; the OpenAPI document is served."""

from __future__ import annotations

import httpx
import pytest
from api_support import assert_error, assert_log_clean

CLIENT_ENDPOINTS = {
    ("get", "/api/v1/server"),
    ("post", "/api/v1/print-checks"),
    ("post", "/api/v1/leases"),
    ("post", "/api/v1/leases/heartbeat"),
    ("post", "/api/v1/leases/{lease_id}/heartbeat"),
    ("delete", "/api/v1/leases/{lease_id}"),
}


@pytest.fixture
def client(shared_server):
    with httpx.Client(base_url=shared_server.url, timeout=10) as anonymous:
        yield anonymous


def test_unknown_route_answers_404_json(shared_server, client, shared_admin):
    server, admin = shared_server, shared_admin
    for path in ("/nope", "/api/v1/nope", "/api/v2/server", "/api/v1/admin/nope", "/api/v1/leases/a/b/c"):
        assert_error(client.get(path), 404, "not_found")
        assert_error(admin.post(path, json={}), 404, "not_found")
    assert_log_clean(server)


def test_wrong_method_answers_405_json(shared_server, client, shared_admin):
    server, admin = shared_server, shared_admin
    assert_error(client.get("/api/v1/leases"), 405, "method_not_allowed")
    assert_error(client.put("/api/v1/print-checks", json={}), 405, "method_not_allowed")
    assert_error(client.post("/api/v1/server", json={}), 405, "method_not_allowed")
    assert_error(client.get("/api/v1/leases/abc"), 405, "method_not_allowed")
    assert_error(admin.delete("/api/v1/admin/status"), 405, "method_not_allowed")
    assert_error(admin.post("/api/v1/admin/settings", json={"changes": {}}), 405, "method_not_allowed")
    assert_error(client.delete("/openapi.json"), 405, "method_not_allowed")
    assert_log_clean(server)


def test_a_405_names_every_method_the_path_allows(shared_server, client, shared_admin):
    """`Allow` lists the methods of every route at that path (the settings have a GET and a PATCH route)."""
    cases = [
        (shared_admin.delete("/api/v1/admin/settings"), {"GET", "HEAD", "PATCH"}),
        (client.get("/api/v1/leases"), {"POST"}),
        (client.put("/api/v1/leases/abc"), {"DELETE"}),
        (shared_admin.post("/api/v1/admin/alerts", json={}), {"GET", "HEAD", "PUT"}),
        (client.post("/health/live"), {"GET", "HEAD"}),
        (client.delete("/openapi.json"), {"GET", "HEAD"}),
    ]
    for answer, methods in cases:
        assert_error(answer, 405, "method_not_allowed")
        assert {m.strip() for m in answer.headers.get("allow", "").split(",") if m.strip()} == methods, (
            answer.request.method, answer.request.url.path, answer.headers.get("allow"))


def test_openapi_document_lists_every_client_endpoint(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.")
    listed = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert listed >= CLIENT_ENDPOINTS
    checkout = document["paths"]["/api/v1/leases"]["post"]
    schema_ref = checkout["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert "product" in schema["required"] and "request_id" in schema["properties"]
    assert "security" not in checkout  # the client API needs no login
    assert document["paths"]["/api/v1/admin/licenses"]["post"]["security"]
    heartbeat_one = document["paths"]["/api/v1/leases/{lease_id}/heartbeat"]["post"]
    assert heartbeat_one["parameters"][0]["name"] == "lease_id"


def test_server_info_tells_clients_their_timing(client):
    info = client.get("/api/v1/server").json()
    assert info["server_id"] and info["version"]
    assert info["heartbeat_interval_s"] * 2 <= info["lease_ttl_s"]
    assert isinstance(info["time"], float)

"""Refused input never changes anything: every bad body gets a JSON 4xx and the state stays as it was."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_support import JSON_HEADERS, assert_error, assert_log_clean, install_ok, state_picture
from harness import ADMIN_PASSWORD

# (method, path, a valid body, a required field, a value of the wrong type for that field)
TARGETS: dict[str, tuple[str, str, dict[str, Any], str, Any]] = {
    "checkout": ("POST", "/api/v1/leases", {"product": "LabelStudio", "request_id": "r-1"}, "product", 42),
    "print-check": (
        "POST",
        "/api/v1/print-checks",
        {"product": "LabelStudio", "printer": {"name": "P1"}},
        "printer",
        "P1",
    ),
    "heartbeat": ("POST", "/api/v1/leases/heartbeat", {"lease_ids": ["abc"]}, "lease_ids", "abc"),
    "login": ("POST", "/api/v1/auth/login", {"username": "admin", "password": "x"}, "username", ["admin"]),
    "settings": ("PATCH", "/api/v1/admin/settings", {"changes": {"lease_ttl_s": 300}}, "changes", [1]),
    "access-rules": (
        "PUT",
        "/api/v1/admin/access-rules",
        {"rules": [{"rule_id": "r1", "action": "deny"}]},
        "rules",
        {"rule_id": "r1"},
    ),
    "group": ("POST", "/api/v1/admin/printer-groups", {"name": "Labels"}, "name", 7),
    "printer-group": ("PUT", "/api/v1/admin/printers/p1/group", {"group": "Default"}, "group", None),
    "mapping-rules": (
        "PUT",
        "/api/v1/admin/printer-mapping-rules",
        {"rules": [{"pattern": "^Z", "group": "Blocked"}]},
        "rules",
        "^Z",
    ),
    "user": ("PUT", "/api/v1/admin/users/eve", {"password": "long-enough-pw", "role": "admin"}, "password", 12345678),
}


def _send(admin: httpx.Client, name: str, content: bytes, content_type: str = "application/json") -> httpx.Response:
    method, path, *_ = TARGETS[name]
    return admin.request(method, path, content=content, headers={"Content-Type": content_type})


def _encode(body: Any) -> bytes:
    return httpx.Request("POST", "http://x", json=body).content


@pytest.fixture(scope="module")
def busy_server(shared_server, shared_issuer):
    """A server with a license, a lease, a printer and usage records, so that 'unchanged' means something.

    Shared by the tests of this module: each of them proves it changed nothing.
    """
    server, issuer = shared_server, shared_issuer
    with server.admin() as admin:
        install_ok(admin, issuer.license_bytes(license_id="SEATS", unit="seats", count=3))
        install_ok(admin, issuer.license_bytes(license_id="PRINTERS", unit="printers", count=3))
        assert httpx.post(f"{server.url}/api/v1/leases", json={"product": "LabelStudio"}).status_code == 201
        printed = httpx.post(
            f"{server.url}/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": "P0"}}
        )
        assert printed.status_code == 200
    return server


def test_the_valid_bodies_of_the_bad_input_table_are_accepted(server, admin, issuer):
    # Guards the table below: each mutation starts from a body the server really accepts.
    install_ok(admin, issuer.license_bytes(license_id="PRINTERS", unit="printers", count=3))
    granted = admin.post("/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": "p1"}})
    assert granted.status_code == 200, granted.text  # only a granted print check records its printer
    for name, (method, path, body, *_) in TARGETS.items():
        if name == "printer-group":
            printer_id = admin.get("/api/v1/admin/printers").json()["printers"][0]["printer_id"]
            path = path.replace("p1", printer_id)
        if name == "login":
            body = {**body, "password": ADMIN_PASSWORD}
        response = admin.request(method, path, json=body)
        assert response.status_code in (200, 201, 404), (name, response.text)
        if response.status_code == 404:  # valid body, refused by the state: no license for the product
            assert response.json()["error"]["code"] == "no_license", name


BAD_BODIES = {
    "malformed_json": (lambda body, field, wrong: _encode(body)[:-1] + b",", 400, "invalid_json"),
    "empty_body": (lambda body, field, wrong: b"", 400, "invalid_json"),
    "whitespace_body": (lambda body, field, wrong: b"  \n ", 400, "invalid_json"),
    "invalid_utf8": (lambda body, field, wrong: b'{"\xff\xfe": 1}', 400, "invalid_json"),
    "json_array": (lambda body, field, wrong: _encode([body]), 422, "invalid_request"),
    "json_null": (lambda body, field, wrong: b"null", 422, "invalid_request"),
    "wrong_type": (lambda body, field, wrong: _encode({**body, field: wrong}), 422, "invalid_request"),
    "unknown_field": (lambda body, field, wrong: _encode({**body, "surprise": 1}), 422, "invalid_request"),
    "missing_required_field": (
        lambda body, field, wrong: _encode({k: v for k, v in body.items() if k != field}),
        422,
        "invalid_request",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_BODIES))
def test_bad_body_is_refused_with_json_error_and_changes_nothing(busy_server, kind):
    make, status, code = BAD_BODIES[kind]
    with busy_server.admin() as admin:
        before = state_picture(admin)
        for name, (_, _, body, field, wrong) in TARGETS.items():
            response = _send(admin, name, make(body, field, wrong))
            error = assert_error(response, status, code)
            if kind in ("wrong_type", "missing_required_field"):
                assert field in error["message"], (name, error)
            if kind == "unknown_field":
                assert "surprise" in error["message"], (name, error)
        assert state_picture(admin) == before
    assert_log_clean(busy_server)


def test_one_mebibyte_body_is_refused_with_413_and_changes_nothing(busy_server):
    big = b'{"product": "' + b"x" * (1 << 20) + b'"}'
    with busy_server.admin() as admin:
        before = state_picture(admin)
        for name in TARGETS:
            assert_error(_send(admin, name, big), 413, "body_too_large")
        assert_error(admin.post("/api/v1/admin/licenses", content=big, headers=JSON_HEADERS), 413, "body_too_large")
        assert state_picture(admin) == before
    assert_log_clean(busy_server)


def test_oversized_chunked_body_without_content_length_is_refused_with_413(busy_server):
    def chunks():
        for _ in range(20):
            yield b"x" * 65536

    with busy_server.admin() as admin:
        before = state_picture(admin)
        response = admin.post("/api/v1/leases", content=chunks(), headers=JSON_HEADERS)
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "body_too_large")
        assert state_picture(admin) == before


def test_valid_body_with_wrong_content_type_is_refused_with_415_and_changes_nothing(busy_server, issuer):
    with busy_server.admin() as admin:
        before = state_picture(admin)
        for name, (_, _, body, *_) in TARGETS.items():
            for content_type in ("text/plain", "application/x-www-form-urlencoded"):
                response = _send(admin, name, _encode(body), content_type)
                assert_error(response, 415, "unsupported_media_type")
        license_file = issuer.license_bytes(license_id="NEW")
        response = admin.post("/api/v1/admin/licenses", content=license_file, headers={"Content-Type": "text/plain"})
        assert_error(response, 415, "unsupported_media_type")
        assert state_picture(admin) == before


def test_json_content_type_with_charset_parameter_is_accepted(server, client):
    response = client.post(
        "/api/v1/leases",
        content=b'{"product": "LabelStudio"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert_error(response, 404, "no_license")  # got past the media-type check to the license decision


def test_non_numeric_content_length_is_refused_with_400(busy_server):
    server = busy_server
    import socket

    request = (
        b"POST /api/v1/leases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: abc\r\nConnection: close\r\n\r\n{}"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"Traceback" not in reply


def test_field_constraints_are_enforced(busy_server):
    cases = [
        ("/api/v1/leases", {"product": ""}, "product"),
        ("/api/v1/leases", {"product": "LabelStudio", "request_id": "has space"}, "request_id"),
        ("/api/v1/leases", {"product": "LabelStudio", "ttl_s": 0}, "ttl_s"),
        ("/api/v1/leases", {"product": "LabelStudio", "ttl_s": 8 * 86400}, "ttl_s"),
        ("/api/v1/leases", {"product": "LabelStudio", "client": {"host": "h" * 201}}, "host"),
        ("/api/v1/leases", {"product": "LabelStudio", "client": {"shoe_size": 9}}, "shoe_size"),
        ("/api/v1/print-checks", {"product": "LabelStudio", "printer": {"name": ""}}, "name"),
        ("/api/v1/leases/heartbeat", {"lease_ids": []}, "lease_ids"),
    ]
    with busy_server.admin() as admin:
        before = state_picture(admin)
        for path, body, field in cases:
            error = assert_error(admin.post(path, json=body), 422, "invalid_request")
            assert field in error["message"], (body, error)
        assert state_picture(admin) == before


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [2000, 30000])
def test_deeply_nested_json_is_refused_with_400_and_changes_nothing(busy_server, depth):
    with busy_server.admin() as admin:
        before = state_picture(admin)
        settings = b'{"changes": {"server_name": ' + _nested(depth) + b"}}"
        error = assert_error(_send(admin, "settings", settings), 400, "invalid_json")
        assert "nested" in error["message"]
        relationship = b'{"config": {"x": ' + _nested(depth) + b"}}"
        answer = admin.post("/api/v1/admin/relationship/backup/join", content=relationship, headers=JSON_HEADERS)
        assert answer.status_code in (400, 422), answer.text
        license_file = admin.post("/api/v1/admin/licenses", content=_nested(depth), headers=JSON_HEADERS)
        assert license_file.status_code in (400, 422), license_file.text
        assert state_picture(admin) == before
    assert_log_clean(busy_server)


@pytest.mark.parametrize("path", ["/api/v1/peer/changes", "/api/v1/peer/triad/checkpoint"])
def test_a_non_ascii_peer_header_is_refused_with_400(busy_server, path):
    server = busy_server
    header = "münchen 1700000000.000 " + "0" * 64
    answer = httpx.post(
        f"{server.url}{path}", content=b"{}", headers={**JSON_HEADERS, "X-Licentia-Peer": header.encode()}
    )
    error = assert_error(answer, 400, "invalid_request")
    assert "X-Licentia-Peer" in error["message"]
    assert_log_clean(server)

"""An administrator's change made on a standby triad member is made on the active member, as that administrator;
the active member accepts it only from another member, signed with the triad's secret, once. The members
serve HTTPS with pinned certificates, so the standby reaches the active member the way the triad does."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from harness import ADMIN_PASSWORD, Issuer, TriadCluster

from licentia.cluster import peer_auth
from licentia.cluster.triad_forward import FORWARD_PATH, ForwardedChange, encode

USER_PASSWORD = "forwarded-user-password"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TriadCluster]:
    triad = TriadCluster(tmp_path_factory.mktemp("forwarded") / "triad", Issuer(), name="Labels", tls=True)
    try:
        yield triad.start()
    finally:
        triad.stop()


def call(cluster: TriadCluster, role: str, method: str, path: str, user: str = "admin",
         password: str = ADMIN_PASSWORD, **kwargs) -> httpx.Response:
    server = cluster.servers[role]
    return httpx.request(method, server.url + path, auth=(user, password), verify=server.verify, timeout=15,
                         follow_redirects=False, **kwargs)


def test_an_admin_change_sent_to_the_tertiary_is_made_on_the_active_member_for_every_member(cluster):
    answer = call(cluster, "tertiary", "PUT", "/api/v1/admin/users/ops-viewer",
                  json={"password": USER_PASSWORD, "role": "viewer"})
    assert answer.status_code == 200, answer.text  # made, not 307 to a URL a console page may not call
    for role in ("primary", "secondary", "tertiary"):
        deadline = time.monotonic() + 5
        while True:
            users = call(cluster, role, "GET", "/api/v1/admin/users").json()["users"]
            if any(user["username"] == "ops-viewer" for user in users) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert any(user["username"] == "ops-viewer" and user["role"] == "viewer" for user in users), role


def test_a_refusal_on_the_active_member_comes_back_to_the_standby_as_it_is(cluster):
    answer = call(cluster, "secondary", "DELETE", "/api/v1/admin/users/nobody-here")
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "user_not_found"


def _secret(cluster: TriadCluster, role: str) -> str:
    """What only the members know (the test reads it from a member's data directory)."""
    data_dir: Path = cluster.servers[role].data_dir
    return json.loads((data_dir / "triad.json").read_text())["secret"]


def _forward(cluster: TriadCluster, body: bytes, header: str) -> httpx.Response:
    primary = cluster.servers["primary"]
    return httpx.post(primary.url + FORWARD_PATH, content=body, verify=primary.verify, timeout=15,
                      headers={peer_auth.HEADER: header, "Content-Type": "application/json"})


def _change(username: str, role: str, user: str) -> bytes:
    body = json.dumps({"password": USER_PASSWORD, "role": "admin"}).encode()
    change = ForwardedChange(method="PUT", path=f"/api/v1/admin/users/{user}", query="", body=encode(body),
                             content_type="application/json", username=username, role=role)
    return msgspec.json.encode(change)


def test_the_active_member_authorizes_a_forwarded_change_as_the_administrator_who_made_it(cluster):
    # A standby vouching "admin" for a viewer gets the viewer's rights on the active member: refused.
    secret = _secret(cluster, "tertiary")
    body = _change("ops-viewer", "admin", "made-by-a-viewer")
    signed = peer_auth.sign(secret, "tertiary", "POST", FORWARD_PATH, body, time.time())
    answer = _forward(cluster, body, signed.header)
    assert answer.status_code == 200, answer.text
    carried = answer.json()
    assert carried["status"] == 403, carried
    users = call(cluster, "primary", "GET", "/api/v1/admin/users").json()["users"]
    assert all(user["username"] != "made-by-a-viewer" for user in users)
    # The same signed request again is a replay: refused, and the refusal is logged as a sentence.
    again = _forward(cluster, body, signed.header)
    assert again.status_code == 403, again.text
    assert "replayed request is refused" in again.json()["error"]["message"]
    log = cluster.servers["primary"].log_path.read_text()
    assert "Refused a peer request to /api/v1/peer/triad/forward: the request was already received once" in log


def test_a_change_signed_without_the_triads_secret_or_by_an_outsider_is_refused(cluster):
    body = _change("admin", "admin", "made-by-an-outsider")
    forged = peer_auth.sign("not-the-triad-secret", "tertiary", "POST", FORWARD_PATH, body, time.time())
    assert _forward(cluster, body, forged.header).status_code == 403
    outsider = peer_auth.sign(_secret(cluster, "tertiary"), "lic-x", "POST", FORWARD_PATH, body, time.time())
    assert _forward(cluster, body, outsider.header).status_code == 403
    users = call(cluster, "primary", "GET", "/api/v1/admin/users").json()["users"]
    assert all(user["username"] != "made-by-an-outsider" for user in users)

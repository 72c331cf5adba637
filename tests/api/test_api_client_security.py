"""The client API against a client that lies or floods: request ids scoped to their client, refused requests
that leave no records behind, host name rules that trust DNS rather than the client, rules that reach held
leases, and X-Forwarded-For believed only from a configured proxy."""

from __future__ import annotations

import httpx
from api_support import assert_error, install_ok, usage

ANN = {"user": "ann", "host": "ws-ann", "application": "Designer"}
MALLORY = {"user": "mallory", "host": "evil.corp.example", "application": "Designer"}


def _rules(admin: httpx.Client, rules: list[dict], default_policy: str = "allow") -> None:
    answer = admin.put("/api/v1/admin/access-rules", json={"rules": rules, "default_policy": default_policy})
    assert answer.status_code == 200, answer.text


def _checkout(client: httpx.Client, who: dict, request_id: str = "req-ann-1", **headers: str) -> httpx.Response:
    return client.post("/api/v1/leases", json={"product": "LabelStudio", "client": who, "request_id": request_id},
                       headers=headers)


def _leases(admin: httpx.Client) -> list[str]:
    return [lease["lease_id"] for lease in admin.get("/api/v1/admin/leases").json()["leases"]]


# -- finding 6 -------------------------------------------------------------------------------------------


def test_a_denied_client_reusing_anns_request_id_gets_a_refusal_not_her_lease(start_server, issuer):
    server = start_server(extra_args=["--log-level", "info"])
    with server.admin() as admin, httpx.Client(base_url=server.url, timeout=10) as client:
        install_ok(admin, issuer.license_bytes(license_id="SEATS", unit="seats", count=5))
        _rules(admin, [{"rule_id": "no-mallory", "action": "deny", "who_kind": "user", "who": "mallory"}])
        ann = _checkout(client, ANN)
        assert ann.status_code == 201, ann.text
        ann_lease = ann.json()["lease_id"]

        stolen = _checkout(client, MALLORY)
        assert "no-mallory" in assert_error(stolen, 403, "access_denied")["message"]
        assert ann_lease not in stolen.text

        bob = _checkout(client, {**ANN, "user": "bob"})  # allowed, but not Ann: a lease of his own
        assert bob.status_code == 201 and bob.json()["lease_id"] != ann_lease

        retry = _checkout(client, ANN)
        assert retry.status_code == 200 and retry.json()["lease_id"] == ann_lease
        assert sorted(_leases(admin)) == sorted([ann_lease, bob.json()["lease_id"]])
    log = server.log_path.read_text()
    assert "Checkout request req-ann-1 from ws-ann/ann/Designer (127.0.0.1) was a repeat" in log
    assert log.count("was a repeat") == 1


# -- finding 7 -------------------------------------------------------------------------------------------


def test_refused_requests_add_no_printers_or_clients_and_coalesce_into_one_usage_row(server, admin, client):
    for n in range(2000):
        answer = client.post("/api/v1/print-checks", json={
            "product": "Unlicensed", "printer": {"name": f"P-{n}"}, "client": {"host": "ws-flood"}})
        assert answer.status_code == 404
    _rules(admin, [], default_policy="deny")
    for _ in range(200):
        assert client.post("/api/v1/leases", json={"product": "X", "client": {"host": "ws-flood"}}).status_code == 403
    _rules(admin, [], default_policy="allow")
    for _ in range(50):
        ghosts = {"lease_ids": [f"ghost{n:04d}" for n in range(1000)]}
        answer = client.post("/api/v1/leases/heartbeat", json=ghosts)
        assert answer.status_code == 200 and len(answer.json()["expired"]) == 1000

    assert admin.get("/api/v1/admin/printers").json()["printers"] == []
    assert admin.get("/api/v1/admin/clients").json()["clients"] == []
    rows = usage(admin)
    assert sorted((r["kind"], r["reason"], r["count"]) for r in rows) == [
        ("checkout", "access_denied", 200),
        ("heartbeat", "lease_expired", 50),
        ("print", "no_license", 2000),
    ]


# -- finding 8 -------------------------------------------------------------------------------------------


def test_a_hostname_rule_matches_the_verified_name_of_the_address_not_the_declared_one(server, admin, client, issuer):
    install_ok(admin, issuer.license_bytes(license_id="SEATS", unit="seats", count=5))
    _rules(admin, [{"rule_id": "corp", "action": "allow", "where_kind": "hostname", "where": "*.corp.example"}],
           default_policy="deny")
    assert "default policy" in assert_error(_checkout(client, MALLORY), 403, "access_denied")["message"]

    # 127.0.0.1 reverse-resolves to localhost (/etc/hosts), which resolves back to 127.0.0.1.
    _rules(admin, [{"rule_id": "here", "action": "allow", "where_kind": "hostname", "where": "localhost"}],
           default_policy="deny")
    assert _checkout(client, MALLORY).status_code == 201
    tested = admin.post("/api/v1/admin/access-rules/test", json={"ip": "127.0.0.1"}).json()
    assert tested["rule_id"] == "here"


def test_a_deny_rule_added_later_stops_a_held_lease_and_releases_it(server, admin, client, issuer):
    install_ok(admin, issuer.license_bytes(license_id="SEATS", unit="seats", count=5))
    lease = _checkout(client, ANN).json()["lease_id"]
    assert client.post(f"/api/v1/leases/{lease}/heartbeat").status_code == 200
    _rules(admin, [{"rule_id": "no-ann", "action": "deny", "who_kind": "user", "who": "ann"}])

    error = assert_error(client.post(f"/api/v1/leases/{lease}/heartbeat"), 403, "access_denied")

    assert "no-ann" in error["message"] and "released" in error["message"]
    assert _leases(admin) == []
    assert admin.get("/api/v1/admin/licenses/SEATS").json()["used"] == 0
    assert [(r["kind"], r["reason"]) for r in usage(admin, failed_only="true")] == [("checkin", "access_denied")]


def test_a_batch_heartbeat_whose_leases_are_all_denied_answers_403(server, admin, client, issuer):
    install_ok(admin, issuer.license_bytes(license_id="SEATS", unit="seats", count=5))
    lease = _checkout(client, ANN).json()["lease_id"]
    _rules(admin, [{"rule_id": "no-ann", "action": "deny", "who_kind": "user", "who": "ann"}])
    assert_error(client.post("/api/v1/leases/heartbeat", json={"lease_ids": [lease]}), 403, "access_denied")


def test_a_check_in_the_rules_deny_is_refused(server, admin, client, issuer):
    install_ok(admin, issuer.license_bytes(license_id="SEATS", unit="seats", count=5))
    lease = _checkout(client, ANN).json()["lease_id"]
    _rules(admin, [{"rule_id": "no-ann", "action": "deny", "who_kind": "user", "who": "ann"}])
    assert_error(client.delete(f"/api/v1/leases/{lease}"), 403, "access_denied")


def test_x_forwarded_for_is_ignored_unless_the_sender_is_a_configured_proxy(start_server, tmp_path, issuer):
    deny_lab = [{"rule_id": "no-lab", "action": "deny", "where_kind": "cidr", "where": "10.9.0.0/16"}]
    forged = {"X-Forwarded-For": "10.9.0.7"}
    plain = start_server("plain")
    with plain.admin() as admin, httpx.Client(base_url=plain.url, timeout=10) as client:
        install_ok(admin, issuer.license_bytes(license_id="SEATS", unit="seats", count=5))
        _rules(admin, deny_lab)
        assert _checkout(client, ANN, **forged).status_code == 201
        assert [r["source_ip"] for r in usage(admin)] == ["127.0.0.1"]

    config = tmp_path / "proxied.toml"
    config.write_text('[server]\nforwarded_allow_ips = ["127.0.0.1"]\n')
    proxied = start_server("proxied", extra_args=["--config", str(config)])
    with proxied.admin() as admin, httpx.Client(base_url=proxied.url, timeout=10) as client:
        install_ok(admin, issuer.license_bytes(license_id="SEATS", unit="seats", count=5))
        _rules(admin, deny_lab)
        assert_error(_checkout(client, ANN, **forged), 403, "access_denied")
        assert _checkout(client, ANN, request_id="r2", **{"X-Forwarded-For": "::ffff:10.1.0.7"}).status_code == 201
        assert sorted(r["source_ip"] for r in usage(admin)) == ["10.1.0.7", "10.9.0.7"]


def test_rule_addresses_are_saved_in_canonical_form(admin):
    _rules(admin, [{"rule_id": "mapped", "action": "deny", "where_kind": "cidr", "where": "::ffff:10.0.0.0/104"}])
    assert admin.get("/api/v1/admin/access-rules").json()["rules"][0]["where"] == "10.0.0.0/8"


def test_forwarded_allow_ips_takes_addresses_and_networks_only(tmp_path):
    import pytest

    from licentia.config import Config, ConfigError

    assert Config.load(data_dir=tmp_path).forwarded_allow_ips == []
    config = Config.load(data_dir=tmp_path, forwarded_allow_ips=["10.0.0.1", "fd00::/8"])
    assert config.forwarded_allow_ips == ["10.0.0.1", "fd00::/8"]
    for bad in (["proxy.example"], ["10.0.0.300"], "10.0.0.1", [7]):
        with pytest.raises(ConfigError):
            Config.load(data_dir=tmp_path, forwarded_allow_ips=bad)

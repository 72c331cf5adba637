"""The "This License Server" access rules, set and tested through the admin API, enforced on the client API."""

from __future__ import annotations

from api_support import assert_error, install_ok, license_used, usage

DENY_LOOPBACK = {"rule_id": "no-loopback", "action": "deny", "where_kind": "cidr", "where": "127.0.0.0/8"}


def _set_rules(admin, rules, default_policy=None):
    body = {"rules": rules}
    if default_policy:
        body["default_policy"] = default_policy
    answer = admin.put("/api/v1/admin/access-rules", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _print(client, user="alice", host="ws-1"):
    return client.post(
        "/api/v1/print-checks",
        json={"product": "LabelStudio", "printer": {"name": "P1"}, "client": {"user": user, "host": host}},
    )


def _checkout(client, user="alice", host="ws-1"):
    return client.post("/api/v1/leases", json={"product": "LabelStudio", "client": {"user": user, "host": host}})


def _install_both(admin, issuer):
    install_ok(admin, issuer.license_bytes(license_id="PRN", unit="printers"))
    install_ok(admin, issuer.license_bytes(license_id="SEAT", unit="seats"))


def test_deny_rule_for_the_client_network_refuses_print_checks_and_checkouts(admin, client, issuer):
    _install_both(admin, issuer)
    answer = _set_rules(admin, [DENY_LOOPBACK])
    assert answer["rules"][0]["rule_id"] == "no-loopback"
    for response in (_print(client), _checkout(client)):
        error = assert_error(response, 403, "access_denied")
        assert "no-loopback" in error["message"]
    assert license_used(admin, "PRN") == 0 and license_used(admin, "SEAT") == 0
    assert admin.get("/api/v1/admin/leases").json()["leases"] == []
    assert admin.get("/api/v1/admin/printers").json()["printers"] == []


def test_access_denials_are_in_the_usage_log(admin, client, issuer):
    _install_both(admin, issuer)
    _set_rules(admin, [DENY_LOOPBACK])
    _print(client, user="mallory", host="evil-1")
    _checkout(client, user="mallory", host="evil-1")
    failed = usage(admin, failed_only="true")
    assert sorted(r["kind"] for r in failed) == ["checkout", "print"]
    for record in failed:
        assert record["granted"] is False and record["reason"] == "access_denied"
        assert record["client_user"] == "mallory" and record["client_host"] == "evil-1"
        assert record["source_ip"] == "127.0.0.1"


def test_admin_api_stays_reachable_when_clients_are_denied(admin, issuer):
    _set_rules(admin, [], default_policy="deny")
    assert admin.get("/api/v1/admin/status").status_code == 200
    assert _set_rules(admin, [], default_policy="allow")["default_policy"] == "allow"


def test_rule_test_endpoint_reports_which_rule_matches(admin):
    _set_rules(
        admin,
        [
            {"rule_id": "alice-ok", "action": "allow", "who_kind": "user", "who": "alice"},
            DENY_LOOPBACK,
            {"rule_id": "kiosks", "action": "deny", "who_kind": "host", "who": "kiosk-*"},
        ],
    )

    def test(**origin):
        answer = admin.post("/api/v1/admin/access-rules/test", json=origin)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert test(user="alice", ip="127.0.0.1") == {
        "allowed": True,
        "decided_by": "rule 'alice-ok' (allow)",
        "rule_id": "alice-ok",
    }
    bob = test(user="bob", ip="127.0.0.5")
    assert bob["allowed"] is False and bob["rule_id"] == "no-loopback"
    kiosk = test(user="bob", host="KIOSK-7", ip="10.1.2.3")
    assert kiosk["allowed"] is False and kiosk["rule_id"] == "kiosks"
    other = test(user="bob", host="ws-1", ip="10.1.2.3")
    assert other == {"allowed": True, "decided_by": "default policy (allow)", "rule_id": None}
    assert test(ip="not-an-ip")["rule_id"] is None


def test_first_matching_rule_wins_for_real_requests(admin, client, issuer):
    _install_both(admin, issuer)
    _set_rules(admin, [{"rule_id": "alice-ok", "action": "allow", "who_kind": "user", "who": "alice"}, DENY_LOOPBACK])
    assert _checkout(client, user="alice").status_code == 201
    assert _print(client, user="alice").status_code == 200
    error = assert_error(_checkout(client, user="bob"), 403, "access_denied")
    assert "no-loopback" in error["message"]


def test_default_deny_policy_refuses_requests_no_rule_allows(admin, client, issuer):
    _install_both(admin, issuer)
    answer = _set_rules(admin, [{"rule_id": "ops", "action": "allow", "who_kind": "host", "who": "ops-*"}], "deny")
    assert answer["default_policy"] == "deny"
    assert admin.get("/api/v1/admin/settings").json()["settings"]["default_access_policy"] == "deny"
    error = assert_error(_print(client, host="ws-1"), 403, "access_denied")
    assert "default policy" in error["message"]
    assert _print(client, host="ops-2").status_code == 200


def test_removing_the_deny_rule_restores_access(admin, client, issuer):
    _install_both(admin, issuer)
    _set_rules(admin, [DENY_LOOPBACK])
    assert_error(_checkout(client), 403, "access_denied")
    _set_rules(admin, [])
    assert _checkout(client).status_code == 201


def test_invalid_access_rules_are_refused_and_keep_the_current_rules(admin):
    current = _set_rules(admin, [DENY_LOOPBACK])
    invalid = [
        [{"rule_id": "bad", "action": "deny", "where_kind": "cidr", "where": "300.1.0.0/8"}],
        [{"rule_id": "bad", "action": "deny", "where_kind": "ip", "where": "10.0.0.0/8"}],
        [{"rule_id": "has space", "action": "deny"}],
        [{"rule_id": "same", "action": "deny"}, {"rule_id": "same", "action": "allow"}],
        [{"rule_id": "empty-who", "action": "deny", "who_kind": "user", "who": ""}],
        [{"rule_id": "empty-host", "action": "deny", "where_kind": "hostname", "where": ""}],
    ]
    for rules in invalid:
        assert_error(admin.put("/api/v1/admin/access-rules", json={"rules": rules}), 422, "invalid_access_rules")
    for body in (
        {"rules": [{"rule_id": "x", "action": "maybe"}]},
        {"rules": [], "default_policy": "sometimes"},
    ):
        assert_error(admin.put("/api/v1/admin/access-rules", json=body), 422, "invalid_request")
    assert admin.get("/api/v1/admin/access-rules").json() == current


def test_every_accepted_rule_change_bumps_the_version(admin):
    first = admin.get("/api/v1/admin/access-rules").json()["version"]
    assert _set_rules(admin, [DENY_LOOPBACK])["version"] == first + 1
    assert _set_rules(admin, [])["version"] == first + 2

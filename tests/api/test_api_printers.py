"""Printer licensing over HTTP: print checks, blocking, printer groups and mapping rules."""

from __future__ import annotations

from api_support import assert_error, install_ok, license_used, usage


def _printers(admin, issuer, count=3, **terms):
    install_ok(admin, issuer.license_bytes(license_id="PRN", count=count, **terms))


def _print(client, name="P1", **identity):
    return client.post("/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": name, **identity}})


def _printer(admin, name):
    [found] = [p for p in admin.get("/api/v1/admin/printers").json()["printers"] if p["identity"]["name"] == name]
    return found


def _group_names(admin):
    return [g["name"] for g in admin.get("/api/v1/admin/printer-groups").json()["groups"]]


def test_print_check_registers_the_printer_and_counts_it_once(admin, client, issuer):
    _printers(admin, issuer=issuer)
    first = _print(client, "Zebra-1", driver="ZDesigner", port="IP_10.0.0.5")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["granted"] is True and body["status"] == "ok"
    assert body["group"] == "Default" and body["license_id"] == "PRN"
    for _ in range(3):
        assert (
            _print(client, "Zebra-1", driver="ZDesigner", port="IP_10.0.0.5").json()["printer_id"] == body["printer_id"]
        )
    assert license_used(admin, "PRN") == 1
    printer = _printer(admin, "Zebra-1")
    assert printer["printer_id"] == body["printer_id"] and printer["uses"] == 4
    assert printer["counted"] is True and printer["identity"]["port"] == "IP_10.0.0.5"


def test_same_name_on_another_port_is_another_printer(admin, client, issuer):
    _printers(admin, issuer=issuer)
    a = _print(client, "Zebra", port="IP_10.0.0.5").json()["printer_id"]
    b = _print(client, "Zebra", port="IP_10.0.0.6").json()["printer_id"]
    assert a != b
    assert license_used(admin, "PRN") == 2


def test_printer_over_the_count_is_granted_in_grace(admin, client, issuer):
    _printers(admin, count=1, issuer=issuer)
    assert _print(client, "A").json()["status"] == "ok"
    extra = _print(client, "B").json()
    assert extra["status"] == "grace" and extra["grace_days_left"] > 29
    lic = admin.get("/api/v1/admin/licenses/PRN").json()
    assert lic["status"] == "grace" and lic["grace_started_at"] is not None


def test_printer_over_the_count_without_grace_is_refused(admin, client, issuer):
    _printers(admin, count=1, grace_days=0, issuer=issuer)
    assert _print(client, "A").status_code == 200
    assert_error(_print(client, "B"), 409, "limit_exceeded")
    assert license_used(admin, "PRN") == 1


def test_blocked_printer_is_refused_and_unblocking_restores_it(admin, client, issuer):
    _printers(admin, issuer=issuer)
    printer_id = _print(client, "P1").json()["printer_id"]
    blocked = admin.post(f"/api/v1/admin/printers/{printer_id}/block")
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["group"] == "Blocked"
    error = assert_error(_print(client, "P1"), 403, "printer_blocked")
    assert "P1" in error["message"]
    assert license_used(admin, "PRN") == 0  # a blocked printer does not hold a license
    assert [r["reason"] for r in usage(admin, failed_only="true")] == ["printer_blocked"]
    unblocked = admin.post(f"/api/v1/admin/printers/{printer_id}/unblock")
    assert unblocked.status_code == 200 and unblocked.json()["group"] == "Default"
    assert _print(client, "P1").status_code == 200
    assert license_used(admin, "PRN") == 1


def test_unknown_printer_cannot_be_blocked_or_moved(admin):
    assert_error(admin.post("/api/v1/admin/printers/nope/block"), 404, "printer_not_found")
    assert_error(admin.post("/api/v1/admin/printers/nope/unblock"), 404, "printer_not_found")
    assert_error(admin.put("/api/v1/admin/printers/nope/group", json={"group": "Default"}), 404, "printer_not_found")


def test_printer_group_change_is_listed_and_filterable(admin, client, issuer):
    _printers(admin, issuer=issuer)
    printer_id = _print(client, "P1").json()["printer_id"]
    _print(client, "P2")
    assert admin.post("/api/v1/admin/printer-groups", json={"name": "Warehouse"}).status_code == 201
    moved = admin.put(f"/api/v1/admin/printers/{printer_id}/group", json={"group": "Warehouse"})
    assert moved.status_code == 200, moved.text
    listed = admin.get("/api/v1/admin/printers", params={"group": "Warehouse"}).json()["printers"]
    assert [p["printer_id"] for p in listed] == [printer_id]
    assert_error(
        admin.put(f"/api/v1/admin/printers/{printer_id}/group", json={"group": "Nope"}), 404, "group_not_found"
    )
    assert _printer(admin, "P1")["group"] == "Warehouse"
    assert _print(client, "P1").json()["group"] == "Warehouse"
    groups = {g["name"]: g for g in admin.get("/api/v1/admin/printer-groups").json()["groups"]}
    assert groups["Warehouse"]["printers"] == 1 and groups["Default"]["printers"] == 1


def test_printer_groups_can_be_created_renamed_and_deleted(admin, client, issuer):
    _printers(admin, issuer=issuer)
    assert _group_names(admin) == ["Default", "Blocked"]
    created = admin.post("/api/v1/admin/printer-groups", json={"name": "Labels"})
    assert created.status_code == 201 and created.json() == {"name": "Labels"}
    printer_id = _print(client, "P1").json()["printer_id"]
    admin.put(f"/api/v1/admin/printers/{printer_id}/group", json={"group": "Labels"})
    renamed = admin.put("/api/v1/admin/printer-groups/Labels", json={"name": "Label Printers (2F)"})
    assert renamed.status_code == 200, renamed.text
    assert _group_names(admin) == ["Default", "Blocked", "Label Printers (2F)"]
    assert _printer(admin, "P1")["group"] == "Label Printers (2F)"
    deleted = admin.delete("/api/v1/admin/printer-groups/Label Printers (2F)")
    assert deleted.status_code == 200, deleted.text
    assert _group_names(admin) == ["Default", "Blocked"]
    assert _printer(admin, "P1")["group"] == "Default"


def test_invalid_or_duplicate_group_names_are_refused(admin):
    admin.post("/api/v1/admin/printer-groups", json={"name": "Labels"})
    assert_error(admin.post("/api/v1/admin/printer-groups", json={"name": "labels"}), 409, "group_exists")
    assert_error(admin.post("/api/v1/admin/printer-groups", json={"name": "default"}), 409, "group_exists")
    assert_error(admin.post("/api/v1/admin/printer-groups", json={"name": "a/b"}), 422, "invalid_group_name")
    assert_error(admin.post("/api/v1/admin/printer-groups", json={"name": "x" * 65}), 422, "invalid_request")
    admin.post("/api/v1/admin/printer-groups", json={"name": "Other"})
    assert_error(admin.put("/api/v1/admin/printer-groups/Other", json={"name": "LABELS"}), 409, "group_exists")
    assert_error(admin.put("/api/v1/admin/printer-groups/Missing", json={"name": "X"}), 404, "group_not_found")
    assert_error(admin.delete("/api/v1/admin/printer-groups/Missing"), 404, "group_not_found")
    assert _group_names(admin) == ["Default", "Blocked", "Labels", "Other"]


def test_built_in_groups_are_protected(admin):
    for name in ("Default", "Blocked"):
        assert_error(
            admin.put(f"/api/v1/admin/printer-groups/{name}", json={"name": "Renamed"}), 403, "group_protected"
        )
        assert_error(admin.delete(f"/api/v1/admin/printer-groups/{name}"), 403, "group_protected")
    groups = admin.get("/api/v1/admin/printer-groups").json()["groups"]
    assert [(g["name"], g["builtin"]) for g in groups] == [("Default", True), ("Blocked", True)]


def test_mapping_rules_put_new_printers_into_groups(admin, client, issuer):
    _printers(admin, issuer=issuer)
    existing = _print(client, "Zebra-Old").json()
    admin.post("/api/v1/admin/printer-groups", json={"name": "Labels"})
    rules = [
        {"pattern": "^zebra", "group": "Labels"},
        {"pattern": "PDF|XPS", "group": "Blocked", "field": "driver"},
        {"pattern": "^IP_192\\.168\\.", "group": "Labels", "field": "any"},
    ]
    answer = admin.put("/api/v1/admin/printer-mapping-rules", json={"rules": rules})
    assert answer.status_code == 200, answer.text
    listed = admin.get("/api/v1/admin/printer-groups").json()["mapping_rules"]
    assert [r["pattern"] for r in listed] == [r["pattern"] for r in rules]
    assert listed[0]["field"] == "name"
    assert _print(client, "ZEBRA ZT410").json()["group"] == "Labels"
    assert _print(client, "Office", port="IP_192.168.1.9").json()["group"] == "Labels"
    assert _print(client, "Office", port="LPT1").json()["group"] == "Default"
    assert_error(_print(client, "Save as", driver="Microsoft Print to PDF"), 403, "printer_blocked")
    assert _print(client, "Zebra-Old").json()["group"] == existing["group"] == "Default"


def test_invalid_mapping_rules_are_refused_and_keep_the_current_rules(admin):
    admin.post("/api/v1/admin/printer-groups", json={"name": "Labels"})
    admin.put("/api/v1/admin/printer-mapping-rules", json={"rules": [{"pattern": "^Z", "group": "Labels"}]})
    bad = [
        [{"pattern": "([unclosed", "group": "Labels"}],
        [{"pattern": "^Z", "group": "No Such Group"}],
        [{"pattern": "", "group": "Labels"}],
    ]
    for rules in bad:
        answer = admin.put("/api/v1/admin/printer-mapping-rules", json={"rules": rules})
        assert_error(answer, 422, "invalid_mapping_rules")
    assert_error(
        admin.put(
            "/api/v1/admin/printer-mapping-rules",
            json={"rules": [{"pattern": "x", "group": "Labels", "field": "color"}]},
        ),
        422,
        "invalid_request",
    )
    assert admin.get("/api/v1/admin/printer-groups").json()["mapping_rules"] == [
        {"pattern": "^Z", "group": "Labels", "field": "name"}
    ]


def test_group_used_by_a_mapping_rule_cannot_be_deleted_but_renames_follow(admin):
    admin.post("/api/v1/admin/printer-groups", json={"name": "Labels"})
    admin.put("/api/v1/admin/printer-mapping-rules", json={"rules": [{"pattern": "^Z", "group": "Labels"}]})
    assert_error(admin.delete("/api/v1/admin/printer-groups/Labels"), 409, "group_in_use")
    assert admin.put("/api/v1/admin/printer-groups/Labels", json={"name": "Tags"}).status_code == 200
    assert admin.get("/api/v1/admin/printer-groups").json()["mapping_rules"][0]["group"] == "Tags"
    admin.put("/api/v1/admin/printer-mapping-rules", json={"rules": []})
    assert admin.delete("/api/v1/admin/printer-groups/Tags").status_code == 200

"""The served OpenAPI document is a complete contract: a valid OpenAPI 3.1 document in which every operation
describes its answers, and every answer a real server gives (successes and refusals, across the client,
admin and relationship APIs) has a status the operation declares, a declared content type, and a body the
declared schema accepts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_support import as_served, install_ok, sample_backup_pair_status, sample_triad_status
from harness import ADMIN_PASSWORD
from openapi_contract import Operation, contract_problems, operation_of, served_document
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from licentia.cluster.backup_pair import PeerChanges
from licentia.cluster.relationship_status import (
    BackupPairStatus,
    BackupPending,
    PairMemberStatus,
    PendingCounts,
    TriadMemberStatus,
    TriadStatus,
)
from licentia.cluster.triad_seam import CHECKPOINT_MEDIA_TYPE


@pytest.fixture(scope="module")
def document(shared_server) -> dict[str, Any]:
    return served_document(shared_server.url)


def test_the_document_is_valid_openapi_and_every_operation_describes_its_answers(document):
    validate(document)
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {template}"
            responses = operation["responses"]
            successes = [status for status in responses if status.startswith("2")]
            assert successes, where
            for status in successes:
                assert responses[status]["content"], (where, status)  # a schema and a content type for each
            for status, answer in responses.items():
                if not status.startswith("2"):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorAnswer"}, (where, status)
            assert "503" in responses, where
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), where
            if "requestBody" in operation:
                assert {"400", "413", "415", "422"} <= set(responses), where
            if any(p["in"] == "query" for p in operation.get("parameters", [])):
                assert "422" in responses, where
    checkout = document["paths"]["/api/v1/leases"]["post"]["responses"]
    assert {"200", "201", "307", "404", "409", "503"} <= set(checkout)
    assert "Location" in checkout["307"]["headers"]
    csv = document["paths"]["/api/v1/admin/usage.csv"]["get"]["responses"]["200"]["content"]
    assert list(csv) == ["text/csv"]


def _component(document: dict[str, Any], schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = schema["$ref"].rsplit("/", 1)[1]
    return name, document["components"]["schemas"][name]


def _success_schema(document: dict[str, Any], method: str, template: str) -> dict[str, Any]:
    return document["paths"][template][method]["responses"]["200"]["content"]["application/json"]["schema"]


def test_the_relationship_status_schema_is_the_typed_statuses_with_their_fields(document):
    schema = _success_schema(document, "get", "/api/v1/admin/relationship")
    alternatives = dict(_component(document, s) for s in schema["oneOf"])
    assert list(alternatives) == ["TriadStatus", "BackupPairStatus", "NoRelationship"]
    assert alternatives["NoRelationship"]["properties"] == {"type": {"type": "null"}}
    components = document["components"]["schemas"]
    for struct, tag in ((TriadStatus, "triad"), (BackupPairStatus, "backup")):
        properties = alternatives[struct.__name__]["properties"]
        assert set(properties) == {"type", *struct.__struct_fields__}, struct.__name__
        assert properties["type"] == {"enum": [tag]}
        assert set(alternatives[struct.__name__]["required"]) == {"type", *struct.__struct_fields__}
    for nested in (TriadMemberStatus, PairMemberStatus, BackupPending, PendingCounts):
        assert set(components[nested.__name__]["properties"]) == set(nested.__struct_fields__), nested.__name__
    assert alternatives["TriadStatus"]["properties"]["members"]["items"] == {
        "$ref": "#/components/schemas/TriadMemberStatus"
    }
    # Each kind of answer is exactly one of the alternatives: the schema tells them apart.
    validator = OAS31Validator({**schema, "components": document["components"]})
    for answer in (as_served(sample_triad_status()), as_served(sample_backup_pair_status()), {"type": None}):
        assert [e.message[:200] for e in validator.iter_errors(answer)] == [], answer["type"]
    assert not validator.is_valid({**as_served(sample_triad_status()), "type": "backup"})
    assert not validator.is_valid({"type": "triad", "name": "T1"})  # a status lacking its fields


def test_a_backup_pairs_swap_and_sync_answer_its_typed_status(document):
    assert _component(document, _success_schema(document, "post", "/api/v1/admin/relationship/swap"))[0] == (
        "BackupPairStatus"
    )
    name, sync = _component(document, _success_schema(document, "post", "/api/v1/admin/relationship/sync"))
    assert set(sync["properties"]) == {"type", "reached", *BackupPairStatus.__struct_fields__}, name


def test_the_peer_answers_have_their_own_schemas(document):
    name, changes = _component(document, _success_schema(document, "post", "/api/v1/peer/changes"))
    assert name == "PeerChanges" and set(changes["properties"]) == set(PeerChanges.__struct_fields__)
    checkpoint = document["paths"]["/api/v1/peer/triad/checkpoint"]["post"]["responses"]["200"]
    assert list(checkpoint["content"]) == [CHECKPOINT_MEDIA_TYPE]  # the state snapshot file, streamed as written


def test_no_success_answer_is_described_as_just_an_object(document):
    generic = []
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                schema = answer["content"].get("application/json", {}).get("schema")
                if status.startswith("2") and schema is not None and "$ref" not in schema and "oneOf" not in schema:
                    generic.append(f"{method.upper()} {template} {status}: {schema}")
    assert generic == []


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("/api/v1/admin/usage", {"failed_only", "kind", "printer_id", "client_host", "since", "until", "limit",
                                 "offset", "before"}),
        ("/api/v1/admin/usage.csv", {"failed_only", "kind", "printer_id", "client_host", "since", "until", "limit",
                                     "offset", "before"}),
        ("/api/v1/admin/reports/usage", {"bucket", "since", "until"}),
        ("/api/v1/admin/reports/usage.csv", {"bucket", "since", "until"}),
        ("/api/v1/admin/printers", {"sort", "order", "q", "limit", "after", "group", "recent"}),
        ("/api/v1/admin/leases", {"sort", "order", "q", "limit", "after"}),
        ("/api/v1/admin/clients", {"sort", "order", "q", "limit", "after"}),
    ],
)
def test_every_query_parameter_is_documented(document, template, names):
    parameters = document["paths"][template]["get"]["parameters"]
    assert {p["name"] for p in parameters if p["in"] == "query"} == names
    sorts = {p["name"]: p["schema"] for p in parameters}.get("sort")
    if sorts is not None:
        assert len(sorts["enum"]) == 2 and sorts["default"] in sorts["enum"]


def test_every_answer_of_a_walk_through_the_api_matches_the_document(document, shared_server, shared_issuer):
    url = shared_server.url
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=url, timeout=10) as anonymous:
        def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
            answer = client.request(method, path, **kwargs)
            answers.append(answer)
            return answer

        login = call(anonymous, "POST", "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        with httpx.Client(base_url=url, timeout=10, headers=headers) as admin:
            install_ok(admin, shared_issuer.license_bytes(product="WalkLabel", unit="printers", count=1))
            seats = shared_issuer.license_bytes(product="WalkCAD", unit="seats", count=1)
            added = call(admin, "POST", "/api/v1/admin/licenses", content=seats)
            license_id = added.json()["license_id"]
            call(admin, "POST", "/api/v1/admin/licenses", content=seats)  # 409: installed already
            who = {"host": "walk-ws", "user": "walker"}
            call(anonymous, "GET", "/api/v1/server")
            for name in ("WP1", "WP2"):  # the second is over the count: granted in grace
                call(anonymous, "POST", "/api/v1/print-checks",
                     json={"product": "WalkLabel", "printer": {"name": name}, "client": who})
            call(anonymous, "POST", "/api/v1/print-checks", json={"product": "Nothing", "printer": {"name": "X"}})
            lease = call(anonymous, "POST", "/api/v1/leases",
                         json={"product": "WalkCAD", "client": who, "request_id": "walk-1"}).json()
            call(anonymous, "POST", "/api/v1/leases", json={"product": "WalkCAD", "client": who,
                                                             "request_id": "walk-1"})  # 200: the same lease
            call(anonymous, "POST", "/api/v1/leases", json={"product": "WalkCAD"})  # 409: taken
            call(anonymous, "POST", "/api/v1/leases", content=b"{", headers={"content-type": "application/json"})
            call(anonymous, "POST", "/api/v1/leases", content=b"{}", headers={"content-type": "text/plain"})
            call(anonymous, "POST", "/api/v1/leases", json={"product": ""})  # 422
            call(anonymous, "POST", "/api/v1/leases/heartbeat", json={"lease_ids": [lease["lease_id"], "gone"]})
            call(anonymous, "POST", f"/api/v1/leases/{lease['lease_id']}/heartbeat")
            call(anonymous, "POST", "/api/v1/leases/gone/heartbeat")  # 410
            printers = call(admin, "GET", "/api/v1/admin/printers", params={"sort": "name", "limit": 1})
            call(admin, "GET", "/api/v1/admin/printers", params={"after": printers.json()["next"], "sort": "name"})
            call(admin, "GET", "/api/v1/admin/printers", params={"group": "Default", "recent": "true"})
            call(admin, "GET", "/api/v1/admin/printers", params={"limit": 0})  # 422
            printer_id = printers.json()["printers"][0]["printer_id"]
            call(admin, "GET", "/api/v1/admin/leases", params={"q": "walker"})
            call(admin, "GET", "/api/v1/admin/clients", params={"sort": "host", "order": "desc"})
            for path in ("me", "status", "licenses", f"licenses/{license_id}", "licenses/none", "printer-groups",
                         "settings", "access-rules", "users", "alerts", "relationship", "relationship/seed",
                         "relationship/shared-config"):
                call(admin, "GET", f"/api/v1/admin/{path}")
            call(admin, "GET", "/api/v1/admin/usage", params={"limit": 2, "failed_only": "false"})
            call(admin, "GET", "/api/v1/admin/usage", params={"limit": -1})  # 422
            call(admin, "GET", "/api/v1/admin/usage.csv", params={"kind": "print"})
            call(admin, "GET", "/api/v1/admin/reports/usage", params={"bucket": "day"})
            call(admin, "GET", "/api/v1/admin/reports/usage", params={"bucket": "week"})  # 422
            call(admin, "GET", "/api/v1/admin/reports/usage.csv")
            call(admin, "POST", "/api/v1/admin/printer-groups", json={"name": "WalkGroup"})
            call(admin, "POST", "/api/v1/admin/printer-groups", json={"name": "WalkGroup"})  # 409
            call(admin, "PUT", f"/api/v1/admin/printers/{printer_id}/group", json={"group": "WalkGroup"})
            call(admin, "PUT", "/api/v1/admin/printers/none/group", json={"group": "WalkGroup"})  # 404
            call(admin, "POST", f"/api/v1/admin/printers/{printer_id}/block")
            call(admin, "POST", f"/api/v1/admin/printers/{printer_id}/unblock")
            call(admin, "PUT", "/api/v1/admin/printer-groups/WalkGroup", json={"name": "WalkGroup2"})
            call(admin, "DELETE", "/api/v1/admin/printer-groups/WalkGroup2")  # 409: a printer is in it
            call(admin, "PUT", "/api/v1/admin/printer-mapping-rules", json={"rules": []})
            call(admin, "PATCH", "/api/v1/admin/settings", json={"changes": {"lease_ttl_s": 300}})
            call(admin, "PATCH", "/api/v1/admin/settings", json={"changes": {}, "expected_version": 1})  # 409
            call(admin, "PUT", "/api/v1/admin/access-rules", json={"rules": [], "default_policy": "allow"})
            call(admin, "POST", "/api/v1/admin/access-rules/test", json={"user": "walker", "ip": "10.0.0.1"})
            call(admin, "PUT", "/api/v1/admin/users/walk-viewer", json={"password": "walk-password-1"})
            call(admin, "DELETE", "/api/v1/admin/users/walk-viewer")
            call(admin, "DELETE", "/api/v1/admin/users/admin")  # 409: the last admin
            call(admin, "PUT", "/api/v1/admin/alerts", json={"recipients": ["ops@example.com"]})
            call(admin, "POST", "/api/v1/admin/alerts/test", json={"recipients": []})  # 409: nowhere to send
            call(admin, "POST", "/api/v1/admin/relationship/sync")  # 404: no pair
            call(admin, "POST", "/api/v1/admin/relationship/dissolve")  # 404
            call(admin, "POST", "/api/v1/admin/leases/none/revoke")  # 404
            call(anonymous, "DELETE", f"/api/v1/leases/{lease['lease_id']}")
            call(anonymous, "DELETE", f"/api/v1/leases/{lease['lease_id']}")  # 404: returned already
            call(anonymous, "GET", "/api/v1/admin/status")  # 401
            call(anonymous, "POST", "/api/v1/peer/poke")  # 403: not a partner
            call(admin, "DELETE", f"/api/v1/admin/licenses/{license_id}")
            call(admin, "POST", "/api/v1/auth/logout")
            call(admin, "GET", "/api/v1/admin/me")  # 401: logged out

    problems = [problem for answer in answers for problem in contract_problems(document, answer)]
    assert problems == []
    statuses = {answer.status_code for answer in answers}
    assert {200, 201, 400, 401, 403, 404, 409, 410, 415, 422} <= statuses  # the walk saw each kind of answer
    walked: set[Operation] = {operation_of(document, answer.request) for answer in answers}
    assert len(walked) >= 45, sorted(walked)


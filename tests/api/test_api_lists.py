"""Admin lists answer one page at a time: keyset cursors, search by prefix, sort, filters, counts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_support import assert_error
from bulk_load import Site, load_site
from harness import Issuer, ServerProcess

PRINTERS = 1200
LEASES = 300
A = "/api/v1/admin"


@pytest.fixture(scope="module")
def big_server(tmp_path_factory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("lists") / "server"
    load_site(data_dir, Issuer(), Site(printers=PRINTERS, leases=LEASES, clients=50))
    server = ServerProcess(data_dir)
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture
def admin(big_server):
    with big_server.admin() as client:
        yield client


def _all_pages(admin, path: str, name: str, **params) -> list[list[dict]]:
    pages = []
    answer = admin.get(path, params=params).json()
    pages.append(answer[name])
    while answer["next"] is not None:
        answer = admin.get(path, params={**params, "after": answer["next"]}).json()
        pages.append(answer[name])
    return pages


def test_a_list_asked_for_without_paging_answers_its_first_page_and_a_cursor(admin):
    answer = admin.get(f"{A}/printers").json()

    assert len(answer["printers"]) == 100
    assert answer["total"] == PRINTERS and answer["limit"] == 100
    assert isinstance(answer["next"], str)
    assert answer["window_days"] == 7


def test_following_the_cursors_reads_every_printer_once_newest_first(admin):
    pages = _all_pages(admin, f"{A}/printers", "printers", limit=500)

    assert [len(page) for page in pages] == [500, 500, 200]
    printers = [p for page in pages for p in page]
    assert len({p["printer_id"] for p in printers}) == PRINTERS
    last_used = [p["last_used"] for p in printers]
    assert last_used == sorted(last_used, reverse=True)


def test_printers_are_found_by_name_prefix_and_sorted_by_name(admin):
    found = admin.get(f"{A}/printers", params={"q": "prn-00012", "sort": "name", "order": "desc"}).json()
    by_name = admin.get(f"{A}/printers", params={"sort": "name", "limit": 3}).json()

    assert [p["identity"]["name"] for p in found["printers"]] == [f"PRN-{i:06d}" for i in range(129, 119, -1)]
    assert found["total"] == 10 and found["next"] is None
    assert [p["identity"]["name"] for p in by_name["printers"]] == ["PRN-000000", "PRN-000001", "PRN-000002"]


def test_the_group_filter_pages_through_the_group_only(admin):
    printer_id = admin.get(f"{A}/printers", params={"sort": "name", "limit": 1}).json()["printers"][0]["printer_id"]
    assert admin.post(f"{A}/printers/{printer_id}/block").status_code == 200

    blocked = admin.get(f"{A}/printers", params={"group": "Blocked"}).json()
    default = admin.get(f"{A}/printers", params={"group": "Default", "limit": 500}).json()
    groups = {g["name"]: g["printers"] for g in admin.get(f"{A}/printer-groups").json()["groups"]}

    assert [p["printer_id"] for p in blocked["printers"]] == [printer_id] and blocked["total"] == 1
    assert default["total"] == PRINTERS - 1 and len(default["printers"]) == 500
    assert groups == {"Default": PRINTERS - 1, "Blocked": 1}
    assert admin.post(f"{A}/printers/{printer_id}/unblock").status_code == 200


def test_leases_page_by_product_and_are_found_by_user(admin):
    pages = _all_pages(admin, f"{A}/leases", "leases", limit=128)
    found = admin.get(f"{A}/leases", params={"q": "USER00001"}).json()

    assert [len(page) for page in pages] == [128, 128, 44]
    assert len({lease["lease_id"] for page in pages for lease in page}) == LEASES
    assert [lease["client"]["user"] for lease in found["leases"]] == [f"user{i:06d}" for i in range(10, 20)]
    assert found["total"] == 10


def test_a_revoked_lease_leaves_the_list_and_its_count(admin):
    lease = admin.get(f"{A}/leases", params={"q": "user000299"}).json()["leases"][0]
    assert admin.post(f"{A}/leases/{lease['lease_id']}/revoke").status_code == 200

    after = admin.get(f"{A}/leases", params={"q": "user000299"}).json()

    assert after["leases"] == [] and after["total"] == 0
    assert admin.get(f"{A}/leases").json()["total"] == LEASES - 1


def test_clients_page_newest_first_and_by_host(admin):
    newest = admin.get(f"{A}/clients", params={"limit": 5}).json()
    by_host = admin.get(f"{A}/clients", params={"q": "ws-00000"}).json()

    seen = [c["last_seen"] for c in newest["clients"]]
    assert seen == sorted(seen, reverse=True) and newest["total"] == LEASES + 50
    assert [c["info"]["host"] for c in by_host["clients"]] == [f"ws-{i:06d}" for i in range(10)]


def test_the_usage_log_pages_by_row_id_without_overlap(admin):
    first = admin.get(f"{A}/usage", params={"limit": 50}).json()
    second = admin.get(f"{A}/usage", params={"limit": 50, "before": first["next"]}).json()

    ids = [r["id"] for r in first["records"] + second["records"]]
    assert len(ids) == 100 and ids == sorted(ids, reverse=True) and len(set(ids)) == 100


@pytest.mark.parametrize(
    "path, params",
    [
        ("printers", {"limit": "0"}),
        ("printers", {"limit": "501"}),
        ("printers", {"limit": "ten"}),
        ("leases", {"sort": "price"}),
        ("clients", {"order": "up"}),
        ("printers", {"after": "not-a-cursor"}),
        ("leases", {"after": "WzEsMiwzXQ"}),  # [1,2,3]: a list, but not a lease cursor
        ("printers", {"q": "x" * 201}),
        ("usage", {"before": "-1"}),
    ],
)
def test_bad_paging_parameters_are_refused_with_a_sentence(admin, path, params):
    body = assert_error(admin.get(f"{A}/{path}", params=params), 422, "invalid_request")
    assert body["message"][0].isalpha()

"""GET /api/v1/admin/relationship/events: a bounded page of the relationship timeline, refused in a sentence
when the paging is out of range."""

from __future__ import annotations

import httpx
from api_support import assert_error


def test_a_standalone_server_has_an_empty_timeline_and_no_one_unreachable(shared_admin):
    answer = shared_admin.get("/api/v1/admin/relationship/events")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"events": [], "next": None, "unreachable_since": {}}


def test_a_page_larger_than_the_limit_or_an_unknown_parameter_is_refused(shared_admin):
    for params in ({"limit": "0"}, {"limit": "101"}, {"before": "0"}, {"limit": "many"}, {"since": "1"}):
        error = assert_error(shared_admin.get("/api/v1/admin/relationship/events", params=params), 422,
                             "invalid_request")
        assert "limit is 1 to 100" in error["message"]


def test_reading_the_timeline_needs_a_login(shared_server):
    assert httpx.get(f"{shared_server.url}/api/v1/admin/relationship/events").status_code == 401

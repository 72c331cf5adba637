"""What the console refuses: changes by a viewer, changes without the CSRF token, forged logins and logouts."""

from __future__ import annotations

import re

import pytest
from harness import ADMIN_PASSWORD
from playwright.sync_api import BrowserContext, Page, expect

from .console_support import CONSOLE, fetch_from_page, install, screenshot

EDIT_CONTROLS = (
    "button[data-api-method], button[data-rule-action], button[data-move], form[data-api-method], "
    "#license-upload, #rule-form, #policy-form"
)


@pytest.fixture(scope="module")
def arranged(admin, console_issuer) -> dict[str, str]:
    """A license, an access rule and a held seat: things a viewer must not be able to change."""
    license_id = install(admin, console_issuer.license_bytes(product="CADStudio", unit="seats", count=2))["license_id"]
    rule = {"rule_id": "office", "action": "allow", "where_kind": "cidr", "where": "10.0.0.0/8"}
    assert admin.put("/api/v1/admin/access-rules", json={"rules": [rule]}).status_code == 200
    lease = admin.post("/api/v1/leases", json={"product": "CADStudio", "client": {"host": "ws-1", "user": "ann"}})
    return {"license_id": license_id, "lease_id": lease.json()["lease_id"]}


def _picture(admin) -> dict:
    """The state the refused requests must leave alone."""
    leases = admin.get("/api/v1/admin/leases").json()["leases"]
    return {
        "licenses": [lic["license_id"] for lic in admin.get("/api/v1/admin/licenses").json()["licenses"]],
        "leases": [lease["lease_id"] for lease in leases],
        "rules": admin.get("/api/v1/admin/access-rules").json(),
        "settings": admin.get("/api/v1/admin/settings").json()["version"],
        "users": admin.get("/api/v1/admin/users").json(),
    }


def _session_cookies(context: BrowserContext) -> list[dict]:
    return [cookie for cookie in context.cookies() if cookie["name"].startswith("licentia_session_")]


@pytest.mark.expected_resource_failures(403)
def test_a_viewer_sees_no_edit_controls_and_its_direct_changes_are_refused(page_as, admin, arranged):
    page = page_as("viewer")
    expect(page.get_by_role("navigation").get_by_role("link", name="Users")).to_have_count(0)
    pages = ["/", "/licenses", f"/licenses/{arranged['license_id']}", "/this-server", "/seats"]
    for path in pages:
        page.goto(f"{CONSOLE}{path}")
        expect(page.locator("main h1")).to_be_visible()
        assert page.locator(EDIT_CONTROLS).count() == 0, path
    expect(page.locator(f'tr[data-lease-id="{arranged["lease_id"]}"]')).to_be_visible()
    screenshot(page, "viewer-seats")
    before = _picture(admin)
    changes = [
        ("DELETE", f"/api/v1/admin/licenses/{arranged['license_id']}", None),
        ("POST", f"/api/v1/admin/leases/{arranged['lease_id']}/revoke", None),
        ("PUT", "/api/v1/admin/access-rules", {"rules": [], "default_policy": "deny"}),
        ("PATCH", "/api/v1/admin/settings", {"changes": {"server_name": "Viewer was here"}}),
        ("PUT", "/api/v1/admin/users/viewer-user", {"password": "promoted-password", "role": "admin"}),
    ]
    for method, path, body in changes:
        answer = fetch_from_page(page, method, path, body)
        assert answer["status"] == 403, (method, path, answer)
        assert answer["body"]["error"]["code"] == "forbidden"
    assert _picture(admin) == before
    # The tester only reads, so a viewer may use it.
    page.goto(f"{CONSOLE}/this-server")
    page.get_by_label("IP address").fill("10.1.2.3")
    page.get_by_role("button", name="Test").click()
    expect(page.locator("#test-result")).to_have_text("Allowed by rule 1.")


@pytest.mark.expected_resource_failures(403)
def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(page: Page, admin, arranged):
    before = _picture(admin)
    attempts = [
        ("DELETE", f"/api/v1/admin/licenses/{arranged['license_id']}", None),
        ("POST", f"/api/v1/admin/leases/{arranged['lease_id']}/revoke", None),
        ("PATCH", "/api/v1/admin/settings", {"changes": {"server_name": "Forged"}}),
    ]
    for method, path, body in attempts:
        for csrf in (None, "wrong-token", ""):
            answer = fetch_from_page(page, method, path, body, csrf=csrf)
            assert answer["status"] == 403, (method, path, csrf, answer)
            assert answer["body"]["error"]["code"] == "csrf_failed"
    # A form another site could post: urlencoded, cookie attached, no header.
    status = page.evaluate(
        """async (path) => (await fetch(path, {method: "POST", body: new URLSearchParams({x: "1"})})).status""",
        f"/api/v1/admin/leases/{arranged['lease_id']}/revoke",
    )
    assert status == 403
    assert _picture(admin) == before
    # Reading needs no token, and the page's own token makes the same change work.
    assert fetch_from_page(page, "GET", "/api/v1/admin/licenses", csrf=None)["status"] == 200
    renamed = fetch_from_page(page, "PATCH", "/api/v1/admin/settings", {"changes": {"server_name": "Renamed"}})
    assert renamed["status"] == 200
    assert admin.get("/api/v1/admin/settings").json()["settings"]["server_name"] == "Renamed"
    expect(page.locator('#status-strip [data-status="server"]')).to_have_text("Renamed")
    screenshot(page, "overview-csrf")
    admin.patch("/api/v1/admin/settings", json={"changes": {"server_name": "Licentia"}})


@pytest.mark.expected_resource_failures(403)
def test_a_login_post_without_its_csrf_field_is_refused(context: BrowserContext):
    page = context.new_page()
    page.goto(f"{CONSOLE}/login")
    # The same form without its hidden token, as another site would have to post it.
    page.evaluate("document.querySelector('input[name=csrf]').remove()")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    with page.expect_response(f"**{CONSOLE}/login") as posted:
        page.get_by_role("button", name="Log in").click()
    assert posted.value.status == 403
    expect(page.get_by_role("alert")).to_have_text(
        "This login form expired or did not come from this console. Please log in again."
    )
    assert _session_cookies(context) == []
    screenshot(page, "login-refused")
    # A token without the cookie it pairs with is refused too.
    context.clear_cookies()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    with page.expect_response(f"**{CONSOLE}/login") as posted:
        page.get_by_role("button", name="Log in").click()
    assert posted.value.status == 403
    assert _session_cookies(context) == []


@pytest.mark.expected_resource_failures(401)
def test_wrong_password_is_refused_on_the_login_page(context: BrowserContext):
    page = context.new_page()
    page.goto(f"{CONSOLE}/")
    page.wait_for_url(re.compile(r"/console/login\?next=/console/$"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    assert _session_cookies(context) == []
    # The username typed stays; only the password is typed again, where the cursor already is.
    expect(page.get_by_label("Username")).to_have_value("admin")
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_label("Password")).to_be_focused()
    screenshot(page, "login")


def test_the_session_cookie_is_httponly_and_samesite_strict(page: Page):
    cookies = _session_cookies(page.context)
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert "licentia_session" not in page.evaluate("document.cookie")
    screenshot(page, "overview-session")


@pytest.mark.expected_resource_failures(403)
def test_logout_needs_the_pages_csrf_value_and_then_ends_the_session(page: Page):
    status = page.evaluate(
        """async (path) => (await fetch(path, {method: "POST", body: new URLSearchParams({csrf: "forged"})})).status""",
        f"{CONSOLE}/logout",
    )
    assert status == 403
    page.goto(f"{CONSOLE}/seats")
    expect(page.locator("main h1")).to_have_text("Seats and Clients")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/console/login\?logged_out=1$"))
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    screenshot(page, "logout")
    assert _session_cookies(page.context) == []
    page.goto(f"{CONSOLE}/seats")
    page.wait_for_url(re.compile(r"/console/login\?next=/console/seats$"))

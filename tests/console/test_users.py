"""Users: an admin adds users with a role, changes roles and passwords, deletes them; others cannot."""

from __future__ import annotations

import httpx
import pytest
from harness import ADMIN_PASSWORD
from playwright.sync_api import Page, expect

from .console_support import CONSOLE, put_user, screenshot


def _users(admin) -> dict[str, str]:
    return {user["username"]: user["role"] for user in admin.get("/api/v1/admin/users").json()["users"]}


def _can_log_in(server, username: str, password: str) -> bool:
    answer = httpx.post(f"{server.url}/api/v1/auth/login", json={"username": username, "password": password})
    return answer.status_code == 200


def test_an_admin_adds_a_user_with_a_role_and_deletes_it(page: Page, admin, console_server):
    page.goto(f"{CONSOLE}/users")
    form = page.locator("#add-user")
    form.get_by_label("Username").fill("carol")
    form.get_by_label("Password").fill("carol-password")
    form.get_by_label("Role").select_option("manager")
    form.get_by_role("button", name="Add user").click()
    expect(form.locator(".form-message")).to_have_text("Added carol.")
    assert _users(admin)["carol"] == "manager"
    assert _can_log_in(console_server, "carol", "carol-password")
    expect(page.locator('tr[data-username="carol"]')).to_be_visible()
    expect(form.get_by_label("Username")).to_have_value("")
    screenshot(page, "users")
    page.get_by_role("button", name="Delete carol").click()
    page.get_by_role("button", name="Yes, delete", exact=True).click()
    expect(page.locator('tr[data-username="carol"]')).to_have_count(0)
    assert "carol" not in _users(admin)


@pytest.mark.expected_resource_failures(422)
def test_a_short_password_is_refused_with_the_api_message(page: Page, admin):
    page.goto(f"{CONSOLE}/users")
    form = page.locator("#add-user")
    form.get_by_label("Username").fill("shorty")
    form.get_by_label("Password").fill("short")
    form.get_by_label("Password").evaluate("input => input.removeAttribute('minlength')")
    form.get_by_role("button", name="Add user").click()
    expect(form.locator(".form-message")).to_have_text("The field password must have at least 8 characters.")
    assert "shorty" not in _users(admin)
    screenshot(page, "users-short-password")


def test_changing_a_role_keeps_the_users_password(page: Page, admin, console_server):
    put_user(admin, "dave", "dave-password", "viewer")
    page.goto(f"{CONSOLE}/users")
    row = page.locator('tr[data-username="dave"]')
    row.get_by_label("Role of dave").select_option("manager")
    row.get_by_role("button", name="Change role").click()
    expect(page.locator('section[data-me] .form-message').first).to_have_text("dave is now a manager.")
    assert _users(admin)["dave"] == "manager"
    assert _can_log_in(console_server, "dave", "dave-password")
    page.locator('tr[data-username="dave"]').get_by_label("New password for dave").fill("dave-new-password")
    page.locator('tr[data-username="dave"]').get_by_role("button", name="Set password").click()
    expect(page.locator('section[data-me] .form-message').first).to_have_text("Password of dave changed.")
    assert _can_log_in(console_server, "dave", "dave-new-password")
    assert not _can_log_in(console_server, "dave", "dave-password")
    assert _users(admin)["dave"] == "manager"
    screenshot(page, "users-role")


@pytest.mark.expected_resource_failures(409)
def test_the_last_admin_cannot_be_deleted_and_the_page_says_why(page: Page, admin, console_server):
    page.goto(f"{CONSOLE}/users")
    page.get_by_role("button", name="Delete admin").click()
    page.get_by_role("button", name="Yes, delete", exact=True).click()
    message = page.locator("section[data-me] > .form-message")
    expect(message).to_have_text("The last admin cannot be deleted: give another user the admin role first.")
    expect(message).to_have_attribute("role", "alert")
    assert _users(admin)["admin"] == "admin"
    assert _can_log_in(console_server, "admin", ADMIN_PASSWORD)
    screenshot(page, "users-refused")


@pytest.mark.expected_resource_failures(403)
def test_only_admins_have_the_users_page(page_as):
    page = page_as("manager")
    expect(page.get_by_role("navigation").get_by_role("link", name="Users")).to_have_count(0)
    answer = page.goto(f"{CONSOLE}/users")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_have_text("The Users page needs the admin role.")
    screenshot(page, "users-forbidden")


def test_an_administrator_adding_ops_slash_bob_is_told_what_a_username_may_hold(page: Page, admin):
    page.goto(f"{CONSOLE}/users")
    form = page.locator("#add-user")
    form.get_by_label("Username").fill("ops/bob")
    form.get_by_label("Password").fill("bob-password")
    form.get_by_role("button", name="Add user").click()
    # The page checks the name as the API does (a pattern chromium accepts) and says what is allowed.
    assert form.get_by_label("Username").evaluate("input => input.validity.patternMismatch") is True
    rule = "A username has 1 to 64 characters, none of them / ? # or %."
    expect(form.locator("#new-username-help")).to_have_text(rule)
    answer = admin.put("/api/v1/admin/users/ops%2Fbob", json={"password": "bob-password", "role": "viewer"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"] == (
        "'ops/bob' cannot be a username. A username has 1 to 64 characters, none of them / ? # or %."
    )
    assert "ops/bob" not in _users(admin)

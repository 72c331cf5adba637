"""This License Server: access rules added, edited, moved and deleted from the page, the default policy, the tester."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .console_support import CONSOLE, expect_no_horizontal_scroll, screenshot

RULES = "/api/v1/admin/access-rules"


def _rule(rule_id: str, action: str, **fields: str) -> dict[str, str]:
    return {"rule_id": rule_id, "action": action, **fields}


@pytest.fixture
def rules(admin):
    """Start every test from two known rules and the allow policy; put that back afterwards."""
    start = [
        _rule("office", "allow", where_kind="cidr", where="10.1.0.0/16", description="Office network"),
        _rule("guests", "deny", who_kind="host", who="guest-*", description="Guest laptops"),
    ]
    assert admin.put(RULES, json={"rules": start, "default_policy": "allow"}).status_code == 200
    yield start
    admin.put(RULES, json={"rules": [], "default_policy": "allow"})


def _saved(admin) -> dict:
    return admin.get(RULES).json()


def _ids(admin) -> list[str]:
    return [rule["rule_id"] for rule in _saved(admin)["rules"]]


def _open(page: Page) -> None:
    page.goto(f"{CONSOLE}/this-server")
    expect(page.locator("tr[data-rule-id]")).to_have_count(2)


def test_adding_a_rule_appends_it_to_the_ordered_list(page: Page, admin, rules):
    _open(page)
    form = page.locator("#rule-form")
    form.get_by_label("Action").select_option("deny")
    form.get_by_label("Who").select_option("user")
    form.get_by_label("Name or pattern").fill("mallory")
    form.get_by_label("From where").select_option("ip")
    form.get_by_label("Address, network or host").fill("10.1.2.3")
    form.get_by_label("Description").fill("Former contractor")
    form.get_by_role("button", name="Add rule").click()
    expect(form.locator(".form-message")).to_have_text("Rule added at the end of the list.")
    saved = _saved(admin)["rules"]
    assert [rule["rule_id"] for rule in saved] == ["office", "guests", "rule-3"]
    assert saved[2] == _rule("rule-3", "deny", who_kind="user", who="mallory", where_kind="ip",
                                  where="10.1.2.3", description="Former contractor")
    row = page.locator("tr[data-rule-id]").nth(2)
    expect(row).to_contain_text("mallory")
    expect(row).to_contain_text("Former contractor")
    screenshot(page, "this-server")


@pytest.mark.expected_resource_failures(422)
def test_an_invalid_rule_shows_the_api_message_and_changes_nothing(page: Page, admin, rules):
    _open(page)
    before = _saved(admin)
    form = page.locator("#rule-form")
    form.get_by_label("From where").select_option("ip")
    form.get_by_label("Address, network or host").fill("not-an-address")
    form.get_by_role("button", name="Add rule").click()
    expect(form.locator(".form-message")).to_have_text("Rule 3: 'not-an-address' is not a valid ip.")
    expect(form.locator(".form-message")).to_have_attribute("role", "alert")
    assert _saved(admin) == before
    screenshot(page, "this-server-refused")


def test_editing_a_rule_changes_it_in_place(page: Page, admin, rules):
    _open(page)
    page.get_by_role("button", name="Edit rule 2").click()
    form = page.locator("#rule-form")
    expect(page.locator("#rule-form-heading")).to_have_text("Edit rule 2")
    expect(form.get_by_label("Name or pattern")).to_have_value("guest-*")
    form.get_by_label("Name or pattern").fill("visitor-*")
    form.get_by_label("Description").fill("Visitor laptops")
    form.get_by_role("button", name="Save rule").click()
    expect(form.locator(".form-message")).to_have_text("Rule saved.")
    saved = _saved(admin)["rules"]
    assert [rule["rule_id"] for rule in saved] == ["office", "guests"]
    assert saved[1]["who"] == "visitor-*" and saved[1]["description"] == "Visitor laptops"
    expect(page.locator('tr[data-rule-id="guests"]')).to_contain_text("visitor-*")
    expect(page.locator("#rule-form-heading")).to_have_text("Add a rule")
    screenshot(page, "this-server-edit")


def test_moving_a_rule_up_and_down_changes_the_order(page: Page, admin, rules):
    _open(page)
    page.get_by_role("button", name="Move rule 2 up").click()
    expect(page.locator("tr[data-rule-id]").first).to_have_attribute("data-rule-id", "guests")
    assert _ids(admin) == ["guests", "office"]
    expect(page.locator(":focus")).to_have_attribute("aria-label", "Move rule 1 down")  # up is disabled now
    page.get_by_role("button", name="Move rule 1 down").click()
    expect(page.locator("tr[data-rule-id]").first).to_have_attribute("data-rule-id", "office")
    assert _ids(admin) == ["office", "guests"]
    screenshot(page, "this-server-move")


def test_deleting_a_rule_removes_it_after_confirmation(page: Page, admin, rules):
    _open(page)
    page.get_by_role("button", name="Delete rule 1").click()
    page.get_by_role("button", name="Cancel", exact=True).click()
    assert _ids(admin) == ["office", "guests"]
    page.get_by_role("button", name="Delete rule 1").click()
    page.get_by_role("button", name="Yes, delete", exact=True).click()
    expect(page.locator("tr[data-rule-id]")).to_have_count(1)
    assert _ids(admin) == ["guests"]
    screenshot(page, "this-server-delete")


def test_default_policy_is_saved(page: Page, admin, rules):
    _open(page)
    form = page.locator("#policy-form")
    form.get_by_label("When no rule matches").select_option("deny")
    form.get_by_role("button", name="Save default policy").click()
    expect(form.locator(".form-message")).to_have_text("Requests that match no rule are now denied.")
    assert _saved(admin)["default_policy"] == "deny"
    assert _ids(admin) == ["office", "guests"]
    expect(page.locator("#current-default-policy")).to_have_text("deny")
    screenshot(page, "this-server-policy")


def test_the_tester_names_the_rule_that_decides_a_request(page: Page, admin, rules):
    _open(page)
    form = page.locator("#test-form")
    form.get_by_label("Computer (host)").fill("guest-17")
    form.get_by_role("button", name="Test").click()
    result = page.locator("#test-result")
    expect(result).to_have_text("Denied by rule 2.")
    expect(page.locator('tr[data-rule-id="guests"]')).to_have_class("matched")
    screenshot(page, "this-server-test")
    form.get_by_label("Computer (host)").fill("pc-1")
    form.get_by_label("IP address").fill("192.168.1.1")
    form.get_by_role("button", name="Test").click()
    expect(result).to_have_text("Allowed by the default policy (allow).")
    expect(page.locator("tr.matched")).to_have_count(0)


@pytest.mark.expected_resource_failures(422)
def test_server_settings_are_saved_and_a_bad_value_shows_the_api_message(page: Page, admin, rules):
    before = admin.get("/api/v1/admin/settings").json()
    _open(page)
    form = page.locator("#settings-form")
    shown = form.locator("input[type=number]").evaluate_all("inputs => inputs.map(input => input.value)")
    assert shown and not [value for value in shown if value.endswith(".0")], f"settings shown as {shown}"
    form.get_by_label("Seat lease time-to-live (s)").fill("300")
    form.get_by_role("button", name="Save settings").click()
    expect(form.locator(".form-message")).to_contain_text("Saved")
    after = admin.get("/api/v1/admin/settings").json()
    assert after["settings"]["lease_ttl_s"] == 300
    assert after["version"] == before["version"] + 1
    screenshot(page, "this-server-settings")

    form.get_by_label("Client heartbeat interval (s)").fill("290")
    form.get_by_role("button", name="Save settings").click()
    expect(form.locator(".form-message")).to_have_text(
        "The client heartbeat interval (heartbeat_interval_s) must be at most half the seat lease time-to-live "
        "(lease_ttl_s)."
    )
    assert admin.get("/api/v1/admin/settings").json()["settings"]["heartbeat_interval_s"] == before["settings"][
        "heartbeat_interval_s"]
    admin.patch("/api/v1/admin/settings", json={"changes": {"lease_ttl_s": before["settings"]["lease_ttl_s"]}})


def test_the_rule_form_says_which_names_the_client_declares(page: Page, admin, rules):
    _open(page)
    form = page.locator("#rule-form")
    note = form.locator("#rule-trust-help")
    expect(note).to_contain_text("User and computer names are what the client declares about itself")
    expect(note).to_contain_text("never the name the client declares")
    for label in ("Name or pattern", "Address, network or host"):
        described = form.get_by_label(label).get_attribute("aria-describedby") or ""
        assert "rule-trust-help" in described.split()


def test_the_tester_judges_a_host_name_rule_by_the_name_dns_gives_the_address(page: Page, admin, rules):
    rule = _rule("here", "deny", where_kind="hostname", where="localhost")
    assert admin.put(RULES, json={"rules": [*rules, rule], "default_policy": "allow"}).status_code == 200
    page.goto(f"{CONSOLE}/this-server")
    expect(page.locator("tr[data-rule-id]")).to_have_count(3)
    form = page.locator("#test-form")
    form.get_by_label("Computer (host)").fill("localhost")  # declared: proves nothing
    form.get_by_label("IP address").fill("192.0.2.1")
    form.get_by_role("button", name="Test").click()
    result = page.locator("#test-result")
    expect(result).to_have_text("Allowed by the default policy (allow).")
    form.get_by_label("Computer (host)").fill("pc-1")
    form.get_by_label("IP address").fill("127.0.0.1")  # reverse DNS: localhost, and back
    form.get_by_role("button", name="Test").click()
    expect(result).to_have_text("Denied by rule 3.")


def test_at_820_px_every_access_rule_button_stays_inside_the_panel(page: Page, rules):
    page.set_viewport_size({"width": 820, "height": 900})
    _open(page)
    panel = page.locator(".rules-table").locator("xpath=ancestor::section[1]").bounding_box()
    assert panel is not None
    for number in (1, 2):
        delete = page.get_by_role("button", name=f"Delete rule {number}")
        expect(delete).to_be_visible()
        box = delete.bounding_box()
        assert box is not None and box["x"] + box["width"] <= panel["x"] + panel["width"], (box, panel)
    expect_no_horizontal_scroll(page)

"""The Redundancy page on real servers: the setup wizard for a backup pair and a triad, the live status
(a killed server shows without a reload), the pair's actions and removing a relationship, as a viewer sees it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_PASSWORD, Issuer, TriadCluster, start_servers
from playwright.sync_api import Browser, Locator, Page, expect

from .console_support import CONSOLE, expect_no_horizontal_scroll, log_in, screenshot

PAGE = f"{CONSOLE}/redundancy"
SLOW = 20_000  # ms: a relationship forming, a failover, a partner's loss seen by a 0.5 s sync loop


@pytest.fixture
def triad_servers(tmp_path: Path, console_issuer: Issuer) -> Iterator[TriadCluster]:
    """Three servers started standalone, with Raft ports chosen; the wizard joins them into a triad."""
    cluster = TriadCluster(tmp_path / "triad", console_issuer, name="Labels")
    try:
        start_servers(cluster.servers.values())
        yield cluster
    finally:
        cluster.stop()


def wizard(page: Page) -> Locator:
    return page.get_by_role("dialog", name="Redundancy Setup")


def step_heading(page: Page, number: int) -> Locator:
    return wizard(page).get_by_role("heading", name=f"Step {number} of 6")


def next_step(page: Page, number: int) -> None:
    """Next, then the new step's heading has the focus (keyboard and screen-reader users start there)."""
    wizard(page).get_by_role("button", name="Next").click()
    expect(step_heading(page, number)).to_be_focused()


def start_wizard(page: Page, kind: str, name: str) -> Locator:
    """Step 1: open the wizard, choose a "Backup" or "Triad" relationship and its name, then on to step 2."""
    page.get_by_role("button", name="Setup Server Redundancy").click()
    dialog = wizard(page)
    dialog.get_by_label(f"{kind} relationship").check()
    dialog.get_by_label("Name of the relationship").fill(name)
    next_step(page, 2)
    return dialog


def fill_pair(page: Page, me: str, other: str, other_url: str, interval_s: str | None = None) -> None:
    """Step 2 of a backup pair: this server's name, the other server's name and URL (and the synchronization
    interval), then on to step 3."""
    dialog = wizard(page)
    dialog.get_by_label("This server's name").fill(me)
    dialog.get_by_label("Other server's name").fill(other)
    dialog.get_by_label("Other server's API URL").fill(other_url)
    if interval_s is not None:
        dialog.get_by_label("Synchronize every (seconds)").fill(interval_s)
    next_step(page, 3)


def check_servers(page: Page) -> Locator:
    dialog = wizard(page)
    dialog.get_by_label("Administrator password").fill(ADMIN_PASSWORD)
    dialog.get_by_role("button", name="Check").click()
    return dialog.locator("#wizard-check-result")


def finish(page: Page, done: str) -> None:
    """Summary, Finish, the result, Close: the wizard is gone and the page shows the relationship."""
    next_step(page, 5)
    wizard(page).get_by_role("button", name="Finish").click()
    expect(wizard(page).locator("#wizard-result")).to_contain_text(done, timeout=SLOW)
    wizard(page).get_by_role("button", name="Close").click()
    expect(wizard(page)).to_be_hidden()


def action_buttons(page: Page) -> Locator:
    return page.locator("#redundancy button")


def test_viewer_sees_no_setup_or_action_buttons(page_as):
    viewer = page_as("viewer")
    viewer.goto(PAGE)
    expect(viewer.get_by_role("heading", name="This server works alone")).to_be_visible()
    expect(viewer.get_by_text("An administrator can set up redundancy")).to_be_visible()
    expect(action_buttons(viewer)).to_have_count(0)
    expect(viewer.locator("#setup-wizard")).to_have_count(0)
    screenshot(viewer, "redundancy-viewer")


@pytest.mark.expected_resource_failures(409)
def test_backup_wizard_names_the_missing_rule_then_sets_up_a_pair_watched_live(page: Page, admin, start_server,
                                                                                page_as):
    partner = start_server("lic2")
    with partner.admin() as other:
        denied = other.put("/api/v1/admin/access-rules", json={"rules": [], "default_policy": "deny"})
        assert denied.status_code == 200, denied.text

    page.set_viewport_size({"width": 400, "height": 860})
    page.goto(PAGE)
    opener = page.get_by_role("button", name="Setup Server Redundancy")
    opener.click()
    expect(step_heading(page, 1)).to_be_focused()
    expect_no_horizontal_scroll(page)
    screenshot(page, "redundancy-wizard-narrow")
    page.keyboard.press("Escape")  # Esc closes the wizard; focus returns to the button that opened it
    expect(wizard(page)).to_be_hidden()
    expect(opener).to_be_focused()
    page.set_viewport_size({"width": 1280, "height": 900})

    dialog = start_wizard(page, "Backup", "Plant-A")
    expect(dialog.get_by_label("This server's API URL")).to_have_value(page.evaluate("location.origin"))
    fill_pair(page, "lic1", "lic2", partner.url, interval_s="0.5")

    result = check_servers(page)
    missing = result.locator("tbody tr")
    expect(missing).to_have_count(1)
    expect(missing).to_have_attribute("data-server", "lic2")
    expect(missing).to_have_attribute("data-must-allow", "lic1")
    expect(missing.locator('td[data-label="Decided by"]')).to_have_text("default policy (deny)")
    fix = missing.locator('td[data-label="Fix"]')
    expect(fix).to_contain_text("Open the This License Server page on lic2 and add a rule with Action allow and "
                                "Who: License server 'lic1'")
    expect(fix).not_to_contain_text("who=")
    expect(fix.get_by_role("link", name="This License Server page of lic2")).to_have_attribute(
        "href", f"{partner.url.rstrip('/')}{CONSOLE}/this-server")
    expect(result.locator('li[data-reach="ok"]')).to_have_count(2)  # both reached; only a rule is missing
    screenshot(page, "redundancy-backup-wizard-check")
    dialog.get_by_role("button", name="Next").click()  # not before the check passes
    expect(dialog.locator("#wizard-message")).to_contain_text("The check must pass")

    with partner.admin() as other:
        rule = {"rule_id": "allow-lic1", "action": "allow", "who_kind": "server", "who": "lic1"}
        allowed = other.put("/api/v1/admin/access-rules", json={"rules": [rule], "default_policy": "deny"})
        assert allowed.status_code == 200, allowed.text
    dialog.get_by_role("button", name="Check again").click()
    expect(result).to_contain_text("Each server's access rules allow the others.")
    expect(result.locator("tbody tr")).to_have_count(0)

    next_step(page, 4)
    expect(dialog.get_by_label("From the main")).to_be_checked()
    expect(dialog.get_by_text("Licenses are not shared")).to_be_visible()
    finish(page, "Backup relationship Plant-A is set up")
    assert page.evaluate("document.getElementById('wizard-password').value") == ""  # never kept

    state = page.locator('#rel-backup [data-field="state"]')
    expect(state).to_have_attribute("data-state", "connected_synchronized", timeout=SLOW)
    expect(state).to_have_text("Connected and synchronized")
    rows = page.locator('#rel-backup tbody[data-field="members"] tr')
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("lic1")
    expect(rows.nth(0)).to_contain_text("this server")
    expect(rows.nth(1)).to_contain_text(partner.url)
    expect(rows.nth(1).locator('td[data-label="Online"]')).to_have_text("● Online")
    expect(page.locator("[data-legend] svg.pair-icon")).to_have_count(4)
    screenshot(page, "redundancy-backup")

    panel_message = page.locator("#backup-setup > .form-message")
    page.get_by_role("button", name="Sync now").click()
    expect(panel_message).to_have_text("Synchronized with lic2.")
    page.get_by_role("button", name="Swap roles").click()
    expect(panel_message).to_have_text("Roles swapped: this server is now the backup, lic2 the main.")
    expect(page.locator('#rel-backup tr[data-member="lic1"] td[data-label="Role"]')).to_have_text("Backup")
    expect(page.get_by_role("button", name="Replace backup…")).to_be_hidden()  # only the main replaces
    page.get_by_role("button", name="Swap roles").click()
    expect(panel_message).to_have_text("Roles swapped: this server is now the main, lic2 the backup.")

    viewer = page_as("viewer")
    viewer.goto(PAGE)
    expect(viewer.locator('#rel-backup [data-field="state"]')).to_have_attribute("data-state", "connected_synchronized")
    expect(action_buttons(viewer)).to_have_count(0)
    screenshot(viewer, "redundancy-backup-viewer")
    viewer.set_viewport_size({"width": 400, "height": 860})
    expect(viewer.locator('#rel-backup tr[data-member="lic2"]')).to_be_visible()
    expect_no_horizontal_scroll(viewer)
    screenshot(viewer, "redundancy-backup-narrow")

    replacement = start_server("lic3")
    page.get_by_role("button", name="Replace backup…").click()
    expect(page.get_by_role("heading", name="Replace the backup")).to_be_focused()
    page.get_by_label("New backup's name").fill("lic3")
    page.get_by_label("New backup's API URL").fill(replacement.url)
    page.locator("#replace-form").get_by_label("Administrator password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Replace backup", exact=True).click()
    expect(panel_message).to_have_text("The backup is now lic3 (it replaced lic2).", timeout=SLOW)
    expect(rows.nth(1)).to_contain_text(replacement.url)
    expect(state).to_have_attribute("data-state", "connected_synchronized", timeout=SLOW)

    page.evaluate("window.notReloaded = true")
    replacement.kill()
    expect(state).to_have_attribute("data-state", "not_connected_synchronized", timeout=SLOW)
    expect(rows.nth(1).locator('td[data-label="Online"]')).to_have_text("✕ Offline")
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "redundancy-backup-partner-down")

    page.get_by_role("button", name="Remove relationship…").click()
    expect(page.get_by_role("heading", name="Remove the backup relationship?")).to_be_focused()
    page.get_by_role("button", name="Remove relationship", exact=True).click()
    expect(page.locator("#page-message")).to_contain_text("lic3 could not be reached", timeout=SLOW)
    expect(page.get_by_role("button", name="Setup Server Redundancy")).to_be_visible()
    assert admin.get("/api/v1/admin/relationship").json() == {"type": None}
    screenshot(page, "redundancy-backup-removed")


@pytest.mark.expected_resource_failures(502)
def test_an_administrator_sets_up_a_pair_with_a_backup_whose_administrator_account_is_its_own(
    page: Page, admin, start_server
):
    partner = start_server("lic4")
    own_password = "lic4-has-its-own-password"
    with partner.admin() as other:
        answer = other.put("/api/v1/admin/users/ops", json={"password": own_password, "role": "admin"})
        assert answer.status_code == 200, answer.text
        answer = other.put("/api/v1/admin/users/admin", json={"password": "not-the-shared-password"})
        assert answer.status_code == 200, answer.text  # the shared account no longer logs in there

    page.goto(PAGE)
    dialog = start_wizard(page, "Backup", "Plant-B")
    fill_pair(page, "lic1", "lic4", partner.url)

    result = check_servers(page)  # one shared account: refused on lic4
    expect(result.locator('li[data-reach="member_login_failed"]')).to_contain_text("lic4")

    dialog.get_by_label("The other servers have administrator accounts of their own").check()
    dialog.get_by_label("Username on lic4").fill("ops")
    dialog.get_by_label("Password on lic4").fill(own_password)
    screenshot(page, "redundancy-wizard-own-accounts")
    dialog.get_by_role("button", name="Check again").click()
    expect(result).to_contain_text("Each server's access rules allow the others.", timeout=SLOW)
    expect(result.locator('li[data-reach="ok"]')).to_have_count(2)
    next_step(page, 4)
    finish(page, "Backup relationship Plant-B is set up")
    assert page.evaluate(
        "[...document.querySelectorAll('#setup-wizard input[type=password]')].map(i => i.value).join('')") == ""
    with httpx.Client(base_url=partner.url, timeout=10) as anonymous:
        token = anonymous.post("/api/v1/auth/login", json={"username": "ops", "password": own_password}).json()
        status = anonymous.get("/api/v1/admin/relationship",
                               headers={"Authorization": f"Bearer {token['token']}"}).json()
    assert status["type"] == "backup" and status["name"] == "Plant-B"
    answer = admin.post("/api/v1/admin/relationship/dissolve", timeout=30)  # the module's server works alone again
    assert answer.status_code == 200, answer.text


def fill_member(page: Page, index: int, name: str, role: str, url: str, raft: str) -> None:
    dialog = wizard(page)
    dialog.get_by_label(f"Member {index} name").fill(name)
    dialog.get_by_label(f"Member {index} role").select_option(role)
    dialog.get_by_label(f"Member {index} API URL").fill(url)
    dialog.get_by_label(f"Member {index} Raft address").fill(raft)


def test_triad_wizard_sets_up_a_triad_whose_diagram_shows_a_failover_live(browser: Browser, triad_servers):
    cluster = triad_servers
    here = cluster.servers["secondary"]  # the page stays up when the primary is killed
    profile = browser.new_context(base_url=here.url, viewport={"width": 1280, "height": 900})
    profile.set_default_timeout(8000)
    try:
        page = log_in(profile.new_page(), "admin", ADMIN_PASSWORD)
        page.goto(PAGE)
        dialog = start_wizard(page, "Triad", "Labels")
        expect(dialog.get_by_label("Member 1 API URL")).to_have_value(here.url)
        specs = {spec["role"]: spec for spec in cluster.member_specs()}
        for index, role in enumerate(("secondary", "primary", "tertiary"), start=1):
            spec = specs[role]
            fill_member(page, index, spec["name"], role, spec["api_url"], spec["raft_address"])
        next_step(page, 3)
        result = check_servers(page)
        expect(result).to_contain_text("Each server's access rules allow the others.", timeout=SLOW)
        expect(result.locator('li[data-reach="ok"]')).to_have_count(3)
        next_step(page, 4)
        expect(dialog.get_by_label("secondary (secondary")).to_be_checked()  # this server seeds by default
        finish(page, "Triad Labels is set up")

        diagram = page.locator("svg.triad-diagram")
        expect(diagram).to_have_attribute("data-active", "primary", timeout=SLOW)
        expect(diagram.locator("g.triad-node")).to_have_count(3)
        expect(diagram.locator('g.triad-node[data-member="primary"]')).to_contain_text("ACTIVE")
        expect(page.locator('#rel-triad [data-field="active"]')).to_have_text("primary (primary)")
        expect(diagram.locator('g.triad-link[data-state="up"]')).to_have_count(2)
        # Every line of a member's box stays inside it; lag and Raft leader explain themselves in a tooltip.
        overflow = diagram.evaluate(
            """svg => [...svg.querySelectorAll("g.triad-node")].flatMap(node => {
                const box = node.querySelector("rect.triad-node-box").getBBox();
                return [...node.querySelectorAll("text")].map(text => text.getBBox())
                    .filter(b => b.x + b.width > box.x + box.width || b.y + b.height > box.y + box.height)
                    .map(b => node.dataset.member);
            })"""
        )
        assert overflow == [], f"text runs out of the box of {overflow}"
        expect(diagram.locator("text[data-help] title")).not_to_have_count(0)
        expect(diagram.locator("text", has_text="Raft leader").first.locator("title")).to_contain_text("shared log")
        expect(page.locator("#rel-triad abbr", has_text="Epoch")).to_have_attribute("title", re.compile("failover"))
        strip = page.locator("#status-strip")
        expect(strip.locator('[data-status="relationship"]')).to_have_text("Triad Labels · secondary")
        # A normal standby is no error: a neutral "Standby", never a red pill.
        expect(strip.locator('[data-status="active"]')).to_have_text("Standby")
        expect(strip.locator('[data-status="active"]')).not_to_have_class(re.compile(r"pill-(bad|ok)"))
        screenshot(page, "redundancy-triad")

        page.evaluate("window.notReloaded = true")
        killed_at = time.time()
        cluster.servers["primary"].kill()
        expect(diagram).to_have_attribute("data-active", "secondary", timeout=SLOW)
        expect(diagram.locator('g.triad-node[data-member="primary"]')).to_have_attribute("data-reachable", "false")
        expect(diagram.locator('g.triad-node[data-member="secondary"]')).to_contain_text("ACTIVE")
        expect(page.locator('#rel-triad tr[data-member="primary"]')).to_contain_text("Unreachable")
        assert page.evaluate("window.notReloaded") is True
        expect(strip.locator('[data-status="active"]')).to_have_text("Active")  # the strip agrees (2 s poll)
        # The timeline says when the failover happened and how long it took, and who is unreachable since when.
        events = page.locator("#rel-events")
        failover = events.locator('li[data-kind="failover"]')
        expect(failover).to_have_count(1, timeout=SLOW)
        expect(failover).to_contain_text(re.compile(
            r"\d{1,2}:\d{2}:\d{2}.* Failover to secondary took \d+\.\d s, "
            r"from when primary was last seen active and reachable\."))
        expect(events.locator('li[data-kind="unreachable"]', has_text="primary")).to_contain_text(
            "primary cannot be reached from this server.")
        expect(events.locator('[data-field="outages"]')).to_contain_text(
            re.compile(r"primary unreachable since \d{1,2}:\d{2}:\d{2}"))
        with here.admin() as admin:
            timeline = admin.get("/api/v1/admin/relationship/events").json()["events"]
        failovers = [e for e in timeline if e["kind"] == "failover"]
        assert len(failovers) == 1, timeline
        # Counted from the last time the primary was seen active and reachable (the watchdog looks every 0.5 s),
        # which is before it was killed: never less than the time from the kill to the failover, at most a
        # watchdog round more.
        since_kill = failovers[0]["at"] - killed_at
        assert since_kill - 0.05 <= failovers[0]["took_s"] <= since_kill + 1.0, (since_kill, timeline)
        screenshot(page, "redundancy-triad-failover")

        page.set_viewport_size({"width": 400, "height": 860})
        expect(page.locator("svg.triad-diagram.is-narrow")).to_be_visible()
        expect_no_horizontal_scroll(page)
        screenshot(page, "redundancy-triad-narrow")
        page.set_viewport_size({"width": 1280, "height": 900})

        page.get_by_role("button", name="Remove triad…").click()
        expect(page.get_by_role("heading", name="Remove the triad?")).to_be_focused()
        page.get_by_role("button", name="Remove triad", exact=True).click()
        expect(page.locator("#page-message")).to_contain_text("Triad Labels dissolved", timeout=SLOW)
        # Within a second or two of the answer, every time: the page, its buttons and the strip say "alone".
        expect(page.get_by_role("button", name="Setup Server Redundancy")).to_be_visible(timeout=2000)
        expect(page.locator("#rel-triad")).to_be_hidden(timeout=2000)
        expect(strip.locator('[data-status="relationship"]')).to_have_text("Standalone", timeout=2500)
        screenshot(page, "redundancy-triad-removed")
    finally:
        profile.close()


def test_the_wizards_api_url_fields_look_like_its_other_fields(page: Page):
    page.goto(PAGE)
    dialog = start_wizard(page, "Backup", "Looks")
    style = "input => { const s = getComputedStyle(input); return [s.fontFamily, s.fontSize, s.height, s.border]; }"
    name = dialog.get_by_label("Other server's name").evaluate(style)
    url = dialog.get_by_label("Other server's API URL").evaluate(style)
    assert url == name, f"API URL field {url} differs from the name field {name}"

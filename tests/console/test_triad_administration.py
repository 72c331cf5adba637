"""A triad as an administrator lives it, in a real browser on three real servers: the wizard's Summary lists
every server's licenses before Finish, a change made on a standby member's console is made on the active
member, every member keeps its own name, and dissolving gives each license back to the server that brought it.

The tests run in order on one triad (forming one takes seconds); each leaves the triad as the next expects.
Every page collects the browser's console errors and page errors, and a test fails on any.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator

import httpx
import pytest
from harness import ADMIN_PASSWORD, BackupPairProcesses, Issuer, TriadCluster, start_servers, wait_for
from playwright.sync_api import Browser, BrowserContext, Page, expect

from .console_support import CONSOLE, install, log_in, screenshot
from .test_redundancy import SLOW, check_servers, fill_member, next_step, start_wizard

NAMES = {"primary": "lic-a", "secondary": "lic-b", "tertiary": "lic-c"}
RULES = "/api/v1/admin/access-rules"


class Triad:
    def __init__(self, cluster: TriadCluster, licenses: dict[str, str]) -> None:
        self.cluster = cluster
        self.licenses = licenses  # role -> the license id it had before the triad

    def api(self, role: str) -> httpx.Client:
        return self.cluster.servers[role].admin()

    def formed(self) -> Triad:
        """The triad, formed through the API if the wizard's test did not form it (so each test proves its own
        point even when an earlier one failed)."""
        with self.api("primary") as admin:
            if admin.get("/api/v1/server").json()["relationship"] is None:
                members = [{**spec, "name": NAMES[spec["role"]]} for spec in self.cluster.member_specs()]
                body = {"name": "Labels", "seed": "lic-a", "username": "admin", "password": ADMIN_PASSWORD,
                        "members": members}
                answer = admin.post("/api/v1/admin/relationship/triad", json=body, timeout=60)
                assert answer.status_code == 201, answer.text
        self.cluster.wait_active("primary", 20)
        return self

    def license_ids(self, role: str) -> set[str]:
        with self.api(role) as admin:
            return {lic["license_id"] for lic in admin.get("/api/v1/admin/licenses").json()["licenses"]}


@pytest.fixture(scope="module")
def triad(tmp_path_factory: pytest.TempPathFactory, console_issuer: Issuer) -> Iterator[Triad]:
    """Three standalone servers named lic-a, lic-b, lic-c; lic-a and lic-b each have a license of their own."""
    cluster = TriadCluster(tmp_path_factory.mktemp("triad-admin") / "triad", console_issuer, name="Labels")
    licenses: dict[str, str] = {}
    try:
        start_servers(cluster.servers.values())
        for role, server in cluster.servers.items():
            with server.admin() as admin:
                answer = admin.patch("/api/v1/admin/settings", json={"changes": {"server_name": NAMES[role]}})
                assert answer.status_code == 200, answer.text
                if role != "tertiary":
                    count = 25 if role == "secondary" else 10
                    installed = install(admin, console_issuer.license_bytes(license_id=f"LIC-{role}", count=count))
                    licenses[role] = installed["license_id"]
        yield Triad(cluster, licenses)
    finally:
        cluster.stop()


class Watched:
    """A browser profile on one member whose pages' console errors and page errors are collected."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.profile: BrowserContext = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
        self.profile.set_default_timeout(8000)
        self.errors: list[str] = []
        self.refusals: set[int] = set()  # statuses the test expects a change to be refused with

    def page(self) -> Page:
        page = self.profile.new_page()
        page.on("console", lambda message: self._console(message.type, message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    def _console(self, kind: str, text: str) -> None:
        expected = any(f"responded with a status of {status} " in text for status in self.refusals)
        if kind == "error" and not expected:
            self.errors.append(text)


@pytest.fixture
def member(browser: Browser, triad: Triad) -> Iterator:
    opened: list[Watched] = []

    def open_on(role: str) -> tuple[Watched, Page]:
        watched = Watched(browser, triad.cluster.servers[role].url)
        opened.append(watched)
        return watched, watched.page()

    yield open_on
    errors = [error for watched in opened for error in watched.errors]
    for watched in opened:
        watched.profile.close()
    assert errors == [], f"the browser reported errors: {errors}"


def test_1_the_wizard_summary_lists_every_servers_licenses_before_finish(member, triad: Triad):
    _, page = member("primary")
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{CONSOLE}/redundancy")
    dialog = start_wizard(page, "Triad", "Labels")
    specs = {spec["role"]: spec for spec in triad.cluster.member_specs()}
    for index, role in enumerate(("primary", "secondary", "tertiary"), start=1):
        spec = specs[role]
        fill_member(page, index, NAMES[role], role, spec["api_url"], spec["raft_address"])
    next_step(page, 3)
    expect(check_servers(page)).to_contain_text("Each server's access rules allow the others.", timeout=SLOW)
    next_step(page, 4)
    next_step(page, 5)
    pool = dialog.locator("#wizard-license-pool")
    expect(pool.locator('[data-server="lic-b"]')).to_contain_text("LIC-secondary: LabelStudio, 25 printers — joins "
                                                                  "the pool", timeout=SLOW)
    expect(pool.locator('[data-server="lic-a"]')).to_contain_text("LIC-primary: LabelStudio, 10 printers — joins")
    expect(pool.locator('[data-server="lic-c"]')).to_contain_text("No licenses.")
    screenshot(page, "triad-wizard-summary-licenses")
    dialog.get_by_role("button", name="Finish").click()
    expect(dialog.locator("#wizard-result")).to_contain_text("Triad Labels is set up", timeout=SLOW)
    triad.cluster.wait_active("primary", 20)
    for role in NAMES:
        assert triad.license_ids(role) == {"LIC-primary", "LIC-secondary"}, role


def test_2_an_administrator_adds_an_access_rule_from_the_tertiarys_console_and_every_member_has_it(
    member, triad: Triad
):
    triad.formed()
    _, page = member("tertiary")
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{CONSOLE}/this-server")
    form = page.locator("#rule-form")
    form.get_by_label("Who").select_option("user")
    form.get_by_label("Name or pattern").fill("mallory")
    form.get_by_label("From where").select_option("ip")
    form.get_by_label("Address, network or host").fill("10.1.2.3")
    form.get_by_label("Description").fill("Added from the tertiary")
    form.get_by_role("button", name="Add rule").click()
    expect(form.locator(".form-message")).to_have_text("Rule added at the end of the list.", timeout=SLOW)
    for role in NAMES:
        with triad.api(role) as admin:
            rules = admin.get(RULES).json()["rules"]
        assert any(rule["description"] == "Added from the tertiary" for rule in rules), role


def test_3_each_member_keeps_its_own_name_in_its_strip_login_page_and_tab_title(member, triad: Triad):
    triad.formed()
    _, page = member("secondary")
    page.goto(f"{CONSOLE}/login")
    expect(page.get_by_role("heading", name="Log in to lic-b")).to_be_visible()
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{CONSOLE}/this-server")
    strip = page.locator("#status-strip")
    expect(strip.locator('[data-status="server"]')).to_have_text("lic-b")
    expect(strip.locator('[data-status="relationship"]')).to_have_text("Triad Labels · secondary")
    expect(page).to_have_title("This License Server · lic-b · Licentia Administration Console")
    expect(page.get_by_label("Server name")).to_have_value("lic-b")
    polled = strip.locator('[data-status="at"]')  # the time of the strip's last answered poll
    expect(polled).not_to_have_text(polled.inner_text(), timeout=5000)  # one poll more: it still names this member
    expect(strip.locator('[data-status="server"]')).to_have_text("lic-b")
    page.goto(f"{CONSOLE}/")
    expect(page.locator("main")).to_contain_text("Labels")  # the Licensing pages show the triad as one server
    page.goto(f"{CONSOLE}/this-server")
    screenshot(page, "triad-standby-member")


@pytest.mark.expected_resource_failures(503)
def test_4_a_change_on_a_standby_with_no_active_member_says_so_in_plain_words(member, triad: Triad):
    triad.formed()
    watched, page = member("tertiary")
    watched.refusals.add(503)  # Chromium logs the refusal's status as a console error
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{CONSOLE}/this-server")
    triad.cluster.servers["primary"].kill()
    triad.cluster.servers["secondary"].kill()
    try:
        tertiary = triad.cluster.servers["tertiary"]
        # The tertiary's view of the election expires: it knows no member is active.
        wait_for(lambda: httpx.get(f"{tertiary.url}/api/v1/server", timeout=2).json()["relationship"]["active"] is None,
                 timeout=10, what="the tertiary knowing no member is active")
        form = page.locator("#rule-form")
        form.get_by_label("Who").select_option("user")
        form.get_by_label("Name or pattern").fill("nobody")
        form.get_by_role("button", name="Add rule").click()
        message = form.locator(".form-message")
        expect(message).to_contain_text("This change cannot be made right now", timeout=SLOW)
        expect(message).to_contain_text("Try again once the Redundancy page shows an active member.")
        expect(message).not_to_contain_text("could not be reached. Check the connection")
    finally:
        for role in ("primary", "secondary"):
            triad.cluster.servers[role].start()
        triad.cluster.wait_active("primary", 30)


@pytest.mark.expected_resource_failures(502)
def test_4b_a_change_on_a_standby_that_cannot_reach_the_active_member_names_it_and_links_to_its_console(
    member, triad: Triad
):
    triad.formed()
    watched, page = member("tertiary")
    watched.refusals.add(502)  # Chromium logs the refusal's status as a console error
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{CONSOLE}/this-server")
    form = page.locator("#rule-form")
    form.get_by_label("Who").select_option("user")
    form.get_by_label("Name or pattern").fill("nobody-4b")
    primary = triad.cluster.servers["primary"]
    assert primary.process is not None
    # Frozen, lic-a still holds the election for its lease's time, and its port still accepts connections: the
    # tertiary sends the change to it and gets no answer.
    os.kill(primary.process.pid, signal.SIGSTOP)
    try:
        form.get_by_role("button", name="Add rule").click()
        message = form.locator(".form-message")
        expect(message).to_contain_text("lic-a is the active member of triad Labels, but this server cannot reach "
                                        "lic-a right now, so the change was not made.", timeout=SLOW)
        link = message.get_by_role("link", name="Open the active member's console")
        expect(link).to_have_attribute("href", f"{primary.url}{CONSOLE}/")
        screenshot(page, "triad-standby-active-unreachable")
    finally:
        os.kill(primary.process.pid, signal.SIGCONT)
    triad.cluster.wait_active("primary", 30)
    with triad.api("primary") as admin:
        rules = admin.get(RULES).json()["rules"]
    assert all(rule.get("who") != "nobody-4b" for rule in rules)  # the change was not made anywhere


def test_5_dissolving_gives_each_license_back_to_the_server_that_brought_it(member, triad: Triad):
    triad.formed()
    _, page = member("primary")
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{CONSOLE}/redundancy")
    page.get_by_role("button", name="Remove triad…").click()
    table = page.locator("#dissolve-licenses")
    expect(table.locator("tr", has_text="LIC-secondary")).to_contain_text("lic-b")
    expect(table.locator("tr", has_text="LIC-primary")).to_contain_text("lic-a")
    screenshot(page, "triad-dissolve-summary")
    page.locator("#dissolve-confirm").get_by_role("button", name="Remove triad").click()
    expect(page.locator("#page-message")).to_contain_text("dissolved", timeout=SLOW)
    expected = {"primary": {"LIC-primary"}, "secondary": {"LIC-secondary"}, "tertiary": set()}
    for role, server in triad.cluster.servers.items():
        deadline_ok = False
        for _ in range(40):
            info = httpx.get(f"{server.url}/api/v1/server", timeout=2).json()
            if info["relationship"] is None and triad.license_ids(role) == expected[role]:
                deadline_ok = True
                break
            page.wait_for_timeout(250)
        assert deadline_ok, (role, triad.license_ids(role))
        assert info["name"] == NAMES[role]



@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, console_issuer: Issuer) -> Iterator[BackupPairProcesses]:
    processes = BackupPairProcesses(tmp_path_factory.mktemp("pair-admin") / "pair", console_issuer, name="Office")
    try:
        yield processes.start()
    finally:
        processes.stop()


@pytest.mark.parametrize(("path", "locked"), [
    ("this-server", ["#setting-heartbeat_interval_s"]),
    ("alerts", ["#alert-recipients"]),
])
def test_on_a_backup_what_belongs_to_the_main_is_not_editable_and_the_page_says_where_to_change_it(
    browser: Browser, pair: BackupPairProcesses, path: str, locked: list[str]
):
    watched = Watched(browser, pair.backup.url)
    try:
        page = log_in(watched.page(), "admin", ADMIN_PASSWORD)
        page.goto(f"{CONSOLE}/{path}")
        notice = page.locator("#main-owned")
        expect(notice).to_contain_text("come from the main server, main, so they cannot be changed here")
        expect(notice.get_by_role("link", name="main's console")).to_have_attribute("href", f"{pair.main.url}/console/")
        for selector in locked:
            field = page.locator(selector)
            assert field.is_disabled() or not field.is_editable(), selector
        expect(page.locator("#rule-form")).to_have_count(0)  # no form that would only be refused after submit
        expect(page.get_by_role("button", name=re.compile(r"^Save"))).to_have_count(0)
        if path == "this-server":
            screenshot(page, "backup-member-this-server")
    finally:
        watched.profile.close()
    assert watched.errors == [], f"the browser reported errors: {watched.errors}"

"""Fixtures of the console tests: one headless chromium for them all, a real server per module."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from harness import ADMIN_PASSWORD, Issuer, ServerPool, ServerProcess
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Error,
    Page,
    expect,
    sync_playwright,
)

from .console_support import log_in, put_user

BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
USER_PASSWORD = "console-test-password"

expect.set_options(timeout=6000)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Shared by every console test. Package scope, not session: while Playwright's sync API runs it
    marks an event loop as running, and asyncio.run in the tests collected after these would fail."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


FAILED_RESOURCE = re.compile(
    r"^Failed to load resource: (?:the server responded with a status of (?P<status>\d{3})\b|(?P<net>net::\w+))"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "expected_resource_failures(*failures): HTTP statuses (404) or network errors (net::ERR_CONNECTION_REFUSED) "
        "this test provokes on purpose; chromium logs each as a console error, which the test then allows (any "
        "other console error still fails it)",
    )


@pytest.fixture(autouse=True)
def browser_errors(request: pytest.FixtureRequest, browser: Browser, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every browser profile a console test opens reports its pages' console errors, uncaught script
    errors and native dialogs (the console confirms in the page) here, and the test fails on any, except
    a resource refused with a status the test lists in its expected_resource_failures marker (a refusal
    it provokes on purpose)."""
    marker = request.node.get_closest_marker("expected_resource_failures")
    allowed = {str(failure) for failure in marker.args} if marker else set()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        refused = FAILED_RESOURCE.match(message.text)
        if refused and (refused.group("status") or refused.group("net")) in allowed:
            return
        source = message.location.get("url") or "?"
        errors.append(f"console error on {message.page.url if message.page else '?'} ({source}): {message.text}")

    def native_dialog(dialog: Dialog) -> None:
        errors.append(f"native {dialog.type} dialog ({dialog.message!r}): the console confirms in the page instead")
        dialog.dismiss()

    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: errors.append(f"page error on {page.url}: {_describe(error)}"))
        page.on("dialog", native_dialog)

    opened = browser.new_context

    def new_context(*args: object, **kwargs: object) -> BrowserContext:
        profile = opened(*args, **kwargs)  # type: ignore[arg-type]
        profile.on("console", on_console)
        profile.on("page", watch)
        return profile

    monkeypatch.setattr(browser, "new_context", new_context)
    yield
    assert not errors, "the browser reported errors:\n" + "\n".join(errors)


def _describe(error: Error | object) -> str:
    return f"{getattr(error, 'name', '')}: {getattr(error, 'message', error)}"


@pytest.fixture(scope="module")
def console_issuer(server_pool: ServerPool) -> Issuer:
    return server_pool.issuer()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory, console_issuer: Issuer,
                   server_pool: ServerPool) -> Iterator[ServerProcess]:
    """One real server for a module's tests (each test leaves it as other tests of the module expect): the
    one `server_pool` launched ahead, if it suits."""
    data_dir = tmp_path_factory.mktemp("console") / "server"
    server = server_pool.take(console_issuer, data_dir)
    if server is None:
        console_issuer.trust_in(data_dir)
        server = ServerProcess(data_dir).start()
        server_pool.launch()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def admin(console_server: ServerProcess) -> Iterator[httpx.Client]:
    """The admin API of the module's server, logged in as admin (to arrange and check state)."""
    with console_server.admin() as client:
        yield client


@pytest.fixture
def context(browser: Browser, console_server: ServerProcess) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) at 1280 px wide, its URLs relative to the module's server."""
    profile = browser.new_context(base_url=console_server.url, viewport={"width": 1280, "height": 900})
    profile.set_default_timeout(8000)
    yield profile
    profile.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A console page logged in as admin, on the overview."""
    return log_in(context.new_page(), "admin", ADMIN_PASSWORD)


@pytest.fixture
def page_as(browser: Browser, console_server: ServerProcess, admin: httpx.Client) -> Iterator[Callable[[str], Page]]:
    """page_as("viewer") -> a console page of a user with that role, each in its own browser profile."""
    profiles: list[BrowserContext] = []

    def open_as(role: str) -> Page:
        put_user(admin, f"{role}-user", USER_PASSWORD, role)
        profile = browser.new_context(base_url=console_server.url, viewport={"width": 1280, "height": 900})
        profile.set_default_timeout(8000)
        profiles.append(profile)
        return log_in(profile.new_page(), f"{role}-user", USER_PASSWORD)

    yield open_as
    for profile in profiles:
        profile.close()

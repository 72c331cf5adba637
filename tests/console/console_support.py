"""Helpers of the console's browser tests: logging in, screenshots, and fetches made from inside a page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CONSOLE = "/console"
JSON_HEADERS = {"Content-Type": "application/json"}


def screenshot(page: Page, name: str) -> Path:
    """Save the page as test-artifacts/screenshots/<name>.png (git-ignored) for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, username: str, password: str, landing: str = f"{CONSOLE}/") -> Page:
    """Log in through the console's login form and wait for the first page after it."""
    page.goto(f"{CONSOLE}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{landing}")
    return page


def fetch_from_page(page: Page, method: str, path: str, body: Any = None, csrf: str | None = "page") -> dict[str, Any]:
    """A fetch made by script in `page` (so with its session cookie): csrf="page" sends the page's
    X-CSRF-Token, None sends none, any other string sends that string. Returns status and JSON body."""
    return page.evaluate(
        """async ([method, path, body, csrf]) => {
            const headers = {"Content-Type": "application/json"};
            if (csrf === "page") headers["X-CSRF-Token"] = document.querySelector('meta[name="csrf-token"]').content;
            else if (csrf !== null) headers["X-CSRF-Token"] = csrf;
            const payload = body === null ? undefined : JSON.stringify(body);
            const response = await fetch(path, {method, headers, body: payload});
            let data = null;
            try { data = await response.json(); } catch (e) { data = null; }
            return {status: response.status, body: data};
        }""",
        [method, path, body, csrf],
    )


def as_sentence(message: str) -> str:
    """An API message as the console shows it (Console.sentence): a leading plain word capitalised, a full
    stop added where the message has none."""
    text = message.strip()
    first = text.split(maxsplit=1)[0] if text else ""
    if first.rstrip(":,").isalpha() and first.rstrip(":,").islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "…", ")")) else f"{text}."


def put_user(admin: httpx.Client, username: str, password: str, role: str) -> None:
    answer = admin.put(f"/api/v1/admin/users/{username}", json={"password": password, "role": role})
    assert answer.status_code == 200, answer.text


def install(admin: httpx.Client, data: bytes) -> dict[str, Any]:
    answer = admin.post("/api/v1/admin/licenses", content=data, headers=JSON_HEADERS)
    assert answer.status_code == 201, answer.text
    return answer.json()


def print_check(admin: httpx.Client, product: str, printer: str) -> dict[str, Any]:
    answer = admin.post("/api/v1/print-checks", json={"product": product, "printer": {"name": printer}})
    return answer.json()


def expect_no_horizontal_scroll(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"


__all__ = ["expect"]

"""Rendering console pages: the Jinja2 environment, its filters, and the headers every page carries.

A page can also be asked for one named block of its template (`?fragment=NAME`):
the console's script polls those to refresh a table in place, so a table is
rendered by one template whether the page loads or refreshes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from licentia import __version__
from licentia.api.licensing_first import RequestTurns, licensing_first

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# No inline script or style anywhere: scripts and styles come from the console's own static files only.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class PageNotFound(Exception):
    """A page's context builder raises this when what the URL names does not exist (rendered as a 404 page)."""


def _when(timestamp: float | None) -> Markup:
    """A <time> element in UTC; the console's script shows it in the browser's local time."""
    if not timestamp:
        return Markup("—")
    moment = datetime.fromtimestamp(timestamp, UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        moment.isoformat().replace("+00:00", "Z"), moment.strftime("%Y-%m-%d %H:%M UTC")
    )


def _clock(timestamp: float) -> Markup:
    """A time of day as a <time data-clock> element; the console's script shows it as the browser's local
    time of day, the same way the status strip shows each later poll."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return Markup('<time datetime="{}" data-clock>{}</time>').format(
        moment.isoformat().replace("+00:00", "Z"), moment.strftime("%H:%M:%S UTC")
    )


def _number(value: float | int) -> str:
    """A setting's number as a person writes it: 120, not 120.0; 0.5 stays 0.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _duration(seconds: float | None) -> str:
    """A short human duration: 45 s, 12 min, 5 h, 3 days."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _days(value: float) -> str:
    """Days with at most one decimal, and the right word: 1 day, 2.5 days."""
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} day" if text == "1" else f"{text} days"


def _segment(value: object) -> str:
    """A value as one URL path segment: '/', '?', '#', '%' and the rest are percent-encoded, unlike Jinja's
    `urlencode`, which keeps '/' (a name "a/../../users/x" would otherwise point at another URL)."""
    return quote(str(value), safe="")


environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["when"] = _when
environment.filters["clock"] = _clock
environment.filters["number"] = _number
environment.filters["duration"] = _duration
environment.filters["days"] = _days
environment.filters["segment"] = _segment

# Macro libraries every template sees under these names, also when one block is rendered alone (a
# live region), where the template's own top-level {% import %} lines do not run.
MACROS = {"license_ui": "_licenses.html", "ordered_list": "_ordered_list.html", "paging": "_paging.html"}
for _name, _library in MACROS.items():
    environment.globals[_name] = environment.get_template(_library).make_module()


def compile_templates() -> int:
    """Compile every console template now (the server does it in a worker thread once it serves): compiled on a
    page's first view instead, each took the event loop for up to 30 ms. Returns how many there are."""
    names = environment.list_templates(filter_func=lambda name: name.endswith(".html"))
    for name in names:
        environment.get_template(name)
    return len(names)


def static_url(console_path: str, name: str) -> str:
    """A static file's URL, versioned so a new release is never served from a stale cache."""
    return f"{console_path}/static/{name}?v={__version__}"


def render(
    request: Request, template: str, context: dict[str, Any], status: int = 200, *, in_slices: bool = False
) -> Response:
    """The whole page, or with `?fragment=NAME` only that block of it (unknown names are a 404).

    `in_slices`: rendered a slice at a time (about SLICE_BYTES of HTML), giving the event loop back
    between slices, so a large table does not hold up the clients meanwhile. Only for a context of
    copies (rows built for the page), never of records the state goes on changing."""
    compiled = environment.get_template(template)
    fragment = request.query_params.get("fragment")
    if fragment is not None:
        block = compiled.blocks.get(fragment)
        if block is None:
            return HTMLResponse("unknown fragment", status_code=404, headers=SECURITY_HEADERS)
        parts = block(compiled.new_context(context))
    else:
        parts = compiled.generate(context)
    if in_slices:
        slices = _slices(parts, licensing_first(request))
        return StreamingResponse(slices, status, SECURITY_HEADERS, "text/html; charset=utf-8")
    return HTMLResponse("".join(parts), status_code=status, headers=SECURITY_HEADERS)


SLICE_BYTES = 4096  # about a quarter of a millisecond of rendering


async def _slices(parts: Iterator[str], first: RequestTurns) -> AsyncIterator[str]:
    """The HTML a slice at a time, each after client requests in flight were answered (`api.licensing_first`;
    the page's route takes the turn before the first)."""
    buffered: list[str] = []
    size = 0
    for part in parts:
        buffered.append(part)
        size += len(part)
        if size >= SLICE_BYTES:
            yield "".join(buffered)
            buffered, size = [], 0
            await first.turn()
    if buffered:
        yield "".join(buffered)

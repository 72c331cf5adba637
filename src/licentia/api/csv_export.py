"""CSV downloads that a spreadsheet opens safely: no cell runs as a formula, times are ISO 8601 in UTC.

Printer, host, user and application names in the usage log are what clients declare, so anyone on the
network can choose them. A spreadsheet runs a cell that starts with '=', '+', '-' or '@' (or a tab or a
carriage return before one) as a formula; such a cell is written with a leading "'", which makes it text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

# The ASCII formula starters (OWASP's list) and their full-width forms, which some spreadsheets also take.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_text(value: Any) -> Any:
    """A cell's value with text a spreadsheet would run as a formula made inert; other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def iso_utc(at: float, timespec: str = "milliseconds") -> str:
    """A Unix time as ISO 8601 in UTC: 2026-12-06T12:03:10.250Z (timespec "seconds": 2026-12-06T12:03:10Z)."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def csv_text(rows: Iterable[Iterable[Any]]) -> str:
    """CSV lines for `rows`, every cell made safe for a spreadsheet."""
    out = io.StringIO()
    csv.writer(out).writerows([spreadsheet_text(value) for value in row] for row in rows)
    return out.getvalue()


def csv_response(header: list[str], rows: Iterable[Iterable[Any]], filename: str) -> Response:
    """A CSV download (spreadsheets open it as is, and run nothing in it)."""
    return Response(
        csv_text([header, *rows]),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _page_text(to_rows: Callable[[list[Any]], Iterable[Iterable[Any]]], page: list[Any]) -> str:
    return csv_text(to_rows(page))


def csv_stream(
    header: list[str],
    pages: AsyncIterator[list[Any]],
    to_rows: Callable[[list[Any]], Iterable[Iterable[Any]]],
    filename: str,
) -> StreamingResponse:
    """A CSV download of any length, sent a page at a time: each page of `pages` is turned into rows
    (`to_rows`) and formatted in a worker thread, so the event loop never formats a large export."""

    async def body() -> AsyncIterator[str]:
        yield csv_text([header])
        async for page in pages:
            yield await run_in_threadpool(_page_text, to_rows, page)

    return StreamingResponse(
        body(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )

"""CSV downloads that a spreadsheet opens safely: no cell runs as a formula, times are ISO 8601 in UTC.

Printer, host, user and application names in the usage log are what clients declare, so anyone on the
network can choose them. A spreadsheet runs a cell that starts with '=', '+', '-' or '@' (or a tab or a
carriage return before one) as a formula; such a cell is written with a leading "'", which makes it text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

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


def csv_response(header: list[str], rows: Iterable[Iterable[Any]], filename: str) -> Response:
    """A CSV download (spreadsheets open it as is, and run nothing in it)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([spreadsheet_text(name) for name in header])
    writer.writerows([spreadsheet_text(value) for value in row] for row in rows)
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

"""The admin API behind the console's Usage Reports page: peak printers and seats in use, and denials, over time.

Buckets start at `since` and are an hour or a day long, so a caller that wants
local days passes its local midnight as `since`. Without a range the report
covers the last 24 hours (hour buckets) or 30 days (day buckets), on UTC
boundaries. A range is at most MAX_BUCKETS buckets. Every range is answered from
the usage log's quarter-hour, hourly and daily rollups (store.usage_rollups), and the
rows of the quarter hours a bucket's edge cuts, if any; from the log's rows only while the rollups
cannot be brought up to date. See docs/usage-reports.md.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from licentia.api.admin_api import query_params
from licentia.api.csv_export import csv_response, iso_utc
from licentia.api.errors import ApiError
from licentia.api.routing import Endpoint, ok
from licentia.api.this_server import this_server
from licentia.core.state import DAY
from licentia.store.usage_report import BUCKET_SECONDS, Bucket, UsageReport, bucket_count, usage_report

MAX_BUCKETS = 1000
DEFAULT_BUCKETS = {"hour": 24, "day": 30}
LATEST = 2.0**40  # seconds since 1970: about year 36812; keeps every bound finite and exact


class ReportQuery(msgspec.Struct, forbid_unknown_fields=True):
    bucket: Bucket = "hour"
    since: float | None = None
    until: float | None = None


def _range(query: ReportQuery, now: float) -> tuple[float, float]:
    """[since, until) from the query, defaulting to the last DEFAULT_BUCKETS buckets; 422 when unusable."""
    size = BUCKET_SECONDS[query.bucket]
    for name in ("since", "until"):
        value = getattr(query, name)
        if value is not None and not (math.isfinite(value) and 0 <= value <= LATEST):
            raise ApiError("invalid_request", f"{name} must be a time in seconds since 1970 (0 to 2^40)")
    until = query.until if query.until is not None else math.ceil(now / size) * size
    since = query.since if query.since is not None else until - DEFAULT_BUCKETS[query.bucket] * size
    if since >= until:
        raise ApiError("invalid_request", "since must be before until")
    if bucket_count(since, until, size) > MAX_BUCKETS:
        message = f"a report has at most {MAX_BUCKETS} buckets; use day buckets or a shorter range"
        raise ApiError("invalid_request", message)
    return since, until


async def _report(request: Request) -> UsageReport:
    server = this_server(request)
    query = query_params(request, ReportQuery)
    now = server.now()
    since, until = _range(query, now)
    state = await server.read_state()
    settings = state.settings
    window_s = settings.printer_window_days * DAY
    held = list(state.leases.values())  # the leases held now, taken on the loop: a consistent list
    from_rollups = await server.journal.rollup_report(
        held, since=since, until=until, bucket=query.bucket, as_of=now, window_s=window_s
    )
    if from_rollups is not None:
        return from_rollups
    records, denials = await server.journal.report_inputs(since, until, BUCKET_SECONDS[query.bucket], window_s)
    # Computed in a worker thread: the loop goes on serving (the thread yields the interpreter every few ms).
    return await asyncio.to_thread(
        usage_report,
        records,
        denials,
        held,
        since=since,
        until=until,
        bucket=query.bucket,
        as_of=now,
        printer_window_s=window_s,
        lease_ttl_s=settings.lease_ttl_s,
    )


async def report(request: Request) -> Response:
    return ok(await _report(request))


def report_rows(report: UsageReport) -> tuple[list[str], list[list[Any]]]:
    """The report as a table: one row per bucket, a column per product's seats and per denial reason."""
    header = [
        "start",
        "end",
        "printers_peak",
        "seats_peak",
        *(f"seats_peak:{product}" for product in report.products),
        "denials",
        *(f"denials:{reason}" for reason in report.denial_reasons),
    ]
    rows = [
        [
            iso_utc(b.start, "seconds"),
            iso_utc(b.end, "seconds"),
            b.printers,
            b.seats_total,
            *(b.seats.get(product, 0) for product in report.products),
            b.denials_total,
            *(b.denials.get(reason, 0) for reason in report.denial_reasons),
        ]
        for b in report.buckets
    ]
    return header, rows


async def report_csv(request: Request) -> Response:
    usage = await _report(request)
    header, rows = report_rows(usage)
    return csv_response(header, rows, f"licentia-usage-report-{usage.bucket}.csv")


A = "/api/v1/admin/reports"
ENDPOINTS = [
    Endpoint(
        "GET",
        f"{A}/usage",
        report,
        "Peak printers and seats in use and denials per hour or day (bucket=hour|day, since, until)",
        role="viewer",
        tag="admin",
    ),
    Endpoint(
        "GET", f"{A}/usage.csv", report_csv, "The usage report as CSV (same parameters)", role="viewer", tag="admin"
    ),
]

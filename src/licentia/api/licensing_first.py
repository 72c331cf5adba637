"""Licensing first: console pages and admin calls give way to client requests in flight.

A console page at a large site is milliseconds of the event loop's time, spent a slice at a time (a table's rows,
then its HTML a few kilobytes at a time). A client's checkout, heartbeat or print check takes several turns of
the loop (its request read, the command applied, its journal commit awaited, its answer written), and at each turn
it waited behind whatever console slice was running: at 300,000 leases, with the Seats and Printer Usage pages and
their live regions asked for back to back, client p99 went from 1.7 ms to 10.3 ms.

So every slice of console and admin work first awaits `LicensingFirst.turn()`: at once when no client request is
in flight, else once the last one in flight is answered, or after `MAX_WAIT_S` at most (under a steady stream of
clients a page still completes, a slice at a time, in the gaps between them), and WAIT_BUDGET_S in all per
console or admin request (`RequestTurns`). A client request then waits for at most the one slice that was running
when it came. `ClientRequests` (ASGI middleware) counts the client
requests in flight: the client API (`/api/v1/...` outside `/api/v1/admin`); health probes and metrics are not
counted, nor preferred.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

ADMIN_PREFIX = "/api/v1/admin"
API_PREFIX = "/api/v1/"

MAX_WAIT_S = 0.02  # the longest a slice of console or admin work waits for client requests to be answered
WAIT_BUDGET_S = 0.1  # the longest one console or admin request waits in all (`RequestTurns`)
REST_PER_SLICE = 1.0  # after its slices, a console or admin request leaves the loop free this many times as long
MIN_REST_S = 0.001  # rest owed is taken once it is this long (the loop's timers count whole milliseconds)


class LicensingFirst:
    """The client requests in flight, and the console and admin work waiting for them to be answered."""

    __slots__ = ("_in_flight", "_waiting")

    def __init__(self) -> None:
        self._in_flight = 0
        self._waiting: list[asyncio.Future[None]] = []

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def client_started(self) -> None:
        self._in_flight += 1

    def client_answered(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0 and self._waiting:
            waiting, self._waiting = self._waiting, []
            for future in waiting:
                _resolve(future)

    async def turn(self, max_wait_s: float = MAX_WAIT_S) -> None:
        """Return when console or admin work may take the loop for one slice: at once (after the loop's other
        ready work, and the client requests it read meanwhile) when no client request is in flight, else when none
        is, or after `max_wait_s`."""
        if max_wait_s <= 0:
            await asyncio.sleep(0)
            return
        if self._in_flight == 0:
            # Two of the loop's turns: in the first, the requests the loop read while the last slice ran are
            # queued behind this one; in the second they have started, and are waited for like any in flight.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if self._in_flight == 0:
                return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append(future)
        timer = loop.call_later(max_wait_s, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()


class RequestTurns:
    """One console or admin request's turns: each waits as `LicensingFirst.turn` does, until the request has waited
    WAIT_BUDGET_S in all; then its slices only yield. Where every client request is in flight for long (a triad's,
    which waits for etcd's commit, the loop idle meanwhile), a page of 30 slices otherwise waited 30 times
    MAX_WAIT_S: at 300,000 leases the Printer Usage page's p95 went from 15 ms to 0.9 s.

    Before that, a turn rests REST_PER_SLICE times as long as the request's slices since its last rest took, so
    console work takes at most about half of the server's time however fast pages are asked for: the loop is
    free for client requests, and the processor for whatever else the machine runs (bench/README.md: console pages
    asked for back to back on a busy 2-core machine). At 300,000 leases a page is a few milliseconds of work, so
    this costs a page as much again."""

    __slots__ = ("_first", "_rest_owed", "_slice_started", "waited_s")

    def __init__(self, first: LicensingFirst) -> None:
        self._first = first
        self.waited_s = 0.0
        self._slice_started: float | None = None  # perf_counter: the loop's clock counts whole milliseconds
        self._rest_owed = 0.0

    async def turn(self) -> None:
        if self._slice_started is not None:
            self._rest_owed += (time.perf_counter() - self._slice_started) * REST_PER_SLICE
            if self._rest_owed >= MIN_REST_S:
                await asyncio.sleep(self._rest_owed)
                self._rest_owed = 0.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._first.turn(min(MAX_WAIT_S, WAIT_BUDGET_S - self.waited_s))
        self.waited_s += loop.time() - started
        self._slice_started = time.perf_counter()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def is_client_request(path: str) -> bool:
    """Whether a request to `path` is the client API's (`/api/v1/...` outside `/api/v1/admin`): licensing."""
    return path.startswith(API_PREFIX) and not path.startswith(ADMIN_PREFIX)


def licensing_first(request: Request) -> RequestTurns:
    """The turns of `request` (one per request, whatever asks), on the app's `LicensingFirst` (`create_app` puts it
    in the app's state)."""
    turns: RequestTurns | None = getattr(request.state, "licensing_turns", None)
    if turns is None:
        turns = request.state.licensing_turns = RequestTurns(request.app.state.licensing_first)
    return turns


class ClientRequests:
    """ASGI middleware: counts the client API's requests in flight in `first` until each is answered."""

    def __init__(self, app: ASGIApp, first: LicensingFirst) -> None:
        self.app = app
        self.first = first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not is_client_request(path):
            await self.app(scope, receive, send)
            return
        self.first.client_started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.first.client_answered()
